"""Fixtures of the bundle tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthetic_3d(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A small synthetic 3D dataset (12 cases of 64^3, 3 classes; 2 validation, 2 test): ``(dataset_dir, datalist)``."""
    from monai_nacl.data import make_synthetic_dataset

    folder = tmp_path_factory.mktemp("synthetic_3d")
    datalist = make_synthetic_dataset(folder, num_cases=12, spatial_dims=3, size=64, num_classes=3, seed=0)
    return str(folder), str(datalist)
