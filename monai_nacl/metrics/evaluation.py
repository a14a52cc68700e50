"""One call for the segmentation quality and calibration of a set of cases: DSC, HD95 and the calibration metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.utils import optional_import

from monai_nacl.metrics.cumulative import METRIC_NAMES, SegmentationCalibrationMetric
from monai_nacl.metrics.functional import calibration_values
from monai_nacl.metrics.reliability import coarse_statistics, concatenate_statistics
from monai_nacl.metrics.statistics import CalibrationStatistics, checked_tensor, hard_labels

# HD95 needs scipy, as MONAI's compute_hausdorff_distance does on CPU
binary_erosion, _ = optional_import("scipy.ndimage", name="binary_erosion")
KDTree, _ = optional_import("scipy.spatial", name="KDTree")

__all__ = ["evaluate_segmentation"]


def _cases(x: torch.Tensor | Sequence[torch.Tensor], name: str) -> list[torch.Tensor]:
    """Batch-first tensor -> list of (1, ...) cases; a sequence of channel-first cases -> the same."""
    if isinstance(x, (list, tuple)):
        return [checked_tensor(case, name)[None] for case in x]
    x = checked_tensor(x, name)
    return [x[i : i + 1] for i in range(x.shape[0])]


def _case_spacing(spacing: Sequence | None, index: int, num_cases: int) -> Sequence[float] | None:
    if spacing is None:
        return None
    spacing = list(spacing)
    if spacing and isinstance(spacing[0], (list, tuple, torch.Tensor)) and not isinstance(spacing[0], float):
        if len(spacing) != num_cases:
            raise ValueError(f"got {len(spacing)} per-case spacings for {num_cases} cases; give one per case.")
        return [float(s) for s in spacing[index]]
    return [float(s) for s in spacing]


def _nanmean(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    finite = torch.isfinite(x)
    return torch.where(finite, x, 0.0).sum(dim) / finite.sum(dim)


def _bounding_box(mask: np.ndarray) -> tuple[int, ...]:
    """``(start_0, ..., stop_0, ...)`` of the smallest box holding every true voxel of a non-empty ``mask``."""
    starts, stops = [], []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        starts.append(int(hits[0]))
        stops.append(int(hits[-1]) + 1)
    return (*starts, *stops)


def _edge_coordinates(mask: np.ndarray, origin: np.ndarray, spacing: Sequence[float] | None) -> np.ndarray:
    """Physical coordinates of the edge voxels of ``mask`` (the voxels its erosion removes), as MONAI forms them."""
    edges = binary_erosion(mask) ^ mask
    coordinates = (np.argwhere(edges) + origin).astype(np.float64)
    if spacing is not None:
        coordinates *= np.asarray(spacing, dtype=np.float64)
    return coordinates


def _hausdorff_distance_95(
    prediction: np.ndarray, reference: np.ndarray, spacing: Sequence[float] | None
) -> torch.Tensor:
    """MONAI's ``compute_hausdorff_distance(percentile=95)`` of two non-empty ``(*spatial)`` bool masks, its steps
    without its whole-grid conversions and crops: edges by erosion on the box of ``P | G`` widened by one voxel,
    each edge voxel's distance to the nearest edge voxel of the other mask by a KD-tree over the coordinates
    (float64, counted from the box's corner as MONAI counts them), the 95th percentile of each direction in float32
    and their maximum. Returns a float32 scalar, equal to MONAI's value (tested)."""
    box = _bounding_box(prediction | reference)
    ndim = prediction.ndim
    # MONAI pads the box by one voxel beyond the grid where needed; the erosion's zero border is that padding
    lower = [max(start - 1, 0) for start in box[:ndim]]
    window = tuple(slice(a, min(stop + 1, size)) for a, stop, size in zip(lower, box[ndim:], prediction.shape))
    origin = np.array([a - (start - 1) for a, start in zip(lower, box[:ndim])])
    pred_xyz = _edge_coordinates(prediction[window], origin, spacing)
    ref_xyz = _edge_coordinates(reference[window], origin, spacing)
    directed = [
        _percentile_95(KDTree(b, leafsize=32).query(a, k=1)[0]) for a, b in ((pred_xyz, ref_xyz), (ref_xyz, pred_xyz))
    ]
    return torch.max(torch.stack(directed))


def _percentile_95(distances: np.ndarray) -> torch.Tensor:
    """``torch.quantile(torch.as_tensor(distances, dtype=torch.float32), 0.95)``, MONAI's step, with its float32
    arithmetic (rank ``0.95 (n - 1)``, linear interpolation by ``lerp``) but two order statistics found by a partial
    sort instead of a full sort (about 3x faster on an HD95's tens of thousands of distances)."""
    values = distances.astype(np.float32)
    rank = torch.tensor(0.95, dtype=torch.float32) * (values.size - 1)
    below, above = int(rank), int(torch.ceil(rank))
    ordered = np.partition(values, (below, above))
    return torch.lerp(torch.tensor(ordered[below]), torch.tensor(ordered[above]), rank - below)


def _segmentation_quality(
    prediction: np.ndarray, reference: np.ndarray, classes: Sequence[int], spacing: Sequence[float] | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """DSC, HD95, ``empty_prediction`` and ``empty_reference`` ``(K,)`` of one case's ``(*spatial)`` label maps.

    The DSC ``2 |P & G| / (|P| + |G|)`` is formed in float32 from exact voxel counts, as MONAI's ``compute_dice``
    forms it (NaN for an empty reference, its ``ignore_empty``); HD95 as MONAI's ``compute_hausdorff_distance``.
    """
    num_labels = max(classes) + 1
    # one pass for every count: the confusion matrix (reference, prediction); labels beyond the classes land past it
    pairs = np.clip(reference, 0, num_labels) * (num_labels + 1) + np.clip(prediction, 0, num_labels)
    confusion = np.bincount(pairs.ravel(), minlength=(num_labels + 1) ** 2).reshape(num_labels + 1, -1)
    dsc, hd95, empty_pred, empty_ref = [], [], [], []
    for k in classes:
        pred_count, ref_count, overlap = int(confusion[:, k].sum()), int(confusion[k].sum()), int(confusion[k, k])
        if ref_count == 0:
            dsc.append(torch.tensor(math.nan, dtype=torch.float32))
            hd95.append(torch.tensor(math.nan, dtype=torch.float64))
        else:
            dsc.append(torch.tensor(2.0 * overlap, dtype=torch.float32) / float(ref_count + pred_count))
            hd95.append(
                torch.tensor(math.inf, dtype=torch.float64)
                if pred_count == 0
                else _hausdorff_distance_95(prediction == k, reference == k, spacing).double()
            )
        empty_pred.append(ref_count > 0 and pred_count == 0)
        empty_ref.append(ref_count == 0)
    return torch.stack(dsc), torch.stack(hd95), torch.tensor(empty_pred), torch.tensor(empty_ref)


def evaluate_segmentation(
    probs: torch.Tensor | Sequence[torch.Tensor],
    labels: torch.Tensor | Sequence[torch.Tensor],
    spacing: Sequence[float] | Sequence[Sequence[float]] | None = None,
    num_bins: int = 15,
    region: str = "foreground",
    include_background: bool = False,
    class_set: str = "all",
) -> dict:
    """Dice, HD95 and calibration (ECE, CECE, ACE, CACE, AdaECE, CAdaECE, MCE, NLL, Brier) per case, mean and pooled.

    Segmentation quality is measured on the argmax of ``probs``: the DSC as MONAI's ``compute_dice`` computes it and
    HD95 by MONAI's ``compute_hausdorff_distance(percentile=95)`` (in physical units when ``spacing`` is given). Unlike the NACL papers' HD95 (0 for an
    empty prediction), empty cases are reported as such: a class absent from the reference has HD95 NaN and flag
    ``empty_reference`` (DSC NaN, MONAI's ``ignore_empty``); a class present in the reference but absent from the
    prediction has HD95 ``inf`` and flag ``empty_prediction`` (DSC 0). Means skip non-finite values and the number
    of flagged cases is reported beside them.

    Calibration is measured over ``region`` (default: ground-truth foreground, the authors' protocol, as in
    :class:`~monai_nacl.metrics.SegmentationCalibrationMetric`) with that metric's per-image step: per case,
    their mean over cases (the papers' figure) and dataset-pooled (every counted voxel of every case together,
    from a running sum of the cases' histograms, so memory does not grow with the number of cases). Names as in
    :data:`~monai_nacl.metrics.METRIC_NAMES`: ``ace`` / ``cace`` are MONAI's average calibration error, the
    adaptive ECE is ``adaece`` / ``cadaece``. The classwise means (``cece``, ...) average over ``class_set``: all
    classes (default) or, as the NACL authors do, classes ``0..max(label)`` of each case's counted voxels (the pooled
    values: of all counted voxels).

    Args:
        probs: ``(B, C, *spatial)`` probabilities, or a sequence of ``(C, *spatial)`` cases of any sizes.
        labels: ``(B, 1, *spatial)`` / ``(B, *spatial)`` integer labels (or one-hot/soft ``(B, C, *spatial)``), or a
            sequence of per-case ``(1, *spatial)`` / ``(*spatial)`` / ``(C, *spatial)`` tensors.
        spacing: voxel spacing for HD95: one sequence for all cases, or one per case; None: voxel units.
        num_bins: number of calibration bins.
        region: calibration region, ``"all"``, ``"foreground"``, ``"band"`` or ``"bbox"``.
        include_background: include class 0 in DSC/HD95.
        class_set: ``"all"`` (default, ours) or ``"up_to_max_label"`` (the NACL authors'), see
            :data:`~monai_nacl.metrics.functional.CLASS_SETS`.

    Returns:
        ``{"classes": [k, ...], "per_case": {...}, "mean": {...}, "pooled": {...}, "pooled_statistics": ...,
        "case_statistics": ...}`` where ``per_case`` holds
        ``dsc``, ``hd95`` (``(num_cases, K)``), ``empty_prediction``, ``empty_reference`` (bool ``(num_cases, K)``)
        and each calibration metric ``(num_cases,)``; ``mean`` holds per-class ``dsc``/``hd95`` means over cases
        (``(K,)``), ``mean_dsc``/``mean_hd95`` (floats, over classes), ``hd95_empty_prediction`` (cases per class),
        and each calibration metric's mean over cases; ``pooled`` holds the dataset-pooled calibration metrics,
        computed from ``pooled_statistics`` (the :class:`~monai_nacl.metrics.CalibrationStatistics` of every counted
        voxel, at the fine binning of :class:`~monai_nacl.metrics.SegmentationCalibrationMetric`, so that sums over
        several calls give the same pooled values as that metric); ``case_statistics`` is the :class:`~monai_nacl.metrics.CalibrationStatistics` of each case (leading dimension
        ``num_cases``) at ``num_bins`` bins, the data of the reliability pictures
        (:mod:`monai_nacl.metrics.plots`).
    """
    prob_cases, label_cases = _cases(probs, "probs"), _cases(labels, "labels")
    if len(prob_cases) != len(label_cases):
        raise ValueError(f"got {len(prob_cases)} probability cases but {len(label_cases)} label cases.")
    if not prob_cases:
        raise ValueError("evaluate_segmentation needs at least one case.")
    num_classes = prob_cases[0].shape[1]
    if prob_cases[0].ndim < 3 or num_classes < 2:
        raise ValueError(
            f"evaluate_segmentation needs softmax probabilities over C >= 2 classes (the segmentation is their "
            f"argmax), got a case of shape {tuple(prob_cases[0].shape)}; for one sigmoid channel p pass "
            "torch.cat([1 - p, p], dim=1), for multi-label channels use SegmentationCalibrationMetric(activation="
            "'sigmoid')."
        )
    first = 0 if include_background else 1
    classes = list(range(first, num_classes))
    # The metric's per-batch step only, never its buffers: those sync across ranks, and this call must stay
    # rank-local (each rank of a distributed evaluation scores its own cases; the caller gathers the rows).
    calibration = SegmentationCalibrationMetric(num_bins=num_bins, region=region, per_case=True, class_set=class_set)
    pooled_vector: torch.Tensor | None = None
    case_values, case_statistics = [], []
    dsc, hd95, empty_pred, empty_ref = [], [], [], []
    for index, (p, y) in enumerate(zip(prob_cases, label_cases)):
        vectors, values = calibration._compute_tensor(y_pred=p, y=y)
        pooled_vector = vectors.sum(0) if pooled_vector is None else pooled_vector + vectors.sum(0)
        case_statistics.append(
            coarse_statistics(CalibrationStatistics.from_vector(vectors, num_classes, num_bins, calibration.sub_bins))
        )
        case_values.append(values)
        # max(1).indices is argmax(1) (the first maximum on ties) without its slow strided CPU kernel (~20x)
        quality = _segmentation_quality(
            p.max(1).indices[0].cpu().numpy(),
            hard_labels(y, tuple(p.shape))[0].cpu().numpy(),
            classes,
            _case_spacing(spacing, index, len(prob_cases)),
        )
        for column, value in zip((dsc, hd95, empty_pred, empty_ref), quality):
            column.append(value)

    per_case: dict[str, torch.Tensor] = {
        "dsc": torch.stack(dsc).double(),
        "hd95": torch.stack(hd95),
        "empty_prediction": torch.stack(empty_pred),
        "empty_reference": torch.stack(empty_ref),
    }
    values = torch.cat(case_values).double()
    per_case.update({name: values[:, k] for k, name in enumerate(METRIC_NAMES)})
    mean: dict[str, float | torch.Tensor] = {
        "dsc": _nanmean(per_case["dsc"]),
        "hd95": _nanmean(per_case["hd95"]),
        "hd95_empty_prediction": per_case["empty_prediction"].sum(0),
    }
    mean["mean_dsc"] = float(_nanmean(mean["dsc"]))
    mean["mean_hd95"] = float(_nanmean(mean["hd95"]))
    for name in METRIC_NAMES:
        mean[name] = float(_nanmean(per_case[name]))
    pooled_statistics = CalibrationStatistics.from_vector(pooled_vector, num_classes, num_bins, calibration.sub_bins)
    pooled_values = calibration_values(pooled_statistics, class_set)
    pooled = {name: float(pooled_values[name]) for name in METRIC_NAMES}
    return {
        "classes": classes,
        "per_case": per_case,
        "mean": mean,
        "pooled": pooled,
        "pooled_statistics": pooled_statistics,
        "case_statistics": concatenate_statistics(case_statistics),
    }
