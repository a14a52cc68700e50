"""MONAI Label's view of a bundle's classes: ``configs/metadata.json``, kept to the trained model's ``task.json``.

MONAI Label's ``BundleInferTask`` takes the label names and their count from
``network_data_format.outputs.pred.channel_def`` of the bundle's ``metadata.json`` (channel ``background`` is not
shown), read once when the app starts; it never reads ``task.json``. A model trained on other classes would be shown
with the shipped names, and with a wrong count when ``num_classes`` differs. :func:`sync_channel_def` rewrites that
``channel_def`` (and ``num_channels``) to the classes of the model the bundle serves, ``<bundle_root>/models``;
training calls it when it ends (``finalize``), and building ``inference.yaml``'s ``network_def`` calls it first, which
MONAI Label does before it reads ``metadata.json``, so that a model put into ``models/`` by hand is named right too.

Active learning by the model's own Dice estimate: :class:`DiceEstimateScoring` (a MONAI Label ``ScoringMethod``)
runs the served bundle on every unlabelled image and stores its label-free Dice estimate
(:func:`~monai_nacl.metrics.soft_dice_confidence`, per class and its foreground mean) in the datastore;
:class:`LowestDiceEstimate` (a ``Strategy``) then hands out the image with the lowest estimate for annotation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from monai.config import PathLike
from monai.utils import optional_import

from monai_nacl.bundle.task import TASK_FILE
from monai_nacl.utils import atomic_write_text

# MONAI Label is not a dependency: without it these bases raise when a subclass is instantiated
ScoringMethod, _ = optional_import("monailabel.interfaces.tasks.scoring", name="ScoringMethod", as_type="base")
Strategy, _ = optional_import("monailabel.interfaces.tasks.strategy", name="Strategy", as_type="base")

__all__ = ["DiceEstimateScoring", "LowestDiceEstimate", "channel_def_of", "sync_channel_def"]

logger = logging.getLogger("monai_nacl")


def channel_def_of(class_names: list[str], shipped: dict[str, str] | None = None) -> dict[str, str]:
    """``{"0": "background", "1": <name of class 1>, ...}`` for MONAI Label.

    Channel 0 keeps its shipped name (MONAI Label hides the channel called ``background``); a shipped name whose
    column-safe form is the trained name (``grey matter`` for ``grey_matter``) is kept as written.
    """
    from monai_nacl.data.datalist import column_safe

    shipped = shipped or {}
    channel_def = {"0": str(shipped.get("0", "background"))}
    for k, name in enumerate(class_names[1:], start=1):
        old = shipped.get(str(k))
        channel_def[str(k)] = str(old) if old is not None and column_safe(str(old)) == name else name
    return channel_def


def sync_channel_def(bundle_root: PathLike, ckpt_dir: PathLike) -> Path | None:
    """Write the classes of ``<ckpt_dir>/task.json`` into ``<bundle_root>/configs/metadata.json`` for MONAI Label.

    Only for the model the bundle serves (``ckpt_dir`` is ``<bundle_root>/models``, where MONAI Label loads
    ``model.pt``) and only when the names or their count differ; every other field of ``metadata.json`` is kept and the
    file is replaced atomically.

    Args:
        bundle_root: the bundle's folder.
        ckpt_dir: the folder of the model and its ``task.json``.

    Returns:
        the path of ``metadata.json`` when it was rewritten, else None.
    """
    bundle_root, ckpt_dir = Path(bundle_root), Path(ckpt_dir)
    task_file, metadata_file = ckpt_dir / TASK_FILE, bundle_root / "configs" / "metadata.json"
    if ckpt_dir.resolve() != (bundle_root / "models").resolve() or not task_file.is_file():
        return None
    if not metadata_file.is_file():
        return None
    class_names = json.loads(task_file.read_text(encoding="utf-8")).get("class_names")
    if not class_names:
        return None
    metadata: dict[str, Any] = json.loads(metadata_file.read_text(encoding="utf-8"))
    outputs = metadata.get("network_data_format", {}).get("outputs", {})
    if not outputs:
        return None
    pred = next(iter(outputs.values()))
    channel_def = channel_def_of(list(class_names), pred.get("channel_def"))
    if pred.get("channel_def") == channel_def and pred.get("num_channels") == len(channel_def):
        return None
    logger.info(
        "%s: channel_def %s -> %s (the classes of %s, what MONAI Label shows)",
        os.fspath(metadata_file),
        pred.get("channel_def"),
        channel_def,
        os.fspath(task_file),
    )
    pred["channel_def"] = channel_def
    pred["num_channels"] = len(channel_def)
    return atomic_write_text(metadata_file, json.dumps(metadata, indent=4) + "\n")


ESTIMATE_INFO_KEY = "dice_estimate"
"""Datastore image-info key of the estimated mean Dice; ``<key>_per_class`` and ``<key>_ts`` hold the per-class values
and the model file's time stamp they were computed with."""


def _ranked(scores: dict[str, float]) -> list[str]:
    """Image ids by estimated Dice, lowest first; an image without an estimate (NaN) first, ties by id."""
    return sorted(scores, key=lambda image: (-math.inf if math.isnan(scores[image]) else scores[image], image))


class DiceEstimateScoring(ScoringMethod):
    """MONAI Label scoring: the estimated Dice of every unlabelled image, for choosing what to annotate next.

    For each unlabelled image of the datastore the infer task (a ``BundleInferTask`` serving one of these bundles)
    runs without writing a label (``skip_writer``); its postprocessing must hold
    :class:`~monai_nacl.transforms.dice_estimate.DiceEstimated`, which stores the Soft Dice Confidence per class.
    The image's info gets ``dice_estimate`` (the mean over the foreground classes), ``dice_estimate_per_class``
    (label name -> estimate, as the task names its labels) and ``dice_estimate_ts`` (the model file's time stamp:
    images already scored with the same model are not run again, as MONAI Label's epistemic scoring does).

    The images with the lowest estimate are those the model expects to have segmented worst: annotating them first
    corrects its largest errors. How far the estimate can be trusted is measured by the bundle's evaluation
    (``summary.json`` ``dice_estimate``): a calibrated model's estimate follows its true Dice.

    Args:
        infer_task: the MONAI Label infer task of the bundle.
        estimate_key: the item :class:`~monai_nacl.transforms.dice_estimate.DiceEstimated` writes.
        max_samples: score at most this many images per call (0: all), as MONAI Label's scoring methods.
    """

    def __init__(self, infer_task: Any, estimate_key: str = "dice_estimate", max_samples: int = 0) -> None:
        super().__init__(f"Estimated Dice of each unlabelled image (soft Dice confidence) - {infer_task.description}")
        self.infer_task = infer_task
        self.estimate_key = estimate_key
        self.max_samples = max_samples

    def _class_names(self, channels: int) -> dict[int, str]:
        """Label value -> name of the foreground channels, from the task's labels (``{name: value}``)."""
        labels = getattr(self.infer_task, "labels", None)
        names = {int(v): str(k) for k, v in labels.items()} if isinstance(labels, dict) else {}
        return {c: names.get(c, f"class_{c}") for c in range(1, channels)}

    def score(self, image_uri: str, device: str | None = None) -> dict[str, float]:
        """The per-class estimate of one image (label name -> estimated Dice).

        Raises:
            KeyError: when the task's postprocessing does not store the estimate (which transform to add is named).
        """
        request: dict[str, Any] = {"image": image_uri, "skip_writer": True, "logging": "error"}
        if device:
            request["device"] = device
        _, data = self.infer_task(request=request)
        if not isinstance(data, dict) or self.estimate_key not in data:
            raise KeyError(
                f"the inference of {image_uri} returned no {self.estimate_key!r}: add "
                "monai_nacl.transforms.dice_estimate.DiceEstimated (keys: pred) to the bundle's inference.yaml "
                "postprocessing, after Invertd and before UncertaintyMapsd."
            )
        estimate = [float(v) for v in data[self.estimate_key].reshape(-1).tolist()]
        return {name: estimate[c] for c, name in self._class_names(len(estimate)).items()}

    def __call__(self, request: dict[str, Any], datastore: Any) -> dict[str, Any]:
        """Score the unlabelled images not yet scored with the current model.

        Returns:
            ``total``, ``skipped`` (already scored with this model), ``executed``, ``latency`` (s), ``scores``
            (image id -> estimated mean Dice, every unlabelled image with an estimate) and ``ranking`` (those ids,
            lowest estimate first: the order to annotate them in).
        """
        start = time.time()
        model_file = self.infer_task.get_path()
        model_ts = int(os.stat(model_file).st_mtime) if model_file and os.path.exists(model_file) else 1
        images = datastore.get_unlabeled_images()
        max_samples = int(request.get("max_samples", self.max_samples))
        todo = [i for i in images if datastore.get_image_info(i).get(f"{ESTIMATE_INFO_KEY}_ts") != model_ts]
        todo = todo[:max_samples] if max_samples else todo
        for image in todo:
            per_class = self.score(datastore.get_image_uri(image), request.get("device"))
            finite = [v for v in per_class.values() if math.isfinite(v)]
            mean = sum(finite) / len(finite) if finite else math.nan
            logger.info("dice estimate of %s: %.4f %s", image, mean, per_class)
            datastore.update_image_info(
                image,
                {
                    ESTIMATE_INFO_KEY: mean,
                    f"{ESTIMATE_INFO_KEY}_per_class": per_class,
                    f"{ESTIMATE_INFO_KEY}_ts": model_ts,
                },
            )
        scores = {}
        for image in images:
            value = datastore.get_image_info(image).get(ESTIMATE_INFO_KEY)
            if value is not None:
                scores[image] = float(value)
        return {
            "total": len(images),
            "skipped": len(images) - len(todo),
            "executed": len(todo),
            "latency": round(time.time() - start, 3),
            "scores": scores,
            "ranking": _ranked(scores),
        }


class LowestDiceEstimate(Strategy):
    """MONAI Label active-learning strategy: the unlabelled image with the lowest estimated Dice
    (:class:`DiceEstimateScoring` must have scored it; unscored images come after the scored ones)."""

    def __init__(self) -> None:
        super().__init__("Next: the unlabelled image with the lowest estimated Dice (run DiceEstimateScoring first)")

    def __call__(self, request: dict[str, Any], datastore: Any) -> dict[str, Any] | None:
        """``{"id": image, "dice_estimate": value}`` of the next image to annotate; None when none is unlabelled."""
        images = datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels"))
        if not images:
            return None
        scores = {i: datastore.get_image_info(i).get(ESTIMATE_INFO_KEY) for i in images}
        scored = {i: float(v) for i, v in scores.items() if v is not None}
        order = _ranked(scored) + sorted(i for i in images if i not in scored)
        return {"id": order[0], ESTIMATE_INFO_KEY: scored.get(order[0])}
