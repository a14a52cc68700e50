"""The worked 2-D example of MONAI's NACLLoss unit test (tests/losses/test_nacl_loss.py, Apache-2.0, MONAI
Consortium): 1 image, 3 classes, 4x4. Expected values are the ones REFERENCE.md and MONAI's test state."""

from __future__ import annotations

import pytest
import torch

from monai_nacl.losses import (
    NeighborAwareLoss,
    SegmentationCrossEntropyLoss,
    SpatialLabelSmoothingLoss,
)

LOGITS = torch.tensor(
    [
        [
            [[0.1498, 0.1158, 0.3996, 0.3730], [0.2155, 0.1585, 0.8541, 0.8579],
             [0.6640, 0.2424, 0.0774, 0.0324], [0.0580, 0.2180, 0.3447, 0.8722]],
            [[0.3908, 0.9366, 0.1779, 0.1003], [0.9630, 0.6118, 0.4405, 0.7916],
             [0.5782, 0.9515, 0.4088, 0.3946], [0.7860, 0.3910, 0.0324, 0.9568]],
            [[0.0759, 0.0238, 0.5570, 0.1691], [0.2703, 0.7722, 0.1611, 0.6431],
             [0.8051, 0.6596, 0.4121, 0.1125], [0.5283, 0.6746, 0.5528, 0.7913]],
        ]
    ]
)  # fmt: skip
LABELS = torch.tensor([[[1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 1, 0], [0, 1, 0, 0]]])


@pytest.mark.parametrize(
    "loss,expected",
    [
        (SegmentationCrossEntropyLoss(), 1.1093),
        (NeighborAwareLoss(), 1.1442),
        (NeighborAwareLoss(distance_type="l2"), 1.1269),
        (NeighborAwareLoss(alpha=0.2), 1.1790),
        (NeighborAwareLoss(kernel_ops="gaussian"), 1.1433),
        (NeighborAwareLoss(kernel_ops="gaussian", sigma=0.5), 1.1469),
        (NeighborAwareLoss(border="background"), 1.1459),
        (SpatialLabelSmoothingLoss(), 1.1076),
    ],
)
def test_worked_example(loss, expected):
    assert loss(LOGITS, LABELS).item() == pytest.approx(expected, abs=1e-4)
    assert loss(LOGITS.repeat(4, 1, 1, 1), LABELS.repeat(4, 1, 1)[:, None]).item() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("alpha,num_classes", [(0.1, 3), (0.05, 3), (0.1, 4)])
def test_confidence_cap_in_a_homogeneous_window(alpha: float, num_classes: int) -> None:
    """Free logits minimising NACL on a one-class image reach ``softmax_y = 1 - alpha / C`` (derivation in the
    class's note), not 1 as cross-entropy would: the mechanism behind NACL's under-confidence on easy voxels."""
    torch.manual_seed(0)
    loss = NeighborAwareLoss(alpha=alpha, border="replicate")  # tau = e_y everywhere, edges included
    logits = torch.zeros(1, num_classes, 4, 4, requires_grad=True)
    labels = torch.ones(1, 1, 4, 4, dtype=torch.long)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    for _ in range(1500):
        optimizer.zero_grad()
        loss(logits, labels).backward()
        optimizer.step()
    probs = logits.detach().softmax(1)
    assert probs[:, 1].mean().item() == pytest.approx(1 - alpha / num_classes, abs=5e-4)
    others = logits.detach()[:, [k for k in range(num_classes) if k != 1]]
    assert others.abs().max().item() < 0.05  # the other logits sit at their prior, 0
