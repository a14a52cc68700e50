"""DiceEstimated and DiceEstimateHandler on tiny cases fed without an engine run: the estimates against NumPy, the
review list's order, the files and the errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_nacl.handlers import DiceEstimateHandler, review_order
from monai_nacl.transforms.dice_estimate import DiceEstimated
from monai_nacl.transforms.uncertainty import UncertaintyMapsd

NAMES = ["background", "grey_matter", "white_matter"]


def numpy_sdc(probs: np.ndarray, c: int) -> float:
    mask = probs.argmax(0) == c
    return 2.0 * probs[c][mask].sum() / (probs[c].sum() + mask.sum())


def _items(sharpness: list[float], shape=(14, 12)) -> list[dict]:
    """One case per sharpness: the same kind of blobs, probabilities sharper (higher estimate) for larger values."""
    g = torch.Generator().manual_seed(0)
    items = []
    for k, sharp in enumerate(sharpness):
        logits = sharp * torch.randn(3, *shape, generator=g)
        meta = {"filename_or_obj": f"/data/case{k}.nii.gz"}
        items.append({"image": MetaTensor(torch.zeros(1, *shape), meta=meta), "pred": torch.softmax(logits, 0)})
    return items


def _postprocessed(items: list[dict]) -> list[dict]:
    """As inference.yaml's postprocessing leaves them: the estimate taken, then pred turned into the label map."""
    estimate, maps = DiceEstimated(keys="pred"), UncertaintyMapsd(keys="pred", seg_key="pred")
    return [maps(estimate(item)) for item in items]


def _read(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_files_values_and_review_order(tmp_path: Path) -> None:
    items = _items([0.5, 4.0, 1.0, 2.0])
    probs = [item["pred"].numpy() for item in items]
    handler = DiceEstimateHandler(tmp_path, class_names=NAMES)
    handler.update(SimpleNamespace(state=SimpleNamespace(output=_postprocessed(items[:2]))))
    handler.update(SimpleNamespace(state=SimpleNamespace(output=_postprocessed(items[2:]))))
    summary = handler.write()
    rows = _read(tmp_path / "dice_estimates.csv")
    assert list(rows[0]) == ["case", "est_dice_grey_matter", "est_dice_white_matter", "est_mean_dice"]
    assert [row["case"] for row in rows] == ["case0", "case1", "case2", "case3"]
    means = []
    for row, p in zip(rows, probs):
        expected = [numpy_sdc(p, c) for c in (1, 2)]
        assert float(row["est_dice_grey_matter"]) == pytest.approx(expected[0], rel=1e-6)
        assert float(row["est_dice_white_matter"]) == pytest.approx(expected[1], rel=1e-6)
        assert float(row["est_mean_dice"]) == pytest.approx(np.mean(expected), rel=1e-6)
        means.append(np.mean(expected))
    review = _read(tmp_path / "review_list.csv")
    assert list(review[0]) == ["rank", *rows[0]]
    order = [f"case{k}" for k in np.argsort(means)]
    assert [row["case"] for row in review] == order and [row["rank"] for row in review] == ["1", "2", "3", "4"]
    assert order[0] == "case0" and order[-1] == "case1"  # the flattest probabilities first, the sharpest last
    assert [float(row["est_mean_dice"]) for row in review] == sorted(float(row["est_mean_dice"]) for row in rows)
    saved = json.loads((tmp_path / "dice_estimate_summary.json").read_text())
    assert saved == summary and saved["review_list"] == order and saved["num_cases"] == 4
    assert saved["classes"] == {"1": "grey_matter", "2": "white_matter"}
    assert saved["mean"]["est_mean_dice"] == pytest.approx(np.mean(means), rel=1e-6)
    assert "2 sum(p * yhat) / (sum(p) + sum(yhat))" in saved["definition"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_review_order_puts_undefined_first_and_breaks_ties_by_name() -> None:
    rows = [
        {"case": "b", "est_mean_dice": 0.7},
        {"case": "a", "est_mean_dice": 0.7},
        {"case": "c", "est_mean_dice": math.nan},
        {"case": "d", "est_mean_dice": 0.2},
    ]
    assert [row["case"] for row in review_order(rows)] == ["c", "d", "a", "b"]


def test_background_and_default_names(tmp_path: Path) -> None:
    handler = DiceEstimateHandler(tmp_path, include_background=True)
    handler.update(SimpleNamespace(state=SimpleNamespace(output=_postprocessed(_items([1.0])))))
    summary = handler.write()
    assert list(_read(tmp_path / "dice_estimates.csv")[0]) == [
        "case",
        "est_dice_class_0",
        "est_dice_class_1",
        "est_dice_class_2",
        "est_mean_dice",
    ]
    assert summary["classes"] == {"0": "class_0", "1": "class_1", "2": "class_2"}


def test_missing_estimate_names_the_transform(tmp_path: Path) -> None:
    items = [UncertaintyMapsd(keys="pred", seg_key="pred")(item) for item in _items([1.0])]
    handler = DiceEstimateHandler(tmp_path)
    with pytest.raises(KeyError, match="case case0 has no item 'dice_estimate'.*DiceEstimated"):
        handler.update(SimpleNamespace(state=SimpleNamespace(output=items)))


def test_estimate_of_a_label_map_is_refused() -> None:
    item = UncertaintyMapsd(keys="pred", seg_key="pred")(_items([1.0])[0])
    with pytest.raises(ValueError, match=r"item 'pred' to hold channel-first probabilities.*shape \(1, 14, 12\)"):
        DiceEstimated(keys="pred")(item)


def test_wrong_class_names_and_no_case(tmp_path: Path) -> None:
    handler = DiceEstimateHandler(tmp_path, class_names=NAMES[:2])
    with pytest.raises(ValueError, match="class_names has 2 names .* num_classes is 3"):
        handler.update(SimpleNamespace(state=SimpleNamespace(output=_postprocessed(_items([1.0])))))
    with pytest.raises(RuntimeError, match="saw no case"):
        DiceEstimateHandler(tmp_path).write()
    with pytest.raises(TypeError, match="got the string '@trained_task.class_names'"):
        DiceEstimateHandler(tmp_path, class_names="@trained_task.class_names")
