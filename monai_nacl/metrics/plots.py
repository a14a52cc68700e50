"""Reliability diagram with confidence histogram (Guo et al. 2017, Fig. 1 style), drawn with matplotlib.

matplotlib is an optional extra (``pip install monai_nacl[plot]``): it is imported only when a figure is drawn,
and without pyplot, so no GUI backend or global figure state is involved.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import torch

__all__ = ["plot_reliability_diagram", "reliability_figure"]


def _matplotlib_figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "plotting a reliability diagram needs matplotlib, which is not installed; install it with "
            "`pip install matplotlib` (or `pip install monai_nacl[plot]`)."
        ) from e
    return Figure


def _as_list(x: torch.Tensor | Any) -> list[float]:
    return [float(v) for v in torch.as_tensor(x, dtype=torch.float64).reshape(-1)]


def reliability_figure(stats: dict[str, Any], title: str | None = None) -> Any:
    """Build the figure: top, accuracy per bin against the diagonal with the gap shaded; bottom, the share of
    counted voxels per confidence bin (log scale).

    Args:
        stats: output of :func:`~monai_nacl.metrics.functional.reliability_statistics` or
            :meth:`~monai_nacl.metrics.SegmentationCalibrationMetric.reliability_statistics`
            (``edges``, ``count``, ``confidence``, ``accuracy``; ``ece`` optional).
        title: figure title; the ECE is appended when known.

    Returns:
        a ``matplotlib.figure.Figure``.
    """
    missing = [key for key in ("edges", "count", "confidence", "accuracy") if key not in stats]
    if missing:
        raise ValueError(f"reliability statistics lack {missing}; pass the dict of reliability_statistics().")
    edges, count = _as_list(stats["edges"]), _as_list(stats["count"])
    confidence, accuracy = _as_list(stats["confidence"]), _as_list(stats["accuracy"])
    lefts, widths = edges[:-1], [b - a for a, b in itertools.pairwise(edges)]
    total = sum(count)
    filled = [not math.isnan(a) for a in accuracy]

    figure = _matplotlib_figure()(figsize=(5, 6.5))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(
        [x for x, f in zip(lefts, filled) if f],
        [a for a, f in zip(accuracy, filled) if f],
        width=[w for w, f in zip(widths, filled) if f],
        align="edge",
        color="tab:blue",
        edgecolor="black",
        label="accuracy",
    )
    top.bar(
        [x for x, f in zip(lefts, filled) if f],
        [c - a for c, a, f in zip(confidence, accuracy, filled) if f],
        bottom=[a for a, f in zip(accuracy, filled) if f],
        width=[w for w, f in zip(widths, filled) if f],
        align="edge",
        color="tab:red",
        alpha=0.3,
        edgecolor="tab:red",
        hatch="//",
        label="gap to mean confidence",
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize="small")
    heading = title or "Reliability diagram"
    if "ece" in stats and not math.isnan(float(stats["ece"])):
        heading += f" (ECE {100 * float(stats['ece']):.2f} %)"
    top.set_title(heading)
    shares = [c / total if total > 0 else 0.0 for c in count]
    bottom.bar(lefts, shares, width=widths, align="edge", color="tab:gray", edgecolor="black")
    if any(s > 0 for s in shares):
        bottom.set_yscale("log")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("share of voxels")
    figure.tight_layout()
    return figure


def plot_reliability_diagram(stats: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Draw a reliability diagram with its confidence histogram and save it as PNG.

    Args:
        stats: per-bin statistics from :func:`~monai_nacl.metrics.functional.reliability_statistics` or
            :meth:`~monai_nacl.metrics.SegmentationCalibrationMetric.reliability_statistics`.
        path: output file (``.png``); parent folders are created.
        title: figure title (the ECE is appended when known).

    Returns:
        the path written.
    """
    figure = reliability_figure(stats, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path
