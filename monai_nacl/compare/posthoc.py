"""The post-hoc rows of a comparison (``<loss> + TS`` / ``+ VS`` / ``+ LTS``), through the bundle's own path.

For each trained model (each checkpoint reported) and method, the bundle's ``calibrate`` phase (its
``configs/calibrate.yaml``, or the generic fragment for a bundle without it, see
:class:`~monai_nacl.compare.compared_bundle.ComparedBundle`) runs :func:`monai_nacl.calibration.fit_and_save` on the
validation split into the method's folder, then its ``evaluate_calibrated`` phase evaluates the test split with
:class:`monai_nacl.calibration.ApplyCalibrationd` reading that folder. A model calibrated with the bundle's
``calibrate.yaml`` and evaluated with its ``evaluate.yaml`` so gives the numbers the comparison reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["calibrate_overrides", "posthoc_evaluate_overrides"]


def calibrate_overrides(
    overrides: dict[str, Any], method: str, folder: Path, region: str, max_voxels_per_case: int
) -> dict[str, Any]:
    """The run's overrides plus what selects the method, the folder written and the fitted voxels."""
    return {
        **overrides,
        "calibration_method": method,
        "calibration_dir": str(folder.resolve()),
        "calibration_fit_region": region,
        "calibration_max_voxels": max_voxels_per_case,
    }


def posthoc_evaluate_overrides(overrides: dict[str, Any], method: str, folder: Path) -> dict[str, Any]:
    """The run's overrides with the evaluation written to ``folder`` and the calibration read from it; the
    ``calibration`` id names the method, so a missing or different calibration fails instead of passing silently."""
    folder = str(folder.resolve())
    return {**overrides, "output_dir": folder, "calibration_dir": folder, "calibration": method}
