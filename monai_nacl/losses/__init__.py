"""Calibration losses for segmentation: NACL, CRaC, mL1-ACE and the baselines, as MONAI-style losses.

All take raw logits ``(B, C, *spatial)`` and integer labels ``(B, 1, *spatial)`` / ``(B, *spatial)`` or
one-hot / soft targets ``(B, C, *spatial)``, and share ``dice_weight``, ``include_background``,
``ignore_index``, ``reduction`` and ``forward(input, target, mask=None, prior=None)``.
Focal loss is MONAI's ``FocalLoss`` (see :func:`create_calibration_loss`).
"""

from __future__ import annotations

from monai_nacl.losses._base import SegmentationCrossEntropyLoss
from monai_nacl.losses.calibration_error import MarginalL1ACELoss
from monai_nacl.losses.crac import AdaptiveNeighborAwareLoss
from monai_nacl.losses.factory import LOSS_DEFAULTS, LOSS_NAMES, create_calibration_loss
from monai_nacl.losses.margin import MarginLabelSmoothingLoss
from monai_nacl.losses.neighborhood import (
    NeighborAwareLoss,
    SpatialLabelSmoothingLoss,
    neighborhood_prior,
    svls_kernel,
)
from monai_nacl.losses.smoothing import ConfidencePenaltyLoss, LabelSmoothingLoss

__all__ = [
    "LOSS_DEFAULTS",
    "LOSS_NAMES",
    "AdaptiveNeighborAwareLoss",
    "ConfidencePenaltyLoss",
    "LabelSmoothingLoss",
    "MarginLabelSmoothingLoss",
    "MarginalL1ACELoss",
    "NeighborAwareLoss",
    "SegmentationCrossEntropyLoss",
    "SpatialLabelSmoothingLoss",
    "create_calibration_loss",
    "neighborhood_prior",
    "svls_kernel",
]
