"""Side-by-side comparison of calibration losses through a bundle: ``python -m monai_nacl compare`` / ``demo``.

For each loss (and grid point) and seed: train with the bundle's ``train.yaml``, evaluate with its
``evaluate.yaml`` on the test split (the best-validation and/or the final checkpoint, ``--checkpoint``),
optionally calibrate each model post hoc on the validation split
(``--posthoc ts,vector,lts``, through :mod:`monai_nacl.calibration`), and
write ``report.md`` (the NACL paper's table: DSC, HD95, ECE, CECE, ACE (average), AdaECE (adaptive), NLL, Brier,
mean ± std over seeds),
``summary.csv`` and reliability diagrams.
"""

from __future__ import annotations

from monai_nacl.calibration import fit_temperature, temperature_nll
from monai_nacl.compare.compared_bundle import ComparedBundle
from monai_nacl.compare.grid import Variant, expand_grid, parse_grid
from monai_nacl.compare.options import CompareOptions, parse_compare_args
from monai_nacl.compare.workflow import CompareResult, run_compare

__all__ = [
    "CompareOptions",
    "CompareResult",
    "ComparedBundle",
    "Variant",
    "expand_grid",
    "fit_temperature",
    "parse_compare_args",
    "parse_grid",
    "run_compare",
    "temperature_nll",
]
