"""MONAI dictionary transforms of monai_nacl: the neighbourhood prior computed in the loader, the uncertainty maps of a
prediction, the intensity handling by modality and patch centres from the image's support."""

from __future__ import annotations

from monai_nacl.transforms.intensity import (
    DEFAULT_CT_WINDOW,
    INTENSITY_MODES,
    SupportFgBgToIndicesd,
    foreground_intensity_statistics,
    intensity_transforms,
)
from monai_nacl.transforms.neighborhood import NeighborhoodPriord
from monai_nacl.transforms.uncertainty import UncertaintyMapsd, uncertainty_maps

__all__ = [
    "DEFAULT_CT_WINDOW",
    "INTENSITY_MODES",
    "NeighborhoodPriord",
    "SupportFgBgToIndicesd",
    "UncertaintyMapsd",
    "foreground_intensity_statistics",
    "intensity_transforms",
    "uncertainty_maps",
]
