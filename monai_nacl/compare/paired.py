"""Paired statistics of a comparison: per-case differences against a reference row, their bootstrap interval
and the Wilcoxon signed-rank test.

Two rows of the report are evaluated on the same test cases with the same seeds, so each (case, seed) gives a
paired difference ``d = value(row) - value(reference)``. The seeds of one case are not independent
observations (they share the image and its label), so each case is one unit:

    d_i = mean over the seeds s that both rows finished of (value(row, i, s) - value(reference, i, s))
    difference = mean_i d_i

This is the cluster bootstrap that resamples cases and keeps each case's seeds together: with the seeds
averaged inside a case first, resampling cases with replacement and averaging their ``d_i`` is the same
estimator. The interval is the percentile interval of ``difference`` over resamples; the test is the
Wilcoxon signed-rank test on the ``d_i``. The interval covers the variation over test cases for the trained
models at hand; a training-seed effect shared by every case is not a source of variability in it (run
several seeds and read the rows' ``± std`` for that).

A difference is called detectable only when both agree: the interval excludes 0 and the test's p-value is
below ``1 - confidence``. The percentile interval is too narrow with few cases; the exact test is the guard
(with n cases its smallest two-sided p-value is ``2 / 2**n``, so fewer than 6 cases never reach 0.05).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BETTER",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "NO_CASES",
    "NO_DIFFERENCE",
    "WORSE",
    "PairedComparison",
    "bootstrap_mean_ci",
    "case_differences",
    "paired_comparison",
    "wilcoxon_signed_rank",
]

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no detectable difference"
NO_CASES = "no paired cases"

_EXACT_MAX_N = 50
"""Up to this many differences without ties or zeros, the exact null distribution (as scipy's ``auto``)."""
_SIGN_FLIP_MAX_N = 13
"""Up to this many differences with ties or zeros, all ``2**n`` sign flips are enumerated (as scipy's ``auto``)."""


def _exact_counts(n: int) -> np.ndarray:
    """``counts[k]``: number of subsets of the ranks ``1..n`` whose sum is ``k`` (the null law of W+ times 2**n)."""
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=np.float64)  # at most 2**50: exact in float64
    counts[0] = 1.0
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return counts


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based) of ``values`` and the size of each group of equal values."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    sizes = np.diff(np.r_[starts, len(values)])
    group_ranks = starts + (sizes + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(group_ranks, sizes)
    return ranks, sizes


def wilcoxon_signed_rank(differences: Sequence[float], correction: bool = False) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired differences; the conventions of ``scipy.stats.wilcoxon``.

    Zeros are dropped before ranking (``zero_method="wilcox"``); the others are ranked by ``|d|`` with average
    ranks for ties; ``W+`` is the rank sum of the positive differences. The p-value follows scipy's
    ``method="auto"`` (scipy 1.17):

    - at most 50 differences, no ties and no zeros: the exact null law of ``W+`` (each rank's sign is a fair
      coin), ``p = min(1, 2 min(P(W+ >= w), P(W+ <= w)))``;
    - at most 13 differences with ties or zeros: the same with the observed ranks, by enumerating all sign flips;
    - otherwise the normal approximation ``z = (W+ - n(n+1)/4) / sigma`` with
      ``sigma^2 = (n(n+1)(2n+1) - sum_t (t^3 - t) / 2) / 24`` over the tie groups t of the n non-zero
      differences, ``p = 2 (1 - Phi(|z|))``; ``correction=True`` replaces ``|z|`` by ``| |z| - 0.5 / sigma |``
      (continuity correction, off by default as in scipy).

    Args:
        differences: paired differences; NaN is not accepted.
        correction: continuity correction of the normal approximation.

    Returns:
        ``(statistic, p_value)``: ``min(W+, W-)`` and the two-sided p-value; ``(nan, nan)`` for no difference at
        all, and p = 1 when every difference is zero (scipy gives NaN there above 13 differences).

    Example:
        >>> wilcoxon_signed_rank([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        (0.0, 0.03125)
    """
    d = np.asarray(differences, dtype=np.float64).reshape(-1)
    if np.isnan(d).any():
        raise ValueError(f"differences must not contain NaN, got {d.tolist()}; drop the unpaired cases first.")
    if d.size == 0:
        return math.nan, math.nan
    nonzero = d[d != 0]
    n = nonzero.size
    ranks, tie_sizes = _average_ranks(np.abs(nonzero))
    w_plus = float(ranks[nonzero > 0].sum())
    w_minus = float(ranks[nonzero < 0].sum())
    statistic = min(w_plus, w_minus)
    has_ties = bool((tie_sizes > 1).any())
    has_zeros = n < d.size
    if d.size <= _EXACT_MAX_N and not has_ties and not has_zeros:
        counts = _exact_counts(n)
        total = 2.0**n
        w = round(w_plus)
        p = 2.0 * min(counts[w:].sum(), counts[: w + 1].sum()) / total
    elif d.size <= _SIGN_FLIP_MAX_N:
        twice = np.rint(2.0 * ranks).astype(np.int64)  # average ranks are multiples of 1/2: exact integers
        signs = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
        null = signs @ twice
        observed = int(twice[nonzero > 0].sum())
        p = 2.0 * min(np.mean(null >= observed), np.mean(null <= observed))
    else:
        mean = n * (n + 1) / 4.0
        sigma = math.sqrt((n * (n + 1) * (2 * n + 1) - float((tie_sizes**3 - tie_sizes).sum()) / 2.0) / 24.0)
        if sigma == 0.0:
            return statistic, 1.0
        z = abs(w_plus - mean) / sigma
        if correction and z > 0:
            z = abs(z - 0.5 / sigma)
        p = math.erfc(z / math.sqrt(2.0))
    return statistic, float(min(p, 1.0))


def bootstrap_mean_ci(
    values: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement, fixed seed).

    Resample ``b`` draws ``n`` indices uniformly from ``numpy.random.default_rng(seed).integers(0, n, (B, n))``
    row ``b``; the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (linear
    interpolation, ``numpy.quantile``'s default) of the ``B`` resampled means.

    Args:
        values: one value per independent unit (here: per test case); at least one, no NaN.
        confidence: coverage of the interval, in (0, 1).
        resamples: number of bootstrap resamples ``B``.
        seed: seed of the resampling, so that a report is reproducible.

    Returns:
        ``(low, high)``.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0 or np.isnan(x).any():
        raise ValueError(f"bootstrap needs at least one value and no NaN, got {x.tolist()}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}.")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}.")
    index = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))
    means = x[index].mean(axis=1)
    low, high = np.quantile(means, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return float(low), float(high)


def case_differences(
    values: Mapping[tuple[str, int], float], reference: Mapping[tuple[str, int], float]
) -> tuple[dict[str, float], int]:
    """Per-case paired differences, averaged over the seeds both rows finished.

    Args:
        values: ``{(case, seed): value}`` of the row.
        reference: ``{(case, seed): value}`` of the reference row.

    Returns:
        ``({case: mean over paired seeds of (value - reference)}, number of (case, seed) pairs used)``; pairs
        where either value is missing or not finite (e.g. an infinite HD95) are left out, and a case without
        any pair is absent.
    """
    per_case: dict[str, list[float]] = {}
    for key in sorted(set(values) & set(reference)):
        a, b = float(values[key]), float(reference[key])
        if math.isfinite(a) and math.isfinite(b):
            per_case.setdefault(key[0], []).append(a - b)
    pairs = sum(len(d) for d in per_case.values())
    return {case: float(np.mean(d)) for case, d in per_case.items()}, pairs


@dataclass(frozen=True)
class PairedComparison:
    """A row against the reference on one metric (differences in the metric's stored unit: row - reference).

    Args:
        difference: mean over cases of the per-case differences (NaN without a paired case).
        ci_low: lower end of the percentile bootstrap interval.
        ci_high: upper end.
        p_value: two-sided Wilcoxon signed-rank p-value on the per-case differences.
        cases: number of cases with at least one paired seed.
        pairs: number of (case, seed) pairs.
        verdict: :data:`BETTER`, :data:`WORSE`, :data:`NO_DIFFERENCE` or :data:`NO_CASES`.
    """

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    cases: int
    pairs: int
    verdict: str

    @property
    def detectable(self) -> bool:
        """True when the difference is called (better or worse): interval excludes 0 and p below the level."""
        return self.verdict in (BETTER, WORSE)


def paired_comparison(
    values: Mapping[tuple[str, int], float],
    reference: Mapping[tuple[str, int], float],
    higher_is_better: bool,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedComparison:
    """Compare a row with the reference on one metric (see the module docstring for the statistics).

    Args:
        values: ``{(case, seed): value}`` of the row.
        reference: ``{(case, seed): value}`` of the reference row.
        higher_is_better: True for DSC, False for the calibration errors, NLL and Brier.
        confidence: interval coverage; the test's level is ``1 - confidence``.
        resamples: bootstrap resamples.
        seed: bootstrap seed.
    """
    per_case, pairs = case_differences(values, reference)
    if not per_case:
        return PairedComparison(math.nan, math.nan, math.nan, math.nan, 0, 0, NO_CASES)
    d = np.array(list(per_case.values()), dtype=np.float64)
    low, high = bootstrap_mean_ci(d, confidence, resamples, seed)
    _, p_value = wilcoxon_signed_rank(d)
    difference = float(d.mean())
    verdict = NO_DIFFERENCE
    if (low > 0 or high < 0) and p_value < round(1.0 - confidence, 12):  # 1 - 0.95 is 0.05000000000000004
        verdict = BETTER if (difference > 0) == higher_is_better else WORSE
    return PairedComparison(difference, low, high, p_value, len(per_case), pairs, verdict)
