"""``python -m monai_nacl.compare.bundle_run run --config_file ... --meta_file ... --key value``.

The same command line as ``python -m monai.bundle run`` (same arguments, ``--a#b value`` overrides, values
read as Python literals when they parse as one, otherwise kept as strings), calling the same
``monai.bundle.scripts.run``, but without the optional ``fire`` package that MONAI's own entry point needs.
"""

from __future__ import annotations

import sys

from monai_nacl.compare.overrides import parse_overrides

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run a bundle workflow; the first positional argument ``run`` (as in MONAI's CLI) is optional."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        argv = argv[1:]
    from monai.bundle.scripts import run

    run(**parse_overrides(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
