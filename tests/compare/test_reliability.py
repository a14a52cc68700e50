"""The comparison's reliability pictures from the runs' saved histograms (pooled over seeds); progress parsing."""

from __future__ import annotations

import io
import json
import math

import torch

from monai_nacl.compare.plots import OVERLAY, overlay_file, plot_comparison
from monai_nacl.compare.progress import Progress, format_duration
from monai_nacl.compare.report import run_histograms
from monai_nacl.compare.runs import parse_epoch
from monai_nacl.metrics import (
    calibration_statistics,
    coarse_statistics,
    concatenate_statistics,
    region_mask,
    statistics_to_dict,
)


def _evaluated_run(folder, seed, num_cases=2):
    """A run folder holding what SegmentationReportHandler writes: per-case histograms of the foreground."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(num_cases, 3, 6, 6, generator=g, dtype=torch.float64) * 2, dim=1)
    labels = torch.randint(0, 3, (num_cases, 6, 6), generator=g)
    stats = calibration_statistics(probs, labels, num_bins=5, mask=region_mask(labels, "foreground"), per_image=True)
    folder.mkdir(parents=True)
    saved = {
        "cases": [f"case{k}" for k in range(num_cases)],
        "region": "foreground",
        "class_names": ["background", "liver", "kidney"],
    }
    (folder / "calibration_histograms.json").write_text(json.dumps({**saved, "statistics": statistics_to_dict(stats)}))
    return stats


def test_pictures_from_saved_histograms(tmp_path):
    runs = [_evaluated_run(tmp_path / "runs" / "ce" / f"seed{s}", seed=s) for s in (0, 1)]
    read = [run_histograms(tmp_path / "runs" / "ce" / f"seed{s}") for s in (0, 1)]
    assert [run.region for run in read] == ["foreground", "foreground"]
    assert [run.class_names for run in read] == [["background", "liver", "kidney"]] * 2
    for run, expected in zip(read, runs):
        assert torch.equal(run.statistics.classwise, coarse_statistics(expected).classwise)
    assert run_histograms(tmp_path / "runs" / "missing") is None  # evaluated before histograms were saved
    per_case = {"ce + TS": concatenate_statistics([run.statistics for run in read])}
    assert per_case["ce + TS"].classwise.shape[0] == 4  # 2 cases x 2 seeds, each an image of the dataset histogram
    written = plot_comparison(tmp_path, per_case, {"ce + TS": "ce_TS"}, "foreground")
    assert written["ce + TS"]["dataset"] == "dataset_reliability/ce_TS.png"
    files = [tmp_path / OVERLAY] + [tmp_path / path for path in written["ce + TS"].values()]
    for path in files:
        assert path.read_bytes()[:4] == b"\x89PNG"
    # one overlay per checkpoint, each drawing only its rows
    stats = per_case["ce + TS"]
    rows = {f"{name} ({c})": stats for name in ("ce", "ce + TS") for c in ("best", "final")}
    overlays = {overlay_file(c, ["best", "final"]): (c, [f"ce ({c})", f"ce + TS ({c})"]) for c in ("best", "final")}
    assert list(overlays) == ["reliability_all_best.png", "reliability_all_final.png"]
    assert overlay_file("best", ["best"]) == OVERLAY
    plot_comparison(tmp_path / "two", rows, {name: name.replace(" ", "_") for name in rows}, None, overlays)
    for file in overlays:
        assert (tmp_path / "two" / file).read_bytes()[:4] == b"\x89PNG"


def test_epoch_lines_and_time_left():
    assert parse_epoch("2026 - INFO - Epoch: 3/10, Iter: 2/8 -- train_loss: 0.4100") == (3, 10, False)
    assert parse_epoch("ignite.engine.engine.SupervisedTrainer - INFO - Epoch[4] Complete. Time taken: 00:00:02") == (
        4,
        None,
        True,
    )
    assert parse_epoch("Got new best metric of val_mean_dice: 0.8") is None
    assert format_duration(75) == "1m15s" and format_duration(3700) == "1h01m" and format_duration(9.6) == "10s"
    out = io.StringIO()
    progress = Progress(total=3, stream=out)
    progress.start_run("ce seed 0", max_epochs=10)
    progress.start_phase("train")
    assert progress.time_left() is None
    progress.run_start -= 20.0  # 20 s into the run, 4 of 10 epochs completed -> 50 s per run
    progress.on_line("Epoch: 5/10, Iter: 1/4 -- train_loss: 0.3")
    assert math.isclose(progress.time_left(), 30.0 + 2 * 50.0, abs_tol=0.5)
    assert "[1/3] ce seed 0 train: epoch 5/10" in out.getvalue()
    progress.end_run()
    progress.start_run("nacl seed 0")
    assert math.isclose(progress.time_left(), progress.durations[0] * 2, abs_tol=0.5)  # mean of finished runs


def test_comparison_pictures_name_the_classes_the_evaluations_recorded(tmp_path, monkeypatch):
    """write_report reads the class names saved with the runs' histograms; every per-class picture of the
    comparison is named by them and has no panel for the background, absent from the foreground region."""
    from pathlib import Path

    from monai_nacl.compare import plots, report
    from monai_nacl.compare.grid import Variant
    from monai_nacl.compare.runs import RunSpec
    from monai_nacl.compare.table import Row
    from monai_nacl.metrics import dataset_reliability_figure, reliability_figure

    drawn = {}

    def capture(figure_function):
        def draw(stats, path, *args, **kwargs):
            drawn[Path(path).relative_to(tmp_path).as_posix()] = figure_function(stats, *args, **kwargs)

        return draw

    monkeypatch.setattr(plots, "plot_reliability_diagram", capture(reliability_figure))
    monkeypatch.setattr(plots, "plot_dataset_reliability", capture(dataset_reliability_figure))
    folders = [tmp_path / "runs" / "ce" / f"seed{s}" for s in (0, 1)]
    for seed, folder in enumerate(folders):
        _evaluated_run(folder, seed)
    row = Row("ce", checkpoint="best")
    monkeypatch.setattr(report, "build_rows", lambda specs, posthoc=(), checkpoint="best": ([row], {row.key: folders}))
    specs = [RunSpec(Variant("ce"), s, folder) for s, folder in enumerate(folders)]
    report.write_report(tmp_path, specs, [], "unet2d_nacl", checkpoints=["best"])
    classwise, dataset = drawn["reliability/ce_best_classwise.png"], drawn["dataset_reliability/ce_best.png"]
    assert [ax.get_title().split(":")[0] for ax in classwise.axes if ax.get_title()] == ["liver", "kidney"]
    assert [ax.get_title() for ax in dataset.axes if ax.get_visible() and ax.get_title()] == ["liver", "kidney"]
    assert "not drawn: background" in classwise.get_suptitle().replace("\n", " ")
    assert "pooled ECE" in drawn[OVERLAY].get_suptitle()  # one row: its bars, the pooled ECE in the title
