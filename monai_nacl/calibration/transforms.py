"""``ApplyCalibrationd``: divide a network's logits by the temperature saved beside the model, before the softmax."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection, PathLike
from monai.transforms import MapTransform

from monai_nacl.calibration.calibrators import CALIBRATORS, Calibrator
from monai_nacl.calibration.io import CALIBRATION_FILE, LoadedCalibration, check_fitted_for, load_calibration
from monai_nacl.utils import plain_tensor

__all__ = ["AUTO", "NONE", "ApplyCalibrationd"]

logger = logging.getLogger(__name__)

AUTO = "auto"
"""``method_override`` that applies whatever calibration is saved (the same as None)."""
NONE = "none"
"""``method_override`` that turns calibration off."""


class ApplyCalibrationd(MapTransform):
    """Replace logits ``z`` by ``z / T`` with the calibrator saved in ``<calibration_dir>/calibration.json``.

    Put it in the postprocessing right before ``Activationsd(softmax=True)`` (and before ``Invertd``, so that an
    ``lts`` calibrator sees the image on the logits' grid). Items are channel-first, ``(C, *spatial)``, as the
    evaluator's decollated batch holds them; the result is float32 and keeps the item's metadata.

    Without a ``calibration.json`` the transform changes nothing and says so once in the log; with
    ``method_override="none"`` it changes nothing whatever the folder holds. The file is read at the first call
    (or at the first access of :attr:`applied`), so it may be written after the transform is built.

    Args:
        keys: the logits item(s), ``"pred"`` in the bundles.
        calibration_dir: the folder of ``calibration.json``, the bundle's ``ckpt_dir`` (beside ``model.pt``).
        method_override: None or ``"auto"``: apply what the folder holds (nothing if it holds nothing);
            ``"none"``: apply nothing; ``"ts"`` / ``"vector"`` / ``"lts"``: require that method in the folder.
        image_key: the image item, given to an ``lts`` calibrator fitted with the image.
        model_file: the weights whose logits are calibrated (the bundle's ``<ckpt_dir>/model.pt``): a calibration
            fitted for other weights (recorded hash) is refused (:class:`StaleCalibration`). None: not checked.
        allow_missing_keys: don't raise for a missing key.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        calibration_dir: PathLike | None = None,
        method_override: str | None = None,
        image_key: str = "image",
        model_file: PathLike | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.model_file = model_file
        if isinstance(method_override, str):
            method_override = method_override.strip().lower()
        choices = [None, AUTO, NONE, *CALIBRATORS]
        if method_override not in choices:
            raise ValueError(
                f"method_override (the bundle's `calibration`) must be one of {choices}, got {method_override!r}: "
                "none turns calibration off, auto (or null) applies the saved one."
            )
        if calibration_dir is None and method_override not in (None, AUTO, NONE):
            raise ValueError(
                f"method_override={method_override!r} needs the calibration_dir holding {CALIBRATION_FILE}."
            )
        self.calibration_dir = None if calibration_dir is None else Path(calibration_dir)
        self.method_override = method_override
        self.image_key = image_key
        self._loaded: LoadedCalibration | None = None
        self._resolved = False

    def _load(self) -> LoadedCalibration | None:
        if self._resolved:
            return self._loaded
        self._resolved = True
        if self.method_override == NONE:
            logger.info("calibration: turned off (calibration none); the logits are used as the model gives them.")
            return None
        path = None if self.calibration_dir is None else self.calibration_dir / CALIBRATION_FILE
        loaded = None if self.calibration_dir is None else load_calibration(self.calibration_dir)
        if loaded is None:
            if self.method_override not in (None, AUTO):
                raise ValueError(
                    f"calibration {self.method_override!r} was requested but {path} does not exist; fit it with "
                    f"configs/calibrate.yaml (--calibration_method {self.method_override}) or pass --calibration none."
                )
            logger.info(
                "calibration: no %s; the logits are used uncalibrated (fit one with configs/calibrate.yaml).",
                path or CALIBRATION_FILE,
            )
            return None
        if self.method_override not in (None, AUTO) and loaded.method != self.method_override:
            raise ValueError(
                f"calibration {self.method_override!r} was requested but {path} holds method {loaded.method!r}; refit "
                f"with --calibration_method {self.method_override}, or pass --calibration auto to apply {loaded.method!r}."
            )
        if self.model_file is not None:
            check_fitted_for(loaded.record, loaded.path, self.model_file)
        logger.info("calibration: applying %s from %s.", loaded.calibrator.describe(), path)
        if "warning" in loaded.record:
            logger.warning("calibration: %s", loaded.record["warning"])
        self._loaded = loaded
        return loaded

    @property
    def applied(self) -> dict[str, Any]:
        """What the transform applies, for a report: ``{"method": "none"}`` or the method, its file and parameters."""
        loaded = self._load()
        if loaded is None:
            return {"method": NONE}
        return {"method": loaded.method, "file": str(loaded.path), "parameters": loaded.record["parameters"]}

    def _calibrator(self, device: torch.device) -> Calibrator:
        calibrator = self._loaded.calibrator
        if next(calibrator.parameters()).device != device:
            calibrator.to(device)
        return calibrator

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self._load() is None:
            return d
        for key in self.key_iterator(d):
            logits = d[key].float()
            if logits.ndim < 2:
                raise ValueError(
                    f"ApplyCalibrationd expects channel-first logits (C, *spatial) under {key!r}, got shape "
                    f"{tuple(logits.shape)}; apply it before Activationsd and AsDiscreted."
                )
            calibrator = self._calibrator(logits.device)
            image = None
            if calibrator.uses_image:
                if self.image_key not in d:
                    raise ValueError(
                        f"the {calibrator.describe()} calibrator needs the image, but the item has no {self.image_key!r} "
                        f"(keys {list(d)}); set image_key."
                    )
                image = plain_tensor(d[self.image_key]).float()[None]
            with torch.no_grad():
                temperature = calibrator.temperature(plain_tensor(logits)[None], image)
            if temperature.ndim == logits.ndim + 1:
                temperature = temperature[0]
            d[key] = logits / temperature.to(logits.dtype)
        return d
