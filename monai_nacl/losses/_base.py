"""Shared machinery of the calibration losses: target handling, voxel masks, reduction and the Dice term.

Every loss of the family is "a per-voxel loss map plus an optional soft Dice term". The map is what a
subclass defines (:meth:`SegmentationCrossEntropyLoss.voxel_loss`); everything else (checking and
normalising the target, excluding voxels, reducing, adding Dice) lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_nacl.utils import plain_tensor

__all__ = ["SegmentationCrossEntropyLoss", "SegmentationTarget", "prepare_target"]


@dataclass
class SegmentationTarget:
    """A checked target in one of two forms, with the voxels that take part in the loss.

    Attributes:
        num_classes: number of classes ``C`` (channels of the logits).
        labels: ``(B, *spatial)`` int64 class indices, or ``None`` for soft targets. Excluded voxels
            (``ignore_index``) hold 0 here so that indexing stays valid; ``valid`` says they do not count.
        probs: ``(B, C, *spatial)`` float32 one-hot or soft target, or ``None`` for label targets.
        valid: ``(B, *spatial)`` bool, ``True`` where a voxel contributes; ``None`` means every voxel.
        labelled: ``(B, *spatial)`` bool, ``False`` where the label is unknown (``ignore_index``); ``None``
            means every voxel has a label. Unknown labels also add nothing to neighbourhood priors.
    """

    num_classes: int
    labels: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    labelled: torch.Tensor | None = None

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple((self.labels if self.labels is not None else self.probs[:, 0]).shape[1:])

    def one_hot(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``(B, C, *spatial)`` target distribution; voxels with unknown labels are all-zero rows.

        ``dtype`` applies to label targets (an integer dtype gives exact one-hot counts); soft targets are
        returned as they are (float32).
        """
        if self.probs is not None:
            return self.probs
        assert self.labels is not None
        out = torch.zeros(
            (self.labels.shape[0], self.num_classes, *self.labels.shape[1:]), dtype=dtype, device=self.labels.device
        )
        out.scatter_(1, self.labels.unsqueeze(1), 1)
        if self.labelled is not None:
            out.mul_(self.labelled.unsqueeze(1))
        return out


def _check_logits(input: torch.Tensor, check_finite: bool) -> torch.Tensor:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor of logits (B, C, *spatial), got {type(input).__name__}.")
    input = plain_tensor(input)
    if input.ndim < 3:
        raise ValueError(
            f"input must be raw logits shaped (B, C, *spatial) with at least one spatial axis, got shape "
            f"{tuple(input.shape)}; add the missing axes (e.g. input[..., None])."
        )
    if input.shape[1] < 2:
        raise ValueError(
            f"input has {input.shape[1]} channel(s) (shape {tuple(input.shape)}); these softmax losses need one "
            "logit channel per class, background included (C >= 2)."
        )
    if not input.is_floating_point():
        raise ValueError(f"input must hold floating-point logits, got dtype {input.dtype}.")
    if check_finite and not bool(torch.isfinite(input).all()):
        raise ValueError(
            f"input (shape {tuple(input.shape)}) holds NaN or infinite logits; check the network output or the "
            "learning rate (or pass check_finite=False to skip this check)."
        )
    return input.float()


def _as_voxel_map(x: torch.Tensor, input_shape: torch.Size, what: str) -> torch.Tensor:
    """Accept ``(B, *spatial)`` or ``(B, 1, *spatial)``; return ``(B, *spatial)``."""
    batch_spatial = (input_shape[0], *input_shape[2:])
    if tuple(x.shape) == batch_spatial:
        return x
    if tuple(x.shape) == (input_shape[0], 1, *input_shape[2:]):
        return x[:, 0]
    raise ValueError(
        f"{what} shape {tuple(x.shape)} does not match input shape {tuple(input_shape)}: expected "
        f"{(input_shape[0], 1, *input_shape[2:])} or {batch_spatial}"
        + (f" (labels), or {tuple(input_shape)} (one-hot / soft target)." if what == "target" else ".")
    )


def prepare_target(
    target: torch.Tensor,
    input_shape: torch.Size,
    ignore_index: int | None = None,
    mask: torch.Tensor | None = None,
) -> SegmentationTarget:
    """Check a target against the logits' shape and bring it to a :class:`SegmentationTarget`.

    Args:
        target: integer labels ``(B, 1, *spatial)`` or ``(B, *spatial)`` (integer dtype, or float holding
            whole numbers, as MONAI pipelines produce), or a one-hot / soft target ``(B, C, *spatial)``
            with values in ``[0, 1]``.
        input_shape: shape of the logits ``(B, C, *spatial)``.
        ignore_index: label value whose voxels are excluded (label targets only; may lie outside ``[0, C)``).
        mask: optional ``(B, 1, *spatial)`` or ``(B, *spatial)``; nonzero voxels are included.

    Raises:
        ValueError: on a shape mismatch, non-integer labels, labels outside ``[0, C)``, or soft targets
            outside ``[0, 1]``.
    """
    num_classes = input_shape[1]
    if not isinstance(target, torch.Tensor):
        target = torch.as_tensor(target)
    valid = None
    if mask is not None:
        valid = _as_voxel_map(torch.as_tensor(mask, device=target.device), input_shape, "mask") != 0

    if tuple(target.shape) == tuple(input_shape) and num_classes > 1:
        probs = target.float()
        if probs.numel() and not bool(((probs >= 0) & (probs <= 1)).all()):
            raise ValueError(
                f"one-hot / soft target (shape {tuple(target.shape)}) must hold values in [0, 1], got range "
                f"[{probs.min().item():g}, {probs.max().item():g}]; pass integer labels (B, 1, *spatial) instead."
            )
        return SegmentationTarget(num_classes=num_classes, probs=probs, valid=valid)

    labels = _as_voxel_map(target, input_shape, "target")
    if labels.is_floating_point():
        if labels.numel() and not bool((labels == labels.round()).all()):
            raise ValueError(
                f"target (shape {tuple(target.shape)}) is a label map but holds non-integer values; pass class "
                f"indices in [0, {num_classes}), or a one-hot / soft target shaped {tuple(input_shape)}."
            )
    elif labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"target dtype {labels.dtype} is not a label map; pass integer class indices.")
    labels = labels.long()

    labelled = None
    if ignore_index is not None:
        labelled = labels != ignore_index
        labels = labels.masked_fill(~labelled, 0)
        valid = labelled if valid is None else valid & labelled
    if labels.numel():
        low, high = torch.aminmax(labels)
        if low.item() < 0 or high.item() >= num_classes:
            raise ValueError(
                f"target labels must lie in [0, {num_classes}) for logits of shape {tuple(input_shape)}, got values "
                f"in [{low.item()}, {high.item()}]"
                + (f" (besides ignore_index={ignore_index})" if ignore_index is not None else "")
                + "; check num_classes / out_channels or set ignore_index for the unlabelled value."
            )
    return SegmentationTarget(num_classes=num_classes, labels=labels, valid=valid, labelled=labelled)


def cross_entropy_map(logits: torch.Tensor, target: SegmentationTarget) -> torch.Tensor:
    """Per-voxel cross-entropy ``-sum_c y_c log softmax(l)_c``, shape ``(B, *spatial)``."""
    if target.labels is not None:
        return F.cross_entropy(logits, target.labels, reduction="none")
    return F.cross_entropy(logits, target.probs, reduction="none")


def soft_dice_per_image(
    logits: torch.Tensor,
    target: SegmentationTarget,
    include_background: bool = True,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
) -> torch.Tensor:
    """MONAI ``DiceLoss(softmax=True, to_onehot_y=True)`` per image and class, shape ``(B, C')``.

    ``1 - (2 sum p*y + smooth_nr) / (sum p + sum y + smooth_dr)`` over the valid voxels of each image.
    """
    probs = torch.softmax(logits, dim=1)
    onehot = target.one_hot()
    if not include_background:
        probs, onehot = probs[:, 1:], onehot[:, 1:]
    if target.valid is not None:
        weight = target.valid.unsqueeze(1).to(probs.dtype)
        probs, onehot = probs * weight, onehot * weight
    axes = tuple(range(2, probs.ndim))
    intersection = (probs * onehot).sum(axes)
    denominator = probs.sum(axes) + onehot.sum(axes)
    return 1.0 - (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)


class SegmentationCrossEntropyLoss(_Loss):
    """Cross-entropy for segmentation, the base of the calibration-loss family, with an optional soft Dice term.

    .. math::
        L = \\frac{1}{|V|} \\sum_{v \\in V} \\ell_v + w_{dice} \\cdot \\mathrm{Dice}, \\qquad
        \\ell_v = -\\sum_c y_{v,c} \\log \\mathrm{softmax}(l_v)_c

    where ``V`` is the set of included voxels (all voxels minus ``ignore_index`` and ``mask == 0``) and
    Dice is MONAI's ``DiceLoss(softmax=True, to_onehot_y=True)`` over the included voxels, averaged over
    images and classes. With ``dice_weight=1`` this is MONAI's ``DiceCELoss``. Subclasses change the
    per-voxel term ``ell_v`` by overriding :meth:`voxel_loss`; targets, masks, reduction and Dice stay here.

    The loss is computed in float32 whatever the logits' dtype (safe under fp16/bf16 autocast).

    Args:
        dice_weight: weight of the soft Dice term; ``0.0`` (default) leaves it out.
        include_background: include channel 0 in the Dice term (as MONAI's ``DiceLoss``; default ``True``).
            Has no effect on the cross-entropy and penalty terms.
        ignore_index: label value whose voxels contribute to no term (label targets only). Default ``None``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``:

            - ``"mean"``: sum of ``ell_v`` over included voxels divided by their number (0 when none is
              included), plus ``dice_weight`` times the mean Dice loss over images and classes.
            - ``"sum"``: sum of ``ell_v`` over included voxels plus ``dice_weight`` times the sum of the Dice
              losses over images and classes.
            - ``"none"``: the per-voxel map ``(B, 1, *spatial)`` of ``ell_v + dice_weight * D_b``, where ``D_b``
              is image ``b``'s Dice loss averaged over classes (Dice is per image, so its value is spread
              evenly over that image's voxels); excluded voxels hold 0. When no voxel is excluded its mean
              equals the ``"mean"`` result.
        check_finite: raise ``ValueError`` on NaN/inf logits (one extra pass over the input; default ``False``).

    Example:
        >>> import torch
        >>> loss = SegmentationCrossEntropyLoss(dice_weight=1.0)
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> labels = torch.randint(0, 3, (2, 1, 8, 8))
        >>> loss(logits, labels).backward()
    """

    def __init__(
        self,
        dice_weight: float = 0.0,
        include_background: bool = True,
        ignore_index: int | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
        check_finite: bool = False,
    ) -> None:
        try:
            reduction = LossReduction(reduction).value
        except ValueError:
            raise ValueError(
                f"reduction must be one of {[r.value for r in LossReduction]}, got {reduction!r}."
            ) from None
        super().__init__(reduction=reduction)
        if dice_weight < 0:
            raise ValueError(f"dice_weight must be >= 0, got {dice_weight}.")
        self.dice_weight = float(dice_weight)
        self.include_background = include_background
        self.ignore_index = ignore_index
        self.check_finite = check_finite

    def voxel_loss(self, logits: torch.Tensor, target: SegmentationTarget, prior: torch.Tensor | None) -> torch.Tensor:
        """Per-voxel loss ``ell_v`` (without Dice), shape ``(B, *spatial)``, from float32 logits ``(B, C, *spatial)``.

        ``prior`` is a precomputed neighbourhood prior where the loss uses one (ignored here).
        """
        return cross_entropy_map(logits, target)

    def image_terms(self, logits: torch.Tensor, target: SegmentationTarget) -> list[tuple[float, torch.Tensor]]:
        """Terms defined per image and class, as ``(weight, (B, C') losses)``, added to the voxel term by ``forward``.

        Here the soft Dice term (when ``dice_weight > 0``); subclasses may add their own (e.g. a calibration error).
        """
        if self.dice_weight > 0:
            return [(self.dice_weight, soft_dice_per_image(logits, target, self.include_background))]
        return []

    def prepare_inputs(
        self,
        input: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        prior: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, SegmentationTarget, torch.Tensor | None]:
        """Check ``forward``'s arguments and bring them to one form: ``(logits, target, prior)``.

        ``logits`` float32 ``(B, C, *spatial)``; ``target`` a :class:`SegmentationTarget` on the logits' device with
        ``ignore_index`` and ``mask`` folded into its ``valid`` voxels; ``prior`` float32 ``(B, C, *spatial)`` or
        ``None``. MetaTensor metadata is dropped. Every method that reads a batch the way ``forward`` does (e.g.
        CRaC's ``constraint_statistics``) starts here, so they accept and reject the same inputs.
        """
        logits = _check_logits(input, self.check_finite)
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}.")
        if mask is not None:
            mask = plain_tensor(mask).to(logits.device)
        tgt = prepare_target(plain_tensor(target).to(logits.device), logits.shape, self.ignore_index, mask)
        if prior is not None and tuple(prior.shape) != tuple(logits.shape):
            raise ValueError(
                f"prior shape {tuple(prior.shape)} does not match input shape {tuple(logits.shape)}; a prior holds "
                "one channel per class, (B, C, *spatial)."
            )
        if prior is not None:
            prior = plain_tensor(prior).to(logits.device, torch.float32)
        return logits, tgt, prior

    def forward(
        self,
        input: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        prior: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            input: raw logits ``(B, C, *spatial)``, 1 to 3 spatial axes, any float dtype.
            target: labels ``(B, 1, *spatial)`` / ``(B, *spatial)``, or one-hot / soft ``(B, C, *spatial)``.
            mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``; voxels where it is 0 contribute to no term.
            prior: optional precomputed neighbourhood prior ``(B, C, *spatial)`` (e.g. from
                :class:`monai_nacl.transforms.NeighborhoodPriord`), used by the losses that need one and
                ignored by the others, so one data pipeline can feed every loss.

        Returns:
            a float32 scalar for ``"mean"``/``"sum"``, a ``(B, 1, *spatial)`` map for ``"none"``.

        Raises:
            ValueError: on mismatched shapes, labels outside ``[0, C)``, non-integer labels, or (with
                ``check_finite``) non-finite logits.
        """
        logits, tgt, prior = self.prepare_inputs(input, target, mask, prior)
        voxel = self.voxel_loss(logits, tgt, prior)
        weight = None if tgt.valid is None else tgt.valid.to(voxel.dtype)
        if tgt.valid is not None:  # where, not a product: an excluded voxel's inf/NaN must not leak in
            voxel = torch.where(tgt.valid, voxel, 0.0)

        terms = self.image_terms(logits, tgt)

        if self.reduction == LossReduction.NONE.value:
            for term_weight, term in terms:
                per_image = term.mean(1).view(-1, *([1] * (voxel.ndim - 1)))
                voxel = voxel + term_weight * (per_image if weight is None else per_image * weight)
            return voxel.unsqueeze(1)
        if self.reduction == LossReduction.SUM.value:
            total = voxel.sum()
            for term_weight, term in terms:
                total = total + term_weight * term.sum()
            return total
        count = voxel.numel() if weight is None else weight.sum().clamp_min(1.0)
        total = voxel.sum() / count
        for term_weight, term in terms:
            total = total + term_weight * term.mean()
        return total
