"""UncertaintyMapsd / uncertainty_maps: segmentation, max-probability and normalised entropy maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_nacl.handlers import case_name
from monai_nacl.transforms import UncertaintyMapsd, uncertainty_maps


def test_uncertainty_maps_against_numpy_loops() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3, 5, 2))
    probs = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    probs[:, 0, 0, 0] = [1.0, 0.0, 0.0, 0.0]  # 0 log 0 = 0
    seg, conf, ent = uncertainty_maps(torch.from_numpy(probs))
    for idx in np.ndindex(probs.shape[1:]):
        p = probs[(slice(None), *idx)]
        assert int(seg[(0, *idx)]) == int(np.argmax(p))
        assert float(conf[(0, *idx)]) == pytest.approx(p.max(), abs=1e-6)
        h = -sum(q * math.log(q) for q in p if q > 0) / math.log(4)
        assert float(ent[(0, *idx)]) == pytest.approx(h, abs=1e-6)
    assert float(ent[0, 0, 0, 0]) == 0.0
    _, _, raw = uncertainty_maps(torch.full((3, 2), 1 / 3), normalize_entropy=False)
    torch.testing.assert_close(raw, torch.full((1, 2), math.log(3)))


def test_uncertainty_mapsd_keeps_metadata_and_names() -> None:
    probs = MetaTensor(torch.softmax(torch.randn(3, 4, 4, 4), 0), affine=torch.diag(torch.tensor([2.0, 3, 4, 1])))
    probs.meta["filename_or_obj"] = "/data/case_07.nii.gz"
    out = UncertaintyMapsd("pred", seg_key="pred")({"pred": probs})
    assert out["pred"].shape == (1, 4, 4, 4) and out["pred"].dtype == torch.uint8  # ITK writes it (not int64)
    for key in ("pred", "max_prob", "entropy"):
        torch.testing.assert_close(out[key].affine, probs.affine)
    assert case_name(out) == "case_07"
    with pytest.raises(ValueError, match="one probability item"):
        UncertaintyMapsd(["pred", "other"])
    with pytest.raises(ValueError, match="C >= 2"):
        uncertainty_maps(torch.ones(1, 3, 3))
