"""Statistics behind the reliability pictures, all from :class:`~monai_nacl.metrics.CalibrationStatistics`.

- :func:`coarse_statistics`: the histograms at ``num_bins`` bins (whole sub-bins summed), small enough to keep one
  set per test image; :func:`concatenate_statistics` puts per-image sets of several batches (or runs) together.
- :func:`dataset_reliability_histogram`: the dataset reliability histogram of Barfoot et al. (MICCAI 2024): per
  class ``c`` and confidence bin ``m``, the distribution over images of the image's accuracy in that bin,
  ``a_{b,c,m} = mean over the voxels of image b with p_c in bin m of 1[y = c]``.
- :func:`statistics_to_dict` / :func:`statistics_from_dict`: a JSON form of the statistics, so a report can draw
  the pictures of an evaluation that ran elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from monai_nacl.metrics.statistics import CalibrationStatistics

__all__ = [
    "coarse_statistics",
    "concatenate_statistics",
    "dataset_reliability_histogram",
    "statistics_from_dict",
    "statistics_to_dict",
]


def coarse_statistics(stats: CalibrationStatistics) -> CalibrationStatistics:
    """The same statistics with ``sub_bins = 1``: each of the ``num_bins`` bins is the sum of its sub-bins.

    Every value except the adaptive ECE is unchanged (ECE, MCE and the reliability pictures only use whole bins).
    """

    def coarse(hist: torch.Tensor | None) -> torch.Tensor | None:
        if hist is None:
            return None
        return hist.reshape(*hist.shape[:-1], stats.num_bins, stats.sub_bins).sum(-1)

    return CalibrationStatistics(stats.num_bins, 1, coarse(stats.top_label), coarse(stats.classwise), stats.totals)


def concatenate_statistics(statistics: Sequence[CalibrationStatistics]) -> CalibrationStatistics:
    """Per-image statistics ``(B_i, ...)`` of several batches as one set ``(sum B_i, ...)`` (same binning)."""
    if not statistics:
        raise ValueError("concatenate_statistics needs at least one set of statistics.")
    binning = {(s.num_bins, s.sub_bins) for s in statistics}
    if len(binning) > 1:
        raise ValueError(f"cannot concatenate statistics with different binning {sorted(binning)}; use the same bins.")

    def cat(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
        return None if any(p is None for p in parts) else torch.cat(parts)

    first = statistics[0]
    return CalibrationStatistics(
        first.num_bins,
        first.sub_bins,
        cat([s.top_label for s in statistics]),
        cat([s.classwise for s in statistics]),
        torch.cat([s.totals for s in statistics]),
    )


def dataset_reliability_histogram(
    stats: CalibrationStatistics, num_accuracy_bins: int | None = None
) -> dict[str, torch.Tensor]:
    """Dataset reliability histogram (Barfoot et al.): per class and confidence bin, images counted by accuracy.

    For image ``b``, class ``c`` and confidence bin ``m`` (``lower < p_c <= upper``) holding ``n_{b,c,m} > 0``
    counted voxels, the per-image accuracy is ``a_{b,c,m} = sum 1[y = c] / n_{b,c,m}`` (``sum q_c / n`` for a soft
    reference); ``count[c, m, k]`` is the number of images whose ``a_{b,c,m}`` lies in accuracy bin ``k``, with
    the same ``(lower, upper]`` membership as the confidence bins (accuracy 0 in the first bin). Images without a
    voxel in bin ``m`` are not counted there. For hard labels the accuracy bin ``ceil(K * sum / n) - 1`` is exact
    (both sums are whole numbers, so a quotient on a bin edge is represented exactly).

    Args:
        stats: per-image statistics with classwise histograms, ``classwise`` of shape ``(B, C, 3, M)`` (e.g.
            ``calibration_statistics(..., per_image=True)`` or the ``case_statistics`` of
            :func:`~monai_nacl.metrics.evaluate_segmentation`).
        num_accuracy_bins: ``K``, equal-width accuracy bins on [0, 1]; None: ``stats.num_bins``.

    Returns:
        ``count`` ``(C, num_bins, K)`` float64 number of images, ``edges`` (confidence bin edges, ``num_bins + 1``),
        ``accuracy_edges`` (``K + 1``) and ``num_images`` (``B``).

    Example:
        >>> probs = torch.tensor([[[0.9, 0.8], [0.1, 0.2]], [[0.7, 0.6], [0.3, 0.4]]], dtype=torch.float64)
        >>> labels = torch.tensor([[0, 1], [0, 0]])  # two images of two voxels, classes 0/1
        >>> stats = calibration_statistics(probs, labels, num_bins=2, per_image=True)
        >>> dataset_reliability_histogram(stats)["count"][0]  # class 0: bin (.5, 1] holds accuracies 0.5 and 1
        tensor([[0., 0.],
                [1., 1.]], dtype=torch.float64)
    """
    if stats.classwise is None or stats.classwise.ndim != 4:
        shape = None if stats.classwise is None else tuple(stats.classwise.shape)
        raise ValueError(
            f"the dataset reliability histogram needs per-image classwise histograms of shape (B, C, 3, M), got "
            f"{shape}; compute them with calibration_statistics(..., classwise=True, per_image=True)."
        )
    num_accuracy_bins = stats.num_bins if num_accuracy_bins is None else num_accuracy_bins
    if not isinstance(num_accuracy_bins, int) or num_accuracy_bins < 1:
        raise ValueError(f"num_accuracy_bins must be a positive integer, got {num_accuracy_bins!r}.")
    count, _, hits = coarse_statistics(stats).classwise.unbind(-2)  # (B, C, num_bins) each
    present = count > 0
    index = (hits * num_accuracy_bins / count.clamp_min(1)).ceil().long().sub(1).clamp(0, num_accuracy_bins - 1)
    images = torch.nn.functional.one_hot(index, num_accuracy_bins).double() * present[..., None]
    return {
        "count": images.sum(0),
        "edges": torch.linspace(0.0, 1.0, stats.num_bins + 1, dtype=torch.float64),
        "accuracy_edges": torch.linspace(0.0, 1.0, num_accuracy_bins + 1, dtype=torch.float64),
        "num_images": torch.tensor(float(stats.classwise.shape[0]), dtype=torch.float64),
    }


def statistics_to_dict(stats: CalibrationStatistics) -> dict[str, Any]:
    """JSON-ready form of the statistics (nested lists of float64 values, which JSON keeps exactly)."""

    def as_list(x: torch.Tensor | None) -> list | None:
        return None if x is None else x.double().cpu().tolist()

    return {
        "num_bins": stats.num_bins,
        "sub_bins": stats.sub_bins,
        "top_label": as_list(stats.top_label),
        "classwise": as_list(stats.classwise),
        "totals": as_list(stats.totals),
    }


def statistics_from_dict(data: dict[str, Any]) -> CalibrationStatistics:
    """Inverse of :func:`statistics_to_dict`."""
    missing = [key for key in ("num_bins", "sub_bins", "top_label", "classwise", "totals") if key not in data]
    if missing:
        raise ValueError(f"calibration statistics lack {missing}; pass the dict written by statistics_to_dict().")

    def as_tensor(x: list | None) -> torch.Tensor | None:
        return None if x is None else torch.tensor(x, dtype=torch.float64)

    return CalibrationStatistics(
        int(data["num_bins"]),
        int(data["sub_bins"]),
        as_tensor(data["top_label"]),
        as_tensor(data["classwise"]),
        as_tensor(data["totals"]),
    )
