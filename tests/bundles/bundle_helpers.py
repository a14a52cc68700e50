"""Helpers of the bundle tests: paths, and running a bundle in-process as `python -m monai.bundle run` would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUNDLES_DIR = REPO / "bundles"
BUNDLES = ("unet2d_nacl", "unet3d_nacl", "swinunetr_nacl")
LOSS_NAMES = ("ce", "dice_ce", "focal", "ls", "ecp", "svls", "mbls", "nacl", "dice_nacl")


def config_path(bundle: str, name: str) -> str:
    return str(BUNDLES_DIR / bundle / "configs" / name)


def run_bundle(bundle: str, configs: list[str], **overrides: Any) -> None:
    """``monai.bundle.run`` with the bundle's configs merged in order and ``--id value`` overrides."""
    from monai.bundle import run

    run(
        config_file=[config_path(bundle, c) for c in configs],
        meta_file=config_path(bundle, "metadata.json"),
        logging_file=False,  # the bundle's logging.conf would reconfigure pytest's loggers
        **overrides,
    )


def split_list(datalist: str | Path, split: str, count: int) -> str:
    """Override expression: the first ``count`` items of the datalist's ``split`` list."""
    return f"$monai.data.load_decathlon_datalist(@datalist, True, '{split}', @dataset_dir)[:{count}]"


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
