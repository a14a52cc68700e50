"""metrics.csv and summary.json of SegmentationReportHandler name the classes (``dice_grey_matter``), on tiny cases
fed without an engine run; Dice values against NumPy."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import scipy.stats
import torch
from monai.data import MetaTensor

from monai_nacl.handlers import SegmentationReportHandler, flatten_case_metrics
from monai_nacl.metrics import evaluate_segmentation

NAMES = ["background_other", "grey_matter", "white_matter"]
CALIBRATION = ["ece", "cece", "ace", "cace", "adaece", "cadaece", "mce", "nll", "brier"]


def numpy_dice(pred: np.ndarray, label: np.ndarray, k: int) -> float:
    p, g = pred == k, label == k
    return 2.0 * np.logical_and(p, g).sum() / (p.sum() + g.sum())


def _items(num_cases: int = 2, shape=(12, 11)) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    items = []
    for k in range(num_cases):
        label = torch.randint(0, 3, (1, *shape), generator=g)
        # logits favouring the label, so the Dice is neither 0 nor 1
        logits = 2.0 * torch.nn.functional.one_hot(label[0], 3).movedim(-1, 0) + torch.randn(3, *shape, generator=g)
        meta = {"filename_or_obj": f"/data/case{k}.nii.gz"}
        items.append(
            {"pred": MetaTensor(torch.softmax(logits, 0), meta=meta), "label": MetaTensor(label.float(), meta=meta)}
        )
    return items


def _run(handler: SegmentationReportHandler, items: list[dict]) -> tuple[list[dict[str, str]], dict]:
    handler.update(SimpleNamespace(state=SimpleNamespace(output=items)))
    handler.write()
    with open(Path(handler.output_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads((Path(handler.output_dir) / "summary.json").read_text())


def test_columns_and_summary_use_the_class_names(tmp_path: Path) -> None:
    items = _items()
    handler = SegmentationReportHandler(tmp_path, num_classes=3, class_names=NAMES, diagram_filename=None)
    rows, summary = _run(handler, items)
    columns = ["case", "dice_grey_matter", "dice_white_matter", "hd95_grey_matter", "hd95_white_matter", "mean_dice"]
    estimates = ["est_dice_grey_matter", "est_dice_white_matter", "est_mean_dice", "est_dice_abs_error"]
    assert list(rows[0]) == columns + CALIBRATION + estimates
    assert summary["classes"] == {"1": "grey_matter", "2": "white_matter"}
    assert list(summary["mean"]) == columns[1:] + CALIBRATION + estimates
    dice = []
    for row, item in zip(rows, items):
        pred, label = item["pred"].argmax(0).numpy(), item["label"][0].long().numpy()
        expected = [numpy_dice(pred, label, k) for k in (1, 2)]
        assert 0.2 < min(expected) and max(expected) < 0.95
        assert float(row["dice_grey_matter"]) == pytest.approx(expected[0], abs=1e-6)
        assert float(row["dice_white_matter"]) == pytest.approx(expected[1], abs=1e-6)
        assert float(row["mean_dice"]) == pytest.approx(np.mean(expected), abs=1e-6)
        dice.append(expected)
    assert summary["mean"]["dice_grey_matter"] == pytest.approx(np.mean([d[0] for d in dice]), abs=1e-6)
    assert summary["mean"]["mean_dice"] == pytest.approx(np.mean(dice), abs=1e-6)


def test_without_names_the_columns_are_class_k(tmp_path: Path) -> None:
    rows, summary = _run(SegmentationReportHandler(tmp_path, num_classes=3, diagram_filename=None), _items(1))
    assert list(rows[0])[:6] == ["case", "dice_class_1", "dice_class_2", "hd95_class_1", "hd95_class_2", "mean_dice"]
    assert summary["classes"] == {"1": "class_1", "2": "class_2"}


def test_flatten_case_metrics_with_background(tmp_path: Path) -> None:
    item = _items(1)[0]
    result = evaluate_segmentation(
        item["pred"].as_tensor()[None], item["label"].as_tensor()[None], include_background=True
    )
    row = flatten_case_metrics(result, NAMES)
    pred, label = item["pred"].argmax(0).numpy(), item["label"][0].long().numpy()
    expected = [numpy_dice(pred, label, k) for k in range(3)]
    assert [row[f"dice_{name}"] for name in NAMES] == pytest.approx(expected, abs=1e-6)
    assert list(row)[:7] == [*(f"dice_{n}" for n in NAMES), *(f"hd95_{n}" for n in NAMES), "mean_dice"]
    with pytest.raises(ValueError, match="class_names has 2 names .* num_classes is 3"):
        flatten_case_metrics(result, NAMES[:2])


def test_rater_columns_use_the_class_names(tmp_path: Path) -> None:
    item = _items(1)[0]
    label = item["label"][0].long().numpy()
    g = np.random.default_rng(0)
    raters = [label, np.where(g.random(label.shape) < 0.2, g.integers(0, 3, label.shape), label)]
    files = []
    for r, rater in enumerate(raters):
        files.append(str(tmp_path / f"rater{r}.nii.gz"))
        nib.save(nib.Nifti1Image(rater.astype(np.uint8), np.eye(4)), files[-1])
    handler = SegmentationReportHandler(
        tmp_path, num_classes=3, class_names=NAMES, rater_files={"case0": files}, diagram_filename=None
    )
    rows, _ = _run(handler, [item])
    for k, name in ((1, "grey_matter"), (2, "white_matter")):
        assert float(rows[0][f"inter_rater_dice_{name}"]) == pytest.approx(numpy_dice(*raters, k), abs=1e-6)
    assert not [c for c in rows[0] if "dsc" in c]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["bg", "grey_matter"], "class_names has 2 names .* but num_classes is 3"),
        (["bg", "matter", "matter"], r"repeats \['matter'\]"),
    ],
)
def test_wrong_class_names_are_refused(tmp_path: Path, names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentationReportHandler(tmp_path, num_classes=3, class_names=names)


def test_class_set_reaches_the_table_and_the_summary(tmp_path: Path) -> None:
    """With the authors' class set, a case without class 2 averages CECE over classes 0..1 only: the handler's
    column equals evaluate_segmentation's with that option and differs from the default."""
    items = _items(2)
    items[0]["label"] = MetaTensor(
        torch.where(items[0]["label"] == 2, 1.0, items[0]["label"]), meta=items[0]["label"].meta
    )
    theirs, _ = _run(
        SegmentationReportHandler(tmp_path / "theirs", 3, diagram_filename=None, class_set="up_to_max_label"), items
    )
    ours, summary = _run(SegmentationReportHandler(tmp_path / "ours", 3, diagram_filename=None), items)
    assert summary["class_set"] == "all"
    assert json.loads((tmp_path / "theirs" / "summary.json").read_text())["class_set"] == "up_to_max_label"
    for k, item in enumerate(items):
        for class_set, rows in (("up_to_max_label", theirs), ("all", ours)):
            expected = evaluate_segmentation(item["pred"][None], item["label"][None], class_set=class_set)
            assert float(rows[k]["cece"]) == pytest.approx(float(expected["per_case"]["cece"][0]), abs=1e-6)
    assert float(theirs[0]["cece"]) != pytest.approx(float(ours[0]["cece"]), abs=1e-4)
    assert float(theirs[1]["cece"]) == pytest.approx(float(ours[1]["cece"]), abs=1e-9)  # every class present


def numpy_sdc(probs: np.ndarray, c: int) -> float:
    mask = probs.argmax(0) == c
    return 2.0 * probs[c][mask].sum() / (probs[c].sum() + mask.sum())


def test_estimated_dice_beside_the_true_dice(tmp_path: Path) -> None:
    """est_dice_<class> is the Soft Dice Confidence of the case's probabilities (NumPy), est_dice_abs_error its mean
    distance to the true Dice; summary.json's dice_estimate gives MAE, Spearman and Pearson over (case, class) pairs
    and per class (scipy), and dice_estimate.png is drawn."""
    items = _items(6)
    handler = SegmentationReportHandler(tmp_path, num_classes=3, class_names=NAMES, diagram_filename=None)
    rows, summary = _run(handler, items)
    estimated, true = {1: [], 2: []}, {1: [], 2: []}
    for row, item in zip(rows, items):
        probs, label = item["pred"].numpy(), item["label"][0].long().numpy()
        for k, name in ((1, "grey_matter"), (2, "white_matter")):
            assert float(row[f"est_dice_{name}"]) == pytest.approx(numpy_sdc(probs, k), rel=1e-6)
            estimated[k].append(numpy_sdc(probs, k))
            true[k].append(numpy_dice(probs.argmax(0), label, k))
        errors = [abs(estimated[k][-1] - true[k][-1]) for k in (1, 2)]
        assert float(row["est_dice_abs_error"]) == pytest.approx(np.mean(errors), rel=1e-5)
        assert float(row["est_mean_dice"]) == pytest.approx(np.mean([estimated[k][-1] for k in (1, 2)]), rel=1e-6)
    agreement = summary["dice_estimate"]
    est, ref = np.array(estimated[1] + estimated[2]), np.array(true[1] + true[2])
    assert agreement["num_pairs"] == 12
    assert agreement["mae"] == pytest.approx(np.abs(est - ref).mean(), rel=1e-5)
    assert agreement["spearman"] == pytest.approx(scipy.stats.spearmanr(est, ref)[0], abs=1e-9)
    assert agreement["pearson"] == pytest.approx(scipy.stats.pearsonr(est, ref)[0], rel=1e-5)
    white = agreement["per_class"]["white_matter"]
    assert white["spearman"] == pytest.approx(scipy.stats.spearmanr(estimated[2], true[2])[0], abs=1e-9)
    assert white["num_pairs"] == 6 and set(agreement["per_class"]) == {"grey_matter", "white_matter"}
    assert "2 sum(p * yhat) / (sum(p) + sum(yhat))" in agreement["definition"]
    assert agreement["plot"] == "dice_estimate.png"
    assert (tmp_path / "dice_estimate.png").read_bytes()[:4] == b"\x89PNG"


def test_estimate_error_leaves_out_a_class_absent_from_the_label(tmp_path: Path) -> None:
    items = _items(3)
    label = items[0]["label"]
    items[0]["label"] = MetaTensor(torch.where(label == 2, 1.0, label), meta=label.meta)  # no white matter
    rows, summary = _run(SegmentationReportHandler(tmp_path, 3, class_names=NAMES, diagram_filename=None), items)
    assert rows[0]["dice_white_matter"] == "nan" and float(rows[0]["est_dice_white_matter"]) > 0
    expected = abs(float(rows[0]["est_dice_grey_matter"]) - float(rows[0]["dice_grey_matter"]))
    assert float(rows[0]["est_dice_abs_error"]) == pytest.approx(expected, rel=1e-6)
    assert summary["dice_estimate"]["num_pairs"] == 5
    assert summary["dice_estimate"]["per_class"]["white_matter"]["num_pairs"] == 2
