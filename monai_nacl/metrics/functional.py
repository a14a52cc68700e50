"""Calibration metrics of segmentation, pooled over every counted voxel of the input, in float64.

Each function is :func:`~monai_nacl.metrics.statistics.calibration_statistics` (batch -> histograms) followed by
:func:`calibration_values` (histograms -> values), the same two functions the streaming
:class:`~monai_nacl.metrics.SegmentationCalibrationMetric` uses. Notation: ``p_c`` the predicted probability of
class ``c`` at a counted voxel, ``y`` its label (or ``q_c`` a soft reference), ``N`` the number of counted voxels,
``B_m`` the voxels whose confidence falls into bin ``m`` (equal width, ``(lower, upper]``).

Region: the functions here count every voxel where ``mask`` is nonzero, every voxel of the input without a mask.
The NACL papers' protocol is the ground-truth foreground, ``mask = labels != 0``, which the region-aware tools
(:class:`~monai_nacl.metrics.SegmentationCalibrationMetric`, :func:`~monai_nacl.metrics.evaluate_segmentation`,
:class:`~monai_nacl.handlers.CalibrationMetricHandler`) use by default (``region="foreground"``).

Names follow MONAI's ``monai.metrics.CalibrationErrorMetric``: ECE expected, ACE average, MCE maximum; a ``c``
prefix is the classwise mean. The adaptive (equal-mass) ECE is AdaECE, never ACE.

- ECE, top label (Guo et al. 2017; NACL: 15 bins): ``sum_m |sum_{B_m} conf - sum_{B_m} acc| / N`` with
  ``conf = max_c p_c`` and ``acc = 1[argmax p = y]`` (soft reference: ``q_{argmax p}``).
- CECE, classwise (Kull et al. 2019; NACL): for each class the ECE of ``p_c`` against ``1[y = c]`` (``q_c``),
  over all N voxels, then the unweighted mean over a set of classes, ``class_set`` (:data:`CLASS_SETS`):
  ``"all"`` (default, ours): all C classes, background included, whatever the counted voxels hold;
  ``"up_to_max_label"`` (the NACL authors' evaluation): classes ``0..K`` with ``K`` the highest label among the
  counted voxels, so a volume without its highest class averages over fewer classes (their
  ``ClasswiseECELoss``: ``num_classes = max(labels) + 1`` over the voxels it is given, github Bala93/MarginLoss
  ``calibrate/evaluation/metrics.py``, called per volume on the foreground voxels by
  ``calibrate/evaluation/calib_segment_test.py``; the same code in Bala93/CRac). The other classwise means (CACE,
  CMCE, CAdaECE) average over the same set.
- ACE, average calibration error (MONAI's "average" reduction; Barfoot et al. 2024): the unweighted mean of
  ``|mean_{B_m} conf - mean_{B_m} acc|`` over the non-empty bins; CACE the classwise mean of each class's ACE.
- MCE (Naeini et al. 2015): ``max_m |mean_{B_m} conf - mean_{B_m} acc|`` over non-empty bins.
- Marginal calibration errors (:func:`marginal_calibration_error`): MONAI's ``CalibrationErrorMetric`` itself,
  per image and class (one class against the rest), from :func:`~monai_nacl.metrics.statistics.marginal_statistics`.
- AdaECE, adaptive ECE (Nixon et al. 2019; Mukhoti et al. 2020): the ECE over equal-mass bins (each holds
  ``N / num_bins`` voxels by rank of confidence). Computed from a fine histogram (``resolution`` equal-width
  sub-bins ``(lo_s, hi_s]``): a sub-bin goes whole to the equal-mass bin of its first voxel rank, so only voxels
  of the sub-bins that straddle one of the ``num_bins - 1`` rank boundaries can be in another bin than in the
  exact rank-based partition. Moving one voxel changes the sum by at most ``2 |conf - acc|``, and over a sub-bin
  ``sum |conf - acc| <= (n_s - A_s) hi_s + A_s (1 - lo_s)`` (``A_s`` its accuracy sum), hence
  ``|AdaECE - AdaECE_exact| <= 2 / N * sum_{straddling s} [(n_s - A_s) hi_s + A_s (1 - lo_s)]``, returned as
  ``adaece_bound`` (CAdaECE, ``cadaece``: the classwise mean). It is small when the straddling sub-bins are
  sparse or confidently correct (the usual case for a trained network); it grows with many confidently wrong
  voxels sharing a sub-bin.
- NLL: ``-sum log p_y / N`` (soft: ``-sum_c q_c log p_c / N``), ``p`` clamped at
  :data:`~monai_nacl.metrics.statistics.NLL_EPS`.
- Brier (Brier 1950, multiclass form): ``sum_c (p_c - 1[y = c])^2 / N`` (soft: ``(p_c - q_c)^2``), in [0, 2].

Sigmoid channels (``activation="sigmoid"``, and any single channel; see
:data:`~monai_nacl.metrics.statistics.ACTIVATIONS`): each channel ``c`` is a binary problem, ``p_c`` against its
own reference ``y_c`` (several channels may be positive at a voxel), as in MONAI's ``CalibrationErrorMetric``. The
classwise values are then per channel, the top-label values pool the binary decisions of every (voxel, channel)
pair (confidence ``max(p_c, 1 - p_c)``), NLL is the sum over channels of the binary cross-entropy per voxel and
Brier ``sum_c (p_c - y_c)^2`` per voxel. The marginal values are MONAI's in both readings.

An empty selection (mask or region without voxels) gives NaN and a warning, never an exception.
"""

from __future__ import annotations

import math

import torch

from monai_nacl.metrics.statistics import (
    CalibrationStatistics,
    calibration_statistics,
    marginal_statistics,
    warn_if_empty,
)

__all__ = [
    "CLASS_SETS",
    "MARGINAL_REDUCTIONS",
    "adaptive_calibration_error",
    "average_calibration_error",
    "brier_score",
    "calibration_values",
    "classwise_calibration_error",
    "expected_calibration_error",
    "marginal_calibration_error",
    "marginal_values",
    "maximum_calibration_error",
    "negative_log_likelihood",
    "reliability_from_statistics",
    "reliability_statistics",
]

DEFAULT_RESOLUTION = 10000
"""Fine sub-bins of the histogram behind the adaptive ECE (rounded up to a multiple of ``num_bins``)."""

CLASS_SETS = ("all", "up_to_max_label")
"""Classes a classwise mean (CECE, CACE, CMCE, CAdaECE) averages over: ``"all"`` the C classes (ours, the default);
``"up_to_max_label"`` classes ``0..K``, ``K`` the highest label among the counted voxels (the NACL authors')."""

MARGINAL_REDUCTIONS = ("expected", "average", "maximum")
"""Reductions over bins of :func:`marginal_calibration_error`, MONAI's ``CalibrationReduction`` values."""


def _coarse(hist: torch.Tensor, num_bins: int) -> torch.Tensor:
    """(..., 3, M) fine histogram -> (..., 3, num_bins) by summing whole sub-bins."""
    return hist.reshape(*hist.shape[:-1], num_bins, -1).sum(-1)


def _ece(hist: torch.Tensor, num_bins: int) -> torch.Tensor:
    coarse = _coarse(hist, num_bins)
    count, conf, acc = coarse.unbind(-2)
    return (conf - acc).abs().sum(-1) / count.sum(-1)


def _bin_gaps(coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 3, K) histogram -> per-bin ``|mean conf - mean acc|`` (0 in empty bins) and the non-empty mask."""
    count, conf, acc = coarse.unbind(-2)
    nonempty = count > 0
    return torch.where(nonempty, (conf - acc).abs() / count.clamp_min(1), 0.0), nonempty


def _mce(hist: torch.Tensor, num_bins: int) -> torch.Tensor:
    gaps, nonempty = _bin_gaps(_coarse(hist, num_bins))
    return torch.where(nonempty.any(-1), gaps.amax(-1), math.nan)


def _average(hist: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Average calibration error: the unweighted mean of the gaps of the non-empty bins (NaN when all are empty)."""
    gaps, nonempty = _bin_gaps(_coarse(hist, num_bins))
    return gaps.sum(-1) / nonempty.sum(-1)


def _adaptive(hist: torch.Tensor, num_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
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
    adaece = (sums_conf - sums_acc).abs().sum(-1) / total[..., 0]
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
    return adaece, bound


def check_class_set(class_set: str) -> str:
    """``class_set`` if it is one of :data:`CLASS_SETS`, else a ValueError naming both conventions."""
    if class_set not in CLASS_SETS:
        raise ValueError(
            f"class_set must be one of {CLASS_SETS}, got {class_set!r}: 'all' averages the classwise values over "
            "every class (ours), 'up_to_max_label' over classes 0..max(label) of the counted voxels (the NACL "
            "authors' evaluation)."
        )
    return class_set


def _class_mean(per_class: torch.Tensor, classwise: torch.Tensor, class_set: str) -> torch.Tensor:
    """Mean of ``per_class`` (..., C) over the classes of ``class_set``, read from the histograms (..., C, 3, M).

    ``"up_to_max_label"``: class ``c`` occurs among the counted voxels when its accuracy sum (the number of voxels
    labelled ``c``; soft: the reference mass ``sum q_c``) is positive; the mean runs over ``0..K``, ``K`` the highest
    such class (absent classes below ``K`` included, as in the authors' loop). NaN when no voxel was counted.
    """
    if class_set == "all":
        return per_class.mean(-1)
    occurs = classwise[..., 2, :].sum(-1) > 0
    index = torch.arange(occurs.shape[-1], device=occurs.device)
    highest = torch.where(occurs, index, -1).amax(-1, keepdim=True)
    kept = index <= highest
    return torch.where(kept, per_class, 0.0).sum(-1) / kept.sum(-1)


def calibration_values(stats: CalibrationStatistics, class_set: str = "all") -> dict[str, torch.Tensor]:
    """Turn histograms into metric values (the second half of every metric here).

    Args:
        stats: statistics from :func:`~monai_nacl.metrics.statistics.calibration_statistics`, possibly summed over
            batches/ranks, possibly with leading per-image dimensions.
        class_set: classes the classwise means average over (:data:`CLASS_SETS`): ``"all"`` (default, ours) or
            ``"up_to_max_label"`` (the NACL authors': ``0..K``, ``K`` the highest label of the counted voxels of each
            set of statistics, i.e. of each image for per-image statistics, of the pool for pooled ones).

    Returns:
        ``{name: value}``, float64 tensors with the leading dimensions of ``stats``: ``ece``, ``ace``,
        ``mce``, ``adaece``, ``adaece_bound`` (top label, when computed); ``cece``, ``cace``, ``cmce``, ``cadaece``,
        ``cadaece_bound`` (classwise means over ``class_set``, when computed); ``nll``, ``brier``; and ``count``
        (counted voxels).
        The adaptive ECE is exact up to its bound, which is loose when ``sub_bins`` is small. NaN where no voxel
        was counted.
    """
    check_class_set(class_set)
    nb = stats.num_bins
    count = stats.totals[..., 0]
    values = {"count": count, "nll": stats.totals[..., 1] / count, "brier": stats.totals[..., 2] / count}
    if stats.top_label is not None:
        values["ece"] = _ece(stats.top_label, nb)
        values["ace"] = _average(stats.top_label, nb)
        values["mce"] = _mce(stats.top_label, nb)
        values["adaece"], values["adaece_bound"] = _adaptive(stats.top_label, nb)
    if stats.classwise is not None:

        def mean(per_class: torch.Tensor) -> torch.Tensor:
            return _class_mean(per_class, stats.classwise, class_set)

        values["cece"] = mean(_ece(stats.classwise, nb))
        values["cace"] = mean(_average(stats.classwise, nb))
        values["cmce"] = mean(_mce(stats.classwise, nb))
        cadaece, cadaece_bound = _adaptive(stats.classwise, nb)
        values["cadaece"], values["cadaece_bound"] = mean(cadaece), mean(cadaece_bound)
    return values


def sub_bins_for(num_bins: int, resolution: int) -> int:
    """Fine sub-bins per bin so that ``num_bins`` bins hold at least ``resolution`` sub-bins in all."""
    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer number of sub-bins, got {resolution!r}.")
    return max(1, math.ceil(resolution / num_bins))


def _values(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int,
    mask: torch.Tensor | None,
    what: str,
    class_set: str = "all",
    **options: object,
) -> dict[str, torch.Tensor]:
    check_class_set(class_set)
    stats = calibration_statistics(probs, labels, num_bins=num_bins, mask=mask, **options)
    warn_if_empty(float(stats.totals[0]), what)
    return calibration_values(stats, class_set)


def expected_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 15,
    mask: torch.Tensor | None = None,
    activation: str = "softmax",
) -> torch.Tensor:
    """Top-label ECE pooled over every counted voxel: ``sum_m |sum_{B_m} (conf - acc)| / N``.

    Equal-width bins with ``(lower, upper]`` membership, as in the NACL authors' evaluation code. Region: every
    voxel where ``mask`` is nonzero (all voxels without a mask).

    Args:
        probs: ``(B, C, *spatial)`` probabilities (softmax over C).
        labels: ``(B, 1, *spatial)`` / ``(B, *spatial)`` integer labels, or ``(B, C, *spatial)`` one-hot or soft
            reference (accuracy of a voxel is then ``q_{argmax p}``).
        num_bins: number of equal-width confidence bins (15 in the NACL papers).
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count (e.g. ``labels != 0`` for
            the authors' foreground protocol).
        activation: ``"softmax"`` (default) or ``"sigmoid"``, how the channels are read (see the module docstring).

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.

    Example:
        >>> probs = torch.tensor([[[0.9, 0.3], [0.1, 0.7]]], dtype=torch.float64)  # two voxels, classes 0/1
        >>> round(expected_calibration_error(probs, torch.tensor([[0, 0]]), num_bins=2).item(), 6)  # |1.6 - 1| / 2
        0.3
    """
    return _values(probs, labels, num_bins, mask, "expected_calibration_error", classwise=False, activation=activation)[
        "ece"
    ]


def classwise_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 15,
    mask: torch.Tensor | None = None,
    class_set: str = "all",
    activation: str = "softmax",
) -> torch.Tensor:
    """Classwise ECE (CECE): ``1/|S| sum_{c in S} sum_m |sum_{B_m^c} (p_c - 1[y = c])| / N``.

    For each class ``c``, the ECE of ``p_c`` against ``1[y = c]`` (or ``q_c``) over all counted voxels, bins
    ``(lower, upper]`` on ``p_c``; unweighted mean over the class set ``S``: by default all C classes (ours);
    ``class_set="up_to_max_label"`` gives the NACL authors' ``S = {0..K}``, ``K`` the highest label among the
    counted voxels (pass one volume at a time for their per-volume figure). Region: every voxel where ``mask`` is
    nonzero (all voxels without a mask).

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels ``(B, 1, *spatial)`` / ``(B, *spatial)`` or ``(B, C, *spatial)`` one-hot/soft reference.
        num_bins: number of equal-width bins.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.
        class_set: classes the classwise mean averages over, ``"all"`` (default, ours) or ``"up_to_max_label"``
            (the NACL authors'), see :data:`CLASS_SETS`.
        activation: ``"softmax"`` (default) or ``"sigmoid"``, how the channels are read (see the module docstring).

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.

    Example:
        >>> probs = torch.tensor([[[0.6, 0.2], [0.3, 0.7], [0.1, 0.1]]], dtype=torch.float64)  # classes 0..2
        >>> labels = torch.tensor([[1, 1]])  # class 2 absent: the authors' set is {0, 1}
        >>> round(classwise_calibration_error(probs, labels, num_bins=1).item(), 6)  # (0.4 + 0.5 + 0.1) / 3
        0.333333
        >>> round(classwise_calibration_error(probs, labels, 1, class_set="up_to_max_label").item(), 6)  # 0.9 / 2
        0.45
    """
    return _values(
        probs, labels, num_bins, mask, "classwise_calibration_error", class_set, top_label=False, activation=activation
    )["cece"]


def maximum_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 15,
    mask: torch.Tensor | None = None,
    classwise: bool = False,
    class_set: str = "all",
    activation: str = "softmax",
) -> torch.Tensor:
    """Maximum calibration error: ``max_m |mean_{B_m} conf - mean_{B_m} acc|`` over non-empty bins.

    Region: every voxel where ``mask`` is nonzero (all voxels without a mask).

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        num_bins: number of equal-width bins.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.
        classwise: False: top label; True: the MCE of each class's ``p_c`` against ``1[y = c]``, averaged over C.
        class_set: classes the classwise mean averages over, ``"all"`` (default, ours) or ``"up_to_max_label"``
            (the NACL authors'), see :data:`CLASS_SETS`.
        activation: ``"softmax"`` (default) or ``"sigmoid"``, how the channels are read (see the module docstring).

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.
    """
    what = "maximum_calibration_error"
    if classwise:
        return _values(probs, labels, num_bins, mask, what, class_set, top_label=False, activation=activation)["cmce"]
    return _values(probs, labels, num_bins, mask, what, classwise=False, activation=activation)["mce"]


def adaptive_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 15,
    mask: torch.Tensor | None = None,
    classwise: bool = False,
    resolution: int = DEFAULT_RESOLUTION,
    return_bound: bool = False,
    class_set: str = "all",
    activation: str = "softmax",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Adaptive ECE (AdaECE) over ``num_bins`` equal-mass bins, from a fine histogram (bounded memory, streamable).

    ``AdaECE = sum_j |sum_{A_j} conf - sum_{A_j} acc| / N`` where ``A_j`` holds the voxels of confidence rank
    ``r`` with ``floor(r * num_bins / N) = j``. Approximation (see the module docstring): whole sub-bins of width
    ``1/resolution`` are assigned to equal-mass bins, with a guaranteed error ``|AdaECE - AdaECE_exact| <= bound``.
    Reported as ``adaece`` (top label) and ``cadaece`` (classwise); not MONAI's ACE (see
    :func:`average_calibration_error`). Region: every voxel where ``mask`` is nonzero (all voxels without a mask).

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        num_bins: number of equal-mass bins.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.
        classwise: False: top label; True: per class (``p_c`` against ``1[y = c]``), averaged over C.
        resolution: number of fine equal-width sub-bins (rounded up to a multiple of ``num_bins``).
        return_bound: also return the error bound.
        class_set: classes the classwise mean averages over, ``"all"`` (default, ours) or ``"up_to_max_label"``
            (the NACL authors'), see :data:`CLASS_SETS`.
        activation: ``"softmax"`` (default) or ``"sigmoid"``, how the channels are read (see the module docstring).

    Returns:
        0-dim float64 tensor (and its error bound when ``return_bound``); NaN when no voxel is counted.
    """
    options = {"sub_bins": sub_bins_for(num_bins, resolution), "activation": activation}
    options["top_label" if classwise else "classwise"] = False
    values = _values(probs, labels, num_bins, mask, "adaptive_calibration_error", class_set, **options)
    key = "cadaece" if classwise else "adaece"
    return (values[key], values[f"{key}_bound"]) if return_bound else values[key]


def average_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 15,
    mask: torch.Tensor | None = None,
    classwise: bool = False,
    class_set: str = "all",
    activation: str = "softmax",
) -> torch.Tensor:
    """Average calibration error (ACE), MONAI's "average" reduction, pooled over every counted voxel.

    ``ACE = 1/|M| sum_{m in M} |mean_{B_m} conf - mean_{B_m} acc|`` over the set ``M`` of non-empty bins (equal
    width, ``(lower, upper]``): every populated confidence range weighs the same, however few voxels it holds.
    With ``classwise`` (CACE) each class's ``p_c`` against ``1[y = c]``, then the unweighted mean over C.
    Region: every voxel where ``mask`` is nonzero (all voxels without a mask). For MONAI's own per-image,
    one-class-against-the-rest value see :func:`marginal_calibration_error` with ``reduction="average"``.

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        num_bins: number of equal-width bins.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.
        classwise: False: top label; True: per class, averaged over C.
        class_set: classes the classwise mean averages over, ``"all"`` (default, ours) or ``"up_to_max_label"``
            (the NACL authors'), see :data:`CLASS_SETS`.
        activation: ``"softmax"`` (default) or ``"sigmoid"``, how the channels are read (see the module docstring).

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.

    Example:
        >>> probs = torch.tensor([[[0.9, 0.3], [0.1, 0.7]]], dtype=torch.float64)  # both voxels in bin (.5, 1]
        >>> round(average_calibration_error(probs, torch.tensor([[0, 0]]), num_bins=2).item(), 6)  # |0.8 - 0.5|
        0.3
    """
    what = "average_calibration_error"
    if classwise:
        return _values(probs, labels, num_bins, mask, what, class_set, top_label=False, activation=activation)["cace"]
    return _values(probs, labels, num_bins, mask, what, classwise=False, activation=activation)["ace"]


def marginal_values(hist: torch.Tensor) -> dict[str, torch.Tensor]:
    """MONAI's three calibration reductions from per-bin sums ``(..., 3, K)`` (count, sum of ``p``, sum of hits).

    ``expected``: ``sum_k |sum p - sum hits| / N``; ``average``: mean over non-empty bins of
    ``|mean p - mean hits|``; ``maximum``: their maximum. NaN where every bin is empty, as in MONAI.
    """
    count, conf, acc = hist.unbind(-2)
    gaps, nonempty = _bin_gaps(hist)
    return {
        "expected": (conf - acc).abs().sum(-1) / count.sum(-1),
        "average": gaps.sum(-1) / nonempty.sum(-1),
        "maximum": torch.where(nonempty.any(-1), gaps.amax(-1), math.nan),
    }


def marginal_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 20,
    reduction: str = "expected",
    include_background: bool = True,
    mask: torch.Tensor | None = None,
    activation: str = "softmax",
) -> torch.Tensor:
    """MONAI's ``CalibrationErrorMetric`` quantity: per image and class, one class against the rest.

    For image ``b`` and class ``c``, ``p_c`` is binned against ``1[y = c]`` (``num_bins`` equal-width bins, MONAI's
    binning: :func:`~monai_nacl.metrics.statistics.marginal_statistics`) and reduced over bins as
    ``monai.metrics.CalibrationErrorMetric(calibration_reduction=reduction)`` does: ``"expected"`` (the image's
    ECE of class c), ``"average"`` (ACE, unweighted mean over non-empty bins) or ``"maximum"`` (MCE). MONAI's
    ``aggregate()`` (``metric_reduction="mean"``) is the mean of this ``(B, C)`` tensor over its non-NaN entries.
    Region: every voxel where ``mask`` is nonzero (all voxels without a mask, as in MONAI, which has no mask).
    Unlike CECE this is per image, never pooled over voxels of several images. Every channel is its own binary
    problem in both readings of the channels; ``activation="sigmoid"`` (implied for a single channel) accepts what
    MONAI accepts: per-channel probabilities that need not sum to 1 with a ``(B, C, *spatial)`` binary reference.

    Args:
        probs: ``(B, C, *spatial)`` probabilities (softmax over C).
        labels: ``(B, 1, *spatial)`` / ``(B, *spatial)`` integer labels, or ``(B, C, *spatial)`` one-hot (as MONAI
            takes them) or soft reference.
        num_bins: number of equal-width bins (20, MONAI's default).
        reduction: ``"expected"``, ``"average"`` or ``"maximum"``.
        include_background: keep class 0 (MONAI's option of the same name).
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.
        activation: ``"softmax"`` (default) or ``"sigmoid"``, how the channels are read (see the module docstring).

    Returns:
        ``(B, C)`` float64 (``(B, C - 1)`` without background); NaN for an image without counted voxels.

    Example:
        >>> probs = torch.tensor([[[0.9, 0.3], [0.1, 0.7]]], dtype=torch.float64)  # (B=1, C=2, N=2)
        >>> marginal_calibration_error(probs, torch.tensor([[0, 0]]), num_bins=2)  # class 0: |0.9-1| + |0.3-1|
        tensor([[0.4000, 0.4000]], dtype=torch.float64)
    """
    if reduction not in MARGINAL_REDUCTIONS:
        raise ValueError(f"reduction must be one of {MARGINAL_REDUCTIONS} (MONAI's names), got {reduction!r}.")
    hist = marginal_statistics(probs, labels, num_bins=num_bins, mask=mask, activation=activation)
    warn_if_empty(float(hist[:, 0, 0].sum()), "marginal_calibration_error")
    if not include_background:
        hist = hist[:, 1:]
    return marginal_values(hist)[reduction]


def negative_log_likelihood(
    probs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None, activation: str = "softmax"
) -> torch.Tensor:
    """Mean negative log-likelihood ``-1/N sum log p_y`` (soft reference: ``-1/N sum_c q_c log p_c``; sigmoid channels:
    ``-1/N sum_voxels sum_c [y_c log p_c + (1 - y_c) log(1 - p_c)]``).

    Region: every voxel where ``mask`` is nonzero (all voxels without a mask).

    Args:
        probs: ``(B, C, *spatial)`` probabilities (clamped at ``NLL_EPS`` inside the log).
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.
        activation: ``"softmax"`` (default) or ``"sigmoid"``, how the channels are read (see the module docstring).

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.
    """
    options = {"top_label": False, "classwise": False, "activation": activation}
    return _values(probs, labels, 1, mask, "negative_log_likelihood", **options)["nll"]


def brier_score(
    probs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None, activation: str = "softmax"
) -> torch.Tensor:
    """Multiclass Brier score ``1/N sum_voxels sum_c (p_c - 1[y = c])^2`` (soft: ``(p_c - q_c)^2``), in [0, 2] (sigmoid
    channels: ``(p_c - y_c)^2`` summed over channels, in [0, C]).

    Region: every voxel where ``mask`` is nonzero (all voxels without a mask).

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.
        activation: ``"softmax"`` (default) or ``"sigmoid"``, how the channels are read (see the module docstring).

    Returns:
        0-dim float64 tensor; NaN (with a warning) when no voxel is counted.
    """
    options = {"top_label": False, "classwise": False, "activation": activation}
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
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 15,
    mask: torch.Tensor | None = None,
    activation: str = "softmax",
) -> dict[str, torch.Tensor]:
    """Per-bin count, mean confidence and accuracy of the top label (the data of a reliability diagram).

    Region: every voxel where ``mask`` is nonzero (all voxels without a mask).

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: integer labels or ``(B, C, *spatial)`` one-hot/soft reference.
        num_bins: number of equal-width bins, ``(lower, upper]``.
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, True where voxels count.
        activation: ``"softmax"`` (default) or ``"sigmoid"``, how the channels are read (see the module docstring).

    Returns:
        see :func:`reliability_from_statistics` (the numbers that
        :func:`~monai_nacl.metrics.plots.plot_reliability_diagram` draws from the statistics).
    """
    stats = calibration_statistics(probs, labels, num_bins=num_bins, mask=mask, classwise=False, activation=activation)
    warn_if_empty(float(stats.totals[0]), "reliability_statistics")
    return reliability_from_statistics(stats)
