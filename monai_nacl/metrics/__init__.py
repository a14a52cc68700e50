"""Calibration metrics of segmentation: exact float64 histograms pooled over whole volumes and datasets.

MONAI's own ``monai.metrics.CalibrationErrorMetric`` (per image, one channel against the rest) stays usable
beside these; no name here shadows a MONAI name.
"""

from __future__ import annotations

from monai_nacl.metrics.cumulative import METRIC_NAMES, SegmentationCalibrationMetric
from monai_nacl.metrics.evaluation import evaluate_segmentation
from monai_nacl.metrics.functional import (
    adaptive_calibration_error,
    brier_score,
    calibration_values,
    classwise_calibration_error,
    expected_calibration_error,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability_from_statistics,
    reliability_statistics,
)
from monai_nacl.metrics.plots import (
    dataset_reliability_figure,
    plot_dataset_reliability,
    plot_reliability_diagram,
    reliability_figure,
)
from monai_nacl.metrics.reliability import (
    coarse_statistics,
    concatenate_statistics,
    dataset_reliability_histogram,
    statistics_from_dict,
    statistics_to_dict,
)
from monai_nacl.metrics.statistics import CalibrationStatistics, calibration_statistics, region_mask

__all__ = [
    "METRIC_NAMES",
    "CalibrationStatistics",
    "SegmentationCalibrationMetric",
    "adaptive_calibration_error",
    "brier_score",
    "calibration_statistics",
    "calibration_values",
    "classwise_calibration_error",
    "coarse_statistics",
    "concatenate_statistics",
    "dataset_reliability_figure",
    "dataset_reliability_histogram",
    "evaluate_segmentation",
    "expected_calibration_error",
    "maximum_calibration_error",
    "negative_log_likelihood",
    "plot_dataset_reliability",
    "plot_reliability_diagram",
    "region_mask",
    "reliability_figure",
    "reliability_from_statistics",
    "reliability_statistics",
    "statistics_from_dict",
    "statistics_to_dict",
]
