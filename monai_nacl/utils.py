"""Small utilities that the libraries (``calibration``, ``handlers``, ``losses``) and the bundle code share: atomic
file output, file hashes, the writing rank of a distributed run, yes/no options and plain tensors.

Atomic output writes under a temporary name in the target folder, then renames: a reader (a viewer, a script polling
for ``summary.json``, a crashed run resumed) sees either the old file or the complete new one, never a half-written
file; ``os.replace`` is atomic within one file system.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from monai.config import PathLike

_UMASK_LOCK = threading.Lock()

__all__ = ["as_flag", "atomic_write", "atomic_write_text", "file_sha256", "is_rank_zero", "plain_tensor"]

_FLAG_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def as_flag(value: bool | int | str, name: str) -> bool:
    """A yes/no bundle option as a ``bool``.

    ``python -m monai.bundle run --check_data false`` hands the config the *string* ``"false"`` (fire parses
    only Python literals such as ``False``), and a non-empty string is true in Python. Components that take a
    yes/no option read it through this function, so ``true``/``false``, ``yes``/``no``, ``on``/``off``,
    ``1``/``0`` in any case work as well as ``True``/``False``.

    Args:
        value: the option's value.
        name: the option's id, for the error message.

    Raises:
        ValueError: for any other value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAG_WORDS:
        return _FLAG_WORDS[value.strip().lower()]
    raise ValueError(f"--{name} {value!r} is not a yes/no value; pass --{name} true or --{name} false.")


def atomic_write(path: PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(temporary_path)`` then rename the temporary file to ``path``.

    The temporary file sits in the same folder and ends with the same suffixes as ``path`` (writers such as
    nibabel and matplotlib pick the format from the extension). It is removed if ``write`` raises. The file gets
    the permissions a plain ``open`` would give it (``0o666`` less the umask), not the temporary file's ``0o600``,
    so colleagues read results as they read the weights.

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
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process's umask (reading it means setting it: set it back at once, under a lock for threads)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


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


def plain_tensor(x: Any) -> torch.Tensor:
    """``x`` as a plain ``torch.Tensor``: a ``MetaTensor`` (or other subclass) without its metadata, keeping its
    autograd history and storage; anything else through ``torch.as_tensor``. Losses and calibrators need no
    metadata, and MONAI's meta tracking costs time on every operation."""
    if not isinstance(x, torch.Tensor):
        return torch.as_tensor(x)
    return x if type(x) is torch.Tensor else x.as_subclass(torch.Tensor)
