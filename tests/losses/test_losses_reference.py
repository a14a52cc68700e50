"""Every loss against its literal float64 formula (value and gradient), 2-D and 3-D, labels and soft targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from loss_reference import (
    dice_reference,
    one_hot_np,
    prior_reference,
    target_distribution,
    voxel_losses,
)
from monai.losses import DiceLoss, NACLLoss

from monai_nacl.losses import (
    ConfidencePenaltyLoss,
    LabelSmoothingLoss,
    MarginLabelSmoothingLoss,
    NeighborAwareLoss,
    SegmentationCrossEntropyLoss,
    SpatialLabelSmoothingLoss,
)

SPATIAL = {1: (11,), 2: (7, 6), 3: (5, 4, 6)}


def make_case(dims: int, num_classes: int = 3, batch: int = 2, scale: float = 3.0, seed: int = 0):
    gen = torch.Generator().manual_seed(seed + dims)
    logits = torch.randn(batch, num_classes, *SPATIAL[dims], generator=gen) * scale
    labels = torch.randint(0, num_classes, (batch, *SPATIAL[dims]), generator=gen)
    return logits, labels


def ours_and_reference(loss, ref_name, logits, target, ref_kwargs, target_for_ours=None, **forward_kwargs):
    """(our value, our grad, reference value, reference grad) with the reference mean over voxels."""
    x = logits.clone().requires_grad_(True)
    value = loss(x, target if target_for_ours is None else target_for_ours, **forward_kwargs)
    (grad,) = torch.autograd.grad(value, x)
    xr = logits.double().requires_grad_(True)
    ref_value = voxel_losses(ref_name, xr, target, **ref_kwargs).mean()
    (ref_grad,) = torch.autograd.grad(ref_value, xr)
    return value, grad, ref_value, ref_grad


def assert_match(value, grad, ref_value, ref_grad):
    assert value.dtype == torch.float32
    np.testing.assert_allclose(value.item(), ref_value.item(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=1e-4, atol=1e-5)


def nacl_prior(labels, num_classes, **kw):
    return torch.from_numpy(prior_reference(labels.numpy(), num_classes, **kw))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"distance_type": "l2"},
        {"border": "background", "alpha": 0.3},
        {"border": "normalized", "kernel_ops": "gaussian", "sigma": 0.7},
        {"border": "replicate", "kernel_ops": "svls", "kernel_size": 5},
    ],
)
def test_neighbor_aware_loss(dims, config):
    logits, labels = make_case(dims)
    prior_kw = {k: config[k] for k in ("kernel_size", "kernel_ops", "sigma", "border") if k in config}
    ref_kw = {
        "prior": nacl_prior(labels, 3, **prior_kw),
        "alpha": config.get("alpha", 0.1),
        "distance_type": config.get("distance_type", "l1"),
    }
    result = ours_and_reference(NeighborAwareLoss(**config), "nacl", logits, labels, ref_kw, labels[:, None])
    assert_match(*result)


@pytest.mark.parametrize("dims", [2, 3])
def test_neighbor_aware_loss_soft_target(dims):
    logits, _ = make_case(dims)
    soft = torch.softmax(torch.randn(logits.shape, generator=torch.Generator().manual_seed(5)), 1)
    # build the reference prior by a dense correlation of each soft channel, zero border, 3^d mean window
    onehot_prior = np.zeros(soft.shape)
    spatial = soft.shape[2:]
    padded = np.pad(soft.double().numpy(), [(0, 0), (0, 0)] + [(1, 1)] * dims)
    for offset in np.ndindex(*(3,) * dims):
        window = tuple(slice(o, o + n) for o, n in zip(offset, spatial))
        onehot_prior += padded[(slice(None), slice(None), *window)] / 3**dims
    ref_kw = {"prior": torch.from_numpy(onehot_prior)}
    assert_match(*ours_and_reference(NeighborAwareLoss(), "nacl", logits, soft, ref_kw))
    assert_match(*ours_and_reference(SegmentationCrossEntropyLoss(), "ce", logits, soft, {}))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kernel_size,sigma", [(3, 1.0), (5, 2.0)])
def test_spatial_label_smoothing_loss(dims, kernel_size, sigma):
    logits, labels = make_case(dims)
    ref_kw = {
        "prior": nacl_prior(labels, 3, kernel_size=kernel_size, kernel_ops="svls", sigma=sigma, border="replicate")
    }
    loss = SpatialLabelSmoothingLoss(kernel_size=kernel_size, sigma=sigma)
    assert_match(*ours_and_reference(loss, "svls", logits, labels, ref_kw))


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize(
    "loss,name,kwargs",
    [
        (SegmentationCrossEntropyLoss(), "ce", {}),
        (MarginLabelSmoothingLoss(), "mbls", {"margin": 10.0, "alpha": 0.1}),
        (MarginLabelSmoothingLoss(margin=2.0, alpha=0.3), "mbls", {"margin": 2.0, "alpha": 0.3}),
        (LabelSmoothingLoss(), "ls", {"alpha": 0.1}),
        (LabelSmoothingLoss(alpha=0.25), "ls", {"alpha": 0.25}),
        (ConfidencePenaltyLoss(), "ecp", {"alpha": 0.1}),
        (ConfidencePenaltyLoss(alpha=0.5), "ecp", {"alpha": 0.5}),
    ],
)
def test_penalty_losses_labels_and_soft(dims, loss, name, kwargs):
    logits, labels = make_case(dims, scale=6.0)
    assert_match(*ours_and_reference(loss, name, logits, labels, kwargs, labels[:, None]))
    soft = torch.softmax(torch.randn(logits.shape, generator=torch.Generator().manual_seed(7)), 1)
    assert_match(*ours_and_reference(loss, name, logits, soft, kwargs))


def test_label_smoothing_equals_pytorch():
    logits, labels = make_case(3)
    value = LabelSmoothingLoss(alpha=0.2)(logits, labels)
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.2)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("config", [{}, {"kernel_ops": "gaussian"}, {"distance_type": "l2", "alpha": 0.2}])
def test_drop_in_for_monai_nacl(dims, config):
    logits, labels = make_case(dims, num_classes=4, batch=3)
    x1, x2 = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours = NeighborAwareLoss(**config)(x1, labels)
    theirs = NACLLoss(classes=4, dim=dims, **config)(x2, labels)
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6, abs=1e-6)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("include_background", [True, False])
def test_dice_term_is_monai_dice(include_background):
    logits, labels = make_case(2, num_classes=4)
    loss = NeighborAwareLoss(dice_weight=0.7, include_background=include_background)
    dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=include_background)
    expected = NeighborAwareLoss()(logits, labels) + 0.7 * dice(logits, labels[:, None])
    assert loss(logits, labels[:, None]).item() == pytest.approx(expected.item(), rel=1e-6)


def masked_reference(name, logits, target, keep, ref_kwargs, dice_weight=0.0, include_background=True):
    """Reference mean over kept voxels plus Dice over kept voxels; returns (value, grad)."""
    xr = logits.double().requires_grad_(True)
    voxel = voxel_losses(name, xr, target, **ref_kwargs)
    value = voxel[keep].sum() / max(int(keep.sum()), 1)
    if dice_weight:
        y = target_distribution(target, logits.shape[1])
        value = value + dice_weight * dice_reference(xr, y, keep[:, None].double(), include_background).mean()
    (grad,) = torch.autograd.grad(value, xr)
    return value, grad


@pytest.mark.parametrize("name", ["ce", "nacl", "svls", "mbls", "ls", "ecp"])
def test_mask_and_ignore_index_exclude_voxels_from_every_term(name):
    logits, labels = make_case(2, num_classes=3, batch=2)
    rng = np.random.default_rng(4)
    mask = torch.from_numpy(rng.random(labels.shape) > 0.3)
    ignored = torch.from_numpy(rng.random(labels.shape) < 0.2)
    keep = mask & ~ignored
    stored = labels.masked_fill(ignored, 9)
    cls = {
        "ce": SegmentationCrossEntropyLoss,
        "nacl": NeighborAwareLoss,
        "svls": SpatialLabelSmoothingLoss,
        "mbls": MarginLabelSmoothingLoss,
        "ls": LabelSmoothingLoss,
        "ecp": ConfidencePenaltyLoss,
    }[name]
    loss = cls(dice_weight=0.5, include_background=False, ignore_index=9)
    ref_kw = {}
    if name == "nacl":
        ref_kw = {"prior": nacl_prior(labels, 3, unknown=ignored.numpy())}
    if name == "svls":
        ref_kw = {"prior": nacl_prior(labels, 3, kernel_ops="svls", border="replicate", unknown=ignored.numpy())}
    x = logits.clone().requires_grad_(True)
    value = loss(x, stored[:, None], mask=mask[:, None])
    value.backward()
    ref_value, ref_grad = masked_reference(name, logits, labels, keep, ref_kw, 0.5, False)
    assert value.item() == pytest.approx(ref_value.item(), rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), ref_grad.numpy(), rtol=1e-4, atol=1e-6)
    assert torch.all(x.grad.permute(1, 0, 2, 3)[:, ~keep] == 0)


def test_reductions():
    logits, labels = make_case(3)
    for cls in (NeighborAwareLoss, SpatialLabelSmoothingLoss, MarginLabelSmoothingLoss, ConfidencePenaltyLoss):
        mean = cls(dice_weight=0.5)(logits, labels)
        none = cls(dice_weight=0.5, reduction="none")(logits, labels)
        total = cls(reduction="sum")(logits, labels)
        assert none.shape == (2, 1, *SPATIAL[3])
        assert none.mean().item() == pytest.approx(mean.item(), rel=1e-5)
        assert total.item() == pytest.approx(cls()(logits, labels).item() * labels.numel(), rel=1e-5)
    summed = SegmentationCrossEntropyLoss(dice_weight=2.0, reduction="sum")(logits, labels)
    dice = DiceLoss(to_onehot_y=True, softmax=True, reduction="sum")(logits, labels[:, None])
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
    assert summed.item() == pytest.approx((ce + 2.0 * dice).item(), rel=1e-5)
    none = NeighborAwareLoss(reduction="none")(logits, labels, mask=torch.zeros_like(labels))
    assert torch.all(none == 0)
    assert NeighborAwareLoss()(logits, labels, mask=torch.zeros_like(labels)).item() == 0.0


def test_prior_argument_and_one_hot_target_give_the_same_loss():
    logits, labels = make_case(2)
    onehot = torch.from_numpy(one_hot_np(labels.numpy(), 3)).float()
    prior = nacl_prior(labels, 3, border="background").float()
    loss = NeighborAwareLoss(border="background")
    assert loss(logits, labels, prior=prior).item() == pytest.approx(loss(logits, labels).item(), rel=1e-6)
    assert loss(logits, onehot).item() == pytest.approx(loss(logits, labels).item(), rel=1e-6)
