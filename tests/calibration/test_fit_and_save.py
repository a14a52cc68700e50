"""fit_and_save: network over the validation loader, fit, calibration.json with the fit statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from monai.inferers import SimpleInferer

from monai_nacl.calibration import (
    CALIBRATION_FILE,
    WEIGHTS_FILE,
    ApplyCalibrationd,
    fit_and_save,
    fit_temperature,
)


def _loader(logits: list[torch.Tensor], labels: list[torch.Tensor]) -> list[dict]:
    """Batches whose image is the logits: with an identity network the logits are known exactly."""
    return [{"image": z[None], "label": y[None, None]} for z, y in zip(logits, labels)]


def _reference_nll(z: torch.Tensor, y: torch.Tensor, t: float = 1.0) -> float:
    z = z.double().numpy() / t
    m = z.max(axis=1, keepdims=True)
    logsumexp = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return float(np.mean(logsumexp - z[np.arange(len(y)), y.numpy()]))


def test_temperature_fit_on_the_network_outputs(tmp_path):
    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(3, 6, 5, generator=gen) * 5 for _ in range(3)]
    # the top class is right for about 70 % of the voxels: an optimum inside the temperature range
    labels = [
        torch.where(torch.rand(6, 5, generator=gen) < 0.7, z.argmax(0), torch.randint(0, 3, (6, 5), generator=gen))
        for z in logits
    ]
    record = fit_and_save(
        torch.nn.Identity(), SimpleInferer(), _loader(logits, labels), "ts", tmp_path, checkpoint=None
    )
    assert 0.05 < record["parameters"]["temperature"] < 20.0
    flat = torch.cat([z.reshape(3, -1).T for z in logits])
    flat_labels = torch.cat([y.reshape(-1) for y in labels])
    assert record == json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert math.isclose(record["parameters"]["temperature"], fit_temperature(flat, flat_labels), rel_tol=1e-6)
    fit = record["fit"]
    assert (fit["cases"], fit["voxels"], fit["region"], fit["num_bins"]) == (3, 90, "all", 15)
    assert math.isclose(fit["nll_before"], _reference_nll(flat, flat_labels), rel_tol=1e-9)
    t = record["parameters"]["temperature"]
    assert math.isclose(fit["nll_after"], _reference_nll(flat, flat_labels, t), rel_tol=1e-9)
    assert fit["nll_after"] < fit["nll_before"] and "date" in fit and "warning" not in record
    assert not (tmp_path / WEIGHTS_FILE).exists()


def test_warning_when_the_ece_gets_worse(tmp_path):
    # 100 voxels at confidence 0.99 and 100 at 0.61, each 80 % correct: one bin's ECE is 0 before, but the NLL fit
    # of one temperature moves the mean confidence away from the accuracy
    d = torch.tensor([math.log(0.99 / 0.01)] * 100 + [math.log(0.61 / 0.39)] * 100)
    z = torch.stack([torch.zeros_like(d), d]).reshape(2, 200, 1)
    y = torch.tensor(([1] * 80 + [0] * 20) * 2).reshape(200, 1)
    record = fit_and_save(
        torch.nn.Identity(), SimpleInferer(), _loader([z], [y]), "ts", tmp_path, checkpoint=None, num_bins=1
    )
    assert record["fit"]["ece_before"] < 1e-6 < record["fit"]["ece_after"]
    assert "made the validation ECE worse" in record["warning"] and "--calibration none" in record["warning"]


def test_local_temperature_from_a_checkpoint_applies_through_the_transform(tmp_path):
    torch.manual_seed(0)
    network = torch.nn.Conv2d(1, 2, 3, padding=1)
    torch.save({"model": network.state_dict()}, tmp_path / "model.pt")
    gen = torch.Generator().manual_seed(1)
    images = [torch.randn(1, 12, 10, generator=gen) for _ in range(3)]
    labels = [(img[0] > 0.3).long() for img in images]
    loader = [{"image": img[None], "label": y[None, None]} for img, y in zip(images, labels)]
    fresh = torch.nn.Conv2d(1, 2, 3, padding=1)  # loaded from model.pt by fit_and_save
    record = fit_and_save(
        fresh, SimpleInferer(), loader, "lts", tmp_path, patch_size=(8, 8), patches_per_case=4, steps=10
    )
    assert record["method"] == "lts" and record["weights"] == WEIGHTS_FILE and (tmp_path / WEIGHTS_FILE).is_file()
    assert record["parameters"]["image_channels"] == 1 and record["parameters"]["spatial_dims"] == 2
    assert record["fit"]["nll_after"] <= record["fit"]["nll_before"] + 1e-6
    assert (record["fit"]["cases"], record["fit"]["voxels"]) == (3, 3 * 4 * 64)
    with torch.no_grad():
        logits = network(images[0][None])[0]
    out = ApplyCalibrationd("pred", tmp_path)({"pred": logits, "image": images[0]})
    assert out["pred"].shape == logits.shape and not torch.allclose(out["pred"], logits)
    assert torch.equal(out["pred"].argmax(0), logits.argmax(0))


def _uninformative(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every logit vector seen once with each of the 3 labels: the NLL falls towards T = infinity (uniform)."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(3, 20, generator=gen) * 4
    z = v.repeat(1, 3).reshape(3, 60, 1)
    y = torch.arange(3).repeat_interleave(20).reshape(60, 1)
    return z, y


def test_a_temperature_on_its_bound_is_reported(tmp_path):
    z, y = _uninformative()
    record = fit_and_save(torch.nn.Identity(), SimpleInferer(), _loader([z], [y]), "ts", tmp_path, checkpoint=None)
    assert math.isclose(record["parameters"]["temperature"], 20.0, rel_tol=1e-6)
    assert record["fit"]["at_bound"] == {"T": record["parameters"]["temperature"]}
    assert "lies on its bound (T = 20.0000; bounds 0.05 and 20)" in record["warning"]
    # a wider range moves the clip with it: still on the (new) bound, still said
    wider = fit_and_save(
        torch.nn.Identity(), SimpleInferer(), _loader([z], [y]), "ts", tmp_path, checkpoint=None, bounds=(0.05, 80.0)
    )
    assert math.isclose(wider["parameters"]["temperature"], 80.0, rel_tol=1e-6)
    assert "T = 80.0000" in wider["warning"]


def test_vector_scaling_names_the_temperatures_on_a_bound(tmp_path):
    z, y = _uninformative(1)
    record = fit_and_save(torch.nn.Identity(), SimpleInferer(), _loader([z], [y]), "vector", tmp_path, checkpoint=None)
    at_bound = record["fit"]["at_bound"]
    assert at_bound and set(at_bound) <= {"T[0]", "T[1]", "T[2]"}
    for name, value in at_bound.items():
        assert math.isclose(record["parameters"]["temperatures"][int(name[2])], value, rel_tol=1e-9)
    assert "lies on its bound" in record["warning"]


def test_a_fitted_temperature_inside_the_range_is_not_flagged(tmp_path):
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, 50, 1, generator=gen) * 5
    y = z.argmax(0)  # informative logits: T well inside (0.05, 20)
    y[:10] = (y[:10] + 1) % 3
    record = fit_and_save(torch.nn.Identity(), SimpleInferer(), _loader([z], [y]), "ts", tmp_path, checkpoint=None)
    assert 0.05 < record["parameters"]["temperature"] < 20.0 and "at_bound" not in record["fit"]
