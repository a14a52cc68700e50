"""What a trained model needs to be used correctly, written beside its weights as ``<ckpt_dir>/task.json``.

A ``model.pt`` alone does not say at which spacing, with which classes, network or intensity normalisation it was
trained; evaluating it with the bundle's defaults when it was trained otherwise gives wrong numbers without an error
(trained at 1.5 x 1.5 x 3 mm, inferred at 2 mm: class Dice 0.38 instead of 0.63). So training writes the task
(:class:`monai_nacl.handlers.TaskSettingsWriter`, each time ``model.pt`` is written), and ``evaluate.yaml`` / ``inference.yaml`` read it
(:class:`TrainedTask`), so that a user passes only data paths::

    {"format_version": 1, "bundle": "unet2d_nacl", "monai_nacl_version": "0.1.0",
     "num_classes": 3, "class_names": ["background_other", "grey_matter", "white_matter"],
     "pixdim": [2.0, 2.0, 2.0], "roi_size": [96, 96],
     "network_def": {"_target_": "monai.networks.nets.UNet", "spatial_dims": 2, "in_channels": 1, ...},
     "intensity_transforms": [{"_target_": "monai.transforms.intensity.dictionary.NormalizeIntensityd",
                               "keys": ["image"], "nonzero": true}],
     "loss_name": "nacl", "datalist": "...", "model": {"file": "model.pt", "sha256": "..."},
     "calibration": null}

``calibration`` is filled by the post-hoc fit (``configs/calibrate.yaml``) with the method it wrote beside the model.
An explicit setting that contradicts the file (``--pixdim``, ``--num_classes``, a datalist naming other classes) is
refused with both values named; without the file (a model trained elsewhere or by an earlier version) the bundle's
defaults are used and the log says so.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.config import PathLike

from monai_nacl.bundle.json_values import json_value
from monai_nacl.bundle.transform_records import build_described, class_path, describe_transform, without_markers
from monai_nacl.bundle.weights import (
    describe_state,
    parameter_shapes,
    require_strict_loading,
    weight_shape_differences,
)
from monai_nacl.calibration.io import CALIBRATION_FILE
from monai_nacl.utils import atomic_write_text

__all__ = [
    "FORMAT_VERSION",
    "TASK_FILE",
    "MissingModel",
    "TaskMismatch",
    "TrainedTask",
    "record_calibration",
    "task_record",
    "trained_network",
]

TASK_FILE = "task.json"
FORMAT_VERSION = 1
logger = logging.getLogger("monai_nacl")


class TaskMismatch(SystemExit):
    """A setting of this run contradicts the model's ``task.json``: the message ends with one line per conflict.

    A ``SystemExit`` for the reason given in :class:`monai_nacl.bundle.startup.DataCheckFailed`: MONAI
    passes it through untouched, so the conflicts are the last lines of the output, without a traceback.
    """

    def __init__(self, message: str, conflicts: Sequence[str]) -> None:
        super().__init__(message)
        self.conflicts = list(conflicts)


class MissingModel(SystemExit):
    """There is no ``model.pt`` where the run looks for it (a ``SystemExit``, as :class:`TaskMismatch`)."""


def _network_description(network: Mapping[str, Any]) -> dict[str, Any]:
    """``{"target": ..., "args": {...}}`` of the bundle config -> ``{"_target_": ..., **args}`` (JSON)."""
    description = {"_target_": str(network["target"])}
    for key, value in dict(network.get("args", {})).items():
        ok, plain = json_value(value)
        if not ok:
            raise ValueError(f"network_def#{key} = {value!r} cannot be written to {TASK_FILE}; give a plain value.")
        description[key] = plain
    return description


def task_record(task: Mapping[str, Any]) -> dict[str, Any]:
    """The content of ``task.json`` for the bundle's ``task`` settings (see the module docstring).

    ``task["network_def"]`` is ``{"target": <class path>, "args": {...}}`` (the bundle config cannot hold a
    ``_target_`` key there without instantiating it); ``task["intensity_transforms"]`` the instantiated transforms.
    """
    import monai_nacl

    record: dict[str, Any] = {"format_version": FORMAT_VERSION, "monai_nacl_version": monai_nacl.__version__}
    for key, value in task.items():
        if key == "network_def":
            record[key] = _network_description(value)
        elif key == "intensity_transforms":
            record[key] = [describe_transform(t) for t in value]
        else:
            record[key] = _record_value(value)
    record.setdefault("calibration", None)
    return record


def _record_value(value: Any) -> Any:
    """``value`` as ``task.json`` holds it: JSON values as they are (mappings and lists item by item, paths as
    strings), anything else as its ``repr``."""
    if isinstance(value, Mapping):
        return {str(k): _record_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and any(isinstance(v, (Mapping, Path)) for v in value):
        return [_record_value(v) for v in value]
    ok, plain = json_value(os.fspath(value) if isinstance(value, Path) else value)
    return plain if ok else repr(value)


def record_calibration(ckpt_dir: PathLike, calibration: Mapping[str, Any] | None) -> Path | None:
    """Note in ``<ckpt_dir>/task.json`` (if there is one) the post-hoc calibration fitted for its ``model.pt``.

    The note is ``{"method": ..., "file": "calibration.json"}``; it is written only when the calibration was fitted
    on the weights the task describes (the same ``model.sha256`` in both files), so a calibration saved elsewhere
    or fitted on other weights is never claimed for this model.

    Args:
        ckpt_dir: the folder of ``model.pt`` and ``task.json`` (``calibrate.yaml``'s ``calibration_dir``).
        calibration: the content of ``calibration.json``, as ``monai_nacl.calibration.fit_and_save`` returns it;
            None clears the note.

    Returns:
        the path of ``task.json`` when it was written, else None.
    """
    path = Path(ckpt_dir) / TASK_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if calibration is not None:
        fitted_on = (calibration.get("model") or {}).get("sha256")
        if fitted_on is None or fitted_on != (record.get("model") or {}).get("sha256"):
            return None
        calibration = {"method": calibration["method"], "file": CALIBRATION_FILE}
    record["calibration"] = calibration
    return atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def _shown(value: Any) -> str:
    ok, plain = json_value(value)
    return json.dumps(plain if ok else repr(value))


def _architecture(description: Mapping[str, Any]) -> str:
    """``monai.networks.nets.UNet(spatial_dims=2, channels=[16, 32])``: a network description as a call."""
    args = ", ".join(f"{k}={_shown(v)}" for k, v in description.items() if not (k.startswith("_") and k.endswith("_")))
    return f"{description['_target_']}({args})"


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    return a == b


class TrainedTask:
    """The task of the model in ``ckpt_dir``, read from its ``task.json`` (see the module docstring).

    The bundle ids ``num_classes``, ``pixdim``, ``roi_size`` and ``class_names`` of ``evaluate.yaml`` and
    ``inference.yaml`` are expressions on this object, so they take the trained values unless given on the command
    line; :meth:`check` (in ``initialize``) then refuses a given value that contradicts the file.

    Args:
        ckpt_dir: the folder of ``model.pt`` and ``task.json``.
        defaults: the values to use without a ``task.json`` (the bundle's training defaults); the log says so.
        model_file: the weights' file name in ``ckpt_dir``.
    """

    def __init__(
        self, ckpt_dir: PathLike, defaults: Mapping[str, Any] | None = None, model_file: str = "model.pt"
    ) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.path = self.ckpt_dir / TASK_FILE
        self.model_file = model_file
        self.defaults = dict(defaults or {})
        self.record: dict[str, Any] | None = None
        if self.path.is_file():
            try:
                record = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{self.path} is not valid JSON ({e.msg} at line {e.lineno}); train again to rewrite it, or "
                    "delete it and pass --num_classes, --pixdim and --roi_size as the model was trained."
                ) from e
            version = record.get("format_version") if isinstance(record, dict) else None
            if version != FORMAT_VERSION:
                raise ValueError(
                    f"{self.path}: format_version {version!r} is not {FORMAT_VERSION} (this version of monai_nacl); "
                    "use the monai_nacl version that trained the model, or train again."
                )
            self.record = record
            logger.info(
                "the model's task, from %s: num_classes %s %s, pixdim %s, roi_size %s, network %s",
                self.path,
                record.get("num_classes"),
                record.get("class_names"),
                record.get("pixdim"),
                record.get("roi_size"),
                (record.get("network_def") or {}).get("_target_"),
            )
        else:
            logger.warning(
                "no %s beside the model in %s (trained elsewhere or by an earlier version): using the bundle's "
                "defaults %s; pass --num_classes, --pixdim and --roi_size if the model was trained otherwise.",
                TASK_FILE,
                self.ckpt_dir,
                self.defaults,
            )

    def get(self, key: str) -> Any:
        """The trained value of ``key``, else the default; None if neither knows it."""
        if self.record is not None and self.record.get(key) is not None:
            return self.record[key]
        return self.defaults.get(key)

    @property
    def num_classes(self) -> int:
        return int(self._required("num_classes"))

    @property
    def pixdim(self) -> list[float]:
        return [float(v) for v in self._required("pixdim")]

    @property
    def roi_size(self) -> list[int]:
        return [int(v) for v in self._required("roi_size")]

    @property
    def in_channels(self) -> int | None:
        """The image channels of the trained network (``task.json``'s ``network_def``), None when not recorded.

        What evaluation and calibration build ``network_def`` with, instead of counting the training data's channels
        again (a datalist to evaluate on may hold no training section)."""
        description = self.get("network_def")
        if not isinstance(description, Mapping):
            return None
        args = description.get("args") if isinstance(description.get("args"), Mapping) else description
        value = args.get("in_channels")
        return None if value is None else int(value)

    @property
    def class_names(self) -> list[str] | None:
        names = self.get("class_names")
        return None if names is None else [str(n) for n in names]

    def _required(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            where = f"{self.path} has no {key!r}" if self.record is not None else f"there is no {self.path}"
            raise ValueError(f"{where}: pass --{key} with the value the model was trained with.")
        return value

    def check(self, datalist: PathLike | Mapping[str, Any] | None = None, **requested: Any) -> None:
        """Refuse settings of this run that contradict the trained task.

        Args:
            datalist: the evaluated datalist (path or content); when it names its classes (MSD ``labels``), they
                must be the trained class names.
            requested: the run's values (``num_classes=@num_classes, pixdim=@pixdim``); ``roi_size`` may differ
                (a larger sliding window is a choice of the evaluation) and is only logged.

        Raises:
            TaskMismatch: one line per contradiction, naming both values and the fix.
        """
        if self.record is None:
            return
        conflicts = []
        for key, value in requested.items():
            trained = self.record.get(key)
            if trained is None or value is None or _close(list(value) if isinstance(value, tuple) else value, trained):
                continue
            if key == "roi_size":
                logger.info("roi_size %s (sliding window) differs from the training patch %s.", value, trained)
                continue
            conflicts.append(
                f"--{key} {_shown(value)} contradicts {self.path}: the model was trained with {key} "
                f"{_shown(trained)}; drop --{key} (the trained value is used) or train a model for {_shown(value)}"
            )
        trained_names = self.record.get("class_names")
        datalist_class_names = _declared_class_names(datalist, len(trained_names or []))
        if None not in (datalist_class_names, trained_names) and list(datalist_class_names) != list(trained_names):
            conflicts.append(
                f"the datalist names the classes {list(datalist_class_names)} but the model in {self.ckpt_dir} "
                f"was trained for {list(trained_names)}; evaluate it on data labelled as it was trained (or fix "
                "the datalist's labels)"
            )
        if conflicts:
            raise TaskMismatch(
                "\n".join([f"this run contradicts the task the model was trained for ({len(conflicts)}):", *conflicts]),
                conflicts,
            )

    def require_same(self, record: Mapping[str, Any], what: str = "this run's") -> None:
        """Refuse a training ``record`` whose task differs from this file's (a resumed run of another task)."""
        keys = ("num_classes", "pixdim", "network_def", "intensity_transforms", "class_names")
        assert self.record is not None
        conflicts = [
            f"{key}: {_shown(record.get(key))} in this run, {_shown(self.record.get(key))} in {self.path}"
            for key in keys
            if not _close(record.get(key), self.record.get(key))
        ]
        if conflicts:
            raise TaskMismatch(
                "\n".join(
                    [
                        (
                            f"--resume true continues {what} task, which this run contradicts; pass the settings "
                            "the checkpoint was trained with, or train into another --output_dir without --resume:"
                        ),
                        *conflicts,
                    ]
                ),
                conflicts,
            )

    def network(
        self, configured: torch.nn.Module, require_fit: bool = True, configured_as: Mapping[str, Any] | None = None
    ) -> torch.nn.Module:
        """The network the model was trained with: built from ``task.json``'s ``network_def``, or ``configured``
        (the config's ``network_def``) without one, or when both have the same class and parameter shapes.

        Its ``load_state_dict`` is strict whatever the caller asks (:func:`~monai_nacl.bundle.weights.require_strict_loading`),
        so weights of another architecture stop the load with both named, in MONAI Label too.

        Args:
            configured: the network the config builds.
            require_fit: check now that ``<ckpt_dir>/model.pt`` (when present) fits the network.
            configured_as: the config's description of ``configured`` (``{"_target_": ..., <argument>: ...}``), how
                messages name it; default: its class.

        Raises:
            TaskMismatch: with ``require_fit``, when ``model.pt`` does not fit the network.
        """
        description = None if self.record is None else self.record.get("network_def")
        network = configured
        if description is not None:
            trained = build_described(description)
            if type(trained) is not type(configured) or parameter_shapes(trained) != parameter_shapes(configured):
                logger.warning(
                    "the config's network_def (%s) is not the network the model was trained with; using %s's: %s",
                    class_path(configured),
                    self.path,
                    description,
                )
                network = trained
        if description is None:
            description = dict(configured_as) if configured_as is not None else {"_target_": class_path(network)}
        architecture = _architecture(description)
        require_strict_loading(network, architecture)
        if require_fit:
            self._require_weights_fit(network, architecture)
        return network

    def _require_weights_fit(self, network: torch.nn.Module, architecture: str) -> None:
        """Refuse a network whose parameters do not have the shapes of ``model.pt``'s (instead of PyTorch's
        ``size mismatch`` traceback when the weights are loaded), naming both architectures, the first differences
        and the fix."""
        model = self.ckpt_dir / self.model_file
        if not model.is_file():
            return
        differences = weight_shape_differences(network, model)
        if differences:
            fix = (
                f"the weights are not those {self.path} describes; train again, or put the task.json of these weights "
                "beside them"
                if self.record is not None
                else f"pass --num_classes (and the network settings) the model was trained with: without {TASK_FILE} "
                "the bundle's defaults are used"
            )
            conflict = (
                f"{model} ({describe_state(_model_state(model))}) does not fit the network {architecture} "
                f"({describe_state(network.state_dict())}): {len(differences)} parameter(s) differ, e.g. "
                f"{'; '.join(differences[:2])}; {fix}"
            )
            raise TaskMismatch(f"this run contradicts the model's weights (1):\n{conflict}", [conflict])

    def intensity_transforms(self, configured: Sequence[Any]) -> list[Any]:
        """The intensity transforms the model was trained with: ``configured`` (the config's) when they match the
        file's description, else rebuilt from it.

        Raises:
            TaskMismatch: when they differ and the file's cannot be rebuilt (configure them as the file says).
        """
        recorded = None if self.record is None else self.record.get("intensity_transforms")
        configured = list(configured)
        if recorded is None:
            return configured
        described = [describe_transform(t) for t in configured]
        if without_markers(described) == without_markers(recorded):
            return configured
        if any(d.get("_rebuildable_") is False for d in recorded):
            conflict = (
                f"intensity transforms: this config has {json.dumps(without_markers(described))}, the model was trained with "
                f"{json.dumps(without_markers(recorded))} ({self.path}), which cannot be rebuilt from the file; configure "
                "the same transforms"
            )
            raise TaskMismatch(f"this run contradicts the task the model was trained for (1):\n{conflict}", [conflict])
        logger.info("intensity transforms from %s: %s", self.path, without_markers(recorded))
        return [build_described(d) for d in recorded]

    def require_model(self, bundle_root: PathLike | None = None) -> str:
        """The path of ``model.pt``; a clear error when it is missing (naming ``<bundle_root>/models`` when a model
        lies there instead)."""
        model = self.ckpt_dir / self.model_file
        if not model.is_file():
            elsewhere = None if bundle_root is None else Path(bundle_root) / "models" / self.model_file
            hint = (
                f"; a model lies in {elsewhere.parent}: pass --ckpt_dir {elsewhere.parent}"
                if elsewhere is not None and elsewhere.is_file() and elsewhere.parent != self.ckpt_dir
                else ""
            )
            raise MissingModel(
                f"no {self.model_file} in {self.ckpt_dir} (the ckpt_dir; a training with --output_dir DIR writes "
                f"DIR/models): train first, or pass --ckpt_dir with the folder holding {self.model_file}{hint}."
            )
        return os.fspath(model)


def _declared_class_names(datalist: PathLike | Mapping[str, Any] | None, num_classes: int) -> list[str] | None:
    """The class names a datalist declares in its ``labels``, None when it declares none."""
    if datalist is None:
        return None
    if not isinstance(datalist, Mapping):
        try:
            datalist = json.loads(Path(datalist).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # the data check reports an unreadable datalist
    if not isinstance(datalist, Mapping) or not datalist.get("labels"):
        return None
    from monai_nacl.data import class_names

    return class_names(datalist, max(num_classes, len(datalist["labels"])))


def _model_state(model_file: Path) -> Mapping[str, Any]:
    state = torch.load(model_file, map_location="cpu", weights_only=True)
    return state["model"] if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping) else state


def trained_network(trained_task: TrainedTask, network: str, **args: Any) -> torch.nn.Module:
    """The network a bundle's ``network_def`` stands for: the one its model was trained with.

    ``inference.yaml``'s ``network_def`` is this function, so that every client that builds ``network_def`` (MONAI
    Label's ``BundleInferTask``, ``monai.bundle ckpt_export``, ``verify_net_in_out``) gets the trained network, not
    the config's: ``network(**args)`` when the model's ``task.json`` describes the same network (or there is no
    ``task.json``), else the network ``task.json`` describes. Its ``load_state_dict`` is strict
    (:meth:`TrainedTask.network`); whether ``model.pt`` fits is checked when the weights are loaded.

    Args:
        trained_task: the model's task (``@trained_task``).
        network: class path of the config's network, e.g. ``monai.networks.nets.UNet``.
        args: the config's network arguments (``network_def#channels``...).
    """
    description = {"_target_": network, **args}
    return trained_task.network(build_described(description), require_fit=False, configured_as=description)
