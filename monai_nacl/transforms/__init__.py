"""MONAI dictionary transforms of monai_nacl: the neighbourhood prior computed in the loader, and the uncertainty
maps of a prediction."""

from __future__ import annotations

from monai_nacl.transforms.neighborhood import NeighborhoodPriord
from monai_nacl.transforms.uncertainty import UncertaintyMapsd, uncertainty_maps

__all__ = ["NeighborhoodPriord", "UncertaintyMapsd", "uncertainty_maps"]
