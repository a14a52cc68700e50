"""Ignite handlers for MONAI workflows and bundles: calibration metrics and reliability diagrams."""

from __future__ import annotations

from monai_nacl.handlers.calibration import CalibrationMetricHandler
from monai_nacl.handlers.history import TrainingHistoryHandler
from monai_nacl.handlers.lagrange import LagrangeMultiplierHandler
from monai_nacl.handlers.reliability import ReliabilityDiagramHandler

__all__ = [
    "CalibrationMetricHandler",
    "LagrangeMultiplierHandler",
    "ReliabilityDiagramHandler",
    "TrainingHistoryHandler",
]
