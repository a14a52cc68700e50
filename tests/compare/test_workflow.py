"""End-to-end workflow on a tiny fake bundle: runs as subprocesses, a failed run reported, resumability, both
checkpoints.

The fake bundle's train.yaml saves a 1x1 convolution as ``model.pt`` with bias 0 (the "best" weights) and as the
``network`` of ``checkpoint_last.pt`` with bias 0.1 (the "final" weights), or raises for the loss ``broken``, seed 0;
its evaluate.yaml loads ``<ckpt_dir>/model.pt`` and writes ``metrics.csv`` / ``summary.json`` in the real bundles'
format with numbers derived from the loss's ``score``, the seed and the loaded bias, so the expected tables are
computed by hand below.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from pathlib import Path

import pytest
import torch

from monai_nacl.compare.compared_bundle import ComparedBundle
from monai_nacl.compare.options import parse_compare_args
from monai_nacl.compare.runs import is_finished
from monai_nacl.compare.workflow import run_compare

TRAIN = """
imports:
  - $import os
  - $import json
  - $import torch
output_dir: /nonexistent
ckpt_dir: $os.path.join(@output_dir, 'models')
num_classes: 2
max_epochs: 3
val_interval: 10
seed: 0
loss_name: ce
losses:
  ce: {score: 0.80}
  dice_ce: {score: 0.90}
  broken: {score: 0.0}
network_def:
  _target_: torch.nn.Conv2d
  in_channels: 1
  out_channels: 2
  kernel_size: 1
initialize:
  - $torch.manual_seed(@seed)
run:
  - "$print('Epoch: 1/' + str(@max_epochs) + ', Iter: 1/1 -- train_loss: 0.5', flush=True)"
  - "$exec('raise RuntimeError(\\"broken loss\\")') if @loss_name == 'broken' and @seed == 0 else None"
  - $os.makedirs(@ckpt_dir, exist_ok=True)
  - $torch.save(dict(@network_def.state_dict(), bias=torch.zeros(2)), os.path.join(@ckpt_dir, 'model.pt'))
  - "$torch.save({'network': dict(@network_def.state_dict(), bias=torch.full((2,), 0.1)), 'trainer': {'epoch': 4}},
      os.path.join(@ckpt_dir, 'checkpoint_last.pt'))"
  - "$open(os.path.join(@output_dir, 'epochs.txt'), 'w').write(str(@max_epochs) + ' ' + str(@val_interval))"
"""

# summary: dsc = score + 0.01 * seed - bias (0 best, 0.1 final); ece = (1 - score) / 10 + 0.002 * seed; metrics.csv:
# HD95 2.0 for case0, infinite (empty prediction) for case1
EVALUATE = """
bias: "$torch.load(os.path.join(@ckpt_dir, 'model.pt'))['bias'][0].item()"
dsc: "$@losses[@loss_name]['score'] + 0.01 * @seed - @bias"
ece: "$(1 - @losses[@loss_name]['score']) / 10 + 0.002 * @seed"
run:
  - "$open(os.path.join(@output_dir, 'metrics.csv'), 'w').write(
      os.linesep.join(['case,dice_tumour,hd95_tumour,mean_dice,ece,cece', 'case0,0,2.0,0,0,0', 'case1,0,inf,0,0,0']))"
  - "$json.dump({'num_cases': 2, 'mean': {'mean_dice': @dsc, 'hd95_tumour': 2.0, 'ece': @ece, 'cece': 0.1,
      'ace': None, 'mce': 0.3, 'nll': 0.5, 'brier': 0.2}, 'pooled': {'ece': @ece}},
      open(os.path.join(@output_dir, 'summary.json'), 'w'))"
"""


def finished_run(run_dir: Path, dsc: float, ece: float) -> None:
    """A run left finished by an earlier session (summary, per-case table, ``done`` marker), both checkpoints
    evaluated (the final one 0.1 lower in DSC)."""
    for folder, value in ((run_dir, dsc), (run_dir / "final", dsc - 0.1)):
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text("case,dice_tumour,hd95_tumour,mean_dice,ece,cece\ncase0,0,2.0,0,0,0\n")
        summary = {"mean": {"mean_dice": value, "ece": ece, "cece": 0.1, "ace": None}, "pooled": {}}
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "done").write_text("{}")


@pytest.fixture()
def fake_bundle(tmp_path: Path) -> Path:
    configs = tmp_path / "fake_bundle" / "configs"
    configs.mkdir(parents=True)
    (configs / "train.yaml").write_text(textwrap.dedent(TRAIN))
    (configs / "evaluate.yaml").write_text(textwrap.dedent(EVALUATE))
    return configs.parent


def test_failed_run_reported_others_continue_then_resume(fake_bundle: Path, tmp_path: Path):
    output = tmp_path / "out"
    runs = output / "runs"
    finished_run(runs / "ce" / "seed1", dsc=0.81, ece=0.022)
    finished_run(runs / "dice_ce" / "seed0", dsc=0.90, ece=0.010)
    finished_run(runs / "dice_ce" / "seed1", dsc=0.91, ece=0.012)
    finished_run(runs / "broken" / "seed1", dsc=0.70, ece=0.050)
    bundle = ComparedBundle.load(fake_bundle, evaluate_fragments=())
    argv = [
        "--bundle",
        str(fake_bundle),
        "--seeds",
        "2",
        "--max_epochs",
        "4",
        "--output",
        str(output),
        "--num_classes",
        "2",
    ]
    options = parse_compare_args(argv + ["--losses", "ce,broken,dice_ce"])
    stream = io.StringIO()
    result = run_compare(options, bundle=bundle, stream=stream)
    report = result.report
    assert len(result.failed) == 1
    log = stream.getvalue()
    # only ce seed 0 and broken seed 0 ran; the broken one failed without stopping the rest
    assert "6 run(s), 4 already finished" in log and "[1/2] ce seed 0: done" in log
    assert "epoch 1/4" in log and "[2/2] broken seed 0: FAILED (train failed: exit status" in log
    assert "ce seed 0 evaluate: evaluate started" in log and "ce seed 0 evaluate final: evaluate final started" in log
    assert "dice_ce seed" not in log
    assert is_finished(runs / "ce" / "seed0") and not is_finished(runs / "broken" / "seed0")
    assert "broken loss" in (runs / "broken" / "seed0" / "train.log").read_text()
    # the final weights: checkpoint_last.pt's network, evaluated from final/models/model.pt into final/
    final = torch.load(runs / "ce" / "seed0" / "final" / "models" / "model.pt")
    assert torch.equal(final["bias"], torch.full((2,), 0.1)) and is_finished(runs / "ce" / "seed0" / "final")
    assert "--ckpt_dir" in (runs / "ce" / "seed0" / "final" / "evaluate.log").read_text()
    evaluate_log = (runs / "ce" / "seed0" / "evaluate.log").read_text().splitlines()[0]
    assert evaluate_log.split(" ")[2:6] == ["-m", "monai.bundle", "run", "--config_file"]
    # --max_epochs 4 below the bundle's val_interval 10: lowered so that the bundle still validates and saves
    assert (runs / "ce" / "seed0" / "epochs.txt").read_text() == "4 4"
    overrides = json.loads((runs / "ce" / "seed0" / "overrides.json").read_text())
    assert overrides["seed"] == 0 and overrides["loss_name"] == "ce" and overrides["num_classes"] == "2"

    # hand-computed, best: ce dsc 0.80, 0.81 -> 80.50 ± 0.71; ece 0.020, 0.022 -> 2.10 ± 0.14; hd95 2.0 (inf left
    # out); dice_ce dsc 0.90, 0.91 -> 90.50 ± 0.71; ece 0.010, 0.012 -> 1.10 ± 0.14 (no "best" in bold);
    # final: every dsc 0.1 lower
    text = report.read_text()
    best_part, final_part = text.split("\n## Final checkpoint\n")
    final_part = final_part[: final_part.index("## Paired differences")]
    assert "## Best-validation checkpoint" in best_part

    def cells(part: str, name: str) -> list[str]:
        return next(line for line in part.splitlines() if line.startswith(f"| {name} |")).split(" | ")

    ce, dice_ce, broken = (cells(best_part, name) for name in ("ce", "dice_ce", "broken"))
    assert ce[1:4] == ["80.50 ± 0.71", "2.00 ± 0.00", "2.10 ± 0.14"]
    assert dice_ce[1:4] == ["90.50 ± 0.71", "2.00 ± 0.00", "1.10 ± 0.14"]
    assert ce[5] == "n/a" and broken[1] == "70.00" and broken[-1] == "1/2 (failed) |"
    assert cells(final_part, "ce")[1:4] == ["70.50 ± 0.71", "2.00 ± 0.00", "2.10 ± 0.14"]
    assert cells(final_part, "dice_ce")[1] == "80.50 ± 0.71" and cells(final_part, "broken")[1] == "60.00"
    assert "broken (best), seed 0: train failed" in text and "broken (final), seed 0: train failed" in text
    assert "ce (best) (1 pair(s))" in text  # the infinite HD95 is counted
    with open(output / "summary.csv") as f:
        rows = {(row["loss"], row["checkpoint"]): row for row in csv.DictReader(f)}
    assert math.isclose(float(rows["dice_ce", "best"]["dsc_mean"]), 0.905)
    assert math.isclose(float(rows["dice_ce", "final"]["dsc_mean"]), 0.805, rel_tol=1e-6)
    assert rows["broken", "best"]["seeds_finished"] == "1" and rows["broken", "final"]["seeds_finished"] == "1"

    # rerun: everything finished is skipped, nothing runs, the report is rewritten; a run finished with other
    # settings is kept and named
    stream = io.StringIO()
    argv[argv.index("--max_epochs") + 1] = "5"
    run_compare(parse_compare_args(argv + ["--losses", "ce,dice_ce"]), bundle=bundle, stream=stream)
    log = stream.getvalue()
    assert "4 run(s), 4 already finished" in log and "compare: 0 run(s) in 0s, 0 failed" in log
    assert "warning: ce seed 0 was finished with other settings (max_epochs, val_interval)" in log


def test_unknown_loss_and_bundle(fake_bundle: Path, tmp_path: Path):
    options = parse_compare_args(["--bundle", str(fake_bundle), "--losses", "ce,nacl", "--output", str(tmp_path)])
    with pytest.raises(ValueError, match=r"\['nacl'\] are not defined by bundle fake_bundle"):
        run_compare(options, bundle=ComparedBundle.load(fake_bundle, evaluate_fragments=()))
    # the all-voxel report is merged into every evaluation: a bundle without the part it extends is named
    with pytest.raises(ValueError, match="all_voxels.yaml sets 'validate#evaluator#val_handlers'"):
        run_compare(options)
    options = parse_compare_args(["--bundle", "no_such_bundle", "--output", str(tmp_path)])
    with pytest.raises(ValueError, match="no configs/train.yaml"):
        run_compare(options)


def test_runs_side_by_side(fake_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--jobs 2`` runs two runs at once, each with an equal share of the CPU threads (``OMP_NUM_THREADS``), and
    reports what each run measured."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    train = fake_bundle / "configs" / "train.yaml"
    train.write_text(train.read_text() + "threads: \"$open(os.path.join(@output_dir, 'threads.txt'), 'w').write("
                     "os.environ.get('OMP_NUM_THREADS', 'unset'))\"\n")  # fmt: skip
    train.write_text(train.read_text().replace("run:\n", "run:\n  - '@threads'\n", 1))
    output = tmp_path / "out"
    argv = ["--bundle", str(fake_bundle), "--losses", "ce,dice_ce", "--checkpoint", "best", "--output", str(output)]
    stream = io.StringIO()
    bundle = ComparedBundle.load(fake_bundle, evaluate_fragments=())
    result = run_compare(parse_compare_args([*argv, "--jobs", "2"]), bundle=bundle, stream=stream)
    assert result.failed == []
    assert {(output / "runs" / name / "seed0" / "threads.txt").read_text() for name in ("ce", "dice_ce")} == {"2"}
    done = sorted(line.split("] ")[1] for line in stream.getvalue().splitlines() if line.endswith(": done"))
    assert done == ["ce seed 0: done", "dice_ce seed 0: done"]
    with open(output / "summary.csv") as f:
        dsc = {row["loss"]: float(row["dsc_mean"]) for row in csv.DictReader(f)}
    assert dsc == pytest.approx({"ce": 0.80, "dice_ce": 0.90})
