"""What the reliability pictures say to a reader (issue 21): the accuracy is the blue bar in every bin; per-class
panels carry the task's class names; a class of which no counted voxel is an example (the background in the
foreground region) has no panel, and the title states that the CECE still averages every class and gives that
class's ECE. Values are checked against per-voxel loops, labels and panels through the matplotlib objects."""

from __future__ import annotations

import re

import pytest
import torch

from monai_nacl.metrics import calibration_statistics, dataset_reliability_figure, reliability_figure
from monai_nacl.metrics.plots import ACCURACY_COLOR

NAMES = ["background", "liver", "kidney", "bone"]


def _case(seed: int = 0):
    """Three 8 x 8 images of 4 classes; the mask is the ground-truth foreground (label != 0)."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64) * 2.0, dim=1)
    labels = torch.randint(0, 4, (3, 8, 8), generator=g)
    return probs, labels, labels != 0


def _slow_class_ece(probs, labels, mask, cls: int, num_bins: int) -> float:
    """ECE of p_cls against 1[y = cls] over the masked voxels, one voxel at a time, bins (k/n, (k+1)/n]."""
    gap, total = [0.0] * num_bins, 0
    for p, y, m in zip(
        probs[:, cls].reshape(-1).tolist(), labels.reshape(-1).tolist(), mask.reshape(-1).tolist(), strict=True
    ):
        if not m:
            continue
        k = next(k for k in range(num_bins) if p <= (k + 1) / num_bins) if p > 0 else 0
        gap[k] += p - float(y == cls)
        total += 1
    return sum(abs(g) for g in gap) / total


def _percent_after(text: str, prefix: str) -> float:
    """The ``12.34`` of ``<prefix>12.34 %`` in ``text``."""
    match = re.search(re.escape(prefix) + r"(\d+\.\d\d) %", text)
    assert match, f"{prefix!r} not in {text!r}"
    return float(match.group(1))


def _panel_titles(figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.get_visible() and ax.get_title()]


def test_classwise_panels_name_the_classes_and_leave_out_the_absent_background():
    probs, labels, mask = _case()
    stats = calibration_statistics(probs, labels, num_bins=10, mask=mask)
    figure = reliability_figure(stats, title="t", region="foreground", classwise=True, class_names=NAMES)
    slow = [_slow_class_ece(probs, labels, mask, c, 10) for c in range(4)]
    titles = _panel_titles(figure)
    assert [title.split(":")[0] for title in titles] == ["liver", "kidney", "bone"]  # no "class 0", no background
    for title, name, ece in zip(titles, NAMES[1:], slow[1:]):
        assert _percent_after(title, f"{name}: ECE ") == pytest.approx(100 * ece, abs=0.005 + 1e-9)
    assert len(figure.axes) == 6  # reliability and share axes of three panels
    text = figure.get_suptitle()
    # the CECE still averages all four classes, and the title says so and gives the left-out class's ECE: the mean
    # probability given to the background over the foreground voxels
    assert _percent_after(text, "pooled CECE ") == pytest.approx(100 * sum(slow) / 4, abs=0.005 + 1e-9)
    assert "CECE: mean of the ECE of all 4 classes (background, liver, kidney, bone)" in text.replace("\n", " ")
    background = float(probs[:, 0][mask].mean())
    assert slow[0] == pytest.approx(background, abs=1e-12)
    assert _percent_after(text, "not drawn: background (ECE ") == pytest.approx(100 * background, abs=0.005 + 1e-9)
    assert [ax.get_ylabel() for ax in figure.axes[::2]] == [f"frequency of {name}" for name in NAMES[1:]]


def test_every_class_occurs_in_all_voxels_so_every_panel_is_drawn():
    probs, labels, _ = _case(seed=1)
    stats = calibration_statistics(probs, labels, num_bins=10)
    figure = reliability_figure(stats, region="all", classwise=True, class_names=NAMES)
    assert [title.split(":")[0] for title in _panel_titles(figure)] == NAMES
    assert "not drawn" not in figure.get_suptitle()
    default = reliability_figure(stats, classwise=True)  # without names: the label values
    assert [title.split(":")[0] for title in _panel_titles(default)] == [f"class {c}" for c in range(4)]


def test_overlay_and_dataset_histogram_leave_out_the_absent_background():
    probs, labels, mask = _case(seed=2)
    sharper = torch.softmax(probs.log() * 3, dim=1)
    models = {
        "ce": calibration_statistics(probs, labels, num_bins=5, mask=mask),
        "nacl": calibration_statistics(sharper, labels, num_bins=5, mask=mask),
    }
    overlay = reliability_figure(models, region="foreground", classwise=True, class_names=NAMES)
    assert _panel_titles(overlay) == ["liver", "kidney", "bone"]
    legend = [t.get_text() for t in overlay.legends[0].get_texts()]
    for (name, probabilities), text in zip((("ce", probs), ("nacl", sharper)), legend):
        cece = sum(_slow_class_ece(probabilities, labels, mask, c, 5) for c in range(4)) / 4
        assert _percent_after(text, f"{name}: pooled CECE ") == pytest.approx(100 * cece, abs=0.005 + 1e-9)
    assert "not drawn: background," in overlay.get_suptitle().replace("\n", " ")
    per_image = calibration_statistics(probs, labels, num_bins=5, mask=mask, per_image=True)
    dataset = dataset_reliability_figure(per_image, region="foreground", class_names=NAMES)
    assert _panel_titles(dataset) == ["liver", "kidney", "bone"]
    assert "not drawn: background" in dataset.get_suptitle()
    with pytest.raises(ValueError, match=r"got 3 class names for 4 classes .* background included"):
        dataset_reliability_figure(per_image, class_names=NAMES[1:])


def test_blue_bars_are_the_accuracy_in_every_bin():
    """Bin (0.5, 1]: confidence 0.9, accuracy 1/2 (over-confident); bin (0, 0.5]: two classes tied at 0.5, the
    argmax always right, accuracy 1 (under-confident). The blue bars reach the accuracy in both; the
    under-confident gap lies inside the bar, blue under an orange hatch, as its legend entry."""
    probs = torch.tensor([[0.9, 0.9, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5]], dtype=torch.float64)[None]
    labels = torch.tensor([[0, 1, 0, 0]])
    figure = reliability_figure(calibration_statistics(probs, labels, num_bins=2))
    accuracy, over, under, _ = figure.axes[0].containers
    assert [(bar.get_x(), bar.get_height()) for bar in accuracy] == [(0.0, 1.0), (0.5, 0.5)]
    assert [(bar.get_y(), bar.get_y() + bar.get_height()) for bar in over] == [(0.5, pytest.approx(0.9))]
    assert [(bar.get_y(), bar.get_y() + bar.get_height()) for bar in under] == [(0.5, 1.0)]
    blue = accuracy[0].get_facecolor()
    assert all(bar.get_facecolor() == blue for bar in accuracy) and under[0].get_facecolor() == blue
    legend = dict(zip((t.get_text() for t in figure.legends[0].get_texts()), figure.legends[0].legend_handles))
    entry = legend["accuracy: the blue bar, in every bin"]
    assert entry.get_facecolor() == blue and blue[:3] == pytest.approx(_rgb(ACCURACY_COLOR))
    under_entry = next(h for t, h in legend.items() if t.startswith("under-confident:"))
    assert under_entry.get_facecolor() == blue and under_entry.get_hatch() == under[0].get_hatch()


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    return tuple(int(hex_colour[k : k + 2], 16) / 255 for k in (1, 3, 5))
