"""The bundle loss names (``--loss_name``) and the configured loss each stands for."""

from __future__ import annotations

from typing import Any

from monai.losses import FocalLoss
from torch.nn.modules.loss import _Loss

from monai_nacl.losses._base import SegmentationCrossEntropyLoss
from monai_nacl.losses.margin import MarginLabelSmoothingLoss
from monai_nacl.losses.neighborhood import NeighborAwareLoss, SpatialLabelSmoothingLoss
from monai_nacl.losses.smoothing import ConfidencePenaltyLoss, LabelSmoothingLoss

__all__ = ["LOSS_DEFAULTS", "LOSS_NAMES", "create_calibration_loss"]

# name -> (class, the papers' / authors' default arguments)
LOSS_DEFAULTS: dict[str, tuple[type[_Loss], dict[str, Any]]] = {
    "ce": (SegmentationCrossEntropyLoss, {}),
    "dice_ce": (SegmentationCrossEntropyLoss, {"dice_weight": 1.0, "include_background": True}),
    "focal": (FocalLoss, {"to_onehot_y": True, "use_softmax": True, "gamma": 3.0}),
    "ls": (LabelSmoothingLoss, {"alpha": 0.1}),
    "ecp": (ConfidencePenaltyLoss, {"alpha": 0.1}),
    "svls": (SpatialLabelSmoothingLoss, {"kernel_size": 3, "sigma": 1.0}),
    "mbls": (MarginLabelSmoothingLoss, {"margin": 10.0, "alpha": 0.1}),
    "nacl": (NeighborAwareLoss, {"kernel_size": 3, "kernel_ops": "mean", "distance_type": "l1", "alpha": 0.1}),
    "dice_nacl": (
        NeighborAwareLoss,
        {"kernel_size": 3, "kernel_ops": "mean", "distance_type": "l1", "alpha": 0.1, "dice_weight": 1.0},
    ),
}
LOSS_NAMES: tuple[str, ...] = tuple(LOSS_DEFAULTS)


def create_calibration_loss(name: str, **kwargs: Any) -> _Loss:
    """A loss by its bundle name, with the papers' defaults, any of them overridden by ``kwargs``.

    Names: ``ce`` (cross-entropy), ``dice_ce`` (CE + Dice, background included), ``focal``
    (``monai.losses.FocalLoss(to_onehot_y=True, use_softmax=True, gamma=3.0)``; it needs a
    ``(B, 1, *spatial)`` label target and takes no mask or prior), ``ls``, ``ecp``, ``svls``, ``mbls``,
    ``nacl`` and ``dice_nacl`` (NACL + Dice).

    Args:
        name: one of :data:`LOSS_NAMES`.
        kwargs: constructor arguments replacing the defaults (e.g. ``alpha=0.2``).

    Example:
        >>> create_calibration_loss("nacl", alpha=0.2).alpha
        0.2
    """
    if name not in LOSS_DEFAULTS:
        raise ValueError(f"unknown loss name {name!r}; choose one of {list(LOSS_NAMES)}.")
    cls, defaults = LOSS_DEFAULTS[name]
    return cls(**{**defaults, **kwargs})
