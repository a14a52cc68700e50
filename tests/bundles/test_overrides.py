"""A misspelled ``monai.bundle run`` override is refused with the closest ids, on the shipped bundles' configs."""

from __future__ import annotations

import json

import pytest

from monai_nacl.bundle import BUNDLES_DIR, shipped_bundle_names
from monai_nacl.bundle.overrides import UnknownOverride, refuse_unknown_overrides, unknown_overrides

RUNNER = "/venv/lib/python3.11/site-packages/monai/bundle/__main__.py"


def _configs(bundle: str, *names: str) -> str:
    return str([str(BUNDLES_DIR / bundle / "configs" / name) for name in names])


@pytest.mark.parametrize("bundle", shipped_bundle_names())
def test_a_typo_is_refused_with_the_closest_ids(bundle: str) -> None:
    argv = [RUNNER, "run", "--config_file", _configs(bundle, "train.yaml"), "--max_epoch", "1", "--amp", "false"]
    with pytest.raises(UnknownOverride) as refused:
        refuse_unknown_overrides(argv)
    assert refused.value.unknown == {"max_epoch": ["max_epochs"]}
    message = str(refused.value)
    assert "--max_epoch: did you mean --max_epochs?" in message and "fix: correct the spelling" in message


@pytest.mark.parametrize("bundle", shipped_bundle_names())
def test_existing_ids_and_component_arguments_pass(bundle: str) -> None:
    argv = [
        RUNNER,
        "run",
        "training",  # a positional run_id
        "--config_file",
        _configs(bundle, "train.yaml", "evaluate.yaml"),
        "--meta_file",
        str(BUNDLES_DIR / bundle / "configs" / "metadata.json"),
        "--max_epochs=2",
        "--train#trainer#max_epochs",
        "3",
        "--network_def#dropout",  # a new argument of a component: MONAI passes it to the constructor
        "0.1",
        "--losses::nacl::kernel_size",
        "5",
        "--logging_file",
        "configs/logging.conf",
    ]
    refuse_unknown_overrides(argv)


def test_overrides_in_an_args_file_are_checked(tmp_path) -> None:
    args = tmp_path / "args.json"
    config_file = str(BUNDLES_DIR / "unet2d_nacl" / "configs" / "train.yaml")
    args.write_text(json.dumps({"config_file": config_file, "learning_rat": 0.01}))
    with pytest.raises(UnknownOverride, match="--learning_rat: did you mean --learning_rate"):
        refuse_unknown_overrides([RUNNER, "run", "--args_file", str(args)])


def test_other_programs_are_left_alone() -> None:
    # MONAI Label, Auto3DSeg or pytest: sys.argv is not the bundle runner's, nothing is checked
    refuse_unknown_overrides(["/usr/bin/monailabel", "run", "--config_file", "x.yaml", "--max_epoch", "1"])
    refuse_unknown_overrides(["pytest", "-q"])


def test_unknown_ids_without_a_close_one() -> None:
    config = {"max_epochs": 10, "net": {"_target_": "UNet", "channels": [1, 2]}, "plain": {"a": 1}}
    assert unknown_overrides(config, ["zzz", "net#channels#1", "net#new_arg", "plain#b", "net#channels#5"]) == {
        "zzz": [],
        "plain#b": ["plain#a"],
        "net#channels#5": ["net#channels#1", "net#channels#0"],
    }
