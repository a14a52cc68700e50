"""AdaptiveNeighborAwareLoss (CRaC) against its literal float64 formula, a hand-worked case, and its multiplier rule
(the authors' update, written here as their code computes it, over several validation batches)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from loss_reference import (
    boundary_reference,
    crac_constraint_reference,
    crac_voxel_reference,
    dice_reference,
    one_hot_np,
    prior_reference,
)
from monai.bundle import ConfigParser

from monai_nacl.losses import AdaptiveNeighborAwareLoss, NeighborAwareLoss

SPATIAL = {1: (11,), 2: (7, 6), 3: (5, 4, 6)}


def make_case(dims: int, num_classes: int = 3, batch: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed + dims)
    logits = torch.randn(batch, num_classes, *SPATIAL[dims], generator=gen) * 3
    # blocky labels, so that both regions are populated
    coarse = torch.randint(0, num_classes, (batch, *[(n + 1) // 2 for n in SPATIAL[dims]]), generator=gen)
    labels = coarse
    for axis, n in enumerate(SPATIAL[dims]):
        labels = labels.repeat_interleave(2, dim=axis + 1).narrow(axis + 1, 0, n)
    return logits, labels


def multipliers(num_classes: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 2.0, (2, num_classes)), rng.uniform(0.1, 3.0, (2, num_classes))


def with_multipliers(loss: AdaptiveNeighborAwareLoss, lam: np.ndarray, rho: np.ndarray) -> AdaptiveNeighborAwareLoss:
    loss.lagrange_multipliers.copy_(torch.from_numpy(lam))
    loss.penalty_rho.copy_(torch.from_numpy(rho))
    return loss


def check(loss, logits, target, ref_voxel, keep=None, dice=None, **forward_kwargs):
    """Our value and gradient against the reference mean over kept voxels (+ Dice)."""
    x = logits.clone().requires_grad_(True)
    value = loss(x, target, **forward_kwargs)
    (grad,) = torch.autograd.grad(value, x)
    xr = logits.double().requires_grad_(True)
    voxel = ref_voxel(xr)
    ref = voxel.mean() if keep is None else voxel[keep].sum() / max(int(keep.sum()), 1)
    if dice is not None:
        ref = ref + dice(xr)
    (ref_grad,) = torch.autograd.grad(ref, xr)
    assert value.dtype == torch.float32
    np.testing.assert_allclose(value.item(), ref.item(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=1e-4, atol=1e-6)


def test_boundary_mixes_both_regions():
    for dims in (1, 2, 3):
        _, labels = make_case(dims)
        boundary = boundary_reference(labels.numpy())
        assert boundary.any() and (~boundary).any()


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"margin": 2.0, "border": "background"},
        {"kernel_size": 5, "border": "normalized"},
        {"border": "replicate", "margin": 1.0},
    ],
)
def test_value_and_gradient_match_reference(dims, config):
    logits, labels = make_case(dims)
    lam, rho = multipliers(3)
    loss = with_multipliers(AdaptiveNeighborAwareLoss(3, **config), lam, rho)
    ref_kw = {k: config[k] for k in ("margin", "kernel_size", "border") if k in config}

    def ref(x):
        return crac_voxel_reference(x, labels.numpy(), lam, rho, **ref_kw)

    check(loss, logits, labels[:, None], ref)


def test_default_multipliers_and_hand_worked_case():
    # 1-D, C = 2, labels [0, 0, 1], zero logits, zero border, margin 5. Boundary (replicated window): voxel 0 has
    # {0, 0} -> interior; voxels 1, 2 -> boundary. tau: v0 (2/3, 0), v1 (2/3, 1/3), v2 (1/3, 1/3); h = s * tau.
    loss = AdaptiveNeighborAwareLoss(num_classes=2)
    np.testing.assert_allclose(loss.lagrange_multipliers.numpy(), 1e-6, rtol=1e-6)
    np.testing.assert_allclose(loss.penalty_rho.numpy(), 0.1, rtol=1e-6)
    logits, labels = torch.zeros(1, 2, 3), torch.tensor([[0, 0, 1]])
    # penalty: 1 / (B * 2C * N) = 1/12 of sum(lambda h + rho h^2 / 2): sum h = 5, sum h^2 = 107 / 9
    expected = math.log(2) + (1e-6 * 5 + 0.1 / 2 * 107 / 9) / 12
    assert loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    total, count = loss.constraint_statistics(logits, labels)
    assert total.dtype == torch.float64 and total.shape == (2, 2)
    np.testing.assert_allclose(total.numpy(), [[1.0, 2 / 3], [10 / 3, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(count.numpy(), [[3, 3], [3, 3]])  # all three voxels, for either region
    loss.update_multipliers(total / count, epoch=1)
    # lambda + rho * sum h / 3: boundary (1e-6 + 0.1/3, 1e-6 + 0.2/9), interior (1e-6 + 1/9, 1e-6 + 0)
    np.testing.assert_allclose(
        loss.lagrange_multipliers.numpy(), [[0.1 / 3 + 1e-6, 0.2 / 9 + 1e-6], [1 / 9 + 1e-6, 1e-6]], rtol=1e-6
    )
    np.testing.assert_allclose(loss.previous_constraint.numpy(), [[1 / 3, 2 / 9], [10 / 9, 0.0]], rtol=1e-6)
    # "region": per-region means (2 boundary voxels, 1 interior), the multipliers before issue 19
    region = AdaptiveNeighborAwareLoss(num_classes=2, constraint_normalization="region")
    total, count = region.constraint_statistics(logits, labels)
    np.testing.assert_allclose(count.numpy(), [[2, 2], [1, 1]])
    region.update_multipliers(total / count, epoch=1)
    np.testing.assert_allclose(
        region.lagrange_multipliers.numpy(), [[0.050001, 0.1 / 3 + 1e-6], [1 / 3 + 1e-6, 1e-6]], rtol=1e-6
    )


def test_multiplier_rule_rho_growth_clamps_and_missing_regions():
    loss = AdaptiveNeighborAwareLoss(num_classes=2, rho=0.5)
    first = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    loss.update_multipliers(first, epoch=10)  # no previous value: rho stays
    assert loss.penalty_rho.tolist() == [[0.5, 0.5], [0.5, 0.5]]
    np.testing.assert_allclose(loss.lagrange_multipliers.numpy(), 1e-6 + 0.5 * first.numpy(), rtol=1e-6)
    # epoch 11: not a multiple of 10, rho unchanged whatever the constraints do
    second = torch.tensor([[1.0, 1.0], [3.0, 4.0]], dtype=torch.float64)
    loss.update_multipliers(second, epoch=11)
    assert loss.penalty_rho.tolist() == [[0.5, 0.5], [0.5, 0.5]]
    # epoch 20: grows where mean > 0.9 * previous: (0.95 > 0.9) yes, (0.8 > 0.9) no, (2.71 > 2.7) yes, NaN: kept
    third = torch.tensor([[0.95, 0.8], [2.71, float("nan")]], dtype=torch.float64)
    lam_before = loss.lagrange_multipliers.clone()
    loss.update_multipliers(third, epoch=20)
    np.testing.assert_allclose(loss.penalty_rho.numpy(), [[0.6, 0.5], [0.6, 0.5]], rtol=1e-6)
    assert loss.lagrange_multipliers[1, 1] == lam_before[1, 1]  # no data: unchanged
    assert loss.lagrange_multipliers[0, 0].item() == pytest.approx(lam_before[0, 0].item() + 0.5 * 0.95, rel=1e-6)
    np.testing.assert_allclose(loss.previous_constraint.numpy(), [[0.95, 0.8], [2.71, 4.0]], rtol=1e-6)
    # clamps: lambda at most 1e6, rho at most 10
    loss.penalty_rho.fill_(9.0)
    loss.update_multipliers(torch.full((2, 2), 1e7, dtype=torch.float64), epoch=30)
    assert loss.lagrange_multipliers.max().item() == pytest.approx(1e6)
    assert loss.penalty_rho.tolist() == [[10.0, 10.0], [10.0, 10.0]]


def test_state_dict_carries_the_buffers():
    loss = AdaptiveNeighborAwareLoss(num_classes=3)
    loss.update_multipliers(torch.arange(6, dtype=torch.float64).view(2, 3), epoch=1)
    state = loss.state_dict()
    assert set(state) == {"lagrange_multipliers", "penalty_rho", "previous_constraint"}
    restored = AdaptiveNeighborAwareLoss(num_classes=3)
    restored.load_state_dict(state)
    for name in state:
        assert torch.equal(getattr(restored, name), getattr(loss, name))
    logits, labels = make_case(2)
    assert restored(logits, labels).item() == loss(logits, labels).item()


@pytest.mark.parametrize("normalization", ["all_voxels", "region"])
@pytest.mark.parametrize("dims", [2, 3])
def test_constraint_statistics_match_reference(dims, normalization):
    logits, labels = make_case(dims)
    keep = np.random.default_rng(3).random(labels.shape) > 0.3
    loss = AdaptiveNeighborAwareLoss(3, margin=4.0, constraint_normalization=normalization)
    total, count = loss.constraint_statistics(logits, labels[:, None], mask=torch.from_numpy(keep)[:, None])
    ref_total, ref_count = crac_constraint_reference(logits.double().numpy(), labels.numpy(), margin=4.0, keep=keep)
    if normalization == "all_voxels":
        ref_count = np.full_like(ref_count, keep.sum())
    np.testing.assert_allclose(total.numpy(), ref_total, rtol=1e-6)
    np.testing.assert_array_equal(count.numpy(), ref_count)


def authors_update_reference(epochs: list[list[tuple[np.ndarray, np.ndarray]]], rho0: float, margin: float):
    """lambda and rho after each epoch, as the authors' code computes them (github Bala93/CRac, a952ff5).

    Per voxel the (region, class) constraints are stacked, h on the voxel's own region and 0 on the other; the
    PHR gradient ``lambda + rho * h`` is clipped per voxel and averaged over all voxels of all batches, which is
    the new lambda; the rho test compares the stacked constraints' mean over all voxels with the previous one.
    ``epochs[e]`` is the list of (float64 logits (B, C, *spatial), labels (B, *spatial)) batches of epoch e + 1.
    """
    num_classes = epochs[0][0][0].shape[1]
    lam, rho = np.full(2 * num_classes, 1e-6), np.full(2 * num_classes, rho0)
    previous, history = None, []
    for epoch, batches in enumerate(epochs, start=1):
        grad_sum, constraint_sum, voxels = np.zeros(2 * num_classes), np.zeros(2 * num_classes), 0
        for logits, labels in batches:
            tau = prior_reference(labels, num_classes)
            boundary = boundary_reference(labels)
            for index in np.ndindex(*labels.shape):
                on_boundary = bool(boundary[index])
                voxel = (index[0], slice(None), *index[1:])
                h = np.abs((1.0 if on_boundary else margin) * tau[voxel] - logits[voxel])
                stacked = np.concatenate([h, np.zeros(num_classes)] if on_boundary else [np.zeros(num_classes), h])
                grad_sum += np.clip(lam + rho * stacked, 1e-6, 1e6)
                constraint_sum += stacked
                voxels += 1
        lam = np.clip(grad_sum / voxels, 1e-6, 1e6)
        current = constraint_sum / voxels
        if epoch % 10 == 0 and previous is not None:
            rho = np.clip(np.where(current > 0.9 * np.maximum(previous, 0), 1.2 * rho, rho), rho0, 10.0)
        previous = current
        history.append((lam.reshape(2, num_classes), rho.reshape(2, num_classes)))
    return history


def validation_epochs(num_epochs: int = 12, margin: float = 5.0):
    """Three 2-D validation batches, the same logits every epoch except at epoch 10, where class 0 meets its
    constraints exactly (``l_0 = s tau_0``): rho grows at epoch 10 for classes 1 and 2 only."""
    batches = [make_case(2, batch=2, seed=seed) for seed in (10, 20, 30)]
    epochs = []
    for epoch in range(1, num_epochs + 1):
        current = []
        for logits, labels in batches:
            logits = logits.clone()
            if epoch == 10:
                tau = prior_reference(labels.numpy(), 3)
                scale = np.where(boundary_reference(labels.numpy()), 1.0, margin)
                logits[:, 0] = torch.from_numpy(scale * tau[:, 0]).float()
            current.append((logits, labels))
        epochs.append(current)
    return epochs


def plain_loop_multipliers(loss: AdaptiveNeighborAwareLoss, epochs) -> list[tuple[np.ndarray, np.ndarray]]:
    """The class docstring's loop: statistics summed over the batches, one update per epoch."""
    history = []
    for epoch, batches in enumerate(epochs, start=1):
        total = torch.zeros(2, loss.num_classes, dtype=torch.float64)
        count = torch.zeros(2, loss.num_classes, dtype=torch.float64)
        for logits, labels in batches:
            s, n = loss.constraint_statistics(logits, labels[:, None])
            total, count = total + s, count + n
        loss.update_multipliers(total / count, epoch)
        history.append((loss.lagrange_multipliers.numpy().copy(), loss.penalty_rho.numpy().copy()))
    return history


def test_update_over_batches_matches_the_authors_normalisation():
    epochs = validation_epochs()
    ours = plain_loop_multipliers(AdaptiveNeighborAwareLoss(3, rho=0.5), epochs)
    reference = authors_update_reference([[(x.double().numpy(), y.numpy()) for x, y in e] for e in epochs], 0.5, 5.0)
    for (lam, rho), (ref_lam, ref_rho) in zip(ours, reference):
        np.testing.assert_allclose(lam, ref_lam, rtol=1e-5)
        np.testing.assert_allclose(rho, ref_rho, rtol=1e-6)
    np.testing.assert_allclose(reference[9][1], [[0.5, 0.6, 0.6], [0.5, 0.6, 0.6]])  # the reference, spelled out


def test_region_normalisation_is_the_per_region_mean():
    """``"region"``: lambda grows by rho * (mean h over the region's voxels), |V| / |V_r| times the authors' step."""
    epochs = validation_epochs(num_epochs=4)
    region = plain_loop_multipliers(AdaptiveNeighborAwareLoss(3, constraint_normalization="region"), epochs)
    authors = plain_loop_multipliers(AdaptiveNeighborAwareLoss(3), epochs)
    total, count = np.zeros((2, 3)), np.zeros((2, 3))
    for logits, labels in epochs[0]:
        s, n = crac_constraint_reference(logits.double().numpy(), labels.numpy())
        total, count = total + s, count + n
    for step, ((lam, _), (lam_all, _)) in enumerate(zip(region, authors), start=1):
        np.testing.assert_allclose(lam, 1e-6 + step * 0.1 * total / count, rtol=1e-5)
        np.testing.assert_allclose(lam_all, 1e-6 + step * 0.1 * total / count.sum(0), rtol=1e-5)
    np.testing.assert_allclose((region[0][0] - 1e-6) / (authors[0][0] - 1e-6), count.sum(0) / count, rtol=1e-5)


def test_mask_ignore_index_and_dice():
    logits, labels = make_case(2)
    rng = np.random.default_rng(4)
    mask = torch.from_numpy(rng.random(labels.shape) > 0.3)
    ignored = torch.from_numpy(rng.random(labels.shape) < 0.2)
    keep = mask & ~ignored
    lam, rho = multipliers(3, seed=2)
    loss = with_multipliers(
        AdaptiveNeighborAwareLoss(3, dice_weight=0.5, include_background=False, ignore_index=9), lam, rho
    )
    y = torch.from_numpy(one_hot_np(labels.numpy(), 3))

    def ref(x):
        return crac_voxel_reference(x, labels.numpy(), lam, rho, unknown=ignored.numpy())

    def dice(x):
        return 0.5 * dice_reference(x, y, keep[:, None].double(), False).mean()

    stored = labels.masked_fill(ignored, 9)
    check(loss, logits, stored[:, None], ref, keep=keep, dice=dice, mask=mask[:, None])


def test_one_hot_soft_targets_and_prior_argument():
    logits, labels = make_case(3)
    lam, rho = multipliers(3, seed=5)
    loss = with_multipliers(AdaptiveNeighborAwareLoss(3), lam, rho)
    onehot = torch.from_numpy(one_hot_np(labels.numpy(), 3)).float()
    assert loss(logits, onehot).item() == pytest.approx(loss(logits, labels).item(), rel=1e-6)
    prior = torch.from_numpy(prior_reference(labels.numpy(), 3)).float()
    assert loss(logits, labels, prior=prior).item() == pytest.approx(loss(logits, labels).item(), rel=1e-6)
    # soft target: CE against it, tau from its channels, regions from its argmax
    soft = 0.7 * onehot + 0.1
    argmax = soft.argmax(1).numpy()

    def ref(x):
        return crac_voxel_reference(x, argmax, lam, rho, target=soft.double())

    check(loss, logits, soft, ref)


def test_reductions_and_margin_one_is_region_weighted_nacl():
    logits, labels = make_case(3)
    mean = AdaptiveNeighborAwareLoss(3, dice_weight=0.5)(logits, labels)
    none = AdaptiveNeighborAwareLoss(3, dice_weight=0.5, reduction="none")(logits, labels)
    total = AdaptiveNeighborAwareLoss(3, reduction="sum")(logits, labels)
    assert none.shape == (2, 1, *SPATIAL[3])
    assert none.mean().item() == pytest.approx(mean.item(), rel=1e-5)
    assert total.item() == pytest.approx(AdaptiveNeighborAwareLoss(3)(logits, labels).item() * labels.numel(), rel=1e-5)
    # margin 1, rho -> 0 and lambda = 2 alpha everywhere: NACL's L1 penalty alpha / C * sum_k |tau - l|
    crac = AdaptiveNeighborAwareLoss(3, margin=1.0, rho=1e-12)
    crac.lagrange_multipliers.fill_(0.2)
    assert crac(logits, labels).item() == pytest.approx(NeighborAwareLoss(alpha=0.1)(logits, labels).item(), rel=1e-6)


def test_extreme_logits_and_low_precision_autocast():
    labels = torch.randint(0, 3, (2, 1, 6, 5, 4), generator=torch.Generator().manual_seed(0))
    extreme = (torch.randint(0, 2, (2, 3, 6, 5, 4), generator=torch.Generator().manual_seed(1)) * 2 - 1) * 1e4
    loss = AdaptiveNeighborAwareLoss(3, dice_weight=1.0)
    x = extreme.float().requires_grad_(True)
    value = loss(x, labels)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    logits = torch.randn(2, 3, 6, 5, 4, generator=torch.Generator().manual_seed(2))
    expected = loss(logits.bfloat16().float(), labels)
    xb = logits.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(xb, labels)
    value.backward()
    assert value.dtype == torch.float32 and xb.grad.dtype == torch.bfloat16
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_bad_input_messages():
    loss = AdaptiveNeighborAwareLoss(3)
    logits = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"4 channels.*num_classes=3"):
        loss(torch.randn(2, 4, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"4 channels.*num_classes=3"):
        loss.constraint_statistics(torch.randn(2, 4, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[3, 3\]"):
        loss(logits, torch.full((2, 1, 4, 4), 3))
    with pytest.raises(ValueError, match=r"mask shape \(2, 1, 3, 4\)"):
        loss.constraint_statistics(logits, torch.zeros(2, 1, 4, 4), mask=torch.ones(2, 1, 3, 4))
    with pytest.raises(ValueError, match="prior shape"):
        loss(logits, torch.zeros(2, 4, 4), prior=torch.zeros(2, 2, 4, 4))
    for kwargs, match in (
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 3.0}, "num_classes"),
        ({"num_classes": 3, "kernel_size": 2}, "odd integer"),
        ({"num_classes": 3, "margin": 0.0}, "margin"),
        ({"num_classes": 3, "rho": 0.0}, "rho"),
        ({"num_classes": 3, "rho": 11.0}, "rho"),
        ({"num_classes": 3, "border": "circular"}, "border"),
        ({"num_classes": 3, "constraint_normalization": "voxels"}, "constraint_normalization"),
        ({"num_classes": 3, "reduction": "average"}, "reduction"),
    ):
        with pytest.raises(ValueError, match=match):
            AdaptiveNeighborAwareLoss(**kwargs)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        loss.update_multipliers(torch.zeros(3, 2), epoch=1)
    with pytest.raises(ValueError, match="epoch"):
        loss.update_multipliers(torch.zeros(2, 3), epoch=0)
    with pytest.raises(ValueError, match=">= 0"):
        loss.update_multipliers(-torch.ones(2, 3), epoch=1)


def test_bundle_config_by_dotted_path():
    parser = ConfigParser(
        {
            "num_classes": 4,
            "loss": {"_target_": "monai_nacl.losses.AdaptiveNeighborAwareLoss", "num_classes": "@num_classes"},
        }
    )
    loss = parser.get_parsed_content("loss")
    assert type(loss) is AdaptiveNeighborAwareLoss and loss.lagrange_multipliers.shape == (2, 4)
