"""MONAI Label's view of a bundle's classes: ``configs/metadata.json``, kept to the trained model's ``task.json``.

MONAI Label's ``BundleInferTask`` takes the label names and their count from
``network_data_format.outputs.pred.channel_def`` of the bundle's ``metadata.json`` (channel ``background`` is not
shown), read once when the app starts; it never reads ``task.json``. A model trained on other classes would be shown
with the shipped names, and with a wrong count when ``num_classes`` differs. :func:`sync_channel_def` rewrites that
``channel_def`` (and ``num_channels``) to the classes of the model the bundle serves, ``<bundle_root>/models``;
training calls it when it ends (``finalize``), and building ``inference.yaml``'s ``network_def`` calls it first, which
MONAI Label does before it reads ``metadata.json``, so that a model put into ``models/`` by hand is named right too.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from monai.config import PathLike

from monai_nacl.bundle.task import TASK_FILE
from monai_nacl.utils import atomic_write_text

__all__ = ["channel_def_of", "sync_channel_def"]

logger = logging.getLogger("monai_nacl")


def channel_def_of(class_names: list[str], shipped: dict[str, str] | None = None) -> dict[str, str]:
    """``{"0": "background", "1": <name of class 1>, ...}`` for MONAI Label.

    Channel 0 keeps its shipped name (MONAI Label hides the channel called ``background``); a shipped name whose
    column-safe form is the trained name (``grey matter`` for ``grey_matter``) is kept as written.
    """
    from monai_nacl.data.datalist import column_safe

    shipped = shipped or {}
    channel_def = {"0": str(shipped.get("0", "background"))}
    for k, name in enumerate(class_names[1:], start=1):
        old = shipped.get(str(k))
        channel_def[str(k)] = str(old) if old is not None and column_safe(str(old)) == name else name
    return channel_def


def sync_channel_def(bundle_root: PathLike, ckpt_dir: PathLike) -> Path | None:
    """Write the classes of ``<ckpt_dir>/task.json`` into ``<bundle_root>/configs/metadata.json`` for MONAI Label.

    Only for the model the bundle serves (``ckpt_dir`` is ``<bundle_root>/models``, where MONAI Label loads
    ``model.pt``) and only when the names or their count differ; every other field of ``metadata.json`` is kept and the
    file is replaced atomically.

    Args:
        bundle_root: the bundle's folder.
        ckpt_dir: the folder of the model and its ``task.json``.

    Returns:
        the path of ``metadata.json`` when it was rewritten, else None.
    """
    bundle_root, ckpt_dir = Path(bundle_root), Path(ckpt_dir)
    task_file, metadata_file = ckpt_dir / TASK_FILE, bundle_root / "configs" / "metadata.json"
    if ckpt_dir.resolve() != (bundle_root / "models").resolve() or not task_file.is_file():
        return None
    if not metadata_file.is_file():
        return None
    class_names = json.loads(task_file.read_text(encoding="utf-8")).get("class_names")
    if not class_names:
        return None
    metadata: dict[str, Any] = json.loads(metadata_file.read_text(encoding="utf-8"))
    outputs = metadata.get("network_data_format", {}).get("outputs", {})
    if not outputs:
        return None
    pred = next(iter(outputs.values()))
    channel_def = channel_def_of(list(class_names), pred.get("channel_def"))
    if pred.get("channel_def") == channel_def and pred.get("num_channels") == len(channel_def):
        return None
    logger.info(
        "%s: channel_def %s -> %s (the classes of %s, what MONAI Label shows)",
        os.fspath(metadata_file),
        pred.get("channel_def"),
        channel_def,
        os.fspath(task_file),
    )
    pred["channel_def"] = channel_def
    pred["num_channels"] = len(channel_def)
    return atomic_write_text(metadata_file, json.dumps(metadata, indent=4) + "\n")
