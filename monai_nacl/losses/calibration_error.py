"""Marginal L1 average calibration error (mL1-ACE) as a differentiable training loss.

Per image and class, the class probability ``p_c`` of every voxel is binned into equal-width bins on ``[0, 1]``;
the loss is the mean over the non-empty bins of ``|mean p_c - mean 1[y = c]|`` (MONAI's "average calibration
error" of that image and class), averaged over images and classes. The bin statistics of all images and
classes come from scatter-adds over one flat (image, class, bin) key per element; the gradient runs through the
per-bin means (hard binning) and also through the bin weights (soft binning).
"""

from __future__ import annotations

import torch
from monai.utils import LossReduction

from monai_nacl.losses._base import SegmentationCrossEntropyLoss, SegmentationTarget, cross_entropy_map

__all__ = ["BINNING_MODES", "MarginalL1ACELoss"]

BINNING_MODES = ("hard", "soft")


class _MarginalL1ACE(torch.autograd.Function):
    """``(B, C')`` L1 average calibration error of ``softmax(logits)`` per image and class, with a hand-written backward.

    ``labels`` ``(B, 1, N)`` or ``onehot`` ``(B, C, N)`` is the target; ``valid`` ``(B, 1, N)`` bool or ``None``.
    Each element gets one flat key (image, class, node): its bin (hard), or (soft) its node ``t = floor(p M + 0.5)``,
    from which it splits between bins ``t - 1`` (weight ``1 - frac``) and ``t`` (weight ``frac = p M + 0.5 - t``),
    both clamped to ``[0, M - 1]``. The node sums of ``1, p, y`` (and, soft, of ``frac``, ``frac p``, ``frac y``)
    are scatter-adds (float32 per chunk of voxels, added in float64); soft node sums are then folded into bins. Excluded voxels go to one extra "discard"
    key that is never read. Pairs that are inactive (class absent with ``ignore_empty_classes``, or the background
    when it is left out) have value and gradient 0.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        logits: torch.Tensor,
        labels: torch.Tensor | None,
        onehot: torch.Tensor | None,
        valid: torch.Tensor | None,
        num_bins: int,
        soft: bool,
        min_bin_weight: float,
        ignore_empty_classes: bool,
        first_channel: int,
    ) -> torch.Tensor:
        batch, channels = logits.shape[:2]
        device = logits.device
        probs = torch.softmax(logits, dim=1).reshape(batch, channels, -1)
        nodes = num_bins + 1 if soft else num_bins
        discard = batch * channels * nodes
        scaled = torch.mul(probs, num_bins)
        if soft:
            node = scaled.add_(0.5).floor()
            frac = scaled.sub_(node)
        else:
            node = scaled.ceil_().clamp_min_(1).sub_(1)  # (lower, upper] bins, p = 0 in the first
            frac = None
        base = torch.arange(batch * channels, dtype=torch.int32, device=device).view(batch, channels, 1) * nodes
        key = node.to(torch.int32).add_(base)
        del node, scaled
        if valid is not None:
            key.masked_fill_(~valid, discard)

        # float32 scatter-adds into one cell per (key, chunk of CHUNK voxels), summed over the chunks in float64:
        # each float32 cell adds at most CHUNK values (counts stay exact), and the single-threaded scatter-add
        # moves half the bytes of a float64 one, with no float64 copy of every element
        chunks = -(-probs.shape[-1] // _CHUNK)
        ckey = key if chunks == 1 else key * chunks + _chunk_index(probs.shape[-1], device)
        flat = ckey.view(-1)
        rows = 6 if soft else 3
        sums = torch.zeros((rows, (discard + 1) * chunks), dtype=torch.float32, device=device)
        ones = torch.ones((), dtype=torch.float32, device=device).expand(flat.numel())
        sums[0].index_add_(0, flat, ones)
        sums[1].index_add_(0, flat, probs.reshape(-1))
        label_key = None
        if labels is not None:  # the true class of each voxel: its key in that class's channel
            label_key = ckey.gather(1, labels).view(-1)
            sums[2].index_add_(0, label_key, ones[: label_key.numel()])
        else:
            sums[2].index_add_(0, flat, onehot.reshape(-1).float())
        if soft:
            sums[3].index_add_(0, flat, frac.reshape(-1))
            if label_key is not None:
                sums[5].index_add_(0, label_key, frac.gather(1, labels).reshape(-1))
            else:
                sums[5].index_add_(0, flat, (frac * onehot).reshape(-1).float())
            sums[4].index_add_(0, flat, torch.mul(frac, probs).view(-1))
        del ckey, flat
        sums = sums.view(rows, discard + 1, chunks).sum(-1, dtype=torch.float64)
        table = sums[:, :discard].view(-1, batch, channels, nodes)
        if soft:
            lower, upper = _node_bins(num_bins, device)

            def fold(total: torch.Tensor, upper_part: torch.Tensor) -> torch.Tensor:
                out = total.new_zeros((batch, channels, num_bins))
                return out.index_add_(2, lower, total - upper_part).index_add_(2, upper, upper_part)

            count, sum_p, sum_y = fold(table[0], table[3]), fold(table[1], table[4]), fold(table[2], table[5])
        else:
            count, sum_p, sum_y = table

        filled = count >= min_bin_weight
        safe = count.clamp_min(torch.finfo(count.dtype).tiny)
        gap = torch.where(filled, (sum_p - sum_y) / safe, 0.0)
        num_filled = filled.sum(-1, keepdim=True).clamp_min(1)
        value = gap.abs().sum(-1) / num_filled[..., 0]
        active = torch.ones((batch, channels), dtype=torch.bool, device=device)
        active[:, :first_channel] = False
        if ignore_empty_classes:
            active &= sum_y.sum(-1) > 0
        value = torch.where(active, value, 0.0)

        # d value / d sum_p = sign(gap) / (K n) = -d value / d sum_y; d value / d n = -|gap| / (K n)
        scale = torch.where(filled & active.unsqueeze(-1), 1.0 / (num_filled * safe), 0.0)
        ctx.num_bins, ctx.soft, ctx.first_channel, ctx.logits_shape = num_bins, soft, first_channel, logits.shape
        ctx.save_for_backward(probs, key, frac, labels, onehot, gap.sign() * scale, -gap.abs() * scale)
        return value[:, first_channel:].float()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        probs, key, frac, labels, onehot, d_mean, d_count = ctx.saved_tensors
        batch, channels, _ = probs.shape
        num_bins = ctx.num_bins
        upstream = grad_out.new_zeros((batch, channels, 1), dtype=torch.float64)
        upstream[:, ctx.first_channel :, 0] = grad_out.double()
        d_mean, d_count = d_mean * upstream, d_count * upstream

        def per_key(x: torch.Tensor) -> torch.Tensor:  # (B, C, nodes) coefficient at each element's key
            flat = torch.cat([x.float().flatten(), x.new_zeros(1, dtype=torch.float32)])
            return flat.index_select(0, key.view(-1)).view_as(probs)

        if not ctx.soft:
            grad_p = per_key(d_mean)
        else:
            # d value / d p = a_lo (1 - frac) + a_hi frac + M (b_hi - b_lo + (a_hi - a_lo) (p - y)), a = d_mean and
            # b = d_count of the element's two bins; = E + D (frac + M p) - M D y with node tables D and E
            lower, upper = _node_bins(num_bins, probs.device)
            a_lo, a_hi = d_mean.index_select(2, lower), d_mean.index_select(2, upper)
            slope = a_hi - a_lo
            offset = a_lo + num_bins * (d_count.index_select(2, upper) - d_count.index_select(2, lower))
            slope_at = per_key(slope)
            grad_p = torch.add(frac, probs, alpha=num_bins).mul_(slope_at).add_(per_key(offset))
            if labels is not None:
                grad_p.scatter_add_(1, labels, slope_at.gather(1, labels).mul_(-num_bins))
            else:
                grad_p.addcmul_(slope_at, onehot, value=-num_bins)
        # softmax backward: p * (g - sum_c p_c g_c)
        grad_p.sub_(torch.linalg.vecdot(probs, grad_p, dim=1).unsqueeze(1)).mul_(probs)
        return (grad_p.view(ctx.logits_shape), *([None] * 8))


_CHUNK = 1 << 16
"""Voxels per float32 partial sum of the bin statistics (see :meth:`_MarginalL1ACE.forward`)."""


def _chunk_index(num_voxels: int, device: torch.device) -> torch.Tensor:
    """``(1, 1, num_voxels)`` int32: each voxel's chunk of :data:`_CHUNK` voxels."""
    return torch.arange(num_voxels, dtype=torch.int32, device=device).div_(_CHUNK, rounding_mode="floor").view(1, 1, -1)


def _node_bins(num_bins: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Bins that soft node ``t`` (``0..M``) splits between: ``clamp(t - 1)`` and ``clamp(t)`` in ``[0, M - 1]``."""
    nodes = torch.arange(num_bins + 1, device=device)
    return (nodes - 1).clamp(0, num_bins - 1), nodes.clamp(0, num_bins - 1)


class MarginalL1ACELoss(SegmentationCrossEntropyLoss):
    """Marginal L1 average calibration error loss (mL1-ACE), with optional cross-entropy and Dice terms.

    Barfoot et al. "Average Calibration Error: A Differentiable Loss for Improved Reliability in Image
    Segmentation", MICCAI 2024, and "Average Calibration Losses for Reliable Uncertainty in Medical Image
    Segmentation" (arXiv 2506.03942); authors' code github cai4cai/Average-Calibration-Losses.

    .. math::
        L = w_{ce}\\, \\mathrm{CE} + w_{dice}\\, \\mathrm{Dice} + w_{ace} \\frac{1}{BC} \\sum_{b,c} \\mathrm{ACE}_{b,c},
        \\qquad \\mathrm{ACE}_{b,c} = \\frac{1}{|M_{b,c}|} \\sum_{m \\in M_{b,c}}
        \\left| \\frac{\\sum_v w_{m}(p_{b,c,v})\\, p_{b,c,v}}{n_{b,c,m}} -
        \\frac{\\sum_v w_{m}(p_{b,c,v})\\, y_{b,c,v}}{n_{b,c,m}} \\right|

    with ``p = softmax(l)``, ``y`` the one-hot (or soft) target, ``n_{b,c,m} = sum_v w_m(p_{b,c,v})`` the (soft)
    voxel count of bin ``m`` and ``M_{b,c}`` the non-empty bins (``n >= min_bin_weight``). ``ACE_{b,c}`` is what
    ``monai.metrics.CalibrationErrorMetric(calibration_reduction="average")`` reports for that image and class.

    - ``binning="hard"``: ``w_m`` is 1 for the bin ``(m / M, (m + 1) / M]`` holding ``p`` (``p = 0`` in the
      first); the gradient flows through the per-bin means.
    - ``binning="soft"``: each voxel is split linearly between the two nearest bin centres ``(m + 0.5) / M``
      (all to the first / last bin below / above the outer centres); the gradient also flows through the weights.

    Args:
        num_bins: number of equal-width bins ``M`` on ``[0, 1]`` (default 20, the authors').
        binning: ``"hard"`` (default) or ``"soft"``.
        include_background: include class 0 in the ACE and Dice terms (default ``True``, the authors' setting).
        ignore_empty_classes: an image's ACE of a class absent from its (included) voxels counts as 0 (default
            ``True``, as the authors: the pair stays in the mean over ``B * C`` with value 0).
        ce_weight: weight of the cross-entropy term (default 1.0; 0 leaves the ACE term, plus Dice if any).
        dice_weight: weight of the soft Dice term (default 0.0); MONAI's ``DiceLoss(softmax=True,
            to_onehot_y=True)`` (the authors' configs use a squared-denominator Dice instead).
        ace_weight: weight of the ACE term (default 1.0). The published Dice + CE + ACE mix is 0.33 each.
        min_bin_weight: a bin whose (soft) count is below this is empty and skipped (default 0.01, the authors'
            soft-binning threshold; for hard binning any voxel makes a bin non-empty).
        ignore_index, reduction, check_finite: see :class:`~monai_nacl.losses.SegmentationCrossEntropyLoss`.
            ``"mean"``: CE mean over voxels + weighted means of the Dice and ACE terms over images and classes;
            ``"sum"``: sums; ``"none"``: ``(B, 1, *spatial)`` map of ``ce_weight * CE_v`` plus each image's Dice
            and ACE terms (means over classes, times their weights) spread evenly over its voxels. Voxels excluded
            by ``mask`` / ``ignore_index`` take part in no bin.

    Example:
        >>> loss = MarginalL1ACELoss(ce_weight=0.33, dice_weight=0.33, ace_weight=0.33)
        >>> logits = torch.randn(2, 3, 16, 16, requires_grad=True)
        >>> loss(logits, torch.randint(0, 3, (2, 1, 16, 16))).backward()
    """

    def __init__(
        self,
        num_bins: int = 20,
        binning: str = "hard",
        include_background: bool = True,
        ignore_empty_classes: bool = True,
        ce_weight: float = 1.0,
        dice_weight: float = 0.0,
        ace_weight: float = 1.0,
        min_bin_weight: float = 0.01,
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
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
            raise ValueError(f"num_bins must be an integer >= 1 (the authors use 20), got {num_bins!r}.")
        if binning not in BINNING_MODES:
            raise ValueError(f"binning must be one of {BINNING_MODES}, got {binning!r}.")
        for name, weight in (("ce_weight", ce_weight), ("ace_weight", ace_weight)):
            if weight < 0:
                raise ValueError(f"{name} must be >= 0, got {weight}.")
        if not min_bin_weight > 0:
            raise ValueError(
                f"min_bin_weight must be > 0 (a bin needs some weight to have a mean), got {min_bin_weight}."
            )
        self.num_bins = num_bins
        self.binning = binning
        self.ignore_empty_classes = ignore_empty_classes
        self.ce_weight = float(ce_weight)
        self.ace_weight = float(ace_weight)
        self.min_bin_weight = float(min_bin_weight)

    def voxel_loss(self, logits: torch.Tensor, target: SegmentationTarget, prior: torch.Tensor | None) -> torch.Tensor:
        """``ce_weight * CE_v``, shape ``(B, *spatial)`` (zeros, and no CE pass, when ``ce_weight == 0``)."""
        if self.ce_weight == 0:
            return logits.new_zeros((logits.shape[0], *logits.shape[2:]))
        ce = cross_entropy_map(logits, target)
        return ce if self.ce_weight == 1 else ce * self.ce_weight

    def calibration_error(self, logits: torch.Tensor, target: SegmentationTarget) -> torch.Tensor:
        """``(B, C')`` L1 average calibration error per image and (included) class, differentiable in ``logits``."""
        batch, channels = logits.shape[:2]
        labels = None if target.labels is None else target.labels.reshape(batch, 1, -1)
        onehot = None if target.probs is None else target.probs.reshape(batch, channels, -1)
        valid = None if target.valid is None else target.valid.reshape(batch, 1, -1)
        return _MarginalL1ACE.apply(
            logits,
            labels,
            onehot,
            valid,
            self.num_bins,
            self.binning == "soft",
            self.min_bin_weight,
            self.ignore_empty_classes,
            0 if self.include_background else 1,
        )

    def image_terms(self, logits: torch.Tensor, target: SegmentationTarget) -> list[tuple[float, torch.Tensor]]:
        """The Dice term (when ``dice_weight > 0``) and the ACE term (when ``ace_weight > 0``)."""
        terms = super().image_terms(logits, target)
        if self.ace_weight > 0:
            terms.append((self.ace_weight, self.calibration_error(logits, target)))
        return terms
