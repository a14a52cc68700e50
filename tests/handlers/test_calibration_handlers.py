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


# MONAI 1.6.1's handler test inputs (tests/handlers/test_handler_calibration_error.py of Project-MONAI/MONAI): two
# images of two per-channel sigmoid channels (they do not sum to 1), fed twice; its expected value, rows and channels
_MONAI_PRED = torch.tensor(
    [[[[0.7, 0.3], [0.1, 0.9]], [[0.7, 0.3], [0.5, 0.5]]], [[[0.9, 0.9], [0.3, 0.3]], [[0.1, 0.1], [0.9, 0.7]]]]
)
_MONAI_LABEL = torch.tensor([[[[1, 0], [0, 1]], [[0, 1], [1, 0]]], [[[1, 1], [0, 0]], [[0, 0], [1, 1]]]])


def _run_engine(handler, data):
    from ignite.engine import Engine

    engine = Engine(lambda engine, batch: batch)
    handler.attach(engine=engine, name="calibration_error")
    engine.run(data, max_epochs=1)
    return engine


@pytest.mark.parametrize(
    "reduction, include_background, expected, channels",
    [
        ("expected", True, 0.2250, 2),
        ("expected", False, 0.2500, 1),
        ("average", True, 0.2584, 2),
        ("maximum", True, 0.4, 2),
    ],
)
def test_monai_handler_cases(reduction, include_background, expected, channels):
    from monai.handlers import CalibrationError

    data = [{"pred": _MONAI_PRED, "label": _MONAI_LABEL}] * 2
    name = {"expected": "marginal_ece", "average": "marginal_ace", "maximum": "marginal_mce"}[reduction]
    ours = _run_engine(
        CalibrationMetricHandler(
            metric_name=name,
            num_bins=5,
            region="all",
            include_background=include_background,
            activation="sigmoid",
            output_transform=from_engine(["pred", "label"]),
        ),
        data,
    ).state
    theirs = _run_engine(
        CalibrationError(
            num_bins=5,
            include_background=include_background,
            calibration_reduction=reduction,
            output_transform=from_engine(["pred", "label"]),
        ),
        data,
    ).state
    assert ours.metrics["calibration_error"] == pytest.approx(expected, abs=1e-4)  # MONAI's literal number
    assert ours.metrics["calibration_error"] == pytest.approx(theirs.metrics["calibration_error"], abs=1e-6)
    details = ours.metric_details["calibration_error"]
    assert details.shape == theirs.metric_details["calibration_error"].shape == (4, channels)
    assert torch.allclose(details, theirs.metric_details["calibration_error"].double(), atol=1e-6)


def test_monai_handler_single_channel_and_save_details_false():
    """MONAI's test_single_iteration and test_save_details_false: one sigmoid channel needs no option; 0.2."""
    data = [{"pred": _MONAI_PRED[:1, :1], "label": _MONAI_LABEL[:1, :1]}]
    for save_details in (True, False):
        handler = CalibrationMetricHandler(
            metric_name="marginal_ece",
            num_bins=5,
            region="all",
            save_details=save_details,
            output_transform=from_engine(["pred", "label"]),
        )
        state = _run_engine(handler, data).state
        assert state.metrics["calibration_error"] == pytest.approx(0.2, abs=1e-4)
        details = getattr(state, "metric_details", None) or {}
        assert ("calibration_error" in details) == save_details
        if save_details:
            assert details["calibration_error"].shape == (1, 1)


def test_sigmoid_channels_without_the_option_are_refused_with_the_fix():
    data = [{"pred": _MONAI_PRED, "label": _MONAI_LABEL}]
    handler = CalibrationMetricHandler(
        metric_name="marginal_ece", region="all", output_transform=from_engine(["pred", "label"])
    )
    with pytest.raises(ValueError, match="activation='sigmoid'"):
        _run_engine(handler, data)


def test_authors_class_set_in_the_handler():
    """class_set='up_to_max_label', per case: each image's CECE over classes 0..max(label) of its foreground, as the
    NACL authors' ClasswiseECELoss computes it (re-written in numpy in calibration_reference)."""
    items = _data(num=3, seed=4)
    items[0]["label"] = items[0]["label"].clamp_max(1)  # the first image lacks class 2, its highest class
    net = _network()
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(items), batch_size=2),
        network=net,
        postprocessing=Activationsd(keys="pred", softmax=True),
        key_val_metric={
            "val_cece": CalibrationMetricHandler(
                metric_name="cece",
                per_case=True,
                class_set="up_to_max_label",
                output_transform=from_engine(["pred", "label"]),
            )
        },
    )
    evaluator.run()
    with torch.no_grad():
        probs = torch.softmax(net(torch.stack([item["image"] for item in items])), 1)
    labels = torch.stack([item["label"] for item in items])
    expected = []
    for i in range(3):
        p, _ = flatten(probs[i : i + 1], labels[i : i + 1], labels[i : i + 1] != 0)
        expected.append(_reference.authors_classwise_ece(p, labels[i][labels[i] != 0].numpy()))
    assert evaluator.state.metric_details["val_cece"][:, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert evaluator.state.metrics["val_cece"] == pytest.approx(np.mean(expected), abs=1e-6)
    # the first image is where the conventions differ: 3 x ours = 2 x theirs + the ECE of the missing class 2
    p, q = flatten(probs[:1], labels[:1], labels[:1] != 0)
    ours, missing = _reference.cece(p, q), _reference.cece(p[:, 2:], q[:, 2:])
    assert 3 * ours == pytest.approx(2 * expected[0] + missing, abs=1e-9)
    assert abs(ours - expected[0]) > 1e-3
    for i in (1, 2):  # images holding their highest class: both conventions agree
        p, q = flatten(probs[i : i + 1], labels[i : i + 1], labels[i : i + 1] != 0)
        assert _reference.cece(p, q) == pytest.approx(expected[i], abs=1e-6)
