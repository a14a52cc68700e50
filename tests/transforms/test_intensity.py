"""Intensity handling by modality and patch centres from the image's support, against NumPy references."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import FgBgToIndicesd

from monai_nacl.transforms import SupportFgBgToIndicesd, foreground_intensity_statistics, intensity_transforms


def ct_phantom(shape=(24, 24, 8), seed=0):
    """A CT-like volume in HU: padding -3024 outside a circular field of view, air (-1000) around a body of fat
    (-100) holding an organ (+60, label 1) and bone (+700, label 2), with noise (sd 5 HU) inside the field of view."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    r = np.hypot(x - shape[0] / 2 + 0.5, y - shape[1] / 2 + 0.5)
    image = np.full(shape, -3024.0)
    label = np.zeros(shape, dtype=np.uint8)
    inside, body, organ, bone = r < 11.5, r < 8, r < 4, (r >= 6) & (r < 7)
    image[inside] = -1000.0
    image[body] = -100.0
    image[organ] = 60.0
    image[bone] = 700.0
    label[organ] = 1
    label[bone] = 2
    image += rng.normal(0, 5, shape) * (image > -3024)
    return image.astype(np.float32), label, inside[..., None].repeat(shape[2], 2)


def test_background_centres_include_air_and_leave_out_the_padding():
    image, label, inside = ct_phantom()
    data = {"image": torch.as_tensor(image)[None], "label": torch.as_tensor(label)[None]}
    out = SupportFgBgToIndicesd(keys="label")(data)
    flat_label, flat_inside = label.reshape(-1), inside.reshape(-1)
    expected_bg = np.flatnonzero((flat_label == 0) & flat_inside)
    np.testing.assert_array_equal(np.asarray(out["label_bg_indices"]), expected_bg)
    np.testing.assert_array_equal(np.asarray(out["label_fg_indices"]), np.flatnonzero(flat_label > 0))
    air = (image.reshape(-1) < -500) & flat_inside
    assert np.isin(np.flatnonzero(air), np.asarray(out["label_bg_indices"])).all()
    # the old rule, a threshold at 0 HU, never centres a patch on air or fat
    old = FgBgToIndicesd(keys="label", image_key="image", image_threshold=0.0)(data)
    assert not np.isin(np.flatnonzero(air), np.asarray(old["label_bg_indices"])).any()
    assert len(old["label_bg_indices"]) == 0 < len(out["label_bg_indices"])


def test_mr_zero_background_stays_out_and_a_constant_image_falls_back():
    image = np.zeros((6, 6, 4), dtype=np.float32)
    image[1:5, 1:5] = 3.0
    label = np.zeros_like(image, dtype=np.uint8)
    label[2:4, 2:4] = 1
    out = SupportFgBgToIndicesd(keys="label")({"image": image[None], "label": label[None]})
    expected = np.flatnonzero(((image > 0) & (label == 0)).reshape(-1))
    np.testing.assert_array_equal(np.asarray(out["label_bg_indices"]), expected)
    flat = SupportFgBgToIndicesd(keys="label")({"image": np.ones((1, 6, 6, 4)), "label": label[None]})
    np.testing.assert_array_equal(np.asarray(flat["label_bg_indices"]), np.flatnonzero(label.reshape(-1) == 0))


def test_ct_window_rescales_and_clips():
    hu = np.array([-3024, -1000, -175, 0, 37.5, 250, 1200], dtype=np.float32).reshape(1, 7, 1, 1)
    (transform,) = intensity_transforms("ct")
    out = np.asarray(transform({"image": hu})["image"]).reshape(-1)
    expected = np.clip((hu.reshape(-1) + 175) / 425, 0, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    (narrow,) = intensity_transforms("ct", window=[-57, 164])
    np.testing.assert_allclose(np.asarray(narrow({"image": hu})["image"]).reshape(-1),
                               np.clip((hu.reshape(-1) + 57) / 221, 0, 1), rtol=1e-6, atol=1e-7)  # fmt: skip


def test_mr_z_score_is_per_channel_over_the_body():
    rng = np.random.default_rng(1)
    image = rng.normal(5, 2, (2, 8, 8, 4)).astype(np.float32)
    image[:, :2] = 0
    (transform,) = intensity_transforms("mr")
    out = np.asarray(transform({"image": image.copy()})["image"])
    for c in range(2):
        body = image[c] != 0
        expected = (image[c][body] - image[c][body].mean()) / image[c][body].std()
        np.testing.assert_allclose(out[c][body], expected, rtol=1e-4, atol=1e-5)
        assert (out[c][~body] == 0).all()


def test_ct_percentile_statistics_and_transform(tmp_path):
    cases = []
    for index in range(2):
        image, label, _ = ct_phantom(seed=index)
        nib.save(nib.Nifti1Image(image, np.eye(4)), tmp_path / f"ct{index}.nii.gz")
        nib.save(nib.Nifti1Image(label, np.eye(4)), tmp_path / f"ct{index}_seg.nii.gz")
        cases.append({"image": str(tmp_path / f"ct{index}.nii.gz"), "label": str(tmp_path / f"ct{index}_seg.nii.gz")})
    stats = foreground_intensity_statistics(cases)
    pooled = np.concatenate(
        [np.asarray(nib.load(c["image"]).dataobj)[np.asarray(nib.load(c["label"]).dataobj) > 0] for c in cases]
    ).astype(np.float64)
    low, high = np.percentile(pooled, [0.5, 99.5])
    assert stats["voxels"] == pooled.size and stats["cases"] == 2  # fewer than 10000 per case: every voxel
    for key, value in {"low": low, "high": high, "mean": pooled.mean(), "std": pooled.std()}.items():
        assert stats[key] == pytest.approx(value, rel=1e-9, abs=1e-9)
    hu = np.array([-3024, -1000, low - 1, 60, high + 500], dtype=np.float32).reshape(1, 5, 1, 1)
    data = {"image": hu.copy()}
    for transform in intensity_transforms("ct_percentile", statistics=stats):
        data = transform(data)
    expected = (np.clip(hu.reshape(-1).astype(np.float64), low, high) - stats["mean"]) / stats["std"]
    np.testing.assert_allclose(np.asarray(data["image"]).reshape(-1), expected, rtol=1e-5, atol=1e-5)
    # sampling caps each case's share, seeded
    capped = foreground_intensity_statistics(cases, samples_per_case=50)
    assert capped["voxels"] == 100 and capped == foreground_intensity_statistics(cases, samples_per_case=50)


def test_bad_settings_name_the_value_and_the_fix():
    with pytest.raises(ValueError, match=r"intensity 'CT' is not one of .*--intensity mr"):
        intensity_transforms("CT")
    with pytest.raises(ValueError, match=r"need finite low < high"):
        intensity_transforms("ct", window=[250, -175])
    with pytest.raises(ValueError, match=r"two numbers \[low, high\]"):
        intensity_transforms("ct", window=[1])
    with pytest.raises(ValueError, match="foreground_intensity_statistics"):
        intensity_transforms("ct_percentile")
    assert intensity_transforms("none") == []
