"""class_names: column-safe names of a datalist's label values, from its MSD-style ``labels``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monai_nacl.data import class_names, column_safe
from monai_nacl.data.default_dataset import LABEL_NAMES


def test_default_dataset_labels_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"labels": LABEL_NAMES, "training": []}))
    assert class_names(path, 3) == ["background_other", "grey_matter", "white_matter"]
    assert class_names(str(path), 3) == ["background_other", "grey_matter", "white_matter"]


def test_column_safe() -> None:
    assert column_safe("  Left Ventricle (LV) ") == "left_ventricle_lv"
    assert column_safe("background/other") == "background_other"
    assert column_safe("T1--ce") == "t1_ce"
    assert column_safe("/?") == ""


def test_missing_labels_and_missing_entries() -> None:
    assert class_names({"training": []}, 3) == ["class_0", "class_1", "class_2"]
    assert class_names({"labels": {}}, 2) == ["class_0", "class_1"]
    assert class_names({"labels": {"0": "background", "2": "tumour"}}, 4) == [
        "background",
        "class_1",
        "tumour",
        "class_3",
    ]
    assert class_names({"labels": {"0": "background", "1": "***"}}, 2) == ["background", "class_1"]


def test_more_or_fewer_named_classes_than_num_classes() -> None:
    labels = {"labels": {"0": "background", "1": "liver", "2": "tumour"}}
    assert class_names(labels, 2) == ["background", "liver"]
    assert class_names(labels, 4) == ["background", "liver", "tumour", "class_3"]


def test_clashing_names_are_made_unique() -> None:
    labels = {"0": "background", "1": "Lesion", "2": "lesion!", "3": "lesion_2", "4": "class 5"}
    assert class_names({"labels": labels}, 6) == [
        "background",
        "lesion",
        "lesion_2",
        "lesion_2_3",
        "class_5",
        "class_5_5",
    ]


def test_dict_input_with_integer_keys() -> None:
    assert class_names({"labels": {0: "bg", 1: "Grey Matter"}}, 2) == ["bg", "grey_matter"]


def test_bad_input_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing.json"):
        class_names(tmp_path / "missing.json", 3)
    with pytest.raises(TypeError, match="label value -> name"):
        class_names({"labels": ["background", "liver"]}, 2)
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        class_names({}, 0)
