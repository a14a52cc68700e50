"""Resuming an interrupted unet2d_nacl run from checkpoint_last.pt, and run-to-run determinism on CPU.

Runs are tiny (2 iterations an epoch, one validation case of the synthetic 64^3 dataset). The checks read the files
the runs wrote: the trainer's epoch and iteration, Adam's step counts, the validator's best metric, the reliability
diagrams (one per validated epoch, so a redone epoch would show) and the weights.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from bundle_helpers import BUNDLES_DIR, adam_steps, load_checkpoint, run_bundle, split_list

EPOCH_LENGTH = 2


def settings(out: Path, synthetic_3d: tuple[str, str]) -> dict[str, object]:
    """The tiny schedule of these runs, written to ``out`` (checkpoints in ``out/models``)."""
    dataset_dir, datalist = synthetic_3d
    return {
        "dataset_dir": dataset_dir,
        "datalist": datalist,
        "output_dir": str(out),
        "ckpt_dir": str(out / "models"),
        "val_interval": 1,
        "batch_size": 1,
        "num_samples": 2,
        "cache_rate": 0.0,
        "train#trainer#epoch_length": EPOCH_LENGTH,
        "validate#dataset#data": split_list(datalist, "validation", 1),
    }


def train(out: Path, synthetic_3d: tuple[str, str], **overrides: object) -> None:
    run_bundle("unet2d_nacl", ["train.yaml"], **{**settings(out, synthetic_3d), **overrides})


def unet2d() -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(2, 1, 3, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1, norm="batch")


@pytest.fixture(scope="module")
def one_epoch_runs(tmp_path_factory: pytest.TempPathFactory, synthetic_3d: tuple[str, str]) -> tuple[Path, Path]:
    """Two identical one-epoch runs (same seed, same data, CPU): their output folders."""
    first, second = tmp_path_factory.mktemp("run_a"), tmp_path_factory.mktemp("run_b")
    for out in (first, second):
        train(out, synthetic_3d, max_epochs=1, seed=3)
    return first, second


def test_same_seed_gives_same_weights_and_metrics(one_epoch_runs: tuple[Path, Path]) -> None:
    a, b = (load_checkpoint(out / "models" / "checkpoint_last.pt") for out in one_epoch_runs)
    assert a["network"].keys() == b["network"].keys()
    for name, weight in a["network"].items():
        torch.testing.assert_close(weight, b["network"][name], rtol=0, atol=1e-6, msg=name)
    assert a["validation"]["best_metric"] == pytest.approx(b["validation"]["best_metric"], abs=1e-6)
    assert a["validation"]["best_metric_epoch"] == b["validation"]["best_metric_epoch"] == 1


def test_resume_continues_with_the_next_epoch(one_epoch_runs: tuple[Path, Path], synthetic_3d: tuple[str, str]) -> None:
    out = one_epoch_runs[0]
    models = out / "models"
    first = load_checkpoint(models / "checkpoint_last.pt")
    # Ignite saves the trainer as (iteration, epoch_length): the epoch is their quotient
    assert first["trainer"]["iteration"] == EPOCH_LENGTH and first["trainer"]["epoch_length"] == EPOCH_LENGTH
    assert adam_steps(first) == {EPOCH_LENGTH}
    # epoch 1 wrote its diagram; remove it so that a redone epoch 1 would show by writing it again
    (out / "reliability" / "reliability_epoch0001.png").unlink()
    shutil.copy(models / "model.pt", out / "model_epoch1.pt")

    train(out, synthetic_3d, max_epochs=2, seed=3, resume=True)

    resumed = load_checkpoint(models / "checkpoint_last.pt")
    assert resumed["trainer"]["iteration"] == 2 * EPOCH_LENGTH and resumed["trainer"]["max_epochs"] == 2
    assert adam_steps(resumed) == {2 * EPOCH_LENGTH}  # a fresh optimizer would count EPOCH_LENGTH steps
    assert resumed["lr_scheduler"]["last_epoch"] == 2
    assert sorted(p.name for p in (out / "reliability").glob("*.png")) == ["reliability_epoch0002.png"]
    best_1, best_2 = first["validation"], resumed["validation"]
    assert best_2["best_metric"] >= best_1["best_metric"]
    if best_2["best_metric_epoch"] == 1:  # epoch 2 was no better: the restored best and model.pt stay
        assert best_2["best_metric"] == best_1["best_metric"]
        assert all(
            torch.equal(v, load_checkpoint(out / "model_epoch1.pt")[k])
            for k, v in load_checkpoint(models / "model.pt").items()
        )
    else:
        assert best_2["best_metric_epoch"] == 2
    # both files are complete and load into the network; no temporary file is left behind
    network = unet2d()
    network.load_state_dict(load_checkpoint(models / "model.pt"))
    network.load_state_dict(resumed["network"])
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint_last.pt", "model.pt", "task.json"]


def start_paused_in_epoch_2(out: Path, synthetic_3d: tuple[str, str], log: Path) -> subprocess.Popen:
    """``python -m monai.bundle run`` of a 3-epoch training that, after the first iteration of epoch 2, writes
    ``out/paused`` and sleeps, so that a kill lands in the middle of epoch 2 whatever the machine's speed."""
    pause = (
        f"$@train#trainer.add_event_handler(Events.ITERATION_COMPLETED(once={EPOCH_LENGTH + 1}), lambda engine: "
        "(open(os.path.join(@output_dir, 'paused'), 'w').close(), time.sleep(600)))"
    )
    run = ["$import time", "$from ignite.engine import Events", pause, "$@train#trainer.run()"]
    overrides = {**settings(out, synthetic_3d), "max_epochs": 3, "seed": 3, "run": repr(run)}
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.yaml"]
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as output:
        return subprocess.Popen(
            command, cwd=BUNDLES_DIR / "unet2d_nacl", env=env, stdout=output, stderr=subprocess.STDOUT
        )


@pytest.mark.slow
def test_resume_after_sigkill_in_the_middle_of_an_epoch(tmp_path: Path, synthetic_3d: tuple[str, str]) -> None:
    """SIGKILL in epoch 2 of 3, then ``--resume true``: epoch 1 is not redone, epoch 2 restarts from epoch 1's
    state, the run reaches epoch 3, the files load, and the best metric of epoch 1 is carried over."""
    models, log = tmp_path / "models", tmp_path / "killed_run.log"
    process = start_paused_in_epoch_2(tmp_path, synthetic_3d, log)
    deadline = time.monotonic() + 300
    try:
        while not (tmp_path / "paused").exists():
            assert process.poll() is None, f"the run ended ({process.returncode}) unkilled:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the run did not reach epoch 2 in 300 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    # what the killed run left: epoch 1's complete files, no temporary file, epoch 2's first step not saved
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint_last.pt", "model.pt", "task.json"]
    killed = load_checkpoint(models / "checkpoint_last.pt")
    assert killed["trainer"]["iteration"] == EPOCH_LENGTH and adam_steps(killed) == {EPOCH_LENGTH}
    assert killed["validation"]["best_metric_epoch"] == 1
    network = unet2d()
    network.load_state_dict(load_checkpoint(models / "model.pt"))
    network.load_state_dict(killed["network"])
    (tmp_path / "reliability" / "reliability_epoch0001.png").unlink()  # a redone epoch 1 would write it again
    shutil.copy(models / "model.pt", tmp_path / "model_epoch1.pt")

    train(tmp_path, synthetic_3d, max_epochs=3, seed=3, resume="true")  # the string `--resume true` passes

    resumed = load_checkpoint(models / "checkpoint_last.pt")
    assert resumed["trainer"]["iteration"] == 3 * EPOCH_LENGTH and resumed["trainer"]["max_epochs"] == 3
    assert adam_steps(resumed) == {3 * EPOCH_LENGTH}  # epochs 2 and 3 on top of epoch 1's optimizer state
    assert resumed["lr_scheduler"]["last_epoch"] == 3
    assert sorted(p.name for p in (tmp_path / "reliability").glob("*.png")) == [
        "reliability_epoch0002.png",
        "reliability_epoch0003.png",
    ]
    best_1, best = killed["validation"], resumed["validation"]
    assert best["best_metric"] >= best_1["best_metric"]
    if best["best_metric_epoch"] == 1:  # neither epoch 2 nor 3 was better: epoch 1's model.pt stays
        assert best["best_metric"] == best_1["best_metric"]
        assert all(
            torch.equal(v, load_checkpoint(tmp_path / "model_epoch1.pt")[k])
            for k, v in load_checkpoint(models / "model.pt").items()
        )
    else:
        assert best["best_metric_epoch"] in (2, 3)
    network.load_state_dict(load_checkpoint(models / "model.pt"))
    network.load_state_dict(resumed["network"])
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint_last.pt", "model.pt", "task.json"]


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

    from monai_nacl.handlers import BestMetricState

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
    assert load_checkpoint(tmp_path / "model.pt").keys() == network.state_dict().keys()
    with pytest.raises(ValueError, match="best_metric_epoch"):
        state.load_state_dict({"best_metric": 0.8})
