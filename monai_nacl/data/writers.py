"""Image writers for the bundles' outputs: MONAI's NIfTI writer through :func:`monai_nacl.utils.atomic_write`."""

from __future__ import annotations

from typing import Any

from monai.config import PathLike
from monai.data import NibabelWriter

from monai_nacl.utils import atomic_write

__all__ = ["AtomicNibabelWriter"]


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` writing through a temporary file and a rename (see :func:`atomic_write`).

    Use it with ``SaveImaged(..., writer="monai_nacl.data.AtomicNibabelWriter")``.
    """

    def write(self, filename: PathLike, verbose: bool = False, **obj_kwargs: Any) -> None:
        """Write the NIfTI file ``filename`` atomically; arguments as ``NibabelWriter.write``."""
        atomic_write(filename, lambda tmp: super(AtomicNibabelWriter, self).write(tmp, verbose=verbose, **obj_kwargs))
