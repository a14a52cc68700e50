"""One call for the segmentation quality and calibration of a set of cases: DSC, HD95 and the calibration metrics."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.metrics import compute_dice, compute_hausdorff_distance

from monai_nacl.metrics.cumulative import METRIC_NAMES, SegmentationCalibrationMetric
from monai_nacl.metrics.functional import calibration_values
from monai_nacl.metrics.reliability import coarse_statistics, concatenate_statistics
from monai_nacl.metrics.statistics import CalibrationStatistics, checked_tensor, hard_labels

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


def evaluate_segmentation(
    probs: torch.Tensor | Sequence[torch.Tensor],
    labels: torch.Tensor | Sequence[torch.Tensor],
    spacing: Sequence[float] | Sequence[Sequence[float]] | None = None,
    num_bins: int = 15,
    region: str = "foreground",
    include_background: bool = False,
) -> dict:
    """Dice, HD95 and calibration (ECE, CECE, ACE, CACE, AdaECE, CAdaECE, MCE, NLL, Brier) per case, mean and pooled.

    Segmentation quality uses MONAI's ``compute_dice`` and ``compute_hausdorff_distance(percentile=95)`` on the
    argmax of ``probs`` (HD95 in physical units when ``spacing`` is given). Unlike the NACL papers' HD95 (0 for an
    empty prediction), empty cases are reported as such: a class absent from the reference has HD95 NaN and flag
    ``empty_reference`` (DSC NaN, MONAI's ``ignore_empty``); a class present in the reference but absent from the
    prediction has HD95 ``inf`` and flag ``empty_prediction`` (DSC 0). Means skip non-finite values and the number
    of flagged cases is reported beside them.

    Calibration is measured over ``region`` (default: ground-truth foreground, the authors' protocol, as in
    :class:`~monai_nacl.metrics.SegmentationCalibrationMetric`) with that metric's per-image step: per case,
    their mean over cases (the papers' figure) and dataset-pooled (every counted voxel of every case together,
    from a running sum of the cases' histograms, so memory does not grow with the number of cases). Names as in
    :data:`~monai_nacl.metrics.METRIC_NAMES`: ``ace`` / ``cace`` are MONAI's average calibration error, the
    adaptive ECE is ``adaece`` / ``cadaece``.

    Args:
        probs: ``(B, C, *spatial)`` probabilities, or a sequence of ``(C, *spatial)`` cases of any sizes.
        labels: ``(B, 1, *spatial)`` / ``(B, *spatial)`` integer labels (or one-hot/soft ``(B, C, *spatial)``), or a
            sequence of per-case ``(1, *spatial)`` / ``(*spatial)`` / ``(C, *spatial)`` tensors.
        spacing: voxel spacing for HD95: one sequence for all cases, or one per case; None: voxel units.
        num_bins: number of calibration bins.
        region: calibration region, ``"all"``, ``"foreground"``, ``"band"`` or ``"bbox"``.
        include_background: include class 0 in DSC/HD95.

    Returns:
        ``{"classes": [k, ...], "per_case": {...}, "mean": {...}, "pooled": {...}, "case_statistics": ...}``
        where ``per_case`` holds
        ``dsc``, ``hd95`` (``(num_cases, K)``), ``empty_prediction``, ``empty_reference`` (bool ``(num_cases, K)``)
        and each calibration metric ``(num_cases,)``; ``mean`` holds per-class ``dsc``/``hd95`` means over cases
        (``(K,)``), ``mean_dsc``/``mean_hd95`` (floats, over classes), ``hd95_empty_prediction`` (cases per class),
        and each calibration metric's mean over cases; ``pooled`` holds the dataset-pooled calibration metrics;
        ``case_statistics`` is the :class:`~monai_nacl.metrics.CalibrationStatistics` of each case (leading dimension
        ``num_cases``) at ``num_bins`` bins, the data of the reliability pictures
        (:mod:`monai_nacl.metrics.plots`).
    """
    prob_cases, label_cases = _cases(probs, "probs"), _cases(labels, "labels")
    if len(prob_cases) != len(label_cases):
        raise ValueError(f"got {len(prob_cases)} probability cases but {len(label_cases)} label cases.")
    if not prob_cases:
        raise ValueError("evaluate_segmentation needs at least one case.")
    num_classes = prob_cases[0].shape[1]
    first = 0 if include_background else 1
    classes = list(range(first, num_classes))
    # The metric's per-batch step only, never its buffers: those sync across ranks, and this call must stay
    # rank-local (each rank of a distributed evaluation scores its own cases; the caller gathers the rows).
    calibration = SegmentationCalibrationMetric(num_bins=num_bins, region=region, per_case=True)
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
        reference = F.one_hot(hard_labels(y, tuple(p.shape)), num_classes).movedim(-1, 1).float()
        prediction = F.one_hot(p.argmax(1), num_classes).movedim(-1, 1).float()
        spatial_axes = tuple(range(2, p.ndim))
        ref_present = reference.any(dim=spatial_axes)[0, first:]
        pred_present = prediction.any(dim=spatial_axes)[0, first:]
        dsc.append(compute_dice(prediction, reference, include_background=include_background, ignore_empty=True)[0])
        with warnings.catch_warnings():  # MONAI warns about empty classes; they are flagged below instead
            warnings.simplefilter("ignore")
            distance = compute_hausdorff_distance(
                prediction,
                reference,
                include_background=include_background,
                percentile=95,
                spacing=_case_spacing(spacing, index, len(prob_cases)),
            )[0].double()
        distance = torch.where(ref_present & ~pred_present, math.inf, distance)
        distance = torch.where(~ref_present, math.nan, distance)
        hd95.append(distance)
        empty_pred.append(ref_present & ~pred_present)
        empty_ref.append(~ref_present)

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
    pooled_values = calibration_values(pooled_statistics)
    pooled = {name: float(pooled_values[name]) for name in METRIC_NAMES}
    return {
        "classes": classes,
        "per_case": per_case,
        "mean": mean,
        "pooled": pooled,
        "case_statistics": concatenate_statistics(case_statistics),
    }
