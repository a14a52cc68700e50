"""NeighborhoodPriord: the prior computed in the data loader equals the loss's own, through a DataLoader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd

from monai_nacl.losses import (
    NeighborAwareLoss,
    SpatialLabelSmoothingLoss,
    neighborhood_prior,
)
from monai_nacl.transforms import NeighborhoodPriord


def test_prior_through_a_data_loader_feeds_the_loss():
    rng = np.random.default_rng(0)
    data = [{"label": rng.integers(0, 3, (6, 5, 4))} for _ in range(3)]
    nacl = Compose(
        [EnsureChannelFirstd("label", channel_dim="no_channel"), NeighborhoodPriord("label", 3, border="background")]
    )
    svls = NeighborhoodPriord("label", 3, prior_key="svls", kernel_ops="svls", border="replicate")
    batch = next(iter(DataLoader(Dataset(data, Compose([nacl, svls])), batch_size=3)))
    assert batch["prior"].shape == (3, 3, 6, 5, 4) and batch["prior"].dtype == torch.float32
    labels = torch.as_tensor(np.stack([d["label"] for d in data]))
    np.testing.assert_allclose(
        batch["prior"].numpy(), neighborhood_prior(labels[:, None], 3, border="background").numpy(), atol=1e-7
    )
    logits = torch.randn(3, 3, 6, 5, 4)
    target = batch["label"]  # MetaTensors straight from the loader
    loss = NeighborAwareLoss(border="background")
    assert loss(logits, target, prior=batch["prior"]).item() == pytest.approx(loss(logits, labels).item(), rel=1e-6)
    svls_loss = SpatialLabelSmoothingLoss()
    assert svls_loss(logits, target, prior=batch["svls"]).item() == pytest.approx(
        svls_loss(logits, labels).item(), rel=1e-6
    )


def test_keeps_metadata_and_accepts_one_hot():
    label = MetaTensor(torch.randint(0, 2, (1, 5, 5)), affine=torch.diag(torch.tensor([2.0, 2.0, 1.0, 1.0])))
    out = NeighborhoodPriord("label", num_classes=2, border="normalized")({"label": label})
    assert isinstance(out["prior"], MetaTensor) and torch.equal(out["prior"].affine, label.affine)
    onehot = torch.cat([label == 0, label == 1]).as_tensor()
    again = NeighborhoodPriord("label", num_classes=2, border="normalized")({"label": onehot})
    np.testing.assert_allclose(again["prior"].numpy(), out["prior"].as_tensor().numpy(), atol=1e-7)
    np.testing.assert_allclose(out["prior"].sum(0).numpy(), 1.0, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="channel-first"):
        NeighborhoodPriord("label", 3)({"label": torch.zeros(2, 4, 4)})
    with pytest.raises(ValueError, match="prior_key"):
        NeighborhoodPriord(["a", "b"], 3, prior_key="prior")
    with pytest.raises(ValueError, match="kernel_size"):
        NeighborhoodPriord("label", 3, kernel_size=2)
