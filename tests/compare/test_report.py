"""report.md / summary.csv / per_case.csv of a comparison, from synthetic rows (nothing is trained).

Rows over 8 test cases x 2 seeds, built so that the verdicts are known by construction: ``nacl`` has a DSC 2 points
above ``ce`` on every case (better, all 8 differences positive: p = 2 / 2**8) and an ECE that alternates +0.4 / -0.2
points (no detectable difference); ``ce + TS`` has ECE 61.4 % where ``ce`` has 19.7 % (T = 0.155, the case seen in
a real run): worse, and flagged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

import monai
import torch

import monai_nacl
from monai_nacl.compare import report
from monai_nacl.compare.grid import Variant
from monai_nacl.compare.runs import RunSpec
from monai_nacl.compare.table import Row

CASES = [f"case{i}" for i in range(8)]
SEEDS = [0, 1]


def make_row(name: str, dsc, ece, temperature=None) -> Row:
    """A row whose per-seed means are the means over cases of its per-case values."""
    row = Row(name, runs=len(SEEDS))
    for seed in SEEDS:
        for i, case in enumerate(CASES):
            row.cases[(case, seed)] = {"dsc": dsc(i, seed), "ece": ece(i, seed)}
        row.values.setdefault("dsc", []).append(sum(dsc(i, seed) for i in range(len(CASES))) / len(CASES))
        row.values.setdefault("ece", []).append(sum(ece(i, seed) for i in range(len(CASES))) / len(CASES))
    if temperature is not None:
        row.values["temperature"] = temperature
    return row


def ce_dsc(i, seed):
    return 0.80 + 0.01 * i + 0.001 * seed


def synthetic_rows() -> list[Row]:
    return [
        make_row("ce", ce_dsc, lambda i, s: 0.197),
        make_row("nacl", lambda i, s: ce_dsc(i, s) + 0.02, lambda i, s: 0.197 + (0.004 if i % 2 == 0 else -0.002)),
        make_row("ce + TS", ce_dsc, lambda i, s: 0.614, temperature=[0.155, 0.160]),
    ]


def with_checkpoint(rows: list[Row], checkpoint: str) -> list[Row]:
    for row in rows:
        row.checkpoint = checkpoint
    return rows


def write_synthetic_report(tmp_path: Path, monkeypatch, tables: dict[str, list[Row]] | None = None) -> Path:
    """report.md of the rows of ``tables`` (per checkpoint; default: :func:`synthetic_rows` as the best one)."""
    tables = tables or {"best": synthetic_rows()}
    tables = {checkpoint: with_checkpoint(rows, checkpoint) for checkpoint, rows in tables.items()}

    def build_rows(specs, posthoc=(), checkpoint="best"):
        return tables[checkpoint], {row.key: [] for row in tables[checkpoint]}

    monkeypatch.setattr(report, "build_rows", build_rows)
    context = {
        "bundle": "/bundles/unet2d_nacl",
        "protocol": "paper",
        "train_configs": ["train.yaml", "protocol_paper.yaml"],
        "evaluate_configs": ["train.yaml", "protocol_paper.yaml", "evaluate.yaml"],
        "datalist": "/data/datalist.json",
        "datalist_sha256": "ab" * 32,
        "dataset_dir": "/data",
        "num_classes": 3,
        "max_epochs": 100,
        "seeds": SEEDS,
        "overrides": {"device": "cpu"},
        "command_line": "python -m monai_nacl compare --bundle unet2d_nacl --protocol paper",
        "versions": {"monai_nacl": "0.1.0", "monai": "1.6.1", "torch": "2.13.0"},
    }
    (tmp_path / "compare.json").write_text(json.dumps(context))
    specs = [
        RunSpec(Variant(name), seed, tmp_path / "runs" / name / f"seed{seed}")
        for name in ("ce", "nacl")
        for seed in SEEDS
    ]
    return report.write_report(tmp_path, specs, ["ts"], "unet2d_nacl", reference="ce", checkpoints=list(tables))


def test_report_paired_section_bold_only_when_called(tmp_path, monkeypatch):
    text = write_synthetic_report(tmp_path, monkeypatch).read_text()
    lines = text.splitlines()
    assert "## Paired differences against `ce`" in text
    assert "| loss | metric | Δ vs ce | 95 % CI | p (Wilcoxon) | cases | verdict |" in lines
    assert "| nacl | DSC (%) ↑ | **+2.00** | **[+2.00, +2.00]** | 0.008 | 8 | better |" in lines
    nacl_ece = next(line for line in lines if line.startswith("| nacl | ECE (%) ↓ |"))
    assert nacl_ece.startswith("| nacl | ECE (%) ↓ | +0.10 | [") and nacl_ece.endswith(
        "| 8 | no detectable difference |"
    )
    assert "**" not in nacl_ece
    assert "| ce + TS | ECE (%) ↓ | **+41.70** | **[+41.70, +41.70]** | 0.008 | 8 | worse |" in lines
    assert not any(line.startswith("| ce | DSC") for line in lines)  # the reference is not compared with itself
    main = text[: text.index("## Paired")]  # the tables of means and their notes: no bold at all
    assert "| ce | 83.55 ± 0.07 |" in main and "**" not in main


def test_report_flags_a_temperature_that_worsens_ece(tmp_path, monkeypatch):
    text = write_synthetic_report(tmp_path, monkeypatch).read_text()
    assert "## Warnings: post-hoc calibration that made ECE worse" in text
    assert "| ce + TS ⚠ |" in text and "| nacl ⚠ |" not in text
    warning = next(line for line in text.splitlines() if line.startswith("- ⚠ `ce + TS (best)`"))
    assert "foreground ECE 61.40 % against 19.70 % for `ce (best)` without it" in warning
    assert "paired difference +41.70 points, 95 % CI [+41.70, +41.70], 8 case(s)" in warning
    assert "fitted temperature(s) 0.155, 0.160" in warning and "T < 1 sharpens" in warning


def test_report_reproducibility_section(tmp_path, monkeypatch):
    text = write_synthetic_report(tmp_path, monkeypatch).read_text()
    section = text[text.index("## Reproducibility") :]
    assert "- bundle: `unet2d_nacl` at `/bundles/unet2d_nacl`; protocol: `paper`" in section
    assert '- configs merged to train: `["train.yaml", "protocol_paper.yaml"]`' in section
    assert f"- datalist: `/data/datalist.json`, sha256 `{'ab' * 32}`; data folder: `/data`" in section
    assert "- classes: `3`; epochs per run: `100`; seeds: `[0, 1]`" in section
    assert '- bundle overrides: `{"device": "cpu"}`' in section
    assert "reference `ce`, 10000 bootstrap resamples of the test cases (seed 0), 95% percentile" in section
    assert "- versions: monai_nacl 0.1.0, monai 1.6.1, torch 2.13.0" in section
    assert "- command: `python -m monai_nacl compare --bundle unet2d_nacl --protocol paper`" in section


def test_summary_and_per_case_csv_carry_the_same_numbers(tmp_path, monkeypatch):
    write_synthetic_report(tmp_path, monkeypatch)
    with open(tmp_path / "summary.csv") as f:
        summary = {line["loss"]: line for line in csv.DictReader(f)}
    assert summary["ce"]["reference"] == "ce" and summary["ce"]["dsc_diff"] == ""
    nacl = summary["nacl"]
    assert abs(float(nacl["dsc_diff"]) - 0.02) < 1e-12 and float(nacl["dsc_p"]) == 0.0078125
    assert (
        nacl["dsc_cases"] == "8"
        and nacl["dsc_verdict"] == "better"
        and nacl["ece_verdict"] == "no detectable difference"
    )
    assert summary["ce + TS"]["ece_verdict"] == "worse" and summary["ce + TS"]["posthoc_ece_worse"] == "1"
    assert summary["nacl"]["posthoc_ece_worse"] == "" and summary["ce"]["posthoc_ece_worse"] == ""
    with open(tmp_path / "per_case.csv") as f:
        per_case = list(csv.DictReader(f))
    assert len(per_case) == 3 * len(CASES) * len(SEEDS)
    line = next(r for r in per_case if r["loss"] == "nacl" and r["case"] == "case2" and r["seed"] == "1")
    assert abs(float(line["dsc"]) - 0.841) < 1e-6 and abs(float(line["dsc_diff"]) - 0.02) < 1e-6
    assert abs(float(line["ece_diff"]) - 0.004) < 1e-6


def test_rows_read_per_case_values_from_the_runs(tmp_path):
    run_dir = tmp_path / "runs" / "ce" / "seed3"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.csv").write_text(
        "case,dice_grey_matter,hd95_grey_matter,mean_dice,ece,cece,nll\n"
        "case0,0.9,2.0,0.9,0.05,0.04,0.3\ncase1,0.7,inf,0.7,0.07,0.06,0.5\n"
    )
    (run_dir / "summary.json").write_text(json.dumps({"mean": {"mean_dice": 0.8, "ece": 0.06}, "pooled": {}}))
    (run_dir / "done").write_text("{}")
    rows, _ = report.build_rows([RunSpec(Variant("ce"), 3, run_dir)])
    assert rows[0].cases == {
        ("case0", 3): {"dsc": 0.9, "ece": 0.05, "cece": 0.04, "nll": 0.3},
        ("case1", 3): {"dsc": 0.7, "ece": 0.07, "cece": 0.06, "nll": 0.5},
    }
    assert rows[0].values["dsc"] == [0.8] and rows[0].values["hd95"] == [2.0] and rows[0].values["hd95_empty"] == [1.0]


def test_reproducibility_record(tmp_path, monkeypatch):
    datalist = tmp_path / "datalist.json"
    datalist.write_text('{"training": []}')
    monkeypatch.setattr(
        sys, "argv", ["/x/monai_nacl/__main__.py", "compare", "--bundle", "unet2d_nacl", "--note", "a b"]
    )
    record = report.reproducibility_record(str(datalist))
    assert record["datalist_sha256"] == hashlib.sha256(b'{"training": []}').hexdigest()
    assert record["command_line"] == "python -m monai_nacl compare --bundle unet2d_nacl --note 'a b'"
    versions = record["versions"]
    assert versions["monai_nacl"] == monai_nacl.__version__ and versions["monai"] == monai.__version__
    assert versions["torch"] == torch.__version__
    assert report.reproducibility_record(str(tmp_path / "missing.json"))["datalist_sha256"] is None


def test_report_shows_training_against_validation_nll(tmp_path: Path, monkeypatch) -> None:
    """history.csv of each loss's first seed becomes a table (each NLL from its first to its last epoch, lowest
    validation NLL) and a picture; epochs without validation are read as missing values."""
    histories = {
        "ce": "epoch,train_loss,train_nll,val_nll,val_mean_dice\n1,0.9,0.80,0.70,0.5\n2,0.5,0.40,,\n3,0.2,0.10,0.90,0.6\n",
        "nacl": "epoch,train_loss,train_nll,val_nll\n1,1.0,0.85,0.72\n2,0.6,0.45,\n3,0.4,0.30,0.50\n",
    }
    for name, text in histories.items():
        folder = tmp_path / "runs" / name / "seed0"
        folder.mkdir(parents=True)
        (folder / "history.csv").write_text(text)
    text = write_synthetic_report(tmp_path, monkeypatch).read_text()
    assert "## Training against validation NLL" in text
    assert "| ce | 3 | 0.800 (1) → 0.100 (3) | 0.700 (1) → 0.900 (3) | 0.700 (1) | 3 |" in text
    assert "| nacl | 3 | 0.850 (1) → 0.300 (3) | 0.720 (1) → 0.500 (3) | 0.500 (3) | n/a |" in text
    rising = (
        "- `ce`: the validation NLL is lowest at epoch 1 (0.700) and rises to 0.900 by epoch 3; the best-validation"
    )
    assert rising + " checkpoint is epoch 3." in text and "- `nacl`:" not in text  # its NLL only falls
    assert "the checkpoint the NACL authors report. Epochs (first seed): ce 3." in text
    tables = {"best": synthetic_rows(), "final": synthetic_rows()}
    text = write_synthetic_report(tmp_path, monkeypatch, tables).read_text()
    final_note = next(line for line in text.splitlines() if line.startswith("The network of the last epoch"))
    assert final_note.endswith("Epoch 3.")  # nacl's best-Dice epoch is not known: no claim that they coincide
    assert (tmp_path / "nll_history.png").stat().st_size > 1000


def test_each_checkpoint_has_its_table_and_its_own_reference(tmp_path, monkeypatch):
    """At the final checkpoint ce's ECE rose to 30 % on every case while nacl's stayed: nacl is better there (-10.30
    points on all 8 cases), not at the best checkpoint; each checkpoint is paired with its own ce."""
    final = [
        make_row("ce", ce_dsc, lambda i, s: 0.30),
        make_row("nacl", lambda i, s: ce_dsc(i, s) + 0.02, lambda i, s: 0.197),
    ]
    text = write_synthetic_report(tmp_path, monkeypatch, {"best": synthetic_rows(), "final": final}).read_text()
    assert text.index("## Best-validation checkpoint") < text.index("## Final checkpoint") < text.index("## Paired")
    paired = text[text.index("## Paired differences") :]
    best_part, final_part = paired.split("### Final checkpoint")
    assert "| nacl | ECE (%) ↓ | +0.10 | [" in best_part
    assert "| nacl | ECE (%) ↓ | **-10.30** | **[-10.30, -10.30]** | 0.008 | 8 | better |" in final_part
    assert "| ce + TS |" not in final_part[: final_part.index("Δ = row")]
    with open(tmp_path / "summary.csv") as f:
        summary = {(line["loss"], line["checkpoint"]): line for line in csv.DictReader(f)}
    assert set(summary) == {("ce", "best"), ("nacl", "best"), ("ce + TS", "best"), ("ce", "final"), ("nacl", "final")}
    assert summary["nacl", "best"]["ece_verdict"] == "no detectable difference"
    assert summary["nacl", "final"]["ece_verdict"] == "better" and summary["ce", "final"]["ece_diff"] == ""
    with open(tmp_path / "per_case.csv") as f:
        per_case = list(csv.DictReader(f))
    line = next(
        r for r in per_case if (r["loss"], r["checkpoint"], r["case"], r["seed"]) == ("nacl", "final", "case0", "0")
    )
    assert abs(float(line["ece_diff"]) + 0.103) < 1e-6  # against ce at the final checkpoint


def test_confidence_against_accuracy_per_row() -> None:
    """Mean confidence and accuracy from the pooled top-label histograms of every case: two cases of a 2-bin
    histogram, counts (1, 3) and (0, 4), confidence sums (0.3, 2.7) and (0, 3.8), accuracy sums (0, 2) and (0, 3):
    confidence 6.8 / 8 = 85.0 %, accuracy 5 / 8 = 62.5 %."""
    from monai_nacl.compare.table import Row
    from monai_nacl.metrics import CalibrationStatistics

    top = torch.tensor(
        [[[1.0, 3.0], [0.3, 2.7], [0.0, 2.0]], [[0.0, 4.0], [0.0, 3.8], [0.0, 3.0]]], dtype=torch.float64
    )
    stats = CalibrationStatistics(2, 1, top, None, torch.zeros(2, 3, dtype=torch.float64))
    rows = {"final": [Row("ce", checkpoint="final"), Row("nacl", checkpoint="final")]}
    lines = report._confidence_lines(rows, {rows["final"][0].key: stats}, "foreground")
    assert lines[0] == "## Confidence against accuracy" and "(region: foreground)" in lines[2]
    assert lines[6:-1] == ["| ce | final checkpoint | 85.0 | 62.5 | +22.5 (over-confident) |"]  # nacl: no histograms
    assert report._confidence_lines(rows, {}, None) == []


def test_nll_table_reads_each_nll_from_its_own_first_epoch(tmp_path: Path, monkeypatch) -> None:
    """The run of the issue: 2 epochs, validation only after the last one (val_interval 5). The training NLL is
    1.648 at epoch 1 and 1.468 at epoch 2; the table once showed 1.468 -> 1.468, the first validated row's value."""
    folder = tmp_path / "runs" / "ce" / "seed0"
    folder.mkdir(parents=True)
    (folder / "history.csv").write_text(
        "epoch,train_loss,train_nll,val_nll,val_mean_dice\n1,1.70,1.648,,\n2,1.50,1.468,1.402,0.31\n"
    )
    text = write_synthetic_report(tmp_path, monkeypatch).read_text()
    assert "| ce | 2 | 1.648 (1) → 1.468 (2) | 1.402 (2) → 1.402 (2) | 1.402 (2) | 2 |" in text
    assert "- `ce`: the validation NLL is lowest" not in text  # one validation: nothing rises


def test_report_says_which_ece_is_a_mean_over_volumes_and_what_cece_averages(tmp_path: Path, monkeypatch) -> None:
    """Above each table: its calibration columns are means over volumes; the notes say what CECE averages, naming the
    classes when the evaluations recorded them."""
    tables = {"best": synthetic_rows(), "final": synthetic_rows()}
    lines = write_synthetic_report(tmp_path, monkeypatch, tables).read_text().splitlines()
    for title in ("## Best-validation checkpoint", "## Final checkpoint"):
        start = lines.index(title)
        table = next(k for k in range(start, len(lines)) if lines[k].startswith("| loss |"))
        assert lines[table - 2] == report.MEAN_OVER_VOLUMES
        assert lines[table - 2].startswith("Calibration columns: mean over test volumes of each volume's value")
    cece = next(line for line in lines if line.startswith("- CECE:"))
    assert cece.startswith(
        "- CECE: per class c the ECE of p_c against 1[y = c], then the unweighted mean over all classes"
    )
    assert "background included" in cece  # no histograms in this report: the classes are not named
    assert report._cece_note(["background", "liver", "kidney", "bone"]).startswith(
        "- CECE: per class c the ECE of p_c against 1[y = c], then the unweighted mean over all 4 classes "
        "(background, liver, kidney, bone), background included"
    )


def _evaluated_run(run_dir: Path, true: list[list[float]], estimated: list[list[float]]) -> None:
    """A finished evaluation: metrics.csv with the true and estimated Dice of two classes per case, and summary.json's
    dice_estimate computed from them (as SegmentationReportHandler writes them)."""
    from monai_nacl.metrics import dice_estimate_agreement

    run_dir.mkdir(parents=True)
    lines = ["case,dice_gm,dice_wm,mean_dice,ece,est_dice_gm,est_dice_wm,est_mean_dice,est_dice_abs_error"]
    errors = []
    for i, (t, e) in enumerate(zip(true, estimated)):
        errors.append((abs(e[0] - t[0]) + abs(e[1] - t[1])) / 2)
        lines.append(f"case{i},{t[0]},{t[1]},{sum(t) / 2},0.05,{e[0]},{e[1]},{sum(e) / 2},{errors[-1]}")
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    agreement = dice_estimate_agreement([v for e in estimated for v in e], [v for t in true for v in t])
    mean = {"mean_dice": 0.8, "ece": 0.05, "est_dice_abs_error": sum(errors) / len(errors)}
    (run_dir / "summary.json").write_text(json.dumps({"mean": mean, "pooled": {}, "dice_estimate": agreement}))
    (run_dir / "done").write_text("{}")


def test_dice_estimate_section_pairs_the_error_against_ce(tmp_path: Path) -> None:
    """ce's estimate is 0.10 too high on every case and class (over-confident), nacl's 0.01: nacl's per-case error is
    0.09 lower on all 8 cases, called better; the rows' MAE, Spearman and Pearson come from summary.json, and each row
    has its scatter plot."""
    true = [[0.70 + 0.02 * i, 0.60 + 0.03 * i] for i in range(8)]
    specs = [RunSpec(Variant(name), 0, tmp_path / "runs" / name / "seed0") for name in ("ce", "nacl")]
    _evaluated_run(specs[0].run_dir, true, [[t[0] + 0.10, t[1] + 0.10] for t in true])
    _evaluated_run(specs[1].run_dir, true, [[t[0] + 0.01, t[1] - 0.01] for t in true])
    text = report.write_report(tmp_path, specs, [], "unet2d_nacl", reference="ce", checkpoints=["best"]).read_text()
    section = text[text.index("## Dice estimated without labels") :].split("\n## ")[0]
    lines = section.splitlines()
    assert (
        "| loss | MAE (points) ↓ | Spearman ↑ | Pearson ↑ | est - true (points) (0 best) | error Δ vs ce (95 % CI) | "
        "p (Wilcoxon) | verdict | scatter |"
    ) in lines
    assert "| ce | 10.00 | 1.000 | 1.000 | 10.00 | reference |  |  | [plot](dice_estimate/ce_best.png) |" in lines
    nacl = next(line for line in lines if line.startswith("| nacl |"))
    assert nacl.startswith("| nacl | 1.00 | ") and "| 0.00 | **-9.00 [-9.00, -9.00]** | 0.008 | better |" in nacl
    assert "| nacl | Dice est. error (points) ↓ | **-9.00** | **[-9.00, -9.00]** | 0.008 | 8 | better |" in text
    for name in ("ce_best", "nacl_best"):
        assert (tmp_path / "dice_estimate" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "summary.csv") as f:
        summary = {line["loss"]: line for line in csv.DictReader(f)}
    assert float(summary["nacl"]["est_mae_mean"]) == 0.01 and summary["nacl"]["est_error_verdict"] == "better"
    estimated, true_read = report.dice_estimate_pairs([specs[0].run_dir])
    assert list(estimated) == ["gm", "wm"] and true_read["wm"] == [t[1] for t in true]
