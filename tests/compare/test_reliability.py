"""Reliability statistics recomputed from saved predictions, checked against hand-counted bins; progress parsing."""

from __future__ import annotations

import io
import math

import nibabel as nib
import numpy as np

from monai_nacl.compare.plots import BinStatistics, plot_overlay, plot_reliability
from monai_nacl.compare.progress import Progress, format_duration
from monai_nacl.compare.report import reliability_bins
from monai_nacl.compare.runs import parse_epoch


def save(path, array):
    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4)), str(path))


def test_bins_from_predictions_by_hand(tmp_path):
    (tmp_path / "predictions").mkdir()
    (tmp_path / "metrics.csv").write_text("case,mean_dsc\nimg0,0.5\n")
    label = np.array([[0, 1, 1], [2, 2, 0]], dtype=np.uint8)[..., None]
    seg = np.array([[0, 1, 2], [2, 1, 1]], dtype=np.uint8)[..., None]
    conf = np.array([[0.9, 0.95, 0.35], [0.7, 0.5, 0.99]], dtype=np.float32)[..., None]
    save(tmp_path / "predictions" / "img0_seg.nii.gz", seg)
    save(tmp_path / "predictions" / "img0_max_prob.nii.gz", conf)
    save(tmp_path / "lab0.nii.gz", label)
    stats = reliability_bins(tmp_path, {"img0": str(tmp_path / "lab0.nii.gz")}, num_bins=5)
    # foreground voxels (label != 0): (0.95, correct), (0.35, wrong), (0.7, correct), (0.5, wrong)
    # bins of width 0.2, (lower, upper]: 0.35 -> bin 1, 0.5 -> bin 2, 0.7 -> bin 3, 0.95 -> bin 4
    np.testing.assert_allclose(stats.count, [0, 1, 1, 1, 1])
    np.testing.assert_allclose(stats.confidence_sum, [0, 0.35, 0.5, 0.7, 0.95], rtol=1e-6)
    np.testing.assert_allclose(stats.accuracy_sum, [0, 0, 0, 1, 1])
    assert math.isclose(stats.ece(), (0.35 + 0.5 + 0.3 + 0.05) / 4, rel_tol=1e-6)
    assert reliability_bins(tmp_path, {}, num_bins=5) is None  # unknown label file: no diagram, no guess
    pooled = stats + stats
    plot_reliability(pooled, tmp_path / "one.png", "ce")
    plot_overlay({"ce": pooled, "nacl": stats}, tmp_path / "all.png")
    assert (tmp_path / "one.png").stat().st_size > 1000 and (tmp_path / "all.png").stat().st_size > 1000


def test_bin_statistics_empty_bins():
    stats = BinStatistics(np.array([0.0, 2.0]), np.array([0.0, 1.5]), np.array([0.0, 2.0]))
    assert math.isnan(stats.accuracy()[0]) and stats.accuracy()[1] == 1.0 and stats.ece() == 0.25


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
