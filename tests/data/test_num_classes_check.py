"""``num_classes`` against the classes a datalist names: its MSD-style ``labels``, or, without them, its training
labels. The expected messages are written out by hand from the datalists below."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from monai_nacl.bundle import DataCheckFailed, require_valid_datalist
from monai_nacl.data import DataProblem, check_datalist
from monai_nacl.data.__main__ import main

SHAPE = (6, 7, 8)
TISSUE = {"0": "background/other", "1": "grey matter", "2": "white matter"}


@pytest.fixture
def two_class_training(tmp_path: Path, write_nifti: Callable[..., Path]) -> Path:
    """Training labels hold classes 0 and 1 only; the validation label holds 0, 1 and 2. Returns the folder."""
    rng = np.random.default_rng(0)
    for name, highest in (("t0", 1), ("t1", 1), ("v0", 2)):
        write_nifti(tmp_path / f"img/{name}.nii.gz", rng.random(SHAPE).astype(np.float32))
        label = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % (highest + 1)).astype(np.uint8)
        write_nifti(tmp_path / f"lab/{name}.nii.gz", label)
    return tmp_path


def _datalist(folder: Path, **extra: object) -> Path:
    cases = {n: {"image": f"img/{n}.nii.gz", "label": f"lab/{n}.nii.gz"} for n in ("t0", "t1", "v0")}
    data = {**extra, "training": [cases["t0"], cases["t1"]], "validation": [cases["v0"]]}
    path = folder / "datalist.json"
    path.write_text(json.dumps(data))
    return path


def _only(problems: list[DataProblem]) -> DataProblem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_default_dataset_refuses_a_fourth_class(small_default: Path) -> None:
    datalist = small_default / "datalist.json"
    assert check_datalist(datalist, 3) == []
    *soft_labels, problem = check_datalist(datalist, 4)
    # its soft labels hold 3 channels: each case that has one reports that too
    assert soft_labels and {p.problem for p in soft_labels} == {"soft label shape is not (*label shape, num_classes)"}
    assert str(problem) == (
        f"datalist: {datalist}: num_classes contradicts the datalist's labels: num_classes=4, labels name 3 classes: "
        '{"0": "background/other", "1": "grey matter", "2": "white matter"}; fix: --num_classes 3, or add classes '
        "[3] to the datalist's labels if they are real classes"
    )


def test_num_classes_below_the_labels(two_class_training: Path) -> None:
    """Two classes against three named: the validation label 2 is outside [0, 2) and the labels contradict."""
    datalist = _datalist(two_class_training, labels=TISSUE)
    problems = check_datalist(datalist, 2)
    assert [(p.case, p.problem) for p in problems] == [
        ("validation[0] v0", "label values outside [0, 2)"),
        ("datalist", "num_classes contradicts the datalist's labels"),
    ]
    assert problems[1].value.startswith("num_classes=2, labels name 3 classes: {")
    assert problems[1].fix == (
        "--num_classes 3, or remove classes [2] from the datalist's labels (and map their voxels onto the remaining "
        "classes)"
    )


def test_declared_class_absent_from_training_is_a_warning(
    two_class_training: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Class 2 is named in ``labels`` and occurs in validation only: legitimate, logged, not a problem."""
    datalist = _datalist(two_class_training, labels=TISSUE)
    with caplog.at_level("WARNING", logger="monai_nacl.data.checks"):
        assert check_datalist(datalist, 3) == []
    (record,) = caplog.records
    assert "class(es) [2], named in the datalist's labels, never occur in the training labels" in record.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="monai_nacl.data.checks"):
        assert check_datalist(datalist, 3, sections=["validation"]) == []  # no training split read
    assert not caplog.records


def test_without_labels_num_classes_above_the_training_labels(two_class_training: Path) -> None:
    datalist = _datalist(two_class_training)
    problem = _only(check_datalist(datalist, 3))
    assert (problem.case, problem.file, problem.problem) == (
        "datalist",
        str(datalist),
        "num_classes above the classes of the training labels",
    )
    assert problem.value.startswith("num_classes=3, the training labels go up to 1: class(es) [2] never occur")
    assert problem.fix == (
        '--num_classes 2, or declare the classes in the datalist ("labels": {"0": "background", ..., "2": "<name>"}) '
        "if the training split is meant to lack class(es) [2]"
    )
    # the highest label is taken over the training split only: validation's class 2 does not count
    assert _only(check_datalist(datalist, 5)).value.startswith("num_classes=5, the training labels go up to 1:")
    assert [p.problem for p in check_datalist(datalist, 2)] == ["label values outside [0, 2)"]  # validation's 2


@pytest.mark.parametrize(
    ("labels", "value"),
    [
        ({"0": "bg", "1": "a", "3": "c"}, "keys ['0', '1', '3']"),
        ({"1": "a", "2": "b", "3": "c"}, "keys ['1', '2', '3']"),
        ({"0": "bg", "grey": "a", "2": "b"}, "keys ['0', 'grey', '2']"),
        ({"0": "bg", "01": "a", "2": "b"}, "keys ['0', '01', '2']"),
        ({"0": "bg", "-1": "a", "2": "b"}, "keys ['0', '-1', '2']"),
    ],
    ids=["gap", "no-background", "name-as-key", "leading-zero", "negative"],
)
def test_labels_keys_must_be_the_classes(two_class_training: Path, labels: dict, value: str) -> None:
    """Keys that are not 0..K-1 are a problem even when their number equals num_classes."""
    problem = _only(check_datalist(_datalist(two_class_training, labels=labels), 3))
    assert (problem.problem, problem.value) == ("the keys of 'labels' are not the classes 0..K-1", value)
    assert "class indices 0, 1, ..., K-1" in problem.fix


def test_labels_given_as_a_loaded_mapping(two_class_training: Path) -> None:
    """A datalist loaded in Python may key ``labels`` by ints; a list of names is not MSD's format."""
    data = json.loads(_datalist(two_class_training).read_text())
    assert check_datalist({**data, "labels": {0: "bg", 1: "a", 2: "b"}}, 3, base_dir=two_class_training) == []
    problem = _only(check_datalist({**data, "labels": ["bg", "a", "b"]}, 3, base_dir=two_class_training))
    assert (problem.problem, problem.value) == (
        "'labels' is not a mapping of class index to name",
        "list ['bg', 'a', 'b']",
    )
    no_classes = _only(check_datalist({**data, "labels": {}}, 3, base_dir=two_class_training))
    assert no_classes.value == "num_classes=3, labels name 0 classes: {}"
    assert no_classes.fix == (
        "add classes [0, 1, 2] to the datalist's labels if they are real classes, or remove the empty labels"
    )


def test_many_labels_are_shortened(two_class_training: Path) -> None:
    labels = {str(k): f"organ {k}" for k in range(20)}
    problem = _only(check_datalist(_datalist(two_class_training, labels=labels), 3))
    assert problem.value == (
        'num_classes=3, labels name 20 classes: {"0": "organ 0", "1": "organ 1", "2": "organ 2", "3": "organ 3", '
        '"4": "organ 4", "5": "organ 5", "6": "organ 6", ... (20 entries)}'
    )
    assert problem.fix.startswith("--num_classes 20, or remove classes [3, 4, ")


def test_command_line_and_bundle_start_up(two_class_training: Path, capsys: pytest.CaptureFixture) -> None:
    datalist = _datalist(two_class_training, labels=TISSUE)
    assert main(["check", str(datalist), "--num_classes", "4"]) == 1
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert line.startswith(f"datalist: {datalist}: num_classes contradicts the datalist's labels: num_classes=4, ")
    with pytest.raises(DataCheckFailed) as info:
        require_valid_datalist(datalist, 4)
    assert str(info.value).splitlines()[1:] == [line]
    assert require_valid_datalist(datalist, 3) == str(datalist)
