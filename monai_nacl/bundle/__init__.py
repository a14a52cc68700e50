"""What the bundle configs call that a config cannot express by itself, and the shipped bundles' location."""

from __future__ import annotations

from monai_nacl.bundle.shipped import BUNDLES_DIR, shipped_bundle_names

__all__ = ["BUNDLES_DIR", "shipped_bundle_names"]
