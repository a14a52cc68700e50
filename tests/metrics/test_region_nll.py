"""RegionNLLMetric: the NLL alone, equal to SegmentationCalibrationMetric's pooled nll, and the handler's fast path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monai_nacl.handlers import CalibrationMetricHandler
from monai_nacl.metrics import RegionNLLMetric, SegmentationCalibrationMetric


def _batches(seed: int = 0, soft: bool = False):
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        probs = torch.softmax(torch.randn(2, 3, 9, 8, generator=g) * 3, dim=1)
        labels = torch.randint(0, 3, (2, 1, 9, 8), generator=g)
        labels[0, 0, :3] = 0  # some background in every image
        if soft:
            labels = torch.softmax(torch.randn(2, 3, 9, 8, generator=g), dim=1)
        yield probs, labels


@pytest.mark.parametrize("region", ["all", "foreground", "band", "bbox"])
@pytest.mark.parametrize("soft", [False, True])
def test_equals_the_full_metric_and_numpy(region: str, soft: bool) -> None:
    fast, full = RegionNLLMetric(region=region), SegmentationCalibrationMetric(region=region, keep_case_values=False)
    total, count = 0.0, 0
    for probs, labels in _batches(soft=soft):
        fast(y_pred=probs, y=labels)
        full(y_pred=probs, y=labels)
        if region == "all":  # an independent reference where the region is simple
            p = probs.double().numpy()
            if soft:
                total += float(-(labels.double().numpy() * np.log(np.maximum(p, 1e-12))).sum())
            else:
                p_y = np.take_along_axis(p, labels.numpy(), axis=1)
                total += float(-np.log(np.maximum(p_y, 1e-12)).sum())
            count += labels.shape[0] * labels.shape[2] * labels.shape[3]
    value = fast.aggregate()["nll"]
    assert value == pytest.approx(float(full.aggregate()["nll"]), rel=1e-12)
    if region == "all":
        assert value == pytest.approx(total / count, rel=1e-12)


def test_bad_inputs_and_an_empty_region() -> None:
    metric = RegionNLLMetric()
    with pytest.raises(ValueError, match="not logits"):
        metric(y_pred=torch.randn(1, 2, 4, 4) * 5, y=torch.ones(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(RuntimeError, match="no data"):
        RegionNLLMetric().aggregate()
    empty = RegionNLLMetric()
    empty(y_pred=torch.full((1, 2, 4, 4), 0.5), y=torch.zeros(1, 1, 4, 4, dtype=torch.long))
    with pytest.warns(UserWarning, match="no voxel was counted"):
        assert math.isnan(empty.aggregate()["nll"])
    with pytest.raises(RuntimeError, match="keeps no calibration histograms"):
        empty.pooled_statistics()


def test_the_handler_takes_the_fast_path_only_without_details() -> None:
    fast = CalibrationMetricHandler(metric_name="nll", save_details=False)
    assert isinstance(fast.metric_fn, RegionNLLMetric)
    for handler in (
        CalibrationMetricHandler(metric_name="nll"),  # per-image details need the full metric
        CalibrationMetricHandler(metric_name="nll", save_details=False, per_case=True),
        CalibrationMetricHandler(metric_name="ece", save_details=False),
    ):
        assert isinstance(handler.metric_fn, SegmentationCalibrationMetric)
    full = SegmentationCalibrationMetric(keep_case_values=False)
    for probs, labels in _batches(1):
        fast.metric_fn(y_pred=probs, y=labels)
        full(y_pred=probs, y=labels)
    assert fast.metric_fn.aggregate()["nll"] == pytest.approx(float(full.aggregate()["nll"]), rel=1e-12)
