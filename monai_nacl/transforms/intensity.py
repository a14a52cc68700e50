"""Intensity handling by modality, offered by name (``--intensity ct``), and patch centres from the image's support.

The bundles' ``intensity`` setting picks one of :data:`INTENSITY_MODES`; what it builds is recorded in ``task.json``
like any intensity transform, so evaluation, calibration and inference reuse it (the numbers a dataset-wide mode
computed included):

- ``mr`` (the default): per-image z-score over the non-zero (body) voxels, channel by channel
  (``NormalizeIntensityd(nonzero=True, channel_wise=True)``), MONAI's MR convention.
- ``ct``: Hounsfield units windowed to ``window`` (default ``[-175, 250]``, the abdominal soft-tissue window of
  MONAI's BTCV bundles) and rescaled to ``[0, 1]``, clipped (``ScaleIntensityRanged``), as the model zoo's CT bundles.
- ``ct_percentile``: nnU-Net's CT normalisation: clip to the 0.5 and 99.5 percentiles of the foreground voxels
  (label > 0) of the training set, then z-score with that foreground's mean and standard deviation, one set of
  numbers for the dataset (:func:`foreground_intensity_statistics`).
- ``none``: the intensities as stored (data normalised beforehand).

Patch centres: :class:`SupportFgBgToIndicesd` draws background centres from the image's support, the voxels above the
image's minimum (the scanner's padding outside the field of view, or MR's zero background, is left out), instead of
``FgBgToIndicesd``'s fixed ``image_threshold``: a threshold at 0 on CT keeps only tissue above water (HU > 0) and never
centres a patch on air, lung or fat.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import (
    FgBgToIndices,
    MapTransform,
    NormalizeIntensityd,
    ScaleIntensityRanged,
    ThresholdIntensityd,
)

__all__ = [
    "DEFAULT_CT_WINDOW",
    "INTENSITY_MODES",
    "SupportFgBgToIndicesd",
    "foreground_intensity_statistics",
    "intensity_transforms",
]

INTENSITY_MODES = ("mr", "ct", "ct_percentile", "none")
# the abdominal soft-tissue window of MONAI's BTCV bundles (swin_unetr_btcv_segmentation: a_min -175, a_max 250)
DEFAULT_CT_WINDOW = (-175.0, 250.0)


def intensity_transforms(
    mode: str,
    keys: KeysCollection = "image",
    window: Sequence[float] | None = None,
    statistics: Mapping[str, float] | None = None,
) -> list[MapTransform]:
    """The intensity transforms of ``mode`` (one of :data:`INTENSITY_MODES`), for a bundle's ``intensity_transforms``.

    Args:
        mode: ``mr``, ``ct``, ``ct_percentile`` or ``none`` (see the module's documentation).
        keys: the image key(s).
        window: ``ct``: ``[low, high]`` in HU mapped to ``[0, 1]``; default :data:`DEFAULT_CT_WINDOW`.
        statistics: ``ct_percentile``: ``{"low", "high", "mean", "std"}`` of the training foreground
            (:func:`foreground_intensity_statistics`).

    Raises:
        ValueError: for an unknown mode, a window that is not two increasing numbers, or missing statistics, each
            naming the value and the fix.

    Example:
        >>> [type(t).__name__ for t in intensity_transforms("ct", window=[-100, 200])]
        ['ScaleIntensityRanged']
    """
    if mode not in INTENSITY_MODES:
        raise ValueError(
            f"intensity {mode!r} is not one of {list(INTENSITY_MODES)}: use --intensity mr (MR, per-image z-score), "
            "ct (CT in HU, windowed) or ct_percentile (CT, nnU-Net's dataset percentiles), or none."
        )
    if mode == "none":
        return []
    if mode == "mr":
        return [NormalizeIntensityd(keys=keys, nonzero=True, channel_wise=True)]
    if mode == "ct":
        low, high = _window(DEFAULT_CT_WINDOW if window is None else window)
        return [ScaleIntensityRanged(keys=keys, a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)]
    needed = ("low", "high", "mean", "std")
    if statistics is None or any(k not in statistics for k in needed):
        raise ValueError(
            f"intensity 'ct_percentile' needs the training foreground's statistics {list(needed)}, got {statistics!r}: "
            "pass foreground_intensity_statistics(datalist) (the bundles do this themselves)."
        )
    low, high = float(statistics["low"]), float(statistics["high"])
    std = float(statistics["std"])
    if not np.isfinite([low, high, std, float(statistics["mean"])]).all() or std <= 0:
        raise ValueError(f"foreground statistics {dict(statistics)} are not usable (non-finite, or std <= 0).")
    return [
        # clip to the foreground percentiles: two thresholds, each keeping one side
        ThresholdIntensityd(keys=keys, threshold=low, above=True, cval=low),
        ThresholdIntensityd(keys=keys, threshold=high, above=False, cval=high),
        NormalizeIntensityd(keys=keys, subtrahend=float(statistics["mean"]), divisor=std),
    ]


def _window(window: Sequence[float]) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in window)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"intensity window {window!r} must be two numbers [low, high] in HU, e.g. --intensity_window [-175,250]."
        ) from error
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"intensity window {window!r}: need finite low < high in HU, e.g. [-175, 250].")
    return low, high


def foreground_intensity_statistics(
    cases: Sequence[Mapping[str, Any]],
    image_key: str = "image",
    label_key: str = "label",
    percentiles: tuple[float, float] = (0.5, 99.5),
    samples_per_case: int = 10_000,
    seed: int = 0,
) -> dict[str, float]:
    """nnU-Net's CT statistics: percentiles, mean and std of the foreground (label > 0) voxels of ``cases``.

    Like nnU-Net, at most ``samples_per_case`` foreground voxels are drawn from each case (uniformly, seeded), so
    that large cases do not dominate and the memory stays bounded; the statistics are those of the pooled samples.

    Args:
        cases: datalist entries with absolute (or working-directory relative) ``image`` and ``label`` paths, e.g.
            ``monai.data.load_decathlon_datalist(datalist, True, "training")``. A multi-file image uses its first
            file (CT has one channel).
        image_key: the image key.
        label_key: the label key.
        percentiles: the clipping percentiles.
        samples_per_case: foreground voxels drawn per case.
        seed: seed of the draw.

    Returns:
        ``{"low", "high", "mean", "std", "voxels", "cases"}``.

    Raises:
        ValueError: when no case holds a foreground voxel, or an image and its label differ in shape.
    """
    import nibabel as nib

    rng = np.random.default_rng(seed)
    pooled = []
    for case in cases:
        image_file = case[image_key]
        image_file = image_file[0] if isinstance(image_file, (list, tuple)) else image_file
        image = np.asarray(nib.load(str(image_file)).dataobj, dtype=np.float64)
        label = np.asarray(nib.load(str(case[label_key])).dataobj)
        if image.shape[: label.ndim] != label.shape:
            raise ValueError(
                f"{image_file}: image shape {image.shape} differs from its label {case[label_key]} {label.shape}; "
                "run python -m monai_nacl.data check on the datalist."
            )
        values = image[label > 0]
        if values.size > samples_per_case:
            values = rng.choice(values, samples_per_case, replace=False)
        pooled.append(values)
    values = np.concatenate(pooled) if pooled else np.empty(0)
    if values.size == 0:
        raise ValueError(
            f"no foreground voxel (label > 0) in the {len(cases)} training case(s): 'ct_percentile' computes its "
            "clipping range from them; check the labels or use --intensity ct with a window."
        )
    low, high = np.percentile(values, percentiles)
    return {
        "low": float(low),
        "high": float(high),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "voxels": int(values.size),
        "cases": len(pooled),
    }


class SupportFgBgToIndicesd(MapTransform):
    """``FgBgToIndicesd`` whose background is the label-0 voxels inside the image's support (above its minimum).

    Foreground: ``label > 0``. Background: ``label == 0`` where any image channel exceeds that channel's minimum, so
    the constant padding outside a CT's field of view (-1024, -2048, -3024 HU) or an MR's zero background is left out
    while air, lung and fat inside the scan are kept; a threshold at 0 HU kept only tissue above water. An image
    without a single voxel above its minimum (constant) falls back to all label-0 voxels. Writes
    ``<key>_fg_indices`` and ``<key>_bg_indices`` as ``FgBgToIndicesd`` does, for ``RandCropByPosNegLabeld``.

    Args:
        keys: the label key(s).
        image_key: the image key (raw intensities, before normalisation).
        allow_missing_keys: as MONAI's.
    """

    def __init__(self, keys: KeysCollection, image_key: str = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.converter = FgBgToIndices(image_threshold=0.0)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = torch.as_tensor(d[self.image_key])
        minimum = image.reshape(image.shape[0], -1).amin(dim=1).reshape(-1, *([1] * (image.ndim - 1)))
        support = (image > minimum).any(dim=0, keepdim=True)
        mask = support.to(torch.float32) if bool(support.any()) else None
        for key in self.key_iterator(d):
            d[f"{key}_fg_indices"], d[f"{key}_bg_indices"] = self.converter(d[key], mask)
        return d
