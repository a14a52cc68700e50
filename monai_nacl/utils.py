"""Small utilities that the libraries (``calibration``, ``handlers``) and the bundle code share: atomic file output,
file hashes and the writing rank of a distributed run.

Atomic output writes under a temporary name in the target folder, then renames: a reader (a viewer, a script polling
for ``summary.json``, a crashed run resumed) sees either the old file or the complete new one, never a half-written
file; ``os.replace`` is atomic within one file system.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from monai.config import PathLike

__all__ = ["atomic_write", "atomic_write_text", "file_sha256", "is_rank_zero"]


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


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_rank_zero() -> bool:
    """Whether this process writes the run's files: rank 0 of an initialised ``torch.distributed`` group, or the only
    process. The bundles disable their writing handlers with ``_disabled_: "$not @rank_zero"``."""
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )
