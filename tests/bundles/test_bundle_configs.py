"""Fast checks of the three bundles' configs: layout, shared conventions, every loss_name, inference ids."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from bundle_helpers import BUNDLES, BUNDLES_DIR, config_path, read_json
from monai.bundle import ConfigParser

from monai_nacl.losses import LOSS_NAMES

REQUIRED_FILES = (
    "configs/metadata.json",
    "configs/train.yaml",
    "configs/evaluate.yaml",
    "configs/inference.yaml",
    "configs/multi_gpu_train.yaml",
    "configs/multi_gpu_evaluate.yaml",
    "configs/logging.conf",
    "docs/README.md",
    "docs/data_license.txt",
    "LICENSE",
)
COMMON_IDS = (
    "bundle_root", "dataset_dir", "datalist", "output_dir", "num_classes", "max_epochs", "val_interval",
    "loss_name", "device", "amp", "seed", "check_data", "cache_rate", "pixdim", "roi_size",
    "network_def", "network", "losses", "loss", "optimizer", "lr_scheduler", "initialize", "run", "finalize",
)  # fmt: skip
ENGINE_IDS = {
    "train": ("preprocessing", "dataset", "dataloader", "inferer", "postprocessing", "handlers", "key_metric", "trainer"),
    "validate": (
        "preprocessing", "dataset", "dataloader", "inferer", "postprocessing", "handlers", "key_metric", "evaluator",
    ),
}  # fmt: skip
INFERENCE_IDS = ("bundle_root", "device", "network_def", "preprocessing", "postprocessing", "inferer", "evaluator")


def load(bundle: str, *names: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([config_path(bundle, n) for n in names])
    return parser


@pytest.mark.parametrize("bundle", BUNDLES)
def test_layout_and_metadata(bundle: str) -> None:
    root = BUNDLES_DIR / bundle
    missing = [f for f in REQUIRED_FILES if not (root / f).is_file()]
    assert not missing, f"{bundle} lacks {missing}"
    meta = read_json(root / "configs" / "metadata.json")
    assert meta["name"] == bundle
    outputs = meta["network_data_format"]["outputs"]["pred"]
    # num_classes: the datalist's labels count (the default dataset names 3), else 3
    assert outputs["num_channels"] == 3 == len(outputs["channel_def"])
    assert load(bundle, "train.yaml")["num_classes"].endswith("(@train#dataset#data, default=3)")


@pytest.mark.parametrize("bundle", BUNDLES)
def test_model_zoo_ids(bundle: str) -> None:
    train = load(bundle, "train.yaml")
    for key in COMMON_IDS:
        assert key in train, f"{bundle}/train.yaml lacks '{key}'"
    for engine, ids in ENGINE_IDS.items():
        for key in ids:
            assert f"{engine}#{key}" in train, f"{bundle}/train.yaml lacks '{engine}#{key}'"
    inference = load(bundle, "inference.yaml")
    for key in INFERENCE_IDS:
        assert key in inference, f"{bundle}/inference.yaml lacks '{key}'"


def test_bundles_share_conventions() -> None:
    """Same top-level ids, same loss dictionary and same skipping of unusable inference inputs in every bundle (every
    other shared id: test_bundle_consistency.py)."""
    first = load(BUNDLES[0], "train.yaml")
    for bundle in BUNDLES[1:]:
        other = load(bundle, "train.yaml")
        assert set(first.get()) ^ set(other.get()) <= {"feature_size"}
        assert other["losses"] == first["losses"]
        assert other["train#handlers"] == first["train#handlers"]
        assert other["validate#handlers"] == first["validate#handlers"]
        inference, first_inference = load(bundle, "inference.yaml"), load(BUNDLES[0], "inference.yaml")
        for key in ("check_data", "skipped_cases", "dataset", "finalize"):  # unusable inputs are skipped alike
            assert inference[key] == first_inference[key], f"{bundle}/inference.yaml: {key} differs"
    assert sorted(first["losses"]) == sorted(LOSS_NAMES)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_matches_training(bundle: str) -> None:
    train, inference, evaluate = (
        load(bundle, *n) for n in (["train.yaml"], ["inference.yaml"], ["train.yaml", "evaluate.yaml"])
    )
    assert inference["inferer"] == train["validate#inferer"]
    # inference's network_def builds the trained network (task.json); without one, the config's: the training's
    # class and arguments, the channels from the trained task instead of a count of the training data
    trained_args = {k: v for k, v in train["network_def"].items() if k not in ("_target_", "in_channels")}
    inference_args = {
        k: v for k, v in inference["network_def"].items() if k not in ("_target_", "_requires_", "trained_task")
    }
    assert inference["network_def"]["_target_"] == "monai_nacl.bundle.task.trained_network"
    assert inference_args.pop("network") == train["network_def"]["_target_"]
    assert inference_args.pop("in_channels") == "$@trained_task.in_channels or 1"
    assert inference_args == trained_args
    # the task comes from task.json; without one, from the same defaults as training's
    for key in ("num_classes", "pixdim", "roi_size"):
        assert inference[key] == evaluate[key] == f"$@trained_task.{key}"
    for key in ("pixdim", "roi_size"):
        assert inference["trained_task#defaults"][key] == evaluate["trained_task#defaults"][key] == train[key], key
    assert inference["trained_task#defaults"]["num_classes"] == evaluate["trained_task#defaults"]["num_classes"] == 3
    assert "default=3" in train["num_classes"]
    train_chain = [t["_target_"] for t in train["train#load_transforms"]]
    assert [t["_target_"] for t in inference["load_transforms"]] == train_chain
    # one intensity setting, the same function and default in both
    assert inference["intensity"] == train["intensity"] == "mr"
    assert inference["intensity_window"] == train["intensity_window"] is None
    assert "monai_nacl.transforms.intensity_transforms(@intensity" in inference["intensity_transforms"]
    assert "monai_nacl.transforms.intensity_transforms(@intensity" in train["train#intensity_transforms"]


def _loss(bundle: str, loss_name: str, **overrides: object) -> torch.nn.Module:
    parser = load(bundle, "train.yaml")
    parser["loss_name"] = loss_name
    for key, value in overrides.items():
        parser[key] = value
    return parser.get_parsed_content("loss")


@pytest.mark.parametrize("loss_name", LOSS_NAMES)
@pytest.mark.parametrize("bundle,shape", [("unet2d_nacl", (2, 3, 8, 8)), ("unet3d_nacl", (1, 3, 6, 6, 6))])
def test_every_loss_name_runs(bundle: str, shape: tuple[int, ...], loss_name: str) -> None:
    torch.manual_seed(0)
    logits = torch.randn(shape, requires_grad=True)
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:])).float()
    value = _loss(bundle, loss_name)(logits, labels)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_ce_and_alpha_override_reach_the_loss() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 8, 8)
    labels = torch.randint(0, 3, (2, 1, 8, 8))
    reference_ce = F.cross_entropy(logits, labels[:, 0])
    torch.testing.assert_close(_loss("unet2d_nacl", "ce")(logits, labels.float()), reference_ce)
    # NACL is CE + alpha * penalty, linear in alpha: L(0.2) - L(0.1) = L(0.1) - L(0) = L(0.1) - CE.
    nacl = {a: _loss("unet2d_nacl", "nacl", **{"losses#nacl#alpha": a})(logits, labels.float()) for a in (0.1, 0.2)}
    assert float(nacl[0.1] - reference_ce) > 0
    torch.testing.assert_close(nacl[0.2] - nacl[0.1], nacl[0.1] - reference_ce)


def test_unknown_loss_name_is_a_readable_error() -> None:
    with pytest.raises(Exception) as info:
        _loss("unet2d_nacl", "nalc")
    message = "".join(str(e) for e in (info.value, info.value.__cause__) if e is not None)
    assert "unknown loss_name 'nalc'" in message and "nacl" in message


def test_multi_gpu_fragment_wires_distributed_parts() -> None:
    merged = load("unet2d_nacl", "train.yaml", "multi_gpu_train.yaml")
    assert merged["network#_target_"] == "torch.nn.parallel.DistributedDataParallel"
    assert merged["train#dataloader#sampler"] == "@train#sampler"
    assert merged["validate#dataloader#sampler"] == "@validate#sampler"
    assert merged["train#dataloader#shuffle"] is False
    assert any("gloo" in line and "nccl" in line for line in merged["initialize"])
    # the handlers disabled on ranks > 0 are the writers, chosen by what they are; those that gather or all-reduce
    # across ranks (reliability diagram, CRaC multipliers) run on every rank, so no collective is left waiting
    writers = {"StatsHandler", "TensorBoardStatsHandler", "CheckpointSaver", "monai_nacl.handlers.TaskSettingsWriter"}
    for key in ("train#handlers", "validate#handlers"):
        for handler in merged[key]:
            rank_zero_only = handler.get("_disabled_") == "$not @rank_zero"
            assert rank_zero_only == (handler["_target_"] in writers), (key, handler["_target_"])


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("value,expected", [("false", False), ("True", True), (False, False)])
def test_amp_flag_from_the_command_line(bundle: str, value: object, expected: bool) -> None:
    """``--amp false`` reaches the config as the string "false"; the engines must still see ``False``."""
    train = load(bundle, "train.yaml")
    train["amp"] = value
    assert train.get_parsed_content("train#trainer#amp", instantiate=False) is expected
    assert train.get_parsed_content("validate#evaluator#amp", instantiate=False) is expected
    inference = load(bundle, "inference.yaml")
    inference["amp"] = value
    assert inference.get_parsed_content("evaluator#amp", instantiate=False) is expected
