"""The comparison report: ``report.md``, ``summary.csv`` and reliability diagrams from the runs' folders.

Figures per run come from what the bundle's evaluation wrote: ``summary.json`` / ``metrics.csv`` of the
paper's protocol (calibration over ground-truth foreground voxels, 15 bins, per test volume then averaged
over volumes) and ``all_voxels/summary.json`` (the same metrics over every voxel). The evaluation does not
write each case's calibration histograms (``calibration_histograms.json``), from which the reliability
pictures are drawn (:mod:`monai_nacl.compare.plots`): per row its cases and seeds pooled, per class, the
dataset reliability histogram, and an overlay of all rows.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_nacl.compare.grid import Variant
from monai_nacl.compare.plots import OVERLAY, plot_comparison
from monai_nacl.compare.runs import (
    ALL_VOXELS_DIR,
    POSTHOC_DIRS,
    SUMMARY,
    RunSpec,
    is_finished,
)
from monai_nacl.compare.table import Column, Row, markdown_table, write_csv
from monai_nacl.metrics import CalibrationStatistics, concatenate_statistics, statistics_from_dict
from monai_nacl.workflows.report import HISTOGRAMS_FILENAME as HISTOGRAMS

__all__ = [
    "CSV_COLUMNS",
    "TABLE_COLUMNS",
    "build_rows",
    "run_histograms",
    "run_metrics",
    "write_report",
]

CALIBRATION = ("ece", "cece", "ace", "mce", "nll", "brier")

TABLE_COLUMNS = [
    Column("DSC (%)", "dsc", higher_is_better=True, scale=100.0, decimals=2),
    Column("HD95 (mm)", "hd95", decimals=2),
    Column("ECE (%)", "ece", scale=100.0, decimals=2),
    Column("CECE (%)", "cece", scale=100.0, decimals=2),
    Column("ACE (%)", "ace", scale=100.0, decimals=2),
    Column("NLL", "nll", decimals=3),
    Column("Brier", "brier", decimals=3),
    Column("ECE all (%)", "ece_all", scale=100.0, decimals=2),
    Column("CECE all (%)", "cece_all", scale=100.0, decimals=2),
]
"""Columns of report.md: the paper's protocol (foreground), then the all-voxel ECE and CECE."""

CSV_COLUMNS = TABLE_COLUMNS + [
    Column("MCE", "mce"),
    Column("HD95 empty", "hd95_empty"),
    Column("ACE all", "ace_all"),
    Column("MCE all", "mce_all"),
    Column("NLL all", "nll_all"),
    Column("Brier all", "brier_all"),
    *(Column(f"{name} pooled", f"{name}_pooled") for name in CALIBRATION),
    Column("T", "temperature"),
]
"""Columns of summary.csv (unscaled): the table's, plus MCE, pooled-over-voxels figures, empty-HD95 counts and T."""


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

    Returns ``{dsc, hd95, hd95_empty, ece, cece, ace, mce, nll, brier}`` (mean over test cases, foreground
    protocol), ``<metric>_pooled`` (pooled over all foreground voxels), ``<metric>_all`` (mean over cases,
    all voxels, when ``all_voxels/summary.json`` exists) and ``temperature`` (for a ``ts`` post-hoc run, from its
    ``calibration.json``).
    ``hd95`` is the mean over cases and foreground classes of the finite HD95 values; ``hd95_empty`` counts
    the (case, class) pairs whose class is in the label but was not predicted (HD95 infinite).
    """
    summary = json.loads((eval_dir / SUMMARY).read_text())
    mean, pooled = summary.get("mean", {}), summary.get("pooled", {})
    result = {"dsc": _number(mean.get("mean_dsc"))}
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


def _failure(spec: RunSpec, eval_dir: Path) -> str:
    for folder in (eval_dir, spec.run_dir):
        failed = folder / "failed"
        if failed.is_file():
            return f"seed {spec.seed}: {failed.read_text().strip()}"
    return f"seed {spec.seed}: not run (no {eval_dir / SUMMARY})"


def build_rows(specs: list[RunSpec], posthoc: Sequence[str] = ()) -> tuple[list[Row], dict[str, list[Path]]]:
    """Rows of the table (each variant, then its ``+ TS`` row) and, per row, the finished evaluation folders."""
    variants = list(dict.fromkeys(spec.variant for spec in specs))
    rows: list[Row] = []
    folders: dict[str, list[Path]] = {}
    for variant in variants:
        versions = [(variant, "")]
        for method in posthoc:
            versions.append((Variant(variant.loss_name, variant.params, posthoc=method), POSTHOC_DIRS[method]))
        for shown, sub in versions:
            row = Row(shown.name)
            folders[row.name] = []
            for spec in (s for s in specs if s.variant == variant):
                row.runs += 1
                eval_dir = spec.run_dir / sub if sub else spec.run_dir
                finished = is_finished(spec.run_dir) and (eval_dir / SUMMARY).is_file()
                if not finished:
                    row.failures.append(_failure(spec, eval_dir))
                    continue
                for key, value in run_metrics(eval_dir).items():
                    row.values.setdefault(key, []).append(value)
                folders[row.name].append(eval_dir)
            rows.append(row)
    return rows, folders


def _stem(path: str) -> str:
    name = Path(path).name
    return re.sub(r"(\.nii\.gz|\.nii|\.mha|\.nrrd)$", "", name)


def run_histograms(eval_dir: Path) -> tuple[CalibrationStatistics, str | None] | None:
    """The per-case calibration histograms one evaluated run wrote, and the region they count.

    Returns:
        ``(statistics, region)``, or None when the run has no ``calibration_histograms.json`` (evaluated by an
        older version): no picture rather than a guess.
    """
    path = eval_dir / HISTOGRAMS
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return statistics_from_dict(saved["statistics"]), saved.get("region")


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


def write_report(output: Path, specs: list[RunSpec], posthoc: Sequence[str], bundle_name: str) -> Path:
    """Write ``report.md``, ``summary.csv`` and the pictures of :func:`~monai_nacl.compare.plots.plot_comparison`;
    return report.md."""
    context = json.loads((output / "compare.json").read_text()) if (output / "compare.json").is_file() else {}
    rows, folders = build_rows(specs, posthoc)
    write_csv(rows, CSV_COLUMNS, output / "summary.csv")
    num_bins = int(context.get("num_bins", 15))
    labels = _test_labels(context)
    per_case, regions = {}, set()
    for row in rows:
        runs = [run_histograms(folder) for folder in folders[row.name]]
        if runs and all(run is not None for run in runs):
            per_case[row.name] = concatenate_statistics([stats for stats, _ in runs])
            regions.update(region for _, region in runs)
    region = ", ".join(sorted(r for r in regions if r)) or None
    pictures = plot_comparison(output, per_case, {name: _slug(name) for name in per_case}, region)
    epochs = context.get("max_epochs") or "the bundle's default"
    lines = [
        f"# Calibration comparison: bundle `{bundle_name}`",
        "",
        (
            f"Runs: {len(specs)} ({len({s.variant for s in specs})} loss setting(s) x {len({s.seed for s in specs})} "
            f"seed(s)); epochs per run: {epochs}; test cases: {len(labels) or '?'}."
        ),
        "",
        markdown_table(rows, TABLE_COLUMNS),
        "",
        (
            "Values are mean ± sample standard deviation over seeds (a single seed shows its value); the best mean "
            "of each column, as displayed, is in bold (↑ higher is better, ↓ lower is better)."
        ),
        "",
        (
            "- DSC and HD95: per foreground class and test volume, averaged over classes and volumes; HD95 in mm "
            "(voxel spacing), over the (volume, class) pairs where it is defined."
        ),
        (
            "- ECE, CECE, ACE, NLL, Brier: the NACL paper's protocol, over ground-truth foreground voxels "
            f"(label != 0) of each test volume, {num_bins} equal-width bins, then averaged over volumes; "
            "ECE/CECE/ACE in %. 'all' columns: the same over every voxel of the volume."
        ),
    ]
    lines += [POSTHOC_NOTES[method].format(region=context.get("ts_region", "all")) for method in posthoc]
    lines.append("")
    empty = {r.name: int(sum(r.values.get("hd95_empty", []))) for r in rows}
    if any(empty.values()):
        pairs = ", ".join(f"{name} ({count} pair(s))" for name, count in empty.items() if count)
        lines += [f"HD95 left out where a class present in the label was not predicted at all: {pairs}.", ""]
    temperature_rows = [r for r in rows if r.values.get("temperature")]
    if temperature_rows:
        lines.append(
            "Fitted temperatures: "
            + ", ".join(
                f"{r.name}: " + ", ".join(f"{t:.3f}" for t in r.values["temperature"]) for r in temperature_rows
            )
        )
        lines.append("")
    failures = [f"- {r.name}, {failure}" for r in rows for failure in r.failures]
    if failures:
        lines += ["## Failed runs", "", *failures, ""]
    if pictures:
        lines += [
            "## Reliability diagrams",
            "",
            (
                f"From each evaluation's calibration histograms (region: {region}), all test volumes and seeds "
                f"pooled: [all rows]({OVERLAY}); per row its diagram, per-class diagrams and dataset reliability "
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
    lines += ["Each run's folder (logs, model, metrics.csv, summary.json, predictions): `runs/<loss>/seed<k>/`.", ""]
    report = output / "report.md"
    report.write_text("\n".join(lines))
    return report
