"""``python -m monai_nacl bundle {list,export}``: a self-contained copy without a run's leftovers, and no silent
overwrite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bundle_helpers import BUNDLES, BUNDLES_DIR

from monai_nacl.__main__ import main
from monai_nacl.bundle import export as bundle_export


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped bundles where unet2d_nacl holds what a run and Python leave behind."""
    root = tmp_path / "bundles"
    shutil.copytree(BUNDLES_DIR, root, ignore=shutil.ignore_patterns("models", "eval", "__pycache__"))
    bundle = root / "unet2d_nacl"
    for leftover in (
        "models/model.pt",
        "models/old/checkpoint_last.pt",
        "eval/metrics.csv",
        "configs/__pycache__/x.pyc",
    ):
        (bundle / leftover).parent.mkdir(parents=True, exist_ok=True)
        (bundle / leftover).write_bytes(b"run output")
    monkeypatch.setattr(bundle_export, "BUNDLES_DIR", root)
    return root


def test_export_copies_the_bundle_without_run_outputs(shipped: Path, tmp_path: Path) -> None:
    copy = tmp_path / "mine"
    assert main(["bundle", "export", "unet2d_nacl", str(copy)]) == 0
    expected = {f for f in _files(shipped / "unet2d_nacl") if not f.startswith(("models/", "eval/"))}
    expected = {f for f in expected if "__pycache__" not in f}
    assert _files(copy) == expected and {"configs/metadata.json", "LICENSE", "large_files.yml"} <= expected
    for name in expected:
        assert (copy / name).read_bytes() == (shipped / "unet2d_nacl" / name).read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mine")], "staging folder left behind"


def test_export_refuses_a_non_empty_folder_unless_forced(
    shipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    copy = tmp_path / "mine"
    (copy / "models").mkdir(parents=True)
    (copy / "models" / "model.pt").write_bytes(b"trained")
    assert main(["bundle", "export", "unet2d_nacl", str(copy)]) == 2
    assert "is not empty; pass --force" in capsys.readouterr().err
    assert (copy / "models" / "model.pt").read_bytes() == b"trained"
    assert main(["bundle", "export", "unet2d_nacl", str(copy), "--force"]) == 0
    assert not (copy / "models").exists() and (copy / "configs" / "train.yaml").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["bundle", "export", "unet3d_nacl", str(empty)]) == 0 and (empty / "configs" / "train.yaml").is_file()
    assert main(["bundle", "export", "no_such_bundle", str(tmp_path / "x")]) == 2
    assert "unknown bundle 'no_such_bundle'" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_list_names_every_bundle(capsys: pytest.CaptureFixture) -> None:
    assert main(["bundle", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == sorted(BUNDLES)
