"""The comparison's reliability pictures, drawn by :mod:`monai_nacl.metrics.plots` from the runs' histograms."""

from __future__ import annotations

from pathlib import Path

from monai_nacl.metrics import CalibrationStatistics, plot_dataset_reliability, plot_reliability_diagram

__all__ = ["OVERLAY", "plot_comparison"]

OVERLAY = "reliability_all.png"
"""File of the overlay of every row's reliability curve, in the comparison folder."""


def plot_comparison(
    output: Path, per_case: dict[str, CalibrationStatistics], stems: dict[str, str], region: str | None
) -> dict[str, dict[str, str]]:
    """Draw every row's pictures and the overlay of all rows.

    Per row: ``reliability/<stem>.png`` (its test cases and seeds pooled), ``reliability/<stem>_classwise.png``
    (one panel per class) and ``dataset_reliability/<stem>.png`` (each (case, seed) pair counted as an image);
    then :data:`OVERLAY`.

    Args:
        output: the comparison folder.
        per_case: per row, the per-case statistics of all its runs (leading dimension: cases x seeds).
        stems: per row, the file name stem of its pictures.
        region: the voxels the evaluation counted, stated in the titles.

    Returns:
        per row, ``{"diagram", "classwise", "dataset"}`` paths relative to ``output``.
    """
    written: dict[str, dict[str, str]] = {}
    for name, stats in per_case.items():
        pooled = stats.sum(0)
        files = {
            "diagram": f"reliability/{stems[name]}.png",
            "classwise": f"reliability/{stems[name]}_classwise.png",
            "dataset": f"dataset_reliability/{stems[name]}.png",
        }
        plot_reliability_diagram(pooled, output / files["diagram"], name, region)
        plot_reliability_diagram(pooled, output / files["classwise"], name, region, classwise=True)
        title = f"{name}: dataset reliability histogram, each test case of each seed an image"
        plot_dataset_reliability(stats, output / files["dataset"], title, region)
        written[name] = files
    if per_case:
        overlay = {name: stats.sum(0) for name, stats in per_case.items()}
        plot_reliability_diagram(overlay, output / OVERLAY, "All rows, test cases and seeds pooled", region)
    return written
