"""Data checks on real broken files: truncated / wrong-header NIfTI, bad label values, mismatched grids."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from monai_nacl.data import DataProblem, check_cases, check_datalist
from monai_nacl.data.__main__ import main

SHAPE = (8, 9, 10)


@pytest.fixture
def dataset(tmp_path: Path, write_nifti: Callable[..., Path]) -> tuple[Path, dict]:
    """Four good cases (3 classes) and their datalist; tests break them one at a time."""
    rng = np.random.default_rng(0)
    cases = []
    for index in range(4):
        write_nifti(tmp_path / f"img/c{index}.nii.gz", rng.random(SHAPE).astype(np.float32))
        write_nifti(tmp_path / f"lab/c{index}.nii.gz", rng.integers(0, 3, SHAPE).astype(np.uint8))
        cases.append({"image": f"img/c{index}.nii.gz", "label": f"lab/c{index}.nii.gz"})
    data = {"training": cases[:2], "validation": cases[2:3], "test": cases[3:]}
    (tmp_path / "datalist.json").write_text(json.dumps(data))
    return tmp_path, data


def _only(problems: list[DataProblem]) -> DataProblem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_clean_dataset_has_no_problem(dataset: tuple[Path, dict]) -> None:
    folder, data = dataset
    assert check_datalist(folder / "datalist.json", 3) == []
    assert check_datalist(data, 3, base_dir=folder) == []


def test_truncated_gzip(dataset: tuple[Path, dict]) -> None:
    folder, _ = dataset
    path = folder / "img/c1.nii.gz"
    path.write_bytes(path.read_bytes()[:-200])
    problem = _only(check_datalist(folder / "datalist.json", 3))
    assert problem.case == "training[1] c1" and problem.file == "img/c1.nii.gz"
    assert problem.problem == "truncated or corrupt image data" and "re-copy" in problem.fix


def test_wrong_header(dataset: tuple[Path, dict]) -> None:
    folder, _ = dataset
    path = folder / "lab/c2.nii.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[344:348] = b"xxxx"  # NIfTI magic "n+1\0"
    raw[0:4] = (999).to_bytes(4, "little")  # sizeof_hdr must be 348
    path.write_bytes(gzip.compress(bytes(raw)))
    (folder / "img/c3.nii.gz").write_bytes(b"this is not an image")
    problems = check_datalist(folder / "datalist.json", 3)
    assert [(p.case, p.problem) for p in problems] == [
        ("validation[0] c2", "unreadable NIfTI header"),
        ("test[0] c3", "unreadable NIfTI header"),
    ]


def test_label_value_outside_range(dataset: tuple[Path, dict], write_nifti: Callable[..., Path]) -> None:
    folder, _ = dataset
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[0, 0, :3] = 7
    label[1, 1, 1] = 2
    write_nifti(folder / "lab/c0.nii.gz", label)
    problem = _only(check_datalist(folder / "datalist.json", 3))
    assert problem.problem == "label values outside [0, 3)" and problem.value == "7 (3 voxels)"
    assert "--num_classes 8" in problem.fix
    assert str(problem).startswith("training[0] c0: lab/c0.nii.gz: label values outside [0, 3): 7 (3 voxels); fix:")
    assert check_datalist(folder / "datalist.json", 8) == []


def test_non_integer_and_negative_labels(dataset: tuple[Path, dict], write_nifti: Callable[..., Path]) -> None:
    folder, _ = dataset
    soft = np.zeros(SHAPE, dtype=np.float32)
    soft[2, 2, 2] = 0.5
    write_nifti(folder / "lab/c0.nii.gz", soft)
    negative = np.zeros(SHAPE, dtype=np.int16)
    negative[0, 0, 0] = -1
    write_nifti(folder / "lab/c1.nii.gz", negative)
    first, second = check_datalist(folder / "datalist.json", 3)
    assert first.problem == "non-integer label values" and first.value == "1 voxels, e.g. [0.5]"
    assert second.problem == "label values outside [0, 3)" and second.value == "-1 (1 voxels)"


def test_shape_and_affine_mismatch(dataset: tuple[Path, dict], write_nifti: Callable[..., Path]) -> None:
    folder, _ = dataset
    write_nifti(folder / "lab/c0.nii.gz", np.zeros((8, 9, 11), dtype=np.uint8))
    shifted = np.eye(4)
    shifted[0, 3] = 0.5
    write_nifti(folder / "lab/c1.nii.gz", np.zeros(SHAPE, dtype=np.uint8), shifted)
    first, second = check_datalist(folder / "datalist.json", 3)
    assert first.problem == "shape differs from img/c0.nii.gz" and first.value == "(8, 9, 11) vs (8, 9, 10)"
    assert second.problem == "affine differs from img/c1.nii.gz" and second.value == "max difference 0.5 mm"


def test_empty_and_nan_images(dataset: tuple[Path, dict], write_nifti: Callable[..., Path]) -> None:
    folder, _ = dataset
    write_nifti(folder / "img/c0.nii.gz", np.zeros(SHAPE, dtype=np.float32))
    with_nan = np.random.default_rng(1).random(SHAPE).astype(np.float32)
    with_nan[0, 0, :4] = np.nan
    write_nifti(folder / "img/c1.nii.gz", with_nan)
    first, second = check_datalist(folder / "datalist.json", 3)
    assert first.problem.startswith("empty image") and first.value == "value 0.0"
    assert second.problem == "image has non-finite intensities" and second.value == "4 NaN and 0 inf voxels of 720"


def test_missing_file_sections_and_duplicates(dataset: tuple[Path, dict]) -> None:
    folder, data = dataset
    (folder / "lab/c3.nii.gz").unlink()
    data["test"].append(data["training"][0])
    problems = check_datalist(data, 3, base_dir=folder, sections=["training", "test", "extra"])
    assert [(p.case, p.problem) for p in problems] == [
        ("test[0] c3", "missing file"),
        ("test[1] c0", "image listed twice"),
        ("datalist", "section 'extra' is missing or not a list"),
    ]
    assert problems[1].value == "first as training[0] c0"
    assert _only(check_datalist({"cases": []}, 3)).problem == "no case lists"
    with pytest.raises(ValueError, match="num_classes"):
        check_datalist(data, 0)


def test_check_cases_reports_per_case(dataset: tuple[Path, dict]) -> None:
    """One list of problems per case, in order, for a list of entries with absolute paths (no labels needed)."""
    folder, data = dataset
    path = folder / "img/c1.nii.gz"
    path.write_bytes(path.read_bytes()[:-200])
    cases = [{"image": str(folder / c["image"])} for c in data["training"] + data["test"]]
    cases.append(dict(cases[0]))
    per_case = check_cases(cases, 3, section="inputs")
    assert [len(p) for p in per_case] == [0, 1, 0, 1]
    assert per_case[1][0].case == "inputs[1] c1" and per_case[1][0].problem == "truncated or corrupt image data"
    assert per_case[3][0].problem == "image listed twice" and per_case[3][0].value == "first as inputs[0] c0"
    with pytest.raises(ValueError, match="num_classes=0"):
        check_cases(cases, 0)


def test_multichannel_image_and_soft_label(dataset: tuple[Path, dict], write_nifti: Callable[..., Path]) -> None:
    folder, data = dataset
    write_nifti(folder / "img/c0_t2.nii.gz", np.ones((8, 9, 9), dtype=np.float32) * np.arange(9))
    write_nifti(folder / "soft/c0.nii.gz", np.full((*SHAPE, 2), 0.5, dtype=np.float32))
    data["training"][0] = {
        "image": ["img/c0.nii.gz", "img/c0_t2.nii.gz"],
        "label": "lab/c0.nii.gz",
        "soft_label": "soft/c0.nii.gz",
    }
    problems = check_datalist(data, 3, base_dir=folder, sections=["training"])
    assert [(p.file, p.problem) for p in problems] == [
        ("img/c0_t2.nii.gz", "shape differs from img/c0.nii.gz"),
        ("soft/c0.nii.gz", "soft label shape is not (*label shape, num_classes)"),
    ]
    assert problems[1].value == "(8, 9, 10, 2) vs (8, 9, 10, 3)"


def test_command_line(
    dataset: tuple[Path, dict], write_nifti: Callable[..., Path], capsys: pytest.CaptureFixture
) -> None:
    folder, _ = dataset
    assert main(["check", str(folder / "datalist.json"), "--num_classes", "3"]) == 0
    assert "4 cases checked, no problem found" in capsys.readouterr().out
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[0, 0, 0] = 7
    write_nifti(folder / "lab/c2.nii.gz", label)
    (folder / "img/c3.nii.gz").write_bytes(b"\x1f\x8b broken")
    assert main(["check", str(folder / "datalist.json"), "--num_classes", "3"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("validation[0] c2: lab/c2.nii.gz: label values outside [0, 3): 7 (1 voxels); fix: ")
    assert lines[1].startswith("test[0] c3: img/c3.nii.gz: unreadable NIfTI header: ") and "fix: " in lines[1]
    assert "2 problem(s) in 2 case(s)" in captured.err
