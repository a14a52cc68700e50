"""SegmentationCalibrationMetric: streaming equals pooled, per-case mode, regions, and two gloo ranks."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from calibration_reference import ace, adaece_exact, brier, cace, cece, ece, flatten, marginal, mce, nll, top_label
from scipy import ndimage

from monai_nacl.metrics import SegmentationCalibrationMetric, region_mask


def _volumes(n=10, shape=(3, 10, 9, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn((n, *shape), generator=g) * 2.5, 1)
    labels = torch.randint(0, shape[0], (n, 1, *shape[1:]), generator=g)
    return probs, labels


def _sigmoid_volumes(n=4, shape=(3, 6, 5, 4), seed=7):
    """Multi-label sigmoid outputs: channels do not sum to 1, several may be positive at a voxel."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.sigmoid(torch.randn((n, *shape), generator=g) * 2)
    labels = (torch.rand((n, *shape), generator=g) < 0.4).long()
    return probs, labels


def _reference(probs, labels, mask=None):
    p, q = flatten(probs, labels, mask)
    return {
        "ece": ece(p, q),
        "cece": cece(p, q),
        "ace": ace(p, q),
        "cace": cace(p, q),
        "mce": mce(p, q),
        "nll": nll(p, q),
        "brier": brier(p, q),
    }


def test_streaming_equals_all_at_once_and_reference():
    probs, labels = _volumes()
    one_by_one = SegmentationCalibrationMetric(region="foreground")
    for i in range(len(probs)):
        one_by_one(y_pred=probs[i : i + 1], y=labels[i : i + 1])
    together = SegmentationCalibrationMetric(region="foreground")
    together(y_pred=probs, y=labels)
    streamed, pooled = one_by_one.aggregate(), together.aggregate()
    for name, value in pooled.items():
        assert streamed[name] == pytest.approx(value, abs=1e-12)
    for name, value in _reference(probs, labels, labels != 0).items():
        assert pooled[name] == pytest.approx(value, abs=1e-12)
    # bounded memory: one running histogram whatever the number of batches
    assert len(one_by_one._buffers[0]) == 1


def test_list_input_equals_batch():
    probs, labels = _volumes(n=3)
    listed = SegmentationCalibrationMetric()
    listed(y_pred=list(probs), y=list(labels))
    batch = SegmentationCalibrationMetric()
    batch(y_pred=probs, y=labels)
    assert listed.aggregate() == pytest.approx(batch.aggregate(), abs=1e-12)


def test_per_case_mode():
    probs, labels = _volumes(n=4)
    labels[2] = 0  # no foreground: NaN, left out of the mean
    metric = SegmentationCalibrationMetric(region="foreground", per_case=True)
    metric(y_pred=probs, y=labels)
    refs = [_reference(probs[i : i + 1], labels[i : i + 1], labels[i : i + 1] != 0) for i in (0, 1, 3)]
    cases = metric.case_values()
    assert torch.isnan(cases["ece"][2])
    assert cases["ece"][[0, 1, 3]].tolist() == pytest.approx([r["ece"] for r in refs], abs=1e-12)
    with pytest.warns(UserWarning, match="no voxel"):
        result = metric.aggregate()
    for name in ("ece", "cece", "ace", "cace", "mce", "nll", "brier"):
        assert result[name] == pytest.approx(np.mean([r[name] for r in refs]), abs=1e-12)
    none = SegmentationCalibrationMetric(region="foreground", per_case=True, reduction="none")
    none(y_pred=probs, y=labels)
    with pytest.warns(UserWarning):
        assert none.aggregate()["ece"].shape == (4, 1)


@pytest.mark.parametrize("region", ["band", "bbox"])
def test_regions_match_scipy_reference(region):
    probs, labels = _volumes(n=2, shape=(3, 12, 11, 10))
    labels = torch.zeros_like(labels)
    labels[0, 0, 3:6, 4:7, 2:5] = 1
    labels[0, 0, 8, 2, 7] = 2
    labels[1, 0, 5:9, 1:3, 6:8] = 2
    if region == "band":
        mask = np.stack(
            [
                ndimage.binary_dilation(labels[i, 0].numpy() > 0, structure=np.ones((3, 3, 3)), iterations=2)
                for i in (0, 1)
            ]
        )
    else:
        mask = np.zeros(labels[:, 0].shape, dtype=bool)
        for i in (0, 1):
            idx = np.nonzero(labels[i, 0].numpy())
            mask[i][tuple(slice(a.min(), a.max() + 1) for a in idx)] = True
    assert torch.equal(region_mask(labels[:, 0], region, band_width=2), torch.from_numpy(mask))
    metric = SegmentationCalibrationMetric(region=region, band_width=2)
    metric(y_pred=probs, y=labels)
    result = metric.aggregate()
    for name, value in _reference(probs, labels, mask).items():
        assert result[name] == pytest.approx(value, abs=1e-12)


def test_default_region_is_foreground():
    probs, labels = _volumes(n=2)
    metric = SegmentationCalibrationMetric()
    metric(y_pred=probs, y=labels)
    result = metric.aggregate()
    assert set(result) == {"ece", "cece", "ace", "cace", "adaece", "cadaece", "mce", "nll", "brier"}
    for name, value in _reference(probs, labels, labels != 0).items():
        assert result[name] == pytest.approx(value, abs=1e-12)
    everything = SegmentationCalibrationMetric(region="all")
    everything(y_pred=probs, y=labels)
    assert everything.aggregate()["ece"] == pytest.approx(_reference(probs, labels)["ece"], abs=1e-12)


@pytest.mark.parametrize("resolution", [15, 10, 1])
def test_resolution_at_most_num_bins(resolution):
    """resolution <= num_bins gives plain bins (it raised KeyError 'ace'): AdaECE still within its bound."""
    probs, labels = _volumes(n=2)
    metric = SegmentationCalibrationMetric(region="all", resolution=resolution, per_case=True)
    metric(y_pred=probs, y=labels)
    result = metric.aggregate()
    assert metric.sub_bins == 1
    stats = metric.pooled_statistics()
    from monai_nacl.metrics import calibration_values

    pooled = calibration_values(stats)
    p, q = flatten(probs, labels)
    assert abs(float(pooled["adaece"]) - adaece_exact(*top_label(p, q))) <= float(pooled["adaece_bound"]) + 1e-12
    assert result["ece"] == pytest.approx(
        np.mean([_reference(probs[i : i + 1], labels[i : i + 1])["ece"] for i in (0, 1)])
    )


@pytest.mark.parametrize("include_background", [True, False])
def test_marginal_values_equal_monai(include_background):
    from monai.metrics import CalibrationErrorMetric

    probs, labels = _volumes(n=3)
    metric = SegmentationCalibrationMetric(
        region="all", marginal_bins=20, marginal_include_background=include_background
    )
    for i in range(3):  # streamed image by image
        metric(y_pred=probs[i : i + 1], y=labels[i : i + 1])
    result = metric.aggregate()
    one_hot = torch.nn.functional.one_hot(labels[:, 0], 3).movedim(-1, 1).float()
    for name, reduction in (("marginal_ece", "expected"), ("marginal_ace", "average"), ("marginal_mce", "maximum")):
        monai_metric = CalibrationErrorMetric(
            num_bins=20, include_background=include_background, calibration_reduction=reduction
        )
        monai_metric(y_pred=probs, y=one_hot)
        assert result[name] == pytest.approx(float(monai_metric.aggregate()), abs=1e-6)  # MONAI sums in float32
    # over the foreground: the slow reference per image, mean over classes and images
    foreground = SegmentationCalibrationMetric(marginal_bins=20, per_case=True)
    foreground(y_pred=probs, y=labels)
    expected = marginal(probs, labels, 20, mask=labels != 0)["expected"].mean(1)
    assert foreground.case_values()["marginal_ece"].tolist() == pytest.approx(expected.tolist(), abs=1e-12)


def test_bad_use():
    probs, labels = _volumes(n=1)
    metric = SegmentationCalibrationMetric()
    with pytest.raises(RuntimeError, match="no data"):
        metric.aggregate()
    metric(y_pred=probs, y=labels)
    with pytest.raises(ValueError, match="channels"):
        metric(y_pred=torch.softmax(torch.randn(1, 4, 10, 9, 8), 1), y=labels)
    with pytest.raises(ValueError, match="region"):
        SegmentationCalibrationMetric(region="roi")
    with pytest.raises(ValueError, match="marginal_bins"):
        SegmentationCalibrationMetric(marginal_bins=0)


def _rank_main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        probs, labels = _volumes(n=4)
        metric = SegmentationCalibrationMetric(region="foreground")
        for i in range(rank, 4, world):  # rank 0: volumes 0, 2; rank 1: volumes 1, 3 (one at a time)
            metric(y_pred=probs[i : i + 1], y=labels[i : i + 1])
        result = metric.aggregate()
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
        sigmoid_probs, sigmoid_labels = _sigmoid_volumes()
        sigmoid = SegmentationCalibrationMetric(
            region="all", per_case=True, marginal_bins=5, activation="sigmoid", class_set="up_to_max_label"
        )
        for i in range(rank, 4, world):
            sigmoid(y_pred=sigmoid_probs[i : i + 1], y=sigmoid_labels[i : i + 1])
        gathered = {"aggregate": sigmoid.aggregate(), "per_class": sigmoid.marginal_class_values()}
        torch.save(gathered, os.path.join(out_dir, f"sigmoid_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_sum_histograms(tmp_path):
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    probs, labels = _volumes(n=4)
    expected = _reference(probs, labels, labels != 0)
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        for name, value in expected.items():
            assert result[name] == pytest.approx(value, abs=1e-12)
    # sigmoid channels with MONAI's per-image, per-channel values, gathered rank by rank (images 0, 2, then 1, 3)
    from monai.metrics import CalibrationErrorMetric

    probs, labels = _sigmoid_volumes()
    order = [0, 2, 1, 3]
    monai_metric = CalibrationErrorMetric(num_bins=5, metric_reduction="none")
    monai_metric(y_pred=probs[order], y=labels[order])
    theirs = monai_metric.aggregate().double()
    for rank in (0, 1):
        result = torch.load(tmp_path / f"sigmoid_rank{rank}.pt")
        assert result["per_class"]["marginal_ece"].shape == (4, 3)
        assert torch.allclose(result["per_class"]["marginal_ece"], theirs, atol=1e-6, rtol=0)
        assert result["aggregate"]["marginal_ece"] == pytest.approx(float(theirs.mean()), abs=1e-6)


def test_without_case_values_the_pooled_values_are_the_same() -> None:
    """``keep_case_values=False`` (a training metric read once per round) keeps only the histograms: the pooled values
    equal those of the full metric, per-image values are refused, and per-case or marginal modes need them."""
    torch.manual_seed(3)
    full, light = SegmentationCalibrationMetric(num_bins=10), SegmentationCalibrationMetric(10, keep_case_values=False)
    for _ in range(3):
        probs = torch.softmax(3 * torch.randn(4, 3, 9, 11, dtype=torch.float64), 1)
        labels = torch.randint(0, 3, (4, 1, 9, 11))
        full(y_pred=probs, y=labels)
        light(y_pred=probs, y=labels)
    assert light.aggregate() == full.aggregate()
    with pytest.raises(RuntimeError, match="keep_case_values=False"):
        light.case_values()
    for options in ({"per_case": True}, {"marginal_bins": 20}):
        with pytest.raises(ValueError, match="keep_case_values=False keeps no per-image values"):
            SegmentationCalibrationMetric(keep_case_values=False, **options)
