"""Paired statistics of the comparison against independent references: scipy's Wilcoxon test, slow bootstrap loops."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from monai_nacl.compare.paired import (
    BETTER,
    NO_CASES,
    NO_DIFFERENCE,
    WORSE,
    bootstrap_mean_ci,
    case_differences,
    paired_comparison,
    wilcoxon_signed_rank,
)


def differences(n: int, kind: str, seed: int) -> np.ndarray:
    """Known data: normal differences, rounded to halves for ties, with a quarter set to zero for zeros."""
    d = np.random.default_rng(seed).normal(0.4, 1.0, n)
    if kind in ("ties", "ties+zeros"):
        d = np.round(d * 2.0) / 2.0
    if kind == "ties":
        d[d == 0] = 0.5
    if kind in ("zeros", "ties+zeros"):
        d[: max(1, n // 4)] = 0.0
    return d


def assert_matches_scipy(d: np.ndarray, correction: bool) -> None:
    with warnings.catch_warnings():  # scipy warns that the normal approximation is rough for small n
        warnings.simplefilter("ignore")
        expected = stats.wilcoxon(d, correction=correction)
    statistic, p_value = wilcoxon_signed_rank(d, correction=correction)
    assert statistic == expected.statistic
    assert math.isclose(p_value, expected.pvalue, rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("n", [1, 2, 5, 6, 8, 14, 25, 50, 51, 80])
@pytest.mark.parametrize("kind", ["continuous", "ties", "zeros", "ties+zeros"])
@pytest.mark.parametrize("correction", [False, True])
def test_wilcoxon_matches_scipy(n, kind, correction):
    # n <= 50 without ties/zeros: exact law; <= 13 with ties/zeros: sign flips; otherwise normal approximation
    for seed in range(3):
        d = differences(n, kind, seed)
        if d.any():
            assert_matches_scipy(d, correction)


def test_wilcoxon_matches_scipy_at_the_sign_flip_limit():
    # 13 differences with ties and zeros: the largest sample enumerated (scipy's permutation test takes seconds)
    assert_matches_scipy(differences(13, "ties+zeros", 0), correction=False)


def test_wilcoxon_by_hand_and_edge_cases():
    # six positive differences without ties: W- = 0, P(W+ = 21) = 1/64, two-sided 2/64
    assert wilcoxon_signed_rank([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == (0.0, 0.03125)
    # ranks 1..4 with signs + - + +: W+ = 1 + 3 + 4 = 8, W- = 2; P(W+ >= 8) = 3/16 (sums 8, 9, 10) -> p = 6/16
    assert wilcoxon_signed_rank([0.1, -0.2, 0.3, 0.4]) == (2.0, 0.375)
    assert wilcoxon_signed_rank([0.0, 0.0, 0.0]) == (0.0, 1.0)
    assert all(math.isnan(v) for v in wilcoxon_signed_rank([]))
    with pytest.raises(ValueError, match="NaN"):
        wilcoxon_signed_rank([1.0, math.nan])


def slow_percentile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile by hand (numpy's default method)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


def test_bootstrap_matches_a_slow_loop():
    values = [0.012, -0.004, 0.031, 0.008, 0.0, 0.022, -0.015, 0.017, 0.009]
    rng = np.random.default_rng(7)
    means = []
    for _ in range(2000):
        draw = rng.integers(0, len(values), size=(1, len(values)))[0]
        means.append(sum(values[i] for i in draw) / len(values))
    low, high = bootstrap_mean_ci(values, confidence=0.9, resamples=2000, seed=7)
    assert math.isclose(low, slow_percentile(means, 0.05), rel_tol=1e-12)
    assert math.isclose(high, slow_percentile(means, 0.95), rel_tol=1e-12)
    assert bootstrap_mean_ci([0.25] * 5) == (0.25, 0.25)
    assert bootstrap_mean_ci(values) == bootstrap_mean_ci(values)  # fixed seed: reproducible
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_mean_ci([])


def test_case_differences_average_seeds_and_skip_unpaired():
    row = {("a", 0): 0.9, ("a", 1): 0.7, ("b", 0): 0.5, ("b", 1): math.inf, ("c", 0): 0.4}
    reference = {("a", 0): 0.8, ("a", 1): 0.8, ("b", 0): 0.2, ("b", 1): 0.3, ("d", 0): 0.1}
    per_case, pairs = case_differences(row, reference)
    # a: (0.1 + -0.1) / 2 = 0; b: only seed 0 is finite on both sides, 0.3; c and d have no partner
    assert pairs == 3 and set(per_case) == {"a", "b"}
    assert math.isclose(per_case["a"], 0.0, abs_tol=1e-15) and math.isclose(per_case["b"], 0.3)


def test_paired_comparison_resamples_cases_with_their_seeds():
    # 9 cases x 3 seeds; the cluster bootstrap draws cases and pools all seeds of each drawn case
    rng = np.random.default_rng(3)
    cases = [f"case{i}" for i in range(9)]
    reference = {(c, s): float(rng.uniform(0.7, 0.9)) for c in cases for s in range(3)}
    row = {key: value + 0.02 + float(rng.normal(0.0, 0.01)) for key, value in reference.items()}
    result = paired_comparison(row, reference, higher_is_better=True, resamples=3000, seed=11)
    draws = np.random.default_rng(11).integers(0, len(cases), size=(3000, len(cases)))
    means = []
    for draw in draws:
        pooled = [row[(cases[i], s)] - reference[(cases[i], s)] for i in draw for s in range(3)]
        means.append(sum(pooled) / len(pooled))
    assert math.isclose(result.ci_low, slow_percentile(means, 0.025), rel_tol=1e-9)
    assert math.isclose(result.ci_high, slow_percentile(means, 0.975), rel_tol=1e-9)
    per_case = [np.mean([row[(c, s)] - reference[(c, s)] for s in range(3)]) for c in cases]
    assert math.isclose(result.difference, float(np.mean(per_case)), rel_tol=1e-12)
    assert math.isclose(result.p_value, stats.wilcoxon(per_case).pvalue, rel_tol=1e-12)
    assert result.cases == 9 and result.pairs == 27 and result.verdict == BETTER and result.detectable


def test_verdicts():
    reference = {(f"c{i}", 0): 0.5 for i in range(8)}
    higher = {key: 0.6 + 0.001 * i for i, key in enumerate(reference)}
    # all 8 differences positive: p = 2 / 2**8, interval above 0
    assert paired_comparison(higher, reference, higher_is_better=True).verdict == BETTER
    assert paired_comparison(higher, reference, higher_is_better=False).verdict == WORSE
    mixed = {key: 0.5 + (0.01 if i % 2 else -0.01) * (i + 1) for i, key in enumerate(reference)}
    assert paired_comparison(mixed, reference, higher_is_better=True).verdict == NO_DIFFERENCE
    # 3 cases, all better: the interval excludes 0 but the exact test cannot go below p = 0.25
    three = {key: 0.7 for key in list(reference)[:3]}
    result = paired_comparison(three, reference, higher_is_better=True)
    assert result.ci_low > 0 and result.p_value == 0.25 and result.verdict == NO_DIFFERENCE
    empty = paired_comparison({}, reference, higher_is_better=True)
    assert empty.verdict == NO_CASES and empty.cases == 0 and math.isnan(empty.difference)
