"""Margin-based label smoothing (MbLS): a hinge on logit distances."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.utils import LossReduction

from monai_nacl.losses._base import (
    SegmentationCrossEntropyLoss,
    SegmentationTarget,
    cross_entropy_map,
)

__all__ = ["MarginLabelSmoothingLoss"]


class MarginLabelSmoothingLoss(SegmentationCrossEntropyLoss):
    """Margin-based Label Smoothing (MbLS), Liu, Ben Ayed, Galdran, Dolz, CVPR 2022 (arXiv 2111.15430).

    .. math::
        L = \\mathrm{CE}(l, y) + \\alpha \\cdot \\frac{1}{BCN} \\sum_{b,k,v}
        \\max\\big(0, \\max_j l_{b,j,v} - l_{b,k,v} - m\\big)

    on raw logits: logit distances to the winning logit beyond the margin ``m`` are penalised linearly.
    Per voxel the penalty weighs ``alpha / C`` (the mean runs over classes too, as the authors' code).

    Args:
        margin: tolerated logit distance ``m`` (default 10.0; the authors' segmentation README uses 5).
        alpha: penalty weight (default 0.1).
        dice_weight, include_background, ignore_index, reduction, check_finite: see
            :class:`SegmentationCrossEntropyLoss`.

    Example:
        >>> loss = MarginLabelSmoothingLoss(margin=5.0)
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> loss(logits, torch.randint(0, 3, (2, 1, 8, 8))).backward()
    """

    def __init__(
        self,
        margin: float = 10.0,
        alpha: float = 0.1,
        dice_weight: float = 0.0,
        include_background: bool = True,
        ignore_index: int | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
        check_finite: bool = False,
    ) -> None:
        super().__init__(
            dice_weight=dice_weight,
            include_background=include_background,
            ignore_index=ignore_index,
            reduction=reduction,
            check_finite=check_finite,
        )
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}.")
        self.margin = float(margin)
        self.alpha = float(alpha)

    def voxel_loss(self, logits: torch.Tensor, target: SegmentationTarget, prior: torch.Tensor | None) -> torch.Tensor:
        """``CE_v + alpha / C * sum_k relu(max_j l_j - l_k - margin)``, shape ``(B, *spatial)``."""
        distance = logits.max(dim=1, keepdim=True).values - logits
        penalty = F.relu(distance - self.margin).sum(1)
        return cross_entropy_map(logits, target) + (self.alpha / logits.shape[1]) * penalty
