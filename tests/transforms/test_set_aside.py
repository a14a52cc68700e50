"""SetAsided / RestoreAsided keep a request's `image_*` strings (MONAI Label's `image_path`) out of Spacingd's way;
label_dtype gives label maps a type ITK writes."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Spacingd

from monai_nacl.transforms.aside import ASIDE_KEY, RestoreAsided, SetAsided
from monai_nacl.transforms.uncertainty import label_dtype, uncertainty_maps


def test_strings_set_aside_around_spacing_and_restored() -> None:
    image = MetaTensor(torch.rand(1, 8, 8, 8), affine=torch.eye(4), meta={"filename_or_obj": "case.nii.gz"})
    meta = {"filename_or_obj": "case.nii.gz"}
    data = {"image": image, "image_path": "/data/case.nii.gz", "image_meta_dict": meta, "device": "cpu"}
    moved = SetAsided("image")(data)
    assert "image_path" not in moved and moved[ASIDE_KEY] == {"image_path": "/data/case.nii.gz"}
    assert moved["image_meta_dict"] is meta and moved["device"] == "cpu"  # dictionaries and other keys stay
    out = Compose([SetAsided("image"), Spacingd("image", pixdim=[2.0] * 3), RestoreAsided()])(data)
    assert out["image_path"] == "/data/case.nii.gz" and ASIDE_KEY not in out
    assert tuple(out["image"].shape) == (1, 4, 4, 4)
    assert RestoreAsided()({"x": 1}) == {"x": 1}


def test_label_maps_have_a_type_itk_writes() -> None:
    assert label_dtype(3) == label_dtype(256) == torch.uint8 and label_dtype(257) == torch.int32
    probs = torch.softmax(torch.randn(300, 2, 2), 0)
    seg, _, _ = uncertainty_maps(probs)
    assert seg.dtype == torch.int32 and torch.equal(seg.long(), probs.argmax(0, keepdim=True))
    seg, _, _ = uncertainty_maps(torch.softmax(torch.randn(3, 4, 4), 0))
    assert seg.dtype == torch.uint8 and np.asarray(seg).max() < 3
