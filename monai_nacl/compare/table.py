"""The comparison tables: one row per variant (mean +- std over seeds), and each row's paired differences
against the reference row with their bootstrap interval, Wilcoxon p-value and verdict.

No cell is bold for being the best mean (with few cases and seeds that is noise); bold marks only a paired
difference the statistics call (see :mod:`monai_nacl.compare.paired`). Pure formatting on numbers; reading
the runs' files is ``report.py``'s job.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monai_nacl.compare.paired import PairedComparison

__all__ = [
    "PAIRED_FIELDS",
    "Column",
    "Row",
    "format_cell",
    "format_difference",
    "format_p_value",
    "markdown_table",
    "mean_std",
    "paired_markdown_table",
    "write_csv",
    "write_per_case_csv",
]


@dataclass(frozen=True)
class Column:
    """One metric column.

    Args:
        title: header text (``"ECE"``).
        key: where the value is read from (a key of the flattened per-run metrics).
        higher_is_better: True for DSC, False for the errors.
        scale: shown value = stored value * scale (x100 for DSC/ECE as in the papers).
        decimals: digits after the point.
    """

    title: str
    key: str
    higher_is_better: bool = False
    scale: float = 1.0
    decimals: int = 2


@dataclass
class Row:
    """One variant at one checkpoint: per-seed values of each column (failed seeds contribute nothing) and its
    failures.

    Args:
        name: row name (``nacl``, ``nacl(alpha=0.2)``, ``ce + TS``).
        values: ``{column key: [value per finished seed]}``; NaN values (e.g. HD95 of an empty
            prediction) are left out of the mean and counted in ``missing``.
        runs: number of seeds attempted.
        failures: one text per failed seed (``"seed 1: train failed, see runs/.../train.log"``).
        cases: ``{(case, seed): {column key: value}}``, the per-test-case values of the finished seeds that
            the paired statistics use.
        checkpoint: the weights evaluated (``best``, ``final``), None where the table has one kind only; rows are
            compared only with rows of the same checkpoint.
    """

    name: str
    values: dict[str, list[float]] = field(default_factory=dict)
    runs: int = 0
    failures: list[str] = field(default_factory=list)
    cases: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    checkpoint: str | None = None

    @property
    def key(self) -> str:
        """The row's identity among the rows of every checkpoint: ``ce``, or ``ce (final)`` with a checkpoint."""
        return self.name if self.checkpoint is None else f"{self.name} ({self.checkpoint})"

    def case_values(self, key: str) -> dict[tuple[str, int], float]:
        """``{(case, seed): value}`` of one column (cases that lack it left out)."""
        return {pair: metrics[key] for pair, metrics in self.cases.items() if key in metrics}

    @property
    def finished(self) -> int:
        """Number of seeds that produced metrics."""
        return self.runs - len(self.failures)


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (n - 1 in the denominator; 0 for one value) and count of finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(finite) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 else 0.0
    return mean, std, n


def format_cell(values: Sequence[float], column: Column) -> str:
    """``"83.20 ± 1.05"`` (several seeds), ``"83.20"`` (one seed) or ``"n/a"`` (no finite value)."""
    mean, std, n = mean_std(values)
    if n == 0:
        return "n/a"
    text = f"{mean * column.scale:.{column.decimals}f}"
    return text + f" ± {std * column.scale:.{column.decimals}f}" if n > 1 else text


def markdown_table(rows: Sequence[Row], columns: Sequence[Column], flagged: Collection[str] = ()) -> str:
    """A Markdown table of the rows' means, with a ``seeds`` column (finished / attempted); nothing in bold.

    Args:
        rows: the rows, in report order (of one checkpoint: the table shows the names).
        columns: the metric columns.
        flagged: :attr:`Row.key` of the rows marked ``⚠`` (a warning about them follows the table).
    """
    header = ["loss", *(c.title + (" ↑" if c.higher_is_better else " ↓") for c in columns), "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
    for row in rows:
        cells = [row.name + (" ⚠" if row.key in flagged else "")]
        cells += [format_cell(row.values.get(column.key, []), column) for column in columns]
        seeds = f"{row.finished}/{row.runs}" + (" (failed)" if row.failures else "")
        lines.append("| " + " | ".join(cells + [seeds]) + " |")
    return "\n".join(lines)


def _signed(value: float, column: Column) -> str:
    return f"{value * column.scale:+.{column.decimals}f}"


def format_difference(comparison: PairedComparison, column: Column) -> tuple[str, str]:
    """``("+1.23", "[+0.40, +2.05]")``: the paired difference and its interval, scaled as the column is shown."""
    if comparison.cases == 0:
        return "n/a", "n/a"
    interval = f"[{_signed(comparison.ci_low, column)}, {_signed(comparison.ci_high, column)}]"
    return _signed(comparison.difference, column), interval


def format_p_value(p_value: float) -> str:
    """``"0.031"``, ``"<0.001"`` or ``"n/a"``."""
    if not math.isfinite(p_value):
        return "n/a"
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def paired_markdown_table(
    rows: Sequence[Row],
    comparisons: Mapping[str, Mapping[str, PairedComparison]],
    columns: Sequence[Column],
    reference: str,
) -> str:
    """One line per (row, metric): difference against ``reference``, 95 % interval, p-value, cases, verdict.

    The difference and its interval are bold only when the verdict is better or worse.

    Args:
        rows: the rows of one checkpoint (the reference row itself is left out).
        comparisons: ``{Row.key: {column key: PairedComparison}}``.
        columns: the paired metric columns.
        reference: name of the reference row.
    """
    header = ["loss", "metric", f"Δ vs {reference}", "95 % CI", "p (Wilcoxon)", "cases", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---"] + [":---:"] * 5) + "|"]
    for row in rows:
        if row.name == reference or row.key not in comparisons:
            continue
        for column in columns:
            comparison = comparisons[row.key].get(column.key)
            if comparison is None:
                continue
            difference, interval = format_difference(comparison, column)
            if comparison.detectable:
                difference, interval = f"**{difference}**", f"**{interval}**"
            direction = "↑" if column.higher_is_better else "↓"
            cells = [row.name, f"{column.title} {direction}", difference, interval, format_p_value(comparison.p_value)]
            cells += [str(comparison.cases), comparison.verdict]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PAIRED_FIELDS = ("diff", "ci_low", "ci_high", "p", "cases", "verdict")
"""Per paired metric ``<key>``, the columns ``<key>_<field>`` of ``summary.csv``."""


def write_csv(
    rows: Sequence[Row],
    columns: Sequence[Column],
    path: Path,
    comparisons: Mapping[str, Mapping[str, PairedComparison]] | None = None,
    paired_columns: Sequence[Column] = (),
    reference: str = "",
    flags: Mapping[str, bool] | None = None,
) -> None:
    """``summary.csv``: one line per row, all values unscaled; ``comparisons`` and ``flags`` keyed by :attr:`Row.key`.

    Columns: ``loss``, ``checkpoint`` (when the rows have one), ``seeds_finished, seeds_run``; ``<key>_mean, <key>_std,
    <key>_n`` per column; then, with
    ``paired_columns``, ``reference`` and ``<key>_diff, <key>_ci_low, <key>_ci_high, <key>_p, <key>_cases,
    <key>_verdict`` per paired metric (empty on the reference row); then, with ``flags``, ``posthoc_ece_worse``
    (1 / 0 for a ``<loss> + <method>`` row whose mean ECE is / is not above its ``<loss>`` row's, empty for
    the other rows).
    """
    comparisons = comparisons or {}
    with_checkpoint = any(row.checkpoint is not None for row in rows)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        header = ["loss", *(["checkpoint"] if with_checkpoint else []), "seeds_finished", "seeds_run"]
        for column in columns:
            header += [f"{column.key}_mean", f"{column.key}_std", f"{column.key}_n"]
        if paired_columns:
            header += ["reference"] + [f"{c.key}_{name}" for c in paired_columns for name in PAIRED_FIELDS]
        if flags is not None:
            header.append("posthoc_ece_worse")
        writer.writerow(header)
        for row in rows:
            line: list = [row.name, *([row.checkpoint] if with_checkpoint else []), row.finished, row.runs]
            for column in columns:
                mean, std, n = mean_std(row.values.get(column.key, []))
                line += [f"{mean:.6g}", f"{std:.6g}", n]
            if paired_columns:
                line.append(reference)
                for column in paired_columns:
                    comparison = comparisons.get(row.key, {}).get(column.key)
                    if comparison is None:
                        line += [""] * len(PAIRED_FIELDS)
                        continue
                    numbers = (comparison.difference, comparison.ci_low, comparison.ci_high, comparison.p_value)
                    line += [f"{v:.6g}" for v in numbers] + [comparison.cases, comparison.verdict]
            if flags is not None:
                line.append("" if row.key not in flags else int(flags[row.key]))
            writer.writerow(line)


def write_per_case_csv(rows: Sequence[Row], columns: Sequence[Column], reference: str, path: Path) -> None:
    """``per_case.csv``: one line per (row, case, seed) with each metric and its difference to the reference.

    Columns: ``loss``, ``checkpoint`` (when the rows have one), ``case, seed``, then ``<key>`` and ``<key>_diff``
    (value minus the value of the reference row of the same checkpoint at the same case and seed; empty where the
    reference has none) per column, unscaled. Averaging ``_diff`` over the seeds of each case gives the per-case
    differences that the bootstrap and the test resample.
    """
    bases = {row.checkpoint: row.cases for row in rows if row.name == reference}
    with_checkpoint = any(row.checkpoint is not None for row in rows)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        header = ["loss", *(["checkpoint"] if with_checkpoint else []), "case", "seed"]
        writer.writerow(header + [f"{c.key}{suffix}" for c in columns for suffix in ("", "_diff")])
        for row in rows:
            base = bases.get(row.checkpoint, {})
            for (case, seed), metrics in sorted(row.cases.items()):
                line: list = [row.name, *([row.checkpoint] if with_checkpoint else []), case, seed]
                for column in columns:
                    value = metrics.get(column.key, math.nan)
                    other = base.get((case, seed), {}).get(column.key, math.nan)
                    line += [f"{value:.6g}", f"{value - other:.6g}" if math.isfinite(other) else ""]
                writer.writerow(line)
