"""Input checking, numerical safety, the factory and bundle-config resolution of the calibration losses."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser
from monai.losses import FocalLoss

import monai_nacl
from monai_nacl.losses import (
    LOSS_NAMES,
    ConfidencePenaltyLoss,
    LabelSmoothingLoss,
    MarginLabelSmoothingLoss,
    NeighborAwareLoss,
    SegmentationCrossEntropyLoss,
    SpatialLabelSmoothingLoss,
    create_calibration_loss,
)

CLASSES = [
    SegmentationCrossEntropyLoss,
    NeighborAwareLoss,
    SpatialLabelSmoothingLoss,
    MarginLabelSmoothingLoss,
    ConfidencePenaltyLoss,
    LabelSmoothingLoss,
]


def test_package_import_exposes_losses():
    assert monai_nacl.losses.NeighborAwareLoss is NeighborAwareLoss


@pytest.mark.parametrize("cls", CLASSES)
def test_extreme_logits_and_low_precision_autocast(cls):
    labels = torch.randint(0, 3, (2, 1, 6, 5, 4), generator=torch.Generator().manual_seed(0))
    extreme = (torch.randint(0, 2, (2, 3, 6, 5, 4), generator=torch.Generator().manual_seed(1)) * 2 - 1) * 1e4
    x = extreme.float().requires_grad_(True)
    loss = cls(dice_weight=1.0)
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
    xh = logits.half().requires_grad_(True)
    assert loss(xh, labels).item() == pytest.approx(loss(logits.half().float(), labels).item(), rel=1e-5)


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_input_messages(cls):
    loss = cls()
    logits = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"\(2, 2, 4, 4\).*\(2, 3, 4, 4\)"):
        loss(logits, torch.zeros(2, 2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[3, 3\]"):
        loss(logits, torch.full((2, 1, 4, 4), 3))
    with pytest.raises(ValueError, match=r"\[-1, -1\]"):
        loss(logits, torch.full((2, 4, 4), -1))
    with pytest.raises(ValueError, match="non-integer"):
        loss(logits, torch.full((2, 1, 4, 4), 1.5))
    with pytest.raises(ValueError, match="C >= 2"):
        loss(torch.randn(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"mask shape \(2, 1, 3, 4\)"):
        loss(logits, torch.zeros(2, 1, 4, 4), mask=torch.ones(2, 1, 3, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        loss(logits, torch.full((2, 3, 4, 4), 2.0))
    bad = logits.clone()
    bad[0, 0, 0, 0] = float("nan")
    assert torch.isnan(loss(bad, torch.zeros(2, 1, 4, 4)))  # off by default: no extra pass
    with pytest.raises(ValueError, match="NaN or infinite"):
        cls(check_finite=True)(bad, torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="reduction|mean"):
        cls(reduction="average")


def test_bad_constructor_arguments():
    for kwargs in ({"kernel_size": 2}, {"kernel_size": 0}, {"kernel_size": 3.0}):
        with pytest.raises(ValueError, match="odd integer"):
            NeighborAwareLoss(**kwargs)
        with pytest.raises(ValueError, match="odd integer"):
            SpatialLabelSmoothingLoss(**kwargs)
    with pytest.raises(ValueError, match="distance_type"):
        NeighborAwareLoss(distance_type="cosine")
    with pytest.raises(ValueError, match="border"):
        NeighborAwareLoss(border="circular")
    with pytest.raises(ValueError, match="prior shape"):
        NeighborAwareLoss()(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4), prior=torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="alpha"):
        LabelSmoothingLoss(alpha=1.5)


def test_factory_defaults():
    assert LOSS_NAMES == (
        "ce", "dice_ce", "focal", "ls", "ecp", "svls", "mbls", "nacl", "dice_nacl", "adaptive_nacl", "ml1ace"
    )  # fmt: skip
    logits = torch.randn(2, 3, 6, 6)
    labels = torch.randint(0, 3, (2, 1, 6, 6))
    for name in LOSS_NAMES:
        loss = create_calibration_loss(name, **({"num_classes": 3} if name == "adaptive_nacl" else {}))
        assert torch.isfinite(loss(logits, labels))
    with pytest.raises(ValueError, match="num_classes"):
        create_calibration_loss("adaptive_nacl")
    crac = create_calibration_loss("adaptive_nacl", num_classes=3)
    assert (crac.margin, crac.kernel_size, crac.penalty_rho.shape) == (5.0, 3, (2, 3))
    assert torch.allclose(crac.penalty_rho, torch.tensor(0.1))
    ace = create_calibration_loss("ml1ace")
    assert (ace.ce_weight, ace.dice_weight, ace.ace_weight, ace.num_bins, ace.binning) == (0.33, 0.33, 0.33, 20, "hard")
    focal = create_calibration_loss("focal")
    assert isinstance(focal, FocalLoss) and focal.gamma == 3.0 and focal.use_softmax and focal.to_onehot_y
    nacl = create_calibration_loss("dice_nacl", alpha=0.2)
    assert (nacl.alpha, nacl.dice_weight, nacl.kernel_size, nacl.border) == (0.2, 1.0, 3, "zeros")
    assert create_calibration_loss("dice_ce").dice_weight == 1.0
    assert create_calibration_loss("mbls").margin == 10.0
    with pytest.raises(ValueError, match="dice_nacl"):
        create_calibration_loss("nacl2")


@pytest.mark.parametrize("cls", CLASSES)
def test_bundle_config_by_dotted_path_and_bare_name(cls):
    for target in (f"monai_nacl.losses.{cls.__name__}", cls.__name__):
        parser = ConfigParser({"loss": {"_target_": target, "reduction": "sum"}})
        loss = parser.get_parsed_content("loss")
        assert type(loss) is cls and loss.reduction == "sum"


def test_no_name_collides_with_monai():
    import monai.losses
    import monai.transforms

    for name in monai_nacl.losses.__all__ + monai_nacl.transforms.__all__:
        assert not hasattr(monai.losses, name) and not hasattr(monai.transforms, name), name
