"""Dictionary transform computing the NACL neighbourhood prior once per sample, in the data loader."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type, convert_to_tensor

from monai_nacl.losses.neighborhood import (
    BORDER_MODES,
    KERNEL_OPS,
    check_choice,
    check_kernel_size,
    neighborhood_prior,
)

__all__ = ["NeighborhoodPriord"]


class NeighborhoodPriord(MapTransform):
    """Add the neighbourhood class proportions of a label map to the data dictionary.

    For each key, reads a channel-first label map ``(1, *spatial)`` (or one-hot ``(num_classes, *spatial)``)
    and stores :func:`monai_nacl.losses.neighborhood_prior` of it, ``(num_classes, *spatial)`` float32, under
    the matching ``prior_key``. After collation the batch's prior can go straight to the loss:
    ``loss(logits, batch["label"], prior=batch["prior"])``. Use the loss's own settings here
    (``NeighborAwareLoss``: its ``kernel_size``/``kernel_ops``/``sigma``/``border``; SVLS:
    ``kernel_ops="svls", border="replicate"``). Place it after spatial augmentation and cropping, or
    crop the prior together with the label (then the crop edge sees the true neighbours).

    Args:
        keys: label key(s).
        num_classes: number of classes, background included.
        prior_key: output key, or one per key (default ``"prior"``).
        kernel_size, kernel_ops, sigma, border, ignore_index: as :func:`~monai_nacl.losses.neighborhood_prior`.
        allow_missing_keys: skip absent keys instead of raising.

    Example:
        >>> t = NeighborhoodPriord("label", num_classes=3)
        >>> t({"label": torch.randint(0, 3, (1, 8, 8, 8))})["prior"].shape
        torch.Size([3, 8, 8, 8])
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_classes: int,
        prior_key: str | Sequence[str] = "prior",
        kernel_size: int = 3,
        kernel_ops: str = "mean",
        sigma: float = 1.0,
        border: str = "zeros",
        ignore_index: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        prior_keys = [prior_key] if isinstance(prior_key, str) else list(prior_key)
        if len(prior_keys) != len(self.keys):
            raise ValueError(f"give one prior_key per key: keys {list(self.keys)}, prior_key {prior_keys}.")
        check_kernel_size(kernel_size)
        check_choice("kernel_ops", kernel_ops, KERNEL_OPS)
        check_choice("border", border, BORDER_MODES)
        self.prior_keys = prior_keys
        self.num_classes = num_classes
        self.kernel_size = kernel_size
        self.kernel_ops = kernel_ops
        self.sigma = sigma
        self.border = border
        self.ignore_index = ignore_index

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key, prior_key in self.key_iterator(d, self.prior_keys):
            label = d[key]
            tensor = convert_to_tensor(label, dtype=torch.float32, track_meta=False)
            if tensor.ndim < 2 or tensor.shape[0] not in (1, self.num_classes):
                raise ValueError(
                    f"'{key}' must be a channel-first label map (1, *spatial) or one-hot ({self.num_classes}, "
                    f"*spatial), got shape {tuple(tensor.shape)}; add EnsureChannelFirstd before this transform."
                )
            prior = neighborhood_prior(
                tensor.unsqueeze(0),
                self.num_classes,
                self.kernel_size,
                self.kernel_ops,
                self.sigma,
                self.border,
                self.ignore_index,
            )[0]
            d[prior_key] = convert_to_dst_type(prior, label, dtype=torch.float32)[0]
        return d
