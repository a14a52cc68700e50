"""A new training into folders that hold a previous run stops at start-up, before writing anything, naming both fixes
(``--resume true``, ``--overwrite true``); ``--overwrite true`` deletes that run's files and no other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_helpers import config_path, run_bundle, split_list

from monai_nacl.bundle import OutputDirInUse, require_fresh_output
from monai_nacl.bundle.startup import RUN_FILES


def _previous_run(out: Path) -> dict[Path, str]:
    """A previous run's files in ``out`` and ``out/models``, and a file of the user's beside them: path -> text."""
    files = {out / "history.csv": "epoch\n1\n2\n3\n", out / "notes.txt": "mine\n"}
    files.update({out / "models" / name: name for name in RUN_FILES["ckpt_dir"]})
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return files


def test_refuses_a_previous_run_naming_the_folder_the_files_and_both_fixes(tmp_path: Path) -> None:
    files = _previous_run(tmp_path)
    with pytest.raises(OutputDirInUse) as info:
        require_fresh_output(tmp_path, tmp_path / "models")
    message = str(info.value)
    assert len(message.splitlines()) == 1 and f"--output_dir {tmp_path} holds a previous run" in message
    assert "--resume true" in message and "--overwrite true" in message and "another --output_dir" in message
    assert all(str(path) in message for path in files if path.name != "notes.txt")
    assert set(info.value.files) == set(files) - {tmp_path / "notes.txt"}
    assert isinstance(info.value, SystemExit) and not isinstance(info.value, Exception)
    assert all(path.read_text() == text for path, text in files.items())


@pytest.mark.parametrize("name", ["history.csv", "models/checkpoint_last.pt"])
def test_any_one_run_file_is_a_previous_run(tmp_path: Path, name: str) -> None:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text("x")
    with pytest.raises(OutputDirInUse, match="--overwrite true"):
        require_fresh_output(tmp_path, tmp_path / "models", resume="false", overwrite="false")


def test_empty_folders_and_resume_pass_and_touch_nothing(tmp_path: Path) -> None:
    assert require_fresh_output(tmp_path / "new", tmp_path / "new" / "models") == str(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    files = _previous_run(tmp_path)
    assert require_fresh_output(tmp_path, tmp_path / "models", resume="true") == str(tmp_path)
    assert all(path.read_text() == text for path, text in files.items())


def test_overwrite_removes_only_the_run_files(tmp_path: Path) -> None:
    _previous_run(tmp_path)
    require_fresh_output(tmp_path, tmp_path / "models", overwrite="true")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["models", "notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_resume_and_overwrite_together_are_refused(tmp_path: Path) -> None:
    files = _previous_run(tmp_path)
    with pytest.raises(OutputDirInUse, match="choose one"):
        require_fresh_output(tmp_path, tmp_path / "models", resume=True, overwrite=True)
    assert all(path.is_file() for path in files)


def test_bundle_refuses_a_second_training_into_a_finished_run(tmp_path: Path, synthetic_3d: tuple[str, str]) -> None:
    dataset_dir, datalist = synthetic_3d
    settings = {
        "dataset_dir": dataset_dir,
        "datalist": datalist,
        "output_dir": str(tmp_path),
        "ckpt_dir": str(tmp_path / "models"),
        "max_epochs": 1,
        "val_interval": 1,
        "batch_size": 1,
        "num_samples": 1,
        "cache_rate": 0.0,
        "train#trainer#epoch_length": 1,
        "validate#dataset#data": split_list(datalist, "validation", 1),
    }
    run_bundle("unet2d_nacl", ["train.yaml"], **settings)
    run_files = [tmp_path / name for name in RUN_FILES["output_dir"]]
    run_files += [tmp_path / "models" / name for name in RUN_FILES["ckpt_dir"]]
    assert all(path.is_file() for path in run_files)  # RUN_FILES are what a training writes
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_path("unet2d_nacl", "train.yaml"),
               "--meta_file", config_path("unet2d_nacl", "metadata.json"),
               *[arg for key, value in settings.items() for arg in (f"--{key}", repr(value))]]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"--output_dir {tmp_path} holds a previous run (") and "--overwrite true" in last
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
