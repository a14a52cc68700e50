"""Ignite handlers for MONAI engines and the bundles: calibration metrics and reliability diagrams, the training
history, CRaC's multipliers, the validation schedule, resuming a run, the model's ``task.json``, the evaluation
report and an inference's label-free Dice estimates with its review list."""

from __future__ import annotations

from monai_nacl.handlers.calibration import CalibrationMetricHandler
from monai_nacl.handlers.dice_estimate import DiceEstimateHandler, estimate_columns, review_order
from monai_nacl.handlers.history import TrainingHistoryHandler
from monai_nacl.handlers.lagrange import LagrangeMultiplierHandler
from monai_nacl.handlers.reliability import ReliabilityDiagramHandler
from monai_nacl.handlers.report import (
    HISTOGRAMS_FILENAME,
    RATER_METRICS,
    SegmentationReportHandler,
    case_name,
    file_stem,
    flatten_case_metrics,
    rater_files,
)
from monai_nacl.handlers.resume import (
    LAST_CHECKPOINT,
    BestMetricState,
    LastCheckpointSaver,
    ResumeCheckpointLoader,
    last_checkpoint,
)
from monai_nacl.handlers.task_settings import TaskSettingsWriter
from monai_nacl.handlers.validation import ValidationScheduleHandler

__all__ = [
    "HISTOGRAMS_FILENAME",
    "LAST_CHECKPOINT",
    "RATER_METRICS",
    "BestMetricState",
    "CalibrationMetricHandler",
    "DiceEstimateHandler",
    "LagrangeMultiplierHandler",
    "LastCheckpointSaver",
    "ReliabilityDiagramHandler",
    "ResumeCheckpointLoader",
    "SegmentationReportHandler",
    "TaskSettingsWriter",
    "TrainingHistoryHandler",
    "ValidationScheduleHandler",
    "case_name",
    "estimate_columns",
    "file_stem",
    "flatten_case_metrics",
    "last_checkpoint",
    "rater_files",
    "review_order",
]
