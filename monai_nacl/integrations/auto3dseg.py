"""Use a calibration loss in MONAI Auto3DSeg algorithms (segresnet, segresnet2d, swinunetr, dints).

Auto3DSeg's ``set_training_params`` cannot carry a nested loss definition, and segresnet builds its loss with a
parser that has no imports, so the loss is written as a component with a dotted ``_target_`` into an extra config
file in each generated algorithm's ``configs/``. ``BundleAlgo.train`` passes every ``configs/*.yaml`` to
``scripts/train.py`` in sorted order and ``ConfigParser.load_config_files`` merges them in that order (a key with
``#`` goes into the nested structure), so the file :data:`OVERRIDE_FILE`, sorted last, replaces the template's loss:
top-level ``loss`` for segresnet / swinunetr, ``training#loss`` for dints (and for swinunetr templates of older
MONAI releases). The entry is looked up in each algorithm's own configs, so a template version that moved it is
still served.

Typical use, between AutoRunner's generation and training (its cache keeps the generated folders)::

    AutoRunner(work_dir, input=task, train=False, ensemble=False).run()  # analysis and generation
    inject_loss(work_dir, "nacl")
    AutoRunner(work_dir, input=task).run()  # trains the generated algorithms with the injected loss
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from monai.bundle import ConfigParser

from monai_nacl.losses import LOSS_NAMES
from monai_nacl.utils import atomic_write_text

__all__ = ["LOSS_KEYS", "OVERRIDE_FILE", "find_algorithms", "inject_loss", "loss_component", "loss_key"]

OVERRIDE_FILE = "zz_calibration_loss.yaml"
"""Name of the written file: ``zz_`` sorts it after the template's files, so its keys are merged last."""

LOSS_KEYS = {"segresnet": "loss", "segresnet2d": "loss", "swinunetr": "loss", "dints": "training#loss"}
"""Config id of the training loss in each Auto3DSeg algorithm template (MONAI 1.6's templates)."""


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


def _template_configs(algo_dir: Path) -> ConfigParser:
    """The algorithm's configs merged as ``BundleAlgo.train`` passes them, :data:`OVERRIDE_FILE` left out."""
    files = sorted(
        str(p) for p in (algo_dir / "configs").iterdir() if p.suffix in (".yaml", ".json") and p.name != OVERRIDE_FILE
    )
    return ConfigParser(ConfigParser.load_config_files(files) if files else {})


def _check_softmax(algo_dir: Path) -> None:
    """The losses here are softmax losses over exclusive classes; a template set to sigmoid outputs trains
    overlapping binary channels, whose targets they would take as (unnormalised) class distributions."""
    merged = _template_configs(algo_dir)
    if merged.get("sigmoid") is True or merged.get("training#softmax") is False:
        raise ValueError(
            f"{algo_dir} is set to sigmoid outputs (overlapping labels); the monai_nacl losses are softmax losses "
            "over exclusive classes. Generate the algorithms with sigmoid false (the default) to use them."
        )


def loss_key(algo_dir: str | Path, template: str | None = None) -> str:
    """Config id of the training loss of a generated algorithm.

    The id its configs define (``loss`` or ``training#loss``, the configs merged as ``BundleAlgo.train`` merges
    them, :data:`OVERRIDE_FILE` left out); when they define both or neither, the id of :data:`LOSS_KEYS` for the
    template named by ``template`` or by the folder name (``segresnet_0``, ``dints_2``, ...).
    """
    algo_dir = Path(algo_dir)
    if template is not None:
        if template not in LOSS_KEYS:
            raise ValueError(f"unknown Auto3DSeg template {template!r}; use one of {sorted(LOSS_KEYS)}.")
        return LOSS_KEYS[template]
    merged = _template_configs(algo_dir)
    defined = [key for key in ("loss", "training#loss") if key in merged]
    if len(defined) == 1:
        return defined[0]
    name = algo_dir.name.lower()
    for known in sorted(LOSS_KEYS, key=len, reverse=True):
        if name.startswith(known):
            return LOSS_KEYS[known]
    raise ValueError(
        f"cannot tell the Auto3DSeg template of {algo_dir}: its configs define {' and '.join(defined) or 'neither'} "
        f"of `loss`, `training#loss`, and its name starts with none of {sorted(LOSS_KEYS)}; pass template=."
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
        path: an Auto3DSeg work dir (after ``BundleGen.generate`` or ``AutoRunner(..., train=False).run()``) or one
            generated algorithm folder.
        loss: a loss name of :data:`monai_nacl.losses.LOSS_NAMES` or a component dict (see :func:`loss_component`).
        template: the template of every algorithm (one of :data:`LOSS_KEYS`), which fixes the loss entry;
            ``None`` finds the entry in each algorithm's configs (see :func:`loss_key`).
    """
    component = loss_component(loss)
    keys = {}
    for algo in find_algorithms(path):  # every algorithm checked before any file is written
        _check_softmax(algo)
        keys[algo] = loss_key(algo, template)
    written = []
    for algo, key in keys.items():
        out = algo / "configs" / OVERRIDE_FILE
        atomic_write_text(out, yaml.safe_dump({key: component}, sort_keys=False))
        written.append(out)
    return written
