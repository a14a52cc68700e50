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
