"""The label-free Dice estimate of an inference: ``dice_estimates.csv``, the review list and a summary.

Inference over new cases has no labels, so no Dice; the model's own probabilities still say which cases it is least
sure of. :class:`~monai_nacl.transforms.dice_estimate.DiceEstimated` (in the postprocessing, after ``Invertd``)
stores each case's Soft Dice Confidence per class (:func:`~monai_nacl.metrics.soft_dice_confidence`), and
:class:`DiceEstimateHandler` writes them with the cases ordered for review, lowest estimated Dice first. How far the
estimate can be trusted depends on the model's calibration: an evaluation with labels measures it
(``summary.json`` ``dice_estimate`` of :class:`~monai_nacl.handlers.SegmentationReportHandler`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_nacl.handlers.report import _json_number, _names, case_name, gathered
from monai_nacl.utils import atomic_write_text, is_rank_zero

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import(
        "ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine", as_type="decorator"
    )
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = [
    "DICE_ESTIMATE_DEFINITION",
    "DiceEstimateHandler",
    "estimate_columns",
    "review_order",
]

DICE_ESTIMATE_DEFINITION = (
    "Soft Dice Confidence (Borges et al., arXiv 2402.10665) per case and class: 2 sum(p * yhat) / (sum(p) + "
    "sum(yhat)), p the class probability map, yhat the predicted (argmax) mask; 0 for a class predicted nowhere, "
    "undefined where the class has probability 0 everywhere; est_mean_dice: mean over the reported classes"
)
"""What the ``est_dice_<class>`` values are, as the files state it."""


def estimate_columns(
    estimate: torch.Tensor | Sequence[float], class_names: Sequence[str] | None = None, include_background: bool = False
) -> dict[str, float]:
    """``{"est_dice_<name>": ..., "est_mean_dice": ...}`` of one case's ``(C,)`` estimate: the reported classes
    (foreground ``1 .. C - 1``, all with ``include_background``) named by ``class_names`` (one per label value;
    None: ``class_<k>``), then their mean with undefined (NaN) classes left out."""
    values = [float(v) for v in torch.as_tensor(estimate, dtype=torch.float64).reshape(-1).tolist()]
    names = _names(class_names, len(values))
    first = 0 if include_background else 1
    row = {f"est_dice_{names[k]}": values[k] for k in range(first, len(values))}
    finite = [v for v in row.values() if math.isfinite(v)]
    row["est_mean_dice"] = float(np.mean(finite)) if finite else math.nan
    return row


def review_order(rows: Sequence[Mapping[str, Any]], key: str = "est_mean_dice") -> list[Mapping[str, Any]]:
    """The rows ordered for review: lowest ``key`` first, a case without an estimate (NaN) before all (nothing
    vouches for it), ties by case name."""

    def rank(row: Mapping[str, Any]) -> tuple[float, str]:
        value = float(row[key])
        return (-math.inf if math.isnan(value) else value, str(row["case"]))

    return sorted(rows, key=rank)


class DiceEstimateHandler:
    """Write the Dice estimate of every case of an inference when its epoch completes.

    Each item must hold the ``(C,)`` estimate :class:`~monai_nacl.transforms.dice_estimate.DiceEstimated` stores
    under ``estimate_key``. At the end it writes, atomically, into ``output_dir``:

    - ``dice_estimates.csv``: one row per case, in the order seen: ``case``, ``est_dice_<name>`` per reported
      class, ``est_mean_dice`` (see :func:`estimate_columns`);
    - ``review_list.csv``: the same rows ordered for review (:func:`review_order`: lowest ``est_mean_dice`` first),
      with ``rank`` (1 = review first) before ``case``;
    - ``dice_estimate_summary.json``: ``num_cases``, ``classes`` (label value -> name), ``definition``, ``mean``
      (per column, over cases, NaN left out; ``null`` when undefined), ``review_list`` (the cases, review order) and
      the two file names.

    Under ``torch.distributed`` the rows of all ranks are gathered and rank 0 writes the files.

    Args:
        output_dir: folder of the files (created if missing), e.g. beside the predictions.
        class_names: names of the label values ``0 .. C - 1`` (``est_dice_<name>``), e.g. the trained task's
            ``class_names``; None: ``class_<k>``.
        include_background: also report class 0.
        estimate_key: item holding the estimate.
        estimates_filename: name of the per-case table.
        review_filename: name of the review list.
        summary_filename: name of the summary.
        output_transform: maps ``engine.state.output`` to the list of decollated items (default: itself).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        include_background: bool = False,
        estimate_key: str = "dice_estimate",
        estimates_filename: str = "dice_estimates.csv",
        review_filename: str = "review_list.csv",
        summary_filename: str = "dice_estimate_summary.json",
        output_transform: Callable[[Any], Sequence[Mapping[str, Any]]] = lambda output: output,
    ) -> None:
        if isinstance(class_names, str):
            raise TypeError(
                f"class_names must be a list of names, one per label value, got the string {class_names!r}; in a "
                'bundle config write an expression, e.g. class_names: "$@trained_task.class_names".'
            )
        self.output_dir = os.fspath(output_dir)
        self.class_names = None if class_names is None else [str(name) for name in class_names]
        self.include_background = include_background
        self.estimate_key = estimate_key
        self.estimates_filename = estimates_filename
        self.review_filename = review_filename
        self.summary_filename = summary_filename
        self.output_transform = output_transform
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        """Reset at each epoch start, collect each iteration, write at each epoch end."""
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def reset(self, engine: Engine | None = None) -> None:
        """Forget the cases seen so far."""
        self.rows = []

    def update(self, engine: Engine) -> None:
        """Collect the estimates of the engine's current output."""
        for item in self.output_transform(engine.state.output):
            if self.estimate_key not in item:
                raise KeyError(
                    f"case {case_name(item)} has no item {self.estimate_key!r}: add "
                    "monai_nacl.transforms.dice_estimate.DiceEstimated (keys: pred) to the postprocessing, after "
                    "Activationsd(softmax=True) and Invertd, before UncertaintyMapsd turns pred into the label map."
                )
            columns = estimate_columns(item[self.estimate_key], self.class_names, self.include_background)
            self.rows.append({"case": case_name(item), **columns})

    def summary(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The summary of the rows (see the class docstring)."""
        columns = [c for c in rows[0] if c != "case"]
        mean = {}
        for column in columns:
            values = np.array([row[column] for row in rows], dtype=np.float64)
            finite = values[np.isfinite(values)]
            mean[column] = _json_number(float(finite.mean())) if finite.size else None
        first = 0 if self.include_background else 1
        classes = {str(k): c.removeprefix("est_dice_") for k, c in enumerate(columns[:-1], start=first)}
        return {
            "num_cases": len(rows),
            "classes": classes,
            "definition": DICE_ESTIMATE_DEFINITION,
            "mean": mean,
            "review_list": [str(row["case"]) for row in review_order(rows)],
            "estimates_file": self.estimates_filename,
            "review_file": self.review_filename,
        }

    def write(self, engine: Engine | None = None) -> dict[str, Any]:
        """Write the three files (rank 0) and return the summary.

        Raises:
            RuntimeError: if no rank saw a case.
        """
        rows = gathered(self.rows)
        if not rows:
            raise RuntimeError(
                "DiceEstimateHandler saw no case: the inference had no input; check --input_dir / --input_files."
            )
        summary = self.summary(rows)
        if not is_rank_zero():
            return summary
        atomic_write_text(os.path.join(self.output_dir, self.estimates_filename), _csv_text(rows))
        review = [{"rank": rank, **row} for rank, row in enumerate(review_order(rows), start=1)]
        atomic_write_text(os.path.join(self.output_dir, self.review_filename), _csv_text(review))
        text = json.dumps(summary, indent=2) + "\n"
        atomic_write_text(os.path.join(self.output_dir, self.summary_filename), text)
        return summary


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
