"""The label-free Dice estimate through a bundle's own inference and through MONAI Label's real classes (monailabel
0.8.5): ``BundleInferTask`` serves a trained ``unet2d_nacl`` whose ``inference.yaml`` carries the two entries of the
estimate (the transform in ``postprocessing``, the handler in ``handlers``, :data:`ESTIMATE_TRANSFORM` and
:data:`ESTIMATE_HANDLER`, as a bundle adds them); ``DiceEstimateScoring`` (a ``ScoringMethod``) ranks the unlabelled
images by it and ``LowestDiceEstimate`` (a ``Strategy``) hands out the lowest first. The trained app and the
torchvision stand-in are those of ``test_monailabel.py``."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from monai_nacl.bundle.export import export_bundle

from .test_monailabel import Datastore, _monailabel_tasks, _train_request, _train_task, dataset

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("monailabel") is None,
    reason="monailabel is not installed (make test installs it: pip install --no-deps monailabel==0.8.5 '.[monailabel]')",
)

__all__ = ["dataset"]  # the module fixture of test_monailabel.py, used here

ESTIMATE_TRANSFORM = """    - _target_: monai_nacl.transforms.dice_estimate.DiceEstimated
      keys: pred
"""
"""The entry of ``postprocessing``, after ``Invertd`` and before ``UncertaintyMapsd``."""
ESTIMATE_HANDLER = """  - _target_: monai_nacl.handlers.DiceEstimateHandler
    output_dir: "@prediction_dir"
    class_names: "$@trained_task.class_names"
"""
"""The entry of ``handlers``, last."""


def with_estimate(folder: Path) -> Path:
    """``folder``'s ``inference.yaml`` with the estimate's two entries (unless it has them already)."""
    path = folder / "configs" / "inference.yaml"
    text = path.read_text()
    if "DiceEstimated" not in text:
        text = text.replace(
            "    - _target_: monai_nacl.transforms.UncertaintyMapsd\n",
            ESTIMATE_TRANSFORM + "    - _target_: monai_nacl.transforms.UncertaintyMapsd\n",
            1,
        )
    if "DiceEstimateHandler" not in text:
        text = text.replace("\nevaluator:\n", "\n" + ESTIMATE_HANDLER.rstrip("\n") + "\nevaluator:\n", 1)
    assert text.count("DiceEstimated") == 1 and text.count("DiceEstimateHandler") == 1
    path.write_text(text)
    return folder


class ImageStore:
    """What MONAI Label's scoring methods and strategies read of a datastore: the unlabelled images, their URIs and
    their info (a ``LocalDatastore`` needs watchdog, not installed here)."""

    def __init__(self, images: dict[str, str], labelled: set[str] = frozenset()) -> None:
        self.images, self.labelled = images, labelled
        self.info: dict[str, dict[str, Any]] = {image: {} for image in images}

    def get_unlabeled_images(self, label_tag: str | None = None, labels: Any = None) -> list[str]:
        return [image for image in self.images if image not in self.labelled]

    def get_image_uri(self, image_id: str) -> str:
        return self.images[image_id]

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        return dict(self.info[image_id])

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        self.info[image_id].update(info)


@pytest.fixture(scope="module")
def app(dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """unet2d_nacl exported as a MONAI Label app holds it, trained there by BundleTrainTask, with the estimate."""
    folder = export_bundle("unet2d_nacl", tmp_path_factory.mktemp("app") / "unet2d_nacl")
    _train_task("unet2d_nacl", folder)(_train_request("unet2d_nacl"), Datastore(dataset[1]))
    return with_estimate(folder)


def _images(datalist: str) -> dict[str, str]:
    data = json.loads(Path(datalist).read_text())
    base = Path(datalist).parent
    return {Path(c["image"]).name.split(".nii")[0]: str(base / c["image"]) for c in data["test"] + data["training"]}


def _read(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _bundle_inference(app: Path, images: list[str], output_dir: Path) -> Path:
    """The bundle's own ``inference.yaml`` on ``images`` (``python -m monai.bundle run``); its predictions folder."""
    from monai.bundle import run

    run(
        config_file=str(app / "configs" / "inference.yaml"),
        meta_file=str(app / "configs" / "metadata.json"),
        logging_file=False,
        bundle_root=str(app),
        output_dir=str(output_dir),
        input_files=images,
        device="$torch.device('cpu')",
    )
    return output_dir / "predictions"


def test_inference_writes_estimates_and_review_list(app: Path, dataset, tmp_path: Path) -> None:
    images = list(_images(dataset[0]).values())[:3]
    folder = _bundle_inference(app, images, tmp_path)
    rows = _read(folder / "dice_estimates.csv")
    assert list(rows[0]) == ["case", "est_dice_grey_matter", "est_dice_white_matter", "est_mean_dice"]
    assert [row["case"] for row in rows] == [Path(i).name.split(".nii")[0] for i in images]
    for row in rows:
        values = [float(row["est_dice_grey_matter"]), float(row["est_dice_white_matter"])]
        assert all(0.0 <= v <= 1.0 for v in values)
        assert float(row["est_mean_dice"]) == pytest.approx(sum(values) / 2, rel=1e-9)
    review = _read(folder / "review_list.csv")
    assert [float(r["est_mean_dice"]) for r in review] == sorted(float(r["est_mean_dice"]) for r in rows)
    summary = json.loads((folder / "dice_estimate_summary.json").read_text())
    assert summary["review_list"] == [r["case"] for r in review] and summary["num_cases"] == 3
    for image in images:  # the label maps are written as before
        assert (folder / f"{Path(image).name.split('.nii')[0]}_seg.nii.gz").is_file()


def test_monailabel_scoring_ranks_unlabelled_images(app: Path, dataset, tmp_path: Path) -> None:
    """BundleInferTask + DiceEstimateScoring on 4 images (one labelled, left out): the stored estimates equal the
    bundle's own inference's, the ranking is lowest first, a second call reuses them, and the strategy hands out the
    lowest."""
    from monai_nacl.integrations.monailabel import DiceEstimateScoring, LowestDiceEstimate

    BundleInferTask, _ = _monailabel_tasks()
    task = BundleInferTask(str(app), {"preload": "false"})
    images = dict(list(_images(dataset[0]).items())[:4])
    labelled = next(iter(images))
    store = ImageStore(images, labelled={labelled})
    scoring = DiceEstimateScoring(task)
    result = scoring({"device": "cpu"}, store)
    unlabelled = [i for i in images if i != labelled]
    assert result["total"] == 3 and result["executed"] == 3 and result["skipped"] == 0
    assert set(result["scores"]) == set(unlabelled) and labelled not in result["ranking"]
    assert result["ranking"] == sorted(unlabelled, key=lambda i: result["scores"][i])
    own_folder = _bundle_inference(app, [images[i] for i in unlabelled], tmp_path)
    own = {r["case"]: r for r in _read(own_folder / "dice_estimates.csv")}
    for image in unlabelled:
        info = store.get_image_info(image)
        assert set(info["dice_estimate_per_class"]) == {"grey matter", "white matter"}  # as MONAI Label names them
        assert info["dice_estimate_per_class"]["grey matter"] == pytest.approx(
            float(own[image]["est_dice_grey_matter"]), abs=1e-6
        )
        assert info["dice_estimate"] == pytest.approx(float(own[image]["est_mean_dice"]), abs=1e-6)
        assert info["dice_estimate"] == result["scores"][image]
    again = scoring({"device": "cpu"}, store)
    assert again["executed"] == 0 and again["skipped"] == 3 and again["ranking"] == result["ranking"]
    assert LowestDiceEstimate()({"strategy": "dice_estimate"}, store) == {
        "id": result["ranking"][0],
        "dice_estimate": result["scores"][result["ranking"][0]],
    }
    store.labelled = set(images)
    assert LowestDiceEstimate()({"strategy": "dice_estimate"}, store) is None


def test_scoring_without_the_transform_names_it(app: Path, dataset, tmp_path: Path) -> None:
    from monai_nacl.integrations.monailabel import DiceEstimateScoring

    folder = tmp_path / "unet2d_nacl"
    shutil.copytree(app, folder)
    path = folder / "configs" / "inference.yaml"
    path.write_text(re.sub(r" *- _target_: [\w.]*DiceEstimated\n *keys: pred\n", "", path.read_text()))
    BundleInferTask, _ = _monailabel_tasks()
    image = next(iter(_images(dataset[0]).values()))
    with pytest.raises(KeyError, match="returned no 'dice_estimate'.*DiceEstimated"):
        DiceEstimateScoring(BundleInferTask(str(folder), {"preload": "false"})).score(image, "cpu")
