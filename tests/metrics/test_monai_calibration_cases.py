"""MONAI 1.6.1's own CalibrationErrorMetric test inputs (tests/metrics/test_calibration_metric.py of Project-MONAI/MONAI):
single-channel and per-channel sigmoid probabilities give MONAI's values and shapes here, checked against the
literal expected numbers of MONAI's tests AND against the installed ``monai.metrics.CalibrationErrorMetric``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from calibration_reference import flatten_sigmoid, sigmoid_values
from monai.metrics import CalibrationErrorMetric, calibration_binning

from monai_nacl.metrics import (
    SegmentationCalibrationMetric,
    brier_score,
    calibration_statistics,
    calibration_values,
    classwise_calibration_error,
    expected_calibration_error,
    marginal_calibration_error,
    marginal_statistics,
    negative_log_likelihood,
)

NAN = float("nan")

# MONAI's inputs, copied from its test file: one image and channel (1b1c), two images of two channels (2b2c) whose
# channels do not sum to 1 (per-channel sigmoid probabilities)
PRED_1B1C = torch.tensor([[[[0.7, 0.3], [0.1, 0.9]]]])
LABEL_1B1C = torch.tensor([[[[1, 0], [0, 1]]]])
PRED_2B2C = torch.tensor(
    [[[[0.7, 0.3], [0.1, 0.9]], [[0.7, 0.3], [0.5, 0.5]]], [[[0.9, 0.9], [0.3, 0.3]], [[0.1, 0.1], [0.9, 0.7]]]]
)
LABEL_2B2C = torch.tensor([[[[1, 0], [0, 1]], [[0, 1], [1, 0]]], [[[1, 1], [0, 0]], [[0, 0], [1, 1]]]])

# MONAI's expected values per (image, channel), 5 bins: expected, average, maximum
VALUE_CASES = {
    "1b1c": (PRED_1B1C, LABEL_1B1C, [[0.2]], [[0.2]], [[0.3]]),
    "2b2c": (
        PRED_2B2C,
        LABEL_2B2C,
        [[0.2000, 0.3500], [0.2000, 0.1500]],
        [[0.2000, 0.4667], [0.2000, 0.1667]],
        [[0.3000, 0.7000], [0.3000, 0.3000]],
    ),
}
REDUCTIONS = ("expected", "average", "maximum")


def _monai(y_pred, y, reduction, include_background=True, metric_reduction="none"):
    metric = CalibrationErrorMetric(
        num_bins=5,
        include_background=include_background,
        calibration_reduction=reduction,
        metric_reduction=metric_reduction,
    )
    metric(y_pred=y_pred, y=y)
    return metric.aggregate()


@pytest.mark.parametrize("case", list(VALUE_CASES))
@pytest.mark.parametrize("k", range(3))
def test_marginal_values_of_monai_cases(case, k):
    y_pred, y, *expected = VALUE_CASES[case]
    reduction = REDUCTIONS[k]
    ours = marginal_calibration_error(y_pred, y, num_bins=5, reduction=reduction, activation="sigmoid")
    assert ours.shape == _monai(y_pred, y, reduction).shape == (y_pred.shape[0], y_pred.shape[1])
    assert torch.allclose(ours, torch.tensor(expected[k], dtype=torch.float64), atol=1e-4, rtol=0)  # MONAI's numbers
    assert torch.allclose(ours, _monai(y_pred, y, reduction).double(), atol=1e-6, rtol=0)
    if case == "1b1c":  # a single channel is a sigmoid without being told
        assert torch.equal(ours, marginal_calibration_error(y_pred, y, num_bins=5, reduction=reduction))


def test_softmax_reading_refuses_per_channel_probabilities_with_the_fix():
    with pytest.raises(ValueError, match="activation='sigmoid'"):
        marginal_calibration_error(PRED_2B2C, LABEL_2B2C, num_bins=5)


@pytest.mark.parametrize(
    "y_pred, y, mean_p, mean_gt, counts",
    [
        (  # MONAI's "small_mid"
            PRED_1B1C,
            LABEL_1B1C,
            [[[0.1, 0.3, NAN, 0.7, 0.9]]],
            [[[0.0, 0.0, NAN, 1.0, 1.0]]],
            [[[1.0, 1.0, 0.0, 1.0, 1.0]]],
        ),
        (  # MONAI's "large_mid"
            PRED_2B2C,
            LABEL_2B2C,
            [
                [[0.1, 0.3, NAN, 0.7, 0.9], [NAN, 0.3, 0.5, 0.7, NAN]],
                [[NAN, 0.3, NAN, NAN, 0.9], [0.1, NAN, NAN, 0.7, 0.9]],
            ],
            [
                [[0.0, 0.0, NAN, 1.0, 1.0], [NAN, 1.0, 0.5, 0.0, NAN]],
                [[NAN, 0.0, NAN, NAN, 1.0], [0.0, NAN, NAN, 1.0, 1.0]],
            ],
            [
                [[1.0, 1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 2.0, 1.0, 0.0]],
                [[0.0, 2.0, 0.0, 0.0, 2.0], [2.0, 0.0, 0.0, 1.0, 1.0]],
            ],
        ),
    ],
)
def test_marginal_binning_of_monai_cases(y_pred, y, mean_p, mean_gt, counts):
    hist = marginal_statistics(y_pred, y, num_bins=5, activation="sigmoid")  # (B, C, 3, bins) sums
    count, sum_p, sum_gt = hist.unbind(2)
    assert count.tolist() == counts
    means = (sum_p / count, sum_gt / count)
    for ours, expected in zip(means, (torch.tensor(mean_p), torch.tensor(mean_gt))):
        assert torch.equal(torch.isnan(ours), torch.isnan(expected))
        assert torch.allclose(ours[~torch.isnan(ours)], expected[~torch.isnan(expected)].double(), atol=1e-6)
    monai_p, monai_gt, monai_counts = calibration_binning(y_pred, y, num_bins=5)  # the installed MONAI
    assert torch.equal(count.float(), monai_counts)
    for ours, theirs in zip(means, (monai_p, monai_gt)):
        assert torch.allclose(ours, theirs.double(), atol=1e-6, equal_nan=True)


def test_values_on_bin_edges_fall_as_in_monai():
    """MONAI's "small_left_edge" input (0.2, 0.4, 0.6, 0.8): MONAI's unmocked float32 edges decide, as here."""
    y_pred = torch.tensor([[[[0.8, 0.2], [0.4, 0.6]]]])
    y = torch.tensor([[[[1, 0], [0, 1]]]])
    _, _, monai_counts = calibration_binning(y_pred, y, num_bins=5)
    assert marginal_statistics(y_pred, y, num_bins=5)[:, :, 0].float().tolist() == monai_counts.tolist()
    for reduction in REDUCTIONS:
        ours = marginal_calibration_error(y_pred, y, num_bins=5, reduction=reduction)
        assert torch.allclose(ours, _monai(y_pred, y, reduction).double(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("include_background, expected", [(True, 0.2250), (False, 0.2500)])
def test_streaming_metric_aggregates_as_monai(include_background, expected):
    """MONAI's test_metric_reduction_mean and test_include_background_false: the mean over images and channels, and
    the per image and channel values as MONAI buffers them."""
    metric = SegmentationCalibrationMetric(
        region="all", marginal_bins=5, marginal_include_background=include_background, activation="sigmoid"
    )
    metric(y_pred=PRED_2B2C, y=LABEL_2B2C)
    result = metric.aggregate()
    assert result["marginal_ece"] == pytest.approx(expected, abs=1e-4)
    for name, reduction in zip(("marginal_ece", "marginal_ace", "marginal_mce"), REDUCTIONS):
        monai_mean = float(_monai(PRED_2B2C, LABEL_2B2C, reduction, include_background, metric_reduction="mean"))
        assert result[name] == pytest.approx(monai_mean, abs=1e-6)
        per_class = metric.marginal_class_values()[name]
        monai_none = _monai(PRED_2B2C, LABEL_2B2C, reduction, include_background)
        assert per_class.shape == monai_none.shape == (2, 2 if include_background else 1)
        assert torch.allclose(per_class, monai_none.double(), atol=1e-6, rtol=0)


def test_cumulative_iterations_and_reset():
    """MONAI's test_cumulative_iterations: the same single-channel image twice still gives 0.2; reset empties."""
    metric = SegmentationCalibrationMetric(region="all", marginal_bins=5)
    metric(y_pred=PRED_1B1C, y=LABEL_1B1C)
    metric(y_pred=PRED_1B1C, y=LABEL_1B1C)
    assert metric.aggregate()["marginal_ece"] == pytest.approx(0.2, abs=1e-4)
    assert metric.marginal_class_values()["marginal_ece"].shape == (2, 1)
    metric.reset()
    assert metric.get_buffer() is None


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        marginal_calibration_error(PRED_1B1C, torch.tensor([[[[1, 0], [0, 1], [0, 0]]]]), num_bins=5)


def test_empty_image_gives_nan_row_as_monai():
    """MONAI's empty-bin cases: an image without counted voxels is NaN in every reduction."""
    mask = torch.ones(2, 2, 2, dtype=torch.bool)
    mask[1] = False
    for reduction in REDUCTIONS:
        values = marginal_calibration_error(PRED_2B2C, LABEL_2B2C, 5, reduction, mask=mask, activation="sigmoid")
        assert torch.isnan(values[1]).all() and not torch.isnan(values[0]).any()


def _sigmoid_case(shape=(2, 3, 9, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.sigmoid(torch.randn(shape, generator=g, dtype=torch.float64) * 3).float()
    labels = (torch.rand(shape, generator=g) < 0.3).long()  # multi-label: channels overlap freely
    return probs, labels


def test_sigmoid_pooled_values_match_reference():
    """Each channel a binary problem: pooled values against a slow numpy reference, with and without a mask."""
    probs, labels = _sigmoid_case()
    mask = labels.any(1)
    for m in (None, mask):
        reference = sigmoid_values(*flatten_sigmoid(probs, labels, m))
        values = calibration_values(calibration_statistics(probs, labels, mask=m, activation="sigmoid"))
        for name in ("ece", "cece", "nll", "brier"):
            assert float(values[name]) == pytest.approx(reference[name], abs=1e-12), name
        assert float(expected_calibration_error(probs, labels, mask=m, activation="sigmoid")) == pytest.approx(
            reference["ece"], abs=1e-12
        )
        assert float(classwise_calibration_error(probs, labels, mask=m, activation="sigmoid")) == pytest.approx(
            reference["cece"], abs=1e-12
        )
        assert float(negative_log_likelihood(probs, labels, m, activation="sigmoid")) == pytest.approx(
            reference["nll"], abs=1e-12
        )
        assert float(brier_score(probs, labels, m, activation="sigmoid")) == pytest.approx(
            reference["brier"], abs=1e-12
        )


def test_single_channel_equals_its_two_class_softmax():
    """One sigmoid channel p is the two-class softmax [1 - p, p]: same ECE, CECE of the positive class, NLL, and
    half the two-class Brier (the binary Brier score (p - y)^2)."""
    probs, labels = _sigmoid_case(shape=(2, 1, 10, 7), seed=3)
    probs = probs.double()
    two = torch.cat([1 - probs, probs], dim=1)
    one = calibration_values(calibration_statistics(probs, labels))
    both = calibration_values(calibration_statistics(two, labels))
    assert float(one["ece"]) == pytest.approx(float(both["ece"]), abs=1e-12)
    assert float(one["nll"]) == pytest.approx(float(both["nll"]), abs=1e-12)
    assert float(one["brier"]) == pytest.approx(float(both["brier"]) / 2, abs=1e-12)
    p, q = flatten_sigmoid(probs, labels)
    assert float(one["cece"]) == pytest.approx(sigmoid_values(p, q)["cece"], abs=1e-12)


def test_sigmoid_foreground_is_any_positive_channel():
    probs, labels = _sigmoid_case(seed=5)
    metric = SegmentationCalibrationMetric(activation="sigmoid", per_case=True)
    metric(y_pred=probs, y=labels)
    for b in range(2):
        m = labels[b : b + 1].any(1)
        reference = sigmoid_values(*flatten_sigmoid(probs[b : b + 1], labels[b : b + 1], m))
        assert float(metric.case_values()["ece"][b]) == pytest.approx(reference["ece"], abs=1e-12)
        assert float(metric.case_values()["cece"][b]) == pytest.approx(reference["cece"], abs=1e-12)


def test_sigmoid_reference_out_of_range_is_refused():
    probs, labels = _sigmoid_case()
    with pytest.raises(ValueError, match="per-channel reference in"):
        calibration_statistics(probs, labels * 2, activation="sigmoid")
    with pytest.raises(ValueError, match="torch.sigmoid"):
        calibration_statistics(probs * 3 - 1, labels, activation="sigmoid")


def test_monai_and_ours_agree_on_random_sigmoid_volumes():
    probs, labels = _sigmoid_case(shape=(3, 4, 7, 6, 5), seed=11)
    for reduction in REDUCTIONS:
        ours = marginal_calibration_error(probs, labels, num_bins=20, reduction=reduction, activation="sigmoid")
        metric = CalibrationErrorMetric(num_bins=20, calibration_reduction=reduction, metric_reduction="none")
        metric(y_pred=probs, y=labels)
        assert torch.allclose(ours, metric.aggregate().double(), atol=1e-6, rtol=0, equal_nan=True)
    assert np.isfinite(float(expected_calibration_error(probs, labels, activation="sigmoid")))
