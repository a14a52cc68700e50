"""The evaluation report of a bundle: ``metrics.csv`` (one row per case), ``summary.json``, the calibration histograms
and the reliability pictures."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.data.utils import affine_to_spacing
from monai.utils import IgniteInfo, min_version, optional_import

from monai_nacl.utils import atomic_write, atomic_write_text

if TYPE_CHECKING:
    from ignite.engine import Engine, Events

    from monai_nacl.data.skipped_cases import SkippedCases
    from monai_nacl.metrics import CalibrationStatistics
else:
    Engine, _ = optional_import(
        "ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine", as_type="decorator"
    )
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = [
    "HISTOGRAMS_FILENAME",
    "RATER_METRICS",
    "SegmentationReportHandler",
    "case_name",
    "file_stem",
    "flatten_case_metrics",
    "gathered",
    "rater_files",
]

HISTOGRAMS_FILENAME = "calibration_histograms.json"
"""Default name of the per-case calibration histograms of an evaluation (read back by the comparison report)."""
RATER_METRICS = ("ece", "cece", "ace", "nll", "brier")
"""Calibration metrics reported against the raters' distribution (``raters_<name>`` columns)."""


def file_stem(path: str | os.PathLike) -> str:
    """A file name without folder and image extension (``.nii.gz``, ``.nii``, ``.mha``, ``.nrrd``, ...)."""
    name = os.path.basename(os.fspath(path))
    for ext in (".nii.gz", ".nii", ".mha", ".nrrd"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


def case_name(item: Mapping[str, Any], keys: Sequence[str] = ("image", "pred", "label")) -> str:
    """Case identifier of a decollated item: its image file name without folder and NIfTI extension."""
    for key in keys:
        value = item.get(key)
        meta = getattr(value, "meta", None) or item.get(f"{key}_meta_dict") or {}
        source = meta.get("filename_or_obj")
        if source:
            return file_stem(source)
    raise ValueError(
        f"cannot name the case: none of the items {list(keys)} carries metadata 'filename_or_obj'; load the images "
        "with LoadImaged(image_only=True) so that they are MetaTensors."
    )


def _names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    """The names of label values ``0 .. num_classes - 1`` (``class_<k>`` for None), checked to be one per class and
    unique, so that no two columns share a name."""
    if class_names is None:
        return [f"class_{k}" for k in range(num_classes)]
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"class_names has {len(names)} names {names} but num_classes is {num_classes}; give one name per label "
            "value 0 .. num_classes - 1, background included (monai_nacl.data.class_names(datalist, num_classes))."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"class_names {names} repeats {repeated}; the metrics.csv columns need unique names "
            "(monai_nacl.data.class_names makes them unique)."
        )
    return names


def flatten_case_metrics(result: Mapping[str, Any], class_names: Sequence[str] | None = None) -> dict[str, float]:
    """CSV columns of one case from ``monai_nacl.metrics.evaluate_segmentation`` called on that case alone.

    Columns: ``dice_<name>`` then ``hd95_<name>`` for each reported class (``<name>`` is the class's entry in
    ``class_names``, e.g. ``dice_grey_matter``), ``mean_dice`` (over those classes), then the calibration metrics
    ``monai_nacl.metrics.METRIC_NAMES`` (``ece``, ``cece``, ``ace``, ``cace`` (MONAI's average calibration error),
    ``adaece``, ``cadaece`` (adaptive ECE), ``mce``, ``nll``, ``brier``).
    HD95 is ``inf`` when the class is in the label but not predicted and ``nan`` when it is absent from the label.

    Args:
        result: ``evaluate_segmentation``'s dictionary for a single case.
        class_names: names of the label values ``0 .. num_classes - 1`` (background included, as
            :func:`monai_nacl.data.class_names` returns them); None: ``class_<k>``.

    Raises:
        ValueError: if ``result`` holds more than one case, or ``class_names`` does not name each class once.
    """
    from monai_nacl.metrics import METRIC_NAMES

    per_case = result["per_case"]
    if per_case["dsc"].shape[0] != 1:
        raise ValueError(f"expected the result of one case, got {per_case['dsc'].shape[0]} cases.")
    names = _names(class_names, result["classes"][-1] + 1)
    row: dict[str, float] = {}
    for column, key in (("dice", "dsc"), ("hd95", "hd95")):
        row.update({f"{column}_{names[k]}": float(v) for k, v in zip(result["classes"], per_case[key][0].tolist())})
    row["mean_dice"] = float(result["mean"]["mean_dsc"])
    row.update({name: float(per_case[name][0]) for name in METRIC_NAMES})
    return row


def rater_files(
    entries: Sequence[Mapping[str, Any]], base_dir: str | os.PathLike | None = None
) -> dict[str, list[str]]:
    """Case name -> the paths of its raters' labels, for the datalist entries that list ``label_raters`` (relative
    paths joined to ``base_dir``); entries without it are left out."""
    files = {}
    for entry in entries:
        raters = entry.get("label_raters")
        if raters:
            files[file_stem(entry["image"])] = [os.path.join(base_dir, p) if base_dir else os.fspath(p) for p in raters]
    return files


def gathered(items: list[Any]) -> list[Any]:
    """The items of every rank of ``torch.distributed``, rank by rank (every rank calls it and gets them all); this
    rank's own list when not distributed."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return items
    parts: list[list[Any]] = [[] for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def _json_number(value: float) -> float | None:
    """JSON has no NaN/inf: an undefined or infinite value (e.g. HD95 of an empty prediction) becomes null."""
    return value if math.isfinite(value) else None


class SegmentationReportHandler:
    """Write the evaluation report of a ``SupervisedEvaluator`` run when its epoch completes.

    After each iteration, every case of the batch is measured by ``monai_nacl.metrics.evaluate_segmentation``
    (Dice and HD95 per class, with the voxel spacing of the case; ECE, CECE, ACE, AdaECE, MCE, NLL, Brier), whose
    calibration histograms are summed over the cases (the pooled values of
    ``monai_nacl.metrics.SegmentationCalibrationMetric``). At the end it writes, atomically:

    - ``metrics.csv``: one row per case (``case`` then the metric columns, see :func:`flatten_case_metrics`, then
      the label-free Dice estimate of the same probabilities, :func:`~monai_nacl.metrics.soft_dice_confidence`:
      ``est_dice_<name>`` per reported class, ``est_mean_dice`` and ``est_dice_abs_error``, the case's mean over
      classes of ``|est - true|``);
    - ``summary.json``: ``num_cases``, ``classes`` (the reported label values and their names, e.g.
      ``{"1": "grey_matter", "2": "white_matter"}``), ``mean`` (over cases, NaN/empty cases left out; keys as the
      columns, e.g. ``mean_dice``, ``dice_grey_matter``) with ``num_valid`` per column, ``pooled`` (calibration
      over every counted voxel of every case together), ``pooled_over`` (those voxels in words, e.g. "ground-truth
      foreground voxels (label != 0) of every case"), ``num_bins``, ``region``, ``class_set`` (the classes the
      classwise means average), ``skipped`` (the cases left out before the run, with the data check's findings),
      ``calibration`` and ``dice_estimate`` (the estimate against the true Dice over every (case, class) pair:
      ``mae``, ``spearman``, ``pearson``, ``bias``, ``num_pairs``, the same ``per_class``, its ``definition`` and
      ``plot``); undefined values are ``null``;
    - ``calibration_histograms.json``: each case's calibration histograms at ``num_bins`` bins (``cases``, ``region``,
      ``class_names`` of the label values ``0 .. num_classes - 1`` and ``statistics``, see
      :func:`~monai_nacl.metrics.statistics_to_dict`), from which the comparison report draws its pictures;
    - with matplotlib installed, the pictures of :mod:`monai_nacl.metrics.plots`: ``reliability.png`` (pooled
      reliability diagram), ``reliability_classwise.png`` (one panel per class, named by ``class_names``; none for a
      class absent from the counted voxels, such as the background in the ``foreground`` region),
      ``dataset_reliability.png`` (the dataset reliability histogram of Barfoot et al.: per class and confidence bin,
      the images by accuracy) and ``dice_estimate.png`` (estimated against true Dice per case and class, with the
      identity line).

    The items must hold softmax probabilities and integer labels on the same grid, e.g. after ``Invertd`` back
    to the original image space. Under ``torch.distributed`` the rows and histograms of all ranks are gathered
    and rank 0 writes the files.

    Args:
        output_dir: folder of the report files (created if missing).
        num_classes: number of classes including background.
        num_bins: equal-width confidence bins of the calibration errors.
        region: voxels the calibration metrics count (``"foreground"``: ``label != 0``, the papers' protocol;
            ``"all"``, ``"band"``, ``"bbox"``).
        include_background: also report Dice/HD95 of class 0.
        class_names: names of the label values ``0 .. num_classes - 1`` in the column names (``dice_<name>``),
            e.g. ``monai_nacl.data.class_names(datalist, num_classes)``; None: ``class_<k>``.
        prob_key: item holding the probabilities ``(C, *spatial)``.
        label_key: item holding the labels ``(1, *spatial)``.
        rater_files: case name -> the files of several raters' labels of that case (see :func:`rater_files`);
            adds ``inter_rater_dice_<name>`` and ``raters_<metric>`` columns (ECE, CECE, ACE, NLL, Brier against the
            raters' distribution, :data:`RATER_METRICS`) for those cases.
        calibration: the :class:`~monai_nacl.calibration.ApplyCalibrationd` of the evaluation, whose ``applied``
            record (method, file, parameters) ``summary.json`` states under ``calibration``; None: none.
        metrics_filename: name of the per-case table.
        summary_filename: name of the summary.
        diagram_filename: name of the reliability diagram; ``None`` to skip it.
        classwise_diagram_filename: name of the per-class reliability diagrams; ``None`` to skip them.
        dataset_diagram_filename: name of the dataset reliability histogram; ``None`` to skip it.
        histograms_filename: name of the per-case calibration histograms; ``None`` to skip them.
        dice_estimate_filename: name of the scatter plot of estimated against true Dice; ``None`` to skip it.
        output_transform: maps ``engine.state.output`` to the list of decollated items (default: itself).
        skipped_cases: the run's :class:`~monai_nacl.data.SkippedCases`, whose cases ``summary.json`` lists
            under ``skipped``; ``None``: none were skipped.
        class_set: the classes the classwise means (CECE, CACE, CMCE, CAdaECE) average over: ``"all"`` (every class
            ``0 .. num_classes - 1``, this package's convention) or ``"up_to_max_label"`` (classes ``0 .. max
            label`` of each case, as the NACL authors' evaluation; pooled: of all cases); ``summary.json`` states it.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        num_classes: int,
        num_bins: int = 15,
        region: str = "foreground",
        include_background: bool = False,
        prob_key: str = "pred",
        label_key: str = "label",
        metrics_filename: str = "metrics.csv",
        summary_filename: str = "summary.json",
        diagram_filename: str | None = "reliability.png",
        classwise_diagram_filename: str | None = "reliability_classwise.png",
        dataset_diagram_filename: str | None = "dataset_reliability.png",
        histograms_filename: str | None = HISTOGRAMS_FILENAME,
        dice_estimate_filename: str | None = "dice_estimate.png",
        output_transform: Callable[[Any], Sequence[Mapping[str, Any]]] = lambda output: output,
        skipped_cases: SkippedCases | None = None,
        rater_files: Mapping[str, Sequence[str]] | None = None,
        calibration: Any = None,
        class_names: Sequence[str] | None = None,
        class_set: str = "all",
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background plus at least one class), got {num_classes}.")
        self.output_dir = os.fspath(output_dir)
        self.num_classes = num_classes
        self.class_names = _names(class_names, num_classes)
        self.class_set = class_set
        self.num_bins = num_bins
        self.region = region
        self.include_background = include_background
        self.prob_key = prob_key
        self.label_key = label_key
        self.rater_files = dict(rater_files or {})
        self.calibration = calibration
        self.metrics_filename = metrics_filename
        self.summary_filename = summary_filename
        self.diagram_filename = diagram_filename
        self.classwise_diagram_filename = classwise_diagram_filename
        self.dataset_diagram_filename = dataset_diagram_filename
        self.histograms_filename = histograms_filename
        self.dice_estimate_filename = dice_estimate_filename
        self.output_transform = output_transform
        self.skipped_cases = skipped_cases
        self.pooled: CalibrationStatistics | None = None
        self.rows: list[dict[str, Any]] = []
        self.case_statistics: list[Any] = []

    def attach(self, engine: Engine) -> None:
        """Reset at each epoch start, measure each iteration, write at each epoch end."""
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def reset(self, engine: Engine | None = None) -> None:
        """Forget the cases seen so far."""
        self.pooled = None
        self.rows = []
        self.case_statistics = []

    def update(self, engine: Engine) -> None:
        """Measure the cases of the engine's current output."""
        from monai_nacl.metrics import evaluate_segmentation

        for item in self.output_transform(engine.state.output):
            probs, labels = item[self.prob_key], item[self.label_key]
            if probs.shape[1:] != labels.shape[1:]:
                raise ValueError(
                    f"probabilities {tuple(probs.shape)} and labels {tuple(labels.shape)} of case {case_name(item)} "
                    "are not on the same grid; invert the prediction to the label's space first (Invertd)."
                )
            spacing = affine_to_spacing(labels.affine, r=labels.ndim - 1) if hasattr(labels, "affine") else None
            if probs.shape[0] != self.num_classes:
                raise ValueError(
                    f"case {case_name(item)} has {probs.shape[0]} probability channels but num_classes is "
                    f"{self.num_classes}; set num_classes to the network's number of outputs."
                )
            with warnings.catch_warnings():  # an empty class is reported as such in the table
                warnings.simplefilter("ignore")
                result = evaluate_segmentation(
                    probs[None],
                    labels[None],
                    spacing=None if spacing is None else spacing.tolist(),
                    num_bins=self.num_bins,
                    region=self.region,
                    include_background=self.include_background,
                    class_set=self.class_set,
                )
            row = {"case": case_name(item), **flatten_case_metrics(result, self.class_names)}
            row.update(self._estimate_columns(probs, row))
            if row["case"] in self.rater_files:
                row.update(self._rater_columns(probs, row["case"]))
            self.rows.append(row)
            self.case_statistics.append(result["case_statistics"])
            stats = result["pooled_statistics"]
            self.pooled = stats if self.pooled is None else self.pooled + stats

    def _estimate_columns(self, probs: torch.Tensor, row: Mapping[str, float]) -> dict[str, float]:
        """The label-free Dice estimate beside the true Dice: ``est_dice_<name>`` per reported class,
        ``est_mean_dice`` and ``est_dice_abs_error``, the case's mean over those classes of ``|est - true|`` (classes
        absent from the label left out), the per-case error that ``compare`` pairs against its reference row."""
        from monai_nacl.handlers.dice_estimate import estimate_columns
        from monai_nacl.metrics import soft_dice_confidence

        estimate = soft_dice_confidence(probs[None].float())[0]
        columns = estimate_columns(estimate, self.class_names, self.include_background)
        errors = [
            abs(columns[f"est_{name}"] - row[name])
            for name in (c.removeprefix("est_") for c in columns if c.startswith("est_dice_"))
            if math.isfinite(row[name]) and math.isfinite(columns[f"est_{name}"])
        ]
        columns["est_dice_abs_error"] = float(np.mean(errors)) if errors else math.nan
        return columns

    def _rater_columns(self, probs: torch.Tensor, case: str) -> dict[str, float]:
        """Columns of a case annotated by several raters: the inter-rater Dice per class (the ceiling of any model's
        Dice against one rater) and the calibration against the raters' distribution (soft reference
        ``q_k = 1/R sum_r 1[y_r = k]``; the region from its most frequent label). The raters' files are read as
        stored, the grid the labels are compared on."""
        import nibabel as nib

        from monai_nacl.data import pairwise_dice, rater_soft_reference
        from monai_nacl.metrics import SegmentationCalibrationMetric

        maps = [np.asarray(nib.load(path).dataobj).astype(np.int64) for path in self.rater_files[case]]
        maps = [m.reshape(m.shape[: probs.ndim - 1]) if m.ndim > probs.ndim - 1 else m for m in maps]
        if any(m.shape != tuple(probs.shape[1:]) for m in maps):
            raise ValueError(
                f"case {case}: the raters' labels {[m.shape for m in maps]} and the probabilities "
                f"{tuple(probs.shape)} are not on the same grid; the label_raters files must share the label's grid."
            )
        classes = range(0 if self.include_background else 1, self.num_classes)
        row: dict[str, float] = {}
        if len(maps) > 1:
            dice = pairwise_dice(maps, self.num_classes, include_background=self.include_background)
            row.update({f"inter_rater_dice_{self.class_names[k]}": float(v) for k, v in zip(classes, dice.tolist())})
        soft = torch.as_tensor(rater_soft_reference(maps, self.num_classes))
        metric = SegmentationCalibrationMetric(
            num_bins=self.num_bins, region=self.region, keep_case_values=False, class_set=self.class_set
        )
        metric(y_pred=probs[None].float().cpu(), y=soft[None])
        values = metric.aggregate()
        row.update({f"raters_{name}": float(values[name]) for name in RATER_METRICS})
        return row

    def pooled_statistics(self) -> CalibrationStatistics:
        """The calibration histograms of every counted voxel of every case seen, on every rank (all ranks call it).

        Raises:
            RuntimeError: if no rank saw a case.
        """
        parts = gathered([] if self.pooled is None else [self.pooled])
        if not parts:
            raise RuntimeError("SegmentationReportHandler has no pooled statistics: it saw no case.")
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def _pooled_values(self) -> dict[str, float]:
        """The calibration metrics of :meth:`pooled_statistics` (NaN, with a warning, when no voxel was counted)."""
        from monai_nacl.metrics import METRIC_NAMES, calibration_values

        values = calibration_values(self.pooled_statistics(), self.class_set)
        if float(values["count"]) == 0:
            warnings.warn(
                f"no voxel was counted in region '{self.region}'; the pooled calibration values are NaN.", stacklevel=3
            )
        return {name: float(values[name]) for name in METRIC_NAMES}

    def summary(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Summary of per-case rows plus the pooled calibration values (see the class docstring)."""
        from monai_nacl.metrics import REGION_DESCRIPTIONS

        columns = [c for c in rows[0] if c != "case"] if rows else []
        mean, num_valid = {}, {}
        for column in columns:
            values = np.array([row[column] for row in rows], dtype=np.float64)
            finite = values[np.isfinite(values)]
            mean[column] = _json_number(float(finite.mean())) if finite.size else None
            num_valid[column] = int(finite.size)
        pooled = {name: _json_number(value) for name, value in self._pooled_values().items()} if rows else {}
        first = 0 if self.include_background else 1
        return {
            "num_cases": len(rows),
            "classes": {str(k): self.class_names[k] for k in range(first, self.num_classes)},
            "mean": mean,
            "num_valid": num_valid,
            "pooled": pooled,
            "pooled_over": f"{REGION_DESCRIPTIONS[self.region]} of every case",
            "num_bins": self.num_bins,
            "region": self.region,
            "class_set": self.class_set,
            "skipped": self.skipped_cases.records() if self.skipped_cases is not None else [],
            "calibration": getattr(self.calibration, "applied", None) or {"method": "none"},
            "dice_estimate": self._estimate_agreement(rows),
        }

    def _reported_names(self) -> list[str]:
        first = 0 if self.include_background else 1
        return self.class_names[first:]

    def _estimate_agreement(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``summary.json``'s ``dice_estimate``: how well the label-free estimate predicts the true Dice, over every
        (case, class) pair and per class (:func:`~monai_nacl.metrics.dice_estimate_agreement`: ``mae``,
        ``spearman``, ``pearson``, ``bias``, ``num_pairs``), with its ``definition``."""
        from monai_nacl.handlers.dice_estimate import DICE_ESTIMATE_DEFINITION
        from monai_nacl.metrics import dice_estimate_agreement

        def agreement(names: Sequence[str]) -> dict[str, Any]:
            pairs = [(row[f"est_dice_{n}"], row[f"dice_{n}"]) for row in rows for n in names]
            values = dice_estimate_agreement([p[0] for p in pairs], [p[1] for p in pairs])
            return {key: _json_number(value) if key != "num_pairs" else value for key, value in values.items()}

        names = self._reported_names()
        return {
            "definition": DICE_ESTIMATE_DEFINITION,
            **agreement(names),
            "per_class": {name: agreement([name]) for name in names},
            "plot": self.dice_estimate_filename,
        }

    def write(self, engine: Engine | None = None) -> dict[str, Any]:
        """Write ``metrics.csv``, ``summary.json``, the histograms and the pictures (rank 0); return the summary."""
        rows = gathered(self.rows)
        if not rows:
            raise RuntimeError(
                "SegmentationReportHandler saw no case: the evaluation data list is empty; check the 'test' list "
                "of the datalist."
            )
        summary = self.summary(rows)
        stats = self.pooled_statistics()
        case_statistics = gathered([s.to_vector() for s in self.case_statistics])
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return summary
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(os.path.join(self.output_dir, self.metrics_filename), buffer.getvalue())
        atomic_write_text(os.path.join(self.output_dir, self.summary_filename), json.dumps(summary, indent=2) + "\n")
        self._write_pictures(stats, [row["case"] for row in rows], case_statistics, rows)
        return summary

    def _write_pictures(
        self, pooled: Any, cases: list[str], case_vectors: list[torch.Tensor], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """The per-case histograms and, with matplotlib, the reliability pictures drawn from them and the scatter
        plot of estimated against true Dice."""
        from monai_nacl.metrics import (
            CalibrationStatistics,
            plot_dataset_reliability,
            plot_dice_estimate,
            plot_reliability_diagram,
            statistics_to_dict,
        )

        per_case = CalibrationStatistics.from_vector(torch.cat(case_vectors).cpu(), self.num_classes, self.num_bins, 1)
        if self.histograms_filename:
            histograms = {
                "cases": cases,
                "region": self.region,
                "class_names": self.class_names,
                "statistics": statistics_to_dict(per_case),
            }
            atomic_write_text(os.path.join(self.output_dir, self.histograms_filename), json.dumps(histograms) + "\n")
        title = f"Evaluation, {len(cases)} case(s) pooled"
        pictures = {
            self.diagram_filename: lambda tmp: plot_reliability_diagram(pooled, tmp, title, self.region),
            self.classwise_diagram_filename: lambda tmp: plot_reliability_diagram(
                pooled, tmp, title, self.region, classwise=True, class_names=self.class_names
            ),
            self.dataset_diagram_filename: lambda tmp: plot_dataset_reliability(
                per_case, tmp, "Evaluation, dataset reliability histogram", self.region, class_names=self.class_names
            ),
            self.dice_estimate_filename: lambda tmp: plot_dice_estimate(
                {n: [row[f"est_dice_{n}"] for row in rows] for n in self._reported_names()},
                {n: [row[f"dice_{n}"] for row in rows] for n in self._reported_names()},
                tmp,
                f"Evaluation, {len(cases)} case(s): Dice estimated without labels against true Dice",
            ),
        }
        pictures = {name: draw for name, draw in pictures.items() if name}
        if pictures and importlib.util.find_spec("matplotlib") is None:
            warnings.warn(f"matplotlib is not installed: {', '.join(pictures)} not written.", stacklevel=3)
            return
        for name, draw in pictures.items():
            atomic_write(os.path.join(self.output_dir, name), draw)
