"""Fixtures of the data tests: one small default dataset per session, and a NIfTI writer for hand-made files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SMALL_COHORT = 3


@pytest.fixture(scope="session")
def small_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default dataset built with 3 cases (seed 0) in a temporary folder; returns the folder."""
    from monai_nacl.data import build_default_dataset

    folder = tmp_path_factory.mktemp("default") / "mni152_tissue"
    build_default_dataset(folder, num_cases=SMALL_COHORT, seed=0)
    return folder


def _write_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine), str(path))
    return path


@pytest.fixture
def write_nifti() -> Callable[..., Path]:
    """``write_nifti(path, array, affine=None)``: save with nibabel (identity affine by default), make folders."""
    return _write_nifti
