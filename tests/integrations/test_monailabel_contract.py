"""The bundles hold what MONAI Label's BundleInferTask / BundleTrainTask read, and the inference ids run as it runs them.

MONAI Label (``monailabel.tasks.infer.bundle.BundleInferTask``) parses ``configs/inference.yaml`` with ``ConfigParser``,
overrides ``bundle_root`` and ``device``, takes ``get_parsed_content`` of ``network_def``, ``preprocessing``,
``inferer`` and ``postprocessing`` and chains them on ``{"image": path}``; it reads the labels from
``network_data_format.outputs.pred.channel_def`` of ``metadata.json``. ``BundleTrainTask`` overrides
``train#trainer#max_epochs``, ``train#dataset#data``, ``validate#dataset#data`` and extends ``train#handlers``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from tests.bundles.bundle_helpers import BUNDLES, BUNDLES_DIR, config_path

INFER_IDS = ("network_def", "preprocessing", "postprocessing", "inferer", "device", "bundle_root")
TRAIN_IDS = ("train#trainer#max_epochs", "train#dataset#data", "validate#dataset#data", "train#handlers")
SMALL = {"swinunetr_nacl": {"feature_size": 12, "network_def#depths": [1, 1, 1, 1]}}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_config_keys_monailabel_reads(bundle: str) -> None:
    infer = ConfigParser()
    infer.read_config(config_path(bundle, "inference.yaml"))
    for key in INFER_IDS:
        assert key in infer, f"{bundle}/configs/inference.yaml lacks `{key}`"
    train = ConfigParser()
    train.read_config(config_path(bundle, "train.yaml"))
    for key in TRAIN_IDS:
        assert key in train, f"{bundle}/configs/train.yaml lacks `{key}`"
    assert isinstance(train["train#handlers"], list)
    meta = json.loads(Path(config_path(bundle, "metadata.json")).read_text())
    fmt = meta["network_data_format"]
    image, pred = fmt["inputs"]["image"], fmt["outputs"]["pred"]
    assert image["num_channels"] == 1 and len(image["channel_def"]) == 1
    infer["bundle_root"] = str(BUNDLES_DIR / bundle)  # MONAI Label sets it; no task.json there: the defaults
    assert pred["num_channels"] == infer.get_parsed_content("num_classes") == len(pred["channel_def"])
    assert pred["channel_def"]["0"] == "background"
    ndim = 2 if bundle == "unet2d_nacl" else 3
    assert len(image["spatial_shape"]) == len(pred["spatial_shape"]) == ndim


def _synthetic_volume(path: Path, shape: tuple[int, int, int] = (20, 22, 18)) -> np.ndarray:
    rng = np.random.default_rng(0)
    data = rng.normal(100.0, 20.0, size=shape).astype(np.float32)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return data


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_pipeline_as_monailabel_runs_it(bundle: str, tmp_path: Path) -> None:
    image_path = tmp_path / "case.nii.gz"
    data = _synthetic_volume(image_path)
    parser = ConfigParser()
    parser.read_config(config_path(bundle, "inference.yaml"))
    parser.read_meta(config_path(bundle, "metadata.json"))
    parser.update(
        {
            "bundle_root": str(BUNDLES_DIR / bundle),
            "device": "$torch.device('cpu')",
            "output_dir": str(tmp_path / "out"),
            **SMALL.get(bundle, {}),
        }
    )
    parser.parse(True)
    device = parser.get_parsed_content("device")
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def").to(device).eval()
    pre = parser.get_parsed_content("preprocessing")
    inferer = parser.get_parsed_content("inferer")
    post = parser.get_parsed_content("postprocessing")

    item = pre({"image": str(image_path)})
    with torch.no_grad():
        item["pred"] = inferer(item["image"][None].to(device), network)[0]
    item = post(item)

    pred = item["pred"]
    assert tuple(pred.shape[-3:]) == data.shape, "labels must be back in the image's original grid"
    labels = torch.as_tensor(pred).reshape(-1)
    assert labels.min() >= 0 and labels.max() < parser.get_parsed_content("num_classes")
    assert torch.equal(labels, labels.round())
    written = sorted(p.name for p in (tmp_path / "out" / "predictions").iterdir())
    assert written == ["case_entropy.nii.gz", "case_max_prob.nii.gz", "case_seg.nii.gz"]
    seg = nib.load(str(tmp_path / "out" / "predictions" / "case_seg.nii.gz"))
    assert seg.shape[:3] == data.shape
    np.testing.assert_allclose(seg.affine, np.diag([2.0, 2.0, 2.0, 1.0]), atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("monailabel") is None, reason="monailabel is not installed")
def test_monailabel_bundle_infer_task(tmp_path: Path) -> None:
    """Only with MONAI Label installed (not a dependency: its pins pull another torch)."""
    import shutil

    from monailabel.tasks.infer.bundle import BundleInferTask

    bundle = tmp_path / "unet3d_nacl"
    shutil.copytree(BUNDLES_DIR / "unet3d_nacl", bundle)
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.yaml"))
    parser.update({"device": "$torch.device('cpu')"})
    (bundle / "models").mkdir(exist_ok=True)
    torch.save(parser.get_parsed_content("network_def").state_dict(), bundle / "models" / "model.pt")
    task = BundleInferTask(str(bundle), {"preload": "false"})
    names = {str(n).lower() for n in task.labels}
    assert {"grey matter", "white matter"} <= names
