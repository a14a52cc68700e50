"""The comparison table: one row per variant, mean +- std over seeds, the best value per column marked.

Pure formatting on numbers; reading the runs' files is ``report.py``'s job.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Column", "Row", "best_rows", "format_cell", "markdown_table", "mean_std", "write_csv"]


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
    """One variant: per-seed values of each column (failed seeds contribute nothing) and its failures.

    Args:
        name: row name (``nacl``, ``nacl(alpha=0.2)``, ``ce + TS``).
        values: ``{column key: [value per finished seed]}``; NaN values (e.g. HD95 of an empty
            prediction) are left out of the mean and counted in ``missing``.
        runs: number of seeds attempted.
        failures: one text per failed seed (``"seed 1: train failed, see runs/.../train.log"``).
    """

    name: str
    values: dict[str, list[float]] = field(default_factory=dict)
    runs: int = 0
    failures: list[str] = field(default_factory=list)

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


def _shown_mean(row: Row, column: Column) -> float | None:
    mean, _, n = mean_std(row.values.get(column.key, []))
    return round(mean * column.scale, column.decimals) if n else None


def best_rows(rows: Sequence[Row], column: Column) -> set[str]:
    """Names of the rows whose mean, as displayed (rounded), is the best of the column (ties all marked)."""
    shown = {row.name: _shown_mean(row, column) for row in rows}
    valid = [v for v in shown.values() if v is not None]
    if not valid:
        return set()
    best = max(valid) if column.higher_is_better else min(valid)
    return {name for name, v in shown.items() if v == best}


def markdown_table(rows: Sequence[Row], columns: Sequence[Column]) -> str:
    """A Markdown table, best value per column in bold, with a ``seeds`` column (finished / attempted)."""
    header = ["loss", *(c.title + (" ↑" if c.higher_is_better else " ↓") for c in columns), "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
    best = {c.key: best_rows(rows, c) for c in columns}
    for row in rows:
        cells = [row.name]
        for column in columns:
            cell = format_cell(row.values.get(column.key, []), column)
            cells.append(f"**{cell}**" if row.name in best[column.key] else cell)
        seeds = f"{row.finished}/{row.runs}" + (" (failed)" if row.failures else "")
        lines.append("| " + " | ".join(cells + [seeds]) + " |")
    return "\n".join(lines)


def write_csv(rows: Sequence[Row], columns: Sequence[Column], path: Path) -> None:
    """``summary.csv``: one line per row; ``<key>_mean``, ``<key>_std``, ``<key>_n`` per column (unscaled)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        header = ["loss", "seeds_finished", "seeds_run"]
        for column in columns:
            header += [f"{column.key}_mean", f"{column.key}_std", f"{column.key}_n"]
        writer.writerow(header)
        for row in rows:
            line: list = [row.name, row.finished, row.runs]
            for column in columns:
                mean, std, n = mean_std(row.values.get(column.key, []))
                line += [f"{mean:.6g}", f"{std:.6g}", n]
            writer.writerow(line)
