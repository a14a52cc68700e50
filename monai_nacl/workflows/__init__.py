"""Small components the bundles need besides losses, metrics and data: start-up checks, uncertainty maps,
atomic writers and the evaluation report.

Bundle configs name them by dotted path (``monai_nacl.workflows.UncertaintyMapsd``).
"""

from __future__ import annotations

from monai_nacl.workflows.atomic_io import (
    AtomicNibabelWriter,
    atomic_write,
    atomic_write_text,
)
from monai_nacl.workflows.bundle_setup import (
    inference_inputs,
    locate_bundle,
    require_valid_datalist,
    select_loss,
)
from monai_nacl.workflows.report import (
    SegmentationReportHandler,
    case_name,
    flatten_case_metrics,
)
from monai_nacl.workflows.uncertainty import UncertaintyMapsd, uncertainty_maps

__all__ = [
    "AtomicNibabelWriter",
    "SegmentationReportHandler",
    "UncertaintyMapsd",
    "atomic_write",
    "atomic_write_text",
    "case_name",
    "flatten_case_metrics",
    "inference_inputs",
    "locate_bundle",
    "require_valid_datalist",
    "select_loss",
    "uncertainty_maps",
]
