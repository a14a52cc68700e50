"""MarginalL1ACELoss against a bin-by-bin float64 reference (value and gradient), MONAI's metric, and its options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from loss_reference import ace_reference, dice_reference, log_softmax, one_hot_np
from monai.bundle import ConfigParser
from monai.metrics import CalibrationErrorMetric

from monai_nacl.losses import MarginalL1ACELoss

SPATIAL = {1: (40,), 2: (9, 8), 3: (6, 5, 4)}


def make_case(dims: int, num_classes: int = 3, batch: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed + dims)
    logits = torch.randn(batch, num_classes, *SPATIAL[dims], generator=gen) * 2
    labels = torch.randint(0, num_classes, (batch, *SPATIAL[dims]), generator=gen)
    return logits, labels


def reference(logits, y, keep=None, ce_weight=1.0, dice_weight=0.0, ace_weight=1.0, **ace_kw):
    """Reference loss (value, grad): CE over kept voxels + Dice + ACE means, float64 autograd."""
    xr = logits.double().requires_grad_(True)
    ce = -(y * log_softmax(xr)).sum(1)
    value = ce.mean() if keep is None else ce[keep].sum() / max(int(keep.sum()), 1)
    value = ce_weight * value
    if dice_weight:
        weight = torch.ones_like(y[:, :1]) if keep is None else keep[:, None].double()
        value = value + dice_weight * dice_reference(xr, y, weight, ace_kw.get("include_background", True)).mean()
    value = value + ace_weight * ace_reference(xr, y, keep=keep, **ace_kw).mean()
    (grad,) = torch.autograd.grad(value, xr)
    return value, grad


def ours(loss, logits, target, **kwargs):
    x = logits.clone().requires_grad_(True)
    value = loss(x, target, **kwargs)
    (grad,) = torch.autograd.grad(value, x)
    return value, grad


def assert_match(value, grad, ref_value, ref_grad):
    assert value.dtype == torch.float32
    np.testing.assert_allclose(value.item(), ref_value.item(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("binning", ["hard", "soft"])
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"ce_weight": 0.0, "num_bins": 7},
        {"ce_weight": 0.33, "dice_weight": 0.33, "ace_weight": 0.33, "include_background": False},
        {"ignore_empty_classes": False, "num_bins": 5},
    ],
)
def test_value_and_gradient_match_reference(dims, binning, config):
    logits, labels = make_case(dims, num_classes=4)
    labels[0][labels[0] == 2] = 1  # class 2 absent from image 0: exercises ignore_empty_classes
    y = torch.from_numpy(one_hot_np(labels.numpy(), 4))
    loss = MarginalL1ACELoss(binning=binning, **config)
    ace_kw = {k: config[k] for k in ("num_bins", "include_background", "ignore_empty_classes") if k in config}
    weights = {k: config[k] for k in ("ce_weight", "dice_weight", "ace_weight") if k in config}
    assert_match(*ours(loss, logits, labels[:, None]), *reference(logits, y, binning=binning, **weights, **ace_kw))


def test_hard_ace_equals_monai_average_calibration_error():
    logits, labels = make_case(3, num_classes=4, batch=3)
    onehot = torch.from_numpy(one_hot_np(labels.numpy(), 4)).float()
    metric = CalibrationErrorMetric(num_bins=20, include_background=True, calibration_reduction="average")
    expected = metric(torch.softmax(logits, 1), onehot).mean()
    value = MarginalL1ACELoss(ce_weight=0.0, ignore_empty_classes=False)(logits, labels)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_empty_bins_are_skipped_and_absent_classes_count_zero():
    # 2 classes, 4 voxels; p_1 = 0.9, 0.9, 0.2, 0.2 and labels 1, 0, 0, 0: class 1 bins (0.85, 0.9] and
    # (0.15, 0.2] hold mean gaps |0.9 - 0.5| and |0.2 - 0|, mean 0.3; class 0 (p_0 = 0.1, 0.1, 0.8, 0.8) the same.
    p1 = torch.tensor([0.9, 0.9, 0.2, 0.2])
    logits = torch.stack([torch.zeros(4), torch.log(p1 / (1 - p1))])[None]
    labels = torch.tensor([[1, 0, 0, 0]])
    loss = MarginalL1ACELoss(ce_weight=0.0)
    assert loss(logits, labels).item() == pytest.approx(0.3, rel=1e-5)
    # all background: class 1 is absent, its ACE counts 0 in the mean over (image, class)
    absent = loss(logits, torch.zeros_like(labels))
    background_gap = (abs(0.1 - 1) + abs(0.8 - 1)) / 2
    assert absent.item() == pytest.approx(background_gap / 2, rel=1e-5)
    kept = MarginalL1ACELoss(ce_weight=0.0, ignore_empty_classes=False)(logits, torch.zeros_like(labels))
    assert kept.item() == pytest.approx((background_gap + (0.9 + 0.2) / 2) / 2, rel=1e-5)


@pytest.mark.parametrize("binning", ["hard", "soft"])
def test_mask_and_ignore_index_exclude_voxels(binning):
    logits, labels = make_case(2)
    rng = np.random.default_rng(4)
    mask = torch.from_numpy(rng.random(labels.shape) > 0.3)
    ignored = torch.from_numpy(rng.random(labels.shape) < 0.2)
    keep = mask & ~ignored
    y = torch.from_numpy(one_hot_np(labels.numpy(), 3))
    loss = MarginalL1ACELoss(binning=binning, dice_weight=0.5, ignore_index=9)
    stored = labels.masked_fill(ignored, 9)
    value, grad = ours(loss, logits, stored[:, None], mask=mask[:, None])
    assert_match(value, grad, *reference(logits, y, keep=keep, dice_weight=0.5, binning=binning))
    assert torch.all(grad.permute(1, 0, 2, 3)[:, ~keep] == 0)


@pytest.mark.parametrize("binning", ["hard", "soft"])
@pytest.mark.parametrize("target", ["labels", "onehot"])
def test_volumes_above_one_chunk_match_reference(binning, target):
    """The bin statistics are float32 partial sums per chunk of 65536 voxels, added in float64: a 2D image of
    300 x 240 voxels (two chunks) with a mask, against the float64 reference."""
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 3, 300, 240, generator=gen) * 3
    labels = torch.randint(0, 3, (2, 300, 240), generator=gen)
    keep = torch.rand(2, 300, 240, generator=gen) > 0.25
    y = torch.from_numpy(one_hot_np(labels.numpy(), 3))
    given = labels[:, None] if target == "labels" else y.float()
    loss = MarginalL1ACELoss(binning=binning, ce_weight=0.0, num_bins=15)
    value, grad = ours(loss, logits, given, mask=keep[:, None])
    ref_value, ref_grad = reference(logits, y, keep=keep, ce_weight=0.0, binning=binning, num_bins=15)
    np.testing.assert_allclose(value.item(), ref_value.item(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("binning", ["hard", "soft"])
def test_soft_and_one_hot_targets(binning):
    logits, labels = make_case(3)
    onehot = torch.from_numpy(one_hot_np(labels.numpy(), 3)).float()
    loss = MarginalL1ACELoss(binning=binning)
    assert loss(logits, onehot).item() == pytest.approx(loss(logits, labels).item(), rel=1e-6)
    soft = torch.softmax(torch.randn(logits.shape, generator=torch.Generator().manual_seed(7)), 1)
    assert_match(*ours(loss, logits, soft), *reference(logits, soft.double(), binning=binning))


def test_reductions():
    logits, labels = make_case(3)
    mean = MarginalL1ACELoss(dice_weight=0.5)(logits, labels)
    none = MarginalL1ACELoss(dice_weight=0.5, reduction="none")(logits, labels)
    assert none.shape == (2, 1, *SPATIAL[3])
    assert none.mean().item() == pytest.approx(mean.item(), rel=1e-5)
    total = MarginalL1ACELoss(reduction="sum")(logits, labels)
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
    ace = MarginalL1ACELoss(ce_weight=0.0, reduction="sum")(logits, labels)
    assert total.item() == pytest.approx((ce + ace).item(), rel=1e-5)
    per_pair = MarginalL1ACELoss(ce_weight=0.0)(logits, labels)
    assert ace.item() == pytest.approx(per_pair.item() * 2 * 3, rel=1e-5)


@pytest.mark.parametrize("binning", ["hard", "soft"])
def test_extreme_logits_and_low_precision_autocast(binning):
    labels = torch.randint(0, 3, (2, 1, 6, 5, 4), generator=torch.Generator().manual_seed(0))
    extreme = (torch.randint(0, 2, (2, 3, 6, 5, 4), generator=torch.Generator().manual_seed(1)) * 2 - 1) * 1e4
    loss = MarginalL1ACELoss(binning=binning, dice_weight=1.0)
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


def test_bad_arguments_and_inputs():
    for kwargs, match in (
        ({"num_bins": 0}, "num_bins"),
        ({"num_bins": 2.5}, "num_bins"),
        ({"binning": "adaptive"}, "binning"),
        ({"ce_weight": -1.0}, "ce_weight"),
        ({"ace_weight": -1.0}, "ace_weight"),
        ({"dice_weight": -1.0}, "dice_weight"),
        ({"min_bin_weight": 0.0}, "min_bin_weight"),
        ({"reduction": "average"}, "reduction"),
    ):
        with pytest.raises(ValueError, match=match):
            MarginalL1ACELoss(**kwargs)
    loss = MarginalL1ACELoss()
    logits = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"\(2, 2, 4, 4\).*\(2, 3, 4, 4\)"):
        loss(logits, torch.zeros(2, 2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[3, 3\]"):
        loss(logits, torch.full((2, 1, 4, 4), 3))
    with pytest.raises(ValueError, match="C >= 2"):
        loss(torch.randn(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))


def test_bundle_config_by_dotted_path():
    config = {"_target_": "monai_nacl.losses.MarginalL1ACELoss", "binning": "soft", "ace_weight": 0.33}
    loss = ConfigParser({"loss": config}).get_parsed_content("loss")
    assert type(loss) is MarginalL1ACELoss and loss.binning == "soft" and loss.ace_weight == 0.33
