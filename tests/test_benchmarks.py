"""Smoke tests of the benchmark functions at tiny sizes: they run, write what they promise and report real timings.

No assertion on speed (the machine's load decides that); ``make bench`` measures it.
"""

from __future__ import annotations

import json
import logging.config
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_gpu
import bench_loops
import bench_losses
import run_all

CPU = torch.device("cpu")


def test_loss_timings_idle_and_contended_with_goals() -> None:
    result = bench_losses.run((1, 3, 8, 8, 8), repeats=1, threads=1, memory=False, contended=True)
    assert set(result["modes"]) == {"idle", "contended"}
    for mode in result["modes"].values():
        assert all(seconds > 0 for seconds in mode["median_seconds"].values())
        assert set(bench_losses.GOALS) <= set(mode["ratios"])
    assert set(result["goal_met"]) == {
        f"{name} ({mode})" for mode in ("idle", "contended") for name in bench_losses.GOALS
    }


def test_gpu_section_functions_run_on_cpu() -> None:
    losses = bench_gpu.loss_section((1, 3, 8, 8, 8), CPU, 1, precisions=("fp32", "bf16"))
    for precision in ("fp32", "bf16"):
        methods = losses[precision]["methods"]
        assert not [name for name, timing in methods.items() if timing.get("error")]
        assert losses[precision]["ratios_to_cross_entropy"]["cross_entropy"] == pytest.approx(1.0)
    metrics = bench_gpu.metric_section((1, 3, 8, 8, 8), CPU, 1)
    assert metrics["ours_ece_and_cece"]["median_seconds"] > 0 and metrics["torchmetrics_ece"]["median_seconds"] > 0
    step = bench_gpu.training_step_section(
        "unet2d_nacl", CPU, 1, {"roi_size": [16, 16], "batch_size": 2, "num_samples": 1}, precisions=("fp32",)
    )
    assert step["image_shape"] == [2, 1, 16, 16] and step["fp32"]["median_seconds"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the skip is what is tested")
def test_gpu_section_skips_cleanly_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert bench_gpu.main(["--output", str(tmp_path / "gpu.json")]) == 0
    assert "GPU section skipped: no CUDA device" in capsys.readouterr().out
    assert "no CUDA device" in json.loads((tmp_path / "gpu.json").read_text())["skipped"]


def test_loops_train_and_evaluate_a_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monai_nacl.data import make_synthetic_dataset

    monkeypatch.setattr(logging.config, "fileConfig", lambda *args, **kwargs: None)  # keep pytest's loggers
    datalist = make_synthetic_dataset(tmp_path / "data", num_cases=6, spatial_dims=3, size=24, num_classes=3, seed=0)
    output = tmp_path / "loops.json"
    argv = ["--quick", "--threads", "1", "--bundles", "unet2d_nacl", "--datalist", datalist, "--output", str(output)]
    assert bench_loops.main(argv) == 0
    result = json.loads(output.read_text())
    training = result["bundles"]["unet2d_nacl"]["training"]
    assert training["items_per_epoch"] == 4 and training["steps_per_epoch"] == 2  # 2 volumes x 2 slices, batch 2
    assert training["epochs_timed"] == 2 and training["ratio_bundle_over_plain"] > 0
    assert len(training["validation_round_seconds"]) == 1  # once, after the last epoch, not in the epoch times
    evaluation = result["bundles"]["unet2d_nacl"]["evaluation"]
    assert evaluation["num_cases"] == 1 and evaluation["ratio_bundle_over_plain"] > 0
    assert {"date", "cpu_model", "nproc", "load_average"} <= set(result["machine"])


def test_run_all_refuses_an_unknown_benchmark() -> None:
    with pytest.raises(SystemExit, match="--only nope: choose among losses,metrics,loops,gpu"):
        run_all.main(["--only", "nope"])
