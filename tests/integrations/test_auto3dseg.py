"""`inject_loss` puts a calibration loss into generated Auto3DSeg algorithms, merged as BundleAlgo merges configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from monai.apps.auto3dseg import BundleAlgo
from monai.bundle import ConfigParser

from monai_nacl.integrations.auto3dseg import OVERRIDE_FILE, inject_loss, loss_key
from monai_nacl.losses import NeighborAwareLoss, create_calibration_loss

HYPER = {
    "segresnet": {"num_epochs": 2, "loss": {"_target_": "monai.losses.DiceCELoss", "to_onehot_y": True}},
    "dints": {"training": {"num_epochs": 2, "learning_rate": 0.2, "loss": {"_target_": "DiceFocalLoss"}}},
}


def _algorithm(algo: Path, hyper: dict) -> None:
    """A folder laid out as ``BundleGen.generate`` writes one: ``<template>_<fold>/{configs,scripts}``."""
    (algo / "scripts").mkdir(parents=True)
    (algo / "scripts" / "train.py").write_text("")
    (algo / "configs").mkdir()
    (algo / "configs" / "hyper_parameters.yaml").write_text(yaml.safe_dump(hyper))
    (algo / "configs" / "network.yaml").write_text(yaml.safe_dump({"network": {"_target_": "torch.nn.Identity"}}))


def _generated_like(work_dir: Path) -> None:
    for template, hyper in HYPER.items():
        _algorithm(work_dir / f"{template}_0", hyper)


def _merged_as_bundle_algo(algo: Path) -> tuple[dict, list[str]]:
    """The config files BundleAlgo passes to scripts/train.py, and their merge as the templates' train.py does."""
    bundle_algo = BundleAlgo(str(algo))
    bundle_algo.output_path = str(algo)
    cmd, _ = bundle_algo._create_cmd()
    files = sorted(str(p.as_posix()) for p in (algo / "configs").glob("*.yaml"))
    assert all(f in cmd for f in files), f"BundleAlgo does not pass every config file: {cmd}"
    return ConfigParser.load_config_files(files), files


def test_inject_nacl_by_name(tmp_path: Path) -> None:
    _generated_like(tmp_path)
    written = inject_loss(tmp_path, "nacl")
    assert [p.parent.parent.name for p in written] == ["dints_0", "segresnet_0"]
    assert all(p.name == OVERRIDE_FILE for p in written)

    seg, files = _merged_as_bundle_algo(tmp_path / "segresnet_0")
    assert files[-1].endswith(OVERRIDE_FILE)
    assert seg["num_epochs"] == 2 and seg["network"]["_target_"] == "torch.nn.Identity"
    loss = ConfigParser(seg).get_parsed_content("loss")  # no imports, as in segresnet's parser
    assert type(loss) is type(create_calibration_loss("nacl"))

    dints, _ = _merged_as_bundle_algo(tmp_path / "dints_0")
    assert dints["training"]["learning_rate"] == 0.2 and dints["training"]["num_epochs"] == 2
    loss = ConfigParser(dints).get_parsed_content("training#loss")
    assert type(loss) is type(create_calibration_loss("nacl"))
    # the built loss runs on Auto3DSeg-shaped data: logits (B, C, *spatial), float labels (B, 1, *spatial)
    logits = torch.randn(1, 3, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 3, (1, 1, 8, 8, 8), generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(loss(logits, labels.float()))  # Auto3DSeg loads labels as float


def test_inject_component_dict_into_one_algo(tmp_path: Path) -> None:
    _generated_like(tmp_path)
    component = {"_target_": "monai_nacl.losses.NeighborAwareLoss", "alpha": 0.05}
    inject_loss(tmp_path / "segresnet_0", component)
    assert not (tmp_path / "dints_0" / "configs" / OVERRIDE_FILE).exists()
    merged, _ = _merged_as_bundle_algo(tmp_path / "segresnet_0")
    loss = ConfigParser(merged).get_parsed_content("loss")
    assert isinstance(loss, NeighborAwareLoss)
    assert merged["loss"]["alpha"] == 0.05


def test_loss_entry_is_found_in_the_configs(tmp_path: Path) -> None:
    """Where the algorithm's configs hold the loss wins over its name: swinunetr templates of older MONAI releases
    hold ``training#loss``; a custom template, whatever its name, is served too."""
    _algorithm(tmp_path / "swinunetr_0", {"training": {"loss": {"_target_": "DiceFocalLoss"}, "num_epochs": 2}})
    _algorithm(tmp_path / "mynet_0", {"loss": {"_target_": "DiceLoss"}})
    assert [loss_key(tmp_path / a) for a in ("swinunetr_0", "mynet_0")] == ["training#loss", "loss"]
    inject_loss(tmp_path, "nacl")

    swin, _ = _merged_as_bundle_algo(tmp_path / "swinunetr_0")
    assert "loss" not in swin and swin["training"]["num_epochs"] == 2
    assert isinstance(ConfigParser(swin).get_parsed_content("training#loss"), NeighborAwareLoss)
    mynet, _ = _merged_as_bundle_algo(tmp_path / "mynet_0")
    assert isinstance(ConfigParser(mynet).get_parsed_content("loss"), NeighborAwareLoss)
    # template= fixes the entry whatever the configs hold
    (written,) = inject_loss(tmp_path / "swinunetr_0", "nacl", template="swinunetr")
    assert list(yaml.safe_load(written.read_text())) == ["loss"]
    # the injected file is left out when looking for the entry (read, it would add `loss` beside `training#loss`)
    assert loss_key(tmp_path / "swinunetr_0") == "training#loss"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "nope"}, "unknown loss name"),
        ({"loss": {"_target_": "NeighborAwareLoss"}}, "dotted-path"),
        ({"loss": "nacl", "template": "unet"}, "unknown Auto3DSeg template"),
    ],
)
def test_bad_input(tmp_path: Path, kwargs: dict, match: str) -> None:
    _generated_like(tmp_path)
    with pytest.raises(ValueError, match=match):
        inject_loss(tmp_path, **kwargs)


@pytest.mark.parametrize(
    ("name", "hyper"),
    [
        ("segresnet_0", {"sigmoid": True, "loss": {"_target_": "DiceCELoss"}}),
        ("dints_0", {"training": {"softmax": False, "loss": {"_target_": "DiceFocalLoss"}}}),
    ],
)
def test_sigmoid_algorithms_are_refused(tmp_path: Path, name: str, hyper: dict) -> None:
    """Overlapping binary channels are no class distribution: nothing is written, and the user is told why."""
    _generated_like(tmp_path)
    (tmp_path / name / "configs" / "hyper_parameters.yaml").write_text(yaml.safe_dump(hyper))
    with pytest.raises(ValueError, match="sigmoid outputs"):
        inject_loss(tmp_path)
    assert not list(tmp_path.glob(f"*/configs/{OVERRIDE_FILE}"))


def test_no_algorithms(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no generated algorithm"):
        inject_loss(tmp_path)
    (tmp_path / "mystery_0" / "configs").mkdir(parents=True)
    (tmp_path / "mystery_0" / "scripts").mkdir()
    with pytest.raises(ValueError, match="cannot tell the Auto3DSeg template"):
        inject_loss(tmp_path)
