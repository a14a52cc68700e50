"""Validation every ``interval`` epochs and always after the last one, so every training run leaves a ``model.pt``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ignite.engine import Events
from monai.handlers import ValidationHandler

if TYPE_CHECKING:
    from ignite.engine import Engine
    from monai.engines import Evaluator

__all__ = ["ValidationScheduleHandler"]


class ValidationScheduleHandler(ValidationHandler):
    """MONAI's ``ValidationHandler`` (epoch level) that also validates after the last epoch.

    With ``val_interval 5`` and ``--max_epochs 1`` MONAI's handler never validates, so the checkpoint saver of the
    validator never writes ``model.pt``; this one validates at epochs ``interval, 2 * interval, ...`` and at
    ``max_epochs`` (once, when that is also a multiple).

    Args:
        validator: the evaluator (``@validate#evaluator``).
        interval: validate every ``interval`` epochs.
        exec_at_start: also validate before training.
    """

    def __init__(self, validator: Evaluator, interval: int, exec_at_start: bool = False) -> None:
        super().__init__(interval=interval, validator=validator, epoch_level=True, exec_at_start=exec_at_start)

    def attach(self, engine: Engine) -> None:
        """Register on the scheduled epochs (and at start with ``exec_at_start``)."""

        def scheduled(engine: Engine, epoch: int) -> bool:
            return epoch % self.interval == 0 or epoch == engine.state.max_epochs

        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=scheduled), self)
        if self.exec_at_start:
            engine.add_event_handler(Events.STARTED, self)
