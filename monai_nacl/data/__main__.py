"""``python -m monai_nacl.data``: build the default dataset, write synthetic data or datalists, check a datalist.

Examples::

    python -m monai_nacl.data build-default [--output DIR] [--variant raters|deterministic] [--split 10,4,8]
                                            [--num_cases 22] [--test_raters 3] [--seed 0] [--force]
    python -m monai_nacl.data synthetic --output DIR [--num_cases 6] [--spatial_dims 3] [--size 32]
    python -m monai_nacl.data datalist --layout msd --input Task09_Spleen --output spleen.json --split 0.7,0.15,0.15
    python -m monai_nacl.data datalist --layout folders --input imgs --labels segs --output my.json \
                                       --class_names background,liver,kidney,bone
    python -m monai_nacl.data check datalist.json [--num_classes 4] [--stage train|evaluate|all] [--base_dir DIR]
                                    [--in_channels 1] [--image_dims 3]

``check`` gives the verdict of the bundle stage it names: ``train`` (the default) requires cases under ``training``
and ``validation``, as train.yaml's start-up does; ``evaluate`` requires ``test``, as evaluate.yaml does; ``all``
checks whatever sections are present. ``--num_classes`` defaults to the count the datalist's ``labels`` name, as
the bundles' ``num_classes`` does.

Exit status: 0 on success, 1 when ``check`` finds problems, 2 on a usage or input error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from monai_nacl.data.checks import check_datalist
from monai_nacl.data.datalist import LAYOUTS, make_datalist, num_classes_of, parse_split
from monai_nacl.data.default_dataset import (
    DEFAULT_SEED,
    DEFAULT_SPLITS,
    DEFAULT_TEST_RATERS,
    DEFAULT_VARIANT,
    VARIANTS,
    build_default_dataset,
    default_dataset_dir,
)
from monai_nacl.data.files import SECTIONS, read_datalist
from monai_nacl.data.synthetic import make_synthetic_dataset


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per task."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_nacl.data",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build-default", help="build the MNI152 grey/white matter dataset (offline)")
    build.add_argument("--output", type=Path, default=None, help=f"dataset folder (default {default_dataset_dir()})")
    build.add_argument(
        "--variant",
        choices=VARIANTS,
        default=DEFAULT_VARIANT,
        help="raters: simulated annotation, several raters per test case, test cases from another acquisition; "
        "deterministic: label = argmax of the tissue maps (the version 2 dataset, byte for byte)",
    )
    build.add_argument(
        "--split",
        default=None,
        help="train,validation,test case counts (default "
        + "; ".join(f"{v} {DEFAULT_SPLITS[v]}" for v in VARIANTS)
        + ")",
    )
    build.add_argument(
        "--num_cases", type=int, default=None, help="cohort size (>= 3) split as the default, or --split"
    )
    build.add_argument("--test_raters", type=int, default=DEFAULT_TEST_RATERS, help="raters per test case (raters)")
    build.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the cohort")
    build.add_argument("--force", action="store_true", help="replace an existing dataset folder")

    synthetic = commands.add_parser("synthetic", help="write a small synthetic dataset (random spheres)")
    synthetic.add_argument("--output", type=Path, required=True, help="folder to write")
    synthetic.add_argument("--num_cases", type=int, default=6)
    synthetic.add_argument("--spatial_dims", type=int, default=3, choices=(2, 3))
    synthetic.add_argument("--size", type=int, default=32, help="edge length in voxels")
    synthetic.add_argument("--num_classes", type=int, default=3)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--force", action="store_true", help="overwrite an existing dataset in --output")

    datalist = commands.add_parser("datalist", help="write a split datalist from a dataset folder")
    datalist.add_argument("--layout", required=True, choices=LAYOUTS)
    datalist.add_argument("--input", type=Path, required=True, help="dataset folder (folders layout: the images)")
    datalist.add_argument("--labels", type=Path, default=None, help="labels folder (folders layout only)")
    datalist.add_argument("--output", type=Path, required=True, help="datalist JSON to write")
    datalist.add_argument("--split", default="0.7,0.15,0.15", help="train,validation,test fractions")
    datalist.add_argument("--seed", type=int, default=0, help="seed of the split")
    datalist.add_argument("--force", action="store_true", help="overwrite an existing --output")
    datalist.add_argument(
        "--class_names",
        default=None,
        help="names of the label values, background first, comma-separated (written as the datalist's labels)",
    )

    check = commands.add_parser("check", help="check every case of a datalist")
    check.add_argument("datalist", type=Path)
    check.add_argument(
        "--num_classes",
        type=int,
        default=None,
        help="number of classes including background (default: the count the datalist's labels name)",
    )
    check.add_argument(
        "--stage",
        choices=tuple(STAGE_SECTIONS),
        default="train",
        help="the bundle stage whose start-up verdict to give: train (needs training and validation cases, the "
        "default), evaluate (needs test cases) or all (the sections present)",
    )
    check.add_argument("--base_dir", type=Path, default=None, help="folder of relative paths (default: the JSON's)")
    check.add_argument("--sections", default=None, help="comma list of sections (default: all present)")
    check.add_argument(
        "--in_channels", type=int, default=1, help="image channels per case the network takes (the bundles: 1)"
    )
    check.add_argument(
        "--image_dims", type=int, default=3, choices=(2, 3), help="spatial axes of an image (the bundles read 3D)"
    )
    return parser


# the sections a bundle stage requires, as its start-up checks them (train.yaml: require_valid_datalist;
# evaluate.yaml: the test list)
STAGE_SECTIONS = {"train": ("training", "validation"), "evaluate": ("test",), "all": ()}


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as error:
        raise ValueError(f"--split {text!r}: give three integer counts, e.g. --split 10,4,8.") from error


def _run(args: argparse.Namespace) -> int:
    if args.command == "build-default":
        start = time.monotonic()
        path = build_default_dataset(
            args.output,
            num_cases=args.num_cases,
            seed=args.seed,
            force=args.force,
            variant=args.variant,
            split=None if args.split is None else _counts(args.split),
            test_raters=args.test_raters,
        )
        data = read_datalist(path)
        sizes = ", ".join(f"{len(data[s])} {s}" for s in SECTIONS)
        print(f"built {path} ({args.variant}) in {time.monotonic() - start:.1f} s: {sizes}")
        print(f"class fractions {data['class_fractions']}")
        if "inter_rater_dice" in data:
            raters = data["raters"]["test_raters"]
            print(f"inter-rater Dice (test, {raters} raters per case, mean over pairs): {data['inter_rater_dice']}")
    elif args.command == "synthetic":
        path = make_synthetic_dataset(
            args.output, args.num_cases, args.spatial_dims, args.size, args.num_classes, args.seed, force=args.force
        )
        print(f"wrote {path}")
    elif args.command == "datalist":
        path = make_datalist(
            args.layout,
            args.input,
            args.output,
            args.labels,
            parse_split(args.split),
            args.seed,
            force=args.force,
            class_names=args.class_names,
        )
        data = read_datalist(path)
        print(f"wrote {path}: " + ", ".join(f"{len(data[s])} {s}" for s in SECTIONS))
    else:
        sections = None if args.sections is None else [s.strip() for s in args.sections.split(",") if s.strip()]
        num_classes = args.num_classes
        if num_classes is None:
            num_classes = num_classes_of(args.datalist, default=0)
            if not num_classes:
                raise ValueError(
                    f"{args.datalist} names no classes (no MSD-style 'labels' with keys 0..K-1): pass --num_classes, "
                    "or write the names with python -m monai_nacl.data datalist ... --class_names."
                )
        problems = check_datalist(
            args.datalist,
            num_classes,
            base_dir=args.base_dir,
            sections=sections,
            required_sections=STAGE_SECTIONS[args.stage],
            in_channels=args.in_channels,
            image_dims=args.image_dims,
        )
        for problem in problems:
            print(problem)
        if problems:
            cases = len({p.case for p in problems})
            print(f"{len(problems)} problem(s) in {cases} case(s) of {args.datalist}", file=sys.stderr)
            return 1
        data = read_datalist(args.datalist)
        count = sum(len(data[s]) for s in (sections or SECTIONS) if isinstance(data.get(s), list))
        print(f"{args.datalist}: {count} cases checked ({num_classes} classes, stage {args.stage}), no problem found")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
