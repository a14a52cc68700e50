"""``python -m monai_nacl bundle {list,export}``: the shipped bundles as folders a user owns.

The bundles are the repository's top-level ``bundles/`` (package data ``monai_nacl/bundles/<name>/`` of the wheel). ``export`` copies one
into a folder of the user's, without what a run leaves behind (``models/``, ``eval/``, ``logs/``, caches), so the copy
is self-contained and runs from its own folder with MONAI's plain command::

    python -m monai_nacl bundle export unet2d_nacl ~/work/unet2d_nacl
    cd ~/work/unet2d_nacl
    python -m monai.bundle run --config_file configs/train.yaml --meta_file configs/metadata.json

There ``bundle_root`` is the copy (the folder above ``--config_file``), so its checkpoints go to the copy's
``models/`` and its outputs to the copy's ``eval/``, never to the installed package.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from monai.config import PathLike

from monai_nacl.bundle.shipped import BUNDLES_DIR, shipped_bundle_names
from monai_nacl.data.files import build_atomically

__all__ = ["EXCLUDED_FROM_EXPORT", "bundle_main", "export_bundle", "list_bundles"]

EXCLUDED_FROM_EXPORT = ("models", "eval", "logs", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", "*.pyc")
"""What :func:`export_bundle` leaves out: a run's checkpoints and outputs, and caches (names or glob patterns)."""


def list_bundles() -> dict[str, str]:
    """The shipped bundles: name -> the ``description`` of its ``configs/metadata.json``."""
    bundles = {}
    for name in shipped_bundle_names(BUNDLES_DIR):
        meta = json.loads((BUNDLES_DIR / name / "configs" / "metadata.json").read_text(encoding="utf-8"))
        bundles[name] = meta.get("description", "")
    return bundles


def export_bundle(name: str, output_dir: PathLike, force: bool = False) -> Path:
    """Copy the shipped bundle ``name`` into ``output_dir``, without :data:`EXCLUDED_FROM_EXPORT`.

    The copy is written into a temporary sibling folder and renamed into place, so an interrupted export leaves no
    half-filled folder.

    Args:
        name: a shipped bundle (:func:`list_bundles`).
        output_dir: the folder to create; an existing empty folder is fine.
        force: replace a non-empty ``output_dir`` (everything in it is deleted, trained models included).

    Returns:
        the absolute path of the copy.

    Raises:
        ValueError: for an unknown bundle name, listing the shipped ones.
        FileExistsError: if ``output_dir`` is not empty and ``force`` is false.
    """
    if name not in shipped_bundle_names(BUNDLES_DIR):
        raise ValueError(f"unknown bundle {name!r}; the shipped bundles are {shipped_bundle_names(BUNDLES_DIR)}.")
    target = Path(output_dir).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} is a file; choose a folder for the bundle copy.")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise FileExistsError(
            f"{target} is not empty; pass --force to replace its content (trained models included) or choose "
            "another folder."
        )
    source = BUNDLES_DIR / name
    with build_atomically(target, force=True) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*EXCLUDED_FROM_EXPORT))
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monai_nacl bundle", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the shipped bundles")
    export = commands.add_parser("export", help="copy a bundle into a folder of yours, ready to run from there")
    export.add_argument("name", help="bundle name (see 'list')")
    export.add_argument("output_dir", type=Path, help="folder to create")
    export.add_argument("--force", action="store_true", help="replace a non-empty folder (its content is lost)")
    return parser


def bundle_main(argv: list[str]) -> int:
    """The ``bundle`` command; exit status 0, 2 on bad usage."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.command == "list":
        for name, description in list_bundles().items():
            print(f"{name}: {description} ({BUNDLES_DIR / name})")
        return 0
    try:
        copy = export_bundle(args.name, args.output_dir, force=args.force)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"exported {args.name} to {copy}; run it from there:\n  cd {copy}\n  python -m monai.bundle run "
        "--config_file configs/train.yaml --meta_file configs/metadata.json"
    )
    return 0
