"""Cases annotated by several raters: agreement between the raters and the soft reference they define.

A case with ``R`` rater annotations lists their label files in ``label_raters`` (``label`` is the first of them), as
the test split of the default dataset does (:mod:`monai_nacl.data.default_dataset`). Two summaries follow from them:

- Inter-rater Dice of class ``k`` on a case: the mean over the ``R (R - 1) / 2`` pairs of raters ``(a, b)`` of
  ``2 |A_k & B_k| / (|A_k| + |B_k|)`` (a pair where neither rater draws class ``k`` is left out). A model trained on
  one rater's labels cannot expect to agree with another rater better than raters agree with each other, so this is
  the ceiling against which a test Dice is read.
- Soft reference: ``q_k(v) = 1/R sum_r 1[y_r(v) = k]``, the share of raters giving voxel ``v`` class ``k``. The
  calibration metrics take it as the reference (``(B, C, *spatial)``), so a voxel the raters disagree on counts as
  ambiguous instead of as one rater's truth.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.config import PathLike

from monai_nacl.data.files import SECTIONS, case_id, read_datalist

__all__ = ["RATERS_KEY", "inter_rater_dice", "pairwise_dice", "rater_soft_reference"]

RATERS_KEY = "label_raters"


def _check_labels(labels: Sequence[np.ndarray], num_classes: int, minimum: int) -> list[np.ndarray]:
    arrays = [np.asarray(label) for label in labels]
    if len(arrays) < minimum:
        raise ValueError(f"got {len(arrays)} rater label map(s); at least {minimum} are needed.")
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}: count the background too (at least 2 classes).")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"rater label maps differ in shape: {sorted(shapes)}; they must share one grid.")
    for index, array in enumerate(arrays):
        if array.size and (array.min() < 0 or array.max() >= num_classes):
            raise ValueError(
                f"rater {index + 1} has label values in [{array.min()}, {array.max()}], outside [0, {num_classes}); "
                "pass the right num_classes (background included)."
            )
    return arrays


def _mean_over_rows(table: np.ndarray) -> np.ndarray:
    """Column means of ``table`` leaving NaN out; NaN where a column holds nothing else (without numpy's warning)."""
    seen = ~np.isnan(table)
    sums = np.where(seen, table, 0.0).sum(0)
    return np.where(seen.any(0), sums / np.maximum(seen.sum(0), 1), np.nan)


def pairwise_dice(labels: Sequence[np.ndarray], num_classes: int, include_background: bool = False) -> np.ndarray:
    """Inter-rater Dice per class of one case: the mean over rater pairs (module docstring).

    Args:
        labels: the raters' integer label maps of one case, all of one shape (at least two).
        num_classes: number of classes, background (class 0) included.
        include_background: also report class 0 (as MONAI's ``DiceMetric``; default: classes ``1..C-1``).

    Returns:
        float64 ``(C,)`` or ``(C - 1,)``: the mean Dice per class; NaN for a class no rater draws.

    Raises:
        ValueError: if fewer than two maps are given, their shapes differ, or a value lies outside
            ``[0, num_classes)``.

    Example::

        >>> a, b = np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])
        >>> pairwise_dice([a, b], 3).tolist()
        [0.6666666666666666, 0.6666666666666666]
    """
    arrays = _check_labels(labels, num_classes, minimum=2)
    classes = range(0 if include_background else 1, num_classes)
    flat = [a.ravel().astype(np.int64, copy=False) for a in arrays]
    per_pair = np.full((len(arrays) * (len(arrays) - 1) // 2, len(classes)), np.nan)
    for row, (i, j) in enumerate(itertools.combinations(range(len(arrays)), 2)):
        # confusion matrix of the pair: its diagonal is the overlap, its row and column sums the two counts
        pair = np.bincount(flat[i] * num_classes + flat[j], minlength=num_classes**2).reshape(num_classes, num_classes)
        for column, k in enumerate(classes):
            total = pair[k].sum() + pair[:, k].sum()
            if total:
                per_pair[row, column] = 2.0 * pair[k, k] / total
    return _mean_over_rows(per_pair)


def rater_soft_reference(labels: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Soft reference ``q_k = 1/R sum_r 1[y_r = k]`` of one case, channel first (module docstring).

    Args:
        labels: the raters' integer label maps of one case ``(*spatial)``, all of one shape (at least one).
        num_classes: number of classes, background included.

    Returns:
        float32 ``(C, *spatial)``; the channels sum to 1 at every voxel.

    Raises:
        ValueError: as :func:`pairwise_dice` (one map suffices here).
    """
    arrays = _check_labels(labels, num_classes, minimum=1)
    votes = np.zeros((num_classes, *arrays[0].shape), dtype=np.int32)
    for array in arrays:
        for k in range(num_classes):
            votes[k] += array == k
    return (votes / len(arrays)).astype(np.float32)


def _entries(datalist_or_entries: PathLike | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Any]:
    if isinstance(datalist_or_entries, (str, Path, Mapping)):
        data = read_datalist(datalist_or_entries)
        return [entry for section in SECTIONS for entry in data.get(section) or []]
    return list(datalist_or_entries)


def inter_rater_dice(
    datalist_or_entries: PathLike | Mapping[str, Any] | Sequence[Mapping[str, Any]],
    num_classes: int,
    base_dir: PathLike | None = None,
    include_background: bool = False,
) -> dict[str, Any]:
    """Inter-rater Dice of every case that has ``label_raters`` (two raters or more), per class, and its mean.

    Args:
        datalist_or_entries: a datalist JSON path or loaded mapping (all its sections are searched), or a list of
            datalist entries.
        num_classes: number of classes, background included.
        base_dir: folder of relative paths; default the JSON's folder for a path, the working directory otherwise.
        include_background: also report class 0.

    Returns:
        ``{"classes": [k, ...], "per_case": {case_id: [dice_k, ...]}, "mean": [mean over cases, ...]}``; the case id is
        the file name of the case's first rater label without its extension; NaN (for a class nobody draws) is
        left out of the mean.

    Raises:
        ValueError: if no entry lists two raters or more, or as :func:`pairwise_dice`.
    """
    if base_dir is None:
        is_file = isinstance(datalist_or_entries, (str, Path))
        base_dir = Path(datalist_or_entries).parent if is_file else Path.cwd()
    base = Path(base_dir)
    per_case: dict[str, list[float]] = {}
    for entry in _entries(datalist_or_entries):
        files = entry.get(RATERS_KEY) if isinstance(entry, Mapping) else None
        if not isinstance(files, list) or len(files) < 2:
            continue
        labels = [np.asarray(nib.load(str(base / file)).dataobj) for file in files]
        per_case[case_id(files[0])] = pairwise_dice(labels, num_classes, include_background).tolist()
    if not per_case:
        raise ValueError(
            f"no case lists two or more rater labels under '{RATERS_KEY}'; build the default dataset with "
            "variant='raters' (python -m monai_nacl.data build-default --variant raters) or add the key."
        )
    mean = _mean_over_rows(np.asarray(list(per_case.values())))
    first = 0 if include_background else 1
    return {"classes": list(range(first, num_classes)), "per_case": per_case, "mean": mean.tolist()}
