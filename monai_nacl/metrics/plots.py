"""The reliability pictures of this package, drawn from :class:`~monai_nacl.metrics.CalibrationStatistics`.

- :func:`reliability_figure` / :func:`plot_reliability_diagram`: reliability diagram with its confidence histogram
  (Guo et al. 2017, Fig. 1 style): accuracy per bin as blue bars, the gap to the bin's mean confidence drawn by its
  direction (over-confident, confidence above accuracy: a red box on top of the bar; under-confident, below: an
  orange hatch over the bar's top), the share of voxels per bin underneath. Several models (a mapping of
  statistics) are overlaid as curves; ``classwise=True`` draws one panel per class from the classwise histograms
  (``p_c`` against ``1[y = c]``).
- :func:`dataset_reliability_figure` / :func:`plot_dataset_reliability`: the dataset reliability histogram of
  Barfoot et al. (see :func:`~monai_nacl.metrics.reliability.dataset_reliability_histogram`) as one heat map per
  class.
- :func:`dice_estimate_figure` / :func:`plot_dice_estimate`: the label-free Dice estimate
  (:func:`~monai_nacl.metrics.soft_dice_confidence`) against the true Dice, one point per case and class, one colour
  per class, with the identity line.

A class of which no counted voxel is an example (the background in the ``foreground`` region) has no panel: its
frequency is 0 in every bin. The CECE in a title or legend still averages the ECE of every class, that one included
(its ECE is the mean probability given to it), as the metric does; the title says so and names the class left out.

matplotlib is an optional extra (``pip install monai_nacl[plot]``): it is imported only when a figure is drawn,
and without pyplot, so no GUI backend or global figure state is involved.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_nacl.metrics.functional import reliability_from_statistics
from monai_nacl.metrics.reliability import dataset_reliability_histogram
from monai_nacl.metrics.statistics import CalibrationStatistics

__all__ = [
    "dataset_reliability_figure",
    "dice_estimate_figure",
    "plot_dataset_reliability",
    "plot_dice_estimate",
    "plot_reliability_diagram",
    "reliability_figure",
]

ACCURACY_COLOR = "#4c72b0"
OVER_CONFIDENT_COLOR = "#d62728"
OVER_CONFIDENT_FACE = "#f5b4b4"
UNDER_CONFIDENT_COLOR = "#d97a00"
UNDER_CONFIDENT_FACE = "#ffd89c"
_HISTOGRAM_COLOR = "#8c8c8c"
_PANEL_WIDTH = 4.0  # inches per column
_MAX_COLUMNS = 4


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
        from matplotlib.ticker import NullFormatter
    except ImportError as e:
        raise ImportError(
            "drawing a reliability picture needs matplotlib, which is not installed; install it with "
            "`pip install matplotlib` (or `pip install monai_nacl[plot]`)."
        ) from e
    return Figure, Patch, Line2D, NullFormatter


def _colour(name: str) -> Any:
    """A matplotlib colour: ``"C3"``, or ``"<colormap>:<index>"`` for an entry of a qualitative colormap."""
    if ":" not in name:
        return name
    import matplotlib

    cmap, index = name.split(":")
    return matplotlib.colormaps[cmap](int(index))


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f} %"


def _suptitle(figure: Any, lines: Sequence[str], width_inches: float) -> None:
    """Figure title wrapped to the figure's width (constrained layout then reserves its height)."""
    chars = max(20, int(width_inches * 72 / (0.6 * 11)))  # ~0.6 em per character at 11 pt
    text = "\n".join(textwrap.fill(line, chars) for line in lines if line)
    figure.suptitle(text, fontsize=11)


def _check_statistics(stats: Any, what: str) -> CalibrationStatistics:
    if not isinstance(stats, CalibrationStatistics):
        raise TypeError(
            f"{what} must be CalibrationStatistics (e.g. SegmentationCalibrationMetric.pooled_statistics() or "
            f"calibration_statistics(...)), got {type(stats).__name__}."
        )
    return stats


def _class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    names = [str(n) for n in class_names] if class_names is not None else [f"class {c}" for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(
            f"got {len(names)} class names for {num_classes} classes ({names}); give one name per label value "
            f"0 .. {num_classes - 1}, background included."
        )
    return names


def _absent_classes(classwise: torch.Tensor) -> set[int]:
    """The classes of which no counted voxel is an example (``sum 1[y = c] = 0`` over every image and bin), e.g. the
    background in the foreground region: their panel would only show ``1[y = c] = 0`` in every bin, and their ECE is
    the mean probability given to them."""
    count, _, hits = classwise.reshape(-1, *classwise.shape[-3:]).sum(0).unbind(-2)  # (C, M) each
    return {c for c in range(count.shape[0]) if float(count[c].sum()) > 0 and float(hits[c].sum()) == 0}


def _drawn_classes(absent: set[int], num_classes: int) -> list[int]:
    """Every class but the absent ones (all of them when no class would be left)."""
    drawn = [c for c in range(num_classes) if c not in absent]
    return drawn or list(range(num_classes))


def _panels(stats: CalibrationStatistics, classwise: bool, class_names: Sequence[str] | None) -> list[tuple]:
    """``(name, bins)`` of each panel: the top label, or each class's histogram read as a top-label histogram."""
    if not classwise:
        if stats.top_label is None or stats.top_label.ndim != 2:
            raise ValueError("a reliability diagram needs pooled top-label histograms (3, M); sum per-image ones.")
        return [("top label", reliability_from_statistics(stats))]
    if stats.classwise is None or stats.classwise.ndim != 3:
        raise ValueError("a classwise reliability diagram needs pooled classwise histograms (C, 3, M).")
    num_classes = stats.classwise.shape[0]
    names = _class_names(class_names, num_classes)
    panels = []
    for c in range(num_classes):
        single = CalibrationStatistics(stats.num_bins, stats.sub_bins, stats.classwise[c], None, stats.totals)
        panels.append((names[c], reliability_from_statistics(single)))
    return panels


def _values(bins: Mapping[str, torch.Tensor]) -> dict[str, list[float]]:
    return {key: [float(v) for v in bins[key].reshape(-1)] for key in ("edges", "count", "confidence", "accuracy")}


def _gap_patches(Patch: Any, classwise: bool) -> list[Any]:
    """Legend patches drawn exactly like the bars (opaque colours, so an overlap never changes a colour)."""
    accuracy = "frequency of the class" if classwise else "accuracy"
    return [
        Patch(facecolor=ACCURACY_COLOR, edgecolor="black", label=f"{accuracy}: the blue bar, in every bin"),
        Patch(
            facecolor=OVER_CONFIDENT_FACE,
            edgecolor=OVER_CONFIDENT_COLOR,
            hatch="//",
            label=f"over-confident: mean confidence above\n{accuracy} (red box on top of the bar)",
        ),
        Patch(
            facecolor=ACCURACY_COLOR,
            edgecolor=UNDER_CONFIDENT_COLOR,
            hatch="\\\\",
            label=f"under-confident: mean confidence below\n{accuracy} (orange hatch inside the bar)",
        ),
    ]


def _smallest_share(panel_bins: Sequence[Mapping[str, torch.Tensor]]) -> float:
    shares = [float(c / bins["count"].sum()) for bins in panel_bins for c in bins["count"] if c > 0]
    return min(shares, default=1.0)


def _draw_bars(top: Any, bottom: Any, bins: Mapping[str, torch.Tensor]) -> None:
    """One model: the accuracy of every bin as a blue bar; the gap to the bin's mean confidence as a box between the
    two, red and stacked on the bar where the model is over-confident, an orange hatch over the bar's top where it is
    under-confident (the bar stays blue up to the accuracy); the voxel share below.

    Axes containers, in order: accuracy bars, over-confident gaps, under-confident gaps, accuracy outlines."""
    v = _values(bins)
    lefts, widths = v["edges"][:-1], [b - a for a, b in zip(v["edges"][:-1], v["edges"][1:])]
    filled = [i for i, a in enumerate(v["accuracy"]) if not math.isnan(a)]
    acc = [v["accuracy"][i] for i in filled]
    conf = [v["confidence"][i] for i in filled]
    x, w = [lefts[i] for i in filled], [widths[i] for i in filled]
    top.bar(x, acc, width=w, align="edge", color=ACCURACY_COLOR, linewidth=0)
    for over, face, edge, hatch in (
        (True, OVER_CONFIDENT_FACE, OVER_CONFIDENT_COLOR, "//"),
        (False, ACCURACY_COLOR, UNDER_CONFIDENT_COLOR, "\\\\"),
    ):
        keep = [k for k in range(len(filled)) if (conf[k] > acc[k] if over else conf[k] < acc[k])]
        top.bar(
            [x[k] for k in keep],
            [abs(conf[k] - acc[k]) for k in keep],
            bottom=[min(conf[k], acc[k]) for k in keep],
            width=[w[k] for k in keep],
            align="edge",
            facecolor=face,
            edgecolor=edge,
            hatch=hatch,
            linewidth=0.8,
        )
    top.bar(x, acc, width=w, align="edge", facecolor="none", edgecolor="black", linewidth=0.8)
    total = sum(v["count"])
    shares = [c / total if total > 0 else 0.0 for c in v["count"]]
    bottom.bar(lefts, shares, width=widths, align="edge", color=_HISTOGRAM_COLOR, edgecolor="black", linewidth=0.6)


def _draw_curve(top: Any, bottom: Any, bins: Mapping[str, torch.Tensor], color: str) -> None:
    """One of several models: accuracy against mean confidence per non-empty bin, its voxel share as a step line."""
    v = _values(bins)
    filled = [i for i, a in enumerate(v["accuracy"]) if not math.isnan(a)]
    top.plot(
        [v["confidence"][i] for i in filled],
        [v["accuracy"][i] for i in filled],
        marker="o",
        markersize=3.5,
        linewidth=1.4,
        color=color,
    )
    total = sum(v["count"])
    shares = [c / total if total > 0 else 0.0 for c in v["count"]]
    bottom.stairs(shares, v["edges"], color=color, linewidth=1.4)


def reliability_figure(
    stats: CalibrationStatistics | Mapping[str, CalibrationStatistics],
    title: str | None = None,
    region: str | None = None,
    classwise: bool = False,
    class_names: Sequence[str] | None = None,
) -> Any:
    """Reliability diagram(s) with confidence histogram, from pooled statistics.

    Top, per confidence bin ``(lower, upper]``: one model's accuracy as blue bars in every bin, with the gap to the
    bin's mean confidence as a red hatched box on top of the bar where the model is over-confident (mean confidence
    above accuracy) and an orange hatch over the bar's top, down to the mean confidence, where it is
    under-confident; several models as curves of accuracy against mean confidence (above the diagonal:
    under-confident, below: over-confident). Bottom: the share of counted voxels per bin (log scale). The title
    gives the pooled ECE (for ``classwise`` the pooled CECE, the unweighted mean of every class's ECE, and which
    classes it averages), the region and the number of voxels. Pooled: from the histograms of every counted voxel at
    once, which differs from a mean over cases of per-case ECEs.

    Args:
        stats: pooled :class:`~monai_nacl.metrics.CalibrationStatistics` of one model (e.g.
            ``SegmentationCalibrationMetric.pooled_statistics()``), or ``{name: statistics}`` of several models drawn
            on the same axes (same ``num_bins``).
        title: first line of the title (e.g. the run and epoch); a single named model adds ": <name>".
        region: the voxels the statistics count (``"foreground"``, ...), stated in the title when given.
        classwise: one panel per class from the classwise histograms (confidence ``p_c``, accuracy the frequency of
            ``y = c``) instead of one top-label panel (confidence ``max_c p_c``, accuracy ``1[argmax p = y]``). A class
            of which no counted voxel is an example in any model's statistics has no panel (see the module
            docstring); the title names it.
        class_names: names of the label values ``0 .. C - 1`` (e.g. ``["background", "liver", "kidney"]``) for the
            panels and the title (default ``class 0``, ``class 1``, ...).

    Returns:
        a ``matplotlib.figure.Figure``.
    """
    Figure, Patch, Line2D, NullFormatter = _matplotlib()
    models = dict(stats) if isinstance(stats, Mapping) else {"": stats}
    if not models:
        raise ValueError("reliability_figure needs the statistics of at least one model.")
    only = next(iter(models))
    if len(models) == 1 and only:  # a single named model: its name belongs in the title
        title = f"{title}: {only}" if title else only
    panels = {
        name: _panels(_check_statistics(s, f"statistics of {name or 'the model'}"), classwise, class_names)
        for name, s in models.items()
    }
    names = [panel_name for panel_name, _ in next(iter(panels.values()))]
    # per model: its ECE per class; the title/legend figure is the ECE (top label) or the mean over every class, the
    # CECE, absent classes included: the same number as the metric's
    eces = {model: [float(bins["ece"]) for _, bins in model_panels] for model, model_panels in panels.items()}
    score = {model: sum(values) / len(values) for model, values in eces.items()}
    drawn = list(range(len(names)))
    notes = []
    if classwise:
        absent = set.intersection(*(_absent_classes(s.classwise) for s in models.values()))
        drawn = _drawn_classes(absent, len(names))
        notes.append(f"CECE: mean of the ECE of all {len(names)} classes ({', '.join(names)})")
        hidden = [c for c in range(len(names)) if c not in drawn]
        if hidden:
            ece = "" if len(models) > 1 else " (ECE " + ", ".join(_percent(eces[only][c]) for c in hidden) + ")"
            notes.append(
                f"not drawn: {', '.join(names[c] for c in hidden)}{ece}, of which no counted voxel is an example "
                "(its frequency is 0 in every bin; its ECE is the mean probability given to it)"
            )
    # computed from the pooled histograms (every voxel of every case at once), not the mean over cases of the tables
    score_name = "pooled CECE" if classwise else "pooled ECE"
    overlay = len(models) > 1
    # more than ten curves: tab20's twenty colours (pairs of one hue, dark then light), so that no two curves share one
    palette = [f"C{k}" for k in range(10)] if len(models) <= 10 else [f"tab20:{k}" for k in range(20)]
    colors = {model: _colour(palette[k % len(palette)]) for k, model in enumerate(models)}
    columns = min(len(drawn), _MAX_COLUMNS)
    rows = math.ceil(len(drawn) / columns)
    width = _PANEL_WIDTH * columns + 0.4
    if overlay and len(models) > 9:
        width = max(width, 7.6)  # room for the two-column legend
    figure = Figure(figsize=(width, 5.4 * rows + 0.9), layout="constrained")
    grid = figure.add_gridspec(2 * rows, columns, height_ratios=[3, 1] * rows)
    for position, index in enumerate(drawn):
        panel_name = names[index]
        row, column = divmod(position, columns)
        top = figure.add_subplot(grid[2 * row, column])
        bottom = figure.add_subplot(grid[2 * row + 1, column], sharex=top)
        for model, model_panels in panels.items():
            bins = model_panels[index][1]
            if overlay:
                _draw_curve(top, bottom, bins, colors[model])
            else:
                _draw_bars(top, bottom, bins)
        top.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1)
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.tick_params(labelbottom=False)
        if classwise:
            top.set_ylabel(f"frequency of {panel_name}")
            bottom.set_xlabel(f"confidence p of {panel_name}")
            ece = "" if overlay else f": ECE {_percent(next(iter(eces.values()))[index])}"
            top.set_title(panel_name + ece, fontsize=10)
        else:
            top.set_ylabel("accuracy")
            bottom.set_xlabel("confidence (top-label probability)")
        bottom.set_ylabel("share of voxels")
        if _smallest_share([model_panels[index][1] for model_panels in panels.values()]) < 0.01:
            bottom.set_yscale("log")  # shares spanning more than two decades
            bottom.yaxis.set_minor_formatter(NullFormatter())
        if overlay:  # the direction of a curve's distance to the diagonal
            top.text(0.03, 0.97, "under-confident", transform=top.transAxes, va="top", color="0.35", fontsize=8)
            top.text(0.97, 0.03, "over-confident", transform=top.transAxes, ha="right", color="0.35", fontsize=8)
    if overlay:
        handles = [
            Line2D(
                [0],
                [0],
                color=colors[model],
                marker="o",
                markersize=3.5,
                label=f"{model}: {score_name} {_percent(score[model])}",
            )
            for model in models
        ]
    else:
        handles = _gap_patches(Patch, classwise)
    handles.append(Line2D([0], [0], linestyle="--", color="black", linewidth=1, label="perfect calibration"))
    wide_legend = columns > 1 or len(handles) > 9
    figure.legend(handles=handles, loc="outside lower center", ncols=2 if wide_legend else 1, fontsize=8)
    facts = [] if overlay else [f"{score_name} {_percent(next(iter(score.values())))}"]
    if region:
        facts.append(f"region: {region}")
    if not overlay:
        facts.append(f"{float(next(iter(models.values())).totals[..., 0].sum()):,.0f} voxels")
    heading = title or ("Classwise reliability diagrams" if classwise else "Reliability diagram")
    _suptitle(figure, [heading, ", ".join(facts), *notes], width)
    return figure


def dataset_reliability_figure(
    stats: CalibrationStatistics,
    title: str | None = None,
    region: str | None = None,
    class_names: Sequence[str] | None = None,
    num_accuracy_bins: int | None = None,
) -> Any:
    """Dataset reliability histogram (Barfoot et al.): one heat map per class, x the confidence bin of ``p_c``,
    y the image's accuracy in that bin (frequency of ``y = c``), colour the number of images; the diagonal is
    perfect calibration, and a column spread far from it shows images that disagree. A class of which no counted
    voxel of any image is an example (the background in the ``foreground`` region) has no panel; the title names it.

    Args:
        stats: per-image statistics with classwise histograms ``(B, C, 3, M)``, see
            :func:`~monai_nacl.metrics.reliability.dataset_reliability_histogram`.
        title: first line of the title.
        region: the voxels the statistics count, stated in the title when given.
        class_names: names of the label values ``0 .. C - 1`` for the panels (default ``class 0``, ``class 1``, ...).
        num_accuracy_bins: accuracy bins (default ``stats.num_bins``).

    Returns:
        a ``matplotlib.figure.Figure``.
    """
    Figure = _matplotlib()[0]
    from matplotlib import colormaps

    histogram = dataset_reliability_histogram(_check_statistics(stats, "stats"), num_accuracy_bins)
    count = histogram["count"]
    names = _class_names(class_names, count.shape[0])
    drawn = _drawn_classes(_absent_classes(stats.classwise), len(names))
    columns = min(len(drawn), _MAX_COLUMNS)
    rows = math.ceil(len(drawn) / columns)
    width = 3.6 * columns + 1.2
    figure = Figure(figsize=(width, 3.6 * rows + 1.0), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    import numpy as np

    most = max(1.0, float(count.max()))
    # one colour per number of images while they can be told apart, else a continuous scale
    cmap = colormaps["viridis"].resampled(int(most)) if most <= 12 else colormaps["viridis"]
    edges, accuracy_edges = histogram["edges"].numpy(), histogram["accuracy_edges"].numpy()
    image = None
    for position in range(rows * columns):
        ax = axes[position // columns][position % columns]
        if position >= len(drawn):
            ax.set_visible(False)
            continue
        c = drawn[position]
        grid = np.ma.masked_equal(count[c].numpy().T, 0.0)  # (accuracy bins, confidence bins); no image: blank
        image = ax.pcolormesh(edges, accuracy_edges, grid, cmap=cmap, vmin=0.5, vmax=most + 0.5)
        ax.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(names[c], fontsize=10)
        if position + columns >= len(drawn):  # no panel below: this one carries the x axis
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("confidence p (bin)")
        if position % columns == 0:
            ax.set_ylabel("per-image frequency of the class")
    bar = figure.colorbar(image, ax=axes, shrink=0.8, label="number of images")
    if most <= 12:
        bar.set_ticks(range(1, int(most) + 1))
    facts = [f"{int(histogram['num_images'])} images"]
    if region:
        facts.append(f"region: {region}")
    facts.append("colour: images per cell, white: none")
    hidden = [names[c] for c in range(len(names)) if c not in drawn]
    note = f"not drawn: {', '.join(hidden)}, of which no counted voxel of any image is an example" if hidden else ""
    _suptitle(figure, [title or "Dataset reliability histogram", ", ".join(facts), note], width)
    return figure


def dice_estimate_figure(
    estimated: Mapping[str, Sequence[float]], true: Mapping[str, Sequence[float]], title: str | None = None
) -> Any:
    """Estimated against true Dice, one point per case and class, one colour per class, and the identity line.

    Points above the line are cases whose probabilities promised more than the prediction reached (over-confidence);
    below, less. The legend gives each class's mean absolute error and Spearman correlation, the title the same over
    every (case, class) pair (:func:`~monai_nacl.metrics.dice_estimate_agreement`). Pairs with a non-finite side
    (a class absent from the label) are left out and counted in the title.

    Args:
        estimated: per class name, the estimated Dice of each case.
        true: per class name (the same names), the true Dice of the same cases.
        title: first line of the title.

    Returns:
        a ``matplotlib.figure.Figure``.

    Raises:
        ValueError: if the classes or the numbers of cases of the two mappings differ.
    """
    from monai_nacl.metrics.dice_estimate import dice_estimate_agreement

    counts = {c: len(v) for c, v in estimated.items()}, {c: len(v) for c, v in true.items()}
    if counts[0] != counts[1] or list(estimated) != list(true):
        raise ValueError(
            f"estimated {counts[0]} and true {counts[1]} Dice values (cases per class) must name the same classes "
            "with one value per case each."
        )
    Figure = _matplotlib()[0]
    figure = Figure(figsize=(5.6, 5.6), layout="constrained")
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="#555555", linestyle="--", linewidth=1, label="identity (estimate = true)")
    all_est: list[float] = []
    all_true: list[float] = []
    for index, name in enumerate(estimated):
        est, ref = list(map(float, estimated[name])), list(map(float, true[name]))
        agreement = dice_estimate_agreement(est, ref)
        label = f"{name}: MAE {agreement['mae']:.3f}, Spearman {agreement['spearman']:.2f} ({agreement['num_pairs']})"
        ax.scatter(ref, est, s=22, color=f"C{index % 10}", alpha=0.8, edgecolors="none", label=label)
        all_est += est
        all_true += ref
    overall = dice_estimate_agreement(all_est, all_true)
    left_out = len(all_est) - overall["num_pairs"]
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("true Dice")
    ax.set_ylabel("estimated Dice (soft Dice confidence, no label)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    ax.text(0.03, 0.97, "above the line: promised more than reached", transform=ax.transAxes, va="top", fontsize=8)
    facts = (
        f"{overall['num_pairs']} (case, class) pairs: MAE {overall['mae']:.3f}, Spearman {overall['spearman']:.2f}, "
        f"Pearson {overall['pearson']:.2f}, mean est - true {overall['bias']:+.3f}"
        + (f"; {left_out} pair(s) without a true Dice left out" if left_out else "")
    )
    _suptitle(figure, [title or "Estimated against true Dice", facts], 5.6)
    return figure


def plot_dice_estimate(
    estimated: Mapping[str, Sequence[float]],
    true: Mapping[str, Sequence[float]],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Draw :func:`dice_estimate_figure` and save it as PNG (parent folders are created); return the path."""
    return _save(dice_estimate_figure(estimated, true, title), path)


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=110)
    return path


def plot_reliability_diagram(
    stats: CalibrationStatistics | Mapping[str, CalibrationStatistics],
    path: str | Path,
    title: str | None = None,
    region: str | None = None,
    classwise: bool = False,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Draw :func:`reliability_figure` and save it as PNG (parent folders are created); return the path."""
    return _save(reliability_figure(stats, title, region, classwise, class_names), path)


def plot_dataset_reliability(
    stats: CalibrationStatistics,
    path: str | Path,
    title: str | None = None,
    region: str | None = None,
    class_names: Sequence[str] | None = None,
    num_accuracy_bins: int | None = None,
) -> Path:
    """Draw :func:`dataset_reliability_figure` and save it as PNG (parent folders are created); return the path."""
    return _save(dataset_reliability_figure(stats, title, region, class_names, num_accuracy_bins), path)
