"""``python -m monai_nacl demo`` (``make demo``): the comparison on the embedded default dataset.

Builds the default dataset if absent (``monai_nacl.data.ensure_default_dataset``), then compares CE,
Dice+CE, SVLS and NACL with the ``unet2d_nacl`` bundle on a schedule sized to finish within 15 minutes on
2 CPU cores, and prints where the report is.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from monai_nacl.compare.options import CompareOptions, parse_posthoc
from monai_nacl.compare.overrides import split_overrides
from monai_nacl.compare.progress import format_duration
from monai_nacl.compare.workflow import CompareResult, run_compare

__all__ = ["DEMO_BUNDLE", "DEMO_EPOCHS", "DEMO_LOSSES", "DEMO_OVERRIDES", "build_demo_parser", "run_demo"]

DEMO_BUNDLE = "unet2d_nacl"
DEMO_LOSSES = ("ce", "dice_ce", "svls", "nacl")
DEMO_EPOCHS = 60
DEMO_OVERRIDES: dict[str, str] = {"val_interval": "10"}
"""Bundle overrides of the demo schedule (on top of ``max_epochs``): validation, hence checkpoint choice, every
10 epochs. Measured: the whole demo (dataset build included) in about 8 minutes on 2 CPU cores."""


def build_demo_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m monai_nacl demo`` (all optional)."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_nacl demo",
        description="Compare CE, Dice+CE, SVLS and NACL on the embedded default dataset (about 15 min on 2 CPUs).",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--output", type=Path, default=Path("outputs/demo"), help="report folder (default outputs/demo)"
    )
    parser.add_argument("--losses", default=",".join(DEMO_LOSSES), help="comma list of loss names")
    parser.add_argument("--max_epochs", type=int, default=DEMO_EPOCHS, help=f"epochs per run (default {DEMO_EPOCHS})")
    parser.add_argument("--dataset_dir", type=Path, default=None, help="default dataset folder (built if absent)")
    parser.add_argument(
        "--temperature-scaling",
        "--temperature_scaling",
        dest="temperature_scaling",
        action="store_true",
        help="also report '<loss> + TS' rows (about 30 s more per loss); the same as --posthoc ts",
    )
    parser.add_argument(
        "--posthoc", default=None, help="comma list of post-hoc calibrations (ts, vector, lts), see compare --help"
    )
    return parser


def run_demo(argv: list[str]) -> CompareResult:
    """Build the default dataset if needed, run the comparison, print where the report is.

    Args:
        argv: demo arguments (see :func:`build_demo_parser`); unknown ``--id value`` pairs go to the bundle.
    """
    from monai_nacl.data import ensure_default_dataset

    known, unknown = build_demo_parser().parse_known_args(argv)
    start = time.monotonic()
    datalist = Path(ensure_default_dataset(known.dataset_dir))
    options = CompareOptions(
        bundle=DEMO_BUNDLE,
        output=known.output,
        losses=[name.strip() for name in known.losses.split(",") if name.strip()],
        max_epochs=known.max_epochs,
        dataset_dir=datalist.parent,
        datalist=datalist,
        posthoc=parse_posthoc(known.posthoc, known.temperature_scaling),
        overrides={**DEMO_OVERRIDES, **split_overrides(unknown)},
    )
    result = run_compare(options)
    print(
        f"demo finished in {format_duration(time.monotonic() - start)}; report: {result.report.resolve()}",
        flush=True,
    )
    return result
