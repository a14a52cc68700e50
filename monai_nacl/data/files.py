"""Small file helpers shared by the data package: NIfTI writing, JSON datalists, publishing folders atomically."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.config import PathLike

__all__ = [
    "build_atomically",
    "case_id",
    "datalist_base_dir",
    "first_image",
    "read_datalist",
    "save_nifti",
    "write_json",
]

SECTIONS = ("training", "validation", "test")
NIFTI_SUFFIXES = (".nii.gz", ".nii")


def case_id(path: PathLike) -> str:
    """The file name of ``path`` without its NIfTI extension (``imagesTr/case_003.nii.gz`` -> ``case_003``)."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def first_image(entry: Any) -> Any:
    """The image path of a datalist entry: ``entry["image"]``, or its first file when it lists several (channels);
    whatever is there (``None`` for a non-mapping entry) when it is not such a path, for the caller to report."""
    image = entry.get("image") if isinstance(entry, Mapping) else None
    return image[0] if isinstance(image, list) and image else image


def save_nifti(array: np.ndarray, affine: np.ndarray, path: PathLike) -> None:
    """Write ``array`` as NIfTI-1 with ``affine`` (mm units); ``.nii.gz`` files are gzip'ed with mtime 0.

    A fixed gzip time stamp makes two writes of the same array byte-identical, so a dataset built twice with
    the same seed gives the same files, not only the same arrays.
    """
    image = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    image.header.set_xyzt_units("mm")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    payload = image.to_bytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=1, mtime=0)
    path.write_bytes(payload)


def write_json(data: Mapping[str, Any], path: PathLike, force: bool = False) -> None:
    """Write ``data`` as indented JSON; an existing file is replaced only when ``force`` is true.

    Raises:
        FileExistsError: if ``path`` exists and ``force`` is false (pass ``--force`` to overwrite it).
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; pass --force to overwrite it or choose another --output.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_datalist(datalist: PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """The datalist as a dictionary: ``datalist`` is a JSON file path or an already loaded mapping.

    Raises:
        ValueError: if the file is missing, is not JSON, or does not hold a JSON object.
    """
    if isinstance(datalist, Mapping):
        return dict(datalist)
    path = Path(datalist)
    if not path.is_file():
        raise ValueError(f"datalist {path} does not exist; build one with 'python -m monai_nacl.data datalist ...'.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"datalist {path} is not valid JSON ({error}); regenerate it.") from error
    if isinstance(data, dict):
        return data
    raise ValueError(
        f"datalist {path} holds a JSON {type(data).__name__}, expected an object with 'training', "
        "'validation' and 'test' lists."
    )


def datalist_base_dir(datalist: PathLike | Mapping[str, Any], dataset_dir: PathLike | None = None) -> Path:
    """The folder a datalist's relative paths start from: ``dataset_dir`` when given, else the folder of the
    datalist file (the working directory for an already loaded mapping), as ``monai.data.load_decathlon_datalist``
    resolves them with ``base_dir=None``; so the bundles' ``dataset_dir: null`` means "beside the datalist"."""
    if dataset_dir is not None:
        return Path(dataset_dir)
    return Path.cwd() if isinstance(datalist, Mapping) else Path(datalist).parent


@contextmanager
def build_atomically(output_dir: PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder of ``output_dir`` to build into, then move it to ``output_dir``.

    An interrupted build leaves no half-filled ``output_dir``: the temporary folder is removed on error, and
    the final ``rename`` is atomic. If another process publishes ``output_dir`` first, its result is kept and
    ours discarded. An existing non-empty ``output_dir`` is replaced only with ``force`` (the old folder is
    moved aside first and deleted after the new one is in place); an empty one is replaced silently.

    Raises:
        FileExistsError: if ``output_dir`` exists, is not empty and ``force`` is false.
    """
    output_dir = Path(output_dir).expanduser().absolute()
    if output_dir.exists() and any(output_dir.iterdir()) and not force:
        raise FileExistsError(
            f"{output_dir} already exists and is not empty; pass --force to rebuild it or choose another --output."
        )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.building-", dir=output_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the published dataset is an ordinary folder
    try:
        yield staging
        if output_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
            os.replace(output_dir, old / output_dir.name)
            os.rename(staging, output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(staging, output_dir)
            except OSError:
                if not (output_dir.exists() and any(output_dir.iterdir())):
                    raise
                shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
