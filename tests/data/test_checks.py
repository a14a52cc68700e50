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
    negative[1, 1, 1] = 2  # the training labels still reach class 2 (num_classes 3, no "labels" in the datalist)
    write_nifti(folder / "lab/c1.nii.gz", negative)
    first, second = check_datalist(folder / "datalist.json", 3)
    assert first.problem == "non-integer label values" and first.value == "1 voxels, e.g. [0.5]"
    assert second.problem == "label values outside [0, 3)" and second.value == "-1 (1 voxels)"


def test_shape_and_affine_mismatch(dataset: tuple[Path, dict], write_nifti: Callable[..., Path]) -> None:
    folder, _ = dataset
    write_nifti(folder / "lab/c0.nii.gz", np.zeros((8, 9, 11), dtype=np.uint8))
    shifted = np.eye(4)
    shifted[0, 3] = 0.5
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[1, 1, :2] = [1, 2]  # the training labels still reach class 2 (num_classes 3, no "labels" in the datalist)
    write_nifti(folder / "lab/c1.nii.gz", label, shifted)
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
    data["training"] = data["training"][:1]
    problems = check_datalist(data, 3, base_dir=folder, sections=["training"], in_channels=2)
    assert [(p.file, p.problem) for p in problems] == [
        ("img/c0_t2.nii.gz", "shape differs from img/c0.nii.gz"),
        ("soft/c0.nii.gz", "soft label shape is not (*label shape, num_classes)"),
    ]
    assert problems[1].value == "(8, 9, 10, 2) vs (8, 9, 10, 3)"
    # the bundles' networks take one channel: two files per case are refused by default
    channels = check_datalist(data, 3, base_dir=folder, sections=["training"])[0]
    assert channels.problem == "wrong number of image channels" and channels.file == "img/c0.nii.gz"
    assert channels.value == "2 channel(s) in 2 file(s), the network takes 1"
    assert "--network_def#in_channels 2" in channels.fix


def test_images_must_be_single_channel_3d_volumes(dataset: tuple[Path, dict], write_nifti: Callable[..., Path]) -> None:
    """A 4D two-channel file, a 2D image and a single-slice volume (each with a label on its grid) are refused with
    their shapes; ``in_channels`` follows the network, ``None`` accepts any number."""
    folder, data = dataset
    rng = np.random.default_rng(2)
    write_nifti(folder / "img/c0.nii.gz", rng.random((*SHAPE, 2)).astype(np.float32))
    write_nifti(folder / "img/c1.nii.gz", rng.random(SHAPE[:2]).astype(np.float32))
    write_nifti(folder / "lab/c1.nii.gz", np.zeros(SHAPE[:2], dtype=np.uint8))
    write_nifti(folder / "img/c2.nii.gz", rng.random((*SHAPE[:2], 1)).astype(np.float32))
    write_nifti(folder / "lab/c2.nii.gz", np.zeros((*SHAPE[:2], 1), dtype=np.uint8))
    problems = check_datalist(folder / "datalist.json", 3)
    assert [(p.case, p.file, p.problem, p.value) for p in problems] == [
        ("training[0] c0", "img/c0.nii.gz", "wrong number of image channels",
         "2 channel(s) in 1 file(s), the network takes 1"),
        ("training[1] c1", "img/c1.nii.gz", "image is 2D, expected 3D", "shape (8, 9)"),
        ("validation[0] c2", "img/c2.nii.gz", "image has a single slice, expected 3D", "shape (8, 9, 1)"),
    ]  # fmt: skip
    assert "slicer[..., 0]" in problems[0].fix and "--network_def#in_channels 2" in problems[0].fix
    assert "3D volume (X, Y, Z)" in problems[1].fix and "stack the slices" in problems[2].fix
    four_d = [data["training"][0]]
    assert check_cases(four_d, 3, base_dir=folder, in_channels=2) == [[]]
    assert check_cases(four_d, 3, base_dir=folder, in_channels=None) == [[]]
    with pytest.raises(ValueError, match="in_channels=0"):
        check_cases(four_d, 3, base_dir=folder, in_channels=0)
    # 2D image sets (image_dims=2): the 2D image is fine, the volumes now have too many channels
    flat = check_cases(data["training"], 3, base_dir=folder, image_dims=2)
    assert flat[1] == [] and flat[0][0].value == "20 channel(s) in 1 file(s), the network takes 1"
    with pytest.raises(ValueError, match="image_dims=4"):
        check_cases(four_d, 3, base_dir=folder, image_dims=4)


def test_empty_datalist_and_empty_splits(dataset: tuple[Path, dict]) -> None:
    folder, data = dataset
    empty = _only(check_datalist({"training": [], "validation": [], "test": []}, 3))
    assert (empty.case, empty.problem) == ("datalist", "the datalist holds no case")
    assert empty.value == "empty sections ['training', 'validation', 'test']"
    # an empty test split is a datalist without a test set; a split a training run needs is not optional
    no_validation = {**data, "validation": [], "test": []}
    assert check_datalist(no_validation, 3, base_dir=folder) == []
    problem = _only(check_datalist(no_validation, 3, base_dir=folder, required_sections=("training", "validation")))
    assert problem.problem == "section 'validation' holds no case" and "--split" in problem.fix
    missing = check_datalist({"training": data["training"]}, 3, base_dir=folder, required_sections=["validation"])
    assert [p.problem for p in missing] == ["section 'validation' is missing or not a list"]
    assert _only(check_datalist(no_validation, 3, base_dir=folder, sections=["test"])).problem == (
        "section 'test' holds no case"
    )


def test_command_line(
    dataset: tuple[Path, dict], write_nifti: Callable[..., Path], capsys: pytest.CaptureFixture
) -> None:
    folder, _ = dataset
    assert main(["check", str(folder / "datalist.json"), "--num_classes", "3"]) == 0
    assert "4 cases checked (3 classes, stage train), no problem found" in capsys.readouterr().out
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


def test_command_line_in_channels(
    dataset: tuple[Path, dict], write_nifti: Callable[..., Path], capsys: pytest.CaptureFixture
) -> None:
    """``check`` refuses a two-channel 4D image for the bundles' one-channel networks, and accepts it with
    ``--in_channels 2`` (where every case then needs two channels)."""
    folder, data = dataset
    write_nifti(folder / "img/c0.nii.gz", np.random.default_rng(3).random((*SHAPE, 2)).astype(np.float32))
    (folder / "one.json").write_text(json.dumps({"training": data["training"][:1]}))
    only_training = ["--num_classes", "3", "--stage", "all"]
    assert main(["check", str(folder / "one.json"), *only_training]) == 1
    assert "wrong number of image channels: 2 channel(s) in 1 file(s)" in capsys.readouterr().out
    assert main(["check", str(folder / "one.json"), *only_training, "--in_channels", "2"]) == 0


def test_command_line_gives_the_bundle_start_up_verdict(
    dataset: tuple[Path, dict], capsys: pytest.CaptureFixture
) -> None:
    """An empty validation split: the standalone check and train.yaml's start-up both refuse it, naming the fix."""
    from monai_nacl.bundle import require_valid_datalist

    folder, data = dataset
    (folder / "no_validation.json").write_text(json.dumps({**data, "validation": []}))
    assert main(["check", str(folder / "no_validation.json"), "--num_classes", "3"]) == 1
    out = capsys.readouterr().out
    assert "section 'validation' holds no case" in out and "--split" in out
    with pytest.raises(SystemExit) as refused:
        require_valid_datalist(str(folder / "no_validation.json"), 3, str(folder))
    assert "section 'validation' holds no case" in str(refused.value)
    # evaluation needs only the test list; 'all' checks what is there
    assert main(["check", str(folder / "no_validation.json"), "--num_classes", "3", "--stage", "evaluate"]) == 0
    assert main(["check", str(folder / "no_validation.json"), "--num_classes", "3", "--stage", "all"]) == 0
    (folder / "no_test.json").write_text(json.dumps({**data, "test": []}))
    assert main(["check", str(folder / "no_test.json"), "--num_classes", "3", "--stage", "evaluate"]) == 1
    assert "section 'test' holds no case" in capsys.readouterr().out


def test_command_line_takes_the_class_count_from_the_labels(
    dataset: tuple[Path, dict], capsys: pytest.CaptureFixture
) -> None:
    folder, data = dataset
    named = {**data, "labels": {"0": "background", "1": "grey matter", "2": "white matter"}}
    (folder / "named.json").write_text(json.dumps(named))
    assert main(["check", str(folder / "named.json")]) == 0
    assert "(3 classes, stage train), no problem found" in capsys.readouterr().out
    # four names: four classes are checked (a named class absent from the training labels is only a warning)
    (folder / "four.json").write_text(json.dumps({**named, "labels": {**named["labels"], "3": "csf"}}))
    assert main(["check", str(folder / "four.json")]) == 0
    assert "(4 classes, stage train)" in capsys.readouterr().out
    assert main(["check", str(folder / "four.json"), "--num_classes", "3"]) == 1
    assert "csf" in capsys.readouterr().out
    assert main(["check", str(folder / "datalist.json")]) == 2
    err = capsys.readouterr().err
    assert "names no classes" in err and "pass --num_classes" in err
