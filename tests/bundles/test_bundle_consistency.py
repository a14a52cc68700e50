"""The three bundles are plain files kept consistent by this test: every config file parses with PyYAML, and the
bundles agree on every id except a short, declared list of intended differences (network, patch/slice shape,
inferer, patch sampling, schedule). An id changed in one bundle alone fails here, naming the file, id and values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from bundle_helpers import BUNDLES, BUNDLES_DIR

from monai_nacl.losses import LOSS_DEFAULTS

SCHEDULE = ("batch_size", "num_samples", "max_epochs", "val_interval", "learning_rate", "sw_batch_size")
NETWORK = ("network_def", "task#network_def", "feature_size")
INFERER = ("inferer", "validate#inferer")
ROI = ("roi_size", "trained_task#defaults#roi_size")
PATCHES = ("train#centre_transforms", "train#sampling_transforms", "train#augmentation")
INTENDED_DIFFERENCES: dict[str, tuple[str, ...]] = {
    "train.yaml": (*NETWORK, *INFERER, *ROI, *PATCHES, *SCHEDULE, "task#bundle"),
    "inference.yaml": (*NETWORK, *INFERER, *ROI, "sw_batch_size"),
    "evaluate.yaml": ROI,
    "calibrate.yaml": ROI,
    # the authors' regime: their 2D UNet and slice-wise training exist for the 2D bundle only
    "protocol_paper.yaml": (
        "network_def",
        "train#",
        *(f"{p}{o}" for p in ("", "settings#") for o in ("train_slices", "train_volumes")),
    ),
    "metadata.json": (
        "name",
        "description",
        "references",
        "eval_metrics",
        "required_packages_version#einops",
        "network_data_format#inputs#image#spatial_shape",
        "network_data_format#outputs#pred#spatial_shape",
    ),
}
"""Per config file, the ids (and everything below them) in which the bundles may differ; ``train#`` covers every
``train#...`` id."""


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a#b#0#c": leaf}``: every leaf of a parsed config under its MONAI id (lists of dicts by index)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = enumerate(value)
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}#{key}" if prefix else str(key)))
    return flat


def read_config(path: Path) -> Any:
    """A bundle file as data: YAML and JSON parsed (PyYAML must accept it as it stands), other files as text."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix == ".yaml":
        return yaml.safe_load(text)
    return {"text": text}


def _intended(file: str, config_id: str) -> bool:
    for declared in INTENDED_DIFFERENCES.get(file, ()):
        if declared.endswith("#") and config_id.startswith(declared):
            return True
        if config_id == declared or config_id.startswith(declared + "#"):
            return True
    return False


def drift(root: Path, bundles: tuple[str, ...] = BUNDLES) -> list[str]:
    """Every shared id whose value differs between the bundles under ``root``: ``file: id: {bundle: value}``."""
    files = sorted({p.name for b in bundles for p in (root / b / "configs").iterdir() if p.is_file()})
    found = []
    for file in files:
        flat = {}
        for bundle in bundles:
            path = root / bundle / "configs" / file
            flat[bundle] = flatten(read_config(path)) if path.is_file() else {"<file>": "absent"}
        for config_id in sorted(set().union(*flat.values())):
            values = {b: flat[b].get(config_id, "<absent>") for b in bundles}
            if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1 and not _intended(file, config_id):
                found.append(f"{file}: {config_id}: {values}")
    return found


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_config_file_parses_as_yaml(bundle: str) -> None:
    configs = sorted((BUNDLES_DIR / bundle / "configs").glob("*.yaml"))
    assert len(configs) >= 6
    for path in configs:
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), path
    assert not list(BUNDLES_DIR.rglob("*.in")), "no templates: the bundle files are edited as they stand"


def test_bundles_agree_except_declared_differences() -> None:
    assert drift(BUNDLES_DIR) == []


def test_a_shared_id_changed_in_one_bundle_alone_is_named(tmp_path: Path) -> None:
    shutil.copytree(BUNDLES_DIR, tmp_path / "bundles", ignore=shutil.ignore_patterns("models", "eval", "logs"))
    train = tmp_path / "bundles" / "unet3d_nacl" / "configs" / "train.yaml"
    text = train.read_text(encoding="utf-8")
    assert text.count("overlap: 0.25") == 1 and text.count("num_bins: 15") == 1
    train.write_text(text.replace("num_bins: 15", "num_bins: 20"), encoding="utf-8")
    evaluate = tmp_path / "bundles" / "swinunetr_nacl" / "configs" / "evaluate.yaml"
    evaluate.write_text(evaluate.read_text(encoding="utf-8") + "extra_id: 1\n", encoding="utf-8")
    found = drift(tmp_path / "bundles")
    assert len(found) == 2, found
    assert found[0].startswith("evaluate.yaml: extra_id: {") and "'swinunetr_nacl': 1" in found[0]
    assert found[1] == "train.yaml: num_bins: {'unet2d_nacl': 15, 'unet3d_nacl': 20, 'swinunetr_nacl': 15}"
    # a declared difference (the schedule) is not drift
    train.write_text(text.replace("max_epochs: 10", "max_epochs: 11"), encoding="utf-8")
    assert drift(tmp_path / "bundles") == found[:1]


@pytest.mark.parametrize("bundle", BUNDLES)
def test_losses_equal_the_loss_registry(bundle: str) -> None:
    """The ``losses`` dictionary of every bundle is the registry's defaults (``create_calibration_loss``)."""
    losses = yaml.safe_load((BUNDLES_DIR / bundle / "configs" / "train.yaml").read_text(encoding="utf-8"))["losses"]
    assert list(losses) == list(LOSS_DEFAULTS)
    for name, (cls, defaults) in LOSS_DEFAULTS.items():
        entry = dict(losses[name])
        assert entry.pop("_target_").rsplit(".", 1)[1] == cls.__name__, name
        bound = {key: value for key, value in entry.items() if key not in defaults}
        assert {key: entry[key] for key in defaults} == dict(defaults), name
        assert all(value == f"@{key}" for key, value in bound.items()), f"{name}: {bound}"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_task_record_names_every_network_argument(bundle: str) -> None:
    """task.json records the network by every argument of ``network_def``, so an override reaches it."""
    train = yaml.safe_load((BUNDLES_DIR / bundle / "configs" / "train.yaml").read_text(encoding="utf-8"))
    arguments = [key for key in train["network_def"] if key != "_target_"]
    assert train["task"]["network_def"]["args"] == {key: f"@network_def#{key}" for key in arguments}
    assert train["task"]["network_def"]["target"] == "@network_def#_target_"
    assert train["task"]["bundle"] == bundle
