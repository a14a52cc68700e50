"""Use a calibration loss in MONAI Auto3DSeg algorithms (segresnet, segresnet2d, swinunetr, dints).

Auto3DSeg's ``set_training_params`` cannot carry a nested loss definition, and segresnet builds its loss with a
parser that has no imports, so the loss is written as a component with a dotted ``_target_`` into an extra config
file in each generated algorithm's ``configs/``. ``BundleAlgo.train`` passes every ``configs/*.yaml`` to
``scripts/train.py`` in sorted order and ``ConfigParser.load_config_files`` merges them in that order (a key with
``#`` goes into the nested structure), so the file :data:`OVERRIDE_FILE`, sorted last, replaces the template's loss:
top-level ``loss`` for segresnet / swinunetr, ``training#loss`` for dints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monai_nacl.losses import LOSS_NAMES

__all__ = ["LOSS_KEYS", "OVERRIDE_FILE", "find_algorithms", "inject_loss", "loss_component"]

OVERRIDE_FILE = "zz_calibration_loss.yaml"
"""Name of the written file: ``zz_`` sorts it after the template's files, so its keys are merged last."""

LOSS_KEYS = {"segresnet": "loss", "segresnet2d": "loss", "swinunetr": "loss", "dints": "training#loss"}
"""Config id of the training loss in each Auto3DSeg algorithm template."""


def loss_component(loss: str | dict[str, Any]) -> dict[str, Any]:
    """The config component of ``loss``.

    Args:
        loss: a name of :data:`monai_nacl.losses.LOSS_NAMES` (built by ``monai_nacl.losses.create_calibration_loss``
            with its defaults) or a component dict with a dotted-path ``_target_`` (no ``imports`` are available
            where the templates parse it), e.g. ``{"_target_": "monai_nacl.losses.NeighborAwareLoss", "alpha": 0.1}``.
    """
    if isinstance(loss, str):
        if loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss name {loss!r}; use one of {sorted(LOSS_NAMES)} or a component dict.")
        return {"_target_": "monai_nacl.losses.create_calibration_loss", "name": loss}
    if isinstance(loss, dict):
        target = loss.get("_target_")
        if not isinstance(target, str) or "." not in target:
            raise ValueError(
                f"loss component needs a dotted-path `_target_` (got {target!r}), e.g. "
                "'monai_nacl.losses.NeighborAwareLoss': the Auto3DSeg templates parse it without imports."
            )
        return dict(loss)
    raise ValueError(f"loss must be a loss name or a component dict, got {type(loss).__name__}.")


def _template_of(algo_dir: Path) -> str:
    """Template name from a generated algorithm folder name such as ``segresnet_0`` or ``dints_2_fold1``."""
    name = algo_dir.name.lower()
    for template in sorted(LOSS_KEYS, key=len, reverse=True):
        if name.startswith(template):
            return template
    raise ValueError(
        f"cannot tell the Auto3DSeg template of {algo_dir} from its name; pass template= one of {sorted(LOSS_KEYS)}."
    )


def find_algorithms(path: str | Path) -> list[Path]:
    """Generated algorithm folders (holding ``configs/`` and ``scripts/``) at ``path`` or directly below it.

    Args:
        path: one algorithm folder, or an Auto3DSeg work dir holding ``<template>_<fold>`` folders.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; pass an Auto3DSeg work dir or a generated algorithm folder.")
    if (root / "configs").is_dir() and (root / "scripts").is_dir():
        return [root]
    algos = sorted(p for p in root.iterdir() if (p / "configs").is_dir() and (p / "scripts").is_dir())
    if not algos:
        raise ValueError(
            f"no generated algorithm (a folder with configs/ and scripts/) in {root}; run BundleGen first."
        )
    return algos


def inject_loss(path: str | Path, loss: str | dict[str, Any] = "nacl", template: str | None = None) -> list[Path]:
    """Write ``configs/`` :data:`OVERRIDE_FILE` with ``loss`` into each algorithm under ``path``; return the files.

    Args:
        path: an Auto3DSeg work dir (after ``BundleGen.generate``) or one generated algorithm folder.
        loss: a loss name of :data:`monai_nacl.losses.LOSS_NAMES` or a component dict (see :func:`loss_component`).
        template: the template of every algorithm (one of :data:`LOSS_KEYS`); ``None`` reads it from each folder
            name (``segresnet_0``, ``dints_1``, ...).
    """
    if template is not None and template not in LOSS_KEYS:
        raise ValueError(f"unknown Auto3DSeg template {template!r}; use one of {sorted(LOSS_KEYS)}.")
    component = loss_component(loss)
    written = []
    for algo in find_algorithms(path):
        key = LOSS_KEYS[template or _template_of(algo)]
        out = algo / "configs" / OVERRIDE_FILE
        out.write_text(yaml.safe_dump({key: component}, sort_keys=False))
        written.append(out)
    return written
