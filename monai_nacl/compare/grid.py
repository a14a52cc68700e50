"""The variants a comparison trains: one per loss, plus the points of an optional parameter grid.

A variant is a row of the report. Its name is the bundle's ``loss_name`` for a plain loss, or
``loss(param=value,...)`` for a grid point, whose parameters reach the bundle as ``--losses#<loss>#<param>``
overrides.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

__all__ = ["POSTHOC_LABELS", "Variant", "expand_grid", "parse_grid"]

POSTHOC_LABELS = {"ts": "TS", "vector": "VS", "lts": "LTS"}
"""Row suffix of each post-hoc method (``nacl + TS``): temperature, vector and local temperature scaling."""


@dataclass(frozen=True)
class Variant:
    """One configuration to train and evaluate (a row of the report before seeds are pooled).

    Args:
        loss_name: the bundle's ``loss_name`` value (``ce``, ``nacl``, ...).
        params: loss parameters set on top of the bundle's defaults, in the order given by the user.
        posthoc: the post-hoc calibration (a key of :data:`POSTHOC_LABELS`) of the row of a trained variant
            calibrated after training, None for the trained model as it is.
    """

    loss_name: str
    params: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    posthoc: str | None = None

    def __post_init__(self) -> None:
        if self.posthoc is not None and self.posthoc not in POSTHOC_LABELS:
            raise ValueError(f"posthoc must be one of {sorted(POSTHOC_LABELS)} or None, got {self.posthoc!r}.")

    @property
    def name(self) -> str:
        """Row name: ``nacl``, ``nacl(alpha=0.2,kernel_size=5)``, ``nacl + TS``, ``nacl + LTS``."""
        base = self.loss_name
        if self.params:
            base += "(" + ",".join(f"{key}={value}" for key, value in self.params) + ")"
        return f"{base} + {POSTHOC_LABELS[self.posthoc]}" if self.posthoc else base

    @property
    def run_name(self) -> str:
        """Folder name of the training runs of this variant (the post-hoc rows share the trained model)."""
        base = self.loss_name
        if self.params:
            base += "__" + "_".join(f"{key}-{value}" for key, value in self.params)
        return base

    def overrides(self) -> dict[str, str]:
        """Bundle overrides that select this variant: ``loss_name`` and ``losses#<loss>#<param>``."""
        result = {"loss_name": self.loss_name}
        for key, value in self.params:
            result[f"losses#{self.loss_name}#{key}"] = value
        return result


def parse_grid(spec: str) -> tuple[str, dict[str, list[str]]]:
    """Parse ``"loss:param=v1,v2;param2=w1,w2"`` into ``(loss, {param: [values]})``.

    Args:
        spec: the ``--grid`` text. Values stay strings; the bundle parses them as Python literals, as
            ``python -m monai.bundle run`` does with command-line overrides.

    Raises:
        ValueError: on a missing ``loss:`` prefix, a parameter without ``=``, an empty value list or a
            parameter named twice.
    """
    loss, sep, body = spec.partition(":")
    loss = loss.strip()
    if not sep or not loss or not body.strip():
        raise ValueError(
            f"--grid {spec!r} must read 'loss:param=v1,v2;param2=w1,w2', e.g. 'nacl:alpha=0.05,0.1;kernel_size=3,5'."
        )
    params: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in body.split(";"))):
        key, eq, values = part.partition("=")
        key = key.strip()
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not key or not items:
            raise ValueError(f"--grid {spec!r}: {part!r} must read 'param=v1,v2' with at least one value.")
        if key in params:
            raise ValueError(f"--grid {spec!r}: parameter {key!r} is given twice; list all its values once.")
        params[key] = items
    return loss, params


def expand_grid(spec: str) -> list[Variant]:
    """All points of a ``--grid`` spec, the last parameter varying fastest.

    ``expand_grid("nacl:alpha=0.1,0.2;kernel_size=3,5")`` gives ``nacl(alpha=0.1,kernel_size=3)``,
    ``nacl(alpha=0.1,kernel_size=5)``, ``nacl(alpha=0.2,kernel_size=3)``, ``nacl(alpha=0.2,kernel_size=5)``.

    Args:
        spec: the ``--grid`` text (see :func:`parse_grid`).
    """
    loss, params = parse_grid(spec)
    keys = list(params)
    return [Variant(loss, tuple(zip(keys, combo))) for combo in itertools.product(*(params[k] for k in keys))]
