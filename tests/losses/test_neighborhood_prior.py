"""neighborhood_prior and svls_kernel against dense, offset-by-offset references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from loss_reference import dense_kernel, one_hot_np, prior_reference
from monai.networks.layers import GaussianFilter

from monai_nacl.losses import neighborhood_prior, svls_kernel

SHAPES = {1: (2, 9), 2: (2, 6, 7), 3: (2, 5, 4, 6)}


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kernel_ops", ["mean", "gaussian", "svls"])
@pytest.mark.parametrize("border", ["zeros", "background", "replicate", "normalized"])
def test_prior_matches_dense_reference(dims, kernel_ops, border):
    rng = np.random.default_rng(dims)
    labels = rng.integers(0, 3, SHAPES[dims])
    expected = prior_reference(labels, 3, 3, kernel_ops, 1.0, border)
    got = neighborhood_prior(torch.from_numpy(labels)[:, None], 3, 3, kernel_ops, 1.0, border)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("kernel_size,border", [(5, "zeros"), (5, "background"), (1, "replicate"), (5, "normalized")])
def test_prior_other_kernel_sizes(kernel_size, border):
    labels = np.random.default_rng(1).integers(0, 4, (1, 7, 8))
    for ops, sigma in (("mean", 1.0), ("svls", 0.7), ("gaussian", 0.5)):
        expected = prior_reference(labels, 4, kernel_size, ops, sigma, border)
        got = neighborhood_prior(torch.from_numpy(labels), 4, kernel_size, ops, sigma, border)
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_gaussian_matches_monai_filter_and_large_window_counts():
    labels = torch.randint(0, 3, (2, 6, 5, 7), generator=torch.Generator().manual_seed(0))
    onehot = torch.from_numpy(one_hot_np(labels.numpy(), 3)).float()
    np.testing.assert_allclose(
        neighborhood_prior(labels, 3, kernel_ops="gaussian", sigma=0.8).numpy(),
        GaussianFilter(3, sigma=0.8)(onehot).numpy(),
        atol=1e-6,
    )
    # 7^3 = 343 voxels per window overflows uint8 counts: must still be exact
    big = torch.zeros(1, 1, 7, 7, 7, dtype=torch.long)
    assert neighborhood_prior(big, 2, kernel_size=7)[0, 0, 3, 3, 3].item() == pytest.approx(1.0, abs=1e-6)


def test_soft_target_and_label_target_agree():
    labels = torch.randint(0, 4, (2, 1, 6, 6), generator=torch.Generator().manual_seed(2))
    onehot = torch.from_numpy(one_hot_np(labels[:, 0].numpy(), 4)).float()
    for border in ("zeros", "background", "replicate", "normalized"):
        torch.testing.assert_close(
            neighborhood_prior(onehot, 4, border=border), neighborhood_prior(labels, 4, border=border)
        )
    assert torch.equal(onehot, torch.from_numpy(one_hot_np(labels[:, 0].numpy(), 4)).float())  # input untouched


@pytest.mark.parametrize("border", ["zeros", "background", "replicate", "normalized"])
def test_ignore_index_voxels_count_for_no_class(border):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (2, 6, 5))
    unknown = rng.random((2, 6, 5)) < 0.3
    expected = prior_reference(labels, 3, 3, "mean", 1.0, border, unknown=unknown)
    got = neighborhood_prior(torch.from_numpy(np.where(unknown, 255, labels)), 3, border=border, ignore_index=255)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_border_conventions_on_a_tiny_example():
    labels = torch.tensor([[[1, 1, 0]]])
    assert neighborhood_prior(labels, 2, border="zeros")[0, 1].tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3])
    assert neighborhood_prior(labels, 2, border="background")[0, 0].tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    assert neighborhood_prior(labels, 2, border="replicate")[0, 1].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert neighborhood_prior(labels, 2, border="normalized")[0, 1].tolist() == pytest.approx([1.0, 2 / 3, 1 / 2])


def test_svls_kernel_published_weights():
    k2, k3 = svls_kernel(2), svls_kernel(3)
    assert k2[1, 1].item() == pytest.approx(0.5, abs=1e-6)
    assert (k2[0, 1].item(), k2[0, 0].item()) == pytest.approx((0.0778, 0.0472), abs=5e-5)
    assert (k3[0, 1, 1].item(), k3[0, 0, 1].item(), k3[0, 0, 0].item()) == pytest.approx(
        (0.0308, 0.0187, 0.0113), abs=5e-5
    )
    for dims, size, sigma in ((1, 3, 1.0), (2, 5, 1.5), (3, 3, 0.5)):
        kernel = svls_kernel(dims, size, sigma)
        assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(kernel.numpy(), dense_kernel("svls", size, sigma, dims), atol=1e-7)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 4},
        {"kernel_size": 0},
        {"kernel_ops": "median"},
        {"border": "reflect"},
        {"sigma": 0.0, "kernel_ops": "svls"},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        neighborhood_prior(torch.zeros(1, 1, 4, 4, dtype=torch.long), 2, **kwargs)


def test_bad_labels():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        neighborhood_prior(torch.full((1, 1, 4, 4), 2), 2)
    with pytest.raises(ValueError, match="non-integer"):
        neighborhood_prior(torch.full((1, 1, 4, 4), 0.5), 2)
    with pytest.raises(ValueError, match="label map"):
        neighborhood_prior(torch.zeros(1, 3, 4, 4), 2)
