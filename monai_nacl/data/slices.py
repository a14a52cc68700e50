"""Slice-wise training data: every selected 2D axial slice of a list of 3D volumes is one item.

This is the authors' data regime (Murugesan et al., code Bala93/MarginLoss): the volumes are preprocessed once, their
slices are stored whole in-plane (a fixed centre crop), there is no augmentation, and an epoch is a shuffled pass
over every stored slice (``DataLoader(shuffle=True)``, or a ``DistributedSampler`` across ranks).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.transforms import apply_transform
from monai.utils import convert_to_tensor

__all__ = ["SliceDataset", "select_slices"]

SLICE_CHOICES = ("all", "foreground")


def select_slices(foreground: Sequence[bool], slices: str | int) -> list[int]:
    """Indices of the slices to keep from one volume, given which of its slices hold foreground.

    ``slices`` is ``"all"`` (every slice), ``"foreground"`` (the slices with a voxel ``label > 0``) or an int ``n``:
    ``n`` foreground slices evenly spread, the middle one of each of ``n`` equal runs of the ``F`` foreground
    slices, ``fg[floor((i + 1/2) F / n)]`` for ``i = 0 .. n-1`` (distinct since ``n <= F``; the first and last
    foreground slices, which hold the least foreground, are picked only when ``n = F``).

    Args:
        foreground: one flag per slice, True where the slice holds foreground.
        slices: ``"all"``, ``"foreground"`` or a positive int.

    Returns:
        the kept indices in increasing order; fewer than ``n`` (possibly none) when the volume has fewer foreground
        slices, which :class:`SliceDataset` reports with the case's name.

    Example:
        >>> select_slices([False, True, True, True, True, False], 2)
        [2, 4]
    """
    _check_slices(slices)
    if slices == "all":
        return list(range(len(foreground)))
    fg = [z for z, flag in enumerate(foreground) if flag]
    if slices == "foreground" or len(fg) < slices:
        return fg
    return [fg[int((i + 0.5) * len(fg) / slices)] for i in range(slices)]


def _check_slices(slices: str | int) -> None:
    if isinstance(slices, bool) or not (slices in SLICE_CHOICES or isinstance(slices, int) and slices > 0):
        raise ValueError(f"slices={slices!r}: use 'all', 'foreground' or a positive number of slices per volume.")


def _centre_pad_or_crop(x: torch.Tensor, spatial_size: Sequence[int]) -> torch.Tensor:
    """Crop or zero-pad the last two axes of ``x`` to ``spatial_size``, centred: a crop keeps ``[s : s + size]``
    with ``s = (n - size) // 2``, a pad adds ``(size - n) // 2`` before and the rest after."""
    for axis, size in zip((-2, -1), spatial_size):
        n = x.shape[axis]
        if n > size:
            x = x.narrow(axis, (n - size) // 2, size)
        elif n < size:
            before = (size - n) // 2
            pad = [0, 0] * 2
            pad[2 * (-1 - axis)] = before
            pad[2 * (-1 - axis) + 1] = size - n - before
            x = torch.nn.functional.pad(x, pad)
    return x


def _case_name(item: Mapping[str, Any], index: int, image_key: str) -> str:
    image = item.get(image_key)
    return f"volume {index} ({os.path.basename(image)})" if isinstance(image, (str, os.PathLike)) else f"volume {index}"


class SliceDataset(torch.utils.data.Dataset):
    """The axial slices of 3D volumes as 2D training items, extracted once into memory.

    ``transform`` (deterministic: load, orient, resample, intensity) runs once per volume in ``__init__``; it must
    return ``image`` ``(C, X, Y, Z)`` and ``label`` ``(1, X, Y, Z)`` with Z the last spatial axis (superior after
    ``Orientationd(axcodes="RAS")``). The selected slices ``[..., z]`` are cropped or zero-padded in-plane, centred,
    to ``spatial_size`` (the network's strides must divide it) and kept as one tensor, so an item is two views:
    ``{"image": (C, H, W), "label": (1, H, W)}`` (plain float32 tensors). An epoch over all slices in shuffled order
    is ``DataLoader(dataset, shuffle=True)``; across ranks, ``DistributedSampler(dataset)`` (every rank extracts
    the same slices, in the same order, and the sampler shares them out).

    Args:
        data: the volumes, e.g. a decathlon datalist's ``training`` list of ``{"image": path, "label": path}``.
        transform: applied to each volume dict once; deterministic (a random crop would be frozen at its first draw).
        spatial_size: ``(H, W)`` of every slice.
        slices: which slices of each volume: ``"all"`` (default), ``"foreground"`` (those with a voxel
            ``label > 0``), or an int ``n``: ``n`` foreground slices per volume, evenly spread (:func:`select_slices`).
        num_volumes: use only the first ``num_volumes`` volumes of ``data``; None (default) uses all.
        image_key: key of the image in the transformed dict, default ``"image"``.
        label_key: key of the label in the transformed dict, default ``"label"``.

    Attributes:
        slice_index: ``(volume, z)`` of each item, in item order: volume ``v`` of ``data``, slice ``z`` of its last
            axis.

    Raises:
        ValueError: for an empty ``data``, a bad ``spatial_size``, ``slices`` or ``num_volumes``, a transformed volume
            whose image or label has the wrong shape, or volumes with fewer foreground slices than ``slices`` asks
            for (the message names them all).
        TypeError: if ``transform`` returns anything but one dict.
        KeyError: if the transformed dict lacks ``image_key`` or ``label_key``.

    Example:
        >>> from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged  # doctest: +SKIP
        >>> load = Compose([LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"])])  # doctest: +SKIP
        >>> ds = SliceDataset(datalist, load, spatial_size=(96, 96), slices="foreground")  # doctest: +SKIP
        >>> ds[0]["image"].shape, len(ds)  # doctest: +SKIP
        (torch.Size([1, 96, 96]), 412)
    """

    def __init__(
        self,
        data: Sequence[Mapping[str, Any]],
        transform: Callable[[dict[str, Any]], Mapping[str, Any]] | None,
        spatial_size: Sequence[int],
        slices: str | int = "all",
        num_volumes: int | None = None,
        image_key: str = "image",
        label_key: str = "label",
    ) -> None:
        _check_slices(slices)
        spatial_size = tuple(spatial_size)
        if len(spatial_size) != 2 or not all(isinstance(s, int) and s > 0 for s in spatial_size):
            raise ValueError(f"spatial_size={list(spatial_size)}: give two positive ints (H, W) for the slices.")
        if len(data) == 0:
            raise ValueError("data is empty: give at least one volume (e.g. the datalist's 'training' list).")
        if num_volumes is not None:
            if isinstance(num_volumes, bool) or not isinstance(num_volumes, int) or num_volumes < 1:
                raise ValueError(f"num_volumes={num_volumes!r}: give a positive int, or None for all volumes.")
            if num_volumes > len(data):
                raise ValueError(
                    f"num_volumes={num_volumes} but data has only {len(data)} volumes: "
                    f"use num_volumes <= {len(data)}, or None for all."
                )
            data = data[:num_volumes]
        self.spatial_size, self.slices = spatial_size, slices
        self.image_key, self.label_key = image_key, label_key
        self.slice_index: list[tuple[int, int]] = []
        images, labels, counts, short = [], [], [], []
        for v, item in enumerate(data):
            name, image, label, foreground = self._load(item, transform, v)
            chosen = select_slices(foreground, slices)
            counts.append(sum(foreground))
            if slices != "all" and len(chosen) < (1 if slices == "foreground" else slices):
                short.append(f"{name}: {counts[-1]} of {len(foreground)}")
                continue
            picked = torch.tensor(chosen, dtype=torch.long)
            images.append(_centre_pad_or_crop(image[..., picked].movedim(-1, 0), spatial_size).contiguous())
            labels.append(_centre_pad_or_crop(label[..., picked].movedim(-1, 0), spatial_size).contiguous())
            self.slice_index += [(v, z) for z in chosen]
        if short:
            wanted = "at least one axial slice" if slices == "foreground" else f"{slices} axial slices"
            fix = f"slices <= {min(counts)}, " if min(counts) > 0 else ""
            raise ValueError(
                f"slices={slices!r} asks for {wanted} with foreground (label > 0) per volume; these volumes have "
                f"fewer (foreground slices of all): {'; '.join(short)}. Use {fix}slices='all', or leave those "
                "volumes out of the data."
            )
        self.images = torch.cat(images)
        self.labels = torch.cat(labels)

    def _load(
        self, item: Mapping[str, Any], transform: Callable | None, v: int
    ) -> tuple[str, torch.Tensor, torch.Tensor, list[bool]]:
        """Transform volume ``v``: its name, image ``(C, X, Y, Z)``, label ``(1, X, Y, Z)`` and which of its Z
        slices hold foreground."""
        name = _case_name(item, v, self.image_key)
        out = dict(item) if transform is None else apply_transform(transform, dict(item))
        if not isinstance(out, Mapping):
            raise TypeError(
                f"{name}: the transform returned {type(out).__name__}, not one dict; give a transform that maps one "
                "volume to one dict (no random crop with num_samples)."
            )
        missing = [k for k in (self.image_key, self.label_key) if k not in out]
        if missing:
            raise KeyError(f"{name}: no {missing} after the transform; its keys: {sorted(out)}.")
        image = convert_to_tensor(out[self.image_key], dtype=torch.float32, track_meta=False)
        label = convert_to_tensor(out[self.label_key], dtype=torch.float32, track_meta=False)
        if image.ndim != 4 or label.ndim != 4 or label.shape[0] != 1 or image.shape[1:] != label.shape[1:]:
            raise ValueError(
                f"{name}: image {tuple(image.shape)} and label {tuple(label.shape)} after the transform; expected "
                "(C, X, Y, Z) and (1, X, Y, Z) with the same spatial shape (is EnsureChannelFirstd in the transform?)."
            )
        return name, image, label, (label > 0).flatten(0, -2).any(0).tolist()

    def __len__(self) -> int:
        return len(self.slice_index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {self.image_key: self.images[index], self.label_key: self.labels[index]}
