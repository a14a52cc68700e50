"""Slow, independent float64 numpy references of the calibration metrics (explicit bin loops, sorting for AdaECE)."""

from __future__ import annotations

import itertools

import numpy as np


def flatten(probs, labels, mask=None):
    """(B, C, *spatial) probs and (B, [1,] *spatial) labels or (B, C, *spatial) soft -> (N, C) p, (N, C) q."""
    p = np.asarray(probs, dtype=np.float64)
    c = p.shape[1]
    p = np.moveaxis(p, 1, -1).reshape(-1, c)
    labels = np.asarray(labels)
    if labels.shape == np.asarray(probs).shape:
        q = np.moveaxis(labels.astype(np.float64), 1, -1).reshape(-1, c)
    else:
        q = np.eye(c)[labels.reshape(-1).astype(np.int64)]
    if mask is not None:
        keep = np.asarray(mask).reshape(-1).astype(bool)
        p, q = p[keep], q[keep]
    return p, q


def _binned_gaps(conf, acc, num_bins):
    """Per bin (lower, upper] (first bin also holds 0): count, |sum conf - sum acc|."""
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    counts, gaps = [], []
    for k in range(num_bins):
        inside = (conf > edges[k]) & (conf <= edges[k + 1])
        if k == 0:
            inside |= conf == 0.0
        counts.append(inside.sum())
        gaps.append(abs(conf[inside].sum() - acc[inside].sum()))
    return np.array(counts, dtype=np.float64), np.array(gaps)


def top_label(p, q):
    pred = p.argmax(1)
    conf = p[np.arange(len(p)), pred]
    acc = q[np.arange(len(p)), pred]
    return conf, acc


def ece(p, q, num_bins=15):
    conf, acc = top_label(p, q)
    _, gaps = _binned_gaps(conf, acc, num_bins)
    return gaps.sum() / len(conf)


def mce(p, q, num_bins=15):
    conf, acc = top_label(p, q)
    counts, gaps = _binned_gaps(conf, acc, num_bins)
    return max(g / n for n, g in zip(counts, gaps) if n > 0)


def cece(p, q, num_bins=15):
    return np.mean([_binned_gaps(p[:, c], q[:, c], num_bins)[1].sum() / len(p) for c in range(p.shape[1])])


def adaece_exact(conf, acc, num_bins=15):
    """Equal-mass ECE: sort by confidence; voxel of rank r goes to bin floor(r * num_bins / N)."""
    order = np.argsort(conf, kind="stable")
    conf, acc = conf[order], acc[order]
    n = len(conf)
    bins = (np.arange(n) * num_bins) // n
    return sum(abs(conf[bins == j].sum() - acc[bins == j].sum()) for j in range(num_bins)) / n


def nll(p, q, eps=1e-12):
    return -(q * np.log(np.clip(p, eps, None))).sum() / len(p)


def brier(p, q):
    return ((p - q) ** 2).sum() / len(p)


def ace_average(conf, acc, num_bins=15):
    """Average calibration error: mean over non-empty (lower, upper] bins of |mean conf - mean acc|."""
    counts, gaps = _binned_gaps(conf, acc, num_bins)
    return np.mean([g / n for n, g in zip(counts, gaps) if n > 0])


def ace(p, q, num_bins=15):
    return ace_average(*top_label(p, q), num_bins)


def cace(p, q, num_bins=15):
    return np.mean([ace_average(p[:, c], q[:, c], num_bins) for c in range(p.shape[1])])


def marginal(probs, labels, num_bins=20, mask=None):
    """MONAI's per-image, per-class calibration errors by explicit loops: float32 values, float32 upper edges
    torch.linspace(0, 1 + eps32, K + 1)[1:], a value on an edge in the lower bin (numpy searchsorted side='left'),
    the last bin also takes what lies above. Returns {"expected", "average", "maximum"} of shape (B, C)."""
    p = np.asarray(probs, dtype=np.float64)
    b_size, c_size = p.shape[:2]
    import torch  # MONAI's edges are torch.linspace's float32 values (numpy's differ by one ulp at some edges)

    edges = torch.linspace(0.0, 1.0 + torch.finfo(torch.float32).eps, num_bins + 1)[1:].numpy()
    out = {name: np.full((b_size, c_size), np.nan) for name in ("expected", "average", "maximum")}
    for b in range(b_size):
        pb, qb = flatten(probs[b : b + 1], labels[b : b + 1], None if mask is None else mask[b : b + 1])
        for c in range(c_size):
            v32 = pb[:, c].astype(np.float32)
            bins = np.minimum(np.searchsorted(edges, v32, side="left"), num_bins - 1)
            gaps, counts = [], []
            for k in range(num_bins):
                inside = bins == k
                if inside.any():
                    gaps.append(abs(pb[inside, c].mean() - qb[inside, c].mean()))
                    counts.append(inside.sum())
            if gaps:
                out["expected"][b, c] = np.dot(gaps, counts) / np.sum(counts)
                out["average"][b, c] = np.mean(gaps)
                out["maximum"][b, c] = np.max(gaps)
    return out


def flatten_sigmoid(probs, labels, mask=None):
    """(B, C, *spatial) sigmoid probs and a (B, C, *spatial) per-channel reference -> (N, C) p, (N, C) q."""
    p = np.asarray(probs, dtype=np.float64)
    c = p.shape[1]
    p = np.moveaxis(p, 1, -1).reshape(-1, c)
    q = np.moveaxis(np.asarray(labels, dtype=np.float64).reshape(np.asarray(probs).shape), 1, -1).reshape(-1, c)
    if mask is not None:
        keep = np.asarray(mask).reshape(-1).astype(bool)
        p, q = p[keep], q[keep]
    return p, q


def sigmoid_values(p, q, num_bins=15):
    """Each channel a binary problem: top-label ECE over every (voxel, channel) decision, classwise ECE per channel,
    NLL as the per-voxel sum of binary cross-entropies, Brier as the per-voxel sum of (p_c - q_c)^2."""
    conf = np.maximum(p, 1 - p).ravel()
    acc = np.where(p > 0.5, q, 1 - q).ravel()
    _, gaps = _binned_gaps(conf, acc, num_bins)
    per_channel = [_binned_gaps(p[:, c], q[:, c], num_bins)[1].sum() / len(p) for c in range(p.shape[1])]
    pc = np.clip(p, 1e-12, None)
    qc = np.clip(1 - p, 1e-12, None)
    return {
        "ece": gaps.sum() / len(conf),
        "cece": np.mean(per_channel),
        "nll": -(q * np.log(pc) + (1 - q) * np.log(qc)).sum() / len(p),
        "brier": ((p - q) ** 2).sum() / len(p),
    }


def authors_classwise_ece(p, labels, num_bins=15):
    """The NACL authors' ClasswiseECELoss (github Bala93/MarginLoss, calibrate/evaluation/metrics.py), re-written in
    numpy: classes 0..max(labels) of the voxels it is given, bins (lower, upper] of torch.linspace(0, 1, n + 1),
    per bin |mean p_c - mean 1[y = c]| weighted by the bin's share of all voxels, unweighted mean over the classes."""
    import torch

    edges = torch.linspace(0, 1, num_bins + 1).numpy().astype(np.float64)
    labels = np.asarray(labels).reshape(-1)
    per_class = []
    for c in range(int(labels.max()) + 1):
        conf, hits = p[:, c], labels == c
        sce = 0.0
        for lower, upper in itertools.pairwise(edges):
            in_bin = (conf > lower) & (conf <= upper)
            if in_bin.mean() > 0:
                sce += abs(conf[in_bin].mean() - hits[in_bin].mean()) * in_bin.mean()
        per_class.append(sce)
    return float(np.mean(per_class))
