"""The wheel works outside the repository: it carries the bundles, exports one, and the copy trains from its own folder
without writing anywhere else (not into the repository, not into the installed package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE = "unet2d_nacl"


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: relative path -> (size, mtime in ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def _untracked() -> list[str]:
    """The repository's files that git neither tracks nor ignores."""
    return subprocess.run(
        ["git", "ls-files", "-o", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 240) -> str:
    result = subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command[:4]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` of a copy of the working tree (tracked and untracked, not ignored), so the build leaves nothing
    (``build/``, ``*.egg-info``) in the repository; offline: no isolation, no dependencies."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    source = tmp_path / "source"
    for name in filter(None, (f.decode() for f in files)):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q"]
    _run([*command, "-w", str(tmp_path / "wheel")], tmp_path, dict(os.environ))
    (wheel,) = (tmp_path / "wheel").glob("monai_nacl-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_installs_exports_and_trains_outside_the_repository(tmp_path: Path) -> None:
    from monai_nacl import __version__
    from monai_nacl.data import make_synthetic_dataset

    untracked_before, bundle_before = _untracked(), _tree(REPO / "bundles")
    wheel = _build_wheel(tmp_path)
    assert wheel.name.startswith(f"monai_nacl-{__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(Path("monai_nacl/bundles") / p) for p in bundle_before if "__pycache__" not in p}
    shipped = {p for p in shipped if not any(f"/{d}/" in p for d in ("models", "eval", "logs"))}
    assert shipped <= names, f"missing from the wheel: {sorted(shipped - names)[:10]}"
    assert "monai_nacl/py.typed" in names and "monai_nacl/bundles/unet2d_nacl/configs/train.yaml" in names
    assert not [n for n in names if n.startswith("bundles/")], "the bundles belong under monai_nacl/ in the wheel"

    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], tmp_path,
         dict(os.environ))  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "MONAI_NACL_DATA": str(tmp_path / "none")}
    origin = _run([sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('monai_nacl').origin)"],
                  work, env)  # fmt: skip
    assert Path(origin.strip()).is_relative_to(site), origin
    installed_before = _tree(site / "monai_nacl" / "bundles")

    copy = tmp_path / "copy"
    _run([sys.executable, "-m", "monai_nacl", "bundle", "export", BUNDLE, str(copy)], work, env)
    assert _tree(copy).keys() == _tree(site / "monai_nacl" / "bundles" / BUNDLE).keys()

    datalist = make_synthetic_dataset(tmp_path / "data", num_cases=6, spatial_dims=3, size=32, num_classes=3, seed=0)
    first = "$monai_nacl.bundle.training_data.datalist_section(@datalist, '{}', @dataset_dir)[:{}]"
    overrides = {
        "datalist": datalist,
        "dataset_dir": str(tmp_path / "data"),
        "max_epochs": 1,
        "val_interval": 1,
        "num_samples": 2,
        "sw_batch_size": 4,
        "train#dataset#data": first.format("training", 2),
        "validate#dataset#data": first.format("validation", 1),
    }
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.yaml",
               "--meta_file", "configs/metadata.json"]  # fmt: skip
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    _run(command, copy, env)

    assert (copy / "models" / "model.pt").is_file() and (copy / "models" / "checkpoint_last.pt").is_file()
    assert list((copy / "eval").glob("events.out.tfevents.*")), "no TensorBoard log in the copy's eval/"
    assert _tree(site / "monai_nacl" / "bundles") == installed_before, "the run wrote into the installed package"
    # new files, not edits: the checkout's existing files may be edited by someone else while the suite runs
    written = sorted(_tree(REPO / "bundles").keys() - bundle_before.keys())
    assert not written, f"the run wrote into the repository's bundles: {written}"
    created = sorted(set(_untracked()) - set(untracked_before))
    assert not created, f"the build or the run wrote into the repository: {created}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "data", "site", "source", "wheel", "work"]
    assert not any(work.iterdir()), "the export or the run wrote into the working directory"
