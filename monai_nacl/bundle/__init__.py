"""What the bundle configs call that a config cannot express by itself, and the shipped bundles' location.

- start-up (:mod:`~monai_nacl.bundle.startup`): ``default_ckpt_dir``, ``select_loss``, ``require_valid_datalist``,
  ``require_valid_data``, ``inference_inputs``, ``log_settings``; a misspelled override refused
  (:mod:`~monai_nacl.bundle.overrides`: ``refuse_unknown_overrides``);
- the data a training really uses, a datalist's sections or lists a client hands in (MONAI Label)
  (:mod:`~monai_nacl.bundle.training_data`);
- the model's task (:mod:`~monai_nacl.bundle.task`): ``TrainedTask``, ``trained_network``, ``record_calibration``,
  ``TASK_FILE``, with
  the transform descriptions of :mod:`~monai_nacl.bundle.transform_records` and the weight check of
  :mod:`~monai_nacl.bundle.weights`;
- the shipped bundles (:mod:`~monai_nacl.bundle.shipped`) and ``python -m monai_nacl bundle list|export|torchscript``
  (:mod:`~monai_nacl.bundle.export`).

Configs name them by dotted path (``monai_nacl.bundle.TrainedTask``); the Ignite handlers they attach are in
:mod:`monai_nacl.handlers`, the transforms in :mod:`monai_nacl.transforms`, the writer and the case filter in
:mod:`monai_nacl.data`.
"""

from __future__ import annotations

from monai_nacl.bundle.overrides import UnknownOverride, refuse_unknown_overrides
from monai_nacl.bundle.shipped import BUNDLES_DIR, shipped_bundle_names
from monai_nacl.bundle.startup import (
    DataCheckFailed,
    OutputDirInUse,
    default_ckpt_dir,
    inference_inputs,
    log_settings,
    require_fresh_output,
    require_valid_data,
    require_valid_datalist,
    select_loss,
)
from monai_nacl.bundle.task import (
    TASK_FILE,
    MissingModel,
    TaskMismatch,
    TrainedTask,
    record_calibration,
    task_record,
    trained_network,
)
from monai_nacl.bundle.transform_records import describe_transform

__all__ = [
    "BUNDLES_DIR",
    "TASK_FILE",
    "DataCheckFailed",
    "MissingModel",
    "OutputDirInUse",
    "TaskMismatch",
    "TrainedTask",
    "UnknownOverride",
    "default_ckpt_dir",
    "describe_transform",
    "inference_inputs",
    "log_settings",
    "record_calibration",
    "refuse_unknown_overrides",
    "require_fresh_output",
    "require_valid_data",
    "require_valid_datalist",
    "select_loss",
    "shipped_bundle_names",
    "task_record",
    "trained_network",
]
