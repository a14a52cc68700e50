"""Which weights of a trained run are evaluated: the best-validation checkpoint, the final one, or both.

The bundles save ``<ckpt_dir>/model.pt``, the network of the epoch with the best validation mean Dice (MONAI's
``CheckpointSaver`` with the key metric), and ``<ckpt_dir>/checkpoint_last.pt`` after every epoch (the network beside
the optimizer, scheduler and trainer states, to resume). The NACL authors report the best-validation checkpoint; a
network memorising its training labels shows it at the final one. ``compare --checkpoint best|final|both`` evaluates
either or both: the final network is written as ``model.pt`` of a checkpoint folder of its own, with the ``task.json``
of the trained task describing it, so the bundle's evaluation and calibration find it as they find the best one,
through ``ckpt_dir``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from monai_nacl.bundle.task import TASK_FILE
from monai_nacl.handlers.resume import LAST_CHECKPOINT
from monai_nacl.utils import atomic_write, atomic_write_text, file_sha256

__all__ = ["BEST", "CHECKPOINTS", "CHECKPOINT_CHOICES", "FINAL", "MODEL_FILE", "write_final_model"]

BEST, FINAL = "best", "final"
CHECKPOINTS = (BEST, FINAL)
CHECKPOINT_CHOICES: dict[str, tuple[str, ...]] = {BEST: (BEST,), FINAL: (FINAL,), "both": CHECKPOINTS}
"""``--checkpoint``: the checkpoints each run is evaluated (and calibrated post hoc) with."""
MODEL_FILE = "model.pt"
"""The weights evaluate.yaml and calibrate.yaml load from ``ckpt_dir``."""


def write_final_model(ckpt_dir: Path, final_dir: Path) -> Path:
    """Write the network of ``<ckpt_dir>/checkpoint_last.pt`` as ``<final_dir>/model.pt``, with its ``task.json``.

    The weights are saved as the bundles' ``CheckpointSaver`` saves ``model.pt`` (the network's state dict). The
    ``task.json`` is the training's (``<ckpt_dir>/task.json``, when there is one) with ``model`` naming the new file,
    its sha256, the epoch and where it came from, and no calibration: what is fitted for the best weights does not
    hold for these.

    Returns:
        the path of the written ``model.pt``.

    Raises:
        FileNotFoundError: without ``checkpoint_last.pt`` (a bundle that saves no last checkpoint: use
            ``--checkpoint best``).
        ValueError: for a checkpoint that holds no ``network`` state dict, naming the keys it holds.
    """
    source = ckpt_dir / LAST_CHECKPOINT
    if not source.is_file():
        raise FileNotFoundError(
            f"no {LAST_CHECKPOINT} in {ckpt_dir}: the bundle saved no checkpoint of the last epoch, so the final "
            "weights cannot be evaluated; use --checkpoint best, or save it as the shipped bundles do "
            "(monai_nacl.handlers.LastCheckpointSaver)."
        )
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    network = checkpoint.get("network") if isinstance(checkpoint, Mapping) else None
    if not isinstance(network, Mapping):
        keys = sorted(checkpoint) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise ValueError(  # noqa: TRY004 - what a file holds, not the type of an argument
            f"{source} holds no 'network' state dict (it holds {keys}); the final weights are read from the "
            "'network' entry that the bundles' train#resume_state names."
        )
    model = atomic_write(final_dir / MODEL_FILE, lambda tmp: torch.save(dict(network), tmp))
    trained = ckpt_dir / TASK_FILE
    if trained.is_file():
        record = json.loads(trained.read_text(encoding="utf-8"))
        epoch = _epoch(checkpoint.get("trainer") or {})
        record["model"] = {"file": MODEL_FILE, "sha256": file_sha256(model), "source": LAST_CHECKPOINT, "epoch": epoch}
        record["calibration"] = None
        atomic_write_text(final_dir / TASK_FILE, json.dumps(record, indent=2) + "\n")
    return model


def _epoch(trainer: Mapping[str, int]) -> int | None:
    """The last completed epoch of an ignite ``Engine.state_dict()`` (``iteration`` / ``epoch_length``, or
    ``epoch``); None when neither is there."""
    if trainer.get("iteration") is not None and trainer.get("epoch_length"):
        return int(trainer["iteration"]) // int(trainer["epoch_length"])
    return None if trainer.get("epoch") is None else int(trainer["epoch"])
