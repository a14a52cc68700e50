"""End-to-end runs of the bundles (tiny schedules): train with loss_name=nacl, evaluate, infer, multi-process.

The numbers the evaluation writes are checked against independent NumPy computations on the NIfTI files it
wrote and the labels on disk (Dice per class, top-label ECE over foreground voxels).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bundle_helpers import BUNDLES_DIR, config_path, read_json, run_bundle, split_list

CSV_COLUMNS = ["case", "dsc_1", "dsc_2", "hd95_1", "hd95_2", "mean_dsc", "ece", "cece", "ace", "cace", "mce", "nll",
               "brier"]  # fmt: skip
SUMMARY_KEYS = {"num_cases", "mean", "num_valid", "pooled", "num_bins", "region"}
MAPS = ("seg", "max_prob", "entropy")


def numpy_dice(pred: np.ndarray, label: np.ndarray, k: int) -> float:
    p, g = pred == k, label == k
    return 2.0 * np.logical_and(p, g).sum() / (p.sum() + g.sum())


def numpy_foreground_ece(conf: np.ndarray, pred: np.ndarray, label: np.ndarray, num_bins: int = 15) -> float:
    """Top-label ECE over label != 0 voxels, equal-width bins (lower, upper]."""
    fg = label != 0
    conf, correct = conf[fg].astype(np.float64), (pred[fg] == label[fg]).astype(np.float64)
    bins = np.clip(np.ceil(conf * num_bins).astype(int) - 1, 0, num_bins - 1)
    total = 0.0
    for b in range(num_bins):
        members = bins == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - conf[members].mean())
    return total / fg.sum()


def check_evaluation(output_dir: Path, dataset_dir: str, datalist: str, num_cases: int) -> list[dict[str, str]]:
    """Check metrics.csv, summary.json, the diagram and the NIfTI maps; return the CSV rows."""
    with open(output_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == num_cases
    summary = read_json(output_dir / "summary.json")
    assert set(summary) == SUMMARY_KEYS and summary["num_cases"] == num_cases
    assert set(summary["pooled"]) == {"ece", "cece", "ace", "cace", "mce", "nll", "brier"}
    assert (output_dir / "reliability.png").stat().st_size > 1000
    assert not [p for p in output_dir.rglob(".*") if p.is_file()], "temporary files left behind"
    cases = read_json(datalist)["test"][:num_cases]
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
        for k in (1, 2):
            assert float(row[f"dsc_{k}"]) == pytest.approx(numpy_dice(seg, label, k), abs=1e-5)
        assert float(row["ece"]) == pytest.approx(numpy_foreground_ece(conf, seg, label), abs=2e-4)
    if num_cases == 1:
        assert summary["pooled"]["ece"] == pytest.approx(float(rows[0]["ece"]), rel=1e-9)
    return rows


@pytest.fixture(scope="module")
def default_data() -> tuple[str, str]:
    from monai_nacl.data import default_dataset_dir, ensure_default_dataset

    dataset_dir = str(default_dataset_dir())
    return dataset_dir, str(ensure_default_dataset(dataset_dir))


@pytest.fixture(scope="module")
def unet2d_run(tmp_path_factory: pytest.TempPathFactory, default_data: tuple[str, str]) -> Path:
    """unet2d_nacl trained (a few steps, loss nacl) and evaluated on the default dataset."""
    out = tmp_path_factory.mktemp("unet2d")
    common = {"output_dir": str(out), "ckpt_dir": str(out / "models"), "dataset_dir": default_data[0]}
    run_bundle(
        "unet2d_nacl",
        ["train.yaml"],
        loss_name="nacl",
        max_epochs=1,
        val_interval=1,
        batch_size=1,
        num_samples=4,
        cache_rate=0.0,
        **{"train#trainer#epoch_length": 2, "validate#dataset#data": split_list(default_data[1], "validation", 1)},
        **common,
    )
    run_bundle(
        "unet2d_nacl",
        ["train.yaml", "evaluate.yaml"],
        **{"validate#dataset#data": split_list(default_data[1], "test", 1)},
        **common,
    )
    return out


@pytest.mark.slow
def test_unet2d_trains_and_evaluates_on_default_data(unet2d_run: Path, default_data: tuple[str, str]) -> None:
    assert (unet2d_run / "models" / "model.pt").is_file()
    assert list(unet2d_run.glob("events.out.tfevents.*"))
    assert list((unet2d_run / "reliability").glob("reliability_epoch0001.png"))
    check_evaluation(unet2d_run, *default_data, num_cases=1)


@pytest.mark.slow
def test_unet2d_inference_cli_matches_evaluation(unet2d_run: Path, default_data: tuple[str, str]) -> None:
    """`python -m monai.bundle run` from the bundle folder, on one image: same label map as the evaluation."""
    case = read_json(default_data[1])["test"][0]
    image = os.path.join(default_data[0], case["image"])
    out = unet2d_run / "inference"
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml",
               "--input_files", repr([image]), "--output_dir", str(out), "--ckpt_dir", str(unet2d_run / "models")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, check=False, cwd=BUNDLES_DIR / "unet2d_nacl", env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    name = os.path.basename(image).replace(".nii.gz", "")
    for m in MAPS:
        written = nib.load(out / "predictions" / f"{name}_{m}.nii.gz")
        evaluated = nib.load(unet2d_run / "predictions" / f"{name}_{m}.nii.gz")
        np.testing.assert_allclose(written.affine, evaluated.affine)
        np.testing.assert_allclose(np.asarray(written.dataobj), np.asarray(evaluated.dataobj), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "bundle,overrides",
    [
        ("unet3d_nacl", {"train#trainer#epoch_length": 2, "num_samples": 1}),
        ("swinunetr_nacl", {"train#trainer#epoch_length": 1, "num_samples": 1, "feature_size": 12}),
    ],
)
def test_3d_bundle_trains_and_evaluates(
    bundle: str, overrides: dict, synthetic_3d: tuple[str, str], tmp_path: Path
) -> None:
    dataset_dir, datalist = synthetic_3d
    common = {"output_dir": str(tmp_path), "ckpt_dir": str(tmp_path / "models"), "dataset_dir": dataset_dir,
              "datalist": datalist, "roi_size": [64, 64, 64]}  # fmt: skip
    run_bundle(
        bundle,
        ["train.yaml"],
        loss_name="nacl",
        max_epochs=1,
        val_interval=1,
        batch_size=1,
        cache_rate=0.0,
        **{"validate#dataset#data": split_list(datalist, "validation", 1)},
        **overrides,
        **common,
    )
    assert (tmp_path / "models" / "model.pt").is_file()
    run_bundle(
        bundle, ["train.yaml", "evaluate.yaml"], **common, **{"validate#dataset#data": split_list(datalist, "test", 1)}
    )
    check_evaluation(tmp_path, dataset_dir, datalist, num_cases=1)


def test_data_check_stops_with_a_report(tmp_path: Path, synthetic_3d: tuple[str, str]) -> None:
    dataset_dir, datalist = synthetic_3d
    broken = read_json(datalist)
    broken["training"][0]["label"] = "no_such_label.nii.gz"
    broken_path = tmp_path / "broken.json"
    broken_path.write_text(json.dumps(broken))
    with pytest.raises(Exception) as info:
        run_bundle("unet3d_nacl", ["train.yaml"], dataset_dir=dataset_dir, datalist=str(broken_path),
                   output_dir=str(tmp_path), ckpt_dir=str(tmp_path / "models"))  # fmt: skip
    chain, error = [], info.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__
    message = "\n".join(chain)
    assert "no_such_label.nii.gz" in message and "--check_data false" in message


def torchrun(configs: list[str], overrides: dict) -> None:
    """Run the 2D bundle's merged ``configs`` in two gloo processes with ``torch.distributed.run``."""
    files = repr([config_path("unet2d_nacl", c) for c in configs])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "monai.bundle", "run", "--config_file", files, "--logging_file", "False"]  # fmt: skip
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory, synthetic_3d: tuple[str, str]) -> tuple[Path, dict]:
    """unet2d_nacl trained in two gloo processes with multi_gpu_train.yaml: ``(output_dir, common overrides)``."""
    dataset_dir, datalist = synthetic_3d
    out = tmp_path_factory.mktemp("ddp")
    common = {"dataset_dir": dataset_dir, "datalist": datalist, "output_dir": str(out), "ckpt_dir": str(out / "models")}
    train = {"max_epochs": 1, "val_interval": 1, "batch_size": 1, "num_samples": 2, "cache_rate": 0.0,
             "train#trainer#epoch_length": 1, "validate#dataset#data": split_list(datalist, "validation", 2)}  # fmt: skip
    torchrun(["train.yaml", "multi_gpu_train.yaml"], {**common, **train})
    return out, common


@pytest.mark.slow
def test_multi_process_training_writes_on_rank_zero(ddp_run: tuple[Path, dict]) -> None:
    """DistributedSampler on both loaders; rank 0 alone writes the model, the logs and the diagram."""
    out, _ = ddp_run
    assert (out / "models" / "model.pt").is_file()
    events = list(out.glob("events.out.tfevents.*"))
    assert len(events) == 2 and len({e.name.split(".")[-2] for e in events}) == 1  # trainer + evaluator, one pid
    assert len(list((out / "reliability").glob("*.png"))) == 1


@pytest.mark.slow
def test_multi_process_evaluation(ddp_run: tuple[Path, dict], synthetic_3d: tuple[str, str]) -> None:
    out, common = ddp_run
    datalist = synthetic_3d[1]
    torchrun(["train.yaml", "evaluate.yaml", "multi_gpu_evaluate.yaml"],
             {**common, "validate#dataset#data": split_list(datalist, "test", 2)})  # fmt: skip
    check_evaluation(out, *synthetic_3d, num_cases=2)
