"""Slow, direct reference implementations of the calibration losses, written from the formulas in REFERENCE.md.

Independent of ``monai_nacl``: dense k^d kernels built point by point, windows padded in numpy on the label
map itself, losses as literal float64 formulas whose gradients come from plain autograd.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch


def dense_kernel(kernel_ops: str, kernel_size: int, sigma: float, dims: int) -> np.ndarray:
    """The window weights, one entry per offset, built offset by offset."""
    if kernel_ops == "mean":
        return np.full((kernel_size,) * dims, 1.0 / kernel_size**dims)
    if kernel_ops == "gaussian":  # MONAI GaussianFilter: erf-integrated Gaussian, tail 4 sigma, not renormalised
        tail = int(max(sigma * 4.0, 0.5) + 0.5)
        size = 2 * tail + 1
        kernel = np.zeros((size,) * dims)
        for offset in itertools.product(range(size), repeat=dims):
            weight = 1.0
            for o in offset:
                x = o - tail
                s = math.sqrt(2.0) * sigma
                weight *= 0.5 * (math.erf((x + 0.5) / s) - math.erf((x - 0.5) / s))
            kernel[offset] = weight
        return kernel
    # SVLS: Gaussian over the k^d grid, normalised; centre replaced by the sum of the others; renormalised
    centre = (kernel_size - 1) / 2.0
    kernel = np.zeros((kernel_size,) * dims)
    for offset in itertools.product(range(kernel_size), repeat=dims):
        kernel[offset] = math.exp(-sum((o - centre) ** 2 for o in offset) / (2.0 * sigma**2))
    kernel /= kernel.sum()
    if kernel_size == 1:
        return kernel
    middle = (kernel_size // 2,) * dims
    kernel[middle] = 1.0 - kernel[middle]
    return kernel / kernel.sum()


def one_hot_np(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(B, *spatial) ints -> (B, C, *spatial) float64; values outside [0, C) give an all-zero row."""
    out = np.zeros((labels.shape[0], num_classes, *labels.shape[1:]))
    for c in range(num_classes):
        out[:, c] = labels == c
    return out


def prior_reference(
    labels: np.ndarray,
    num_classes: int,
    kernel_size: int = 3,
    kernel_ops: str = "mean",
    sigma: float = 1.0,
    border: str = "zeros",
    unknown: np.ndarray | None = None,
) -> np.ndarray:
    """Neighbourhood proportions of a (B, *spatial) label map by a dense correlation over every offset.

    ``unknown``: (B, *spatial) bool of voxels whose label is unknown; they count for no class.
    """
    dims = labels.ndim - 1
    kernel = dense_kernel(kernel_ops, kernel_size, sigma, dims)
    r = kernel.shape[0] // 2
    known = np.ones(labels.shape, dtype=bool) if unknown is None else ~unknown
    width = [(0, 0)] + [(r, r)] * dims
    outside = num_classes  # a label value that is no class
    if border == "replicate":
        padded_labels = np.pad(np.where(known, labels, outside), width, mode="edge")
    elif border == "background":
        padded_labels = np.pad(np.where(known, labels, outside), width, constant_values=0)
    else:
        padded_labels = np.pad(np.where(known, labels, outside), width, constant_values=outside)
    padded = one_hot_np(padded_labels, num_classes)
    support = np.pad(known.astype(float), width)  # 1 where a known, in-image voxel sits
    spatial = labels.shape[1:]
    out = np.zeros((labels.shape[0], num_classes, *spatial))
    total = np.zeros(labels.shape)
    for offset in itertools.product(range(kernel.shape[0]), repeat=dims):
        window = tuple(slice(o, o + n) for o, n in zip(offset, spatial))
        out += kernel[offset] * padded[(slice(None), slice(None), *window)]
        total += kernel[offset] * support[(slice(None), *window)]
    if border == "normalized":
        out /= np.maximum(total, 1e-300)[:, None]
    return out


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    shifted = logits - logits.max(dim=1, keepdim=True).values
    return shifted - shifted.exp().sum(1, keepdim=True).log()


def target_distribution(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, *spatial) labels -> float64 one-hot; (B, C, *spatial) soft target -> itself as float64."""
    if target.ndim >= 2 and target.is_floating_point():
        return target.double()
    return torch.from_numpy(one_hot_np(target.numpy(), num_classes))


def voxel_losses(name: str, logits: torch.Tensor, target: torch.Tensor, **kw) -> torch.Tensor:
    """Per-voxel loss (B, *spatial) in float64; ``target`` labels (B, *spatial) or soft (B, C, *spatial)."""
    num_classes = logits.shape[1]
    y = target_distribution(target, num_classes)
    logp = log_softmax(logits)
    ce = -(y * logp).sum(1)
    alpha = kw.get("alpha", 0.1)
    if name == "ce":
        return ce
    if name == "nacl":
        tau = kw["prior"]
        diff = (tau - logits).abs() if kw.get("distance_type", "l1") == "l1" else (tau - logits) ** 2
        return ce + alpha * diff.mean(1)
    if name == "svls":
        return -(kw["prior"] * logp).sum(1)
    if name == "mbls":
        margin = kw.get("margin", 10.0)
        gap = logits.max(dim=1, keepdim=True).values - logits
        return ce + alpha * torch.clamp(gap - margin, min=0).mean(1)
    if name == "ls":
        return (1 - alpha) * ce + alpha * (-logp).mean(1)
    if name == "ecp":
        p = logp.exp().clamp(1e-10, 1 - 1e-10)
        return ce - alpha * (-p * p.log()).mean(1)
    raise KeyError(name)


def dice_reference(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, include_background: bool):
    """(B, C') MONAI-style soft Dice loss over voxels with weight 1, float64."""
    p = logits.softmax(1) * weight
    y = y * weight
    if not include_background:
        p, y = p[:, 1:], y[:, 1:]
    axes = tuple(range(2, p.ndim))
    return 1 - (2 * (p * y).sum(axes) + 1e-5) / (p.sum(axes) + y.sum(axes) + 1e-5)


def boundary_reference(labels: np.ndarray, kernel_size: int = 3, unknown: np.ndarray | None = None) -> np.ndarray:
    """(B, *spatial) bool, voxel by voxel: the known labels of its window (edge voxels replicated) are not all equal."""
    dims = labels.ndim - 1
    r = kernel_size // 2
    known = np.ones(labels.shape, dtype=bool) if unknown is None else ~unknown
    width = [(0, 0)] + [(r, r)] * dims
    padded, padded_known = np.pad(labels, width, mode="edge"), np.pad(known, width, mode="edge")
    out = np.zeros(labels.shape, dtype=bool)
    for index in np.ndindex(*labels.shape):
        window = (index[0], *(slice(i, i + kernel_size) for i in index[1:]))
        out[index] = len(set(padded[window][padded_known[window]].tolist())) > 1
    return out


def crac_voxel_reference(
    logits: torch.Tensor,
    labels: np.ndarray,
    lam: np.ndarray,
    rho: np.ndarray,
    margin: float = 5.0,
    kernel_size: int = 3,
    border: str = "zeros",
    unknown: np.ndarray | None = None,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """CRaC per voxel (B, *spatial), float64: CE + the mean over the 2C stacked (region, class) channels of
    lambda h + rho h^2 / 2, the boundary rows holding h on boundary voxels and 0 elsewhere (the authors' stacking).

    ``target``: the CE target (labels or soft) when it is not ``labels`` itself; ``tau`` then comes from it.
    """
    num_classes = logits.shape[1]
    y = target_distribution(torch.from_numpy(labels) if target is None else target, num_classes)
    ce = -(y * log_softmax(logits)).sum(1)
    if target is None:
        tau = torch.from_numpy(prior_reference(labels, num_classes, kernel_size, "mean", 1.0, border, unknown))
    else:  # soft target: its own channels, zero border, mean window
        tau = soft_prior_reference(y.numpy(), kernel_size)
    boundary = torch.from_numpy(boundary_reference(labels, kernel_size, unknown)).double().unsqueeze(1)
    scale = boundary + (1 - boundary) * margin
    h = (scale * tau - logits).abs()
    stacked = torch.cat([boundary * h, (1 - boundary) * h], dim=1)
    shape = (1, 2 * num_classes) + (1,) * (logits.ndim - 2)
    lam_t = torch.from_numpy(np.asarray(lam, dtype=float).reshape(-1)).view(shape)
    rho_t = torch.from_numpy(np.asarray(rho, dtype=float).reshape(-1)).view(shape)
    return ce + (lam_t * stacked + rho_t * stacked**2 / 2).mean(1)


def soft_prior_reference(y: np.ndarray, kernel_size: int = 3) -> torch.Tensor:
    """Mean-window proportions of a soft target (B, C, *spatial), zero border, offset by offset."""
    dims = y.ndim - 2
    r = kernel_size // 2
    padded = np.pad(y, [(0, 0), (0, 0)] + [(r, r)] * dims)
    out = np.zeros(y.shape)
    for offset in itertools.product(range(kernel_size), repeat=dims):
        window = tuple(slice(o, o + n) for o, n in zip(offset, y.shape[2:]))
        out += padded[(slice(None), slice(None), *window)] / kernel_size**dims
    return torch.from_numpy(out)


def crac_constraint_reference(
    logits: np.ndarray,
    labels: np.ndarray,
    margin: float = 5.0,
    kernel_size: int = 3,
    border: str = "zeros",
    keep: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(sum of h, voxel count) per (region, class), float64 (2, C), voxel by voxel over the kept voxels."""
    num_classes = logits.shape[1]
    tau = prior_reference(labels, num_classes, kernel_size, "mean", 1.0, border)
    boundary = boundary_reference(labels, kernel_size)
    sums, counts = np.zeros((2, num_classes)), np.zeros((2, num_classes))
    for index in np.ndindex(*labels.shape):
        if keep is not None and not keep[index]:
            continue
        region = 0 if boundary[index] else 1
        scale = 1.0 if region == 0 else margin
        for k in range(num_classes):
            where = (index[0], k, *index[1:])
            sums[region, k] += abs(scale * tau[where] - float(logits[where]))
            counts[region, k] += 1
    return sums, counts


def ace_reference(
    logits: torch.Tensor,
    y: torch.Tensor,
    num_bins: int = 20,
    binning: str = "hard",
    include_background: bool = True,
    ignore_empty_classes: bool = True,
    keep: torch.Tensor | None = None,
    min_bin_weight: float = 0.01,
) -> torch.Tensor:
    """(B, C') L1 average calibration error per image and class, float64, bin by bin.

    Hard: bin m holds (m / M, (m + 1) / M] (p = 0 in bin 0). Soft: tent weights max(0, 1 - M |p - c_m|) around the
    centres c_m = (m + 0.5) / M, the whole weight to the first / last bin below / above the outer centres.
    """
    probs = logits.softmax(1)
    rows = []
    for b in range(probs.shape[0]):
        row = []
        for c in range(0 if include_background else 1, probs.shape[1]):
            p, t = probs[b, c].flatten(), y[b, c].flatten()
            if keep is not None:
                p, t = p[keep[b].flatten()], t[keep[b].flatten()]
            gaps = []
            for m in range(num_bins):
                if binning == "hard":
                    w = ((p > m / num_bins) & (p <= (m + 1) / num_bins)).double()
                    if m == 0:
                        w = w + (p == 0).double()
                else:
                    centre = (m + 0.5) / num_bins
                    w = torch.clamp(1 - num_bins * (p - centre).abs(), min=0)
                    if m == 0:
                        w = torch.where(p <= centre, torch.ones_like(p), w)
                    if m == num_bins - 1:
                        w = torch.where(p >= centre, torch.ones_like(p), w)
                n = w.sum()
                if n >= min_bin_weight:
                    gaps.append(((w * p).sum() / n - (w * t).sum() / n).abs())
            value = torch.stack(gaps).mean() if gaps else logits.new_zeros(())
            if ignore_empty_classes and float(t.sum()) == 0:
                value = value * 0
            row.append(value)
        rows.append(torch.stack(row))
    return torch.stack(rows)
