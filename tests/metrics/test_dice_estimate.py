"""The Soft Dice Confidence against a NumPy reference on known maps, against the Monte Carlo expected Dice of a
perfectly calibrated model, and its agreement measures against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from monai_nacl.metrics import dice_estimate_agreement, foreground_mean, soft_dice_confidence


def numpy_sdc(probs: np.ndarray) -> np.ndarray:
    """``(B, C)`` Soft Dice Confidence, one case and class at a time, in float64 NumPy."""
    batch, channels = probs.shape[:2]
    flat = probs.reshape(batch, channels, -1).astype(np.float64)
    result = np.empty((batch, channels))
    for b in range(batch):
        predicted = flat[b].argmax(0)
        for c in range(channels):
            mask = predicted == c
            p = flat[b, c]
            denominator = p.sum() + mask.sum()
            result[b, c] = 2.0 * p[mask].sum() / denominator if denominator > 0 else math.nan
    return result


def smooth_probabilities(batch: int, channels: int, size: int, sharpness: float, seed: int) -> torch.Tensor:
    """Softmax of spatially smooth random logits: blobs of each class, with uncertain borders."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch * channels, 1, size, size, generator=g, dtype=torch.float64)
    kernel = torch.ones(1, 1, 7, 7, dtype=torch.float64) / 49
    logits = torch.nn.functional.conv2d(noise, kernel, padding=3).reshape(batch, channels, size, size)
    return torch.softmax(sharpness * logits / logits.std(), dim=1)


def test_known_values() -> None:
    """Worked numbers: class 1 is predicted at voxels 2 and 3: 2 (0.7 + 0.9) / (1.9 + 2); class 0 at voxels 0 and 1:
    2 (0.9 + 0.8) / (2.1 + 2)."""
    p = torch.tensor([[0.9, 0.8, 0.3, 0.1], [0.1, 0.2, 0.7, 0.9]], dtype=torch.float64).view(1, 2, 4)
    np.testing.assert_allclose(soft_dice_confidence(p).numpy(), [[3.4 / 4.1, 3.2 / 3.9]], rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 4, 9, 7, 5), (3, 3, 16, 12), (1, 2, 30)])
def test_against_numpy(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(sum(shape))
    probs = torch.softmax(3.0 * torch.randn(shape, generator=g), dim=1)
    estimate = soft_dice_confidence(probs)
    assert estimate.shape == shape[:2] and estimate.dtype == torch.float64
    np.testing.assert_allclose(estimate.numpy(), numpy_sdc(probs.numpy()), rtol=1e-6)


def test_empty_prediction_and_impossible_class() -> None:
    """A class predicted nowhere estimates Dice 0 (its Dice against any label holding it); one with probability 0
    everywhere has no Dice (NaN), and the foreground mean leaves it out."""
    p = torch.zeros(1, 3, 4, dtype=torch.float64)
    p[0, 0] = torch.tensor([0.6, 0.7, 0.2, 0.9])
    p[0, 1] = torch.tensor([0.4, 0.3, 0.8, 0.1])  # the argmax of voxel 2 only
    estimate = soft_dice_confidence(p)
    assert math.isnan(estimate[0, 2].item())  # class 2: probability 0 everywhere, never predicted
    assert estimate[0, 1].item() == pytest.approx(2 * 0.8 / (1.6 + 1))
    mean = foreground_mean(estimate)
    assert mean.item() == pytest.approx(2 * 0.8 / (1.6 + 1))  # class 2 left out
    q = p.clone()
    q[0, 1], q[0, 0] = torch.tensor([0.4, 0.3, 0.45, 0.1]), torch.tensor([0.6, 0.7, 0.55, 0.9])
    assert soft_dice_confidence(q)[0, 1].item() == 0.0  # never the argmax, some probability: Dice 0
    np.testing.assert_allclose(foreground_mean(estimate, include_background=True).item(), np.nanmean(estimate))


def test_perfectly_calibrated_model_matches_its_expected_dice() -> None:
    """Labels drawn voxel by voxel from the predicted probabilities (a perfectly calibrated model, conditional
    independence): the mean Dice of the argmax prediction over the draws estimates E[Dice]; the SDC lies within four
    Monte Carlo standard errors of it for every case and class (the SDC's own bias, O(1 / structure size), is far
    below that at 32 x 32)."""
    probs = smooth_probabilities(batch=6, channels=3, size=32, sharpness=3.0, seed=0)
    draws = 1500
    rng = np.random.default_rng(0)
    cumulative = probs.cumsum(1).numpy()
    predicted = probs.argmax(1).numpy()
    dice = np.empty((draws, 6, 3))
    for t in range(draws):
        labels = (rng.random((6, 1, 32, 32)) > cumulative).sum(1)
        for c in range(3):
            hit, truth = predicted == c, labels == c
            dice[t, :, c] = 2.0 * (hit & truth).sum((1, 2)) / (hit.sum((1, 2)) + truth.sum((1, 2)))
    expected = dice.mean(0)
    standard_error = dice.std(0, ddof=1) / math.sqrt(draws)
    estimate = soft_dice_confidence(probs).numpy()
    assert 0.4 < expected[:, 1:].min() and expected[:, 1:].max() < 0.95  # neither trivial nor perfect
    assert (np.abs(estimate - expected) <= 4.0 * standard_error).all(), np.abs(estimate - expected) / standard_error


def test_over_confident_model_promises_more() -> None:
    """The same labels drawn from calibrated probabilities, but the estimate read from sharpened ones (an
    over-confident model, logits x 3): the estimate exceeds the expected Dice."""
    calibrated = smooth_probabilities(batch=2, channels=3, size=32, sharpness=1.5, seed=1)
    sharpened = torch.softmax(3.0 * calibrated.log(), dim=1)
    assert torch.equal(sharpened.argmax(1), calibrated.argmax(1))
    assert (soft_dice_confidence(sharpened)[:, 1:] > soft_dice_confidence(calibrated)[:, 1:] + 0.05).all()


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        (torch.rand(2, 3), r"\(B, C, \*spatial\) with C >= 2, got shape \(2, 3\)"),
        (torch.ones(1, 1, 4), r"C >= 2, got shape \(1, 1, 4\)"),
        (torch.randn(1, 3, 4, 4) * 5, r"must lie in \[0, 1\].*not logits"),
        (torch.full((1, 2, 4), 0.3), "must sum to 1 over the class axis"),
        (torch.full((1, 2, 4), math.nan), "contain NaN"),
    ],
)
def test_bad_input_is_refused(probs: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        soft_dice_confidence(probs)


def test_agreement_against_scipy() -> None:
    rng = np.random.default_rng(3)
    true = rng.random(40)
    estimated = np.round(true + rng.normal(0.05, 0.1, 40), 1)  # rounded: ties in the ranks
    estimated[[3, 7]], true[11] = np.nan, np.nan
    result = dice_estimate_agreement(estimated, true)
    keep = np.isfinite(estimated) & np.isfinite(true)
    assert result["num_pairs"] == 37 == keep.sum()
    assert result["mae"] == pytest.approx(np.abs(estimated[keep] - true[keep]).mean(), rel=1e-12)
    assert result["bias"] == pytest.approx((estimated[keep] - true[keep]).mean(), rel=1e-12)
    assert result["spearman"] == pytest.approx(scipy.stats.spearmanr(estimated[keep], true[keep])[0], rel=1e-12)
    assert result["pearson"] == pytest.approx(scipy.stats.pearsonr(estimated[keep], true[keep])[0], rel=1e-12)


def test_agreement_undefined_cases() -> None:
    assert dice_estimate_agreement([], [])["num_pairs"] == 0
    two = dice_estimate_agreement([0.5, 0.7], [0.4, 0.9])
    assert two["mae"] == pytest.approx(0.15) and math.isnan(two["spearman"]) and math.isnan(two["pearson"])
    assert math.isnan(dice_estimate_agreement([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])["pearson"])
    with pytest.raises(ValueError, match="got 2 estimated and 3 true"):
        dice_estimate_agreement([0.1, 0.2], [0.1, 0.2, 0.3])
