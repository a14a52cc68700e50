"""ApplyCalibrationd with each method, with no file, and with `calibration none` / a required method."""

from __future__ import annotations

import logging

import pytest
import torch
from monai.data import MetaTensor

from monai_nacl.calibration import (
    ApplyCalibrationd,
    LocalTemperatureScaling,
    TemperatureScaling,
    VectorScaling,
    save_calibration,
)


def _item(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    affine = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0]))
    logits = MetaTensor(torch.randn(3, 5, 4, 6, generator=gen) * 4, affine=affine, meta={"filename_or_obj": "c.nii"})
    return {"pred": logits, "image": MetaTensor(torch.randn(1, 5, 4, 6, generator=gen), affine=affine)}


def test_temperature_and_vector(tmp_path):
    item = _item()
    save_calibration(TemperatureScaling(2.5), tmp_path)
    out = ApplyCalibrationd("pred", tmp_path)(item)
    torch.testing.assert_close(out["pred"].as_tensor(), item["pred"].as_tensor() / 2.5)
    assert isinstance(out["pred"], MetaTensor) and out["pred"].meta["filename_or_obj"] == "c.nii"
    torch.testing.assert_close(out["pred"].affine, item["pred"].affine)
    assert out["image"] is item["image"]

    save_calibration(VectorScaling(3, [0.5, 1.0, 4.0]), tmp_path)
    transform = ApplyCalibrationd("pred", tmp_path, method_override="vector")
    out = transform(item)
    expected = item["pred"].as_tensor() / torch.tensor([0.5, 1.0, 4.0]).view(3, 1, 1, 1)
    torch.testing.assert_close(out["pred"].as_tensor(), expected)
    assert transform.applied == {
        "method": "vector",
        "file": str(tmp_path / "calibration.json"),
        "parameters": {"num_classes": 3, "temperatures": [0.5, 1.0, 4.0]},
    }


def test_local_temperature_uses_the_image(tmp_path):
    torch.manual_seed(0)
    lts = LocalTemperatureScaling(3, spatial_dims=3, image_channels=1, hidden_channels=4)
    torch.nn.init.normal_(lts.net[-1].weight, std=0.5)
    save_calibration(lts, tmp_path)
    item = _item(1)
    out = ApplyCalibrationd("pred", tmp_path)(item)
    with torch.no_grad():
        expected = item["pred"].as_tensor() / lts.temperature(item["pred"].as_tensor()[None], item["image"][None])[0]
    torch.testing.assert_close(out["pred"].as_tensor(), expected)
    assert torch.equal(out["pred"].argmax(0), item["pred"].argmax(0))
    assert out["pred"].meta["filename_or_obj"] == "c.nii"
    with pytest.raises(ValueError, match="needs the image"):
        ApplyCalibrationd("pred", tmp_path, image_key="img")(item)


def test_no_file_and_turned_off_leave_the_logits(tmp_path, caplog):
    item = _item()
    with caplog.at_level(logging.INFO, logger="monai_nacl.calibration"):
        transform = ApplyCalibrationd("pred", tmp_path)
        out = transform(item)
        transform(item)
    assert out["pred"] is item["pred"] and transform.applied == {"method": "none"}
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("monai_nacl.calibration")]
    assert len(lines) == 1 and f"no {tmp_path / 'calibration.json'}" in lines[0] and "uncalibrated" in lines[0]

    save_calibration(TemperatureScaling(2.0), tmp_path)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="monai_nacl.calibration"):
        out = ApplyCalibrationd("pred", tmp_path, method_override="NONE")(item)  # any case
    assert out["pred"] is item["pred"] and "turned off" in caplog.records[0].getMessage()


def test_required_method_and_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"calibration 'ts' was requested but .*calibration.json does not exist"):
        ApplyCalibrationd("pred", tmp_path, method_override="ts")(_item())
    save_calibration(TemperatureScaling(2.0), tmp_path)
    with pytest.raises(ValueError, match=r"'lts' was requested but .* holds method 'ts'.*--calibration auto"):
        ApplyCalibrationd("pred", tmp_path, method_override="lts")(_item())
    with pytest.raises(ValueError, match=r"method_override .* must be one of .*got 'platt'"):
        ApplyCalibrationd("pred", tmp_path, method_override="Platt")
    save_calibration(VectorScaling(2), tmp_path)
    with pytest.raises(ValueError, match="3 channels .* fitted for 2 classes"):
        ApplyCalibrationd("pred", tmp_path)(_item())
