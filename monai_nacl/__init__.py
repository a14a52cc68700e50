"""monai_nacl: calibrated medical image segmentation for MONAI.

Neighbor-Aware CaLibration (NACL, Murugesan et al., MICCAI 2023 / MedIA 2025), the calibration
losses it is compared with, calibration metrics that stream over whole volumes and datasets, and MONAI
bundles that train and evaluate segmentation networks with them.

Importing the package registers its components with MONAI's ``ComponentLocator`` (which indexes every
imported module whose name starts with ``monai``), so bundle configs can name them by bare class name
as well as by dotted path. No name here shadows a MONAI name.
"""

from __future__ import annotations

from monai_nacl import handlers, losses, metrics, transforms

__version__ = "0.1.0"

__all__ = ["__version__", "handlers", "losses", "metrics", "transforms"]
