"""Atomic file output: write under a temporary name in the target folder, then rename.

A reader (a viewer, a script polling for ``summary.json``, a crashed run resumed) then sees either the old file
or the complete new one, never a half-written file; ``os.replace`` is atomic within one file system.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monai.config import PathLike
from monai.data import NibabelWriter

__all__ = ["AtomicNibabelWriter", "atomic_write", "atomic_write_text"]


def atomic_write(path: PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(temporary_path)`` then rename the temporary file to ``path``.

    The temporary file sits in the same folder and ends with the same suffixes as ``path`` (writers such as
    nibabel and matplotlib pick the format from the extension). It is removed if ``write`` raises.

    Args:
        path: the final file path; its folder is created if missing.
        write: a function that writes the complete file to the path it is given.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, see :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` writing through a temporary file and a rename (see :func:`atomic_write`).

    Use it with ``SaveImaged(..., writer="monai_nacl.workflows.AtomicNibabelWriter")``.
    """

    def write(self, filename: PathLike, verbose: bool = False, **obj_kwargs: Any) -> None:
        """Write the NIfTI file ``filename`` atomically; arguments as ``NibabelWriter.write``."""
        atomic_write(filename, lambda tmp: super(AtomicNibabelWriter, self).write(tmp, verbose=verbose, **obj_kwargs))
