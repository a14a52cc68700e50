"""calibration.json round trips, and malformed files give errors naming the file, the key, the value and the fix."""

from __future__ import annotations

import json

import pytest
import torch

from monai_nacl.calibration import (
    CALIBRATION_FILE,
    WEIGHTS_FILE,
    LocalTemperatureScaling,
    TemperatureScaling,
    VectorScaling,
    load_calibration,
    save_calibration,
)


def test_round_trip_of_each_method(tmp_path):
    torch.manual_seed(0)
    lts = LocalTemperatureScaling(3, spatial_dims=2, image_channels=1, hidden_channels=4, initial_temperature=1.3)
    torch.nn.init.normal_(lts.net[-1].weight, std=0.3)
    z, image = torch.randn(1, 3, 7, 6), torch.randn(1, 1, 7, 6)
    for calibrator, args in (
        (TemperatureScaling(1.37), (z,)),
        (VectorScaling(3, [0.5, 1.0, 2.5]), (z,)),
        (lts, (z, image)),
    ):
        fit = {"nll_before": 0.5, "nll_after": 0.4, "voxels": 42}
        path = save_calibration(calibrator, tmp_path, fit, warning="worse ECE" if calibrator.method == "ts" else None)
        assert path == tmp_path / CALIBRATION_FILE
        assert (tmp_path / WEIGHTS_FILE).is_file() == (calibrator.method == "lts")
        loaded = load_calibration(tmp_path)
        assert loaded.method == calibrator.method and loaded.path == path
        assert loaded.record["fit"] == fit and loaded.record["parameters"] == calibrator.config()
        assert ("warning" in loaded.record) == (calibrator.method == "ts")
        torch.testing.assert_close(loaded.calibrator(*args), calibrator(*args))
    record = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert record["method"] == "lts" and record["weights"] == WEIGHTS_FILE
    save_calibration(TemperatureScaling(2.0), tmp_path)
    assert not (tmp_path / WEIGHTS_FILE).exists()  # no stale weights beside a ts calibration


def test_no_file_is_none(tmp_path):
    assert load_calibration(tmp_path) is None
    assert load_calibration(tmp_path / "absent") is None


def _write(folder, content) -> None:
    (folder / CALIBRATION_FILE).write_text(content if isinstance(content, str) else json.dumps(content))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"method": "ts", ', r"is not valid JSON \(.* line 1"),
        ([1, 2], r"'\(top level\)' must be a JSON object"),
        ({"parameters": {"temperature": 1.0}}, r"'method' is missing; it must be one of \['lts', 'ts', 'vector'\]"),
        ({"method": "platt", "parameters": {}}, r"'method' must be one of .*, got 'platt'"),
        ({"method": "ts"}, r"'parameters' must be an object of ts constructor arguments, got None"),
        ({"method": "ts", "parameters": {"temperature": -2.0}}, r"'parameters' are not valid for method 'ts' \(.*> 0"),
        ({"method": "ts", "parameters": {"T": 2.0}}, r"'parameters' are not valid .*unexpected keyword argument 'T'"),
        (
            {"method": "vector", "parameters": {"num_classes": 3, "temperatures": [1.0, 2.0]}},
            r"not valid for method 'vector' \(temperatures must hold num_classes=3",
        ),
        ({"method": "ts", "format_version": 7, "parameters": {}}, r"'format_version' must be 1 .*, got 7"),
        ({"method": "lts", "parameters": {"num_classes": 2}}, r"'weights' names .*calibration_weights.pt, which does"),
    ],
)
def test_malformed_file_errors_name_file_key_value_and_fix(tmp_path, content, expected):
    _write(tmp_path, content)
    with pytest.raises(ValueError, match=expected) as error:
        load_calibration(tmp_path)
    message = str(error.value)
    assert str(tmp_path / CALIBRATION_FILE) in message and "refit it" in message and "--calibration none" in message


def test_weights_of_another_architecture(tmp_path):
    save_calibration(LocalTemperatureScaling(2, spatial_dims=2, hidden_channels=4), tmp_path)
    record = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    record["parameters"]["hidden_channels"] = 8
    _write(tmp_path, record)
    with pytest.raises(ValueError, match=r"'weights' does not hold the weights of these parameters \(.*size mismatch"):
        load_calibration(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"'weights' does not hold the weights"):
        load_calibration(tmp_path)
