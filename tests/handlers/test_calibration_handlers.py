"""CalibrationMetricHandler and ReliabilityDiagramHandler in a real (tiny) SupervisedEvaluator run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine
from monai.transforms import Activationsd

from monai_nacl.handlers import CalibrationMetricHandler, ReliabilityDiagramHandler

# the slow numpy references shared with tests/metrics
_spec = importlib.util.spec_from_file_location(
    "calibration_reference", Path(__file__).resolve().parents[1] / "metrics" / "calibration_reference.py"
)
_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reference)
ece, flatten, nll = _reference.ece, _reference.flatten, _reference.nll


def _data(num=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(num):
        image = torch.randn(1, 8, 8, 6, generator=g)
        label = (image > 0.3).long() + (image > 1.2).long()
        items.append({"image": image, "label": label})
    return items


def _network():
    net = torch.nn.Conv3d(1, 3, kernel_size=3, padding=1)
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        net.weight.copy_(torch.randn(net.weight.shape, generator=g) * 0.5)
        net.bias.zero_()
    return net.eval()


def test_evaluator_metrics_details_and_diagrams(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    items = _data()
    net = _network()
    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    diagrams = ReliabilityDiagramHandler(tmp_path / "reliability", metric_name="val_ece", summary_writer=writer)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(items), batch_size=2),
        network=net,
        postprocessing=Activationsd(keys="pred", softmax=True),
        key_val_metric={"val_ece": CalibrationMetricHandler(output_transform=from_engine(["pred", "label"]))},
        additional_metrics={
            "val_nll": CalibrationMetricHandler(
                metric_name="nll", region="all", per_case=True, output_transform=from_engine(["pred", "label"])
            ),
            "val_marginal_ece": CalibrationMetricHandler(
                metric_name="marginal_ece",
                region="all",
                include_background=False,
                output_transform=from_engine(["pred", "label"]),
            ),
        },
        val_handlers=[diagrams],
    )
    for epoch in (1, 2):  # two validation rounds, as MONAI's ValidationHandler runs them
        evaluator.run(global_epoch=epoch)
    writer.close()

    with torch.no_grad():
        images = torch.stack([item["image"] for item in items])
        probs = torch.softmax(net(images), 1)
    labels = torch.stack([item["label"] for item in items])
    p, q = flatten(probs, labels, labels != 0)
    assert evaluator.state.metrics["val_ece"] == pytest.approx(ece(p, q), abs=1e-6)
    per_case_nll = [nll(*flatten(probs[i : i + 1], labels[i : i + 1])) for i in range(3)]
    assert evaluator.state.metrics["val_nll"] == pytest.approx(np.mean(per_case_nll), abs=1e-6)
    # the marginal ECE is MONAI's own CalibrationErrorMetric (20 bins, background left out here)
    from monai.metrics import CalibrationErrorMetric

    monai_metric = CalibrationErrorMetric(num_bins=20, include_background=False)
    monai_metric(y_pred=probs, y=torch.nn.functional.one_hot(labels[:, 0], 3).movedim(-1, 1).float())
    assert evaluator.state.metrics["val_marginal_ece"] == pytest.approx(float(monai_metric.aggregate()), abs=1e-6)
    details = evaluator.state.metric_details
    assert details["val_nll"].shape == (3, 1)
    assert details["val_nll"][:, 0].tolist() == pytest.approx(per_case_nll, abs=1e-6)
    assert details["val_ece"][:, 0].tolist() == pytest.approx(
        [ece(*flatten(probs[i : i + 1], labels[i : i + 1], labels[i : i + 1] != 0)) for i in range(3)], abs=1e-6
    )
    assert [path.name for path in diagrams.saved] == ["reliability_epoch0001.png", "reliability_epoch0002.png"]
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in diagrams.saved)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_diagram_handler_needs_a_calibration_metric(tmp_path):
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(_data(1)), batch_size=1),
        network=_network(),
        postprocessing=Activationsd(keys="pred", softmax=True),
        val_handlers=[ReliabilityDiagramHandler(tmp_path, metric_name="val_ece")],
    )
    with pytest.raises(RuntimeError, match="no CalibrationMetricHandler named 'val_ece'"):
        evaluator.run()


def test_unknown_metric_name():
    with pytest.raises(ValueError, match="metric_name"):
        CalibrationMetricHandler(metric_name="dice")
    with pytest.raises(ValueError, match="adaptive ECE is 'adaece'"):
        CalibrationMetricHandler(metric_name="adaptive_ece")
