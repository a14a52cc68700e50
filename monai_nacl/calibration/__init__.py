"""Post-hoc calibration of a trained segmentation network: temperature, vector and local temperature scaling.

A calibrator divides the logits by a fitted temperature before the softmax. :func:`fit_and_save` fits one on
the validation split and writes ``calibration.json`` beside ``model.pt``; :class:`ApplyCalibrationd` applies it
in a bundle's evaluation or inference postprocessing. Bundle configs name them by dotted path
(``monai_nacl.calibration.fit_and_save``, ``monai_nacl.calibration.ApplyCalibrationd``).
"""

from __future__ import annotations

from monai_nacl.calibration.calibrators import (
    CALIBRATORS,
    Calibrator,
    LocalTemperatureScaling,
    TemperatureScaling,
    VectorScaling,
)
from monai_nacl.calibration.fitting import (
    REGIONS,
    CalibrationPatch,
    CalibrationSet,
    calibration_report,
    check_method,
    fit_calibrator,
    fit_local_temperature,
    fit_temperature,
    fit_vector_temperatures,
    flatten_voxels,
    sample_calibration_set,
    temperature_nll,
)
from monai_nacl.calibration.io import (
    CALIBRATION_FILE,
    WEIGHTS_FILE,
    LoadedCalibration,
    StaleCalibration,
    load_calibration,
    save_calibration,
)
from monai_nacl.calibration.transforms import ApplyCalibrationd
from monai_nacl.calibration.workflow import collect_logits, fit_and_save, load_weights, temperatures_at_bound

__all__ = [
    "CALIBRATION_FILE",
    "CALIBRATORS",
    "REGIONS",
    "WEIGHTS_FILE",
    "ApplyCalibrationd",
    "CalibrationPatch",
    "CalibrationSet",
    "Calibrator",
    "LoadedCalibration",
    "LocalTemperatureScaling",
    "StaleCalibration",
    "TemperatureScaling",
    "VectorScaling",
    "calibration_report",
    "check_method",
    "collect_logits",
    "fit_and_save",
    "fit_calibrator",
    "fit_local_temperature",
    "fit_temperature",
    "fit_vector_temperatures",
    "flatten_voxels",
    "load_calibration",
    "load_weights",
    "sample_calibration_set",
    "save_calibration",
    "temperature_nll",
    "temperatures_at_bound",
]
