"""The comparison report: ``report.md``, ``summary.csv`` and reliability diagrams from the runs' folders.

Figures per run come from what the bundle's evaluation wrote: ``summary.json`` / ``metrics.csv`` of the
paper's protocol (calibration over ground-truth foreground voxels, 15 bins, per test volume then averaged
over volumes) and ``all_voxels/summary.json`` (the same metrics over every voxel). The evaluation also writes
each case's calibration histograms (``calibration_histograms.json``, with the task's class names), from which the
reliability pictures are drawn (:mod:`monai_nacl.compare.plots`): per row its cases and seeds pooled, per class,
the dataset reliability histogram, and an overlay of all rows. The tables' ECE and CECE are means over test
volumes; the pictures' are pooled over every voxel of every volume, and both are labelled so.

The evaluation's label-free Dice estimate (``est_dice_<class>`` beside ``dice_<class>`` in ``metrics.csv``,
``summary.json`` ``dice_estimate``) gets a section of its own: per row the estimate's MAE, Spearman and Pearson
correlation with the true Dice, its per-case error paired against the reference row, and a scatter plot
(``dice_estimate/<row>.png``).

Each checkpoint evaluated (``--checkpoint``: the best-validation ``model.pt``, the final weights, or both) has its
own table; every row is compared with the reference row of the same checkpoint (``--reference``, default ``ce``)
case by case: the paired
difference of each metric of :data:`PAIRED_COLUMNS` with its bootstrap interval and Wilcoxon p-value
(:mod:`monai_nacl.compare.paired`), in ``report.md``, ``summary.csv`` and ``per_case.csv``. A post-hoc row
(``<loss> + <method>``) whose foreground ECE is worse than its ``<loss>`` row's is flagged. The report ends
with what is needed to reproduce it (bundle, protocol, datalist and its sha256, overrides, seeds, versions).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import platform
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from monai_nacl.compare.checkpoints import BEST, CHECKPOINTS, FINAL
from monai_nacl.compare.grid import Variant
from monai_nacl.compare.paired import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    PairedComparison,
    paired_comparison,
)
from monai_nacl.compare.plots import (
    NLL_HISTORY,
    overlay_file,
    plot_comparison,
    plot_dice_estimates,
    plot_nll_history,
)
from monai_nacl.compare.runs import (
    ALL_VOXELS_DIR,
    POSTHOC_DIRS,
    SUMMARY,
    RunSpec,
    is_finished,
)
from monai_nacl.compare.table import (
    Column,
    Row,
    format_cell,
    format_difference,
    format_p_value,
    markdown_table,
    mean_std,
    paired_markdown_table,
    write_csv,
    write_per_case_csv,
)
from monai_nacl.handlers.report import HISTOGRAMS_FILENAME as HISTOGRAMS
from monai_nacl.metrics import CalibrationStatistics, concatenate_statistics, statistics_from_dict
from monai_nacl.utils import file_sha256

__all__ = [
    "CSV_COLUMNS",
    "ESTIMATE_COLUMNS",
    "PAIRED_COLUMNS",
    "TABLE_COLUMNS",
    "RunHistograms",
    "build_rows",
    "case_metrics",
    "dice_estimate_pairs",
    "paired_comparisons",
    "posthoc_ece_worse",
    "reproducibility_record",
    "run_histograms",
    "run_metrics",
    "write_report",
]

CALIBRATION = ("ece", "cece", "ace", "adaece", "mce", "nll", "brier")

TABLE_COLUMNS = [
    Column("DSC (%)", "dsc", higher_is_better=True, scale=100.0, decimals=2),
    Column("HD95 (mm)", "hd95", decimals=2),
    Column("ECE (%)", "ece", scale=100.0, decimals=2),
    Column("CECE (%)", "cece", scale=100.0, decimals=2),
    Column("ACE avg (%)", "ace", scale=100.0, decimals=2),
    Column("AdaECE (%)", "adaece", scale=100.0, decimals=2),
    Column("NLL", "nll", decimals=3),
    Column("Brier", "brier", decimals=3),
    Column("ECE all (%)", "ece_all", scale=100.0, decimals=2),
    Column("CECE all (%)", "cece_all", scale=100.0, decimals=2),
]
"""Columns of report.md: the paper's protocol (foreground), then the all-voxel ECE and CECE."""

CSV_COLUMNS = TABLE_COLUMNS + [
    Column("MCE", "mce"),
    Column("HD95 empty", "hd95_empty"),
    Column("ACE avg all", "ace_all"),
    Column("AdaECE all", "adaece_all"),
    Column("MCE all", "mce_all"),
    Column("NLL all", "nll_all"),
    Column("Brier all", "brier_all"),
    *(Column(f"{name} pooled", f"{name}_pooled") for name in CALIBRATION),
    Column("T", "temperature"),
]

ESTIMATE_COLUMNS = [
    Column("MAE (points)", "est_mae", scale=100.0, decimals=2),
    Column("Spearman", "est_spearman", higher_is_better=True, decimals=3),
    Column("Pearson", "est_pearson", higher_is_better=True, decimals=3),
    Column("est - true (points)", "est_bias", scale=100.0, decimals=2),
]
"""The label-free Dice estimate against the true Dice (the evaluation's ``summary.json`` ``dice_estimate``, over every
(test case, class) pair of a run): the report's estimate table."""
ESTIMATE_ERROR = Column("Dice est. error (points)", "est_error", scale=100.0, decimals=2)
"""Per test case, the mean over classes of ``|estimated - true Dice|`` (``metrics.csv`` ``est_dice_abs_error``):
paired against the reference row."""
CSV_COLUMNS += [*ESTIMATE_COLUMNS, ESTIMATE_ERROR]
"""Columns of summary.csv (unscaled): the table's, plus MCE, pooled-over-voxels figures, empty-HD95 counts, T and the
Dice estimate's agreement with the true Dice."""

PAIRED_KEYS = ("dsc", "ece", "cece", "ace", "adaece", "nll", "brier", "est_error")
"""Metrics compared case by case with the reference row, where the runs' ``metrics.csv`` has them."""
SOURCES = {"dsc": "mean_dice", "est_error": "est_dice_abs_error"}
"""Columns of ``metrics.csv`` (and keys of ``summary.json``'s ``mean``) holding a metric whose name differs from the
key."""
PAIRED_COLUMNS = [
    next((c for c in CSV_COLUMNS if c.key == key), Column(key.upper(), key, scale=100.0)) for key in PAIRED_KEYS
]
"""Columns of the paired table (titles, scale and direction as in the main table)."""


POSTHOC_NOTES = {
    "ts": (
        "- `+ TS` rows: the same trained model with one temperature fitted on the validation split (NLL, L-BFGS on "
        "log T, {region} voxels) dividing the logits at test time."
    ),
    "vector": (
        "- `+ VS` rows: the same trained model with one temperature per class fitted on the validation split (NLL, "
        "L-BFGS, {region} voxels) dividing each class's logit at test time."
    ),
    "lts": (
        "- `+ LTS` rows: local temperature scaling (Ding et al., ICCV 2021): a small convolutional network on the "
        "logits and the image, trained by NLL on validation patches ({region} voxels), predicts the temperature of "
        "each voxel."
    ),
}
"""The report's note on each post-hoc method's rows (all written to ``calibration.json`` by
``monai_nacl.calibration.fit_and_save`` and applied by ``ApplyCalibrationd``, as in the bundles)."""


def _number(value: Any) -> float:
    """A JSON/CSV value as float; null, empty and non-numbers become NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_metrics(eval_dir: Path) -> dict[str, float]:
    """The figures of one evaluated run (``eval_dir`` holds ``summary.json`` and ``metrics.csv``).

    Returns ``{dsc, hd95, hd95_empty, ece, cece, ace, adaece, mce, nll, brier}`` (mean over test cases, foreground
    protocol), ``<metric>_pooled`` (pooled over all foreground voxels), ``<metric>_all`` (mean over cases,
    all voxels, when ``all_voxels/summary.json`` exists) and ``temperature`` (for a ``ts`` post-hoc run, from its
    ``calibration.json``), and the label-free Dice estimate against the true Dice: ``est_mae``, ``est_spearman``,
    ``est_pearson``, ``est_bias`` (over the run's (case, class) pairs) and ``est_error`` (mean over cases of each
    case's mean ``|est - true|``).
    ``hd95`` is the mean over cases and foreground classes of the finite HD95 values; ``hd95_empty`` counts
    the (case, class) pairs whose class is in the label but was not predicted (HD95 infinite).
    """
    summary = json.loads((eval_dir / SUMMARY).read_text())
    mean, pooled = summary.get("mean", {}), summary.get("pooled", {})
    result = {"dsc": _number(mean.get(SOURCES["dsc"]))}
    result.update({name: _number(mean.get(name)) for name in CALIBRATION})
    result.update({f"{name}_pooled": _number(pooled.get(name)) for name in CALIBRATION})
    hd95: list[float] = []
    empty = 0
    if (eval_dir / "metrics.csv").is_file():
        for row in _read_csv(eval_dir / "metrics.csv"):
            for key, value in row.items():
                if key.startswith("hd95_"):
                    number = _number(value)
                    hd95 += [number] if math.isfinite(number) else []
                    empty += int(number == math.inf)
    estimate = summary.get("dice_estimate", {})
    result.update({column.key: _number(estimate.get(column.key.removeprefix("est_"))) for column in ESTIMATE_COLUMNS})
    result[ESTIMATE_ERROR.key] = _number(mean.get(SOURCES[ESTIMATE_ERROR.key]))
    result["hd95"] = float(np.mean(hd95)) if hd95 else math.nan
    result["hd95_empty"] = float(empty)
    all_voxels = eval_dir / ALL_VOXELS_DIR / SUMMARY
    if all_voxels.is_file():
        mean_all = json.loads(all_voxels.read_text()).get("mean", {})
        result.update({f"{name}_all": _number(mean_all.get(name)) for name in CALIBRATION})
    calibration = eval_dir / "calibration.json"
    if calibration.is_file():
        record = json.loads(calibration.read_text())
        if record.get("method") == "ts":
            result["temperature"] = _number(record.get("parameters", {}).get("temperature"))
    return result


def case_metrics(eval_dir: Path, seed: int) -> dict[tuple[str, int], dict[str, float]]:
    """``{(case, seed): {key: value}}`` of the :data:`PAIRED_KEYS` found in a run's ``metrics.csv`` ({} if absent)."""
    if not (eval_dir / "metrics.csv").is_file():
        return {}
    result = {}
    for line in _read_csv(eval_dir / "metrics.csv"):
        sources = {key: SOURCES.get(key, key) for key in PAIRED_KEYS}
        result[(line["case"], seed)] = {key: _number(line[name]) for key, name in sources.items() if name in line}
    return result


def dice_estimate_pairs(eval_dirs: Sequence[Path]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``(estimated, true)``: per class name, the estimated (``est_dice_<name>``) and true (``dice_<name>``) Dice of
    every case in the runs' ``metrics.csv``, in the same order ({} for runs evaluated without the estimate)."""
    estimated: dict[str, list[float]] = {}
    true: dict[str, list[float]] = {}
    for eval_dir in eval_dirs:
        if not (eval_dir / "metrics.csv").is_file():
            continue
        for line in _read_csv(eval_dir / "metrics.csv"):
            for column, value in line.items():
                name = column.removeprefix("est_dice_")
                if column.startswith("est_dice_") and f"dice_{name}" in line:
                    estimated.setdefault(name, []).append(_number(value))
                    true.setdefault(name, []).append(_number(line[f"dice_{name}"]))
    return estimated, true


def _failure(spec: RunSpec, eval_dir: Path) -> str:
    """The ``failed`` marker nearest to ``eval_dir`` (a post-hoc folder, its checkpoint's folder, the run's)."""
    for folder in (eval_dir, *eval_dir.parents):
        failed = folder / "failed"
        if failed.is_file():
            return f"seed {spec.seed}: {failed.read_text().strip()}"
        if folder == spec.run_dir:
            break
    return f"seed {spec.seed}: not run (no {eval_dir / SUMMARY})"


def build_rows(
    specs: list[RunSpec], posthoc: Sequence[str] = (), checkpoint: str = BEST
) -> tuple[list[Row], dict[str, list[Path]]]:
    """Rows of one checkpoint's table (each variant, then its post-hoc rows) and, per :attr:`Row.key`, the finished
    evaluation folders.

    Each row carries the per-case values of its finished seeds (``Row.cases``, see :func:`case_metrics`).
    """
    variants = list(dict.fromkeys(spec.variant for spec in specs))
    rows: list[Row] = []
    folders: dict[str, list[Path]] = {}
    for variant in variants:
        versions = [(variant, "")]
        for method in posthoc:
            versions.append((Variant(variant.loss_name, variant.params, posthoc=method), POSTHOC_DIRS[method]))
        for shown, sub in versions:
            row = Row(shown.name, checkpoint=checkpoint)
            folders[row.key] = []
            for spec in (s for s in specs if s.variant == variant):
                row.runs += 1
                checkpoint_dir = spec.evaluation_dir(checkpoint)
                eval_dir = checkpoint_dir / sub if sub else checkpoint_dir
                finished = is_finished(checkpoint_dir) and (eval_dir / SUMMARY).is_file()
                if not finished:
                    row.failures.append(_failure(spec, eval_dir))
                    continue
                for key, value in run_metrics(eval_dir).items():
                    row.values.setdefault(key, []).append(value)
                row.cases.update(case_metrics(eval_dir, spec.seed))
                folders[row.key].append(eval_dir)
            rows.append(row)
    return rows, folders


def run_history(run_dir: Path) -> list[dict[str, float | None]]:
    """The rows of a run's ``history.csv`` (epoch, training loss and NLL, validation metrics); [] without one."""
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    rows = []
    for row in _read_csv(path):
        values = {k: _number(v) if v not in ("", None) else None for k, v in row.items()}
        rows.append({k: (v if v is None or math.isfinite(v) else None) for k, v in values.items()})
    return rows


def _series(rows: list[dict[str, float | None]], column: str) -> list[dict[str, float | None]]:
    """The rows holding ``column``: each NLL's own first and last epoch (validation runs every ``val_interval``
    epochs, the training NLL at every epoch, so the two have different first epochs)."""
    return [r for r in rows if r.get(column) is not None]


def _first_to_last(series: list[dict[str, float | None]], column: str) -> str:
    """``1.648 (1) → 1.468 (2)``: the value at the first and at the last epoch that has it, each with its epoch."""
    first, last = series[0], series[-1]
    return f"{first[column]:.3f} ({int(first['epoch'])}) → {last[column]:.3f} ({int(last['epoch'])})"


def _best_dice_epoch(rows: list[dict[str, float | None]]) -> int | None:
    """The epoch of the best-validation checkpoint: the first highest ``val_mean_dice`` (the saver keeps a model
    only when a later one is strictly better); None without that column."""
    scored = [r for r in rows if r.get("val_mean_dice") is not None]
    return int(max(scored, key=lambda r: r["val_mean_dice"])["epoch"]) if scored else None


def _history_lines(histories: dict[str, list[dict[str, float | None]]], picture: str | None) -> list[str]:
    """The over-fitting section: per loss, the training NLL at its first and last epoch and the validation NLL at the
    first and last validation (each with its epoch), the epoch of the lowest validation NLL (after which it rises)
    and the epoch of the best-validation checkpoint."""
    header = (
        "| loss | epochs | train NLL first → last (epoch) | val NLL first → last (epoch) | lowest val NLL (epoch) "
        "| best val Dice (epoch) |"
    )
    table = [header, "|---|---|---|---|---|---|"]
    rising = []
    for name, rows in histories.items():
        train, validated = _series(rows, "train_nll"), _series(rows, "val_nll")
        if not train or not validated:
            continue
        last = validated[-1]
        lowest = min(validated, key=lambda r: r["val_nll"])
        best_epoch = _best_dice_epoch(rows)
        dice = "n/a" if best_epoch is None else f"{best_epoch}"
        table.append(
            f"| {name} | {int(rows[-1]['epoch'])} | {_first_to_last(train, 'train_nll')} | "
            f"{_first_to_last(validated, 'val_nll')} | {lowest['val_nll']:.3f} ({int(lowest['epoch'])}) | {dice} |"
        )
        if last["val_nll"] > lowest["val_nll"]:
            rising.append(
                f"- `{name}`: the validation NLL is lowest at epoch {int(lowest['epoch'])} ({lowest['val_nll']:.3f}) "
                f"and rises to {last['val_nll']:.3f} by epoch {int(last['epoch'])}"
                + ("" if best_epoch is None else f"; the best-validation checkpoint is epoch {best_epoch}")
                + "."
            )
    if len(table) == 2:
        return []
    lines = ["## Training against validation NLL", ""]
    if picture:
        lines += [f"![training and validation NLL per epoch]({picture})", ""]
    lines += [
        (
            "From each loss's first seed (`runs/<loss>/seed<k>/history.csv`), over the calibration region of the "
            "training patches and of the validation volumes: a training NLL that keeps falling while the validation "
            "NLL rises is the network memorising its training labels, which makes it over-confident on new cases. "
            "The final checkpoint is the last epoch's network; the best-validation one the epoch in the last column."
        ),
        "",
        *table,
        "",
    ]
    if rising:
        lines += ["Where the validation NLL starts to rise:", "", *rising, ""]
    return lines


def _stem(path: str) -> str:
    name = Path(path).name
    return re.sub(r"(\.nii\.gz|\.nii|\.mha|\.nrrd)$", "", name)


class RunHistograms(NamedTuple):
    """What one evaluated run's ``calibration_histograms.json`` holds."""

    statistics: CalibrationStatistics
    """Per-case calibration histograms (leading dimension: the run's test cases)."""
    region: str | None
    """The voxels they count (``foreground``, ...)."""
    class_names: list[str] | None
    """Names of the label values ``0 .. C - 1`` (the columns of ``metrics.csv``); None when not recorded."""


def run_histograms(eval_dir: Path) -> RunHistograms | None:
    """The per-case calibration histograms one evaluated run wrote, the region they count and the class names.

    Returns:
        a :class:`RunHistograms`, or None when the run has no ``calibration_histograms.json`` (evaluated by an
        older version): no picture rather than a guess.
    """
    path = eval_dir / HISTOGRAMS
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return RunHistograms(statistics_from_dict(saved["statistics"]), saved.get("region"), saved.get("class_names"))


def _test_labels(context: dict[str, Any]) -> dict[str, str]:
    """Label file per test case from the datalist recorded in ``compare.json`` (empty if unknown)."""
    datalist, dataset_dir = context.get("datalist"), context.get("dataset_dir")
    if not datalist or not Path(datalist).is_file():
        return {}
    from monai.data import load_decathlon_datalist

    items = load_decathlon_datalist(datalist, True, "test", dataset_dir)
    return {_stem(item["image"]): item["label"] for item in items if "label" in item}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_")


def paired_comparisons(
    rows: list[Row], reference: str, columns: list[Column] | None = None
) -> dict[str, dict[str, PairedComparison]]:
    """``{Row.key: {metric key: PairedComparison}}`` of every row but the references, each against the reference row
    of its own checkpoint, on each paired column.

    Args:
        rows: rows with their per-case values (:func:`build_rows`).
        reference: name of the reference row; rows of a checkpoint without it are not compared.
        columns: the paired metrics (default :data:`PAIRED_COLUMNS`).
    """
    bases = {row.checkpoint: row for row in rows if row.name == reference}
    columns = PAIRED_COLUMNS if columns is None else columns
    return {
        row.key: {
            c.key: paired_comparison(
                row.case_values(c.key), bases[row.checkpoint].case_values(c.key), c.higher_is_better
            )
            for c in columns
        }
        for row in rows
        if row.name != reference and row.checkpoint in bases
    }


def _posthoc_base(row: Row, rows: Sequence[Row]) -> Row | None:
    """``ce`` for a post-hoc row ``ce + TS`` of the same checkpoint (any ``<row> + <method>`` whose ``<row>`` is a
    row), else None."""
    base, sep, method = row.name.rpartition(" + ")
    if not (sep and method):
        return None
    return next((r for r in rows if r.name == base and r.checkpoint == row.checkpoint), None)


def posthoc_ece_worse(rows: list[Row]) -> dict[str, bool]:
    """For each post-hoc row ``<loss> + <method>`` (by :attr:`Row.key`): whether its mean ECE is above the mean ECE
    of its ``<loss>`` row at the same checkpoint.

    Rows whose ECE or whose base's ECE is unknown are left out.
    """
    flags = {}
    for row in rows:
        base = _posthoc_base(row, rows)
        if base is None:
            continue
        mean, base_mean = (mean_std(r.values.get("ece", []))[0] for r in (row, base))
        if math.isfinite(mean) and math.isfinite(base_mean):
            flags[row.key] = mean > base_mean
    return flags


def _posthoc_warnings(rows: list[Row], flags: dict[str, bool], ts_region: str) -> list[str]:
    """One line per flagged post-hoc row: both ECEs, the paired difference and the fitted temperatures."""
    ece = next(c for c in PAIRED_COLUMNS if c.key == "ece")
    lines = []
    for row in (r for r in rows if flags.get(r.key)):
        base = _posthoc_base(row, rows)
        assert base is not None
        before, after = (100.0 * mean_std(r.values.get("ece", []))[0] for r in (base, row))
        text = f"- ⚠ `{row.key}`: foreground ECE {after:.2f} % against {before:.2f} % for `{base.key}` without it"
        comparison = paired_comparison(row.case_values("ece"), base.case_values("ece"), higher_is_better=False)
        if comparison.cases:
            difference, interval = format_difference(comparison, ece)
            text += f" (paired difference {difference} points, 95 % CI {interval}, {comparison.cases} case(s))"
        temperatures = row.values.get("temperature", [])
        if temperatures:
            text += f"; fitted temperature(s) {', '.join(f'{t:.3f}' for t in temperatures)} on {ts_region} voxels"
            if any(t < 1.0 for t in temperatures):
                text += " (T < 1 sharpens every probability)"
        lines.append(text + ". The post-hoc step made this model worse calibrated where the table measures it.")
    return lines


CHECKPOINT_TITLES = {
    BEST: "Best-validation checkpoint",
    FINAL: "Final checkpoint",
}
"""Section titles of the checkpoints' tables."""
CHECKPOINT_NOTES = {
    BEST: (
        "`models/model.pt`: the network of the epoch with the highest validation mean Dice, the checkpoint the NACL "
        "authors report."
    ),
    FINAL: (
        "The network of the last epoch (`models/checkpoint_last.pt`, evaluated from `final/models/model.pt`), where "
        "a network memorising its training labels shows it; its post-hoc rows are fitted for these weights."
    ),
}


MEAN_OVER_VOLUMES = (
    "Calibration columns: mean over test volumes of each volume's value (the reliability diagrams below give pooled "
    "values, every voxel of every volume at once)."
)
"""The line above each table: which of the two ECEs a reader sees there."""


def _cece_note(class_names: Sequence[str] | None) -> str:
    """What the CECE column averages, naming the classes when the evaluations recorded them."""
    classes = f"all {len(class_names)} classes ({', '.join(class_names)})" if class_names else "all classes"
    return (
        f"- CECE: per class c the ECE of p_c against 1[y = c], then the unweighted mean over {classes}, background "
        "included: in the foreground columns no voxel is background, so its term there is the mean background "
        "probability (the per-class pictures leave its panel out and state its ECE)."
    )


def _paired_lines(
    tables: Mapping[str, list[Row]],
    comparisons: dict[str, dict[str, PairedComparison]],
    columns: list[Column],
    reference: str,
) -> list[str]:
    """The report's paired section: per checkpoint the table against that checkpoint's reference row, and how to
    read them."""
    lines = [f"## Paired differences against `{reference}`", ""]
    for checkpoint, rows in tables.items():
        if len(tables) > 1:
            lines += [f"### {CHECKPOINT_TITLES.get(checkpoint, checkpoint)}", ""]
        if not columns or not any(row.name == reference and row.cases for row in rows):
            lines += [f"No per-case values of `{reference}` were found: no paired statistics.", ""]
            continue
        lines += [paired_markdown_table(rows, comparisons, columns, reference), ""]
    return lines + [
        (
            f"Δ = row - `{reference}` of the same checkpoint on the same test case and seed, averaged over the seeds "
            "of each case, then over cases (in the units of the tables above; points for the % columns). The "
            f"interval is the {CONFIDENCE:.0%} percentile bootstrap interval of that mean, resampling test cases "
            f"with replacement and keeping each case's seeds together ({BOOTSTRAP_RESAMPLES} resamples, seed "
            f"{BOOTSTRAP_SEED}); p is the two-sided Wilcoxon signed-rank test on the per-case differences. A "
            f"difference is called better or worse, and shown in bold, only when the interval excludes 0 and p < "
            f"{1 - CONFIDENCE:.2f}; with n cases the smallest p is 2 / 2^n, so fewer than 6 cases never show a "
            "detectable difference. The interval reflects the spread over test cases for these trained models, not "
            "a training-seed effect shared by all cases. Per-case values and differences: `per_case.csv`; the same "
            "statistics: `summary.csv`."
        ),
        "",
    ]


def _estimate_lines(
    tables: Mapping[str, list[Row]],
    comparisons: dict[str, dict[str, PairedComparison]],
    pictures: Mapping[str, str],
    reference: str,
) -> list[str]:
    """The report's section on the label-free Dice estimate: per checkpoint and row, its agreement with the true Dice
    (:data:`ESTIMATE_COLUMNS`), the per-case error paired against the reference row and the row's scatter plot."""
    if not any(row.values.get(c.key) for table in tables.values() for row in table for c in ESTIMATE_COLUMNS):
        return []
    arrows = {c.key: " ↑" if c.higher_is_better else " ↓" for c in ESTIMATE_COLUMNS if c.key != "est_bias"}
    header = ["loss", *(c.title + arrows.get(c.key, " (0 best)") for c in ESTIMATE_COLUMNS)]
    header += [f"error Δ vs {reference} (95 % CI)", "p (Wilcoxon)", "verdict", "scatter"]
    lines = [
        "## Dice estimated without labels",
        "",
        (
            "What a model's probabilities say its Dice is, before anyone labels the case: per test case and "
            "foreground class the Soft Dice Confidence (arXiv 2402.10665), `2 sum(p * yhat) / (sum(p) + sum(yhat))` "
            "of the class probabilities `p` and the predicted mask `yhat`, against the true Dice of that case and "
            "class. A calibrated model's estimate matches its Dice; an over-confident one's is too high (est - true "
            "> 0). MAE, Spearman and Pearson are over every (test case, class) pair of a run, then mean ± std over "
            f"seeds. The error column is paired against `{reference}` case by case (each case's mean |est - true| "
            "over its classes, the statistics of the paired section): better means the row's self-assessment is "
            "closer to its true Dice."
        ),
        "",
    ]
    for checkpoint, rows in tables.items():
        if len(tables) > 1:
            lines += [f"### {CHECKPOINT_TITLES.get(checkpoint, checkpoint)}", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
        for row in rows:
            cells = [row.name, *(format_cell(row.values.get(c.key, []), c) for c in ESTIMATE_COLUMNS)]
            comparison = comparisons.get(row.key, {}).get(ESTIMATE_ERROR.key)
            if comparison is None:
                cells += ["reference" if row.name == reference else "n/a", "", ""]
            else:
                difference, interval = format_difference(comparison, ESTIMATE_ERROR)
                text = f"{difference} {interval}"
                cells += [f"**{text}**" if comparison.detectable else text, format_p_value(comparison.p_value)]
                cells.append(comparison.verdict)
            cells.append(f"[plot]({pictures[row.key]})" if row.key in pictures else "n/a")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _sha256(path: str | None) -> str | None:
    return file_sha256(path) if path and Path(path).is_file() else None


def _command_line(argv: list[str]) -> str:
    """``argv`` as a shell command; ``.../monai_nacl/__main__.py`` is written ``python -m monai_nacl``."""
    if argv and Path(argv[0]).parts[-2:] == ("monai_nacl", "__main__.py"):
        return "python -m monai_nacl " + shlex.join(argv[1:])
    return shlex.join(argv)


def reproducibility_record(datalist: str | None) -> dict[str, Any]:
    """What ``compare.json`` records, beside the resolved settings, to reproduce the report.

    Returns ``datalist_sha256`` (of the datalist file, None when it is not a file), ``command_line`` (this
    process's) and ``versions`` (monai_nacl, MONAI, torch, numpy, Python).
    """
    import monai
    import torch

    import monai_nacl

    return {
        "datalist_sha256": _sha256(datalist),
        "command_line": _command_line(sys.argv),
        "versions": {
            "monai_nacl": monai_nacl.__version__,
            "monai": monai.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }


def _reproducibility_lines(context: dict[str, Any], bundle_name: str, reference: str) -> list[str]:
    """The report's reproducibility section, from ``compare.json`` (absent entries shown as not recorded)."""

    def shown(key: str) -> str:
        value = context.get(key)
        return "not recorded" if value is None else f"`{json.dumps(value) if not isinstance(value, str) else value}`"

    versions = context.get("versions", {})
    version_text = ", ".join(f"{name} {value}" for name, value in versions.items()) or "not recorded"
    return [
        "## Reproducibility",
        "",
        f"- bundle: `{bundle_name}` at {shown('bundle')}; protocol: {shown('protocol')}",
        f"- configs merged to train: {shown('train_configs')}; to evaluate: {shown('evaluate_configs')}",
        f"- datalist: {shown('datalist')}, sha256 {shown('datalist_sha256')}; data folder: {shown('dataset_dir')}",
        f"- classes: {shown('num_classes')}; epochs per run: {shown('max_epochs')}; seeds: {shown('seeds')}",
        f"- checkpoints evaluated: {shown('checkpoints')}",
        f"- bundle overrides: {shown('overrides')}",
        (
            f"- paired statistics: reference `{reference}`, {BOOTSTRAP_RESAMPLES} bootstrap resamples of the test "
            f"cases (seed {BOOTSTRAP_SEED}), {CONFIDENCE:.0%} percentile intervals, two-sided Wilcoxon signed-rank"
        ),
        f"- versions: {version_text}",
        f"- command: {shown('command_line')}",
        "",
    ]


def _checkpoint_epochs(checkpoint: str, histories: Mapping[str, list[dict[str, float | None]]]) -> str:
    """`` (epochs, first seed: ce 40, nacl 80)``: which epoch each loss's checkpoint is, from its history."""
    epochs = {}
    for name, rows in histories.items():
        epoch = _best_dice_epoch(rows) if checkpoint == BEST else (int(rows[-1]["epoch"]) if rows else None)
        if epoch is not None:
            epochs[name] = epoch
    if not epochs:
        return ""
    if len(set(epochs.values())) == 1 and checkpoint == FINAL:
        text = f" Epoch {next(iter(epochs.values()))}."
    else:
        text = " Epochs (first seed): " + ", ".join(f"{name} {epoch}" for name, epoch in epochs.items()) + "."
    if checkpoint == FINAL and all(_best_dice_epoch(histories[name]) == epoch for name, epoch in epochs.items()):
        text += " It is the best-validation epoch too for every loss (first seed): both tables hold the same weights."
    return text


def _confidence_lines(
    tables: dict[str, list[Row]], per_case: dict[str, CalibrationStatistics], region: str | None
) -> list[str]:
    """Per row, the mean top-label confidence against the accuracy over the pooled voxels: the direction and size of
    a row's miscalibration in two numbers (their gap is a lower bound of the pooled ECE)."""
    lines = []
    for checkpoint, table in tables.items():
        for row in table:
            stats = per_case.get(row.key)
            if stats is None or stats.top_label is None:
                continue
            top = stats.top_label.sum(0) if stats.top_label.ndim == 3 else stats.top_label
            count = float(top[0].sum())
            if count <= 0:
                continue
            confidence, accuracy = 100 * float(top[1].sum()) / count, 100 * float(top[2].sum()) / count
            gap = confidence - accuracy
            reading = "over-confident" if gap > 0 else "under-confident"
            title = CHECKPOINT_TITLES.get(checkpoint, checkpoint).lower()
            lines.append(f"| {row.name} | {title} | {confidence:.1f} | {accuracy:.1f} | {gap:+.1f} ({reading}) |")
    if not lines:
        return []
    return [
        "## Confidence against accuracy",
        "",
        (
            f"Mean top-label confidence and accuracy over the pooled voxels of every test case and seed (region: "
            f"{region or 'as evaluated'}), in %: confidence above accuracy is over-confidence. The gap is a lower "
            "bound of the pooled ECE (the ECE adds the bins' gaps without letting them cancel)."
        ),
        "",
        "| row | checkpoint | confidence | accuracy | gap (points) |",
        "|---|---|:---:|:---:|:---:|",
        *lines,
        "",
    ]


def write_report(
    output: Path,
    specs: list[RunSpec],
    posthoc: Sequence[str],
    bundle_name: str,
    reference: str = "ce",
    checkpoints: Sequence[str] = CHECKPOINTS,
) -> Path:
    """Write ``report.md``, ``summary.csv``, ``per_case.csv``, the pictures of
    :func:`~monai_nacl.compare.plots.plot_comparison` and the Dice estimate's scatter plots.

    Args:
        output: the comparison folder (holds ``compare.json`` and ``runs/``).
        specs: the planned runs.
        posthoc: the post-hoc methods whose ``<loss> + <method>`` rows were run (``ts``, ``vector``, ``lts``).
        bundle_name: shown in the title.
        reference: row every other row of its checkpoint is compared with, case by case.
        checkpoints: the checkpoints evaluated (``best``, ``final``), one table each.

    Returns:
        the path of ``report.md``.
    """
    context = json.loads((output / "compare.json").read_text()) if (output / "compare.json").is_file() else {}
    tables: dict[str, list[Row]] = {}
    folders: dict[str, list[Path]] = {}
    for checkpoint in checkpoints:
        tables[checkpoint], checkpoint_folders = build_rows(specs, posthoc, checkpoint)
        folders.update(checkpoint_folders)
    rows = [row for table in tables.values() for row in table]
    paired_columns = [c for c in PAIRED_COLUMNS if any(c.key in m for row in rows for m in row.cases.values())]
    comparisons = paired_comparisons(rows, reference, paired_columns)
    flags = posthoc_ece_worse(rows)
    write_csv(rows, CSV_COLUMNS, output / "summary.csv", comparisons, paired_columns, reference, flags)
    write_per_case_csv(rows, paired_columns, reference, output / "per_case.csv")
    num_bins = int(context.get("num_bins", 15))
    labels = _test_labels(context)
    per_case, regions, class_names = {}, set(), None
    for row in rows:
        runs = [run_histograms(folder) for folder in folders[row.key]]
        if runs and all(run is not None for run in runs):
            per_case[row.key] = concatenate_statistics([run.statistics for run in runs])
            regions.update(run.region for run in runs)
            class_names = class_names or next((run.class_names for run in runs if run.class_names), None)
    region = ", ".join(sorted(r for r in regions if r)) or None
    overlays = {
        overlay_file(checkpoint, checkpoints): (
            f"{CHECKPOINT_TITLES[checkpoint]}: every row, test cases and seeds pooled",
            [row.key for row in rows if row.checkpoint == checkpoint],
        )
        for checkpoint in checkpoints
    }
    pictures = plot_comparison(output, per_case, {key: _slug(key) for key in per_case}, region, overlays, class_names)
    estimates = {row.key: dice_estimate_pairs(folders[row.key]) for row in rows}
    estimates = {key: pairs for key, pairs in estimates.items() if pairs[0]}
    estimate_pictures = {}
    if estimates and importlib.util.find_spec("matplotlib") is not None:
        estimate_pictures = plot_dice_estimates(output, estimates, {key: _slug(key) for key in estimates})
    trained = list(dict.fromkeys(spec.variant for spec in specs))
    histories = {
        variant.name: run_history(next(s.run_dir for s in specs if s.variant == variant)) for variant in trained
    }
    histories = {name: rows for name, rows in histories.items() if rows}
    history_picture = None
    if histories and importlib.util.find_spec("matplotlib") is not None:
        plot_nll_history(histories, output / NLL_HISTORY, region)
        history_picture = NLL_HISTORY
    epochs = context.get("max_epochs") or "the bundle's default"
    flagged = {key for key, worse in flags.items() if worse}
    lines = [
        f"# Calibration comparison: bundle `{bundle_name}`",
        "",
        (
            f"Runs: {len(specs)} ({len({s.variant for s in specs})} loss setting(s) x {len({s.seed for s in specs})} "
            f"seed(s)); epochs per run: {epochs}; test cases: {len(labels) or '?'}; checkpoints: "
            f"{', '.join(checkpoints)}."
        ),
        "",
    ]
    for checkpoint, table in tables.items():
        lines += [
            f"## {CHECKPOINT_TITLES.get(checkpoint, checkpoint)}",
            "",
            CHECKPOINT_NOTES.get(checkpoint, "") + _checkpoint_epochs(checkpoint, histories),
            "",
            MEAN_OVER_VOLUMES,
            "",
            markdown_table(table, TABLE_COLUMNS, flagged=flagged),
            "",
        ]
    lines += [
        (
            "Values are mean ± sample standard deviation over seeds (a single seed shows its value); ↑ higher is "
            "better, ↓ lower is better. No mean is bold: whether a row differs from the reference is read from the "
            "paired tables below."
        ),
        "",
        (
            "- DSC and HD95: per foreground class and test volume, averaged over classes and volumes; HD95 in mm "
            "(voxel spacing), over the (volume, class) pairs where it is defined."
        ),
        (
            "- ECE, CECE, ACE avg, AdaECE, NLL, Brier: the NACL paper's protocol, over ground-truth foreground "
            f"voxels (label != 0) of each test volume, {num_bins} equal-width bins, then averaged over volumes; "
            "ECE/CECE/ACE/AdaECE in %. ACE avg is MONAI's average calibration error (unweighted mean of "
            "|accuracy - confidence| over the non-empty bins); AdaECE the adaptive ECE over equal-mass bins. "
            "'all' columns: the same over every voxel of the volume."
        ),
        _cece_note(class_names),
    ]
    lines += [POSTHOC_NOTES[method].format(region=context.get("ts_region", "all")) for method in posthoc]
    lines.append("")
    warnings = _posthoc_warnings(rows, flags, str(context.get("ts_region", "all")))
    if warnings:
        lines += ["## Warnings: post-hoc calibration that made ECE worse", "", *warnings, ""]
    lines += _confidence_lines(tables, per_case, region)
    lines += _paired_lines(tables, comparisons, paired_columns, reference)
    lines += _estimate_lines(tables, comparisons, estimate_pictures, reference)
    empty = {r.key: int(sum(r.values.get("hd95_empty", []))) for r in rows}
    if any(empty.values()):
        pairs = ", ".join(f"{name} ({count} pair(s))" for name, count in empty.items() if count)
        lines += [f"HD95 left out where a class present in the label was not predicted at all: {pairs}.", ""]
    temperature_rows = [r for r in rows if r.values.get("temperature")]
    if temperature_rows:
        lines.append(
            "Fitted temperatures: "
            + ", ".join(f"{r.key}: " + ", ".join(f"{t:.3f}" for t in r.values["temperature"]) for r in temperature_rows)
        )
        lines.append("")
    failures = [f"- {r.key}, {failure}" for r in rows for failure in r.failures]
    if failures:
        lines += ["## Failed runs", "", *failures, ""]
    if pictures:
        lines += [
            "## Reliability diagrams",
            "",
            (
                f"From each evaluation's calibration histograms (region: {region}), all test volumes and seeds "
                "pooled: the ECE and CECE in their legends and titles are pooled over every counted voxel at once, "
                "not the tables' mean over volumes (`<metric> pooled` in `summary.csv`). Every row of a checkpoint "
                "in one diagram: "
                + ", ".join(f"[{CHECKPOINT_TITLES[c].lower()}]({overlay_file(c, checkpoints)})" for c in checkpoints)
                + "; per row its diagram, per-class diagrams and dataset reliability "
                "histogram (per class and confidence bin, the test images by their accuracy in that bin):"
            ),
            "",
            *(
                f"- {name}: [diagram]({files['diagram']}), [per class]({files['classwise']}), "
                f"[dataset]({files['dataset']})"
                for name, files in pictures.items()
            ),
            "",
        ]
    lines += _history_lines(histories, history_picture)
    lines += _reproducibility_lines(context, bundle_name, reference)
    lines += [
        (
            "Each run's folder (logs, models, metrics.csv, summary.json, predictions of the best-validation "
            "checkpoint): `runs/<loss>/seed<k>/`; the final checkpoint's evaluation: `runs/<loss>/seed<k>/final/`."
        ),
        "",
    ]
    report = output / "report.md"
    report.write_text("\n".join(lines))
    return report
