"""``python -m monai_nacl {compare,demo,bundle}``: compare calibration losses through a bundle, run the demo, or
list, export and TorchScript-export the shipped bundles.

Examples::

    python -m monai_nacl demo
    python -m monai_nacl bundle list
    python -m monai_nacl bundle export unet2d_nacl ~/work/unet2d_nacl
    python -m monai_nacl bundle torchscript ~/work/unet2d_nacl   # models/model.ts beside the trained model.pt
    python -m monai_nacl compare --bundle unet2d_nacl --losses ce,dice_ce,nacl --seeds 3 --output outputs/cmp
    python -m monai_nacl compare --bundle unet2d_nacl --datalist my.json --dataset_dir /data --num_classes 4
    python -m monai_nacl compare --bundle unet2d_nacl --losses ce --grid "nacl:alpha=0.05,0.1,0.2" --posthoc ts
"""

from __future__ import annotations

import sys

USAGE = __doc__ + (
    "\nRun 'python -m monai_nacl compare --help', 'python -m monai_nacl demo --help' or 'python -m monai_nacl bundle "
    "--help' for the options;\n"
    "unknown '--id value' options are forwarded to the bundle as config overrides.\n"
)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to ``compare``, ``demo`` or ``bundle``; exit status 0, 1 when a run failed (see the report), 2 on bad usage."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "bundle":
        from monai_nacl.bundle.export import bundle_main

        return bundle_main(rest)
    if command not in ("compare", "demo"):
        print(f"unknown command {command!r}; use 'compare', 'demo' or 'bundle'.\n\n{USAGE}", file=sys.stderr)
        return 2
    from monai_nacl.compare.demo import run_demo
    from monai_nacl.compare.options import parse_compare_args
    from monai_nacl.compare.workflow import run_compare

    try:
        result = run_compare(parse_compare_args(rest)) if command == "compare" else run_demo(rest)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
