"""Neighbourhood class proportions and the two losses built on them: NACL (penalty) and SVLS (soft target).

Both smooth the one-hot ground truth with a small spatial kernel. Every kernel used here is a separable
filter plus a multiple of the identity, so it runs as ``k`` shifted additions per axis (``k * d`` work
per voxel instead of ``k ** d`` for a dense convolution), without autograd, on labels only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.networks.layers.convutils import gaussian_1d
from monai.utils import LossReduction

from monai_nacl.losses._base import (
    SegmentationCrossEntropyLoss,
    SegmentationTarget,
    cross_entropy_map,
    prepare_target,
)

__all__ = [
    "BORDER_MODES",
    "KERNEL_OPS",
    "NeighborAwareLoss",
    "SpatialLabelSmoothingLoss",
    "neighborhood_prior",
    "svls_kernel",
]

KERNEL_OPS = ("mean", "gaussian", "svls")
BORDER_MODES = ("zeros", "background", "replicate", "normalized")


@dataclass(frozen=True)
class _Kernel:
    """``K * x = scale * (sep(taps) * x + identity * x)``, ``sep(taps)`` the same 1-D taps along every axis."""

    taps: tuple[float, ...]
    identity: float = 0.0
    scale: float = 1.0


def check_kernel_size(kernel_size: int) -> None:
    """Refuse a window size that is not an odd positive integer (the window must be centred on its voxel)."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be an odd integer >= 1 so the window is centred on the voxel, got {kernel_size!r} "
            "(e.g. 3 or 5)."
        )


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse an option ``name`` whose ``value`` is not one of ``choices``, naming them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def _svls_taps(kernel_size: int, sigma: float) -> tuple[float, ...]:
    """Normalised sampled 1-D Gaussian; its outer powers are the normalised d-D Gaussian of SVLS."""
    r = kernel_size // 2
    taps = [math.exp(-0.5 * (i - r) ** 2 / sigma**2) for i in range(kernel_size)]
    total = sum(taps)
    return tuple(t / total for t in taps)


def _make_kernel(kernel_ops: str, kernel_size: int, sigma: float, spatial_dims: int) -> _Kernel:
    check_kernel_size(kernel_size)
    check_choice("kernel_ops", kernel_ops, KERNEL_OPS)
    if kernel_ops != "mean" and not sigma > 0:
        raise ValueError(f"sigma must be > 0 for kernel_ops={kernel_ops!r}, got {sigma}.")
    if kernel_ops == "mean":
        return _Kernel(taps=(1.0,) * kernel_size, scale=1.0 / kernel_size**spatial_dims)
    if kernel_ops == "gaussian":
        # MONAI's GaussianFilter: erf-sampled, truncated at 4 sigma, not renormalised; kernel_size unused.
        return _Kernel(taps=tuple(gaussian_1d(torch.tensor(float(sigma)), truncated=4.0, approx="erf").tolist()))
    if kernel_size == 1:
        return _Kernel(taps=(1.0,))
    # SVLS: Gaussian G (sum 1) whose centre weight g_c is replaced by 1 - g_c, renormalised:
    # K = (G + (1 - 2 g_c) delta) / (2 (1 - g_c)), so the centre weighs 1/2 and the neighbours share 1/2.
    taps = _svls_taps(kernel_size, sigma)
    centre = taps[kernel_size // 2] ** spatial_dims
    return _Kernel(taps=taps, identity=1.0 - 2.0 * centre, scale=1.0 / (2.0 * (1.0 - centre)))


def svls_kernel(spatial_dims: int, kernel_size: int = 3, sigma: float = 1.0) -> torch.Tensor:
    """The dense SVLS kernel of Islam & Glocker (IPMI 2021), shape ``(kernel_size,) * spatial_dims``.

    A ``k^d`` Gaussian (std ``sigma``) normalised to sum 1, whose centre weight is then replaced by the sum
    of the other weights and the whole renormalised: the centre weighs 1/2, the neighbours share 1/2 in
    proportion to their Gaussian weight (2-D, sigma 1: edge 0.0778, corner 0.0472).

    Args:
        spatial_dims: number of spatial axes (1, 2 or 3).
        kernel_size: odd window size (default 3).
        sigma: Gaussian standard deviation in voxels (default 1.0).

    Example:
        >>> round(svls_kernel(2)[1, 1].item(), 4), round(svls_kernel(2)[0, 1].item(), 4)
        (0.5, 0.0778)
    """
    if spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
    kernel = _make_kernel("svls", kernel_size, sigma, spatial_dims)
    taps = torch.tensor(kernel.taps, dtype=torch.float64)
    dense = taps
    for _ in range(spatial_dims - 1):
        dense = dense.unsqueeze(-1) * taps
    centre = (kernel_size // 2,) * spatial_dims
    dense[centre] += kernel.identity
    return (dense * kernel.scale).float()


def _separable_valid(x: torch.Tensor, taps: tuple[float, ...]) -> torch.Tensor:
    """Correlate every spatial axis of a padded ``(B, C, *spatial)`` tensor with ``taps`` ("valid" output)."""
    k = len(taps)
    if k == 1:
        return x * taps[0] if taps[0] != 1.0 else x
    box = all(t == 1.0 for t in taps)
    for axis in range(2, x.ndim):
        n = x.shape[axis] - k + 1
        if box:
            out = x.narrow(axis, 0, n) + x.narrow(axis, 1, n)
            for j in range(2, k):
                out.add_(x.narrow(axis, j, n))
        else:
            out = x.narrow(axis, 0, n) * taps[0]
            for j in range(1, k):
                out.add_(x.narrow(axis, j, n), alpha=taps[j])
        x = out
    return x


def _pad(x: torch.Tensor, r: int, border: str) -> torch.Tensor:
    """Complete the image by ``r`` voxels per side: ``"zeros"``, ``"replicate"``, or ``"background"`` (channel 0
    is 1 outside the image, as if the label map were padded with class 0)."""
    if r == 0:
        return x
    spatial = x.shape[2:]
    if border == "replicate":
        return F.pad(x, [r, r] * len(spatial), mode="replicate")
    padded = F.pad(x, [r, r] * len(spatial))
    if border == "background":
        interior = (slice(None), 0, *(slice(r, r + n) for n in spatial))
        padded[:, 0] += 1
        padded[interior] -= 1
    return padded


def _apply_kernel(x: torch.Tensor, kernel: _Kernel, border: str) -> torch.Tensor:
    """``K * x`` as float32 for ``x`` ``(B, C, *spatial)``; the window completed outside the image per ``border``.

    Integer ``x`` (one-hot) is padded in its own dtype; box kernels also sum in it (exact counts), scaled to
    float32 in one pass at the end.
    """
    r = (len(kernel.taps) - 1) // 2
    padded = _pad(x, r, border)
    box = all(t == 1.0 for t in kernel.taps)
    if not box and not padded.is_floating_point():
        padded = padded.float()
    out = _separable_valid(padded, kernel.taps)
    if not out.is_floating_point():
        return out.float().mul_(kernel.scale)
    if out is x:
        out = x.clone()  # never write into the caller's target
    if kernel.identity:  # the interior of the padded (float) copy is x itself
        out.add_(padded[(slice(None), slice(None), *(slice(r, r + n) for n in x.shape[2:]))], alpha=kernel.identity)
    if kernel.scale != 1.0:
        out.mul_(kernel.scale)
    return out


def _count_dtype(window: int) -> torch.dtype:
    """Smallest integer dtype that holds a count of up to ``window`` voxels."""
    return torch.uint8 if window <= 255 else torch.int16 if window <= 32767 else torch.int32


def prior_from_target(
    target: SegmentationTarget, kernel_size: int, kernel_ops: str, sigma: float, border: str
) -> torch.Tensor:
    """Neighbourhood prior of a checked target (no autograd); see :func:`neighborhood_prior`."""
    check_choice("border", border, BORDER_MODES)
    spatial_dims = len(target.spatial_shape)
    kernel = _make_kernel(kernel_ops, kernel_size, sigma, spatial_dims)
    box = all(t == 1.0 for t in kernel.taps)
    # hard labels: one-hot (and, under a box window, the counts) in a small integer dtype: less memory traffic
    dtype = torch.float32
    if target.labels is not None:
        dtype = _count_dtype(len(kernel.taps) ** spatial_dims) if box else torch.uint8
    onehot = target.one_hot(dtype)
    if border != "normalized":
        return _apply_kernel(onehot, kernel, border)
    numerator = _apply_kernel(onehot, kernel, "zeros")
    if target.labelled is not None:
        support = target.labelled.unsqueeze(1).to(dtype)
    else:
        support = torch.ones((1, 1, *target.spatial_shape), dtype=dtype, device=onehot.device)
    weight = _apply_kernel(support, kernel, "zeros")
    return numerator.div_(weight.clamp_min_(torch.finfo(weight.dtype).tiny))


def _target_for_prior(labels: torch.Tensor, num_classes: int, ignore_index: int | None) -> SegmentationTarget:
    """Interpret ``labels`` for :func:`neighborhood_prior` (it has no logits to compare shapes with)."""
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if labels.ndim >= 3 and (labels.shape[1] == 1 or (labels.shape[1] == num_classes and labels.is_floating_point())):
        shape = (labels.shape[0], num_classes, *labels.shape[2:])
    elif labels.ndim >= 2 and not labels.is_floating_point():
        shape = (labels.shape[0], num_classes, *labels.shape[1:])
    else:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} (dtype {labels.dtype}) is not a label map (B, 1, *spatial), an "
            f"integer label map (B, *spatial) or a one-hot / soft target (B, {num_classes}, *spatial)."
        )
    if len(shape) - 2 not in (1, 2, 3):
        raise ValueError(f"labels must have 1 to 3 spatial axes, got shape {tuple(labels.shape)}.")
    return prepare_target(labels, torch.Size(shape), ignore_index)


@torch.no_grad()
def neighborhood_prior(
    labels: torch.Tensor,
    num_classes: int,
    kernel_size: int = 3,
    kernel_ops: str = "mean",
    sigma: float = 1.0,
    border: str = "zeros",
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Soft class proportions of each voxel's neighbourhood, ``tau`` in NACL (Murugesan et al., MICCAI 2023).

    .. math:: \\tau_{v,k} = \\sum_{u \\in W(v)} K(u - v)\\, y_{u,k}

    with ``y`` the one-hot ground truth and ``K`` the window kernel centred on ``v`` (``v`` included).
    No gradient flows through it (it depends on labels only).

    Args:
        labels: label map ``(B, 1, *spatial)`` (integer values, any dtype), integer ``(B, *spatial)``, or a
            one-hot / soft target ``(B, num_classes, *spatial)`` (float). 1 to 3 spatial axes.
        num_classes: number of classes ``C``, background included.
        kernel_size: odd window size (default 3).
        kernel_ops: ``"mean"`` (default; uniform ``k^d`` window, as MONAI's ``NACLLoss``), ``"gaussian"``
            (MONAI's ``GaussianFilter(sigma)``: erf-sampled, truncated at 4 sigma, ``kernel_size`` not used,
            as in MONAI) or ``"svls"`` (the SVLS kernel, see :func:`svls_kernel`).
        sigma: Gaussian std for ``"gaussian"`` / ``"svls"`` (default 1.0).
        border: how the window is completed outside the image: ``"zeros"`` (default, MONAI: nothing there,
            so proportions sum to less than 1 at the border), ``"background"`` (the authors' code: the label
            map padded with class 0), ``"replicate"`` (edge voxels repeated, as SVLS), or ``"normalized"``
            (divide by the kernel weight that falls inside the image, so proportions sum to 1).
        ignore_index: label value treated as unknown: such voxels add nothing to their neighbours'
            proportions (and under ``"normalized"`` are left out of the divisor too).

    Returns:
        ``(B, C, *spatial)`` float32 tensor.

    Example:
        >>> labels = torch.tensor([[[0, 0, 1, 1]]])  # (B=1, 1, W=4)
        >>> neighborhood_prior(labels, 2, border="normalized")[0, 1]
        tensor([0.0000, 0.3333, 0.6667, 1.0000])
    """
    target = _target_for_prior(labels, num_classes, ignore_index)
    return prior_from_target(target, kernel_size, kernel_ops, sigma, border)


class _FusedCrossEntropy(torch.autograd.Function):
    """Per-voxel ``CE_v + weight * sum_k |l_k - tau_k|`` (penalty optional), with a hand-written backward.

    One fused ``log_softmax`` serves the value and the gradient; the penalty's gradient is a sign, kept as
    int8. Gradient: ``g_v * (softmax(l_v) * sum_c q_c - q_v + weight * sign(l_v - tau_v))``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        logits: torch.Tensor,
        labels: torch.Tensor | None,
        probs: torch.Tensor | None,
        prior: torch.Tensor | None,
        weight: float,
        prior_is_scratch: bool = False,
    ) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=1)
        if labels is not None:
            out = log_probs.gather(1, labels.unsqueeze(1)).squeeze(1).neg_()
        else:
            out = (probs * log_probs).sum(1).neg_()
        sign = None
        if prior is not None:
            diff = torch.sub(logits, prior, out=prior) if prior_is_scratch else logits - prior
            sign = torch.sign(diff).to(torch.int8)
            out.add_(diff.abs_().sum(1), alpha=weight)
        ctx.weight = weight
        ctx.save_for_backward(log_probs, labels, probs, sign)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None, None]:  # type: ignore[override]
        log_probs, labels, probs, sign = ctx.saved_tensors
        out = log_probs.exp()
        if labels is not None:
            index = labels.unsqueeze(1)
            out.scatter_add_(1, index, out.new_full((), -1.0).expand(index.shape))
        else:
            out.mul_(probs.sum(1, keepdim=True)).sub_(probs)
        if sign is not None:
            out.add_(sign.float(), alpha=ctx.weight)  # int8 + float in one op takes a slow mixed-dtype path
        return out.mul_(grad.unsqueeze(1)), None, None, None, None, None


class NeighborAwareLoss(SegmentationCrossEntropyLoss):
    """Neighbor-Aware CaLibration loss (NACL).

    Murugesan, Adiga V., Liu, Lombaert, Ben Ayed, Dolz. "Trust your neighbours: penalty-based constraints for
    model calibration", MICCAI 2023 (arXiv 2303.06268); "Neighbor-Aware Calibration of Segmentation Networks
    with Penalty-Based Constraints", Medical Image Analysis 2025 (arXiv 2401.14487).

    .. math::
        L = \\mathrm{CE}(l, y) + \\alpha \\cdot \\frac{1}{BCN} \\sum_{b,k,v} |\\tau_{b,k,v} - l_{b,k,v}|
        \\quad (\\text{squared for } \\texttt{distance\\_type="l2"})

    on raw logits ``l``, with ``tau`` the neighbourhood class proportions of the ground truth
    (:func:`neighborhood_prior`). Per voxel the penalty weighs ``alpha / C``; with the defaults this
    equals ``monai.losses.NACLLoss(classes, dim)`` in value and gradient, without its ``classes`` / ``dim``
    arguments (both are read from the input), and adds borders, Dice, masks, reductions and 1-D inputs.

    Args:
        kernel_size: odd window size (default 3).
        kernel_ops: ``"mean"`` (default), ``"gaussian"`` (MONAI's ``GaussianFilter``) or ``"svls"``.
        distance_type: ``"l1"`` (default) or ``"l2"``.
        alpha: penalty weight (default 0.1).
        sigma: Gaussian std for ``"gaussian"`` / ``"svls"`` (default 1.0).
        border: window completion at the image edge: ``"zeros"`` (default, MONAI), ``"background"``
            (authors' code), ``"replicate"`` or ``"normalized"``; see :func:`neighborhood_prior`.
        dice_weight, include_background, ignore_index, reduction, check_finite: see
            :class:`SegmentationCrossEntropyLoss`. With ``reduction="none"`` the voxel map is
            ``CE_v + alpha / C * sum_k |tau_k - l_k|`` (+ Dice spread per image).

    A precomputed prior ``(B, C, *spatial)`` may be passed to ``forward(input, target, prior=...)``.

    Note:
        The l1 penalty caps confidence where the whole window is one class ``y`` (``tau = e_y``): there the
        loss is minimised by ``l_k = 0`` for ``k != y`` and ``softmax(l)_y = 1 - alpha / C`` (CE's gradient on
        ``l_y``, ``p_y - 1``, balances the penalty's ``alpha / C``), i.e. 0.967 for the default ``alpha=0.1``
        and three classes. A network that is right more often than that on such voxels comes out
        under-confident; lower ``alpha`` raises the cap.

    Example:
        >>> loss = NeighborAwareLoss()
        >>> logits = torch.randn(2, 3, 8, 8, 8, requires_grad=True)
        >>> labels = torch.randint(0, 3, (2, 1, 8, 8, 8))
        >>> loss(logits, labels).backward()
    """

    def __init__(
        self,
        kernel_size: int = 3,
        kernel_ops: str = "mean",
        distance_type: str = "l1",
        alpha: float = 0.1,
        sigma: float = 1.0,
        border: str = "zeros",
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
        check_kernel_size(kernel_size)
        check_choice("kernel_ops", kernel_ops, KERNEL_OPS)
        check_choice("distance_type", distance_type, ("l1", "l2"))
        check_choice("border", border, BORDER_MODES)
        self.kernel_size = kernel_size
        self.kernel_ops = kernel_ops
        self.distance_type = distance_type
        self.alpha = float(alpha)
        self.sigma = float(sigma)
        self.border = border

    def voxel_loss(self, logits: torch.Tensor, target: SegmentationTarget, prior: torch.Tensor | None) -> torch.Tensor:
        """``CE_v + alpha / C * sum_k d(tau_k, l_k)``, shape ``(B, *spatial)``."""
        scratch = prior is None  # a prior computed here may be overwritten; a caller's prior may not
        if prior is None:
            with torch.no_grad():
                prior = prior_from_target(target, self.kernel_size, self.kernel_ops, self.sigma, self.border)
        weight = self.alpha / logits.shape[1]
        if self.distance_type == "l1":
            return _FusedCrossEntropy.apply(logits, target.labels, target.probs, prior, weight, scratch)
        penalty = (logits - prior).square().sum(1)
        return cross_entropy_map(logits, target).add_(penalty, alpha=weight)


class SpatialLabelSmoothingLoss(SegmentationCrossEntropyLoss):
    """Spatially Varying Label Smoothing (SVLS), Islam & Glocker, IPMI 2021 (arXiv 2104.05788).

    .. math:: L = -\\frac{1}{N} \\sum_v \\sum_c \\tilde y_{v,c} \\log \\mathrm{softmax}(l_v)_c, \\qquad
        \\tilde y = K_{svls} * y

    with ``K_svls`` the SVLS kernel (:func:`svls_kernel`) applied per class to the one-hot labels, the
    image edge completed by replicating the border voxels (as the authors' code).

    Args:
        kernel_size: odd window size (default 3).
        sigma: Gaussian std of the kernel (default 1.0).
        dice_weight, include_background, ignore_index, reduction, check_finite: see
            :class:`SegmentationCrossEntropyLoss`.

    The smoothed target may be precomputed (``neighborhood_prior(labels, C, kernel_size, "svls", sigma,
    "replicate")`` or ``NeighborhoodPriord(..., kernel_ops="svls", border="replicate")``) and passed as
    ``forward(input, target, prior=...)``.

    Example:
        >>> loss = SpatialLabelSmoothingLoss()
        >>> logits = torch.randn(2, 3, 16, 16, requires_grad=True)
        >>> loss(logits, torch.randint(0, 3, (2, 1, 16, 16))).backward()
    """

    def __init__(
        self,
        kernel_size: int = 3,
        sigma: float = 1.0,
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
        check_kernel_size(kernel_size)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}.")
        self.kernel_size = kernel_size
        self.sigma = float(sigma)

    def voxel_loss(self, logits: torch.Tensor, target: SegmentationTarget, prior: torch.Tensor | None) -> torch.Tensor:
        """``-sum_c svls(y)_c log softmax(l)_c``, shape ``(B, *spatial)``."""
        if prior is None:
            with torch.no_grad():
                prior = prior_from_target(target, self.kernel_size, "svls", self.sigma, "replicate")
        return _FusedCrossEntropy.apply(logits, None, prior, None, 0.0)
