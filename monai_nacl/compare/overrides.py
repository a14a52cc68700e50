"""Command-line config overrides in ``python -m monai.bundle run`` form: ``--id value``, ``--a#b#c value``."""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["literal", "parse_overrides", "split_overrides"]


def literal(text: str) -> Any:
    """``"0.2"`` -> 0.2, ``"['a', 'b']"`` -> list, ``"True"`` -> True; anything else stays a string (as ``fire``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def split_overrides(args: list[str]) -> dict[str, str]:
    """Turn ``["--key", "value", "--a#b", "1"]`` into ``{"key": "value", "a#b": "1"}`` (values kept as text).

    Args:
        args: alternating ``--name`` and value tokens; ``--name=value`` is accepted too.

    Raises:
        ValueError: for a token that is not ``--name`` where a name is expected, or a name without a value.
    """
    result: dict[str, str] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or len(token) == 2:
            raise ValueError(f"expected '--name value' pairs, got {token!r} at position {i} of {args}.")
        if "=" in token:
            key, value = token[2:].split("=", 1)
            i += 1
        elif i + 1 < len(args):
            key, value = token[2:], args[i + 1]
            i += 2
        else:
            raise ValueError(f"option {token!r} has no value; write '{token} VALUE'.")
        result[key] = value
    return result


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """As :func:`split_overrides`, with values read as Python literals where they parse as one (like ``fire``)."""
    return {key: literal(value) for key, value in split_overrides(args).items()}
