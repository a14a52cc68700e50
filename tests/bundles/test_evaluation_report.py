"""SegmentationReportHandler's calibration histograms and pictures, on tiny cases fed without an engine run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from monai.data import MetaTensor

from monai_nacl.handlers import SegmentationReportHandler
from monai_nacl.metrics import (
    calibration_statistics,
    coarse_statistics,
    dataset_reliability_histogram,
    region_mask,
    statistics_from_dict,
)


def _items(num_cases: int = 3, classes: int = 3, shape=(10, 9)) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    items = []
    for k in range(num_cases):
        probs = torch.softmax(torch.randn(classes, *shape, generator=g) * 3, dim=0)
        label = torch.randint(0, classes, (1, *shape), generator=g)
        meta = {"filename_or_obj": f"/data/case{k}.nii.gz"}
        items.append({"pred": MetaTensor(probs, meta=meta), "label": MetaTensor(label.float(), meta=meta)})
    return items


def test_report_writes_histograms_and_pictures(tmp_path: Path) -> None:
    items = _items()
    handler = SegmentationReportHandler(tmp_path, num_classes=3, num_bins=5, region="foreground")
    handler.update(SimpleNamespace(state=SimpleNamespace(output=items[:2])))
    handler.update(SimpleNamespace(state=SimpleNamespace(output=items[2:])))
    summary = handler.write()
    assert summary["num_cases"] == 3
    saved = json.loads((tmp_path / "calibration_histograms.json").read_text())
    assert saved["cases"] == ["case0", "case1", "case2"] and saved["region"] == "foreground"
    per_case = statistics_from_dict(saved["statistics"])
    probs = torch.stack([item["pred"].as_tensor() for item in items])
    labels = torch.stack([item["label"].as_tensor() for item in items]).long()
    mask = region_mask(labels[:, 0], "foreground")
    expected = coarse_statistics(calibration_statistics(probs, labels, num_bins=5, mask=mask, per_image=True))
    torch.testing.assert_close(per_case.classwise, expected.classwise.double(), rtol=0, atol=1e-9)
    torch.testing.assert_close(per_case.top_label, expected.top_label.double(), rtol=0, atol=1e-9)
    assert torch.equal(
        dataset_reliability_histogram(per_case)["count"], dataset_reliability_histogram(expected)["count"]
    )
    for name in ("reliability.png", "reliability_classwise.png", "dataset_reliability.png", "dice_estimate.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_report_pictures_use_the_task_class_names(tmp_path: Path, monkeypatch) -> None:
    """The per-class pictures are named as metrics.csv's columns (liver, kidney), the names are saved with the
    histograms for the comparison report, and the background, absent from the foreground region, has no panel."""
    from monai_nacl import metrics

    figures = {}

    def capture(draw, figure_function):
        def wrapped(stats, path, *args, **kwargs):
            figures[figure_function.__name__] = figure_function(stats, *args, **kwargs)
            return draw(stats, path, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(
        metrics, "plot_reliability_diagram", capture(metrics.plot_reliability_diagram, metrics.reliability_figure)
    )
    monkeypatch.setattr(
        metrics,
        "plot_dataset_reliability",
        capture(metrics.plot_dataset_reliability, metrics.dataset_reliability_figure),
    )
    names = ["background", "liver", "kidney"]
    handler = SegmentationReportHandler(
        tmp_path, num_classes=3, num_bins=5, region="foreground", class_names=names, diagram_filename=None
    )
    handler.update(SimpleNamespace(state=SimpleNamespace(output=_items())))
    handler.write()
    assert json.loads((tmp_path / "calibration_histograms.json").read_text())["class_names"] == names
    assert "dice_liver" in (tmp_path / "metrics.csv").read_text().splitlines()[0]
    classwise, dataset = figures["reliability_figure"], figures["dataset_reliability_figure"]
    titles = [ax.get_title().split(":")[0] for ax in classwise.axes if ax.get_title()]
    assert titles == ["liver", "kidney"]
    assert [ax.get_title() for ax in dataset.axes if ax.get_visible() and ax.get_title()] == ["liver", "kidney"]
    for figure in (classwise, dataset):
        assert "not drawn: background" in figure.get_suptitle().replace("\n", " ")
    assert "CECE: mean of the ECE of all 3 classes (background, liver, kidney)" in classwise.get_suptitle().replace(
        "\n", " "
    )
