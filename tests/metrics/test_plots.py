"""The reliability pictures: what they draw checked against slow per-voxel loops (voxels placed on bin edges),
their statistics (dataset reliability histogram, coarse and JSON forms), and that the PNG files are written."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from monai_nacl.metrics import (
    calibration_statistics,
    calibration_values,
    coarse_statistics,
    dataset_reliability_figure,
    dataset_reliability_histogram,
    plot_dataset_reliability,
    plot_reliability_diagram,
    reliability_figure,
    statistics_from_dict,
    statistics_to_dict,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _case(batch=3, classes=3, shape=(6, 5), seed=0):
    """Random probabilities with voxels placed exactly on bin edges (0.25, 0.5, 0.75 with 4 or 8 bins), a mask."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(batch, classes, *shape, generator=g, dtype=torch.float64) * 2.0, dim=1)
    edge = torch.tensor([0.5, 0.25, 0.25] if classes == 3 else [0.75, 0.25], dtype=torch.float64)
    probs[:, :, 0, :3] = edge[:, None]  # ties with 0.25 too: argmax takes the first class
    probs[:, :, 1, 0] = torch.roll(edge, 1)
    labels = torch.randint(0, classes, (batch, *shape), generator=g)
    mask = torch.rand(batch, *shape, generator=g) < 0.8
    return probs, labels, mask


def _voxels(probs, labels, mask, image=None):
    """Counted voxels as (p list, label) pairs, optionally of one image."""
    images = range(probs.shape[0]) if image is None else [image]
    out = []
    for b in images:
        p = probs[b].reshape(probs.shape[1], -1).T.tolist()
        y = labels[b].reshape(-1).tolist()
        m = mask[b].reshape(-1).tolist()
        out += [(pv, yv) for pv, yv, mv in zip(p, y, m) if mv]
    return out


def _bin(value: float, num_bins: int) -> int:
    """Bin k holding k/n < value <= (k+1)/n (float64 comparisons with the edges k/n); value 0 in bin 0."""
    return next(k for k in range(num_bins) if value <= (k + 1) / num_bins) if value > 0 else 0


def _slow_bins(voxels, num_bins, cls=None):
    """Per bin: count, mean confidence, accuracy (top label, or p_cls against 1[y = cls]); NaN where empty."""
    count, conf, hits = [0] * num_bins, [0.0] * num_bins, [0] * num_bins
    for p, y in voxels:
        if cls is None:
            value = max(p)
            hit = p.index(value) == y
        else:
            value, hit = p[cls], y == cls
        k = _bin(value, num_bins)
        count[k] += 1
        conf[k] += value
        hits[k] += int(hit)
    mean = [c / n if n else math.nan for c, n in zip(conf, count)]
    acc = [h / n if n else math.nan for h, n in zip(hits, count)]
    return count, mean, acc


def _drawn_bars(figure, panel=0):
    """(left edges, accuracy, mean confidence, voxel share) read back from the bars of one panel."""
    axes = figure.axes
    top, bottom = axes[2 * panel], axes[2 * panel + 1]
    _, over, under, outline = top.containers
    acc = {round(bar.get_x(), 9): bar.get_height() for bar in outline}
    conf = {round(bar.get_x(), 9): bar.get_y() + bar.get_height() for bar in over}
    conf.update({round(bar.get_x(), 9): bar.get_y() for bar in under})
    share = [bar.get_height() for bar in bottom.containers[0]]
    return acc, conf, share


@pytest.mark.parametrize("classwise", [False, True])
def test_diagram_draws_the_slow_per_bin_values(classwise):
    num_bins = 8
    probs, labels, mask = _case()
    stats = calibration_statistics(probs, labels, num_bins=num_bins, mask=mask, sub_bins=3)
    figure = reliability_figure(stats, title="t", region="mask", classwise=classwise)
    voxels = _voxels(probs, labels, mask)
    for panel, cls in enumerate([0, 1, 2] if classwise else [None]):
        count, conf, acc = _slow_bins(voxels, num_bins, cls)
        drawn_acc, drawn_conf, share = _drawn_bars(figure, panel)
        assert share == pytest.approx([n / len(voxels) for n in count], abs=1e-12)
        for k in range(num_bins):
            left = round(k / num_bins, 9)
            if count[k] == 0:
                assert left not in drawn_acc
                continue
            assert drawn_acc[left] == pytest.approx(acc[k], abs=1e-12)
            if conf[k] != acc[k]:  # a gap bar (over- or under-confident) ends at the mean confidence
                assert drawn_conf[left] == pytest.approx(conf[k], abs=1e-12)
    ece = calibration_values(stats)["cece" if classwise else "ece"]
    assert f"{100 * float(ece):.2f} %" in figure.get_suptitle()
    assert "region: mask" in figure.get_suptitle() and f"{len(voxels):,} voxels" in figure.get_suptitle()


def test_gaps_are_coloured_by_direction_as_in_the_legend():
    """Bin (0.5, 1] at confidence 0.9 with accuracy 1/2 is over-confident, bin (0, 0.5] (two classes tied at 0.5,
    argmax class 0, always right) under-confident; each gap has the colour and hatch of its legend entry."""
    probs = torch.tensor([[0.9, 0.9, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5]], dtype=torch.float64)[None]
    labels = torch.tensor([[0, 1, 0, 0]])
    figure = reliability_figure(calibration_statistics(probs, labels, num_bins=2))
    _, over, under, _ = figure.axes[0].containers
    assert [(bar.get_x(), bar.get_y(), bar.get_height()) for bar in over] == [(0.5, 0.5, pytest.approx(0.4))]
    assert [(bar.get_x(), bar.get_y(), bar.get_height()) for bar in under] == [(0.0, 0.5, 0.5)]
    legend = {
        t.get_text().split(":")[0]: h for t, h in zip(figure.legends[0].get_texts(), figure.legends[0].legend_handles)
    }
    for bars, key in ((over, "over-confident"), (under, "under-confident")):
        bar, entry = bars[0], legend[key]
        assert bar.get_facecolor() == entry.get_facecolor() and bar.get_edgecolor() == entry.get_edgecolor()
        assert bar.get_hatch() == entry.get_hatch()


def test_overlay_curves_follow_each_model():
    probs, labels, mask = _case(seed=2)
    models = {"a": calibration_statistics(probs, labels, num_bins=5, mask=mask)}
    models["b"] = calibration_statistics(torch.softmax(probs.log() * 3, 1), labels, num_bins=5, mask=mask)
    figure = reliability_figure(models, title="two models")
    curves = figure.axes[0].get_lines()[:2]  # then the diagonal
    for curve, (name, stats) in zip(curves, models.items()):
        sharpened = probs if name == "a" else torch.softmax(probs.log() * 3, 1)
        _, conf, acc = _slow_bins(_voxels(sharpened, labels, mask), 5)
        keep = [k for k in range(5) if not math.isnan(acc[k])]
        assert list(curve.get_xdata()) == pytest.approx([conf[k] for k in keep], abs=1e-12)
        assert list(curve.get_ydata()) == pytest.approx([acc[k] for k in keep], abs=1e-12)
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend[0] == f"a: pooled ECE {100 * float(calibration_values(models['a'])['ece']):.2f} %"


def _slow_dataset_histogram(probs, labels, mask, num_bins, num_accuracy_bins):
    classes = probs.shape[1]
    count = [[[0] * num_accuracy_bins for _ in range(num_bins)] for _ in range(classes)]
    for b in range(probs.shape[0]):
        voxels = _voxels(probs, labels, mask, image=b)
        for c in range(classes):
            for m in range(num_bins):
                inside = [y == c for p, y in voxels if _bin(p[c], num_bins) == m]
                if inside:
                    count[c][m][_bin(sum(inside) / len(inside), num_accuracy_bins)] += 1
    return count


@pytest.mark.parametrize("num_bins,num_accuracy_bins", [(4, None), (8, 4)])
def test_dataset_histogram_matches_slow_loops(num_bins, num_accuracy_bins):
    probs, labels, mask = _case(batch=5, shape=(8, 8), seed=3)
    stats = calibration_statistics(probs, labels, num_bins=num_bins, mask=mask, sub_bins=2, per_image=True)
    histogram = dataset_reliability_histogram(stats, num_accuracy_bins)
    expected = _slow_dataset_histogram(probs, labels, mask, num_bins, num_accuracy_bins or num_bins)
    assert histogram["count"].tolist() == expected
    assert int(histogram["num_images"]) == 5 and len(histogram["accuracy_edges"]) == (num_accuracy_bins or num_bins) + 1
    figure = dataset_reliability_figure(
        stats, region="mask", class_names=["bg", "a", "b"], num_accuracy_bins=num_accuracy_bins
    )
    drawn = figure.axes[1].collections[0].get_array()  # class "a": (accuracy bin, confidence bin), 0 masked
    assert drawn.filled(0).T.tolist() == expected[1]
    assert figure.axes[1].get_title() == "a" and "5 images" in figure.get_suptitle()


def test_dataset_histogram_accuracy_on_bin_edges():
    """Accuracy exactly 1/4 or 1/2 falls into the lower bin ((lower, upper] membership); 0 into the first."""
    probs = torch.tensor([0.9, 0.9, 0.9, 0.9], dtype=torch.float64).reshape(1, 1, 4)
    probs = torch.cat([probs, 1 - probs], dim=1).repeat(3, 1, 1)  # 3 images, class 0 at p = 0.9 everywhere
    labels = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])  # accuracies 1/4, 1/2, 0 for class 0
    stats = calibration_statistics(probs, labels, num_bins=2, per_image=True)
    count = dataset_reliability_histogram(stats, num_accuracy_bins=4)["count"]
    assert count[0, 1].tolist() == [2.0, 1.0, 0.0, 0.0] and count[0, 0].sum() == 0


def test_coarse_and_json_forms_are_exact():
    probs, labels, mask = _case(seed=4)
    fine = calibration_statistics(probs, labels, num_bins=5, mask=mask, sub_bins=4, per_image=True)
    coarse = coarse_statistics(fine)
    direct = calibration_statistics(probs, labels, num_bins=5, mask=mask, per_image=True)
    assert coarse.sub_bins == 1
    for a, b in ((coarse.top_label, direct.top_label), (coarse.classwise, direct.classwise)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    back = statistics_from_dict(json.loads(json.dumps(statistics_to_dict(coarse))))
    assert (back.num_bins, back.sub_bins) == (5, 1)
    for a, b in ((back.top_label, coarse.top_label), (back.classwise, coarse.classwise), (back.totals, coarse.totals)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="lack"):
        statistics_from_dict({"num_bins": 5})


def test_figures_are_written(tmp_path):
    probs, labels, mask = _case(seed=5)
    per_image = calibration_statistics(probs, labels, num_bins=10, mask=mask, per_image=True)
    pooled = per_image.sum(0)
    sharper = calibration_statistics(torch.softmax(probs.log() * 3, 1), labels, num_bins=10, mask=mask)
    paths = [
        plot_reliability_diagram(pooled, tmp_path / "a" / "one.png", title="one model", region="foreground"),
        plot_reliability_diagram(pooled, tmp_path / "classes.png", classwise=True, class_names=["bg", "x", "y"]),
        plot_reliability_diagram({"m1": pooled, "m2": sharper}, tmp_path / "overlay.png"),
        plot_dataset_reliability(per_image, tmp_path / "dataset.png", title="test set", region="foreground"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000


def test_bad_inputs_and_missing_matplotlib(monkeypatch, tmp_path):
    probs, labels, _ = _case(seed=6)
    per_image = calibration_statistics(probs, labels, num_bins=4, per_image=True)
    with pytest.raises(ValueError, match="per-image classwise histograms"):
        dataset_reliability_histogram(per_image.sum(0))
    with pytest.raises(ValueError, match="pooled top-label"):
        reliability_figure(per_image)
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        reliability_figure(per_image.sum(0), classwise=True, class_names=["a", "b"])
    with pytest.raises(TypeError, match="CalibrationStatistics"):
        reliability_figure({"edges": [0, 1]})
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_reliability_diagram(per_image.sum(0), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
