"""The bundle loss names (``--loss_name``) and the configured loss each stands for."""

from __future__ import annotations

import inspect
from typing import Any

from monai.losses import FocalLoss
from torch.nn.modules.loss import _Loss

from monai_nacl.losses._base import SegmentationCrossEntropyLoss
from monai_nacl.losses.calibration_error import MarginalL1ACELoss
from monai_nacl.losses.crac import AdaptiveNeighborAwareLoss
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
    # needs num_classes=... (the network's out_channels); the multipliers are learned by LagrangeMultiplierHandler
    "adaptive_nacl": (AdaptiveNeighborAwareLoss, {"kernel_size": 3, "margin": 5.0, "rho": 0.1}),
    "ml1ace": (
        MarginalL1ACELoss,
        {"num_bins": 20, "binning": "hard", "ce_weight": 0.33, "dice_weight": 0.33, "ace_weight": 0.33},
    ),
}
LOSS_NAMES: tuple[str, ...] = tuple(LOSS_DEFAULTS)


def create_calibration_loss(name: str, **kwargs: Any) -> _Loss:
    """A loss by its bundle name, with the papers' defaults, any of them overridden by ``kwargs``.

    Names: ``ce`` (cross-entropy), ``dice_ce`` (CE + Dice, background included), ``focal``
    (``monai.losses.FocalLoss(to_onehot_y=True, use_softmax=True, gamma=3.0)``; it needs a
    ``(B, 1, *spatial)`` label target and takes no mask or prior), ``ls``, ``ecp``, ``svls``, ``mbls``,
    ``nacl``, ``dice_nacl`` (NACL + Dice), ``adaptive_nacl`` (CRaC: margin 5, rho 0.1; needs ``num_classes``,
    the network's output channels) and ``ml1ace`` (Dice + CE + hard-binned marginal L1 ACE, 0.33 each).

    Args:
        name: one of :data:`LOSS_NAMES`.
        kwargs: constructor arguments replacing the defaults (e.g. ``alpha=0.2``, ``num_classes=3``).

    Raises:
        ValueError: for an unknown name, or when a loss needs an argument that has no default (``num_classes``
            of ``adaptive_nacl``).

    Example:
        >>> create_calibration_loss("nacl", alpha=0.2).alpha
        0.2
    """
    if name not in LOSS_DEFAULTS:
        raise ValueError(f"unknown loss name {name!r}; choose one of {list(LOSS_NAMES)}.")
    cls, defaults = LOSS_DEFAULTS[name]
    arguments = {**defaults, **kwargs}
    required = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in arguments
    ]
    if required:
        raise ValueError(
            f"loss {name!r} needs the argument(s) {required}, which have no default; pass them as keyword arguments "
            f"(num_classes is the network's out_channels, e.g. create_calibration_loss({name!r}, num_classes=3))."
        )
    return cls(**arguments)
