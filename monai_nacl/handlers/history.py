"""Per-epoch training history (training loss and metrics beside the validation metrics) written as one CSV."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from ignite.engine import Events

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["TrainingHistoryHandler"]


def _as_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().mean().item() if value.numel() else math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class TrainingHistoryHandler:
    """Writes ``history.csv``: one row per training epoch with the mean training loss, the trainer's metrics of the
    epoch (e.g. ``train_nll``) and, on epochs where the validator ran, its metrics (e.g. ``val_nll``, ``val_ece``, and
    with CRaC the ``lagrange_<region>_<class>`` and ``penalty_rho_<region>_<class>`` that
    :class:`~monai_nacl.handlers.LagrangeMultiplierHandler` writes after each update).

    The training NLL falling while the validation NLL rises is how over-fitting, the cause of a CE-trained network's
    over-confidence, shows. Attach it to the trainer after the ``ValidationHandler`` (same event, registered later,
    so the validation of the epoch is complete). The file is rewritten atomically after every epoch; on resume the
    rows of earlier epochs already in the file are kept.

    Args:
        validator: the evaluator run by the ``ValidationHandler`` (``@validate#evaluator``).
        output_dir: folder of ``history.csv``.
        filename: the file's name.
        loss_key: key of the loss in the trainer's ``engine.state.output`` items.
        enabled: ``False`` attaches nothing. Under DDP only rank 0 writes (no collective is involved).
    """

    def __init__(
        self,
        validator: Engine | None,
        output_dir: str | os.PathLike,
        filename: str = "history.csv",
        loss_key: str = "loss",
        enabled: bool = True,
    ) -> None:
        self.validator = validator
        self.path = Path(output_dir) / filename
        self.loss_key = loss_key
        self.enabled = enabled
        self.rows: list[dict[str, float]] = []
        self._loss_sum = 0.0
        self._loss_count = 0

    def attach(self, engine: Engine) -> None:
        """Register on the trainer's epoch start, iterations and epoch end."""
        if not self.enabled:
            return
        engine.add_event_handler(Events.STARTED, self._load_earlier_rows)
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._add_loss)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write_epoch)

    def _load_earlier_rows(self, engine: Engine) -> None:
        self.rows = []
        if engine.state.epoch and self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as handle:
                self.rows = [
                    {k: _as_float(v) for k, v in row.items()}
                    for row in csv.DictReader(handle)
                    if _as_float(row.get("epoch")) <= engine.state.epoch
                ]

    def _reset(self, engine: Engine) -> None:
        self._loss_sum, self._loss_count = 0.0, 0

    def _add_loss(self, engine: Engine) -> None:
        output = engine.state.output
        items = output if isinstance(output, list) else [output]
        for item in items:
            if isinstance(item, dict) and self.loss_key in item:
                self._loss_sum += _as_float(item[self.loss_key])
                self._loss_count += 1

    def _write_epoch(self, engine: Engine) -> None:
        from monai_nacl.utils import atomic_write_text

        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return  # every rank holds the same (synchronised) metrics; rank 0 writes
        row = {"epoch": float(engine.state.epoch)}
        row["train_loss"] = self._loss_sum / self._loss_count if self._loss_count else math.nan
        row.update({name: _as_float(value) for name, value in engine.state.metrics.items()})
        validator = self.validator
        if validator is not None and getattr(validator.state, "epoch", None) == engine.state.epoch:
            row.update({name: _as_float(value) for name, value in validator.state.metrics.items()})
        self.rows.append(row)
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: (int(v) if k == "epoch" else f"{v:.6g}") for k, v in r.items()})
        atomic_write_text(self.path, buffer.getvalue())
