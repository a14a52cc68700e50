"""Voxel-wise uncertainty maps from softmax probabilities, for viewing a model's (mis)calibration in an image viewer."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["UncertaintyMapsd", "label_dtype", "uncertainty_maps"]


def label_dtype(num_classes: int) -> torch.dtype:
    """The smallest integer type of a label map of ``num_classes`` classes that image writers take: ``uint8`` up to
    256 classes, else ``int32``. ITK, which MONAI Label writes its labels with, has no 64-bit integer images
    (``itk.Image is not wrapped for input type itk.SL``), so an ``int64`` label map cannot be written there."""
    return torch.uint8 if num_classes <= 256 else torch.int32


def uncertainty_maps(
    probs: torch.Tensor, normalize_entropy: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Segmentation, max-probability and entropy maps of one channel-first probability volume.

    With ``p`` the class probabilities of a voxel (channel axis), returns

    - ``seg = argmax_c p_c``, the predicted label, of type :func:`label_dtype` (``uint8`` up to 256 classes);
    - ``max_prob = max_c p_c``, the confidence that the expected calibration error bins;
    - ``entropy = -sum_c p_c log p_c`` (natural log, ``0 log 0 = 0``), divided by ``log C`` when
      ``normalize_entropy`` so that it lies in ``[0, 1]`` whatever the number of classes.

    Args:
        probs: softmax probabilities ``(C, *spatial)``, ``C >= 2``; a ``MetaTensor`` keeps its metadata.
        normalize_entropy: divide the entropy by its maximum ``log C``.

    Returns:
        ``(seg, max_prob, entropy)``, each ``(1, *spatial)``; ``seg`` is ``uint8`` (``int32`` above 256 classes),
        the others float.

    Example:
        >>> seg, conf, ent = uncertainty_maps(torch.tensor([[0.5, 0.9], [0.5, 0.1]]).view(2, 2, 1))
        >>> seg.flatten().tolist(), conf.flatten().tolist()
        ([0, 0], [0.5, 0.8999999761581543])
    """
    if probs.ndim < 2 or probs.shape[0] < 2:
        raise ValueError(
            f"uncertainty_maps expects channel-first softmax probabilities (C, *spatial) with C >= 2, got shape "
            f"{tuple(probs.shape)}; apply Activationsd(softmax=True) to the network output first."
        )
    probs = probs.float()
    max_prob, seg = probs.max(dim=0, keepdim=True)
    entropy = torch.special.entr(probs).sum(dim=0, keepdim=True)
    if normalize_entropy:
        entropy = entropy / math.log(probs.shape[0])
    return seg.to(label_dtype(probs.shape[0])), max_prob, entropy


class UncertaintyMapsd(MapTransform):
    """Add the predicted segmentation, the max-probability map and the entropy map of a probability item.

    See :func:`uncertainty_maps` for the definitions. The new items keep the source item's metadata (affine,
    file name), so ``SaveImaged`` writes them in the same space as the probabilities, e.g. after ``Invertd``.

    Args:
        keys: the one probability item, typically ``"pred"`` after ``Activationsd(softmax=True)``.
        seg_key: name of the new segmentation item.
        max_prob_key: name of the new max-probability item.
        entropy_key: name of the new entropy item.
        normalize_entropy: divide the entropy by ``log C`` so it lies in ``[0, 1]``.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        seg_key: str = "seg",
        max_prob_key: str = "max_prob",
        entropy_key: str = "entropy",
        normalize_entropy: bool = True,
    ) -> None:
        super().__init__(keys)
        if len(self.keys) != 1:
            raise ValueError(
                f"UncertaintyMapsd derives its maps from one probability item, got keys={self.keys}; "
                "use one UncertaintyMapsd per item with distinct output names."
            )
        self.output_keys = (seg_key, max_prob_key, entropy_key)
        self.normalize_entropy = normalize_entropy

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        maps = uncertainty_maps(d[self.keys[0]], normalize_entropy=self.normalize_entropy)
        d.update(zip(self.output_keys, maps))
        return d
