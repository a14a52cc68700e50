"""Resuming an interrupted unet2d_nacl run from checkpoint_last.pt, and run-to-run determinism on CPU.

Runs are tiny (2 iterations an epoch, one validation case of the synthetic 64^3 dataset). The checks read the files
the runs wrote: the trainer's epoch and iteration, Adam's step counts, the validator's best metric, the reliability
diagrams (one per validated epoch, so a redone epoch would show) and the weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from bundle_helpers import run_bundle, split_list

EPOCH_LENGTH = 2


def train(out: Path, synthetic_3d: tuple[str, str], **overrides: object) -> None:
    dataset_dir, datalist = synthetic_3d
    run_bundle(
        "unet2d_nacl",
        ["train.yaml"],
        dataset_dir=dataset_dir,
        datalist=datalist,
        output_dir=str(out),
        ckpt_dir=str(out / "models"),
        val_interval=1,
        batch_size=1,
        num_samples=2,
        cache_rate=0.0,
        **{"train#trainer#epoch_length": EPOCH_LENGTH, "validate#dataset#data": split_list(datalist, "validation", 1)},
        **overrides,
    )


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def unet2d() -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(2, 1, 3, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1, norm="batch")


def adam_steps(checkpoint: dict) -> set[int]:
    return {int(s["step"]) for s in checkpoint["optimizer"]["state"].values()}


@pytest.fixture(scope="module")
def one_epoch_runs(tmp_path_factory: pytest.TempPathFactory, synthetic_3d: tuple[str, str]) -> tuple[Path, Path]:
    """Two identical one-epoch runs (same seed, same data, CPU): their output folders."""
    first, second = tmp_path_factory.mktemp("run_a"), tmp_path_factory.mktemp("run_b")
    for out in (first, second):
        train(out, synthetic_3d, max_epochs=1, seed=3)
    return first, second


def test_same_seed_gives_same_weights_and_metrics(one_epoch_runs: tuple[Path, Path]) -> None:
    a, b = (load(out / "models" / "checkpoint_last.pt") for out in one_epoch_runs)
    assert a["network"].keys() == b["network"].keys()
    for name, weight in a["network"].items():
        torch.testing.assert_close(weight, b["network"][name], rtol=0, atol=1e-6, msg=name)
    assert a["validation"]["best_metric"] == pytest.approx(b["validation"]["best_metric"], abs=1e-6)
    assert a["validation"]["best_metric_epoch"] == b["validation"]["best_metric_epoch"] == 1


def test_resume_continues_with_the_next_epoch(one_epoch_runs: tuple[Path, Path], synthetic_3d: tuple[str, str]) -> None:
    out = one_epoch_runs[0]
    models = out / "models"
    first = load(models / "checkpoint_last.pt")
    # Ignite saves the trainer as (iteration, epoch_length): the epoch is their quotient
    assert first["trainer"]["iteration"] == EPOCH_LENGTH and first["trainer"]["epoch_length"] == EPOCH_LENGTH
    assert adam_steps(first) == {EPOCH_LENGTH}
    # epoch 1 wrote its diagram; remove it so that a redone epoch 1 would show by writing it again
    (out / "reliability" / "reliability_epoch0001.png").unlink()
    shutil.copy(models / "model.pt", out / "model_epoch1.pt")

    train(out, synthetic_3d, max_epochs=2, seed=3, resume=True)

    resumed = load(models / "checkpoint_last.pt")
    assert resumed["trainer"]["iteration"] == 2 * EPOCH_LENGTH and resumed["trainer"]["max_epochs"] == 2
    assert adam_steps(resumed) == {2 * EPOCH_LENGTH}  # a fresh optimizer would count EPOCH_LENGTH steps
    assert resumed["lr_scheduler"]["last_epoch"] == 2
    assert sorted(p.name for p in (out / "reliability").glob("*.png")) == ["reliability_epoch0002.png"]
    best_1, best_2 = first["validation"], resumed["validation"]
    assert best_2["best_metric"] >= best_1["best_metric"]
    if best_2["best_metric_epoch"] == 1:  # epoch 2 was no better: the restored best and model.pt stay
        assert best_2["best_metric"] == best_1["best_metric"]
        assert all(torch.equal(v, load(out / "model_epoch1.pt")[k]) for k, v in load(models / "model.pt").items())
    else:
        assert best_2["best_metric_epoch"] == 2
    # both files are complete and load into the network; no temporary file is left behind
    network = unet2d()
    network.load_state_dict(load(models / "model.pt"))
    network.load_state_dict(resumed["network"])
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint_last.pt", "model.pt"]


def test_resume_without_checkpoint_is_a_readable_error(tmp_path: Path, synthetic_3d: tuple[str, str]) -> None:
    with pytest.raises(Exception) as info:
        train(tmp_path, synthetic_3d, max_epochs=1, resume=True)
    chain, error = [], info.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    message = "\n".join(chain)
    assert "no checkpoint to resume from" in message and str(tmp_path / "models" / "checkpoint_last.pt") in message


def test_best_metric_state_keeps_a_better_saved_model(tmp_path: Path) -> None:
    """After a restore with best 0.8, a key metric of 0.5 must not replace model.pt; 0.9 must."""
    from ignite.engine import Engine
    from monai.engines import SupervisedEvaluator
    from monai.handlers import CheckpointSaver

    from monai_nacl.workflows.resume import BestMetricState

    network = torch.nn.Linear(1, 1)
    evaluator = SupervisedEvaluator(device="cpu", val_data_loader=[{"image": torch.zeros(1, 1)}], network=network)
    saver = CheckpointSaver(str(tmp_path), {"model": network}, save_key_metric=True, key_metric_name="dice",
                            key_metric_filename="model.pt")  # fmt: skip
    state = BestMetricState(evaluator, [saver])
    state.load_state_dict({"best_metric": 0.8, "best_metric_epoch": 3})
    assert state.state_dict() == {"best_metric": 0.8, "best_metric_epoch": 3}
    engine = Engine(lambda e, b: None)
    engine.state.metrics = {"dice": 0.5}
    (tmp_path / "model.pt").write_bytes(b"previous best")
    saver.metrics_completed(engine)
    assert (tmp_path / "model.pt").read_bytes() == b"previous best"
    engine.state.metrics = {"dice": 0.9}
    saver.metrics_completed(engine)
    assert load(tmp_path / "model.pt").keys() == network.state_dict().keys()
    with pytest.raises(ValueError, match="best_metric_epoch"):
        state.load_state_dict({"best_metric": 0.8})
