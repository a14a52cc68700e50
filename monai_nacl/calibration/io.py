"""``calibration.json`` (and ``calibration_weights.pt``) beside a bundle's ``model.pt``.

The JSON names the method and holds its parameters (the temperatures of ``ts`` / ``vector``, the architecture of
``lts``, whose weights are the state dict in ``calibration_weights.pt``), plus what the fit measured::

    {"format_version": 1, "method": "ts", "parameters": {"temperature": 1.31},
     "fit": {"region": "all", "cases": 3, "voxels": 600000, "num_bins": 15, "nll_before": ..., "nll_after": ...,
             "ece_before": ..., "ece_after": ..., "date": "2025-01-01T12:00:00"},
     "warning": "..."}            # only when the calibration made the validation ECE worse

Both files are written atomically, the weights first, so a reader never sees a JSON without its weights.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.config import PathLike

from monai_nacl.calibration.calibrators import CALIBRATORS, Calibrator
from monai_nacl.utils import atomic_write, atomic_write_text, file_sha256

__all__ = [
    "CALIBRATION_FILE",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "LoadedCalibration",
    "StaleCalibration",
    "check_fitted_for",
    "load_calibration",
    "save_calibration",
]

CALIBRATION_FILE = "calibration.json"
WEIGHTS_FILE = "calibration_weights.pt"
FORMAT_VERSION = 1

_FIX = (
    "refit it (python -m monai.bundle run with configs/calibrate.yaml merged after train.yaml), or delete the file "
    "to use the model uncalibrated (--calibration none ignores it)"
)


@dataclass
class LoadedCalibration:
    """A calibrator read from disk.

    Args:
        calibrator: the module, in eval mode.
        record: the whole JSON content (method, parameters, fit statistics, warning).
        path: the ``calibration.json`` it came from.
    """

    calibrator: Calibrator
    record: dict[str, Any]
    path: Path

    @property
    def method(self) -> str:
        return self.calibrator.method


class StaleCalibration(SystemExit):
    """``calibration.json`` was fitted for other weights than the ``model.pt`` it would be applied to (a model
    trained again after the fit). A ``SystemExit``, so that the message is the last line of the output."""


def check_fitted_for(record: dict[str, Any], path: Path, model_file: PathLike) -> None:
    """Refuse a calibration whose recorded model hash differs from ``model_file``'s (nothing to check for a record
    without one, as written before the hash was recorded)."""
    fitted = (record.get("model") or {}).get("sha256")
    if fitted is None or not Path(model_file).is_file():
        return
    actual = file_sha256(model_file)
    if actual != fitted:
        raise StaleCalibration(
            f"{path} was fitted for other weights than {model_file} (sha256 {fitted[:12]}... recorded, the file "
            f"is {actual[:12]}...; the model was trained again after the fit): {_FIX}."
        )


def save_calibration(
    calibrator: Calibrator,
    directory: PathLike,
    fit: dict[str, Any] | None = None,
    warning: str | None = None,
    model_file: PathLike | None = None,
) -> Path:
    """Write ``<directory>/calibration.json`` (and ``calibration_weights.pt`` for a calibrator with weights).

    A weights file left by an earlier calibrator is removed when the new one has none.

    Args:
        calibrator: the fitted calibrator.
        directory: usually the bundle's ``ckpt_dir``, beside ``model.pt``.
        fit: what the fit measured (see :func:`monai_nacl.calibration.calibration_report`).
        warning: a sentence stored under ``"warning"`` (e.g. the validation ECE got worse).
        model_file: the weights the calibration was fitted for; their SHA-256 is stored under ``"model"`` so that
            applying it to retrained weights is refused (:func:`check_fitted_for`).

    Returns:
        the path of ``calibration.json``.
    """
    directory = Path(directory)
    record: dict[str, Any] = {"format_version": FORMAT_VERSION, "method": calibrator.method}
    record["parameters"] = calibrator.config()
    weights = directory / WEIGHTS_FILE
    if calibrator.has_weights:
        state = {k: v.detach().cpu() for k, v in calibrator.state_dict().items()}
        atomic_write(weights, lambda tmp: torch.save(state, tmp))
        record["weights"] = WEIGHTS_FILE
    else:
        weights.unlink(missing_ok=True)
    if model_file is not None and Path(model_file).is_file():
        record["model"] = {"file": Path(model_file).name, "sha256": file_sha256(model_file)}
    if fit is not None:
        record["fit"] = fit
    if warning:
        record["warning"] = warning
    return atomic_write_text(directory / CALIBRATION_FILE, json.dumps(record, indent=2) + "\n")


def _short(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:300] + "..."


def _malformed(path: Path, key: str, value: Any, problem: str) -> ValueError:
    shown = repr(value)
    shown = shown if len(shown) <= 200 else shown[:200] + "..."
    return ValueError(f"{path}: {key!r} {problem}, got {shown}; {_FIX}.")


def load_calibration(directory: PathLike) -> LoadedCalibration | None:
    """Read the calibrator saved in ``directory``; None when there is no ``calibration.json``.

    Raises:
        ValueError: for a file that is not valid JSON, lacks ``method`` or ``parameters``, names an unknown method,
            holds parameters the method rejects, or whose weights file is missing or does not fit; the message names
            the file, the key, the value and the fix.
    """
    path = Path(directory) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); {_FIX}.") from e
    if not isinstance(record, dict):
        raise _malformed(path, "(top level)", record, "must be a JSON object")
    version = record.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise _malformed(path, "format_version", version, f"must be {FORMAT_VERSION} (this version of monai_nacl)")
    if "method" not in record:
        raise _malformed(path, "method", None, f"is missing; it must be one of {sorted(CALIBRATORS)}")
    method = record["method"]
    if method not in CALIBRATORS:
        raise _malformed(path, "method", method, f"must be one of {sorted(CALIBRATORS)}")
    parameters = record.get("parameters")
    if not isinstance(parameters, dict):
        raise _malformed(path, "parameters", parameters, f"must be an object of {method} constructor arguments")
    cls = CALIBRATORS[method]
    try:
        calibrator = cls(**parameters)
    except (TypeError, ValueError) as e:
        raise _malformed(path, "parameters", parameters, f"are not valid for method {method!r} ({e})") from e
    if cls.has_weights:
        name = record.get("weights", WEIGHTS_FILE)
        if not isinstance(name, str):
            raise _malformed(path, "weights", name, "must be the file name of the weights beside the JSON")
        weights = path.parent / name
        if not weights.is_file():
            raise _malformed(path, "weights", name, f"names {weights}, which does not exist")
        try:
            calibrator.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except (RuntimeError, KeyError, TypeError, AttributeError, EOFError, pickle.UnpicklingError) as e:
            raise _malformed(
                path, "weights", name, f"does not hold the weights of these parameters ({_short(e)})"
            ) from e
    return LoadedCalibration(calibrator.eval(), record, path)
