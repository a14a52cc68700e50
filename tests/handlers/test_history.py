"""TrainingHistoryHandler: one CSV row per epoch, training loss averaged by hand, validation metrics where it ran."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ignite.engine import Engine, Events

from monai_nacl.handlers import TrainingHistoryHandler


def _engines() -> tuple[Engine, Engine]:
    validator = Engine(lambda engine, batch: None)

    @validator.on(Events.EPOCH_COMPLETED)
    def _val_metric(engine: Engine) -> None:
        engine.state.metrics["val_nll"] = 0.5 + engine.state.epoch

    trainer = Engine(lambda engine, batch: [{"loss": batch}, {"loss": batch + 1.0}])

    @trainer.on(Events.EPOCH_COMPLETED(every=2))
    def _validate(engine: Engine) -> None:  # what ValidationHandler does: run the validator at the trainer's epoch
        validator.state.max_epochs = engine.state.epoch
        validator.state.epoch = engine.state.epoch - 1
        validator.run([0])

    trainer.state.metrics = {}
    return trainer, validator


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_rows_per_epoch(tmp_path: Path) -> None:
    trainer, validator = _engines()
    TrainingHistoryHandler(validator, tmp_path).attach(trainer)
    trainer.run([1.0, 3.0], max_epochs=4)
    rows = _rows(tmp_path / "history.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    # per iteration two items: (b, b + 1) for b in (1, 3): mean 2.5
    assert all(math.isclose(float(r["train_loss"]), 2.5) for r in rows)
    assert [r["val_nll"] for r in rows] == ["", "2.5", "", "4.5"]


def test_resume_keeps_earlier_rows(tmp_path: Path) -> None:
    trainer, validator = _engines()
    TrainingHistoryHandler(validator, tmp_path).attach(trainer)
    trainer.run([1.0], max_epochs=2)
    resumed, validator = _engines()
    TrainingHistoryHandler(validator, tmp_path).attach(resumed)

    @resumed.on(Events.STARTED)
    def _restore(engine: Engine) -> None:  # registered first would be the checkpoint loader; emulate it
        engine.state.epoch = 2

    resumed._event_handlers[Events.STARTED].insert(0, resumed._event_handlers[Events.STARTED].pop())
    resumed.run([2.0], max_epochs=3)
    rows = _rows(tmp_path / "history.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert math.isclose(float(rows[2]["train_loss"]), 2.5) and math.isclose(float(rows[0]["train_loss"]), 1.5)
