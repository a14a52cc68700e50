"""MONAI dictionary transforms of monai_nacl: the neighbourhood prior computed in the loader, the uncertainty maps of a
prediction (its label map in a dtype ITK writes), the intensity handling by modality, patch centres from the image's
support, and keys set aside around the spatial transforms (MONAI Label's ``image_path``)."""

from __future__ import annotations

from monai_nacl.transforms.aside import RestoreAsided, SetAsided
from monai_nacl.transforms.dice_estimate import DiceEstimated
from monai_nacl.transforms.intensity import (
    DEFAULT_CT_WINDOW,
    INTENSITY_MODES,
    SupportFgBgToIndicesd,
    foreground_intensity_statistics,
    intensity_transforms,
)
from monai_nacl.transforms.neighborhood import NeighborhoodPriord
from monai_nacl.transforms.uncertainty import UncertaintyMapsd, label_dtype, uncertainty_maps

__all__ = [
    "DEFAULT_CT_WINDOW",
    "INTENSITY_MODES",
    "DiceEstimated",
    "NeighborhoodPriord",
    "RestoreAsided",
    "SetAsided",
    "SupportFgBgToIndicesd",
    "UncertaintyMapsd",
    "foreground_intensity_statistics",
    "intensity_transforms",
    "label_dtype",
    "uncertainty_maps",
]
