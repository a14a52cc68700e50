"""A small synthetic segmentation dataset for fast tests (MONAI's random spheres / discs saved as NIfTI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from monai.config import PathLike
from monai.data.synthetic import create_test_image_2d, create_test_image_3d

from monai_nacl.data.files import save_nifti, write_json

__all__ = ["make_synthetic_dataset"]


def _soft_labels(label: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot labels averaged over the 3-voxel neighbourhood of each axis, channels last (sums to 1)."""
    soft = np.eye(num_classes, dtype=np.float64)[label]
    for axis in range(label.ndim):
        padding = [(1, 1) if a == axis else (0, 0) for a in range(soft.ndim)]
        moved = np.moveaxis(np.pad(soft, padding, mode="edge"), axis, 0)
        soft = np.moveaxis((moved[:-2] + moved[1:-1] + moved[2:]) / 3.0, 0, axis)
    return soft.astype(np.float32)


def make_synthetic_dataset(
    output_dir: PathLike,
    num_cases: int = 6,
    spatial_dims: int = 3,
    size: int = 32,
    num_classes: int = 3,
    seed: int = 0,
    force: bool = False,
) -> str:
    """Write a synthetic dataset of random spheres (discs in 2D) and return the path of its ``datalist.json``.

    Images and labels come from ``monai.data.synthetic.create_test_image_3d/2d`` with
    ``num_seg_classes = num_classes - 1`` (labels ``0..num_classes-1``), 12 objects of radius
    ``size // 16 + 1`` to ``size // 4``, uniform noise up to 0.1, and ``numpy.random.RandomState(seed)``.
    Each case is saved with a 1 mm identity affine as ``imagesTr/case_XXX.nii.gz`` (float32),
    ``labelsTr/case_XXX.nii.gz`` (uint8) and ``softlabelsTr/case_XXX.nii.gz`` (float32, channels last: the one-hot
    label box-filtered over 3 voxels along each axis, edges replicated). ``datalist.json`` has the layout of the
    default dataset (``training``/``validation``/``test`` lists of ``{"image", "label", "soft_label"}``, paths
    relative to ``output_dir``); ``max(1, num_cases // 6)`` cases each go to validation and test.

    Args:
        output_dir: folder to write into (created if absent).
        num_cases: number of cases, at least 3.
        spatial_dims: 2 or 3.
        size: edge length of the square / cube, at least 16.
        num_classes: number of label values including background, at least 2.
        seed: seed of the random state.
        force: overwrite a dataset already written in ``output_dir``.

    Raises:
        FileExistsError: if ``output_dir/datalist.json`` exists and ``force`` is false.
        ValueError: for an unsupported ``spatial_dims``, ``num_cases < 3``, ``size < 16`` or ``num_classes < 2``.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims={spatial_dims}: use 2 or 3.")
    if num_cases < 3:
        raise ValueError(f"num_cases={num_cases}: at least 3 cases are needed (one per split).")
    if size < 16:
        raise ValueError(f"size={size}: use at least 16 voxels per side so the random objects fit.")
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}: use at least 2 (background and one object class).")
    output_dir = Path(output_dir)
    if (output_dir / "datalist.json").exists() and not force:
        raise FileExistsError(
            f"{output_dir / 'datalist.json'} already exists; pass force=True (--force) or choose another folder."
        )
    random_state = np.random.RandomState(seed)
    options = {
        "num_objs": 12,
        "rad_max": size // 4,
        "rad_min": size // 16 + 1,
        "noise_max": 0.1,
        "num_seg_classes": num_classes - 1,
        "random_state": random_state,
    }
    held_out = max(1, num_cases // 6)
    entries = []
    for index in range(num_cases):
        if spatial_dims == 3:
            image, label = create_test_image_3d(size, size, size, **options)
        else:
            image, label = create_test_image_2d(size, size, **options)
        name = f"case_{index:03d}.nii.gz"
        entry = {"image": f"imagesTr/{name}", "label": f"labelsTr/{name}", "soft_label": f"softlabelsTr/{name}"}
        save_nifti(image.astype(np.float32), np.eye(4), output_dir / entry["image"])
        save_nifti(label.astype(np.uint8), np.eye(4), output_dir / entry["label"])
        save_nifti(_soft_labels(label, num_classes), np.eye(4), output_dir / entry["soft_label"])
        entries.append(entry)
    n_train = num_cases - 2 * held_out
    datalist = {
        "name": f"synthetic_{spatial_dims}d",
        "description": "random spheres from monai.data.synthetic, written by monai_nacl.data.make_synthetic_dataset",
        "tensorImageSize": f"{spatial_dims}D",
        "labels": {str(k): "background" if k == 0 else f"class {k}" for k in range(num_classes)},
        "seed": seed,
        "numCases": num_cases,
        "training": entries[:n_train],
        "validation": entries[n_train : n_train + held_out],
        "test": entries[n_train + held_out :],
    }
    path = output_dir / "datalist.json"
    write_json(datalist, path, force=True)
    return str(path)
