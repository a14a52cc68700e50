"""The bundles run in MONAI Label's own task classes, ``BundleInferTask`` and ``BundleTrainTask`` (monailabel 0.8.5).

Each bundle is exported into a folder, as a MONAI Label app holds it, and trained there by ``BundleTrainTask`` on the
cases a datastore lists (twice: MONAI Label retrains in place, starting from the served model); ``BundleInferTask``
then answers a request with a label file, equal to the bundle's own inference. A ``unet2d_nacl`` trained with
``protocol_paper.yaml`` (another UNet) on four named classes is served with its own weights and its classes' names;
weights of another network stop the request with both architectures named.

monailabel is not a dependency (its pins pull another torch): ``make test`` installs it with ``--no-deps`` and the
light packages of the extra ``monailabel`` (setup.cfg). Its module ``monailabel.transform.post``, imported by
``BundleInferTask``, imports ``torchvision.utils`` (for an image dump the bundle tasks never call); the only
torchvision wheel for torch 2.13 is CUDA-linked, so without torchvision the import runs against a stand-in
``torchvision.utils`` whose functions raise, removed from ``sys.modules`` right after (:func:`_monailabel_tasks`).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_nacl.bundle.export import export_bundle
from monai_nacl.bundle.weights import WeightsMismatch

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("monailabel") is None,
    reason="monailabel is not installed (make test installs it: pip install --no-deps monailabel==0.8.5 '.[monailabel]')",
)

BUNDLES = ("unet2d_nacl", "unet3d_nacl", "swinunetr_nacl")
# What MONAI Label's BundleTrainTask lets an app change beyond its own overrides (`_update_overrides`): a small
# patch and one step per epoch, so that each bundle trains in seconds on a CPU
SMALL: dict[str, dict[str, Any]] = {
    "unet2d_nacl": {"roi_size": [16, 16]},
    "unet3d_nacl": {"roi_size": [16, 16, 16]},
    "swinunetr_nacl": {"roi_size": [64, 64, 64], "network_def#depths": [1, 1, 1, 1]},
}
FAST = {"batch_size": 1, "num_samples": 1, "cache_rate": 0.0, "train#trainer#epoch_length": 1, "sw_batch_size": 1}
CLASSES = {"0": "background", "1": "liver", "2": "spleen", "3": "left kidney"}


@contextmanager
def _stand_in_torchvision() -> Iterator[None]:
    """``torchvision.utils`` as a stand-in while monailabel imports it, when torchvision is not installed."""
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return

    def unavailable(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("torchvision is not installed (a stand-in of the MONAI Label tests)")

    package, utils = types.ModuleType("torchvision"), types.ModuleType("torchvision.utils")
    utils.make_grid = utils.save_image = unavailable
    package.utils = utils
    sys.modules.update({"torchvision": package, "torchvision.utils": utils})
    try:
        yield
    finally:
        for name, module in (("torchvision", package), ("torchvision.utils", utils)):
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _monailabel_tasks() -> tuple[type, type]:
    with _stand_in_torchvision():
        from monailabel.tasks.infer.bundle import BundleInferTask
        from monailabel.tasks.train.bundle import BundleTrainTask
    return BundleInferTask, BundleTrainTask


class Datastore:
    """What ``BundleTrainTask`` reads of a MONAI Label datastore: ``datalist()``, the labelled images."""

    def __init__(self, cases: list[dict[str, str]]) -> None:
        self.cases = cases

    def datalist(self) -> list[dict[str, str]]:
        return [dict(c) for c in self.cases]


def _train_task(bundle: str, folder: Path) -> Any:
    """MONAI Label's ``BundleTrainTask`` on ``folder``, with the app-level overrides of :data:`SMALL` and
    :data:`FAST` (MONAI Label's ``_update_overrides``, its place for an app's settings)."""
    _, BundleTrainTask = _monailabel_tasks()

    class SmallBundleTrainTask(BundleTrainTask):
        def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
            overrides.update({**FAST, **SMALL[bundle]})
            return overrides

    return SmallBundleTrainTask(str(folder), {})


def _train_request(bundle: str, **changes: Any) -> dict[str, Any]:
    """A train request as MONAI Label's UI sends it (its defaults, one epoch on the CPU)."""
    return {"model": bundle, "max_epochs": 1, "val_split": 0.25, "device": "cpu", "multi_gpu": False, **changes}


def _cases(datalist: str) -> list[dict[str, str]]:
    data = json.loads(Path(datalist).read_text())
    base = Path(datalist).parent
    return [{"image": str(base / c["image"]), "label": str(base / c["label"])} for c in data["training"]]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, str]], str]:
    """Synthetic 24^3 volumes, 3 classes: ``(datalist, the datastore's cases, an image to infer)``."""
    from monai_nacl.data import make_synthetic_dataset

    folder = tmp_path_factory.mktemp("monailabel_data")
    datalist = make_synthetic_dataset(folder, num_cases=6, spatial_dims=3, size=24, num_classes=3, seed=0)
    test = json.loads(Path(datalist).read_text())["test"][0]["image"]
    return datalist, _cases(datalist)[:4], str(folder / test)


@pytest.fixture(scope="module", params=BUNDLES)
def trained(request: pytest.FixtureRequest, dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Each bundle exported as a MONAI Label app holds it and trained there by ``BundleTrainTask``."""
    bundle = request.param
    folder = export_bundle(bundle, tmp_path_factory.mktemp("app") / bundle)
    _train_task(bundle, folder)(_train_request(bundle), Datastore(dataset[1]))
    return bundle, folder


def _own_inference(folder: Path, image: str, output_dir: Path, **overrides: Any) -> np.ndarray:
    """The bundle's own ``inference.yaml`` on ``image``: its ``<case>_seg.nii.gz`` label map."""
    from monai.bundle import run

    run(
        config_file=str(folder / "configs" / "inference.yaml"),
        meta_file=str(folder / "configs" / "metadata.json"),
        logging_file=False,
        bundle_root=str(folder),
        output_dir=str(output_dir),
        input_files=[image],
        device="$torch.device('cpu')",
        **overrides,
    )
    name = Path(image).name.split(".nii")[0]
    return np.asarray(nib.load(output_dir / "predictions" / f"{name}_seg.nii.gz").dataobj)


def _infer(folder: Path, image: str) -> tuple[Any, str, dict[str, Any]]:
    """MONAI Label's ``BundleInferTask`` on ``folder`` answering one request: ``(task, label file, result)``."""
    BundleInferTask, _ = _monailabel_tasks()
    task = BundleInferTask(str(folder), {"preload": "false"})
    assert task.is_valid(), f"MONAI Label ignored {folder}"
    label_file, result = task({"image": image, "device": "cpu"})
    return task, label_file, result


def test_trained_and_served_by_monailabel(trained: tuple[str, Path], dataset, tmp_path: Path) -> None:
    bundle, folder = trained
    _, cases, image = dataset
    models = folder / "models"
    task_json = json.loads((models / "task.json").read_text())
    # the cases MONAI Label handed in are what the run checked, trained on and recorded, not the default dataset
    assert task_json["datalist"]["training"] == cases[:3] and task_json["datalist"]["validation"] == cases[3:]
    assert task_json["class_names"] == ["background", "grey_matter", "white_matter"]  # metadata.json's channel_def
    assert task_json["roi_size"] == SMALL[bundle]["roi_size"]
    assert [line.split(",")[0] for line in (folder / "eval" / "history.csv").read_text().splitlines()[1:]] == ["1"]

    task, label_file, result = _infer(folder, image)
    assert task.labels == {"grey matter": 1, "white matter": 2}
    assert result["label_names"] == task.labels
    written = nib.load(label_file)
    source = nib.load(image)
    assert written.shape == source.shape and written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-5)
    own = _own_inference(folder, image, tmp_path / "own")
    np.testing.assert_array_equal(np.asarray(written.dataobj), own)
    # the network MONAI Label serves holds the trained weights
    served = task._get_network("cpu", None).state_dict()
    saved = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert served.keys() == saved.keys() and all(torch.equal(served[k], saved[k]) for k in saved)

    # MONAI Label retrains in place, from the served model (pretrained): the run replaces model.pt and its task.json
    before = (models / "model.pt").read_bytes()
    _train_task(bundle, folder)(_train_request(bundle, max_epochs=2), Datastore(cases))
    assert (models / "model.pt").read_bytes() != before
    assert [line.split(",")[0] for line in (folder / "eval" / "history.csv").read_text().splitlines()[1:]] == ["1", "2"]
    retrained = json.loads((models / "task.json").read_text())
    assert retrained["model"]["sha256"] != task_json["model"]["sha256"]


@pytest.fixture(scope="module")
def protocol_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """unet2d_nacl trained with protocol_paper.yaml (the authors' UNet) on 4 named classes into its own models/,
    as `python -m monai.bundle run --config_file "['configs/train.yaml','configs/protocol_paper.yaml']"` does."""
    from monai.bundle import run

    from monai_nacl.data import make_synthetic_dataset

    data = tmp_path_factory.mktemp("four_classes")
    datalist = make_synthetic_dataset(data, num_cases=6, spatial_dims=3, size=32, num_classes=4, seed=1)
    content = json.loads(Path(datalist).read_text())
    Path(datalist).write_text(json.dumps({**content, "labels": CLASSES}))
    folder = export_bundle("unet2d_nacl", tmp_path_factory.mktemp("app") / "unet2d_nacl")
    run(
        config_file=[str(folder / "configs" / c) for c in ("train.yaml", "protocol_paper.yaml")],
        meta_file=str(folder / "configs" / "metadata.json"),
        logging_file=False,
        bundle_root=str(folder),
        datalist=datalist,
        num_classes=4,
        roi_size=[16, 16],
        max_epochs=1,
        batch_size=2,
        train_volumes=1,
        train_slices=2,
        device="$torch.device('cpu')",
    )
    return folder, datalist, str(data / content["test"][0]["image"])


def test_protocol_model_served_with_its_own_weights_and_classes(protocol_model, tmp_path: Path) -> None:
    folder, _, image = protocol_model
    task_json = json.loads((folder / "models" / "task.json").read_text())
    assert task_json["network_def"]["channels"] == [32, 64, 128, 256, 512]  # not the config's [16, 32, 64, 128]
    task, label_file, _ = _infer(folder, image)
    # the trained classes, counted right: 3 foreground labels, named as the datalist named them
    assert task.labels == {"liver": 1, "spleen": 2, "left_kidney": 3}  # column-safe, as task.json names them
    served = task._get_network("cpu", None).state_dict()
    saved = torch.load(folder / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert len(saved) == len(served) and all(torch.equal(served[k], saved[k]) for k in saved)
    written = np.asarray(nib.load(label_file).dataobj)
    np.testing.assert_array_equal(written, _own_inference(folder, image, tmp_path / "own"))
    metadata = json.loads((folder / "configs" / "metadata.json").read_text())
    pred = metadata["network_data_format"]["outputs"]["pred"]
    assert pred["channel_def"] == {**CLASSES, "3": "left_kidney"} and pred["num_channels"] == 4
    assert metadata["name"] == "unet2d_nacl"  # every other field as exported


def test_weights_of_another_network_stop_the_request(protocol_model, tmp_path: Path) -> None:
    """model.pt replaced by the weights of train.yaml's UNet while task.json describes the protocol's: MONAI Label
    loads with strict=False, which would keep a randomly initialised network; the load stops instead."""
    from monai.bundle import ConfigParser

    source, _, image = protocol_model
    folder = tmp_path / "unet2d_nacl"
    shutil.copytree(source, folder)
    parser = ConfigParser()
    parser.read_config(str(folder / "configs" / "train.yaml"))
    parser.update({"bundle_root": str(folder), "num_classes": 4})
    torch.save(parser.get_parsed_content("network_def").state_dict(), folder / "models" / "model.pt")
    BundleInferTask, _ = _monailabel_tasks()
    task = BundleInferTask(str(folder), {"preload": "false"})
    with pytest.raises(WeightsMismatch) as error:
        task({"image": image, "device": "cpu"})
    message = str(error.value)
    assert "monai.networks.nets.UNet(spatial_dims=2" in message and "channels=[32, 64, 128, 256, 512]" in message
    assert "the weights hold 82 entries" in message and "entries missing" in message


def test_image_path_survives_spacing(tmp_path: Path) -> None:
    """MONAI 1.6.1's Spacingd fails on the `image_path` string MONAI Label adds to a request (reproduced with plain
    MONAI transforms); the bundles set it aside around the spatial transforms and restore it."""
    from monai.bundle import ConfigParser
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Spacingd

    image = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 22, 18), dtype=np.float32), np.eye(4)), str(image))
    request = {"image": str(image), "image_path": str(image)}
    plain = Compose([LoadImaged("image", image_only=False), EnsureChannelFirstd("image"), Spacingd("image", [2.0] * 3)])
    with pytest.raises(RuntimeError) as error:
        plain(dict(request))
    assert "'str' object has no attribute 'update'" in repr(error.value.__cause__)
    resampled = tuple(plain({"image": str(image)})["image"].shape)  # without image_path
    for bundle in BUNDLES:
        parser = ConfigParser()
        parser.read_config(str(Path(__file__).parents[2] / "bundles" / bundle / "configs" / "inference.yaml"))
        parser.update({"bundle_root": str(tmp_path)})
        item = parser.get_parsed_content("preprocessing")(dict(request))
        assert item["image_path"] == str(image) and tuple(item["image"].shape) == resampled
