"""The synthetic test dataset."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_nacl.data import check_datalist, make_synthetic_dataset


def _load(folder: Path, relative: str) -> np.ndarray:
    return np.asarray(nib.load(str(folder / relative)).dataobj)


@pytest.mark.parametrize("spatial_dims, num_classes", [(3, 3), (2, 2), (2, 4)])
def test_layout_labels_and_soft_labels(tmp_path: Path, spatial_dims: int, num_classes: int) -> None:
    path = make_synthetic_dataset(tmp_path, num_cases=6, spatial_dims=spatial_dims, size=32, num_classes=num_classes)
    data = json.loads(Path(path).read_text())
    assert [len(data[s]) for s in ("training", "validation", "test")] == [4, 1, 1]
    assert check_datalist(path, num_classes, image_dims=spatial_dims) == []
    seen = set()
    for entry in data["training"] + data["validation"] + data["test"]:
        image, label = _load(tmp_path, entry["image"]), _load(tmp_path, entry["label"])
        soft = _load(tmp_path, entry["soft_label"])
        assert image.shape == label.shape == (32,) * spatial_dims and soft.shape == (*label.shape, num_classes)
        assert label.min() >= 0 and label.max() < num_classes
        seen |= set(np.unique(label).tolist())
        # soft label at a few voxels: mean of the one-hot over the 3^d box, edges replicated (slow reference)
        rng = np.random.default_rng(0)
        for _ in range(20):
            voxel = rng.integers(0, 32, size=spatial_dims)
            counts = np.zeros(num_classes)
            for offset in np.ndindex(*(3,) * spatial_dims):
                neighbour = tuple(np.clip(voxel + np.asarray(offset) - 1, 0, 31))
                counts[label[neighbour]] += 1
            np.testing.assert_allclose(soft[tuple(voxel)], counts / 3**spatial_dims, atol=1e-6)
    assert seen == set(range(num_classes))
    loaded = load_decathlon_datalist(path, True, "validation", base_dir=str(tmp_path))
    assert loaded[0]["label"] == str(tmp_path / data["validation"][0]["label"])


def test_deterministic_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = make_synthetic_dataset(tmp_path / "a", num_cases=3, size=16, seed=3)
    second = make_synthetic_dataset(tmp_path / "b", num_cases=3, size=16, seed=3)
    for name in ("imagesTr/case_002.nii.gz", "labelsTr/case_002.nii.gz"):
        assert (Path(first).parent / name).read_bytes() == (Path(second).parent / name).read_bytes()
    with pytest.raises(FileExistsError, match="force"):
        make_synthetic_dataset(tmp_path / "a", num_cases=3, size=16)
    make_synthetic_dataset(tmp_path / "a", num_cases=3, size=16, seed=4, force=True)
    assert (tmp_path / "a/imagesTr/case_002.nii.gz").read_bytes() != (
        tmp_path / "b/imagesTr/case_002.nii.gz"
    ).read_bytes()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"spatial_dims": 4}, "spatial_dims"),
        ({"num_cases": 2}, "num_cases"),
        ({"size": 8}, "size"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_synthetic_dataset(tmp_path, **kwargs)
