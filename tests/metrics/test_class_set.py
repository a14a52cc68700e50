"""The classwise class set: ours averages over all C classes, the NACL authors' evaluation over 0..max(label) of the
counted voxels of each volume (their ClasswiseECELoss, github Bala93/MarginLoss calibrate/evaluation/metrics.py,
re-written in numpy in calibration_reference.authors_classwise_ece)."""

from __future__ import annotations

import pytest
import torch
from calibration_reference import authors_classwise_ece, cece, flatten

from monai_nacl.metrics import (
    SegmentationCalibrationMetric,
    calibration_statistics,
    calibration_values,
    classwise_calibration_error,
    evaluate_segmentation,
)


def _volumes(seed=0):
    """Four 4-class volumes: all classes, without class 3 (its highest), without class 2 (a middle one), only 1."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(4, 4, 9, 8, 7, generator=g, dtype=torch.float64) * 2, 1).float()
    labels = torch.randint(0, 4, (4, 1, 9, 8, 7), generator=g)
    labels[1][labels[1] == 3] = 1
    labels[2][labels[2] == 2] = 3
    labels[3][labels[3] > 1] = 1
    return probs, labels


def test_hand_computed_example():
    # two voxels of class 1, classes 0..2; one bin: ECE_c = |sum p_c - n_c| / N, class 2 above the highest label
    probs = torch.tensor([[[0.6, 0.2], [0.3, 0.7], [0.1, 0.1]]], dtype=torch.float64)
    labels = torch.tensor([[1, 1]])
    assert float(classwise_calibration_error(probs, labels, 1)) == pytest.approx((0.8 + 1.0 + 0.2) / 2 / 3)
    authors = float(classwise_calibration_error(probs, labels, 1, class_set="up_to_max_label"))
    assert authors == pytest.approx((0.8 + 1.0) / 2 / 2)


@pytest.mark.parametrize("num_bins", [15, 10])
def test_per_volume_against_the_authors_code(num_bins):
    probs, labels = _volumes()
    for b in range(4):
        mask = labels[b : b + 1] != 0
        p, q = flatten(probs[b : b + 1], labels[b : b + 1], mask)
        theirs = authors_classwise_ece(p, labels[b][labels[b] != 0].numpy(), num_bins)
        ours = classwise_calibration_error(
            probs[b : b + 1], labels[b : b + 1], num_bins, mask, class_set="up_to_max_label"
        )
        assert float(ours) == pytest.approx(theirs, abs=1e-9)
        assert float(classwise_calibration_error(probs[b : b + 1], labels[b : b + 1], num_bins, mask)) == (
            pytest.approx(cece(p, q, num_bins), abs=1e-12)
        )
    # the volume without its highest class: 4 x ours = 3 x theirs + the ECE of the missing class 3
    p, q = flatten(probs[1:2], labels[1:2], labels[1:2] != 0)
    theirs = authors_classwise_ece(p, labels[1][labels[1] != 0].numpy(), num_bins)
    assert 4 * cece(p, q, num_bins) == pytest.approx(3 * theirs + cece(p[:, 3:], q[:, 3:], num_bins), abs=1e-9)


def test_per_image_and_pooled_statistics():
    """Per-image statistics: each image's own 0..max(label); pooled: the max over all counted voxels (here 3)."""
    probs, labels = _volumes(seed=1)
    mask = labels != 0
    stats = calibration_statistics(probs, labels, mask=mask, per_image=True)
    per_image = calibration_values(stats, class_set="up_to_max_label")["cece"]
    for b in range(4):
        p, _ = flatten(probs[b : b + 1], labels[b : b + 1], mask[b : b + 1])
        assert float(per_image[b]) == pytest.approx(authors_classwise_ece(p, labels[b][mask[b]].numpy()), abs=1e-9)
    pooled = calibration_values(stats.sum(0), class_set="up_to_max_label")
    assert float(pooled["cece"]) == pytest.approx(float(calibration_values(stats.sum(0))["cece"]), abs=1e-15)
    p, _ = flatten(probs, labels, mask)
    assert float(pooled["cece"]) == pytest.approx(authors_classwise_ece(p, labels[mask].numpy()), abs=1e-9)


def test_streaming_metric_and_evaluation():
    probs, labels = _volumes(seed=2)
    expected = []
    for b in range(4):
        p, _ = flatten(probs[b : b + 1], labels[b : b + 1], labels[b : b + 1] != 0)
        expected.append(authors_classwise_ece(p, labels[b][labels[b] != 0].numpy()))
    metric = SegmentationCalibrationMetric(per_case=True, class_set="up_to_max_label")
    for b in range(0, 4, 2):
        metric(y_pred=probs[b : b + 2], y=labels[b : b + 2])
    assert metric.case_values()["cece"].tolist() == pytest.approx(expected, abs=1e-9)
    assert metric.aggregate()["cece"] == pytest.approx(sum(expected) / 4, abs=1e-9)
    result = evaluate_segmentation(probs, labels, class_set="up_to_max_label")
    assert result["per_case"]["cece"].tolist() == pytest.approx(expected, abs=1e-9)
    default = evaluate_segmentation(probs, labels)
    assert default["per_case"]["cece"][0] == pytest.approx(expected[0], abs=1e-9)  # volume 0 holds every class
    assert abs(float(default["per_case"]["cece"][1]) - expected[1]) > 1e-4


def test_empty_region_is_nan_and_bad_option_named():
    probs, labels = _volumes()
    empty = torch.zeros(1, 9, 8, 7, dtype=torch.bool)
    with pytest.warns(UserWarning, match="no voxel"):
        value = classwise_calibration_error(probs[:1], labels[:1], mask=empty, class_set="up_to_max_label")
    assert torch.isnan(value)
    with pytest.raises(ValueError, match="up_to_max_label"):
        SegmentationCalibrationMetric(class_set="authors")
