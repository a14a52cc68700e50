"""Calibration metrics of segmentation: exact float64 histograms pooled over whole volumes and datasets.

MONAI's own ``monai.metrics.CalibrationErrorMetric`` (per image, one channel against the rest) stays usable
beside these; no name here shadows a MONAI name, and the vocabulary is MONAI's: ``ace`` is the average
calibration error (unweighted mean over non-empty bins), the adaptive (equal-mass) ECE is ``adaece``.
:func:`marginal_calibration_error` computes MONAI's quantity itself.

Channels: softmax probabilities by default (the C channels sum to 1); ``activation="sigmoid"`` (and any single
channel) reads each channel as a probability of its own, a binary problem ``p_c`` against ``y_c``, which is how
MONAI's ``CalibrationErrorMetric`` reads every input: MONAI's inputs give MONAI's values and shapes
(:data:`ACTIVATIONS`).

Classwise means (CECE, CACE, CMCE, CAdaECE) average over every class by default (``class_set="all"``, ours);
``class_set="up_to_max_label"`` averages over classes ``0..max(label)`` of the counted voxels, the NACL authors'
evaluation (:data:`CLASS_SETS`).

Without labels, :func:`soft_dice_confidence` estimates each case's Dice per class from its probabilities (the Soft
Dice Confidence, arXiv 2402.10665); :func:`dice_estimate_agreement` measures it against the true Dice.

Region: the functions count every voxel where ``mask`` is nonzero (all voxels without a mask);
:class:`SegmentationCalibrationMetric`, :func:`evaluate_segmentation` and the handler default to the
ground-truth foreground (``region="foreground"``, the NACL papers' protocol).
"""

from __future__ import annotations

from monai_nacl.metrics.cumulative import MARGINAL_NAMES, METRIC_NAMES, RegionNLLMetric, SegmentationCalibrationMetric
from monai_nacl.metrics.dice_estimate import dice_estimate_agreement, foreground_mean, soft_dice_confidence
from monai_nacl.metrics.evaluation import evaluate_segmentation
from monai_nacl.metrics.functional import (
    CLASS_SETS,
    adaptive_calibration_error,
    average_calibration_error,
    brier_score,
    calibration_values,
    classwise_calibration_error,
    expected_calibration_error,
    marginal_calibration_error,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability_from_statistics,
    reliability_statistics,
)
from monai_nacl.metrics.plots import (
    dataset_reliability_figure,
    dice_estimate_figure,
    plot_dataset_reliability,
    plot_dice_estimate,
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
from monai_nacl.metrics.statistics import (
    ACTIVATIONS,
    REGION_DESCRIPTIONS,
    CalibrationStatistics,
    calibration_statistics,
    marginal_statistics,
    region_mask,
)

__all__ = [
    "ACTIVATIONS",
    "CLASS_SETS",
    "MARGINAL_NAMES",
    "METRIC_NAMES",
    "REGION_DESCRIPTIONS",
    "CalibrationStatistics",
    "RegionNLLMetric",
    "SegmentationCalibrationMetric",
    "adaptive_calibration_error",
    "average_calibration_error",
    "brier_score",
    "calibration_statistics",
    "calibration_values",
    "classwise_calibration_error",
    "coarse_statistics",
    "concatenate_statistics",
    "dataset_reliability_figure",
    "dataset_reliability_histogram",
    "dice_estimate_agreement",
    "dice_estimate_figure",
    "evaluate_segmentation",
    "expected_calibration_error",
    "foreground_mean",
    "marginal_calibration_error",
    "marginal_statistics",
    "maximum_calibration_error",
    "negative_log_likelihood",
    "plot_dataset_reliability",
    "plot_dice_estimate",
    "plot_reliability_diagram",
    "region_mask",
    "reliability_figure",
    "reliability_from_statistics",
    "reliability_statistics",
    "soft_dice_confidence",
    "statistics_from_dict",
    "statistics_to_dict",
]
