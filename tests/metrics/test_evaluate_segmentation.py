"""evaluate_segmentation: Dice against numpy, HD95 spacing and empty-case flags, calibration per case and pooled."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from calibration_reference import ece, flatten

from monai_nacl.metrics import evaluate_segmentation


def _probs_from_labels(pred, num_classes, confidence=0.8):
    """Probabilities whose argmax is ``pred`` (B, *spatial) with the given top confidence."""
    one_hot = torch.nn.functional.one_hot(pred, num_classes).movedim(-1, 1).double()
    return one_hot * confidence + (1 - one_hot) * (1 - confidence) / (num_classes - 1)


def test_dice_hd95_flags_and_calibration():
    labels = torch.zeros(2, 12, 12, 12, dtype=torch.long)
    labels[:, 2:7, 2:7, 2:7] = 1
    labels[0, 8:11, 8:11, 8:11] = 2
    pred = labels.clone()
    pred[0, 2:7, 2:7, 2:4] = 0  # class 1 partly missed in case 0
    pred[1, 8:10, 8:10, 8:10] = 2  # class 2 absent from reference in case 1: false positive
    probs = _probs_from_labels(pred, 3)
    result = evaluate_segmentation(probs, labels[:, None], spacing=(2.0, 2.0, 2.0))
    assert result["classes"] == [1, 2]
    dsc = result["per_case"]["dsc"]
    for i in (0, 1):
        for k in (1, 2):
            ref, out = (labels[i] == k).numpy(), (pred[i] == k).numpy()
            expected = 2 * (ref & out).sum() / (ref.sum() + out.sum()) if ref.any() else math.nan
            assert float(dsc[i, k - 1]) == pytest.approx(expected, nan_ok=True)
    assert result["per_case"]["empty_reference"].tolist() == [[False, False], [False, True]]
    assert math.isnan(float(result["per_case"]["hd95"][1, 1]))
    # spacing scales HD95: the same cases in voxel units give half the distances
    voxels = evaluate_segmentation(probs, labels[:, None])
    assert float(result["per_case"]["hd95"][0, 0]) == pytest.approx(2 * float(voxels["per_case"]["hd95"][0, 0]))
    assert float(result["per_case"]["hd95"][0, 0]) > 0
    # calibration over the ground-truth foreground, per case and pooled
    for i in (0, 1):
        p, q = flatten(probs[i : i + 1], labels[i : i + 1], (labels[i : i + 1] != 0).numpy())
        assert float(result["per_case"]["ece"][i]) == pytest.approx(ece(p, q), abs=1e-12)
    p, q = flatten(probs, labels, (labels != 0).numpy())
    assert result["pooled"]["ece"] == pytest.approx(ece(p, q), abs=1e-12)
    assert result["mean"]["ece"] == pytest.approx(float(result["per_case"]["ece"].mean()), abs=1e-12)
    assert result["mean"]["mean_dsc"] == pytest.approx(np.nanmean(dsc.numpy(), axis=0).mean(), abs=1e-12)


def test_empty_prediction_is_inf_and_flagged():
    labels = torch.zeros(1, 10, 10, dtype=torch.long)
    labels[0, 2:5, 2:5] = 1
    labels[0, 6:9, 6:9] = 2
    pred = labels.clone()
    pred[pred == 2] = 0
    result = evaluate_segmentation(_probs_from_labels(pred, 3), labels, spacing=[(1.0, 0.5)])
    assert result["per_case"]["empty_prediction"].tolist() == [[False, True]]
    assert math.isinf(float(result["per_case"]["hd95"][0, 1]))
    assert float(result["per_case"]["dsc"][0, 1]) == 0.0
    assert int(result["mean"]["hd95_empty_prediction"][1]) == 1
    assert math.isfinite(result["mean"]["mean_hd95"])


def test_cases_of_different_sizes():
    a = torch.zeros(8, 8, dtype=torch.long)
    a[2:5, 2:5] = 1
    b = torch.zeros(6, 9, dtype=torch.long)
    b[1:4, 3:7] = 1
    probs = [_probs_from_labels(a[None], 2)[0], _probs_from_labels(b[None], 2)[0]]
    result = evaluate_segmentation(probs, [a[None], b[None]])
    assert result["per_case"]["dsc"].tolist() == [[1.0], [1.0]]
    assert result["per_case"]["hd95"].tolist() == [[0.0], [0.0]]
    assert result["pooled"]["ece"] == pytest.approx(0.2, abs=1e-12)


@pytest.mark.parametrize(
    "shape, spacing",
    [
        ((23, 19, 17), (0.7, 1.3, 0.9375)),
        ((23, 19, 17), None),
        ((31, 27), (0.45, 2.0)),
        ((31, 27), [(1.5, 0.5), (0.3, 3.0)]),
    ],
)
def test_dice_and_hd95_equal_monai(shape, spacing):
    """DSC and HD95 equal MONAI's compute_dice / compute_hausdorff_distance on the argmax, to the last bit, for blobs
    that touch the grid's border, ties in the probabilities (the first maximum wins, as argmax) and any spacing,
    one for all cases or one per case."""
    from monai.metrics import compute_dice, compute_hausdorff_distance

    g = torch.Generator().manual_seed(3)
    num_classes = 4
    smooth = torch.nn.functional.avg_pool3d if len(shape) == 3 else torch.nn.functional.avg_pool2d
    noise = smooth(torch.rand(2, num_classes, *shape, generator=g), 5, stride=1, padding=2)
    probs = torch.softmax(8 * noise, 1)
    probs[:, :, : shape[0] // 3] = 1.0 / num_classes  # a tie everywhere in a slab
    labels = smooth(torch.rand(2, num_classes, *shape, generator=g), 5, stride=1, padding=2).argmax(1)
    labels[1][labels[1] == 3] = 0  # class 3 absent from case 1's reference
    result = evaluate_segmentation(probs, labels[:, None], spacing=spacing)
    prediction = torch.nn.functional.one_hot(probs.argmax(1), num_classes).movedim(-1, 1)
    reference = torch.nn.functional.one_hot(labels, num_classes).movedim(-1, 1)
    dice = compute_dice(prediction, reference, include_background=False, ignore_empty=True).double()
    assert torch.equal(result["per_case"]["dsc"].isnan(), dice.isnan())
    assert torch.equal(result["per_case"]["dsc"].nan_to_num(), dice.nan_to_num())
    hd95 = compute_hausdorff_distance(prediction, reference, percentile=95, spacing=spacing).double()
    present = ~result["per_case"]["empty_reference"] & ~result["per_case"]["empty_prediction"]
    assert bool(present[0].all()) and not bool(present[1, 2])
    assert torch.equal(result["per_case"]["hd95"][present], hd95[present])
    assert math.isnan(float(result["per_case"]["hd95"][1, 2]))


@pytest.mark.parametrize("size", [1, 2, 3, 20, 21, 97, 1000, 4099, 60001])
def test_percentile_95_equals_torch_quantile(size):
    """The partial-sort 95th percentile of the HD95 is torch.quantile's value to the last bit (MONAI's step)."""
    from monai_nacl.metrics.evaluation import _percentile_95

    g = np.random.default_rng(size)
    for distances in (g.random(size) * 20, np.sqrt(g.integers(0, 30, size) * 0.7), np.zeros(size)):
        expected = torch.quantile(torch.as_tensor(distances, dtype=torch.float32), 0.95)
        assert torch.equal(_percentile_95(distances), expected)
