"""``python -m monai_nacl demo`` (``make demo``): the comparison on the embedded default dataset.

Builds the default dataset if absent (``monai_nacl.data.ensure_default_dataset``: simulated raters, a noisier
test acquisition), then compares CE, Dice+CE, SVLS, NACL, CRaC (``adaptive_nacl``) and mL1-ACE (``ml1ace``)
with the ``unet2d_nacl`` bundle in the authors' training regime (``--protocol paper``) on a schedule sized to
finish within 15 minutes on 2 CPU cores, and prints where the report is. Each run is evaluated with its
best-validation and its final checkpoint (compare's default ``--checkpoint both``). ``--posthoc ts,vector,lts`` adds
the post-hoc rows (about a minute more per loss, method and checkpoint).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from monai_nacl.compare.options import CompareOptions, parse_posthoc
from monai_nacl.compare.overrides import split_overrides
from monai_nacl.compare.progress import format_duration
from monai_nacl.compare.workflow import CompareResult, run_compare

__all__ = [
    "DEMO_BUNDLE",
    "DEMO_EPOCHS",
    "DEMO_LOSSES",
    "DEMO_OVERRIDES",
    "DEMO_PROTOCOL",
    "build_demo_parser",
    "run_demo",
]

DEMO_BUNDLE = "unet2d_nacl"
DEMO_LOSSES = ("ce", "dice_ce", "svls", "nacl", "adaptive_nacl", "ml1ace")
DEMO_EPOCHS = 160
DEMO_PROTOCOL = "paper"
DEMO_OVERRIDES: dict[str, str] = {
    "pixdim": "[4.0,4.0,4.0]",
    "roi_size": "[48,48]",
    "val_interval": "40",
    "train#dataset#data": "$monai.data.load_decathlon_datalist(@datalist, True, 'training', @dataset_dir)[:2]",
}
"""The demo's schedule on top of the authors' regime (``protocol_paper.yaml``: no augmentation, their UNet, Adam,
StepLR): a 4 mm grid (48 x 48 slices), the first 2 training volumes (few data, many passes: the setting in which a
CE-trained network can start memorising its raters), validation every 40 epochs. Measured before the final
checkpoint was evaluated too (one more test-split evaluation per run): about 13 minutes for
the six losses on 2 CPU cores (see the README for the date and the machine)."""


def build_demo_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m monai_nacl demo`` (all optional)."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_nacl demo",
        description=(
            "Compare CE, Dice+CE, SVLS, NACL, CRaC and mL1-ACE on the embedded default dataset in the authors' "
            "training regime (about 13 min on 2 CPUs)."
        ),
        allow_abbrev=False,
    )
    parser.add_argument(
        "--output", type=Path, default=Path("outputs/demo"), help="report folder (default outputs/demo)"
    )
    parser.add_argument("--losses", default=",".join(DEMO_LOSSES), help="comma list of loss names")
    parser.add_argument("--max_epochs", type=int, default=DEMO_EPOCHS, help=f"epochs per run (default {DEMO_EPOCHS})")
    parser.add_argument("--dataset_dir", type=Path, default=None, help="default dataset folder (built if absent)")
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
        posthoc=parse_posthoc(known.posthoc),
        protocol=DEMO_PROTOCOL,
        overrides={**DEMO_OVERRIDES, **split_overrides(unknown)},
    )
    result = run_compare(options)
    print(
        f"demo finished in {format_duration(time.monotonic() - start)}; report: {result.report.resolve()}",
        flush=True,
    )
    return result
