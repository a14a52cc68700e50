"""Helpers of the bundle tests: paths, running a bundle in-process as `python -m monai.bundle run` would, and checking
an evaluation's files against independent NumPy computations."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLES_DIR = REPO / "bundles"
BUNDLES = ("unet2d_nacl", "unet3d_nacl", "swinunetr_nacl")


def config_path(bundle: str, name: str) -> str:
    return str(BUNDLES_DIR / bundle / "configs" / name)


def run_bundle(bundle: str, configs: list[str], **overrides: Any) -> None:
    """``monai.bundle.run`` with the bundle's configs merged in order and ``--id value`` overrides."""
    from monai.bundle import run

    # in-process there is no --config_file on the command line to locate the bundle by: name its folder, as
    # `python -m monai.bundle run --config_file .../configs/train.yaml` finds it
    overrides.setdefault("bundle_root", str(BUNDLES_DIR / bundle))
    run(
        config_file=[config_path(bundle, c) for c in configs],
        meta_file=config_path(bundle, "metadata.json"),
        logging_file=False,  # the bundle's logging.conf would reconfigure pytest's loggers
        **overrides,
    )


def split_list(datalist: str | Path, split: str, count: int) -> str:
    """Override expression: the first ``count`` items of the datalist's ``split`` list."""
    return f"$monai_nacl.bundle.training_data.datalist_section(@datalist, '{split}', @dataset_dir)[:{count}]"


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


DEFAULT_CLASSES = ("grey_matter", "white_matter")
"""Column names of classes 1 and 2 of the default dataset (its datalist's labels "grey matter", "white matter")."""


def csv_columns(classes: tuple[str, ...] = DEFAULT_CLASSES) -> list[str]:
    """The columns of metrics.csv with foreground classes named ``classes``."""
    return ["case", *(f"dice_{c}" for c in classes), *(f"hd95_{c}" for c in classes), "mean_dice", "ece", "cece",
            "ace", "cace", "adaece", "cadaece", "mce", "nll", "brier", *(f"est_dice_{c}" for c in classes),
            "est_mean_dice", "est_dice_abs_error"]  # fmt: skip


def rater_columns(classes: tuple[str, ...] = DEFAULT_CLASSES) -> list[str]:
    """The columns metrics.csv adds for cases annotated by several raters."""
    return [*(f"inter_rater_dice_{c}" for c in classes), "raters_ece", "raters_cece", "raters_ace", "raters_nll",
            "raters_brier"]  # fmt: skip


def expected_classes(dataset_dir: str | Path) -> tuple[str, str]:
    """Column names of classes 1 and 2 for the datalist ``datalist.json`` of ``dataset_dir``: its ``labels`` with
    spaces as ``_`` (the test datasets' names have no other character to replace), ``class_<k>`` without."""
    path = Path(dataset_dir) / "datalist.json"
    labels = read_json(path).get("labels", {}) if path.is_file() else {}
    return tuple(labels[str(k)].lower().replace(" ", "_") if str(k) in labels else f"class_{k}" for k in (1, 2))


CSV_COLUMNS = csv_columns()
SUMMARY_KEYS = {
    "num_cases",
    "classes",
    "mean",
    "num_valid",
    "pooled",
    "pooled_over",
    "num_bins",
    "region",
    "class_set",
    "skipped",
    "calibration",
    "dice_estimate",
}
MAPS = ("seg", "max_prob", "entropy")


def numpy_dice(pred: np.ndarray, label: np.ndarray, k: int) -> float:
    p, g = pred == k, label == k
    return 2.0 * np.logical_and(p, g).sum() / (p.sum() + g.sum())


def numpy_foreground_ece(
    conf: np.ndarray, pred: np.ndarray, label: np.ndarray, num_bins: int = 15, correct: np.ndarray | None = None
) -> float:
    """Top-label ECE over label != 0 voxels, equal-width bins (lower, upper]; ``correct`` replaces ``pred == label``
    (e.g. by the raters' share of the predicted class)."""
    fg = label != 0
    correct = (pred == label) if correct is None else correct
    conf, correct = conf[fg].astype(np.float64), correct[fg].astype(np.float64)
    bins = np.clip(np.ceil(conf * num_bins).astype(int) - 1, 0, num_bins - 1)
    total = 0.0
    for b in range(num_bins):
        members = bins == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - conf[members].mean())
    return total / fg.sum()


def check_evaluation(
    output_dir: Path,
    dataset_dir: str,
    cases: list[dict[str, str]],
    skipped: tuple[str, ...] = (),
    classes: tuple[str, ...] | None = None,
) -> list[dict[str, str]]:
    """Check metrics.csv, summary.json, the diagram and the NIfTI maps of the evaluated ``cases`` (datalist entries,
    paths relative to ``dataset_dir`` or absolute), that the columns name the foreground ``classes`` (default:
    :func:`expected_classes` of ``dataset_dir``) and that summary.json lists the ``skipped`` cases; return the rows."""
    num_cases = len(cases)
    classes = expected_classes(dataset_dir) if classes is None else classes
    with open(output_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    with_raters = all(case.get("label_raters") for case in cases)
    expected_columns = csv_columns(classes) + (rater_columns(classes) if with_raters else [])
    assert list(rows[0]) == expected_columns and len(rows) == num_cases
    summary = read_json(output_dir / "summary.json")
    assert set(summary) == SUMMARY_KEYS and summary["num_cases"] == num_cases
    assert summary["classes"] == {str(k): name for k, name in enumerate(classes, start=1)}
    assert list(summary["mean"]) == expected_columns[1:]
    assert [s["case"] for s in summary["skipped"]] == list(skipped)
    assert set(summary["pooled"]) == {"ece", "cece", "ace", "cace", "adaece", "cadaece", "mce", "nll", "brier"}
    assert (output_dir / "reliability.png").stat().st_size > 1000
    assert not [p for p in output_dir.rglob(".*") if p.is_file()], "temporary files left behind"
    by_name = {row["case"]: row for row in rows}
    assert set(by_name) == {os.path.basename(c["image"]).split(".nii")[0] for c in cases}
    for case in cases:
        row = by_name[os.path.basename(case["image"]).split(".nii")[0]]
        image = nib.load(os.path.join(dataset_dir, case["image"]))
        label = np.asarray(nib.load(os.path.join(dataset_dir, case["label"])).dataobj).astype(int)
        maps = {m: nib.load(output_dir / "predictions" / f"{row['case']}_{m}.nii.gz") for m in MAPS}
        for m, img in maps.items():
            assert img.shape[:3] == image.shape[:3], m
            np.testing.assert_allclose(img.affine, image.affine, atol=1e-4)
        seg = np.asarray(maps["seg"].dataobj).astype(int).reshape(label.shape)
        conf = np.asarray(maps["max_prob"].dataobj).reshape(label.shape)
        entropy = np.asarray(maps["entropy"].dataobj)
        assert conf.min() >= 1 / 3 - 1e-5 and conf.max() <= 1 + 1e-5
        assert entropy.min() >= -1e-6 and entropy.max() <= 1 + 1e-5
        for k, name in enumerate(classes, start=1):
            assert float(row[f"dice_{name}"]) == pytest.approx(numpy_dice(seg, label, k), abs=1e-5)
        assert float(row["ece"]) == pytest.approx(numpy_foreground_ece(conf, seg, label), abs=2e-4)
        if with_raters:  # against the raters' distribution, region: their most frequent label (rater 1 on ties)
            raters = [
                np.asarray(nib.load(os.path.join(dataset_dir, r)).dataobj).astype(int) for r in case["label_raters"]
            ]
            share = np.stack([np.mean([r == k for r in raters], axis=0) for k in range(3)])
            majority = share.argmax(0)
            correct = np.take_along_axis(share, seg[None], 0)[0]
            expected = numpy_foreground_ece(conf, seg, majority, correct=correct)
            assert float(row["raters_ece"]) == pytest.approx(expected, abs=2e-4)
            for k, name in enumerate(classes, start=1):
                pairs = [(a, b) for i, a in enumerate(raters) for b in raters[i + 1 :]]
                dice = np.mean([numpy_dice(a, b, k) for a, b in pairs])
                assert float(row[f"inter_rater_dice_{name}"]) == pytest.approx(dice, abs=1e-6)
    if num_cases == 1:
        assert summary["pooled"]["ece"] == pytest.approx(float(rows[0]["ece"]), rel=1e-9)
    return rows


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint or model file written by a bundle, on the CPU."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def adam_steps(checkpoint: dict) -> set[int]:
    """The step counts of the optimizer state in a ``checkpoint_last.pt`` (one per parameter; all equal)."""
    return {int(s["step"]) for s in checkpoint["optimizer"]["state"].values()}


def logged_scalars(output_dir: Path, tag: str) -> dict[int, float]:
    """``{step: value}`` of a TensorBoard scalar written under ``output_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = {}
    for events in output_dir.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            values.update({e.step: e.value for e in accumulator.Scalars(tag)})
    return values
