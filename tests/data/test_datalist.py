"""Datalist converters on tiny folders that mimic MSD, ACDC, BraTS and plain image/label folders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_nacl.data import (
    acdc_cases,
    brats_cases,
    check_datalist,
    folder_cases,
    make_datalist,
    msd_cases,
    parse_split,
    split_cases,
)
from monai_nacl.data.__main__ import main

SHAPE = (4, 5, 6)
Writer = Callable[..., Path]


def _image(write_nifti: Writer, path: Path) -> Path:
    return write_nifti(path, np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE))


def _label(write_nifti: Writer, path: Path, value: int = 1) -> Path:
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[1:3, 1:3, 1:3] = value
    return write_nifti(path, label)


def test_msd_layout(tmp_path: Path, write_nifti: Writer) -> None:
    task = tmp_path / "Task09_Spleen"
    training = []
    for index in range(10):
        _image(write_nifti, task / f"imagesTr/spleen_{index}.nii.gz")
        _label(write_nifti, task / f"labelsTr/spleen_{index}.nii.gz")
        training.append({"image": f"./imagesTr/spleen_{index}.nii.gz", "label": f"./labelsTr/spleen_{index}.nii.gz"})
    _image(write_nifti, task / "imagesTs/spleen_99.nii.gz")
    meta = {
        "name": "Spleen",
        "labels": {"0": "background", "1": "spleen"},
        "modality": {"0": "CT"},
        "training": training,
        "test": ["./imagesTs/spleen_99.nii.gz"],
    }
    (task / "dataset.json").write_text(json.dumps(meta))
    cases = msd_cases(task)
    assert len(cases) == 10 and cases[3]["image"] == str((task / "imagesTr/spleen_3.nii.gz").resolve())
    output = tmp_path / "lists/spleen.json"
    path = make_datalist("msd", task, output, fractions=(0.6, 0.2, 0.2), seed=1)
    data = json.loads(Path(path).read_text())
    assert [len(data[s]) for s in ("training", "validation", "test")] == [6, 2, 2]
    assert data["labels"] == meta["labels"] and data["modality"] == {"0": "CT"}
    assert data["training"][0]["image"].startswith("../Task09_Spleen/imagesTr/")
    names = sorted(e["image"] for s in ("training", "validation", "test") for e in data[s])
    assert names == sorted(f"../Task09_Spleen/imagesTr/spleen_{i}.nii.gz" for i in range(10))
    loaded = load_decathlon_datalist(path, True, "test")
    assert Path(loaded[0]["image"]).resolve().parent == (task / "imagesTr").resolve()
    assert check_datalist(path, 2) == []
    with pytest.raises(ValueError, match="dataset.json"):
        msd_cases(tmp_path / "lists")


def test_acdc_layout_keeps_patients_together(tmp_path: Path, write_nifti: Writer) -> None:
    root = tmp_path / "ACDC/training"
    for patient in range(1, 7):
        folder = root / f"patient{patient:03d}"
        write_nifti(folder / f"patient{patient:03d}_4d.nii.gz", np.zeros((*SHAPE, 3), dtype=np.float32))
        (folder / "Info.cfg").write_text("ED: 1\nES: 12\n")
        for frame in (1, 12):
            stem = f"patient{patient:03d}_frame{frame:02d}"
            _image(write_nifti, folder / f"{stem}.nii.gz")
            _label(write_nifti, folder / f"{stem}_gt.nii.gz", value=3)
    _image(write_nifti, root / "patient007/patient007_frame01.nii.gz")  # no ground truth: ignored
    cases = acdc_cases(tmp_path / "ACDC")
    assert len(cases) == 12 and {c["group"] for c in cases} == {f"patient{i:03d}" for i in range(1, 7)}
    assert cases[0]["label"].endswith("patient001/patient001_frame01_gt.nii.gz")
    for seed in range(5):
        sections = split_cases(cases, (0.5, 0.3, 0.2), seed)
        assert [len(sections[s]) for s in ("training", "validation", "test")] == [6, 4, 2]  # 3 / 2 / 1 patients
        owners = {}
        for name, members in sections.items():
            for case in members:
                assert owners.setdefault(case["group"], name) == name  # both frames in the same split
    assert split_cases(cases, (0.5, 0.3, 0.2), 0) == split_cases(cases, (0.5, 0.3, 0.2), 0)
    assert split_cases(cases, (0.5, 0.3, 0.2), 0) != split_cases(cases, (0.5, 0.3, 0.2), 3)
    path = make_datalist("acdc", tmp_path / "ACDC", tmp_path / "acdc.json", fractions=(0.5, 0.3, 0.2))
    assert check_datalist(path, 4) == []
    with pytest.raises(ValueError, match="no ACDC frames"):
        acdc_cases(tmp_path / "ACDC/training/patient007")


@pytest.mark.parametrize(
    "names",
    [("t1", "t1ce", "t2", "flair", "seg"), ("t1n", "t1c", "t2w", "t2f", "seg")],
    ids=["brats2021", "brats2023"],
)
def test_brats_layout_stacks_four_modalities(tmp_path: Path, write_nifti: Writer, names: tuple[str, ...]) -> None:
    separator = "-" if names[0] == "t1n" else "_"
    root = tmp_path / "BraTS"
    for index in range(4):
        case = f"BraTS_{index:05d}"
        for name in reversed(names[:4]):
            _image(write_nifti, root / case / f"{case}{separator}{name}.nii.gz")
        segmentation = np.zeros(SHAPE, dtype=np.uint8)
        segmentation[0, 0, :3] = [1, 2, 4]
        write_nifti(root / case / f"{case}{separator}seg.nii.gz", segmentation)
    for name in names[:4]:  # a validation case: no segmentation, skipped
        _image(write_nifti, root / "BraTS_val" / f"BraTS_val{separator}{name}.nii.gz")
    cases = brats_cases(root)
    assert len(cases) == 4
    assert [Path(p).name for p in cases[0]["image"]] == [f"BraTS_00000{separator}{n}.nii.gz" for n in names[:4]]
    path = make_datalist("brats", root, root / "datalist.json", fractions=(0.5, 0.3, 0.2))
    entry = json.loads(Path(path).read_text())["training"][0]
    assert isinstance(entry["image"], list) and len(entry["image"]) == 4 and entry["image"][0].startswith("BraTS_")
    problems = check_datalist(path, 4, in_channels=4)  # four modalities, one file each
    assert {p.problem for p in problems} == {"label values outside [0, 4)"} and len(problems) == 4
    assert problems[0].value == "4 (1 voxels)" and "4 -> 3" in problems[0].fix
    (root / "BraTS_00001" / f"BraTS_00001{separator}{names[1]}.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"BraTS_00001 has no \['t1ce'\]"):
        brats_cases(root)


def test_plain_folders_matched_by_name(tmp_path: Path, write_nifti: Writer) -> None:
    for name in ("a", "b", "c"):
        _image(write_nifti, tmp_path / f"images/{name}_0000.nii.gz")
    _label(write_nifti, tmp_path / "labels/a.nii.gz")
    _label(write_nifti, tmp_path / "labels/b_seg.nii.gz")
    _label(write_nifti, tmp_path / "labels/c_gt.nii.gz")
    cases = folder_cases(tmp_path / "images", tmp_path / "labels")
    assert [(Path(c["image"]).name, Path(c["label"]).name) for c in cases] == [
        ("a_0000.nii.gz", "a.nii.gz"),
        ("b_0000.nii.gz", "b_seg.nii.gz"),
        ("c_0000.nii.gz", "c_gt.nii.gz"),
    ]
    _image(write_nifti, tmp_path / "images/d.nii.gz")
    with pytest.raises(ValueError, match=r"images without label: \['d'\]"):
        folder_cases(tmp_path / "images", tmp_path / "labels")


def test_command_line_and_no_overwrite(tmp_path: Path, write_nifti: Writer, capsys: pytest.CaptureFixture) -> None:
    for index in range(5):
        _image(write_nifti, tmp_path / f"imgs/case{index}.nii.gz")
        _label(write_nifti, tmp_path / f"segs/case{index}.nii.gz")
    argv = [
        "datalist",
        "--layout",
        "folders",
        "--input",
        str(tmp_path / "imgs"),
        "--labels",
        str(tmp_path / "segs"),
        "--output",
        str(tmp_path / "my.json"),
        "--split",
        "0.6,0.2,0.2",
        "--seed",
        "2",
    ]
    assert main(argv) == 0
    assert "3 training, 1 validation, 1 test" in capsys.readouterr().out
    first = (tmp_path / "my.json").read_text()
    assert main(argv[:-1] + ["5"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert (tmp_path / "my.json").read_text() == first
    assert main(argv[:-1] + ["5", "--force"]) == 0
    assert main(["check", str(tmp_path / "my.json"), "--num_classes", "2"]) == 0
    assert main(argv[:-4] + ["--split", "0.5,0.5"]) == 2
    assert "--split '0.5,0.5'" in capsys.readouterr().err
    assert (
        main(["datalist", "--layout", "msd", "--input", str(tmp_path / "imgs"), "--labels", "x", "--output", "o.json"])
        == 2
    )


@pytest.mark.parametrize("text", ["0.7,0.3", "0.5,0.5,0.5", "a,b,c", "0,0.5,0.5", "1.2,-0.1,-0.1"])
def test_parse_split_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="three fractions"):
        parse_split(text)


def test_split_rounding_and_too_few_cases() -> None:
    assert parse_split("0.7,0.15,0.15") == (0.7, 0.15, 0.15)
    cases = [{"image": f"{i}", "label": f"{i}", "group": f"{i:02d}"} for i in range(20)]
    sections = split_cases(cases, (0.7, 0.15, 0.15), 0)
    assert [len(sections[s]) for s in ("training", "validation", "test")] == [14, 3, 3]
    assert sorted(c["group"] for s in sections.values() for c in s) == [f"{i:02d}" for i in range(20)]
    with pytest.raises(ValueError, match="at least one for training"):
        split_cases(cases[:2], (0.2, 0.4, 0.4), 0)


def test_folders_layout_writes_class_names(tmp_path: Path, write_nifti, capsys: pytest.CaptureFixture) -> None:
    from monai_nacl.data import class_names, num_classes_of

    for index in range(5):
        _image(write_nifti, tmp_path / f"imgs/case{index}.nii.gz")
        _label(write_nifti, tmp_path / f"segs/case{index}.nii.gz")
    argv = ["datalist", "--layout", "folders", "--input", str(tmp_path / "imgs"), "--labels", str(tmp_path / "segs")]
    assert main([*argv, "--output", str(tmp_path / "my.json"), "--class_names", "background, lesion"]) == 0
    data = json.loads((tmp_path / "my.json").read_text())
    assert data["labels"] == {"0": "background", "1": "lesion"}
    assert num_classes_of(tmp_path / "my.json") == 2 and class_names(data, 2) == ["background", "lesion"]
    # the check needs no --num_classes now
    assert main(["check", str(tmp_path / "my.json")]) == 0
    for bad, said in [("lesion", "at least two"), ("background,,lesion", "empty name"), ("a,b,a", "named twice")]:
        assert main([*argv, "--output", str(tmp_path / "bad.json"), "--class_names", bad]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"0": "background", "1": "liver", "2": "kidney", "3": "bone"}, 4),
        ({0: "background", 1: "liver"}, 2),
        ({"0": "background", "2": "kidney"}, 3),  # not 0..K-1: the default, and the data check names the gap
        ({"background": 0}, 3),
        ({}, 3),
        (None, 3),
    ],
)
def test_num_classes_of(labels, expected) -> None:
    from monai_nacl.data import num_classes_of

    data = {"training": []} if labels is None else {"training": [], "labels": labels}
    assert num_classes_of(data, default=3) == expected


def test_image_channels_from_the_data(tmp_path: Path, write_nifti) -> None:
    from monai_nacl.data import image_channels

    for name, shape in [
        ("t1", (5, 5, 5)),
        ("t1ce", (5, 5, 5)),
        ("t2", (5, 5, 5)),
        ("flair", (5, 5, 5)),
        ("x4", (5, 5, 5, 3)),
    ]:
        write_nifti(tmp_path / f"{name}.nii.gz", np.ones(shape, dtype=np.float32))
    brats = {"training": [{"image": ["t1.nii.gz", "t1ce.nii.gz", "t2.nii.gz", "flair.nii.gz"], "label": "s.nii.gz"}]}
    assert image_channels(brats, tmp_path) == 4
    assert image_channels({"training": [{"image": "x4.nii.gz", "label": "s"}]}, tmp_path) == 3
    assert image_channels({"training": [{"image": ["t1.nii.gz", "x4.nii.gz"], "label": "s"}]}, tmp_path) == 4
    (tmp_path / "list.json").write_text(json.dumps(brats))
    assert image_channels(tmp_path / "list.json") == 4  # relative to the datalist's folder
    with pytest.raises(ValueError, match="holds no case"):
        image_channels({"training": []})
    with pytest.raises(ValueError, match="missing.nii.gz is not a readable NIfTI"):
        image_channels({"training": [{"image": "missing.nii.gz"}]}, tmp_path)
