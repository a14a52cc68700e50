"""Ignite handler that learns CRaC's Lagrange multipliers on the validation split, once per validation round."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.engines import IterationEvents, Workflow
from monai.handlers import from_engine

from monai_nacl.losses.crac import REGIONS, AdaptiveNeighborAwareLoss

__all__ = ["LagrangeMultiplierHandler"]

logger = logging.getLogger(__name__)


def _as_batches(x: Any) -> list[torch.Tensor]:
    """A batch tensor ``(B, ...)`` as one batch, or a sequence of per-item tensors ``(C, ...)`` as batches of 1."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, Sequence) and all(isinstance(item, torch.Tensor) for item in x):
        return [item.unsqueeze(0) for item in x]
    raise TypeError(
        f"output_transform must give (logits, labels) as tensors (B, C, *spatial) / (B, 1, *spatial) or as "
        f"sequences of per-item tensors, got {type(x).__name__}."
    )


def _sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over the processes of ``torch.distributed`` when it is initialised (on CPU either way)."""
    if not (dist.is_available() and dist.is_initialized()):
        return x
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    x = x.to(device)
    dist.all_reduce(x)
    return x.cpu()


class LagrangeMultiplierHandler:
    """Update the multipliers of an :class:`~monai_nacl.losses.AdaptiveNeighborAwareLoss` from the validation split.

    Attach it to the validator (``validate#handlers`` of a bundle, the ``val_handlers`` of a
    ``SupervisedEvaluator``). Every iteration it adds the batch's constraint sums and voxel counts
    (:meth:`~monai_nacl.losses.AdaptiveNeighborAwareLoss.constraint_statistics`); at the end of the round it sums
    them over the ranks of ``torch.distributed`` (so every rank computes the same multipliers), forms the
    constraint statistic

    .. math::
        g_{r,c} = \\frac{\\sum_{\\text{batches, ranks}} \\sum_{v \\in V_r} h_{c,v}}{\\sum_{\\text{batches, ranks}} N}

    with ``N`` a batch's number of all counted voxels (the loss's ``constraint_normalization="all_voxels"``, the
    default and the authors' update) or of region ``r``'s voxels (``"region"``), both as the loss's ``count``,
    calls :meth:`~monai_nacl.losses.AdaptiveNeighborAwareLoss.update_multipliers` with ``g`` and
    ``engine.state.epoch`` (MONAI's evaluator holds the trainer's epoch there) and writes, for every region ``r``
    of ``("boundary", "interior")`` and class ``c``, to ``engine.state.metrics``:

    - ``lagrange_<r>_<c>``: the updated multiplier ``lambda``;
    - ``penalty_rho_<r>_<c>``: the updated penalty parameter ``rho``;
    - ``constraint_<r>_<c>``: the round's statistic ``g`` (NaN when its count was 0).

    :class:`~monai_nacl.handlers.TrainingHistoryHandler` on the trainer writes them to ``history.csv``, a column
    each, in the rows of the validated epochs.

    MONAI's ``StatsHandler``, ``TensorBoardStatsHandler`` and ``MLFlowHandler`` on the validator log
    ``engine.state.metrics`` at the end of the round; list this handler *before* them so they log the new values
    of the same round.

    Which output it reads: on a MONAI workflow (``SupervisedEvaluator``) the batch right after the forward pass
    (``IterationEvents.FORWARD_COMPLETED``), before post-processing, so ``pred`` still holds the raw logits of
    the whole batch (the validator's ``Activationsd(softmax=True)`` runs later) and ``label`` the batched labels;
    on a plain ignite ``Engine``, ``engine.state.output`` at ``ITERATION_COMPLETED``. Validation with
    ``val_interval > 1`` updates the multipliers every ``val_interval`` epochs.

    The multipliers live in the loss's buffers: to carry them over ``--resume``, the trainer's checkpoint must
    hold the loss (e.g. ``loss: "@loss"`` in the bundle's ``train#resume_state``).

    Args:
        loss: the training loss. If it is not an :class:`~monai_nacl.losses.AdaptiveNeighborAwareLoss`, ``attach``
            registers nothing (logged), so one bundle config can list the handler whatever ``--loss_name`` is.
        output_transform: maps the output read (see above) to ``(logits, labels)``: tensors ``(B, C, *spatial)``
            raw logits (not softmax) and labels ``(B, 1, *spatial)`` (or one-hot ``(B, C, *spatial)``), or sequences
            of per-item tensors (decollated outputs). Default (``None``): ``from_engine(["pred", "label"])``.

    Example:
        >>> loss = AdaptiveNeighborAwareLoss(num_classes=3)
        >>> LagrangeMultiplierHandler(loss).attach(evaluator)  # doctest: +SKIP
    """

    def __init__(
        self,
        loss: torch.nn.Module,
        output_transform: Callable[[Any], tuple[Any, Any]] | None = None,
    ) -> None:
        self.loss = loss
        self.output_transform = from_engine(["pred", "label"]) if output_transform is None else output_transform
        self._sum: torch.Tensor | None = None
        self._count: torch.Tensor | None = None

    def attach(self, engine: Engine) -> None:
        """Register the accumulation, the reset at each round's start and the update at its end."""
        if not isinstance(self.loss, AdaptiveNeighborAwareLoss):
            logger.info(
                "LagrangeMultiplierHandler: the loss %s has no Lagrange multipliers; nothing to update.",
                type(self.loss).__name__,
            )
            return
        read_event = IterationEvents.FORWARD_COMPLETED if isinstance(engine, Workflow) else Events.ITERATION_COMPLETED
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(read_event, self.accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.update)

    def reset(self, engine: Engine | None = None) -> None:
        """Clear the round's sums."""
        shape = tuple(self.loss.lagrange_multipliers.shape)
        self._sum = torch.zeros(shape, dtype=torch.float64)
        self._count = torch.zeros(shape, dtype=torch.float64)

    def accumulate(self, engine: Engine) -> None:
        """Add the constraint sums and counts of the current output."""
        if self._sum is None or self._count is None:
            self.reset()
        logits, labels = self.output_transform(engine.state.output)
        logits, labels = _as_batches(logits), _as_batches(labels)
        if len(logits) != len(labels):
            raise ValueError(f"output_transform gave {len(logits)} logits items but {len(labels)} label items.")
        for batch_logits, batch_labels in zip(logits, labels):
            total, count = self.loss.constraint_statistics(batch_logits.detach(), batch_labels)
            self._sum += total.cpu()
            self._count += count.cpu()

    def update(self, engine: Engine) -> None:
        """Sum over ranks, update the loss's multipliers and write them to ``engine.state.metrics``."""
        if self._sum is None or self._count is None:
            self.reset()
        totals = _sum_over_ranks(torch.stack([self._sum, self._count]))
        with torch.no_grad():
            mean = totals[0] / totals[1]  # 0 / 0 = NaN: a pair with an empty count keeps its multipliers
        self.loss.update_multipliers(mean, int(engine.state.epoch))
        lam, rho = self.loss.lagrange_multipliers.tolist(), self.loss.penalty_rho.tolist()
        for r, region in enumerate(REGIONS):
            for c in range(len(lam[r])):
                engine.state.metrics[f"lagrange_{region}_{c}"] = lam[r][c]
                engine.state.metrics[f"penalty_rho_{region}_{c}"] = rho[r][c]
                engine.state.metrics[f"constraint_{region}_{c}"] = float(mean[r, c])
        logger.info("Lagrange multipliers after epoch %d: %s; rho: %s", engine.state.epoch, lam, rho)
