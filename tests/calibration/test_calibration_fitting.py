"""Fitted temperatures against brute-force grid searches of the NLL, and local temperature scaling on a toy set
whose miscalibration varies in space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import logsumexp

from monai_nacl.calibration import (
    LocalTemperatureScaling,
    calibration_report,
    fit_calibrator,
    fit_temperature,
    fit_vector_temperatures,
    sample_calibration_set,
    temperature_nll,
)


def grid_nll(logits: torch.Tensor, labels: torch.Tensor, temperature) -> float:
    """Reference NLL in NumPy/SciPy: mean of logsumexp(z / T) - z_y / T (T scalar or per class)."""
    z, y = logits.numpy() / np.asarray(temperature, dtype=np.float64), labels.numpy()
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(y)), y]))


GRID = [0.2 + 0.005 * i for i in range(1000)]  # 0.2 .. 5.2


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_temperature_matches_grid_search(true_t):
    gen = torch.Generator().manual_seed(0)
    # labels drawn from softmax(z / true_t): the NLL minimiser is near true_t
    z = torch.randn(400, 3, generator=gen, dtype=torch.float64) * 3
    y = torch.multinomial(torch.softmax(z / true_t, 1), 1, generator=gen)[:, 0]
    values = [grid_nll(z, y, t) for t in GRID]
    best_t = GRID[values.index(min(values))]
    fitted = fit_temperature(z, y)
    assert abs(fitted - best_t) <= 0.005
    assert grid_nll(z, y, fitted) <= min(values) + 1e-9
    assert math.isclose(temperature_nll(z, y, fitted), grid_nll(z, y, fitted), rel_tol=1e-9)
    module = fit_calibrator("ts", [(z.T[None].float(), y[None])])  # the same fit through the (B, C, N) path
    assert abs(module.value - fitted) < 1e-4


def test_vector_temperatures_match_per_class_grid_search():
    gen = torch.Generator().manual_seed(2)
    true_t = torch.tensor([0.6, 1.5, 3.0], dtype=torch.float64)
    z = torch.randn(900, 3, generator=gen, dtype=torch.float64) * 3
    y = torch.multinomial(torch.softmax(z / true_t, 1), 1, generator=gen)[:, 0]
    fitted = fit_vector_temperatures(z, y)
    # the NLL is convex in (1 / T_c), so the joint optimum is the point where each T_c is the 1-D grid optimum with
    # the other temperatures held at their fitted values
    for c in range(3):
        values = []
        for t in GRID:
            temps = list(fitted)
            temps[c] = t
            values.append(grid_nll(z, y, temps))
        assert abs(fitted[c] - GRID[values.index(min(values))]) <= 0.005, (c, fitted)
    assert grid_nll(z, y, fitted) < grid_nll(z, y, fit_temperature(z, y)) - 0.01  # per class beats one T here
    module = fit_calibrator("vector", [(z.T[None].float(), y[None])])
    np.testing.assert_allclose(module.values, fitted, atol=1e-3)


def test_spatial_layout_equals_flat():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(2, 3, 5, 4, generator=gen) * 2
    y = torch.randint(0, 3, (2, 1, 5, 4), generator=gen)
    flat_z = z.movedim(1, -1).reshape(-1, 3)
    assert math.isclose(fit_temperature(z, y), fit_temperature(flat_z, y.reshape(-1)), rel_tol=1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="labels shape"):
        fit_temperature(torch.zeros(2, 3, 4), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        fit_temperature(torch.zeros(4, 3), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="> 0"):
        temperature_nll(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), 0.0)
    with pytest.raises(ValueError, match="must be one of"):
        fit_calibrator("platt", [(torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.long))])
    with pytest.raises(ValueError, match="no foreground"):
        sample_calibration_set([(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4))], "ts", region="foreground")


def test_voxel_sampling_is_bounded_and_uses_the_region():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, 2, 10, 10, generator=gen)
    y = torch.randint(0, 2, (2, 1, 10, 10), generator=gen)
    data = sample_calibration_set([(z, y)], "ts", region="foreground", max_voxels_per_case=7)
    assert data.cases == 2 and [len(v) for v in data.logits] == [7, 7]
    logits, labels = data.voxels()
    assert bool((labels == 1).all())
    rows = {tuple(r) for r in z.movedim(1, -1).reshape(-1, 2)[y.reshape(-1) == 1].tolist()}
    assert all(tuple(r) in rows for r in logits.float().tolist())


def spatial_toy(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two-class images whose logits are the true log-odds times 3 on the left half (over-confident) and times 0.4
    on the right half (under-confident); the image marks the halves (-1 left, +1 right), as a tissue type would."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, 1, size, size, generator=gen)
    u = F.avg_pool2d(F.pad(u, (2, 2, 2, 2), mode="circular"), 5, stride=1) * 10.0  # smooth log-odds field
    left = torch.zeros(1, 1, size, size, dtype=torch.bool)
    left[..., : size // 2] = True
    labels = (torch.rand(n, 1, size, size, generator=gen) < torch.sigmoid(u)).long()
    logits = torch.cat([torch.zeros_like(u), u * torch.where(left, 3.0, 0.4)], dim=1)
    image = torch.where(left, -1.0, 1.0).expand(n, 1, size, size).clone()
    return logits, labels, image


def test_local_temperature_scaling_beats_one_temperature_on_held_out_data():
    logits, labels, image = spatial_toy(8, seed=0)
    ts = fit_calibrator("ts", [(logits, labels)])
    data = sample_calibration_set([(logits, labels, image)], "lts", patch_size=(32, 32), patches_per_case=1)
    lts = fit_calibrator("lts", data, steps=120)
    val_logits, val_labels, val_image = spatial_toy(8, seed=1)
    with torch.no_grad():
        nll_ts = float(F.cross_entropy(ts(val_logits), val_labels[:, 0]))
        nll_lts = float(F.cross_entropy(lts(val_logits, val_image), val_labels[:, 0]))
        temperature = lts.temperature(val_logits, val_image)
    assert nll_lts < nll_ts - 0.03, (nll_lts, nll_ts)
    # the map follows the miscalibration: soften the left half (true factor 3), sharpen the right (0.4)
    assert float(temperature[..., :16].median()) > 2.0 and float(temperature[..., 16:].median()) < 0.8
    assert torch.equal(lts(val_logits, val_image).argmax(1), val_logits.argmax(1))  # T > 0 keeps the argmax


def test_untrained_local_temperature_is_plain_temperature_scaling():
    module = LocalTemperatureScaling(3, spatial_dims=3, initial_temperature=1.7)
    z = torch.randn(2, 3, 6, 5, 4)
    torch.testing.assert_close(module(z), z / 1.7)


def test_2d_local_temperature_slices_3d_volumes():
    torch.manual_seed(0)
    module = LocalTemperatureScaling(2, spatial_dims=2, image_channels=1, slice_axis=1)
    torch.nn.init.normal_(module.net[-1].weight, std=0.5)
    z, image = torch.randn(1, 2, 5, 3, 6), torch.randn(1, 1, 5, 3, 6)
    expected = torch.stack([module(z[:, :, :, k], image[:, :, :, k]) for k in range(3)], dim=3)
    torch.testing.assert_close(module(z, image), expected)
    with pytest.raises(ValueError, match="image"):
        module(z)


def reference_ece(logits: torch.Tensor, labels: torch.Tensor, num_bins: int = 15) -> float:
    """Top-label ECE in NumPy: equal-width (lower, upper] bins, |sum(conf - correct)| per bin over N."""
    z = logits.double().numpy()
    p = np.exp(z - logsumexp(z, axis=1, keepdims=True))
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == labels.numpy()).astype(np.float64)
    index = np.clip(np.ceil(conf * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
    gaps = np.bincount(index, weights=conf - correct, minlength=num_bins)
    return float(np.abs(gaps).sum() / len(conf))


def test_fit_report_against_references_on_many_voxels():
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(1, 3, 300_000, generator=gen) * 3  # more voxels than one chunk of the metrics' statistics
    y = torch.multinomial(torch.softmax(z[0].T / 2.0, 1), 1, generator=gen)[:, 0][None]
    data = sample_calibration_set([(z, y)], "ts", max_voxels_per_case=300_000)
    calibrator = fit_calibrator("ts", data)
    report = calibration_report(calibrator, data)
    flat, labels = z[0].T, y[0]
    assert report["voxels"] == 300_000 and report["cases"] == 1
    assert math.isclose(report["nll_before"], grid_nll(flat.double(), labels, 1.0), rel_tol=1e-9)
    assert math.isclose(report["nll_after"], grid_nll(flat.double(), labels, calibrator.value), rel_tol=1e-9)
    assert math.isclose(report["ece_before"], reference_ece(flat, labels), abs_tol=1e-9)
    assert math.isclose(report["ece_after"], reference_ece(flat / calibrator.value, labels), abs_tol=1e-9)
    assert report["ece_after"] < report["ece_before"] / 3
