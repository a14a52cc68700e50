"""A user's own data through the bundles: a CT in Hounsfield units with ``--intensity ct``, a 4-channel MR datalist
without ``in_channels``, calibration that reads the trained task, and a misspelled override."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_helpers import BUNDLES_DIR, config_path, read_json, run_bundle
from monai.bundle import ConfigParser

BUNDLE = "unet2d_nacl"
CT_CLASSES = {"0": "background", "1": "liver", "2": "bone"}
PIXDIM = [4.0, 4.0, 4.0]  # the 64^3 2 mm phantoms become 32^3


def _ct_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like volume in HU (64 x 64 x 32 at 2 mm): padding -3024 outside a circular field of view, air -1000
    around a body of fat (-100) holding an organ (+60, label 1) and a bone ring (+700, label 2), noise sd 10 HU."""
    rng = np.random.default_rng(seed)
    shape = (64, 64, 32)
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    shift = rng.integers(-3, 4, 2)
    r = np.hypot(x - 31.5 - shift[0], y - 31.5 - shift[1])[..., None].repeat(shape[2], 2)
    image = np.full(shape, -3024.0)
    label = np.zeros(shape, dtype=np.uint8)
    image[np.hypot(x - 31.5, y - 31.5)[..., None].repeat(shape[2], 2) < 31] = -1000.0
    image[r < 22] = -100.0
    organ, bone = r < 10 + seed % 3, (r >= 15) & (r < 18)
    image[organ], image[bone] = 60.0, 700.0
    label[organ], label[bone] = 1, 2
    image[image > -3024] += rng.normal(0, 10, int((image > -3024).sum()))
    return image.astype(np.float32), label


@pytest.fixture(scope="module")
def ct_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ct")
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    cases = []
    for index in range(5):
        image, label = _ct_case(index)
        nib.save(nib.Nifti1Image(image, affine), folder / f"ct_{index}.nii.gz")
        nib.save(nib.Nifti1Image(label, affine), folder / f"ct_{index}_seg.nii.gz")
        cases.append({"image": f"ct_{index}.nii.gz", "label": f"ct_{index}_seg.nii.gz"})
    datalist = {"labels": CT_CLASSES, "training": cases[:3], "validation": cases[3:4], "test": cases[4:]}
    (folder / "datalist.json").write_text(json.dumps(datalist))
    return folder, folder / "datalist.json"


@pytest.fixture(scope="module")
def ct_model(ct_dataset: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """unet2d_nacl trained 2 epochs with --intensity ct on the CT phantoms, no --num_classes (the labels name 3)."""
    _, datalist = ct_dataset
    run = tmp_path_factory.mktemp("ct_run")
    run_bundle(BUNDLE, ["train.yaml"], datalist=str(datalist), output_dir=str(run), intensity="ct", pixdim=PIXDIM,
               roi_size=[32, 32], max_epochs=2, val_interval=1, num_samples=4, sw_batch_size=8)  # fmt: skip
    return run


def test_ct_trains_with_its_window_and_records_it(ct_model: Path) -> None:
    task = read_json(ct_model / "models" / "task.json")
    (intensity,) = task["intensity_transforms"]
    assert intensity["_target_"].endswith("ScaleIntensityRanged")
    assert (intensity["a_min"], intensity["a_max"], intensity["b_min"], intensity["b_max"]) == (-175.0, 250.0, 0.0, 1.0)
    assert intensity["clip"] is True
    # three classes from the datalist's labels, without --num_classes
    assert task["num_classes"] == 3 and task["class_names"] == ["background", "liver", "bone"]


def test_ct_background_centres_include_air(ct_dataset: tuple[Path, Path]) -> None:
    """The bundle's own centre transforms on a loaded CT: background centres cover air (-1000 HU) and fat inside the
    field of view, never the padding outside it; the former rule (HU > 0) left out every air and fat voxel."""
    folder, datalist = ct_dataset
    parser = ConfigParser()
    parser.read_config(config_path(BUNDLE, "train.yaml"))
    parser.update({"bundle_root": str(BUNDLES_DIR / BUNDLE), "datalist": str(datalist), "pixdim": PIXDIM,
                   "roi_size": [32, 32]})  # fmt: skip
    transforms = parser.get_parsed_content("train#load_transforms") + parser.get_parsed_content(
        "train#centre_transforms"
    )
    item = {"image": str(folder / "ct_0.nii.gz"), "label": str(folder / "ct_0_seg.nii.gz")}
    for transform in transforms:
        item = transform(item)
    image = np.asarray(item["image"])[0].reshape(-1)
    background = np.asarray(item["label_bg_indices"])
    hu = image[background]
    assert (hu < -500).sum() > 100, "no background centre on air"
    assert ((hu > -300) & (hu < 0)).sum() > 100, "no background centre on fat"
    assert hu.min() > -2000, "a background centre on the padding outside the field of view"
    label = np.asarray(item["label"])[0].reshape(-1)
    inside = image > image.min()
    np.testing.assert_array_equal(background, np.flatnonzero((label == 0) & inside))


def test_ct_evaluates_and_calibrates_from_the_task(ct_model: Path, ct_dataset: tuple[Path, Path]) -> None:
    """Evaluation and calibration are given data paths only: they take the classes, the 4 mm spacing, the network
    and the HU window from task.json; calibration fits on windowed, 4 mm inputs."""
    _, datalist = ct_dataset
    common = {"datalist": str(datalist), "output_dir": str(ct_model), "sw_batch_size": 8}
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], **common)
    summary = read_json(ct_model / "summary.json")
    assert summary["num_cases"] == 1 and summary["classes"] == {"1": "liver", "2": "bone"}

    parser = ConfigParser()
    parser.read_config([config_path(BUNDLE, "train.yaml"), config_path(BUNDLE, "calibrate.yaml")])
    parser.update({"bundle_root": str(BUNDLES_DIR / BUNDLE), **common})
    preprocessing = parser.get_parsed_content("calibration_preprocessing").transforms
    names = [type(t).__name__ for t in preprocessing]
    assert "ScaleIntensityRanged" in names and "NormalizeIntensityd" not in names
    spacing = next(t for t in preprocessing if type(t).__name__ == "Spacingd")
    assert list(spacing.spacing_transform.pixdim) == PIXDIM
    first = parser.get_parsed_content("calibration_dataloader").dataset[0]["image"]
    assert 0.0 <= float(first.min()) and float(first.max()) <= 1.0  # the window's [0, 1], not a z-score

    run_bundle(BUNDLE, ["train.yaml", "calibrate.yaml"], **common)
    calibration = read_json(ct_model / "models" / "calibration.json")
    assert calibration["method"] == "ts" and calibration["fit"]["cases"] == 1
    assert 0.05 <= calibration["parameters"]["temperature"] <= 20.0


@pytest.fixture(scope="module")
def four_channel_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BraTS-like: four co-registered single-channel files per case (each modality a different contrast)."""
    from monai_nacl.data import make_synthetic_dataset

    folder = tmp_path_factory.mktemp("brats_like")
    datalist = json.loads(Path(make_synthetic_dataset(folder, num_cases=4, size=32, seed=1)).read_text())
    gains = (1.0, 2.0, -1.0, 0.5)
    for section in ("training", "validation", "test"):
        for case in datalist[section]:
            image = nib.load(folder / case["image"])
            files = []
            for m, gain in enumerate(gains):
                name = case["image"].replace(".nii.gz", f"_m{m}.nii.gz")
                data = np.asarray(image.dataobj, dtype=np.float32) * gain + m
                nib.save(nib.Nifti1Image(data, image.affine), folder / name)
                files.append(name)
            case["image"] = files
    (folder / "datalist.json").write_text(json.dumps(datalist))
    return folder / "datalist.json"


def test_four_channels_train_without_in_channels(four_channel_dataset: Path, tmp_path: Path) -> None:
    run_bundle(BUNDLE, ["train.yaml"], datalist=str(four_channel_dataset), output_dir=str(tmp_path),
               roi_size=[32, 32], max_epochs=1, val_interval=1, num_samples=2, sw_batch_size=8)  # fmt: skip
    task = read_json(tmp_path / "models" / "task.json")
    assert task["network_def"]["in_channels"] == 4
    weights = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    first_conv = next(v for k, v in weights.items() if k.endswith("weight") and v.ndim == 4)
    assert first_conv.shape[1] == 4
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], datalist=str(four_channel_dataset), output_dir=str(tmp_path),
               sw_batch_size=8)  # fmt: skip
    assert read_json(tmp_path / "summary.json")["num_cases"] == 1


def test_a_misspelled_override_stops_before_anything_is_built(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MONAI_NACL_DATA": str(tmp_path / "data")}
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_path(BUNDLE, "train.yaml"),
               "--bundle_root", str(BUNDLES_DIR / BUNDLE), "--output_dir", str(tmp_path / "run"), "--max_epoch", "1"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "--max_epoch: did you mean --max_epochs?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()
