"""TrainingHistoryHandler: one CSV row per epoch, training loss averaged by hand, validation metrics where it ran
(CRaC's multipliers among them)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import ValidationHandler
from torch.utils.data import DataLoader

from monai_nacl.handlers import LagrangeMultiplierHandler, TrainingHistoryHandler
from monai_nacl.losses import AdaptiveNeighborAwareLoss
from monai_nacl.losses.crac import REGIONS


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


def test_crac_multipliers_reach_history_csv(tmp_path: Path) -> None:
    """A MONAI trainer validating every second epoch: the validator's LagrangeMultiplierHandler values are columns of
    history.csv, filled in the validated rows with the multipliers of that round."""
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (4, 1, 4, 4)).repeat_interleave(2, 2).repeat_interleave(2, 3)
    data = [{"image": torch.randn(3, 8, 8), "label": labels[i]} for i in range(4)]
    network = torch.nn.Conv2d(3, 3, 1)
    loss = AdaptiveNeighborAwareLoss(num_classes=3)
    validated: dict[int, list[list[float]]] = {}
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(data, batch_size=2),
        network=network,
        val_handlers=[LagrangeMultiplierHandler(loss)],
    )

    @evaluator.on(Events.EPOCH_COMPLETED)
    def _record(engine: Engine) -> None:
        validated[engine.state.epoch] = loss.lagrange_multipliers.tolist()

    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=4,
        train_data_loader=DataLoader(data, batch_size=2),
        network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.1),
        loss_function=loss,
        train_handlers=[ValidationHandler(validator=evaluator, interval=2, epoch_level=True)],
    )
    TrainingHistoryHandler(evaluator, tmp_path).attach(trainer)
    trainer.run()
    rows = _rows(tmp_path / "history.csv")
    columns = [f"{name}_{region}_{c}" for name in ("lagrange", "penalty_rho") for region in REGIONS for c in range(3)]
    assert set(columns) <= set(rows[0])
    assert sorted(validated) == [2, 4]
    for row in rows:
        epoch = int(row["epoch"])
        if epoch not in validated:
            assert all(row[column] == "" for column in columns)
            continue
        lam = validated[epoch]
        for r, region in enumerate(REGIONS):
            for c in range(3):
                assert math.isclose(float(row[f"lagrange_{region}_{c}"]), lam[r][c], rel_tol=1e-5)
                assert math.isclose(float(row[f"penalty_rho_{region}_{c}"]), 0.1)
    assert float(rows[3]["lagrange_interior_1"]) > float(rows[1]["lagrange_interior_1"]) > 1e-6
