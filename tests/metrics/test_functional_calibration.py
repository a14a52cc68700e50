"""Functional calibration metrics against slow float64 numpy references and torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from calibration_reference import ace, adaece_exact, brier, cace, cece, ece, flatten, marginal, mce, nll, top_label

import monai_nacl.metrics.statistics as statistics_module
from monai_nacl.metrics import (
    adaptive_calibration_error,
    average_calibration_error,
    brier_score,
    calibration_statistics,
    calibration_values,
    classwise_calibration_error,
    expected_calibration_error,
    marginal_calibration_error,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability_statistics,
)


def _case(shape=(2, 4, 9, 8, 7), scale=3.0, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    probs = torch.softmax(logits, 1).to(dtype)
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=g)
    return probs, labels


@pytest.mark.parametrize("num_bins", [15, 10])
def test_hard_labels_match_reference(num_bins):
    probs, labels = _case()
    mask = labels != 0
    for m in (None, mask):
        p, q = flatten(probs, labels, m)
        assert float(expected_calibration_error(probs, labels, num_bins, m)) == pytest.approx(
            ece(p, q, num_bins), abs=1e-12
        )
        assert float(classwise_calibration_error(probs, labels, num_bins, m)) == pytest.approx(
            cece(p, q, num_bins), abs=1e-12
        )
        assert float(maximum_calibration_error(probs, labels, num_bins, m)) == pytest.approx(
            mce(p, q, num_bins), abs=1e-12
        )
        assert float(average_calibration_error(probs, labels, num_bins, m)) == pytest.approx(
            ace(p, q, num_bins), abs=1e-12
        )
        assert float(average_calibration_error(probs, labels, num_bins, m, classwise=True)) == pytest.approx(
            cace(p, q, num_bins), abs=1e-12
        )
        assert float(negative_log_likelihood(probs, labels, m)) == pytest.approx(nll(p, q), abs=1e-12)
        assert float(brier_score(probs, labels, m)) == pytest.approx(brier(p, q), abs=1e-12)


def test_label_forms_agree():
    """(B,1,...), (B,...), one-hot (B,C,...) and float labels give the same values."""
    probs, labels = _case(shape=(2, 3, 6, 5))
    one_hot = torch.nn.functional.one_hot(labels[:, 0], 3).movedim(-1, 1).float()
    expected = float(expected_calibration_error(probs, labels))
    for form in (labels[:, 0], one_hot, labels.float()):
        assert float(expected_calibration_error(probs, form)) == pytest.approx(expected, abs=1e-15)
        assert float(classwise_calibration_error(probs, form)) == pytest.approx(
            float(classwise_calibration_error(probs, labels)), abs=1e-15
        )


def test_soft_reference_matches_reference():
    probs, _ = _case(shape=(2, 3, 7, 6))
    g = torch.Generator().manual_seed(5)
    soft = torch.softmax(torch.randn(probs.shape, generator=g, dtype=torch.float64) * 2, 1)
    p, q = flatten(probs, soft)
    assert float(expected_calibration_error(probs, soft)) == pytest.approx(ece(p, q), abs=1e-12)
    assert float(classwise_calibration_error(probs, soft)) == pytest.approx(cece(p, q), abs=1e-12)
    assert float(negative_log_likelihood(probs, soft)) == pytest.approx(nll(p, q), abs=1e-12)
    assert float(brier_score(probs, soft)) == pytest.approx(brier(p, q), abs=1e-12)


@pytest.mark.parametrize("classwise", [False, True])
def test_adaptive_within_bound_of_exact(classwise):
    probs, labels = _case(shape=(1, 3, 24, 24, 16), scale=1.0)
    p, q = flatten(probs, labels)
    if classwise:
        exact = np.mean([adaece_exact(p[:, c], q[:, c]) for c in range(3)])
    else:
        exact = adaece_exact(*top_label(p, q))
    value, bound = adaptive_calibration_error(probs, labels, classwise=classwise, return_bound=True)
    assert float(bound) < 1e-2
    assert abs(float(value) - exact) <= float(bound) + 1e-12
    coarse, coarse_bound = adaptive_calibration_error(
        probs, labels, classwise=classwise, resolution=30, return_bound=True
    )
    assert abs(float(coarse) - exact) <= float(coarse_bound) + 1e-12


def test_bin_edges_are_lower_open_upper_closed():
    # two voxels, two classes; confidences exactly on edges 0.5 (-> first bin) and 1.0 (-> last bin)
    probs = torch.tensor([[[0.5, 1.0], [0.5, 0.0]]], dtype=torch.float64)
    labels = torch.tensor([[1, 0]])  # argmax ties go to class 0 -> first voxel wrong
    stats = calibration_statistics(probs, labels, num_bins=2)
    assert stats.top_label[0].tolist() == [1.0, 1.0]  # one voxel per bin
    assert stats.top_label[2].tolist() == [0.0, 1.0]
    # classwise: p = 0 counts in the first bin (class 1, second voxel)
    assert stats.classwise[1, 0].tolist() == [2.0, 0.0]
    assert float(expected_calibration_error(probs, labels, num_bins=2)) == pytest.approx(0.25)


def test_torchmetrics_top_label_agrees():
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs, labels = _case(shape=(3, 5, 10, 9), dtype=torch.float64)
    for bins in (15, 7):
        ours = float(expected_calibration_error(probs, labels, bins))
        theirs = float(multiclass_calibration_error(probs, labels[:, 0], 5, n_bins=bins))
        assert ours == pytest.approx(theirs, abs=1e-6)
        ours_max = float(maximum_calibration_error(probs, labels, bins))
        theirs_max = float(multiclass_calibration_error(probs, labels[:, 0], 5, n_bins=bins, norm="max"))
        assert ours_max == pytest.approx(theirs_max, abs=1e-6)


def test_exact_at_moderate_size():
    """(1, 4, 64, 64, 64) float32: float64 accumulation equals the float64 reference to 1e-7."""
    probs, labels = _case(shape=(1, 4, 64, 64, 64), scale=4.0)
    p, q = flatten(probs, labels)
    stats = calibration_statistics(probs, labels)
    values = calibration_values(stats)
    assert abs(float(values["ece"]) - ece(p, q)) < 1e-7
    assert abs(float(values["cece"]) - cece(p, q)) < 1e-7


def test_reliability_statistics():
    probs, labels = _case(shape=(1, 3, 12, 12))
    stats = reliability_statistics(probs, labels, num_bins=10)
    p, q = flatten(probs, labels)
    conf, acc = top_label(p, q)
    inside = (conf > 0.5) & (conf <= 0.6)
    assert float(stats["count"][5]) == inside.sum()
    assert float(stats["confidence"][5]) == pytest.approx(conf[inside].mean(), abs=1e-12)
    assert float(stats["accuracy"][5]) == pytest.approx(acc[inside].mean(), abs=1e-12)
    assert torch.isnan(stats["accuracy"][0])  # top-label confidence >= 1/3 never falls in (0, 0.1]


def test_bad_inputs():
    probs, labels = _case(shape=(2, 3, 4, 4))
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error(probs * 0.9, labels)
    with pytest.raises(ValueError, match="logits"):
        expected_calibration_error(torch.log(probs), labels)
    bad = probs.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        expected_calibration_error(bad, labels)
    with pytest.raises(ValueError, match="does not match"):
        expected_calibration_error(probs, labels[..., :3])
    with pytest.raises(ValueError, match="mask shape"):
        expected_calibration_error(probs, labels, mask=torch.ones(2, 4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        expected_calibration_error(probs, labels + 1)
    with pytest.raises(ValueError, match="integer"):
        expected_calibration_error(probs, labels.float() + 0.5)
    with pytest.raises(ValueError, match=r"sigmoid channels must be a per-channel reference in \[0, 1\]"):
        expected_calibration_error(probs[:, :1], labels)  # one channel is a sigmoid: labels 0..2 are no reference
    with pytest.raises(ValueError, match="activation='sigmoid'"):
        expected_calibration_error(probs * 0.9, labels)
    with pytest.raises(ValueError, match="activation must be one of"):
        expected_calibration_error(probs, labels, activation="softmax2d")
    with pytest.raises(ValueError, match="class_set must be one of"):
        classwise_calibration_error(probs, labels, class_set="present")
    with pytest.raises(ValueError, match="num_bins"):
        expected_calibration_error(probs, labels, num_bins=0)


def test_empty_mask_gives_nan_with_warning():
    probs, labels = _case(shape=(1, 3, 4, 4))
    empty = torch.zeros(1, 4, 4, dtype=torch.bool)
    with pytest.warns(UserWarning, match="no voxel"):
        value = expected_calibration_error(probs, labels, mask=empty)
    assert torch.isnan(value)
    with pytest.warns(UserWarning, match="no voxel"):
        assert torch.isnan(brier_score(probs, labels, mask=empty))


def test_calibration_values_names():
    probs, labels = _case(shape=(1, 3, 6, 5))
    values = calibration_values(calibration_statistics(probs, labels, sub_bins=4))
    p, q = flatten(probs, labels)
    assert float(values["ace"]) == pytest.approx(ace(p, q), abs=1e-12)  # MONAI's average calibration error
    assert float(values["cace"]) == pytest.approx(cace(p, q), abs=1e-12)
    assert abs(float(values["adaece"]) - adaece_exact(*top_label(p, q))) <= float(values["adaece_bound"]) + 1e-12


def test_bin_edges_exact_for_float32_neighbours():
    """Confidences on, just below and just above every edge k/15 (float32) fall in the bins of (lower, upper]."""
    edges = torch.tensor([k / 15 for k in range(1, 15)], dtype=torch.float32)
    around = torch.cat(
        [edges, torch.nextafter(edges, torch.tensor(0.0)), torch.nextafter(edges, torch.tensor(1.0)), torch.zeros(2)]
    )
    around = around[around >= 0.5]  # the top label of two classes is at least 0.5
    probs = torch.stack([around, 1 - around])[None]  # (1, 2, N)
    labels = (torch.arange(around.numel()) % 2)[None]
    p, q = flatten(probs, labels)
    assert float(expected_calibration_error(probs, labels)) == pytest.approx(ece(p, q), abs=1e-12)
    assert float(classwise_calibration_error(probs, labels)) == pytest.approx(cece(p, q), abs=1e-12)
    conf = p.max(1)
    expected = [((conf > k / 15) & (conf <= (k + 1) / 15)).sum() for k in range(15)]
    assert calibration_statistics(probs, labels).top_label[0].tolist() == expected


def test_worker_threads_and_chunks_agree(monkeypatch):
    """Many small chunks split among worker threads give the reference values; torch's thread count is restored."""
    probs, labels = _case(shape=(3, 4, 10, 9, 8))
    labels[0, 0, :2] = 1
    probs[1, :, 0, 0, 0] = torch.tensor([0.4, 0.4, 0.1, 0.1])  # a tie at the maximum inside one chunk
    mask = labels != 0
    monkeypatch.setattr(statistics_module, "_CHUNK_ELEMENTS", 640)  # 128 voxels per chunk
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        stats = calibration_statistics(probs, labels, mask=mask, per_image=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    values = calibration_values(stats)
    for b in range(3):
        p, q = flatten(probs[b : b + 1], labels[b : b + 1], mask[b : b + 1])
        assert float(values["ece"][b]) == pytest.approx(ece(p, q), abs=1e-12)
        assert float(values["cece"][b]) == pytest.approx(cece(p, q), abs=1e-12)
        assert float(values["nll"][b]) == pytest.approx(nll(p, q), abs=1e-12)
        assert float(values["brier"][b]) == pytest.approx(brier(p, q), abs=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 20, 18), (2, 4, 9, 8, 7)])
@pytest.mark.parametrize("include_background", [True, False])
def test_marginal_equals_monai_calibration_error(shape, include_background):
    from monai.metrics import CalibrationErrorMetric

    probs, labels = _case(shape=shape)
    one_hot = torch.nn.functional.one_hot(labels[:, 0], shape[1]).movedim(-1, 1).float()
    for reduction in ("expected", "average", "maximum"):
        ours = marginal_calibration_error(probs, labels, reduction=reduction, include_background=include_background)
        monai_metric = CalibrationErrorMetric(
            num_bins=20,
            include_background=include_background,
            calibration_reduction=reduction,
            metric_reduction="none",
        )
        monai_metric(y_pred=probs, y=one_hot)
        theirs = monai_metric.aggregate()
        assert ours.shape == theirs.shape == (shape[0], shape[1] - (not include_background))
        assert torch.allclose(ours, theirs.double(), atol=1e-6, rtol=0)  # MONAI sums in float32
        # the one-hot form of the labels gives the same numbers
        assert torch.equal(ours, marginal_calibration_error(probs, one_hot, 20, reduction, include_background))


def test_marginal_with_mask_matches_reference():
    probs, labels = _case(shape=(2, 3, 11, 10))
    mask = labels != 0
    mask[1] = False  # second image: nothing counted -> NaN row
    reference = marginal(probs, labels, num_bins=7, mask=mask)
    for reduction in ("expected", "average", "maximum"):
        ours = marginal_calibration_error(probs, labels, num_bins=7, reduction=reduction, mask=mask)
        assert torch.isnan(ours[1]).all()
        assert ours[0].tolist() == pytest.approx(reference[reduction][0].tolist(), abs=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        marginal_calibration_error(probs, labels, reduction="mean")


def test_float64_probabilities_match_reference():
    """float64 inputs (no float32 -> float64 copy on the way) give the reference values, the Brier score included."""
    probs, labels = _case(shape=(2, 3, 7, 6), dtype=torch.float64)
    p, q = flatten(probs, labels)
    values = calibration_values(calibration_statistics(probs, labels))
    for name, reference in (("brier", brier), ("nll", nll), ("ece", ece), ("cece", cece)):
        assert float(values[name]) == pytest.approx(reference(p, q), abs=1e-12), name
    assert float(brier_score(probs, labels)) == pytest.approx(brier(p, q), abs=1e-12)
