"""Values as JSON holds them exactly, for the records the bundles write (``task.json``)."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["JSON_SCALARS", "json_value"]

JSON_SCALARS = (type(None), bool, int, float, str)
"""The Python types of JSON's scalars."""


def json_value(value: Any) -> tuple[bool, Any]:
    """``(True, plain)`` for values JSON can hold exactly, else ``(False, None)``.

    Tuples become lists, NumPy and torch scalars Python numbers, tensors of at most 64 elements nested lists;
    non-finite floats are refused (JSON has no ``NaN``), as is anything else.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # NumPy / torch scalars
        value = value.item()
    if isinstance(value, JSON_SCALARS):
        return (False, None) if isinstance(value, float) and not math.isfinite(value) else (True, value)
    if isinstance(value, (list, tuple)):
        items = [json_value(v) for v in value]
        return (all(ok for ok, _ in items), [v for _, v in items])
    if isinstance(value, torch.Tensor) and value.numel() <= 64:
        return True, value.tolist()
    return False, None
