"""Command-line config overrides in ``python -m monai.bundle run`` form: ``--id value``, ``--a#b#c value``.

``compare`` takes a forwarded override's value as text and reads it as a Python literal where it is one, otherwise
keeps the text (:func:`literal`); :func:`command_line_value` writes a value so that ``fire``, which parses the
command line of ``python -m monai.bundle run``, reads back exactly that value.
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["command_line_value", "literal", "split_overrides"]


def literal(text: str) -> Any:
    """``"0.2"`` -> 0.2, ``"['a', 'b']"`` -> list, ``"True"`` -> True; anything else stays the string given."""
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


def command_line_value(value: Any) -> str:
    """The command-line text of an override value: ``repr`` of the value, text read with :func:`literal` first.

    ``fire`` reads a value as a Python literal too, but it also turns bare words into strings, so unquoted it would
    read ``a,b`` as the tuple ``('a', 'b')`` and ``abc#def`` as ``'abc'`` (``#`` starts a comment); quoted, a text that
    is no literal comes back whole (``"$@a + 1"``, ``"/data/case #3"``), and a literal (``[48, 48]``, ``0.2``,
    ``True``) as itself.
    """
    return repr(literal(value) if isinstance(value, str) else value)
