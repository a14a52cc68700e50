"""Resuming an interrupted bundle run: the last full checkpoint, written atomically every epoch, and what a
restart needs from it.

The bundles save ``checkpoint_last.pt`` = ``{network, optimizer, lr_scheduler, validation, trainer}`` at the end
of every training epoch with :class:`LastCheckpointSaver` and, with ``--resume true``, load it at the trainer's
start with :class:`ResumeCheckpointLoader`, MONAI's ``CheckpointLoader`` (which keeps the new ``max_epochs``).
Both are trainer handlers and add the trainer they are attached to under ``engine_key``: a config cannot name
``@train#trainer`` inside the trainer's own handler list. Ignite then continues from the epoch
after the saved one, so nothing finished is redone. :class:`BestMetricState` carries the validator's best key metric
across the restart, so the best-model checkpoint (``model.pt``) is only replaced by a better one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.engines import Workflow
from monai.handlers import CheckpointLoader, CheckpointSaver

from monai_nacl.utils import as_flag

__all__ = ["LAST_CHECKPOINT", "BestMetricState", "LastCheckpointSaver", "ResumeCheckpointLoader", "last_checkpoint"]

LAST_CHECKPOINT = "checkpoint_last.pt"


def last_checkpoint(ckpt_dir: str, resume: bool | str) -> str:
    """Path of the last full checkpoint in ``ckpt_dir``; with ``resume`` it must exist.

    Args:
        ckpt_dir: the bundle's checkpoint folder (``ckpt_dir``).
        resume: whether the run resumes from that checkpoint (``--resume true``; read with ``as_flag``).

    Raises:
        ValueError: ``resume`` is true and ``ckpt_dir/checkpoint_last.pt`` does not exist.
    """
    path = os.path.join(ckpt_dir, LAST_CHECKPOINT)
    if as_flag(resume, "resume") and not os.path.isfile(path):
        raise ValueError(
            f"--resume true, but there is no checkpoint to resume from: {path} does not exist. Pass the ckpt_dir of "
            "the interrupted run (--ckpt_dir DIR), or start afresh without --resume."
        )
    return path


class BestMetricState:
    """The validator's best key metric as a stateful object, so a full checkpoint can save and restore it.

    ``state_dict()`` holds ``best_metric`` and ``best_metric_epoch`` of the evaluator's state. ``load_state_dict``
    restores both and tells each key-metric ``CheckpointSaver`` of the evaluator that its file already holds a model
    scoring ``best_metric`` (MONAI's ``CheckpointSaver.load_state_dict``), so a resumed run replaces ``model.pt`` only
    with a better model, exactly as the uninterrupted run would.

    Args:
        evaluator: the validation workflow (``validate#evaluator``).
        savers: the evaluator's ``CheckpointSaver`` handlers with ``save_key_metric=True`` (none on ranks > 0).
        key_metric_filename: the fixed file name those savers write (``model.pt``).
    """

    def __init__(
        self, evaluator: Workflow, savers: Sequence[CheckpointSaver] = (), key_metric_filename: str = "model.pt"
    ):
        self.evaluator = evaluator
        self.savers = list(savers)
        self.key_metric_filename = key_metric_filename

    def state_dict(self) -> dict[str, float | int]:
        state = self.evaluator.state
        return {"best_metric": float(state.best_metric), "best_metric_epoch": int(state.best_metric_epoch)}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        missing = {"best_metric", "best_metric_epoch"} - set(state_dict)
        if missing:
            raise ValueError(f"validation state lacks {sorted(missing)}; got keys {sorted(state_dict)}.")
        best_metric, best_epoch = float(state_dict["best_metric"]), int(state_dict["best_metric_epoch"])
        self.evaluator.state.best_metric = best_metric
        self.evaluator.state.best_metric_epoch = best_epoch
        if best_epoch > 0:  # something was validated (and saved) before the interruption
            for saver in self.savers:
                saver.load_state_dict({"_saved": [(best_metric, self.key_metric_filename)]})


class LastCheckpointSaver:
    """Save ``{name: obj.state_dict()}`` to ``save_dir/filename`` at the end of every epoch, atomically.

    Ignite's ``DiskSaver(atomic=True)`` writes a temporary file in ``save_dir`` and renames it over the previous
    checkpoint, so a crash at any point leaves either the previous or the new complete file, never a truncated one.
    In a distributed run only rank 0 writes (``save_on_rank=0``). Wrapped networks (``DistributedDataParallel``,
    ``DataParallel``) are saved unwrapped, as MONAI's ``CheckpointSaver`` does, so the file loads in any setting.

    Args:
        save_dir: folder of the checkpoint, created if absent.
        save_dict: objects with ``state_dict()`` (network, optimizer, lr_scheduler, ...).
        filename: file name, ``checkpoint_last.pt`` by default.
        engine_key: key under which the engine this handler is attached to (the trainer: epoch, iteration) is saved.
    """

    def __init__(
        self, save_dir: str, save_dict: Mapping[str, Any], filename: str = LAST_CHECKPOINT, engine_key: str = "trainer"
    ):
        if not save_dict:
            raise ValueError(
                "save_dict is empty: give the objects to checkpoint, e.g. {'network': ..., 'trainer': ...}."
            )
        bad = [k for k, v in save_dict.items() if not callable(getattr(v, "state_dict", None))]
        if bad:
            raise ValueError(
                f"save_dict entries {bad} have no state_dict() method; only stateful objects can be saved."
            )
        self.save_dict = dict(save_dict)
        self.filename = filename
        self.engine_key = engine_key
        self.disk_saver = DiskSaver(save_dir, atomic=True, create_dir=True, require_empty=False)

    def attach(self, engine: Engine) -> None:
        self.save_dict[self.engine_key] = engine
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        checkpoint = {}
        for name, obj in self.save_dict.items():
            if isinstance(obj, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
                obj = obj.module
            checkpoint[name] = obj.state_dict()
        self.disk_saver(checkpoint, self.filename)


class ResumeCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` that also restores the engine it is attached to from ``checkpoint[engine_key]``.

    Loading happens at the trainer's ``STARTED`` event: the trainer's epoch and iteration come back, ``max_epochs``
    stays the new run's, and Ignite continues with the next epoch.

    Args:
        load_path: the checkpoint, e.g. from :func:`last_checkpoint`.
        load_dict: objects to restore (network, optimizer, lr_scheduler, ...), by the keys they were saved under.
        engine_key: key of the engine's state in the checkpoint (as in :class:`LastCheckpointSaver`).
        enabled: load only when true (``--resume true``; read with ``as_flag``); when false, ``attach`` attaches
            nothing.
        kwargs: other ``CheckpointLoader`` arguments (``map_location``, ``strict``, ...).
    """

    def __init__(
        self,
        load_path: str,
        load_dict: Mapping[str, Any],
        engine_key: str = "trainer",
        enabled: bool | str = True,
        **kwargs: Any,
    ):
        super().__init__(load_path=load_path, load_dict=dict(load_dict), **kwargs)
        self.engine_key = engine_key
        self.enabled = as_flag(enabled, "resume")

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        self.load_dict[self.engine_key] = engine
        super().attach(engine)
