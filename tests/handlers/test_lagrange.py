"""LagrangeMultiplierHandler: multiplier updates on a toy validation set equal the rule applied to reference sums,
each (region, class) sum divided by all validation voxels (the authors' update) or, as an option, the region's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ignite.engine import Engine
from monai.engines import SupervisedEvaluator
from monai.transforms import Activationsd

from monai_nacl.handlers import LagrangeMultiplierHandler
from monai_nacl.losses import AdaptiveNeighborAwareLoss, NeighborAwareLoss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "losses"))
from loss_reference import boundary_reference, crac_constraint_reference, prior_reference

NUM_CLASSES = 3


def toy_batches(n: int = 4, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` validation batches (logits (2, 3, 8, 7), labels (2, 1, 8, 7)) with blocky labels."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        coarse = torch.randint(0, NUM_CLASSES, (2, 1, 4, 4), generator=gen)
        labels = coarse.repeat_interleave(2, 2).repeat_interleave(2, 3)[..., :7]
        batches.append((torch.randn(2, NUM_CLASSES, 8, 7, generator=gen) * 3, labels))
    return batches


def reference_mean(batches, margin: float = 5.0, normalization: str = "all_voxels") -> np.ndarray:
    """Constraint statistic per (region, class) over all batches, voxel by voxel: the sum of h over the region's
    voxels divided by the number of all voxels (``"all_voxels"``) or of the region's voxels (``"region"``)."""
    total, count = np.zeros((2, NUM_CLASSES)), np.zeros((2, NUM_CLASSES))
    for logits, labels in batches:
        s, n = crac_constraint_reference(logits.double().numpy(), labels[:, 0].numpy(), margin=margin)
        total, count = total + s, count + n
    all_voxels = sum(labels.numel() for _, labels in batches)
    return total / (all_voxels if normalization == "all_voxels" else count)


def reference_rule(means: list[np.ndarray], rho0: float) -> tuple[np.ndarray, np.ndarray]:
    """The multiplier rule, epoch by epoch, from epoch 1."""
    lam, rho, previous = np.full((2, NUM_CLASSES), 1e-6), np.full((2, NUM_CLASSES), rho0), None
    for epoch, mean in enumerate(means, start=1):
        lam = np.clip(lam + rho * mean, 1e-6, 1e6)
        if epoch % 10 == 0 and previous is not None:
            rho = np.where(mean > 0.9 * previous, np.minimum(1.2 * rho, 10.0), rho)
        previous = mean
    return lam, rho


def logits_at(epoch: int, logits: torch.Tensor, labels: torch.Tensor, margin: float = 5.0) -> torch.Tensor:
    """Logits that change with the epoch: scaled by ``1 / (1 + 0.05 epoch)``; at epoch 10 class 0 meets its
    constraint exactly (``l_0 = s tau_0``), so rho's test at epoch 10 grows rho for classes 1, 2 and not class 0."""
    out = logits / (1.0 + 0.05 * epoch)
    if epoch == 10:
        tau = prior_reference(labels[:, 0].numpy(), NUM_CLASSES)
        scale = np.where(boundary_reference(labels[:, 0].numpy()), 1.0, margin)
        out[:, 0] = torch.from_numpy(scale * tau[:, 0]).float()
    return out


@pytest.mark.parametrize("normalization", ["all_voxels", "region"])
def test_ten_epochs_on_a_plain_engine_follow_the_rule(normalization):
    batches = toy_batches()
    loss = AdaptiveNeighborAwareLoss(NUM_CLASSES, rho=0.5, constraint_normalization=normalization)

    def step(engine, batch):
        logits, labels = batch
        return {"pred": logits_at(engine.state.epoch, logits, labels), "label": labels}

    engine = Engine(step)
    LagrangeMultiplierHandler(loss).attach(engine)
    engine.run(batches, max_epochs=10)
    means = [
        reference_mean([(logits_at(e, x, y), y) for x, y in batches], normalization=normalization) for e in range(1, 11)
    ]
    lam, rho = reference_rule(means, 0.5)
    np.testing.assert_allclose(loss.lagrange_multipliers.numpy(), lam, rtol=1e-5)
    np.testing.assert_allclose(loss.penalty_rho.numpy(), rho, rtol=1e-6)
    np.testing.assert_allclose(rho, [[0.5, 0.6, 0.6], [0.5, 0.6, 0.6]])  # the reference itself, spelled out
    np.testing.assert_allclose(loss.previous_constraint.numpy(), means[-1], rtol=1e-5, atol=1e-6)
    metrics = engine.state.metrics
    assert metrics["lagrange_boundary_1"] == pytest.approx(lam[0, 1], rel=1e-5)
    assert metrics["lagrange_interior_2"] == pytest.approx(lam[1, 2], rel=1e-5)
    assert metrics["penalty_rho_interior_0"] == pytest.approx(rho[1, 0], rel=1e-6)
    assert metrics["constraint_boundary_1"] == pytest.approx(means[-1][0, 1], rel=1e-6)


def test_supervised_evaluator_reads_logits_before_postprocessing():
    """On a MONAI evaluator the handler sees ``pred`` before ``Activationsd(softmax=True)``; decollated items work."""
    batches = toy_batches(n=2, seed=1)
    data = [{"image": x[i], "label": y[i]} for x, y in batches for i in range(2)]
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    loss = AdaptiveNeighborAwareLoss(NUM_CLASSES)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=torch.nn.Identity(),  # the "image" is the logits
        postprocessing=Activationsd(keys="pred", softmax=True),
        val_handlers=[LagrangeMultiplierHandler(loss)],
    )
    evaluator.run(global_epoch=3)
    expected, _ = reference_rule([reference_mean(batches)], 0.1)
    np.testing.assert_allclose(loss.lagrange_multipliers.numpy(), expected, rtol=1e-5)
    assert evaluator.state.metrics["lagrange_interior_1"] == pytest.approx(expected[1, 1], rel=1e-5)


def test_decollated_items_give_the_same_update():
    """A list of per-item dicts (as after MONAI's decollation) counts like the batch it came from."""
    batches = toy_batches(n=2, seed=2)
    results = []
    for decollate in (False, True):
        loss = AdaptiveNeighborAwareLoss(NUM_CLASSES)

        def step(engine, batch, decollate=decollate):
            logits, labels = batch
            if decollate:
                return [{"pred": logits[i], "label": labels[i]} for i in range(len(logits))]
            return {"pred": logits, "label": labels}

        engine = Engine(step)
        LagrangeMultiplierHandler(loss).attach(engine)
        engine.run(batches, max_epochs=1)
        results.append(loss.lagrange_multipliers.clone())
    torch.testing.assert_close(results[0], results[1])


def test_other_losses_attach_nothing():
    engine = Engine(lambda e, b: {"pred": b[0], "label": b[1]})
    LagrangeMultiplierHandler(NeighborAwareLoss()).attach(engine)
    engine.run(toy_batches(n=1), max_epochs=1)
    assert not any(name.startswith("lagrange_") for name in engine.state.metrics)


def test_bad_output_is_explained():
    engine = Engine(lambda e, b: {"pred": "not a tensor", "label": b})
    LagrangeMultiplierHandler(AdaptiveNeighborAwareLoss(NUM_CLASSES)).attach(engine)
    with pytest.raises(TypeError, match="output_transform"):
        engine.run([torch.zeros(1, 1, 4, 4)], max_epochs=1)


def _rank_main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        batches = toy_batches()[rank::world]  # rank 0: batches 0, 2; rank 1: batches 1, 3
        loss = AdaptiveNeighborAwareLoss(NUM_CLASSES)
        engine = Engine(lambda e, b: {"pred": b[0], "label": b[1]})
        LagrangeMultiplierHandler(loss).attach(engine)
        engine.run(batches, max_epochs=1)
        torch.save(loss.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_hold_the_same_multipliers(tmp_path):
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    expected, _ = reference_rule([reference_mean(toy_batches())], 0.1)
    states = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    for state in states:
        np.testing.assert_allclose(state["lagrange_multipliers"].numpy(), expected, rtol=1e-5)
    assert torch.equal(states[0]["lagrange_multipliers"], states[1]["lagrange_multipliers"])
