"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

The standard post-hoc baseline for calibration: one scalar ``T > 0`` divides every logit before the
softmax, chosen to minimise the negative log-likelihood on held-out (validation) voxels:

    T* = argmin_T  -1/N sum_i log softmax(z_i / T)[y_i]

The argmax (hence Dice) is unchanged; only the confidence moves. The fit optimises ``log T`` (so T stays
positive) with L-BFGS and a strong-Wolfe line search, in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["fit_temperature", "temperature_nll"]


def _flatten(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) logits and (N,) labels from (N, C) / (N,) or (B, C, *spatial) / (B[, 1], *spatial)."""
    if logits.ndim < 2:
        raise ValueError(f"logits must be (N, C) or (B, C, *spatial), got shape {tuple(logits.shape)}.")
    if logits.ndim > 2:
        if labels.ndim == logits.ndim and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(
                f"labels shape {tuple(labels.shape)} does not match logits {tuple(logits.shape)}: expected "
                f"{(logits.shape[0], *logits.shape[2:])} or with a channel axis of 1."
            )
        logits = torch.movedim(logits, 1, -1).reshape(-1, logits.shape[1])
        labels = labels.reshape(-1)
    elif labels.shape != logits.shape[:1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} must be ({logits.shape[0]},) for logits {tuple(logits.shape)}."
        )
    if labels.numel() == 0:
        raise ValueError("temperature scaling needs at least one voxel; got empty logits/labels.")
    labels = labels.long()
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(
            f"labels must lie in [0, {logits.shape[1] - 1}] for {logits.shape[1]} classes, got values in "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )
    return logits.detach().double(), labels


def temperature_nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """Mean NLL of ``softmax(logits / temperature)`` at the true labels.

    Args:
        logits: raw network outputs, (N, C) or (B, C, *spatial).
        labels: integer labels, (N,) or (B, *spatial) / (B, 1, *spatial).
        temperature: the scalar T > 0.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    z, y = _flatten(logits, labels)
    return float(F.cross_entropy(z / temperature, y))


def fit_temperature(
    logits: torch.Tensor, labels: torch.Tensor, init: float = 1.0, max_iter: int = 100, bounds: tuple = (0.05, 20.0)
) -> float:
    """Fit the temperature T minimising the mean NLL of ``softmax(logits / T)`` (Guo et al. 2017).

    Args:
        logits: raw network outputs (not probabilities), (N, C) or (B, C, *spatial).
        labels: integer labels, (N,) or (B, *spatial) / (B, 1, *spatial), values in [0, C).
        init: starting temperature (1.0 = the uncalibrated model).
        max_iter: L-BFGS iterations on ``log T``.
        bounds: the fitted T is clipped to this range; a degenerate set (e.g. every voxel correct, whose
            NLL keeps falling as T -> 0) would otherwise run off to 0 or infinity.

    Returns:
        the fitted temperature as a float.

    Example:
        >>> z = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0]]); y = torch.tensor([0, 1, 1])
        >>> round(fit_temperature(z, y), 2) > 1.0  # one confident mistake: soften
        True
    """
    if not 0 < bounds[0] < bounds[1]:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}.")
    if not init > 0:
        raise ValueError(f"init must be > 0, got {init}.")
    z, y = _flatten(logits, labels)
    log_t = torch.tensor([float(torch.log(torch.tensor(init)))], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    return min(max(temperature, bounds[0]), bounds[1])
