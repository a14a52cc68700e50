"""MONAI dictionary transforms of monai_nacl."""

from __future__ import annotations

from monai_nacl.transforms.neighborhood import NeighborhoodPriord

__all__ = ["NeighborhoodPriord"]
