"""Ignite handler saving the reliability diagram of each validation round (PNG, and TensorBoard when given)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ignite.distributed as idist
from ignite.engine import Events

from monai_nacl.handlers.calibration import CALIBRATION_REGISTRY, CalibrationMetricHandler
from monai_nacl.metrics.plots import plot_reliability_diagram, reliability_figure

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["ReliabilityDiagramHandler"]


class ReliabilityDiagramHandler:
    """At the end of every round, draw the reliability diagram of a :class:`CalibrationMetricHandler`'s voxels.

    The histograms are those the calibration handler already accumulated (no second pass over the data), pooled
    over the round and over ranks, drawn by :func:`~monai_nacl.metrics.plot_reliability_diagram` with the metric's
    region in the title; only rank 0 writes. Files: ``output_dir/{tag}_epoch{epoch:04d}.png``, where
    ``epoch`` is ``engine.state.epoch`` (for an evaluator run by MONAI's ``ValidationHandler``, the trainer's
    epoch). With a TensorBoard ``SummaryWriter`` the figure is also logged under ``tag`` at that step.

    Args:
        output_dir: folder of the PNG files (created when missing).
        metric_name: name under which the :class:`CalibrationMetricHandler` is attached to the same engine (e.g.
            the ``key_val_metric`` key ``"val_ece"``); None: the only one attached.
        tag: file prefix and TensorBoard tag.
        summary_writer: optional ``torch.utils.tensorboard.SummaryWriter`` (or tensorboardX's).
        title: figure title; default ``"{tag} epoch {epoch}"``.
        classwise: draw one panel per class (``p_c`` against ``1[y = c]``, from the classwise histograms) instead
            of the top label; a class of which no counted voxel is an example (the background in the ``foreground``
            region) has no panel, and the title says that the CECE still averages every class.
        class_names: names of the label values ``0 .. C - 1`` for the panels, e.g. the bundle's ``@class_names``
            (default ``class 0``, ``class 1``, ...).

    Example (MONAI bundle config)::

        "additional_metrics": {"val_ece": {"_target_": "monai_nacl.handlers.CalibrationMetricHandler",
                                            "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}},
        "val_handlers": [{"_target_": "monai_nacl.handlers.ReliabilityDiagramHandler",
                          "output_dir": "$@output_dir + '/reliability'", "metric_name": "val_ece"}]
    """

    def __init__(
        self,
        output_dir: str | Path,
        metric_name: str | None = None,
        tag: str = "reliability",
        summary_writer: Any | None = None,
        title: str | None = None,
        classwise: bool = False,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.metric_name = metric_name
        self.tag = tag
        self.summary_writer = summary_writer
        self.title = title
        self.classwise = classwise
        self.class_names = None if class_names is None else list(class_names)
        self.saved: list[Path] = []

    def attach(self, engine: Engine) -> None:
        """Run at the end of every epoch (validation round) of ``engine``."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _handler(self, engine: Engine) -> CalibrationMetricHandler:
        registry: dict[str, CalibrationMetricHandler] = getattr(engine.state, CALIBRATION_REGISTRY, None) or {}
        if self.metric_name is None:
            if len(registry) != 1:
                raise RuntimeError(
                    f"ReliabilityDiagramHandler needs metric_name when {len(registry)} CalibrationMetricHandlers "
                    f"are attached (found {sorted(registry)}); attach one to the same engine or name it."
                )
            return next(iter(registry.values()))
        if self.metric_name not in registry:
            raise RuntimeError(
                f"no CalibrationMetricHandler named {self.metric_name!r} is attached to this engine (found "
                f"{sorted(registry)}); add one as key_val_metric or additional_metrics under that name."
            )
        return registry[self.metric_name]

    def __call__(self, engine: Engine) -> None:
        """Draw and save the diagram of the round that just ended."""
        metric = self._handler(engine).metric_fn
        if metric.num_classes is None:
            warnings.warn("ReliabilityDiagramHandler: the calibration metric saw no batch this round; no diagram.")
            return
        stats = metric.pooled_statistics()  # gathers across ranks: every rank takes part
        if idist.get_rank() != 0:
            return
        epoch = int(engine.state.epoch)
        options = {
            "title": self.title or f"{self.tag} epoch {epoch}",
            "region": metric.region,
            "classwise": self.classwise,
            "class_names": self.class_names,
        }
        path = plot_reliability_diagram(stats, self.output_dir / f"{self.tag}_epoch{epoch:04d}.png", **options)
        self.saved.append(path)
        if self.summary_writer is not None:
            self.summary_writer.add_figure(self.tag, reliability_figure(stats, **options), global_step=epoch)
