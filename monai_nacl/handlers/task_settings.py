"""Write the model's task (``task.json``, see :mod:`monai_nacl.bundle.task`) beside its weights during training."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from monai.config import PathLike

from monai_nacl.bundle.task import TASK_FILE, TrainedTask, task_record
from monai_nacl.utils import as_flag, atomic_write_text, file_sha256

__all__ = ["TaskSettingsWriter"]


class TaskSettingsWriter:
    """Write ``<ckpt_dir>/task.json`` each time ``model.pt`` has been written (attach it to the validator, after
    its ``CheckpointSaver``): the file always describes the weights beside it, and an earlier run's calibration is
    not claimed for new weights (``calibration`` is reset to null, and ``calibration.json`` refuses a model whose
    hash it was not fitted on).

    With ``resume``, a ``task.json`` already there that contradicts this run (another ``num_classes``, spacing,
    network or intensity handling) stops the run before it trains on top of a checkpoint of another task.

    Args:
        task: the bundle's ``task`` settings (see :func:`task_record`).
        ckpt_dir: the folder of ``model.pt``.
        model_file: the weights' file name in ``ckpt_dir``.
        resume: whether this run resumes ``ckpt_dir``'s last checkpoint.
    """

    def __init__(
        self, task: Mapping[str, Any], ckpt_dir: PathLike, model_file: str = "model.pt", resume: bool | str = False
    ) -> None:
        self.record = task_record(task)
        self.ckpt_dir = Path(ckpt_dir)
        self.model_file = model_file
        self.resume = as_flag(resume, "resume")
        self._seen: tuple[int, int] | None = None

    def attach(self, engine: Engine) -> None:
        """Check a resumed run's task, then write after every validation round that saved the model."""
        if self.resume and (self.ckpt_dir / TASK_FILE).is_file():
            TrainedTask(self.ckpt_dir).require_same(self.record, "the resumed checkpoint's")
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine | None = None) -> Path | None:
        """Write ``task.json`` if ``model.pt`` changed since the last call; returns its path when written."""
        model = self.ckpt_dir / self.model_file
        if not model.is_file():
            return None
        stat = model.stat()
        if self._seen == (stat.st_mtime_ns, stat.st_size):
            return None
        self._seen = (stat.st_mtime_ns, stat.st_size)
        record = {**self.record, "model": {"file": self.model_file, "sha256": file_sha256(model)}}
        return atomic_write_text(self.ckpt_dir / TASK_FILE, json.dumps(record, indent=2) + "\n")
