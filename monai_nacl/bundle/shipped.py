"""Where the shipped bundles are: ``monai_nacl/bundles/`` in an installed wheel, the repository's top-level
``bundles/`` in a checkout (setup.py maps the one onto the other)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUNDLES_DIR", "shipped_bundle_names"]


def _bundles_dir() -> Path:
    package = Path(__file__).resolve().parents[1]
    installed = package / "bundles"
    return installed if installed.is_dir() else package.parent / "bundles"


BUNDLES_DIR = _bundles_dir()
"""The folder holding one folder per shipped bundle (``unet2d_nacl``, ``unet3d_nacl``, ``swinunetr_nacl``)."""


def shipped_bundle_names(root: Path | None = None) -> list[str]:
    """The bundles in ``root`` (default :data:`BUNDLES_DIR`): its folders with a ``configs/metadata.json``, sorted."""
    root = BUNDLES_DIR if root is None else root
    return sorted(p.name for p in root.iterdir() if (p / "configs" / "metadata.json").is_file())
