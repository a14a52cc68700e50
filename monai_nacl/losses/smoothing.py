"""Target-independent regularisers of the predicted distribution: label smoothing and the confidence penalty."""

from __future__ import annotations

import torch
from monai.utils import LossReduction

from monai_nacl.losses._base import SegmentationCrossEntropyLoss, SegmentationTarget

__all__ = ["ConfidencePenaltyLoss", "LabelSmoothingLoss"]


def _check_alpha(alpha: float, upper: float | None = None) -> float:
    if not alpha >= 0 or (upper is not None and alpha > upper):
        bound = f"[0, {upper}]" if upper is not None else ">= 0"
        raise ValueError(f"alpha must be {bound}, got {alpha}.")
    return float(alpha)


def _negative_log_likelihood(log_probs: torch.Tensor, target: SegmentationTarget) -> torch.Tensor:
    if target.labels is not None:
        return -log_probs.gather(1, target.labels.unsqueeze(1)).squeeze(1)
    return -(log_probs * target.probs).sum(1)


class LabelSmoothingLoss(SegmentationCrossEntropyLoss):
    """Uniform label smoothing (LS), Szegedy et al., CVPR 2016 ("Rethinking the Inception architecture").

    .. math::
        \\ell_v = (1 - \\alpha)\\, \\big(-\\sum_c y_{v,c} \\log p_{v,c}\\big)
        + \\alpha \\cdot \\frac{1}{C} \\sum_k (-\\log p_{v,k}), \\qquad p = \\mathrm{softmax}(l)

    i.e. cross-entropy against ``(1 - alpha) y + alpha / C`` (PyTorch's ``label_smoothing=alpha``).

    Args:
        alpha: smoothing factor in ``[0, 1]`` (default 0.1).
        dice_weight, include_background, ignore_index, reduction, check_finite: see
            :class:`SegmentationCrossEntropyLoss`.

    Example:
        >>> loss = LabelSmoothingLoss(alpha=0.1)
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> loss(logits, torch.randint(0, 3, (2, 1, 8, 8))).backward()
    """

    def __init__(
        self,
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
        self.alpha = _check_alpha(alpha, upper=1.0)

    def voxel_loss(self, logits: torch.Tensor, target: SegmentationTarget, prior: torch.Tensor | None) -> torch.Tensor:
        """``(1 - alpha) NLL_v + alpha * mean_k(-log p_k)``, shape ``(B, *spatial)``."""
        log_probs = torch.log_softmax(logits, dim=1)
        nll = _negative_log_likelihood(log_probs, target)
        return (1.0 - self.alpha) * nll - self.alpha * log_probs.mean(1)


class ConfidencePenaltyLoss(SegmentationCrossEntropyLoss):
    """Entropy-based confidence penalty (ECP), Pereyra et al., ICLR workshop 2017 (arXiv 1701.06548).

    .. math::
        L = \\mathrm{CE}(l, y) - \\alpha \\cdot \\frac{1}{BCN} \\sum_{b,k,v} \\big(-\\hat p_{b,k,v}
        \\log \\hat p_{b,k,v}\\big), \\qquad \\hat p = \\mathrm{clamp}(\\mathrm{softmax}(l), 10^{-10}, 1 - 10^{-10})

    rewarding high-entropy (less confident) predictions. The mean runs over classes too, as in the
    calibration papers' code, so per voxel the entropy weighs ``alpha / C``.

    Args:
        alpha: weight of the entropy reward (default 0.1).
        dice_weight, include_background, ignore_index, reduction, check_finite: see
            :class:`SegmentationCrossEntropyLoss`.

    Example:
        >>> loss = ConfidencePenaltyLoss(alpha=0.1)
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> loss(logits, torch.randint(0, 3, (2, 1, 8, 8))).backward()
    """

    def __init__(
        self,
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
        self.alpha = _check_alpha(alpha)

    def voxel_loss(self, logits: torch.Tensor, target: SegmentationTarget, prior: torch.Tensor | None) -> torch.Tensor:
        """``CE_v - alpha / C * sum_k (-p_k log p_k)``, shape ``(B, *spatial)``."""
        log_probs = torch.log_softmax(logits, dim=1)
        probs = log_probs.exp().clamp(1e-10, 1.0 - 1e-10)
        entropy = -(probs * probs.log()).sum(1)
        return _negative_log_likelihood(log_probs, target) - (self.alpha / logits.shape[1]) * entropy
