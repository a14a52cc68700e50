"""Streaming calibration metric for MONAI engines and bundles: histograms summed over a whole dataset and across ranks."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction, look_up_option

from monai_nacl.metrics.functional import (
    DEFAULT_RESOLUTION,
    calibration_values,
    check_class_set,
    marginal_values,
    reliability_from_statistics,
    sub_bins_for,
)
from monai_nacl.metrics.statistics import (
    NLL_EPS,
    REGIONS,
    CalibrationStatistics,
    _check_probabilities,
    calibration_statistics,
    marginal_statistics,
    prepare_inputs,
    reference_labels,
    region_mask,
    resolve_activation,
)

__all__ = ["MARGINAL_NAMES", "METRIC_NAMES", "RegionNLLMetric", "SegmentationCalibrationMetric"]

METRIC_NAMES = ("ece", "cece", "ace", "cace", "adaece", "cadaece", "mce", "nll", "brier")
"""Values the metric always reports: ECE (top label) and CECE (classwise mean), ACE and CACE (MONAI's average
calibration error, top label and classwise), AdaECE and CAdaECE (adaptive, equal-mass ECE), MCE (top label), NLL
and Brier score (definitions in :mod:`monai_nacl.metrics.functional`)."""

MARGINAL_NAMES = {"marginal_ece": "expected", "marginal_ace": "average", "marginal_mce": "maximum"}
"""Values reported when the metric is built with ``marginal_bins``: MONAI's ``CalibrationErrorMetric`` with
``calibration_reduction`` expected / average / maximum (per image and class, one class against the rest, see
:func:`~monai_nacl.metrics.functional.marginal_calibration_error`), averaged as MONAI's ``metric_reduction="mean"``
averages them: over the non-NaN classes of each image, then over the images."""


class SegmentationCalibrationMetric(CumulativeIterationMetric):
    """ECE, CECE, ACE, AdaECE, MCE, NLL and Brier of segmentation probabilities over a dataset, from summed histograms.

    Each call turns the batch into per-image calibration histograms
    (:func:`~monai_nacl.metrics.statistics.calibration_statistics`, float64, ``(lower, upper]`` bins) and adds them
    to one running sum, so memory does not grow with the number of voxels or images (about
    ``8 * 3 * (C + 1) * resolution`` bytes, plus ``len(metric_names)`` floats per image for the per-case values).
    Feeding volumes one at a time or all at once gives the same pooled result. Under ``torch.distributed`` the
    running sums of all ranks are gathered by MONAI's ``Cumulative`` and added.

    Region: by default the ground-truth foreground (``label != 0``), the NACL papers' protocol, as in
    :func:`~monai_nacl.metrics.evaluate_segmentation` and :class:`~monai_nacl.handlers.CalibrationMetricHandler`;
    ``region="all"`` counts every voxel (as the functional metrics without a mask, and as MONAI does).

    Two modes:

    - ``per_case=False`` (dataset-pooled): ``aggregate()`` computes each metric once from the histogram of every
      counted voxel of the dataset.
    - ``per_case=True``: each image gets its own values (the NACL authors' protocol: per volume, then the mean),
      reduced over images by MONAI's ``reduction`` (NaN values of images with an empty region are skipped).

    The marginal values (``marginal_bins`` set) are per image by definition (MONAI's quantity): in both modes their
    ``aggregate()`` is the mean over images of the mean over classes, and :meth:`marginal_class_values` keeps them
    per image and class, ``(num_images, C)`` as MONAI's buffer. With ``region="all"``, the same ``num_bins`` and
    ``include_background`` they equal ``monai.metrics.CalibrationErrorMetric(...).aggregate()``.

    Sigmoid channels (``activation="sigmoid"``, and any single channel): MONAI's inputs are accepted as MONAI accepts
    them, per-channel probabilities that need not sum to 1 with a ``(B, C, *spatial)`` binary (or soft) reference in
    which any number of channels may be positive. Each channel is then a binary problem, ``p_c`` against ``y_c``, as
    in MONAI: the marginal values are MONAI's, the classwise values are per channel, the top-label values pool the
    binary decisions of every (voxel, channel) pair (see :func:`~monai_nacl.metrics.statistics.calibration_statistics`),
    and the foreground region is where any channel of the reference is positive.

    Classwise means (``cece``, ``cace``, ``cmce``, ``cadaece``) average over ``class_set``: all classes (``"all"``,
    the default) or the NACL authors' classes ``0..max(label)`` of the counted voxels (``"up_to_max_label"``; per
    image in per-case mode, the authors' protocol, over the pooled voxels otherwise).

    The adaptive ECE is formed from a fine histogram of ``resolution`` sub-bins, with an error bound (see
    :func:`~monai_nacl.metrics.functional.adaptive_calibration_error`); every other value is exact.

    Args:
        num_bins: number of equal-width bins (15 in the NACL papers); also the number of equal-mass bins of AdaECE.
        region: voxels that count: ``"foreground"`` (default, ``label != 0``); ``"all"``; ``"band"`` (foreground
            dilated by ``band_width`` voxels); ``"bbox"`` (bounding box of the foreground).
        band_width: dilation radius in voxels for ``region="band"``.
        per_case: report per-image values reduced by ``reduction`` instead of dataset-pooled values.
        reduction: MONAI reduction over images in per-case mode (``"mean"``, ``"none"``, ...).
        resolution: fine sub-bins of the adaptive ECE histogram (rounded up to a multiple of ``num_bins``; at most
            ``num_bins`` gives plain bins, valid but with a loose bound).
        marginal_bins: also report :data:`MARGINAL_NAMES` with this many bins of MONAI's binning (20 is MONAI's
            default); None: not computed.
        marginal_include_background: keep class 0 in the marginal values (MONAI's ``include_background``).
        keep_case_values: compute and keep every image's values (:meth:`case_values`), which costs more than its
            histograms; ``False`` keeps only the pooled histograms, for a dataset-pooled value read once per round
            (a training metric). Per-case mode and the marginal values need them.
        class_set: classes the classwise means average over, ``"all"`` (default, ours) or ``"up_to_max_label"`` (the
            NACL authors', see :data:`~monai_nacl.metrics.functional.CLASS_SETS`).
        activation: ``"softmax"`` (default: the channels are the classes of one distribution and sum to 1) or
            ``"sigmoid"`` (each channel a probability of its own, multi-label; implied for a single channel).

    Example:
        >>> metric = SegmentationCalibrationMetric()  # foreground voxels
        >>> for probs, labels in loader:  # probs (B, C, *spatial) softmax, labels (B, 1, *spatial)
        ...     metric(y_pred=probs, y=labels)
        >>> metric.aggregate()["ece"]
    """

    def __init__(
        self,
        num_bins: int = 15,
        region: str = "foreground",
        band_width: int = 1,
        per_case: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        resolution: int = DEFAULT_RESOLUTION,
        marginal_bins: int | None = None,
        marginal_include_background: bool = True,
        keep_case_values: bool = True,
        class_set: str = "all",
        activation: str = "softmax",
    ) -> None:
        super().__init__()
        self.class_set = check_class_set(class_set)
        resolve_activation(activation, 2)
        self.activation = activation
        if not keep_case_values and (per_case or marginal_bins is not None):
            raise ValueError(
                "keep_case_values=False keeps no per-image values, which per_case=True and marginal_bins need; "
                "keep them or use the dataset-pooled values."
            )
        self.keep_case_values = keep_case_values
        if not isinstance(num_bins, int) or num_bins < 1:
            raise ValueError(f"num_bins must be a positive integer, got {num_bins!r}.")
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {region!r}.")
        if marginal_bins is not None and (not isinstance(marginal_bins, int) or marginal_bins < 1):
            raise ValueError(f"marginal_bins must be a positive integer or None, got {marginal_bins!r}.")
        self.num_bins = num_bins
        self.sub_bins = sub_bins_for(num_bins, resolution)
        self.region = region
        self.band_width = band_width
        self.per_case = per_case
        self.reduction = reduction
        self.marginal_bins = marginal_bins
        self.marginal_include_background = marginal_include_background
        self.num_classes: int | None = None

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Names of the reported values: :data:`METRIC_NAMES`, then :data:`MARGINAL_NAMES` when computed."""
        return METRIC_NAMES + (tuple(MARGINAL_NAMES) if self.marginal_bins is not None else ())

    def _compute_tensor(
        self, y_pred: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None, **kwargs: Any
    ) -> list[torch.Tensor]:
        """Statistics of one batch.

        Args:
            y_pred: ``(B, C, *spatial)`` probabilities (softmax or, with ``activation="sigmoid"``, sigmoid output; not
                logits).
            y: ``(B, 1, *spatial)`` / ``(B, *spatial)`` integer labels or ``(B, C, *spatial)`` one-hot/soft reference
                (sigmoid: per-channel reference).
            mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``, combined (AND) with the region.

        Returns:
            ``[statistics (B, S), values (B, V)]``: per-image histogram vectors and metric values: one column per
            name of :attr:`metric_names`, then (marginal values) one column per marginal name and class.
        """
        if y is None:
            raise ValueError("SegmentationCalibrationMetric needs the reference labels y.")
        prepare_inputs(y_pred, y, mask, self.activation)  # shape checks before the region is derived from y
        if self.num_classes is not None and y_pred.shape[1] != self.num_classes:
            raise ValueError(
                f"y_pred has {y_pred.shape[1]} channels but earlier batches had {self.num_classes}; "
                "call reset() before evaluating a model with another number of classes."
            )
        self.num_classes = int(y_pred.shape[1])
        region = region_mask(reference_labels(y, tuple(y_pred.shape), self.activation), self.region, self.band_width)
        if mask is not None:
            user = torch.as_tensor(mask).reshape((y_pred.shape[0], *y_pred.shape[2:])).to(y_pred.device) != 0
            region = user if region is None else region & user
        stats = calibration_statistics(
            y_pred,
            y,
            num_bins=self.num_bins,
            mask=region,
            sub_bins=self.sub_bins,
            per_image=True,
            activation=self.activation,
        )
        if not self.keep_case_values:
            return [stats.to_vector(), stats.totals.new_zeros(stats.totals.shape[0], 0)]
        values = calibration_values(stats, self.class_set)
        columns = [values[name] for name in METRIC_NAMES]
        if self.marginal_bins is None:
            return [stats.to_vector(), torch.stack(columns, dim=-1)]
        hist = marginal_statistics(y_pred, y, num_bins=self.marginal_bins, mask=region, activation=self.activation)
        marginal = marginal_values(hist if self.marginal_include_background else hist[:, 1:])
        per_class = [marginal[reduction] for reduction in MARGINAL_NAMES.values()]  # (B, C') each
        # MONAI's metric_reduction="mean": first over the non-NaN classes of each image
        columns += [torch.nanmean(value, dim=-1) for value in per_class]
        return [stats.to_vector(), torch.cat([torch.stack(columns, dim=-1), *per_class], dim=-1)]

    def extend(self, *data: Any) -> None:
        """Add a batch: histogram vectors go into one running sum (bounded memory), per-case values are kept."""
        vectors, values = data
        batch_sum = torch.as_tensor(vectors).sum(0)
        if self._buffers is None:
            self._buffers = [[batch_sum], []]
        else:
            self._buffers[0][0] = self._buffers[0][0] + batch_sum
        self._buffers[1].extend(torch.as_tensor(values).unbind(0))
        self._synced = False

    def _require_data(self) -> list[torch.Tensor]:
        buffers = self.get_buffer()
        if buffers is None or self.num_classes is None:
            raise RuntimeError("SegmentationCalibrationMetric has no data: call it on at least one batch first.")
        return buffers

    def pooled_statistics(self) -> CalibrationStatistics:
        """Histograms of every counted voxel seen so far, summed over batches and ranks."""
        vectors = self._require_data()[0]
        return CalibrationStatistics.from_vector(vectors.sum(0), self.num_classes, self.num_bins, self.sub_bins)

    def case_values(self) -> dict[str, torch.Tensor]:
        """Per-image values ``{name: (num_images,)}`` in the order the images were seen (rank by rank)."""
        if not self.keep_case_values:
            raise RuntimeError("this metric was built with keep_case_values=False: it keeps no per-image values.")
        values = self._require_data()[1]
        return {name: values[:, k] for k, name in enumerate(self.metric_names)}

    def marginal_class_values(self) -> dict[str, torch.Tensor]:
        """Per image and class, the marginal values ``{name: (num_images, C)}`` (``C - 1`` columns without background),
        what MONAI's ``CalibrationErrorMetric`` buffers (its ``metric_reduction="none"``), NaN where an image has no
        counted voxel."""
        if self.marginal_bins is None:
            raise RuntimeError("this metric was built without marginal_bins: it computes no marginal values.")
        values = self._require_data()[1][:, len(self.metric_names) :]
        return dict(zip(MARGINAL_NAMES, values.reshape(values.shape[0], len(MARGINAL_NAMES), -1).unbind(1)))

    @staticmethod
    def _mean_over_images(value: torch.Tensor) -> float:
        # MONAI's mean over non-NaN values, kept in float64 (MONAI's casts to float32)
        kept = value[~torch.isnan(value)]
        return float(kept.mean()) if kept.numel() else float("nan")

    def aggregate(self) -> dict[str, float | torch.Tensor]:
        """The metrics ``{name: value}`` for every name of :attr:`metric_names`.

        Returns:
            dataset-pooled floats (``per_case=False``; marginal values: mean over images), or the per-case values
            reduced by ``reduction`` (floats for scalar reductions, tensors otherwise). NaN, with a warning, when no
            voxel was counted.
        """
        if self.per_case:
            cases = self.case_values()
            result: dict[str, float | torch.Tensor] = {}
            reduction = look_up_option(self.reduction, MetricReduction)
            for name, value in cases.items():
                if reduction in (MetricReduction.MEAN, MetricReduction.MEAN_BATCH):
                    result[name] = self._mean_over_images(value)
                    continue
                reduced, _ = do_metric_reduction(value[:, None].clone(), reduction)
                result[name] = float(reduced) if reduced.numel() == 1 else reduced
            if bool(torch.isnan(cases["ece"]).any()):
                warnings.warn(
                    f"{int(torch.isnan(cases['ece']).sum())} image(s) had no voxel in region '{self.region}'; "
                    "their values are NaN and left out of the reduction.",
                    stacklevel=2,
                )
            return result
        values = calibration_values(self.pooled_statistics(), self.class_set)
        if float(values["count"]) == 0:
            warnings.warn(
                f"no voxel was counted in region '{self.region}'; the calibration values are NaN.", stacklevel=2
            )
        result = {name: float(values[name]) for name in METRIC_NAMES}
        if self.marginal_bins is not None:
            cases = self.case_values()
            result.update({name: self._mean_over_images(cases[name]) for name in MARGINAL_NAMES})
        return result

    def reliability_statistics(self) -> dict[str, torch.Tensor]:
        """Per-bin count, mean confidence and accuracy of the pooled top label, for a reliability diagram."""
        stats = self.pooled_statistics()
        return reliability_from_statistics(stats)


class RegionNLLMetric(CumulativeIterationMetric):
    """The negative log-likelihood alone over a region: ``SegmentationCalibrationMetric``'s ``nll`` without the
    calibration histograms.

    Per image it keeps the sum of ``-log max(p_y, 1e-12)`` over the counted voxels (``q``-weighted
    ``-sum_c q_c log p_c`` for a soft reference) and their count, in float64; :meth:`aggregate` pools them over every
    image and rank (sum over sum), as the full metric's pooled ``nll``. A training metric read at every step (the
    bundles' ``train_nll``) so costs one gather and one log per voxel instead of every histogram of every class. The
    probabilities are checked as the full metric checks them (finite, in [0, 1], summing to 1 over the classes).

    Args:
        region: voxels counted, as :class:`SegmentationCalibrationMetric`'s (``"foreground"``: ``label != 0``).
        band_width: dilation radius of the ``"band"`` region.

    Example:
        >>> metric = RegionNLLMetric()
        >>> probs = torch.tensor([[[0.9, 0.2]], [[0.1, 0.8]]]).permute(1, 0, 2)  # (1, 2, 2): two voxels
        >>> _ = metric(y_pred=probs, y=torch.tensor([[[0, 1]]]))  # the foreground: the second voxel
        >>> round(metric.aggregate()["nll"], 4)  # -log 0.8
        0.2231
    """

    def __init__(self, region: str = "foreground", band_width: int = 1) -> None:
        super().__init__()
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {region!r}.")
        self.region = region
        self.band_width = band_width

    def _compute_tensor(
        self, y_pred: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None, **kwargs: Any
    ) -> torch.Tensor:
        """``(B, 2)`` float64: per image the summed NLL of the counted voxels and their number."""
        if y is None:
            raise ValueError("RegionNLLMetric needs the reference labels y.")
        p_all, ref_all, soft, _ = prepare_inputs(y_pred, y, None, "softmax")
        region = region_mask(reference_labels(y, tuple(y_pred.shape)), self.region, self.band_width)
        if mask is not None:
            user = torch.as_tensor(mask).reshape((y_pred.shape[0], *y_pred.shape[2:])).to(y_pred.device) != 0
            region = user if region is None else region & user
        rows = []
        for b in range(p_all.shape[0]):
            p, ref = p_all[b], ref_all[b]
            if region is not None:
                keep = region[b].reshape(-1)
                p, ref = p[:, keep], ref[..., keep]
            _check_probabilities(p, "probs")
            if soft:
                nll = -(ref.double() * p.double().clamp_min(NLL_EPS).log()).sum()
            else:
                p_y = p.gather(0, ref.long()[None])[0]
                nll = -p_y.double().clamp_min(NLL_EPS).log().sum()
            rows.append(torch.stack([nll, torch.tensor(float(p.shape[1]), dtype=torch.float64, device=p.device)]))
        return torch.stack(rows)

    def aggregate(self) -> dict[str, float]:
        """``{"nll": pooled NLL}`` over every counted voxel seen (NaN, with a warning, when none was counted)."""
        buffer = self.get_buffer()
        if buffer is None:
            raise RuntimeError("RegionNLLMetric has no data: call it on at least one batch first.")
        total = torch.as_tensor(buffer).reshape(-1, 2).sum(0)
        if float(total[1]) == 0:
            warnings.warn(f"no voxel was counted in region '{self.region}'; the NLL is NaN.", stacklevel=2)
            return {"nll": float("nan")}
        return {"nll": float(total[0] / total[1])}

    def pooled_statistics(self) -> CalibrationStatistics:
        """Not kept: this metric sums the NLL only."""
        raise RuntimeError(
            "RegionNLLMetric keeps no calibration histograms (it sums the NLL only); for a reliability diagram attach "
            "a CalibrationMetricHandler with another metric_name (e.g. 'ece') or save_details=True."
        )
