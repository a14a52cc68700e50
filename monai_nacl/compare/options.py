"""Command-line arguments of ``python -m monai_nacl compare``."""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monai_nacl.compare.checkpoints import CHECKPOINT_CHOICES
from monai_nacl.compare.overrides import split_overrides

__all__ = [
    "PROTOCOLS",
    "QUICK_EPOCHS",
    "RESERVED_IDS",
    "CompareOptions",
    "add_compare_arguments",
    "check_bundle_overrides",
    "check_reference",
    "compare_option_names",
    "parse_compare_args",
    "parse_posthoc",
    "positive_int",
]

QUICK_EPOCHS = 2
"""``--quick``: epochs per run (a smoke schedule, not a meaningful comparison)."""

RESERVED_IDS = ("loss_name", "seed", "output_dir", "ckpt_dir", "bundle_root")
"""Bundle ids the workflow sets for each run; forwarding them would break the comparison."""

PROTOCOLS: dict[str, tuple[str, ...]] = {"default": (), "paper": ("protocol_paper.yaml",)}
"""``--protocol``: config files (under the bundle's ``configs/``) merged right after ``train.yaml`` for training
and evaluation. ``paper`` is the NACL authors' regime (no augmentation, Adam 1e-3, one x0.1 step of the rate at
half the schedule, 100 epochs, their network shape; slice-wise training for the 2D bundle)."""


@dataclass
class CompareOptions:
    """Everything a comparison needs (see ``python -m monai_nacl compare --help``)."""

    bundle: str
    output: Path
    losses: list[str] | None = None
    seeds: int = 1
    first_seed: int = 0
    max_epochs: int | None = None
    dataset_dir: Path | None = None
    datalist: Path | None = None
    quick: bool = False
    posthoc: list[str] = field(default_factory=list)
    grid: list[str] = field(default_factory=list)
    overrides: dict[str, str] = field(default_factory=dict)
    ts_max_voxels: int = 200_000
    ts_region: str = "all"
    reference: str = "ce"
    protocol: str = "default"
    checkpoint: str = "both"
    jobs: int = 1

    @property
    def subprocess_env(self) -> dict[str, str] | None:
        """The environment of the bundle runs: with ``jobs > 1``, each run's PyTorch gets an equal share of the CPU
        cores (``OMP_NUM_THREADS``, unless the user set it): runs side by side whose thread pools together exceed the
        cores wait on each other's descheduled threads (measured: an epoch 30x slower). ``None``: inherit as is."""
        if self.jobs <= 1 or "OMP_NUM_THREADS" in os.environ:
            return None
        return {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // self.jobs))}

    @property
    def protocol_configs(self) -> tuple[str, ...]:
        """Config files of ``protocol``, merged after the bundle's ``train.yaml`` (see :data:`PROTOCOLS`)."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {self.protocol!r}.")
        return PROTOCOLS[self.protocol]

    @property
    def checkpoints(self) -> tuple[str, ...]:
        """The checkpoints of ``checkpoint`` (``both``: ``("best", "final")``), see :data:`CHECKPOINT_CHOICES`."""
        if self.checkpoint not in CHECKPOINT_CHOICES:
            raise ValueError(f"checkpoint must be one of {sorted(CHECKPOINT_CHOICES)}, got {self.checkpoint!r}.")
        return CHECKPOINT_CHOICES[self.checkpoint]

    @property
    def seed_values(self) -> list[int]:
        """The seeds run: ``first_seed, ..., first_seed + seeds - 1``."""
        return list(range(self.first_seed, self.first_seed + self.seeds))

    @property
    def epochs(self) -> int | None:
        """Epochs per run: ``--max_epochs``, else ``QUICK_EPOCHS`` with ``--quick``, else the bundle's."""
        if self.max_epochs is not None:
            return self.max_epochs
        return QUICK_EPOCHS if self.quick else None


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 1 (seeds, epochs, jobs), refused with the value otherwise."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``compare`` arguments to ``parser`` (create it with ``allow_abbrev=False``: ``--seed`` is a bundle id)."""
    parser.add_argument(
        "--bundle",
        required=True,
        help="a shipped bundle by name (unet2d_nacl, unet3d_nacl, swinunetr_nacl) or a bundle folder by path",
    )
    parser.add_argument(
        "--losses", default=None, help="comma list of the bundle's loss_name values (default: every loss it defines)"
    )
    parser.add_argument("--seeds", type=positive_int, default=1, help="number of seeds per loss (default 1)")
    parser.add_argument("--first_seed", type=int, default=0, help="first seed; seeds are first_seed, first_seed+1, ...")
    parser.add_argument("--max_epochs", type=positive_int, default=None, help="epochs per run (default: the bundle's)")
    parser.add_argument("--dataset_dir", type=Path, default=None, help="data folder (default: the bundle's)")
    parser.add_argument("--datalist", type=Path, default=None, help="MSD-style datalist JSON (default: the bundle's)")
    parser.add_argument("--output", type=Path, default=Path("outputs/compare"), help="report and runs folder")
    parser.add_argument("--quick", action="store_true", help=f"short schedule ({QUICK_EPOCHS} epochs) for a smoke run")
    parser.add_argument(
        "--posthoc",
        default=None,
        help=(
            "comma list of post-hoc calibrations fitted per trained model on the validation split, each adding a "
            "'<loss> + <method>' row: ts (one temperature, '+ TS'), vector (one per class, '+ VS'), lts (local "
            "temperature scaling, '+ LTS'); e.g. --posthoc ts,vector,lts"
        ),
    )
    parser.add_argument(
        "--ts_max_voxels",
        type=positive_int,
        default=200_000,
        help="validation voxels sampled per case for the ts and vector fits",
    )
    parser.add_argument(
        "--ts_region",
        choices=("all", "foreground"),
        default="all",
        help="validation voxels the post-hoc calibrations are fitted on: all (standard) or foreground (label != 0)",
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        help="sweep one loss's parameters, e.g. 'nacl:alpha=0.05,0.1,0.2;kernel_size=3,5' (repeatable)",
    )
    parser.add_argument(
        "--reference",
        default="ce",
        help="row every other row is compared with, case by case (default ce; must be one of the rows run)",
    )
    parser.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        default="default",
        help="training regime: the bundle's defaults, or 'paper' (configs/protocol_paper.yaml merged after train.yaml)",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="runs trained and evaluated side by side, each with an equal share of the CPU threads (default 1)",
    )
    parser.add_argument(
        "--checkpoint",
        choices=tuple(CHECKPOINT_CHOICES),
        default="both",
        help=(
            "weights each run is evaluated (and calibrated post hoc) with: best (models/model.pt, the epoch of the "
            "best validation mean Dice, as the NACL authors report), final (the last epoch's, where memorisation "
            "shows), or both (default; the report shows one table per checkpoint)"
        ),
    )


def compare_option_names() -> list[str]:
    """Names of ``compare``'s own options, without the leading ``--`` (``max_epochs``, ``posthoc``...)."""
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    add_compare_arguments(parser)
    return [option[2:] for action in parser._actions for option in action.option_strings]


def _suggest(name: str, candidates: Collection[str]) -> str:
    """``" (did you mean --max_epochs?)"`` for the closest candidates to ``name`` (difflib), or ``""``."""
    head, sep, rest = name.partition("#")
    matches = difflib.get_close_matches(head, sorted(set(candidates)), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(f"--{m}{sep}{rest}" for m in matches) + "?)"


def _check_forwarded_tokens(tokens: Sequence[str]) -> None:
    """Refuse a leftover ``--name`` without a value: it is neither a compare option nor a bundle override."""
    for i, token in enumerate(tokens):
        if token.startswith("--") and "=" not in token and (i + 1 == len(tokens) or tokens[i + 1].startswith("--")):
            raise ValueError(
                f"unknown option {token!r}{_suggest(token[2:], compare_option_names())}: it is not a compare option, "
                f"and as a bundle override it needs a value ('{token} VALUE'). See 'python -m monai_nacl compare --help'."
            )


def check_bundle_overrides(overrides: Mapping[str, str], bundle_ids: Collection[str], bundle_name: str) -> None:
    """Refuse forwarded ``--id value`` pairs that name no id of the bundle, with the closest valid names.

    An override ``--a#b#c`` is accepted when its first part ``a`` is a top-level id of the bundle's configs (the
    deeper parts may add a new key, e.g. a loss argument the bundle leaves at its default).

    Args:
        overrides: the forwarded ``{id: value}``.
        bundle_ids: the top-level ids of the configs the runs merge.
        bundle_name: shown in the message.

    Raises:
        ValueError: naming each unknown option and the closest compare options or bundle ids.
    """
    unknown = [key for key in overrides if key.partition("#")[0] not in bundle_ids]
    if unknown:
        candidates = [*compare_option_names(), *bundle_ids]
        problems = "; ".join(f"--{key}{_suggest(key, candidates)}" for key in unknown)
        raise ValueError(
            f"unknown option(s): {problems}. They are not compare options (see --help), and their first part is "
            f"not an id of bundle {bundle_name}'s configs, so they would be ignored; nothing was run."
        )


def check_reference(reference: str, row_names: Sequence[str]) -> None:
    """Refuse a ``--reference`` that is not one of the rows run (the losses and grid points).

    Raises:
        ValueError: naming the rows and the closest one.
    """
    if reference not in row_names:
        close = difflib.get_close_matches(reference, list(row_names), n=1, cutoff=0.6)
        hint = f"did you mean --reference {close[0]}? " if close else ""
        raise ValueError(
            f"--reference {reference!r} is not one of the rows run {list(row_names)}; {hint}"
            "pass --reference with one of them, or add it to --losses."
        )


def parse_posthoc(text: str | None) -> list[str]:
    """The methods of ``--posthoc ts,vector,lts``, in order, without repeats.

    Raises:
        ValueError: for a name that is not a post-hoc method, or a ``--posthoc`` that names none.
    """
    from monai_nacl.calibration import CALIBRATORS

    methods = [name.strip() for name in (text or "").split(",") if name.strip()]
    if text is not None and not methods:
        raise ValueError(f"--posthoc {text!r} names no method; give e.g. --posthoc ts,vector,lts.")
    unknown = [name for name in methods if name not in CALIBRATORS]
    if unknown:
        raise ValueError(f"--posthoc: {unknown} are not post-hoc methods; choose from {sorted(CALIBRATORS)}.")
    return list(dict.fromkeys(methods))


def parse_compare_args(argv: list[str]) -> CompareOptions:
    """Parse ``compare`` arguments; unknown ``--id value`` pairs are forwarded to the bundle as overrides.

    Raises:
        ValueError: for a leftover option without a value (with the closest compare options), a forwarded
            override that is not ``--id value`` or one of :data:`RESERVED_IDS`, or a ``--reference`` missing
            from ``--losses``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m monai_nacl compare",
        description="Train and evaluate a bundle once per loss and seed; write report.md, summary.csv and diagrams.",
        epilog=(
            "Any other '--id value' (e.g. --losses#nacl#alpha 0.2, --device cpu) is forwarded to the bundle when "
            "the bundle's configs define the id (for 'a#b', the id 'a'); anything else is refused before any run."
        ),
        allow_abbrev=False,
    )
    add_compare_arguments(parser)
    known, unknown = parser.parse_known_args(argv)
    return options_from_namespace(known, unknown)


def options_from_namespace(known: argparse.Namespace, unknown: list[str]) -> CompareOptions:
    """Build :class:`CompareOptions` from parsed arguments and the leftover (forwarded) tokens.

    The forwarded ids are checked against the bundle later (:func:`check_bundle_overrides`, before any run), when
    the bundle's configs are known.
    """
    _check_forwarded_tokens(unknown)
    overrides = split_overrides(unknown)
    reserved = sorted(set(overrides) & set(RESERVED_IDS))
    if reserved:
        raise ValueError(
            f"--{reserved[0]} is set by compare for each run; use --losses / --seeds / --first_seed / --output instead."
        )
    losses = [name.strip() for name in known.losses.split(",") if name.strip()] if known.losses else None
    if known.losses is not None and not losses:
        raise ValueError(f"--losses {known.losses!r} names no loss; give e.g. --losses ce,dice_ce,nacl.")
    if losses is not None and not known.grid:
        check_reference(known.reference, losses)
    return CompareOptions(
        bundle=known.bundle,
        output=known.output,
        losses=losses,
        seeds=known.seeds,
        first_seed=known.first_seed,
        max_epochs=known.max_epochs,
        dataset_dir=known.dataset_dir,
        datalist=known.datalist,
        quick=known.quick,
        posthoc=parse_posthoc(known.posthoc),
        grid=list(known.grid),
        overrides=overrides,
        ts_max_voxels=known.ts_max_voxels,
        ts_region=known.ts_region,
        reference=known.reference,
        protocol=known.protocol,
        checkpoint=known.checkpoint,
        jobs=known.jobs,
    )
