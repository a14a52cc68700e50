"""What a training says about its data follows the lists it trains on (monai_nacl.bundle.training_data), whether
they come from the datalist or are handed in through train#dataset#data / validate#dataset#data (MONAI Label)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monai_nacl.bundle import DataCheckFailed
from monai_nacl.bundle.startup import require_valid_data
from monai_nacl.bundle.training_data import (
    data_class_names,
    data_source,
    datalist_section,
    describe_source,
    handed_in,
)


@pytest.fixture
def datalist(tmp_path: Path) -> Path:
    from monai_nacl.data import make_synthetic_dataset

    path = Path(make_synthetic_dataset(tmp_path / "data", num_cases=6, size=16))
    content = json.loads(path.read_text())
    path.write_text(json.dumps({**content, "labels": {"0": "background", "1": "grey matter", "2": "white matter"}}))
    return path


def test_sections_of_one_datalist(datalist: Path) -> None:
    training, validation = datalist_section(datalist, "training"), datalist_section(datalist, "validation")
    assert len(training) == 4 and Path(training[0]["image"]).is_absolute() and not handed_in(training, validation)
    assert data_source(training, validation) == str(datalist)
    assert describe_source(training, validation) == str(datalist)
    assert data_class_names(training, validation, 3) == ["background", "grey_matter", "white_matter"]
    require_valid_data(training, validation, 3)
    with pytest.raises(DataCheckFailed, match=f"the data check of {datalist}"):
        require_valid_data(training, validation, 4)


def test_lists_handed_in(datalist: Path, tmp_path: Path) -> None:
    """MONAI Label's lists: checked as they are, recorded case by case, named by the bundle's metadata.json."""
    training = [dict(c) for c in datalist_section(datalist, "training")]
    validation = datalist_section(datalist, "validation")
    assert handed_in(training) and handed_in(training, validation)
    assert data_source(training, validation) == {"training": training, "validation": str(datalist)}
    assert describe_source(training, validation) == (
        f"training: 4 cases handed in (train#dataset#data); validation: {datalist}"
    )
    plain = list(validation)
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    channel_def = {"0": "background", "1": "liver", "2": "spleen"}
    meta = {"network_data_format": {"outputs": {"pred": {"channel_def": channel_def}}}}
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta))
    assert data_class_names(training, plain, 3, bundle) == ["background", "liver", "spleen"]
    assert data_class_names(training, plain, 4, bundle) == ["background", "liver", "spleen", "class_3"]
    assert data_class_names(training, plain, 3) == ["class_0", "class_1", "class_2"]
    require_valid_data(training, plain, 3)
    broken = [*training, {"image": str(tmp_path / "missing.nii.gz"), "label": training[0]["label"]}]
    with pytest.raises(DataCheckFailed, match="handed in through train#dataset#data") as error:
        require_valid_data(broken, plain, 3)
    assert "missing.nii.gz" in str(error.value)
