"""CRaC: NACL's neighbourhood constraint split by class and region, with weights learned by an augmented Lagrangian.

The constraint of each voxel and class is ``h = |s * tau - l|`` (``tau`` NACL's neighbourhood proportions, ``s = 1``
on boundary voxels, ``s = margin`` inside a region). Each of the ``2 * C`` (region, class) pairs has its own
multiplier ``lambda`` and penalty parameter ``rho``; the loss adds the PHR penalty ``lambda * h + rho * h^2 / 2``
(its form for ``h >= 0``), and the multipliers follow the validation constraints from epoch to epoch: each pair's
constraint sum over its region's voxels, divided by the number of all validation voxels (as the authors do).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from monai.utils import LossReduction

from monai_nacl.losses._base import SegmentationCrossEntropyLoss, SegmentationTarget
from monai_nacl.losses.neighborhood import BORDER_MODES, check_choice, check_kernel_size, prior_from_target

__all__ = ["CONSTRAINT_NORMALIZATIONS", "REGIONS", "AdaptiveNeighborAwareLoss"]

REGIONS = ("boundary", "interior")
"""Row names of the ``(2, C)`` multiplier buffers: row 0 boundary voxels, row 1 interior voxels."""

CONSTRAINT_NORMALIZATIONS = ("all_voxels", "region")
"""Denominators of the multiplier update's constraint statistic: all counted voxels (the authors'), or the region's."""


def _window_extreme(x: torch.Tensor, radius: int, op: Callable[..., torch.Tensor]) -> torch.Tensor:
    """``op`` (``torch.minimum`` / ``torch.maximum``) of ``x`` ``(B, *spatial)`` over each voxel's ``(2r+1)^d`` window.

    The window is clipped to the image, which for a minimum or maximum is the same as completing it by
    replicating the edge voxels (the replicated values are in the window already). Separable, in ``x``'s dtype.
    """
    for axis in range(1, x.ndim):
        n = x.shape[axis]
        out = x.clone()
        for shift in range(1, min(radius, n - 1) + 1):
            ahead, behind = out.narrow(axis, shift, n - shift), out.narrow(axis, 0, n - shift)
            op(ahead, x.narrow(axis, 0, n - shift), out=ahead)
            op(behind, x.narrow(axis, shift, n - shift), out=behind)
        x = out
    return x


def _boundary_voxels(target: SegmentationTarget, kernel_size: int) -> torch.Tensor:
    """``(B, *spatial)`` bool: the voxel's window (replicate-completed) holds more than one label.

    Test: window minimum label != window maximum label. Voxels with unknown labels (``ignore_index``) take no
    part in their neighbours' test. A one-hot / soft target is read as its argmax label map.
    """
    labels = target.labels if target.labels is not None else target.probs.argmax(1)
    num_classes = target.num_classes
    labels = labels.float()  # exact for any class count in use; CPU min/max is vectorised for floats, not uint8
    radius = kernel_size // 2
    high = _window_extreme(labels, radius, torch.maximum)  # unknown labels hold 0: never above a known label
    low_input = labels if target.labelled is None else labels.masked_fill(~target.labelled, num_classes)
    low = _window_extreme(low_input, radius, torch.minimum)
    return low != high


class _ConstrainedCrossEntropy(torch.autograd.Function):
    """Per-voxel ``CE_v + sum_k lambda_k |d_k| + rho_k d_k^2 / 2``, ``d = l - s * tau``, with (region, class) weights.

    ``lambda = lam_interior + boundary * lam_step`` (and ``rho`` alike) from ``(1, C, 1...)`` tables already
    divided by ``2C`` and the ``(B, 1, *spatial)`` 0/1 boundary map. The gradient
    ``softmax(l) * sum_c q_c - q + lambda * sign(d) + rho * d`` is formed in the forward pass and saved as one
    tensor; every step works in place where it can (on CPU these losses are bound by memory traffic).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        logits: torch.Tensor,
        labels: torch.Tensor | None,
        probs: torch.Tensor | None,
        tau: torch.Tensor,
        scale: torch.Tensor,
        boundary: torch.Tensor,
        tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        tau_is_scratch: bool,
    ) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=1)
        if labels is not None:
            index_labels = labels.unsqueeze(1)
            out = log_probs.gather(1, index_labels).squeeze(1).neg_()
            grad = log_probs.exp_()
            grad.scatter_add_(1, index_labels, grad.new_full((), -1.0).expand(index_labels.shape))
        else:
            out = (probs * log_probs).sum(1).neg_()
            grad = log_probs.exp_().mul_(probs.sum(1, keepdim=True)).sub_(probs)
        lam_interior, lam_step, rho_interior, rho_step = tables
        diff = torch.addcmul(logits, tau, scale, value=-1.0, out=tau if tau_is_scratch else None)
        penalty = torch.addcmul(lam_interior, boundary, lam_step)
        torch.copysign(penalty, diff, out=penalty)  # lambda * sign(d); at d == 0 the subgradient +lambda
        grad.add_(penalty)
        rho_diff = torch.addcmul(rho_interior, boundary, rho_step).mul_(diff)
        grad.add_(rho_diff)
        # lambda |d| + rho d^2 / 2 = d * (lambda sign(d) + rho d / 2)
        out.add_(torch.linalg.vecdot(penalty.add_(rho_diff, alpha=0.5), diff, dim=1))
        ctx.save_for_backward(grad)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return (grad * grad_out.unsqueeze(1), *([None] * 7))


class AdaptiveNeighborAwareLoss(SegmentationCrossEntropyLoss):
    """Class and Region-Adaptive Constraints (CRaC): NACL with one learned penalty weight per class and region.

    Murugesan, Silva-Rodriguez, Ben Ayed, Dolz. "Class and Region-Adaptive Constraints for Network Calibration",
    MICCAI 2024 (arXiv 2403.12364); authors' code github Bala93/CRac.

    .. math::
        L = \\mathrm{CE}(l, y) + \\frac{1}{2BCN} \\sum_{b,v} \\sum_{k}
            \\lambda_{r(v),k}\\, h_{b,k,v} + \\frac{\\rho_{r(v),k}}{2} h_{b,k,v}^2, \\qquad
        h_{b,k,v} = |s_v \\tau_{b,k,v} - l_{b,k,v}|

    on raw logits ``l``, with ``tau`` NACL's neighbourhood class proportions (``k^d`` mean window,
    :func:`~monai_nacl.losses.neighborhood_prior`), ``r(v)`` the voxel's region and ``s_v`` its scale: on
    *boundary* voxels ``s = 1``, on *interior* voxels ``s = margin``, so that interior logits aim at a gap of
    ``margin`` rather than 1 (this lifts NACL's interior confidence cap ``1 - alpha / C``). The sum is the mean over
    the batch, the ``2C`` stacked (region, class) channels and the voxels, as in the authors' code; it is the PHR
    augmented-Lagrangian penalty for ``h >= 0``.

    Boundary voxels: the voxel's ``k^d`` window, completed at the image edge by replicating edge voxels, holds
    more than one label, tested as *window minimum label != window maximum label*. This is the evident intent of the
    authors' test, not its letter: their code marks a window as boundary where the sum of its labels' deviations
    from the window mean is non-zero. That sum is zero in exact arithmetic for every window, so float32 rounding
    decides which mixed windows count (in issue 19's comparison it found 260 of 312 and 1030 of 1258 mixed windows
    of two label maps), and it pads the image with label 0. With the boundary defined alike, this loss equals
    theirs.

    ``lambda`` and ``rho`` are buffers ``lagrange_multipliers`` and ``penalty_rho`` of shape ``(2, C)`` (row 0
    boundary, row 1 interior, see :data:`REGIONS`), with ``previous_constraint`` (the last update's ``g``
    below); all three are in ``state_dict``, so checkpoints and resumed runs carry them.
    Multipliers start at ``1e-6``, ``rho`` at the ``rho`` argument. :meth:`update_multipliers` moves them once per
    epoch from the constraint statistic ``g`` of the validation split (:meth:`constraint_statistics`):

    .. math::
        g_{r,k} = \\frac{1}{N} \\sum_{v \\in V_r} h_{k,v}, \\qquad
        \\lambda_{r,k} \\leftarrow \\mathrm{clamp}(\\lambda_{r,k} + \\rho_{r,k}\\, g_{r,k},\\ 10^{-6},\\ 10^{6})

    with ``V_r`` the validation voxels of region ``r`` (voxels excluded by ``mask`` or ``ignore_index`` count
    nowhere) and ``N = |V|`` the number of *all* validation voxels (``constraint_normalization="all_voxels"``, the
    default: the authors' update, which averages the PHR gradient ``lambda + rho * h`` over all voxels with
    ``h = 0`` outside the region), or ``N = |V_r|``, the region's own mean (``"region"``). ``"region"`` makes each ``g_{r,k}`` larger by ``|V| / |V_r|``; in issue 19's comparison its
    multipliers were about 2.3 times the authors', grew at every update and left CRaC under-confident. Then, every
    10th epoch, ``rho <- min(1.2 * rho, 10)`` where ``g`` is above 0.9 times its previous value (it did not fall
    enough); ``g`` has the same normalisation there.

    In a MONAI bundle, :class:`~monai_nacl.handlers.LagrangeMultiplierHandler` on the validator does this.
    Without it (a plain PyTorch loop) the loss is a fixed-weight penalty unless the loop calls the update itself::

        loss = AdaptiveNeighborAwareLoss(num_classes=3)
        for epoch in range(1, max_epochs + 1):
            ...  # one training epoch with loss(logits, labels)
            total = torch.zeros(2, 3, dtype=torch.float64)
            count = torch.zeros(2, 3, dtype=torch.float64)
            with torch.no_grad():
                for image, labels in val_loader:
                    s, n = loss.constraint_statistics(net(image), labels)
                    total += s
                    count += n
            loss.update_multipliers(total / count, epoch)  # an empty count (0 / 0 = NaN) leaves its pair as it is

    Under ``torch.distributed`` sum ``total`` and ``count`` over the ranks (``all_reduce``) before dividing, so
    that every rank makes the same update.

    Args:
        num_classes: number of classes ``C`` (the network's output channels), background included.
        kernel_size: odd window size of ``tau`` and of the boundary test (default 3).
        margin: scale ``s`` of the interior target ``s * tau`` (default 5.0, the authors' setting; must be > 0).
        rho: initial penalty parameter of every (region, class) pair (default 0.1, the authors' setting; > 0).
        border: completion of ``tau``'s window at the image edge: ``"zeros"`` (default, MONAI), ``"background"``
            (the authors' code: label map padded with class 0), ``"replicate"`` or ``"normalized"``; see
            :func:`~monai_nacl.losses.neighborhood_prior`. The boundary test always replicates edge voxels.
        constraint_normalization: denominator ``N`` of the multiplier update's statistic ``g``: ``"all_voxels"``
            (default, the authors' update: every counted validation voxel) or ``"region"`` (the voxels of the
            pair's region, a per-region mean; multipliers grow faster, by ``|V| / |V_r|``). See above.
        dice_weight, include_background, ignore_index, reduction, check_finite: see
            :class:`~monai_nacl.losses.SegmentationCrossEntropyLoss`. With ``reduction="none"`` the voxel map is
            ``CE_v + 1 / (2C) * sum_k (lambda h + rho h^2 / 2)`` (+ Dice spread per image). Voxels with unknown
            labels take no part in their neighbours' boundary test or ``tau``.

    A precomputed ``tau`` ``(B, C, *spatial)`` (``NeighborhoodPriord`` with the same window and border) may be
    passed as ``forward(input, target, prior=...)``. A one-hot / soft target is read as its argmax label map for
    the boundary test; ``tau`` is then computed from the target itself.

    Example:
        >>> loss = AdaptiveNeighborAwareLoss(num_classes=3)
        >>> logits = torch.randn(2, 3, 8, 8, 8, requires_grad=True)
        >>> labels = torch.randint(0, 3, (2, 1, 8, 8, 8))
        >>> loss(logits, labels).backward()
        >>> tuple(loss.lagrange_multipliers.shape)
        (2, 3)
    """

    LAMBDA_MIN = 1e-6
    LAMBDA_MAX = 1e6
    RHO_MAX = 10.0
    RHO_GROWTH = 1.2
    RHO_EVERY = 10
    RHO_TOLERANCE = 0.9

    lagrange_multipliers: torch.Tensor
    penalty_rho: torch.Tensor
    previous_constraint: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        kernel_size: int = 3,
        margin: float = 5.0,
        rho: float = 0.1,
        border: str = "zeros",
        constraint_normalization: str = "all_voxels",
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
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"num_classes must be an integer >= 2 (the network's output channels, background included), got "
                f"{num_classes!r}."
            )
        check_kernel_size(kernel_size)
        check_choice("border", border, BORDER_MODES)
        check_choice("constraint_normalization", constraint_normalization, CONSTRAINT_NORMALIZATIONS)
        if not (math.isfinite(margin) and margin > 0):
            raise ValueError(f"margin must be a finite number > 0 (the authors use 5), got {margin}.")
        if not (math.isfinite(rho) and 0 < rho <= self.RHO_MAX):
            raise ValueError(f"rho must lie in (0, {self.RHO_MAX}] (the authors start at 0.1), got {rho}.")
        self.num_classes = num_classes
        self.kernel_size = kernel_size
        self.margin = float(margin)
        self.border = border
        self.constraint_normalization = constraint_normalization
        self.register_buffer("lagrange_multipliers", torch.full((2, num_classes), self.LAMBDA_MIN))
        self.register_buffer("penalty_rho", torch.full((2, num_classes), float(rho)))
        self.register_buffer("previous_constraint", torch.full((2, num_classes), float("nan")))

    def _check_classes(self, logits: torch.Tensor) -> None:
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"input has {logits.shape[1]} channels (shape {tuple(logits.shape)}) but the loss was built with "
                f"num_classes={self.num_classes}; set num_classes to the network's out_channels."
            )

    def _regions(
        self, target: SegmentationTarget, prior: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(tau, s, boundary)``: ``tau`` ``(B, C, *spatial)`` (the caller's ``prior`` when given, else a new tensor),
        the target scale ``s`` (1 or ``margin``) and the boundary map, both ``(B, 1, *spatial)``."""
        boundary = _boundary_voxels(target, self.kernel_size).unsqueeze(1)
        scale = torch.where(boundary, 1.0, self.margin)
        if prior is None:
            prior = prior_from_target(target, self.kernel_size, "mean", 1.0, self.border)
        return prior, scale, boundary

    def voxel_loss(self, logits: torch.Tensor, target: SegmentationTarget, prior: torch.Tensor | None) -> torch.Tensor:
        """``CE_v + 1 / (2C) * sum_k (lambda h + rho h^2 / 2)`` for each voxel's region, shape ``(B, *spatial)``."""
        self._check_classes(logits)
        with torch.no_grad():
            tau, scale, boundary = self._regions(target, prior)
            view = (1, self.num_classes, *([1] * (boundary.ndim - 2)))
            lam = self.lagrange_multipliers.to(logits.device, torch.float32).div(2 * self.num_classes)
            rho = self.penalty_rho.to(logits.device, torch.float32).div(2 * self.num_classes)
            tables = tuple(x.view(view) for x in (lam[1], lam[0] - lam[1], rho[1], rho[0] - rho[1]))
        return _ConstrainedCrossEntropy.apply(
            logits, target.labels, target.probs, tau, scale, boundary.float(), tables, prior is None
        )

    @torch.no_grad()
    def constraint_statistics(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        prior: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Numerator and denominator of the constraint statistic ``g`` of a batch: ``(sum_h, count)``.

        .. math::
            \\mathrm{sum\\_h}_{r,k} = \\sum_{v \\in V_r} h_{k,v}, \\qquad
            \\mathrm{count}_{r,k} = |V| \\ (\\texttt{all\\_voxels}) \\ \\text{or} \\ |V_r| \\ (\\texttt{region})

        with ``V`` the batch's counted voxels and ``V_r`` those of region ``r`` (``constraint_normalization``
        chooses ``count``). Both are sums over voxels, so the statistic of several batches and ranks is
        ``sum(sum_h) / sum(count)``; pass it to :meth:`update_multipliers`.

        Args:
            logits: raw logits ``(B, C, *spatial)`` (not softmax), e.g. the validation network output.
            target, mask, prior: as in ``forward``; voxels excluded by ``mask`` or ``ignore_index`` are not counted.

        Returns:
            ``(sum_h, count)``, both float64 ``(2, C)`` on the logits' device (row 0 boundary, row 1 interior);
            ``count`` is the same for every class (and, with ``"all_voxels"``, for both regions).
        """
        logits, tgt, prior = self.prepare_inputs(logits, target, mask, prior)
        self._check_classes(logits)
        tau, scale, boundary = self._regions(tgt, prior)
        h = torch.addcmul(logits, tau, scale, value=-1.0).abs_()
        regions = torch.stack([boundary[:, 0], ~boundary[:, 0]])  # (2, B, *spatial)
        if tgt.valid is not None:
            regions &= tgt.valid
        axes = (0, *range(2, h.ndim))
        sums = torch.stack(
            [torch.where(region.unsqueeze(1), h, 0.0).sum(axes, dtype=torch.float64) for region in regions]
        )
        count = regions.flatten(1).sum(1, dtype=torch.float64)
        if self.constraint_normalization == "all_voxels":
            count = count.sum().expand(2)  # the regions split the counted voxels
        return sums, count.unsqueeze(1).expand(2, self.num_classes).clone()

    @torch.no_grad()
    def update_multipliers(self, mean_constraint: torch.Tensor, epoch: int) -> None:
        """One augmented-Lagrangian step from the validation constraint statistic ``g`` of epoch ``epoch``.

        ``lambda <- clamp(lambda + rho * g, 1e-6, 1e6)``; then, when ``epoch`` is a multiple of 10,
        ``rho <- min(1.2 * rho, 10)`` where ``g > 0.9 * previous_constraint`` (no growth at the first update, which
        has no previous value); then ``previous_constraint <- g``. Entries that are NaN (an empty count: ``0 / 0``)
        leave that pair's ``lambda``, ``rho`` and previous value as they are.

        Args:
            mean_constraint: ``(2, C)`` statistic ``g`` per (region, class): ``sum_h / count`` from
                :meth:`constraint_statistics`, each summed over batches and ranks (the class docstring gives ``g``).
            epoch: the training epoch just completed, counted from 1 (MONAI's validator holds it in
                ``engine.state.epoch``).
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"epoch must be the completed training epoch, an integer >= 1, got {epoch!r}.")
        mean = torch.as_tensor(mean_constraint).to(self.lagrange_multipliers.device, torch.float64)
        if tuple(mean.shape) != tuple(self.lagrange_multipliers.shape):
            raise ValueError(
                f"mean_constraint must have shape {tuple(self.lagrange_multipliers.shape)} (regions {REGIONS} x "
                f"classes), got {tuple(mean.shape)}."
            )
        if bool((mean < 0).any()) or bool(torch.isinf(mean).any()):
            raise ValueError(f"mean_constraint must hold finite values >= 0 (or NaN for no data), got {mean.tolist()}.")
        seen = ~torch.isnan(mean)
        lam = self.lagrange_multipliers.double()
        rho = self.penalty_rho.double()
        previous = self.previous_constraint.double()
        stepped = (lam + rho * mean).clamp(self.LAMBDA_MIN, self.LAMBDA_MAX)
        self.lagrange_multipliers.copy_(torch.where(seen, stepped, lam))
        if epoch % self.RHO_EVERY == 0:
            grow = seen & (mean > self.RHO_TOLERANCE * previous)  # NaN previous: no growth
            self.penalty_rho.copy_(torch.where(grow, (self.RHO_GROWTH * rho).clamp_max(self.RHO_MAX), rho))
        self.previous_constraint.copy_(torch.where(seen, mean, previous))
