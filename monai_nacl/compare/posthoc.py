"""The post-hoc rows of a comparison (``<loss> + TS`` / ``+ VS`` / ``+ LTS``), through the bundle's own path.

For each trained model and method, the bundle's ``configs/calibrate.yaml`` (or, for a bundle without one, the
shipped bundles' ``calibrate.yaml``, the same in all three, merged after ``train.yaml``) runs
:func:`monai_nacl.calibration.fit_and_save` on the validation split into the method's folder, then the bundle's
evaluation runs on the test split with :class:`monai_nacl.calibration.ApplyCalibrationd` reading that folder (the
bundle's own when its evaluation defines ``calibration_dir``, else the fragment ``configs/posthoc.yaml``). A model
calibrated with the bundle's ``calibrate.yaml`` and evaluated with its ``evaluate.yaml`` so gives the numbers the
comparison reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monai_nacl.bundle.shipped import BUNDLES_DIR
from monai_nacl.compare.overrides import literal

__all__ = [
    "CALIBRATE_FRAGMENT",
    "POSTHOC_FRAGMENT",
    "calibrate_configs",
    "calibrate_overrides",
    "parse_bundle",
    "posthoc_evaluate_configs",
    "posthoc_evaluate_overrides",
]

FRAGMENTS = Path(__file__).resolve().parent / "configs"
CALIBRATE_FRAGMENT = BUNDLES_DIR / "unet3d_nacl" / "configs" / "calibrate.yaml"
"""Fits and saves a calibrator (merged after ``train.yaml``) for a bundle without ``configs/calibrate.yaml``."""
POSTHOC_FRAGMENT = FRAGMENTS / "posthoc.yaml"
"""Applies the saved calibrator before the evaluation's postprocessing, for a bundle whose evaluation does not."""


def parse_bundle(bundle_dir: Path, configs: list[str], overrides: dict[str, Any]):
    """A ``ConfigParser`` holding the merged configs, the metadata and the overrides (read as literals)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(bundle_dir / "configs" / name) for name in configs])
    meta = bundle_dir / "configs" / "metadata.json"
    if meta.is_file():
        parser.read_meta(str(meta))
    for key, value in overrides.items():
        parser[key] = literal(value) if isinstance(value, str) else value
    return parser


def calibrate_configs(bundle_dir: Path, train_configs: list[str]) -> list[str]:
    """The configs that fit a calibrator: the training configs, then the bundle's ``calibrate.yaml`` (or the
    fragment)."""
    own = bundle_dir / "configs" / "calibrate.yaml"
    return [*train_configs, "calibrate.yaml" if own.is_file() else str(CALIBRATE_FRAGMENT)]


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


def posthoc_evaluate_configs(bundle_dir: Path, evaluate_configs: list[str]) -> list[str]:
    """The evaluation configs, plus the fragment that applies the calibration when the bundle's do not."""
    from monai.bundle import ConfigParser

    files = [bundle_dir / "configs" / name for name in evaluate_configs]
    if "calibration_dir" in ConfigParser.load_config_files(files):
        return list(evaluate_configs)
    return [*evaluate_configs, str(POSTHOC_FRAGMENT)]


def posthoc_evaluate_overrides(overrides: dict[str, Any], method: str, folder: Path) -> dict[str, Any]:
    """The run's overrides with the evaluation written to ``folder`` and the calibration read from it; the
    ``calibration`` id names the method, so a missing or different calibration fails instead of passing silently."""
    folder = str(folder.resolve())
    return {**overrides, "output_dir": folder, "calibration_dir": folder, "calibration": method}
