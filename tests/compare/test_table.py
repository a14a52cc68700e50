"""Report table: mean +- sample std over seeds, best per column marked, failures counted (hand-computed numbers)."""

from __future__ import annotations

import csv
import math

from monai_nacl.compare.table import (
    Column,
    Row,
    best_rows,
    format_cell,
    markdown_table,
    mean_std,
    write_csv,
)

DSC = Column("DSC", "dsc", higher_is_better=True, scale=100.0, decimals=1)
ECE = Column("ECE", "ece", scale=100.0, decimals=2)


def rows():
    return [
        # dsc 0.80, 0.82 -> mean 81.0, std = sqrt(2 * 0.01^2 / 1) = 0.01414 -> 1.4 ; ece mean 0.05 std 0.01414 -> 5.00 ± 1.41
        Row("ce", {"dsc": [0.80, 0.82], "ece": [0.04, 0.06]}, runs=2),
        # one seed failed: dsc 0.81 alone -> "81.0"; ece 0.03 -> "3.00"
        Row("nacl", {"dsc": [0.81], "ece": [0.03]}, runs=2, failures=["seed 1: train failed"]),
        # dsc 0.78, 0.80, 0.82 -> mean 80.0, std 1.0 (sample); ece has a NaN that is ignored -> 3.00 ± 0.00
        Row("svls", {"dsc": [0.78, 0.80, 0.82], "ece": [0.03, math.nan, 0.03]}, runs=3),
    ]


def test_mean_std_by_hand():
    mean, std, n = mean_std([0.78, 0.80, 0.82])
    assert n == 3 and math.isclose(mean, 0.80) and math.isclose(std, 0.02)
    assert mean_std([2.0]) == (2.0, 0.0, 1)
    assert math.isnan(mean_std([math.nan])[0])


def test_cells_and_best():
    r = rows()
    assert format_cell(r[0].values["dsc"], DSC) == "81.0 ± 1.4"
    assert format_cell(r[0].values["ece"], ECE) == "5.00 ± 1.41"
    assert format_cell(r[1].values["dsc"], DSC) == "81.0"
    assert format_cell(r[2].values["ece"], ECE) == "3.00 ± 0.00"
    assert format_cell([], ECE) == "n/a"
    assert best_rows(r, DSC) == {"ce", "nacl"}  # tie at 81.0 as displayed: both marked
    assert best_rows(r, ECE) == {"nacl", "svls"}


def test_markdown_table():
    text = markdown_table(rows(), [DSC, ECE]).splitlines()
    assert text[0] == "| loss | DSC ↑ | ECE ↓ | seeds |"
    assert text[2] == "| ce | **81.0 ± 1.4** | 5.00 ± 1.41 | 2/2 |"
    assert text[3] == "| nacl | **81.0** | **3.00** | 1/2 (failed) |"
    assert text[4] == "| svls | 80.0 ± 2.0 | **3.00 ± 0.00** | 3/3 |"


def test_csv(tmp_path):
    write_csv(rows(), [DSC, ECE], tmp_path / "summary.csv")
    with open(tmp_path / "summary.csv") as f:
        lines = list(csv.DictReader(f))
    assert lines[1]["loss"] == "nacl" and lines[1]["seeds_finished"] == "1" and lines[1]["seeds_run"] == "2"
    assert float(lines[2]["dsc_mean"]) == 0.8 and float(lines[2]["dsc_std"]) == 0.02 and lines[2]["ece_n"] == "2"
