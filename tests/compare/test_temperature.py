"""Temperature scaling fit against a brute-force grid search of the NLL (independent reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from monai_nacl.compare.temperature import fit_temperature, temperature_nll


def grid_nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """Reference NLL in NumPy/SciPy: mean of logsumexp(z / T) - z_y / T."""
    z, y = logits.numpy() / temperature, labels.numpy()
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(y)), y]))


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_matches_grid_search(true_t):
    gen = torch.Generator().manual_seed(0)
    # labels drawn from softmax(z / true_t): the NLL minimiser is near true_t
    z = torch.randn(400, 3, generator=gen, dtype=torch.float64) * 3
    y = torch.multinomial(torch.softmax(z / true_t, 1), 1, generator=gen)[:, 0]
    grid = [0.2 + 0.005 * i for i in range(1000)]  # 0.2 .. 5.2
    values = [grid_nll(z, y, t) for t in grid]
    best_t = grid[values.index(min(values))]
    fitted = fit_temperature(z, y)
    assert abs(fitted - best_t) <= 0.005
    assert grid_nll(z, y, fitted) <= min(values) + 1e-9
    assert math.isclose(temperature_nll(z, y, fitted), grid_nll(z, y, fitted), rel_tol=1e-9)


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
