"""The comparison's pictures, drawn by :mod:`monai_nacl.metrics.plots`: reliability from the runs' histograms, the
label-free Dice estimate against the true Dice from their ``metrics.csv``, and the NLL per epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from monai_nacl.metrics import (
    CalibrationStatistics,
    plot_dataset_reliability,
    plot_dice_estimate,
    plot_reliability_diagram,
)

__all__ = ["NLL_HISTORY", "OVERLAY", "overlay_file", "plot_comparison", "plot_dice_estimates", "plot_nll_history"]

OVERLAY = "reliability_all.png"
"""File of the overlay of every row's reliability curve, in the comparison folder."""


def overlay_file(checkpoint: str, checkpoints: Sequence[str]) -> str:
    """The overlay of one checkpoint's rows: :data:`OVERLAY` when a single checkpoint was evaluated, else
    ``reliability_all_<checkpoint>.png`` (one diagram per checkpoint keeps each readable)."""
    return OVERLAY if len(checkpoints) == 1 else f"{Path(OVERLAY).stem}_{checkpoint}.png"


NLL_HISTORY = "nll_history.png"
"""File of the training against validation NLL per epoch, in the comparison folder."""


def plot_comparison(
    output: Path,
    per_case: dict[str, CalibrationStatistics],
    stems: dict[str, str],
    region: str | None,
    overlays: dict[str, tuple[str, list[str]]] | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, dict[str, str]]:
    """Draw every row's pictures and the overlays of several rows.

    Per row: ``reliability/<stem>.png`` (its test cases and seeds pooled), ``reliability/<stem>_classwise.png``
    (one panel per class, none for a class no counted voxel is an example of, such as the background in the
    foreground region) and ``dataset_reliability/<stem>.png`` (each (case, seed) pair counted as an image); then
    each overlay. Their ECE and CECE are pooled over every voxel of every case and seed, and labelled so.

    Args:
        output: the comparison folder.
        per_case: per row, the per-case statistics of all its runs (leading dimension: cases x seeds).
        stems: per row, the file name stem of its pictures.
        region: the voxels the evaluation counted, stated in the titles.
        overlays: per overlay file (relative to ``output``), its title and the rows drawn in it; default one
            :data:`OVERLAY` of every row.
        class_names: names of the label values ``0 .. C - 1`` (the task's, as in ``metrics.csv``) for the per-class
            panels; None: ``class 0``, ``class 1``, ...

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
        plot_reliability_diagram(
            pooled, output / files["classwise"], name, region, classwise=True, class_names=class_names
        )
        title = f"{name}: dataset reliability histogram, each test case of each seed an image"
        plot_dataset_reliability(stats, output / files["dataset"], title, region, class_names=class_names)
        written[name] = files
    if overlays is None:
        overlays = {OVERLAY: ("All rows, test cases and seeds pooled", list(per_case))}
    for file, (title, names) in overlays.items():
        drawn = {name: per_case[name].sum(0) for name in names if name in per_case}
        if drawn:
            plot_reliability_diagram(drawn, output / file, title, region)
    return written


def plot_nll_history(histories: dict[str, list[dict[str, float]]], path: Path, region: str | None) -> None:
    """Training NLL (solid) against validation NLL (dashed, markers at the validated epochs) per epoch, one colour
    per loss: the training NLL falling while the validation NLL rises is the over-fitting that makes a network
    over-confident.

    Args:
        histories: per loss, the rows of its first seed's ``history.csv`` (``epoch``, ``train_nll``, ``val_nll``).
        path: the PNG written.
        region: the voxels the NLL counts, stated in the title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    for index, (name, rows) in enumerate(histories.items()):
        colour = f"C{index % 10}"
        train = [(r["epoch"], r["train_nll"]) for r in rows if r.get("train_nll") is not None]
        val = [(r["epoch"], r["val_nll"]) for r in rows if r.get("val_nll") is not None]
        if train:
            ax.plot(*zip(*train), color=colour, linewidth=1.2, label=f"{name}: training")
        if val:
            ax.plot(*zip(*val), color=colour, linestyle="--", marker="o", markersize=4, label=f"{name}: validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL (mean over voxels)")
    ax.grid(True, alpha=0.3)
    where = f" ({region})" if region else ""
    ax.set_title(f"Training vs validation NLL per epoch{where}, first seed", wrap=True)
    ax.legend(fontsize="small", ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_dice_estimates(
    output: Path,
    estimates: dict[str, tuple[dict[str, list[float]], dict[str, list[float]]]],
    stems: dict[str, str],
) -> dict[str, str]:
    """Per row, ``dice_estimate/<stem>.png``: its estimated against true Dice, one point per (test case, seed, class),
    one colour per class, with the identity line (:func:`~monai_nacl.metrics.plot_dice_estimate`).

    Args:
        output: the comparison folder.
        estimates: per row, ``(estimated, true)``: per class name, the values of each (case, seed) pair.
        stems: per row, the file name stem of its picture.

    Returns:
        per row, the picture's path relative to ``output``.
    """
    written = {}
    for name, (estimated, true) in estimates.items():
        written[name] = f"dice_estimate/{stems[name]}.png"
        title = f"{name}: Dice estimated without labels against true Dice, each test case of each seed"
        plot_dice_estimate(estimated, true, output / written[name], title)
    return written
