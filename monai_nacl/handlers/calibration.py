"""Ignite handler reporting one calibration metric of :class:`~monai_nacl.metrics.SegmentationCalibrationMetric`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from monai.handlers import IgniteMetricHandler

from monai_nacl.metrics.cumulative import MARGINAL_NAMES, METRIC_NAMES, RegionNLLMetric, SegmentationCalibrationMetric

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["CALIBRATION_REGISTRY", "CalibrationMetricHandler"]

CALIBRATION_REGISTRY = "calibration_metrics"
"""Attribute of ``engine.state`` mapping the attached names to their :class:`CalibrationMetricHandler` (read by
:class:`~monai_nacl.handlers.ReliabilityDiagramHandler`)."""


class CalibrationMetricHandler(IgniteMetricHandler):
    """Dataset calibration metric for ``SupervisedEvaluator`` (``key_val_metric`` / ``additional_metrics``).

    Wraps :class:`~monai_nacl.metrics.SegmentationCalibrationMetric`: every iteration adds the batch's float64
    histograms; at the end of the round the selected metric is computed over all counted voxels of the round
    (``per_case=False``) or as the mean of per-image values (``per_case=True``, the NACL papers' protocol), and
    with ``save_details`` the per-image values go to ``engine.state.metric_details[name]``, as MONAI's metric handlers
    do (e.g. for ``MetricsSaver``): shape ``(num_images, 1)`` for the pooled names (one value per image), and for the
    marginal names ``(num_images, C)`` per image and class (``C - 1`` without background), as MONAI's
    ``CalibrationError`` saves them.

    Region: by default the ground-truth foreground (``label != 0``, the papers' protocol), as in
    :class:`~monai_nacl.metrics.SegmentationCalibrationMetric` and :func:`~monai_nacl.metrics.evaluate_segmentation`.

    Names follow MONAI: ``"ace"`` is the average calibration error (MONAI's ``calibration_reduction="average"``),
    the adaptive (equal-mass) ECE is ``"adaece"``. The marginal names are MONAI's ``CalibrationError`` handler
    itself (per image and class, one class against the rest, mean over classes and images): with
    ``region="all"``, ``num_bins`` and ``include_background`` as given to MONAI's handler, ``"marginal_ece"``
    reports the number MONAI's ``CalibrationError(calibration_reduction="expected")`` reports.

    Inputs MONAI accepts are accepted with MONAI's values and shapes: a single probability channel (sigmoid output)
    with a ``(B, 1, *spatial)`` binary reference as it is, and per-channel (multi-label) probabilities that need not
    sum to 1, with a ``(B, C, *spatial)`` binary reference, with ``activation="sigmoid"`` (without it such channels
    are refused as a softmax that does not sum to 1, which catches logits and unnormalised outputs). Each channel is
    then a binary problem, ``p_c`` against ``y_c``, as in MONAI (see
    :class:`~monai_nacl.metrics.SegmentationCalibrationMetric` for what the other names measure then, and for the
    foreground region of a per-channel reference). MONAI counts every voxel: ``region="all"`` for its numbers.

    Classwise names (``"cece"``, ``"cace"``, ``"cadaece"``) average over ``class_set``: every class (``"all"``,
    default) or the NACL authors' classes ``0..max(label)`` of the counted voxels (``"up_to_max_label"``, per image
    with ``per_case=True``).

    Args:
        metric_name: which value to report: one of :data:`~monai_nacl.metrics.METRIC_NAMES` (``"ece"``,
            ``"cece"``, ``"ace"``, ``"cace"``, ``"adaece"``, ``"cadaece"``, ``"mce"``, ``"nll"``, ``"brier"``) or
            of :data:`~monai_nacl.metrics.MARGINAL_NAMES` (``"marginal_ece"``, ``"marginal_ace"``,
            ``"marginal_mce"``).
        num_bins: number of equal-width bins; default 15 (the NACL papers) for the pooled metrics, 20 (MONAI's
            default) for the marginal ones.
        region: ``"foreground"`` (default, ``label != 0``), ``"all"``, ``"band"`` or ``"bbox"``.
        band_width: dilation radius in voxels for ``region="band"``.
        per_case: report the mean of per-image values instead of the value over all voxels of the round (the
            marginal values are per image in both modes).
        include_background: marginal names only: keep class 0 (MONAI's option of the same name).
        output_transform: maps ``engine.state.output`` to ``(y_pred, y)``: ``y_pred`` probabilities
            ``(B, C, *spatial)`` (not logits, not one-hot), ``y`` labels ``(B, 1, *spatial)`` or a ``(B, C, *spatial)``
            one-hot (sigmoid: per-channel) reference; e.g. ``from_engine(["pred", "label"])`` after an
            ``Activationsd(keys="pred", softmax=True)`` post-transform.
        save_details: save per-image values to ``engine.state.metric_details``.
        activation: how the channels of ``y_pred`` are read: ``"softmax"`` (default, one distribution over C classes)
            or ``"sigmoid"`` (each channel a probability of its own, multi-label; always so for one channel).
        class_set: classes the classwise names average over, ``"all"`` (default, ours) or ``"up_to_max_label"`` (the
            NACL authors', see :data:`~monai_nacl.metrics.functional.CLASS_SETS`).
    """

    def __init__(
        self,
        metric_name: str = "ece",
        num_bins: int | None = None,
        region: str = "foreground",
        band_width: int = 1,
        per_case: bool = False,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        include_background: bool = True,
        activation: str = "softmax",
        class_set: str = "all",
    ) -> None:
        if metric_name not in METRIC_NAMES + tuple(MARGINAL_NAMES):
            raise ValueError(
                f"metric_name must be one of {METRIC_NAMES + tuple(MARGINAL_NAMES)}, got {metric_name!r} ('ace' is "
                "MONAI's average calibration error; the adaptive ECE is 'adaece')."
            )
        self.metric_name = metric_name
        options = {"region": region, "band_width": band_width, "per_case": per_case, "activation": activation}
        if metric_name == "nll" and activation == "softmax" and not save_details and not per_case:
            # the NLL alone, read at every training step: no histograms (the same pooled value)
            metric_fn = RegionNLLMetric(region=region, band_width=band_width)
        elif metric_name in MARGINAL_NAMES:
            metric_fn = SegmentationCalibrationMetric(
                marginal_bins=20 if num_bins is None else num_bins,
                marginal_include_background=include_background,
                **options,
            )
        else:
            metric_fn = SegmentationCalibrationMetric(
                num_bins=15 if num_bins is None else num_bins,
                keep_case_values=save_details or per_case,
                class_set=class_set,
                **options,
            )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)

    def compute(self) -> float:
        """The selected metric of the round; per-image values to ``metric_details`` when ``save_details``."""
        values = self.metric_fn.aggregate()
        self._is_reduced = True
        if self.save_details:
            if self._engine is None or self._name is None:
                raise RuntimeError("please call the attach() function to connect expected engine first.")
            if self.metric_name in MARGINAL_NAMES:
                details = self.metric_fn.marginal_class_values()[self.metric_name]
            else:
                details = self.metric_fn.case_values()[self.metric_name][:, None]
            self._engine.state.metric_details[self._name] = details
        return float(values[self.metric_name])

    def attach(self, engine: Engine, name: str) -> None:  # type: ignore[override]
        """Attach to ``engine`` under ``name`` and register for :class:`ReliabilityDiagramHandler`."""
        super().attach(engine=engine, name=name)
        registry = getattr(engine.state, CALIBRATION_REGISTRY, None)
        if registry is None:
            registry = {}
            setattr(engine.state, CALIBRATION_REGISTRY, registry)
        registry[name] = self
