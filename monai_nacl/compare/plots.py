"""Reliability diagrams of the comparison, drawn from per-bin statistics (matplotlib, Agg backend).

A bin's statistics are its voxel count, the sum of top-label confidences and the sum of accuracies
(``1[argmax p = y]``) over the counted voxels, as ``monai_nacl.metrics`` accumulates them; seeds are
pooled by adding them. Per bin: confidence = sum_conf / count, accuracy = sum_acc / count; the ECE is
``sum_b count_b / N * |accuracy_b - confidence_b|``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["BinStatistics", "plot_overlay", "plot_reliability"]


@dataclass
class BinStatistics:
    """Per-bin sums of one variant (equal-width bins on [0, 1]).

    Args:
        count: voxels per bin, shape (B,).
        confidence_sum: sum of top-label confidences per bin, shape (B,).
        accuracy_sum: sum of correctness per bin, shape (B,).
    """

    count: np.ndarray
    confidence_sum: np.ndarray
    accuracy_sum: np.ndarray

    def __add__(self, other: BinStatistics) -> BinStatistics:
        if self.count.shape != other.count.shape:
            raise ValueError(f"cannot pool {self.count.shape[0]} bins with {other.count.shape[0]} bins.")
        return BinStatistics(
            self.count + other.count, self.confidence_sum + other.confidence_sum, self.accuracy_sum + other.accuracy_sum
        )

    @property
    def num_bins(self) -> int:
        """Number of bins."""
        return int(self.count.shape[0])

    def confidence(self) -> np.ndarray:
        """Mean confidence per bin (NaN for an empty bin)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.confidence_sum / self.count, np.nan)

    def accuracy(self) -> np.ndarray:
        """Accuracy per bin (NaN for an empty bin)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.accuracy_sum / self.count, np.nan)

    def ece(self) -> float:
        """Expected calibration error of the pooled voxels."""
        total = self.count.sum()
        if total == 0:
            return float("nan")
        return float(np.abs(self.accuracy_sum - self.confidence_sum).sum() / total)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reliability(stats: BinStatistics, path: Path, title: str) -> Path:
    """One reliability diagram: accuracy per bin (bars), the gap to the diagonal, and the voxel share per bin."""
    plt = _pyplot()
    edges = np.linspace(0.0, 1.0, stats.num_bins + 1)
    centers, width = (edges[:-1] + edges[1:]) / 2, 1.0 / stats.num_bins
    accuracy, confidence = stats.accuracy(), stats.confidence()
    filled = stats.count > 0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.5, 5.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top.bar(centers[filled], accuracy[filled], width=width, edgecolor="black", color="tab:blue", label="accuracy")
    top.bar(
        centers[filled],
        (confidence - accuracy)[filled],
        bottom=accuracy[filled],
        width=width,
        color="none",
        edgecolor="tab:red",
        hatch="//",
        label="gap to mean confidence",
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=1)
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=f"{title}  (pooled ECE {100 * stats.ece():.2f}%)")
    top.legend(loc="upper left", fontsize=8)
    share = stats.count / max(stats.count.sum(), 1)
    bottom.bar(centers, share, width=width, color="gray", edgecolor="black")
    bottom.set(
        xlabel="confidence", ylabel="voxel share", yscale="log" if share[filled].min(initial=1) < 1e-2 else "linear"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_overlay(
    stats: dict[str, BinStatistics], path: Path, title: str = "Reliability, foreground voxels (all losses)"
) -> Path:
    """All variants' reliability curves (accuracy against mean confidence per non-empty bin) on one figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    for name, s in stats.items():
        filled = s.count > 0
        ax.plot(
            s.confidence()[filled],
            s.accuracy()[filled],
            marker="o",
            markersize=3,
            label=f"{name} (pooled ECE {100 * s.ece():.2f}%)",
        )
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
