"""Small components the bundles need besides losses, metrics and data: start-up checks, skipping unusable cases,
uncertainty maps, atomic writers, the evaluation report and resuming an interrupted training.

Bundle configs name them by dotted path (``monai_nacl.workflows.UncertaintyMapsd``).
"""

from __future__ import annotations

from monai_nacl.utils import atomic_write, atomic_write_text, is_rank_zero
from monai_nacl.workflows.atomic_io import AtomicNibabelWriter
from monai_nacl.workflows.bundle_setup import (
    as_flag,
    default_ckpt_dir,
    inference_inputs,
    log_settings,
    require_valid_datalist,
    select_loss,
)
from monai_nacl.workflows.report import (
    SegmentationReportHandler,
    case_name,
    flatten_case_metrics,
    rater_files,
)
from monai_nacl.workflows.resume import (
    LAST_CHECKPOINT,
    BestMetricState,
    LastCheckpointSaver,
    ResumeCheckpointLoader,
    last_checkpoint,
)
from monai_nacl.workflows.skipped_cases import SkippedCase, SkippedCases
from monai_nacl.workflows.task_settings import (
    TASK_FILE,
    MissingModel,
    TaskMismatch,
    TaskSettingsWriter,
    TrainedTask,
    describe_transform,
    record_calibration,
)
from monai_nacl.workflows.uncertainty import UncertaintyMapsd, uncertainty_maps
from monai_nacl.workflows.validation import ValidationScheduleHandler

__all__ = [
    "LAST_CHECKPOINT",
    "TASK_FILE",
    "AtomicNibabelWriter",
    "BestMetricState",
    "LastCheckpointSaver",
    "MissingModel",
    "ResumeCheckpointLoader",
    "SegmentationReportHandler",
    "SkippedCase",
    "SkippedCases",
    "TaskMismatch",
    "TaskSettingsWriter",
    "TrainedTask",
    "UncertaintyMapsd",
    "ValidationScheduleHandler",
    "as_flag",
    "atomic_write",
    "atomic_write_text",
    "case_name",
    "default_ckpt_dir",
    "describe_transform",
    "flatten_case_metrics",
    "inference_inputs",
    "is_rank_zero",
    "last_checkpoint",
    "log_settings",
    "rater_files",
    "record_calibration",
    "require_valid_datalist",
    "select_loss",
    "uncertainty_maps",
]
