"""Report tables: mean +- sample std over seeds, failures counted, no "best" in bold; the paired table bolds only
the differences the statistics call (hand-computed numbers)."""

from __future__ import annotations

import csv
import math

from monai_nacl.compare.paired import BETTER, NO_CASES, NO_DIFFERENCE, PairedComparison
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


def test_cells():
    r = rows()
    assert format_cell(r[0].values["dsc"], DSC) == "81.0 ± 1.4"
    assert format_cell(r[0].values["ece"], ECE) == "5.00 ± 1.41"
    assert format_cell(r[1].values["dsc"], DSC) == "81.0"
    assert format_cell(r[2].values["ece"], ECE) == "3.00 ± 0.00"
    assert format_cell([], ECE) == "n/a"


def test_markdown_table_has_no_best_in_bold():
    text = markdown_table(rows(), [DSC, ECE], flagged={"svls"}).splitlines()
    assert text[0] == "| loss | DSC ↑ | ECE ↓ | seeds |"
    assert text[2] == "| ce | 81.0 ± 1.4 | 5.00 ± 1.41 | 2/2 |"
    assert text[3] == "| nacl | 81.0 | 3.00 | 1/2 (failed) |"
    assert text[4] == "| svls ⚠ | 80.0 ± 2.0 | 3.00 ± 0.00 | 3/3 |"
    assert "**" not in "\n".join(text)


def comparisons():
    return {
        "nacl": {
            "dsc": PairedComparison(0.0123, 0.004, 0.0201, 0.0078125, 8, 16, BETTER),
            "ece": PairedComparison(0.0005, -0.002, 0.003, 0.64, 8, 16, NO_DIFFERENCE),
        },
        "svls": {
            "dsc": PairedComparison(-0.001, -0.002, -0.0005, 0.25, 3, 3, NO_DIFFERENCE),
            "ece": PairedComparison(math.nan, math.nan, math.nan, math.nan, 0, 0, NO_CASES),
        },
    }


def test_paired_table_bolds_only_called_differences():
    assert format_difference(comparisons()["nacl"]["dsc"], DSC) == ("+1.2", "[+0.4, +2.0]")
    assert (
        format_p_value(0.0004) == "<0.001" and format_p_value(0.0312) == "0.031" and format_p_value(math.nan) == "n/a"
    )
    text = paired_markdown_table(rows(), comparisons(), [DSC, ECE], "ce").splitlines()
    assert text[0] == "| loss | metric | Δ vs ce | 95 % CI | p (Wilcoxon) | cases | verdict |"
    assert text[2] == "| nacl | DSC ↑ | **+1.2** | **[+0.4, +2.0]** | 0.008 | 8 | better |"
    assert text[3] == "| nacl | ECE ↓ | +0.05 | [-0.20, +0.30] | 0.640 | 8 | no detectable difference |"
    # the interval excludes 0 but p = 0.25 (3 cases): not called, not bold
    assert text[4] == "| svls | DSC ↑ | -0.1 | [-0.2, -0.1] | 0.250 | 3 | no detectable difference |"
    assert text[5] == "| svls | ECE ↓ | n/a | n/a | n/a | 0 | no paired cases |"
    assert len(text) == 6  # the reference row "ce" has no line


def test_csv(tmp_path):
    write_csv(rows(), [DSC, ECE], tmp_path / "summary.csv")
    with open(tmp_path / "summary.csv") as f:
        lines = list(csv.DictReader(f))
    assert lines[1]["loss"] == "nacl" and lines[1]["seeds_finished"] == "1" and lines[1]["seeds_run"] == "2"
    assert float(lines[2]["dsc_mean"]) == 0.8 and float(lines[2]["dsc_std"]) == 0.02 and lines[2]["ece_n"] == "2"
    assert "reference" not in lines[0] and "posthoc_ece_worse" not in lines[0]


def test_csv_with_paired_statistics_and_flags(tmp_path):
    path = tmp_path / "summary.csv"
    write_csv(rows(), [DSC], path, comparisons(), [DSC, ECE], "ce", flags={"svls": True})
    with open(path) as f:
        header = next(csv.reader(f))
    with open(path) as f:
        lines = {line["loss"]: line for line in csv.DictReader(f)}
    paired = [
        f"{key}_{name}" for key in ("dsc", "ece") for name in ("diff", "ci_low", "ci_high", "p", "cases", "verdict")
    ]
    assert header == ["loss", "seeds_finished", "seeds_run", "dsc_mean", "dsc_std", "dsc_n", "reference", *paired] + [
        "posthoc_ece_worse"
    ]
    assert lines["ce"]["reference"] == "ce" and lines["ce"]["dsc_diff"] == "" and lines["ce"]["posthoc_ece_worse"] == ""
    nacl = lines["nacl"]
    assert (
        float(nacl["dsc_diff"]) == 0.0123 and float(nacl["dsc_ci_low"]) == 0.004 and float(nacl["dsc_p"]) == 0.0078125
    )
    assert nacl["dsc_cases"] == "8" and nacl["dsc_verdict"] == "better" and nacl["posthoc_ece_worse"] == ""
    assert lines["svls"]["ece_verdict"] == "no paired cases" and lines["svls"]["posthoc_ece_worse"] == "1"


def test_per_case_csv(tmp_path):
    ce = Row("ce", cases={("a", 0): {"dsc": 0.8, "ece": 0.05}, ("b", 0): {"dsc": 0.7, "ece": 0.04}})
    nacl = Row("nacl", cases={("a", 0): {"dsc": 0.85, "ece": 0.02}, ("c", 0): {"dsc": 0.6, "ece": 0.1}})
    write_per_case_csv([ce, nacl], [DSC, ECE], "ce", tmp_path / "per_case.csv")
    with open(tmp_path / "per_case.csv") as f:
        lines = list(csv.DictReader(f))
    assert list(lines[0]) == ["loss", "case", "seed", "dsc", "dsc_diff", "ece", "ece_diff"]
    assert [(line["loss"], line["case"]) for line in lines] == [("ce", "a"), ("ce", "b"), ("nacl", "a"), ("nacl", "c")]
    assert math.isclose(float(lines[2]["dsc_diff"]), 0.05) and math.isclose(float(lines[2]["ece_diff"]), -0.03)
    assert lines[3]["dsc_diff"] == "" and lines[3]["dsc"] == "0.6"  # the reference has no case c


def test_csvs_with_checkpoints_pair_each_row_with_its_own_reference(tmp_path):
    """Rows of two checkpoints: a ``checkpoint`` column; statistics and flags are looked up by ``Row.key``, and the
    per-case differences use the reference row of the same checkpoint."""
    rows = [
        Row("ce", {"dsc": [0.8]}, runs=1, cases={("a", 0): {"dsc": 0.8}}, checkpoint="best"),
        Row("nacl", {"dsc": [0.9]}, runs=1, cases={("a", 0): {"dsc": 0.9}}, checkpoint="best"),
        Row("ce", {"dsc": [0.6]}, runs=1, cases={("a", 0): {"dsc": 0.6}}, checkpoint="final"),
        Row("nacl", {"dsc": [0.85]}, runs=1, cases={("a", 0): {"dsc": 0.85}}, checkpoint="final"),
    ]
    assert [row.key for row in rows] == ["ce (best)", "nacl (best)", "ce (final)", "nacl (final)"]
    comparisons = {"nacl (final)": {"dsc": PairedComparison(0.25, 0.25, 0.25, 1.0, 1, 1, NO_DIFFERENCE)}}
    write_csv(rows, [DSC], tmp_path / "summary.csv", comparisons, [DSC], "ce", flags={"nacl (best)": False})
    with open(tmp_path / "summary.csv") as f:
        lines = list(csv.DictReader(f))
    assert [(line["loss"], line["checkpoint"]) for line in lines] == [
        ("ce", "best"),
        ("nacl", "best"),
        ("ce", "final"),
        ("nacl", "final"),
    ]
    assert lines[1]["dsc_diff"] == "" and lines[1]["posthoc_ece_worse"] == "0"
    assert float(lines[3]["dsc_diff"]) == 0.25 and lines[3]["posthoc_ece_worse"] == ""
    write_per_case_csv(rows, [DSC], "ce", tmp_path / "per_case.csv")
    with open(tmp_path / "per_case.csv") as f:
        per_case = list(csv.DictReader(f))
    assert list(per_case[0])[:4] == ["loss", "checkpoint", "case", "seed"]
    assert [round(float(line["dsc_diff"]), 6) for line in per_case] == [0.0, 0.1, 0.0, 0.25]
    text = paired_markdown_table(rows[2:], comparisons, [DSC], "ce").splitlines()
    assert text[2] == "| nacl | DSC ↑ | +25.0 | [+25.0, +25.0] | 1.000 | 1 | no detectable difference |"
