"""The label-free Dice estimate of a prediction, stored in the item while its probabilities are still there."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["DiceEstimated"]


class DiceEstimated(MapTransform):
    """Add the Soft Dice Confidence of each class (:func:`~monai_nacl.metrics.soft_dice_confidence`) of a probability
    item under ``estimate_key``, a float64 tensor ``(C,)``, background included.

    An inference's postprocessing turns the probabilities into the label map (``UncertaintyMapsd(seg_key="pred")``)
    before any handler sees the item, so the estimate is taken here, after ``Activationsd(softmax=True)`` and
    ``Invertd`` (on the image's own grid, where an evaluation measures the true Dice) and before the label map;
    :class:`~monai_nacl.handlers.DiceEstimateHandler` and MONAI Label's scoring
    (:class:`~monai_nacl.integrations.monailabel.DiceEstimateScoring`) read it from the item.

    Args:
        keys: the one probability item ``(C, *spatial)``, typically ``"pred"``.
        estimate_key: name of the new item.
    """

    def __init__(self, keys: KeysCollection = "pred", estimate_key: str = "dice_estimate") -> None:
        super().__init__(keys)
        if len(self.keys) != 1:
            raise ValueError(
                f"DiceEstimated estimates the Dice of one probability item, got keys={self.keys}; use one "
                "DiceEstimated per item with distinct estimate_key names."
            )
        self.estimate_key = estimate_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_nacl.metrics import soft_dice_confidence

        d = dict(data)
        probs = d[self.keys[0]]
        if not isinstance(probs, torch.Tensor) or probs.ndim < 2 or probs.shape[0] < 2:
            raise ValueError(
                f"DiceEstimated expects item {self.keys[0]!r} to hold channel-first probabilities (C, *spatial), C >= 2, got "
                f"{type(probs).__name__} of shape {tuple(getattr(probs, 'shape', ()))}; put it after "
                "Activationsd(softmax=True) and before the transform that turns the item into a label map."
            )
        d[self.estimate_key] = soft_dice_confidence(probs.detach()[None])[0].cpu()
        return d
