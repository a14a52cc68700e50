"""Calibration metrics of segmentation, pooled over every counted voxel of the input, in float64.

Each function is :func:`~monai_nacl.metrics.statistics.calibration_statistics` (batch -> histograms) followed by
:func:`calibration_values` (histograms -> values), the same two functions the streaming
:class:`~monai_nacl.metrics.SegmentationCalibrationMetric` uses. Notation: ``p_c`` the predicted probability of
class ``c`` at a counted voxel, ``y`` its label (or ``q_c`` a soft reference), ``N`` the number of counted voxels,
``B_m`` the voxels whose confidence falls into bin ``m`` (equal width, ``(lower, upper]``).

- ECE, top label (Guo et al. 2017; NACL: 15 bins): ``sum_m |sum_{B_m} conf - sum_{B_m} acc| / N`` with
  ``conf = max_c p_c`` and ``acc = 1[argmax p = y]`` (soft reference: ``q_{argmax p}``).
- CECE, classwise (Kull et al. 2019; NACL): for each class the ECE of ``p_c`` against ``1[y = c]`` (``q_c``),
  over all N voxels, then the unweighted mean over the C classes (background included, as the authors do).
- MCE (Naeini et al. 2015): ``max_m |mean_{B_m} conf - mean_{B_m} acc|`` over non-empty bins.
- ACE, adaptive ECE (Nixon et al. 2019; Mukhoti et al. 2020): the ECE over equal-mass bins (each holds
  ``N / num_bins`` voxels by rank of confidence). Computed from a fine histogram (``resolution`` equal-width
  sub-bins ``(lo_s, hi_s]``): a sub-bin goes whole to the equal-mass bin of its first voxel rank, so only voxels
  of the sub-bins that straddle one of the ``num_bins - 1`` rank boundaries can be in another bin than in the
  exact rank-based partition. Moving one voxel changes the sum by at most ``2 |conf - acc|``, and over a sub-bin
  ``sum |conf - acc| <= (n_s - A_s) hi_s + A_s (1 - lo_s)`` (``A_s`` its accuracy sum), hence
  ``|ACE - ACE_exact| <= 2 / N * sum_{straddling s} [(n_s - A_s) hi_s + A_s (1 - lo_s)]``, returned as
  ``ace_bound``. It is small when the straddling sub-bins are sparse or confidently correct (the usual case for a
  trained network); it grows with many confidently wrong voxels sharing a sub-bin.
- NLL: ``-sum log p_y / N`` (soft: ``-sum_c q_c log p_c / N``), ``p`` clamped at
  :data:`~monai_nacl.metrics.statistics.NLL_EPS`.
- Brier (Brier 1950, multiclass form): ``sum_c (p_c - 1[y = c])^2 / N`` (soft: ``(p_c - q_c)^2``), in [0, 2].

An empty selection (mask or region without voxels) gives NaN and a warning, never an exception.
"""

from __future__ import annotations

import math

import torch

from monai_nacl.metrics.statistics import CalibrationStatistics, calibration_statistics, warn_if_empty

__all__ = [
    "adaptive_calibration_error",
    "brier_score",
    "calibration_values",
    "classwise_calibration_error",
    "expected_calibration_error",
    "maximum_calibration_error",
    "negative_log_likelihood",
    "reliability_from_statistics",
    "reliability_statistics",
]

DEFAULT_RESOLUTION = 10000
"""Fine sub-bins of the histogram behind the adaptive ECE (rounded up to a multiple of ``num_bins``)."""


def _coarse(hist: torch.Tensor, num_bins: int) -> torch.Tensor:
    """(..., 3, M) fine histogram -> (..., 3, num_bins) by summing whole sub-bins."""
    return hist.reshape(*hist.shape[:-1], num_bins, -1).sum(-1)


def _ece(hist: torch.Tensor, num_bins: int) -> torch.Tensor:
    coarse = _coarse(hist, num_bins)
    count, conf, acc = coarse.unbind(-2)
    return (conf - acc).abs().sum(-1) / count.sum(-1)


def _mce(hist: torch.Tensor, num_bins: int) -> torch.Tensor:
    count, conf, acc = _coarse(hist, num_bins).unbind(-2)
    gaps = torch.where(count > 0, (conf - acc).abs() / count.clamp_min(1), 0.0)
    worst = gaps.amax(-1)
    return torch.where(count.sum(-1) > 0, worst, math.nan)


def _ace(hist: torch.Tensor, num_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive ECE from a fine histogram (..., 3, M) and its error bound (see the module docstring)."""
    count, conf, acc = hist.unbind(-2)
    n_fine = count.round().long()
    total = n_fine.sum(-1, keepdim=True)
    after = n_fine.cumsum(-1)
    before = after - n_fine
    safe_total = total.clamp_min(1)
    # equal-mass bin of the first voxel rank of each sub-bin: floor(rank * num_bins / N)
    target = (before * num_bins).div(safe_total, rounding_mode="floor").clamp_max(num_bins - 1)
    sums_conf = torch.zeros(*conf.shape[:-1], num_bins, dtype=conf.dtype, device=conf.device)
    sums_acc = torch.zeros_like(sums_conf)
    sums_conf.scatter_add_(-1, target, conf)
    sums_acc.scatter_add_(-1, target, acc)
    ace = (sums_conf - sums_acc).abs().sum(-1) / total[..., 0]
    # a sub-bin straddles a rank boundary j*N/num_bins when one lies strictly inside (before, after):
    # ceil(after*k/N) - floor(before*k/N) - 1 > 0 (target = floor(before*k/N) for non-empty sub-bins)
    ceil_after = -((-after * num_bins).div(safe_total, rounding_mode="floor"))
    straddles = (ceil_after - target - 1 > 0) & (n_fine > 0)
    # |c - a| <= (1 - a) * hi + a * (1 - lo) for c in [lo, hi], a in [0, 1] (convex in a)
    fine = count.shape[-1]
    lo = torch.arange(fine, dtype=count.dtype, device=count.device) / fine
    hi = lo + 1.0 / fine
    worst = (count - acc) * hi + acc * (1.0 - lo)
    bound = 2.0 * torch.where(straddles, worst, 0.0).sum(-1) / total[..., 0]
    return ace, bound


def calibration_values(stats: CalibrationStatistics) -> dict[str, torch.Tensor]:
    """Turn histograms into metric values (the second half of every metric here).

    Args:
        stats: statistics from :func:`~monai_nacl.metrics.statistics.calibration_statistics`, possibly summed over
            batches/ranks, possibly with leading per-image dimensions.

    Returns:
        float64 tensors with the leading dimensions of ``stats``: ``ece``, ``mce`` (top label, when computed),
        ``cece``, ``cmce`` (classwise mean, when computed); ``ace``, ``ace_bound``, ``cace``, ``cace_bound``
        (adaptive, only when ``sub_bins > 1``); ``nll``, ``brier``; and ``count`` (counted voxels).
        NaN where no voxel was counted.
    """
    nb = stats.num_bins
    count = stats.totals[..., 0]
    values = {"count": count, "nll": stats.totals[..., 1] / count, "brier": stats.totals[..., 2] / count}
    if stats.top_label is not None:
        values["ece"] = _ece(stats.top_label, nb)
        values["mce"] = _mce(stats.top_label, nb)
        if stats.sub_bins > 1:
            values["ace"], values["ace_bound"] = _ace(stats.top_label, nb)
    if stats.classwise is not None:
        values["cece"] = _ece(stats.classwise, nb).mean(-1)
        values["cmce"] = _mce(stats.classwise, nb).mean(-1)
        if stats.sub_bins > 1:
            cace, cace_bound = _ace(stats.classwise, nb)
            values["cace"], values["cace_bound"] = cace.mean(-1), cace_bound.mean(-1)
    return values


def _sub_bins(num_bins: int, resolution: int) -> int:
    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer number of sub-bins, got {resolution!r}.")
    return max(1, math.ceil(resolution / num_bins))


def _values(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int,
    mask: torch.Tensor | None,
    what: str,
    **options: object,
) -> dict[str, torch.Tensor]:
    stats = calibration_statistics(probs, labels, num_bins=num_bins, mask=mask, **options)
    warn_if_empty(float(stats.totals[0]), what)
    return calibration_values(stats)


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 15, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Top-label ECE pooled over every counted voxel: ``sum_m |sum_{B_m} (conf - acc)| / N``.

    Equal-width bins with ``(lower, upper]`` membership, as in the NACL authors' evaluation code.

    Args:
        probs: ``(B, C, *spatial)`` probabilities (softmax over C).
        labels: ``(B, 1, *spatial)`` / ``(B, *spatial)`` integer labels, or ``(B, C, *spatial)`` one-hot or soft
            reference (accuracy of a voxel is then ``q_{argmax p}``).
        num_bins: number of equal-width confidence bins (15 in the NACL papers).
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count (e.g. ``labels != 0`` for
            the authors' foreground protocol).

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.

    Example:
        >>> probs = torch.tensor([[[0.9, 0.3], [0.1, 0.7]]], dtype=torch.float64)  # two voxels, classes 0/1
        >>> round(expected_calibration_error(probs, torch.tensor([[0, 0]]), num_bins=2).item(), 6)  # |1.6 - 1| / 2
        0.3
    """
    return _values(probs, labels, num_bins, mask, "expected_calibration_error", classwise=False)["ece"]


def classwise_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 15, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Classwise ECE (CECE): ``1/C sum_c sum_m |sum_{B_m^c} (p_c - 1[y = c])| / N``.

    For each class ``c``, the ECE of ``p_c`` against ``1[y = c]`` (or ``q_c``) over all counted voxels, bins
    ``(lower, upper]`` on ``p_c``; unweighted mean over all C classes, as in the NACL authors' evaluation.

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels ``(B, 1, *spatial)`` / ``(B, *spatial)`` or ``(B, C, *spatial)`` one-hot/soft reference.
        num_bins: number of equal-width bins.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.
    """
    return _values(probs, labels, num_bins, mask, "classwise_calibration_error", top_label=False)["cece"]


def maximum_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 15,
    mask: torch.Tensor | None = None,
    classwise: bool = False,
) -> torch.Tensor:
    """Maximum calibration error: ``max_m |mean_{B_m} conf - mean_{B_m} acc|`` over non-empty bins.

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        num_bins: number of equal-width bins.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.
        classwise: False: top label; True: the MCE of each class's ``p_c`` against ``1[y = c]``, averaged over C.

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.
    """
    if classwise:
        return _values(probs, labels, num_bins, mask, "maximum_calibration_error", top_label=False)["cmce"]
    return _values(probs, labels, num_bins, mask, "maximum_calibration_error", classwise=False)["mce"]


def adaptive_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 15,
    mask: torch.Tensor | None = None,
    classwise: bool = False,
    resolution: int = DEFAULT_RESOLUTION,
    return_bound: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Adaptive ECE over ``num_bins`` equal-mass bins, from a fine histogram (bounded memory, streamable).

    ``ACE = sum_j |sum_{A_j} conf - sum_{A_j} acc| / N`` where ``A_j`` holds the voxels of confidence rank
    ``r`` with ``floor(r * num_bins / N) = j``. Approximation (see the module docstring): whole sub-bins of width
    ``1/resolution`` are assigned to equal-mass bins, with a guaranteed error ``|ACE - ACE_exact| <= bound``.

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        num_bins: number of equal-mass bins.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.
        classwise: False: top label; True: per class (``p_c`` against ``1[y = c]``), averaged over C.
        resolution: number of fine equal-width sub-bins (rounded up to a multiple of ``num_bins``).
        return_bound: also return the error bound.

    Returns:
        0-dim float64 tensor (and its error bound when ``return_bound``); NaN when no voxel is counted.
    """
    options = {"sub_bins": _sub_bins(num_bins, resolution)}
    options["top_label" if classwise else "classwise"] = False
    values = _values(probs, labels, num_bins, mask, "adaptive_calibration_error", **options)
    key = "cace" if classwise else "ace"
    return (values[key], values[f"{key}_bound"]) if return_bound else values[key]


def negative_log_likelihood(
    probs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean negative log-likelihood ``-1/N sum log p_y`` (soft reference: ``-1/N sum_c q_c log p_c``).

    Args:
        probs: ``(B, C, *spatial)`` probabilities (clamped at ``NLL_EPS`` inside the log).
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.
    """
    options = {"top_label": False, "classwise": False}
    return _values(probs, labels, 1, mask, "negative_log_likelihood", **options)["nll"]


def brier_score(probs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Multiclass Brier score ``1/N sum_voxels sum_c (p_c - 1[y = c])^2`` (soft: ``(p_c - q_c)^2``), in [0, 2].

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.
    """
    options = {"top_label": False, "classwise": False}
    return _values(probs, labels, 1, mask, "brier_score", **options)["brier"]


def reliability_from_statistics(stats: CalibrationStatistics) -> dict[str, torch.Tensor]:
    """Per-bin statistics of the top label for a reliability diagram, from pooled statistics.

    Returns:
        ``edges`` (num_bins + 1), and per bin ``count``, ``confidence`` (mean confidence) and ``accuracy``
        (mean accuracy), NaN in empty bins; plus the pooled ``ece``, ``mce`` and ``num_voxels``.
    """
    if stats.top_label is None or stats.top_label.ndim != 2:
        raise ValueError("reliability statistics need pooled (not per-image) top-label histograms.")
    count, conf, acc = _coarse(stats.top_label, stats.num_bins).unbind(-2)
    nonempty = count > 0
    return {
        "edges": torch.linspace(0.0, 1.0, stats.num_bins + 1, dtype=torch.float64),
        "count": count,
        "confidence": torch.where(nonempty, conf / count.clamp_min(1), math.nan),
        "accuracy": torch.where(nonempty, acc / count.clamp_min(1), math.nan),
        "ece": _ece(stats.top_label, stats.num_bins),
        "mce": _mce(stats.top_label, stats.num_bins),
        "num_voxels": count.sum(),
    }


def reliability_statistics(
    probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 15, mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Per-bin count, mean confidence and accuracy of the top label (the data of a reliability diagram).

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        num_bins: number of equal-width bins, ``(lower, upper]``.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.

    Returns:
        see :func:`reliability_from_statistics`; feed it to
        :func:`~monai_nacl.metrics.plots.plot_reliability_diagram`.
    """
    stats = calibration_statistics(probs, labels, num_bins=num_bins, mask=mask, classwise=False)
    warn_if_empty(float(stats.totals[0]), "reliability_statistics")
    return reliability_from_statistics(stats)
