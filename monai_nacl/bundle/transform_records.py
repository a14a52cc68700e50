"""Transforms and networks described as MONAI config entries (``{"_target_": ..., <argument>: <value>}``) and
rebuilt from such a description: how ``task.json`` records the intensity transforms and the network a model was
trained with, and how evaluation and inference get them back."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pydoc import locate
from typing import Any

from monai_nacl.bundle.json_values import JSON_SCALARS, json_value

__all__ = ["build_described", "class_path", "describe_transform", "without_markers"]


def describe_transform(transform: Any) -> dict[str, Any]:
    """A MONAI-config description of a transform instance, ``{"_target_": ..., <argument>: <value>, ...}``.

    The arguments are the constructor's parameters found as attributes of the instance or of the transforms it
    holds (``NormalizeIntensityd`` keeps ``nonzero`` on its ``normalizer``); those equal to their default are left
    out. The description is verified by rebuilding the transform from it and comparing every stored attribute;
    when that fails (a parameter kept under another name, a value JSON cannot hold) it carries
    ``"_rebuildable_": false`` and is only compared, never rebuilt.
    """
    from monai.transforms import Transform

    holders = [transform, *(v for v in vars(transform).values() if isinstance(v, Transform))]
    description: dict[str, Any] = {"_target_": class_path(transform)}
    rebuildable = True
    for parameter in list(inspect.signature(type(transform).__init__).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        holder = next((h for h in holders if parameter.name in vars(h)), None)
        if holder is None:
            rebuildable &= parameter.default is not parameter.empty
            continue
        value = vars(holder)[parameter.name]
        if parameter.default is not parameter.empty and _same(value, parameter.default):
            continue
        ok, plain = json_value(value)
        if ok:
            description[parameter.name] = plain
        else:
            rebuildable = False
            description[parameter.name] = repr(value)
    if rebuildable:
        try:
            rebuilt = build_described(description)
            rebuildable = _plain_state(rebuilt) == _plain_state(transform)
        except Exception:  # noqa: BLE001 - any constructor failure means: compare only, never rebuild
            rebuildable = False
    if not rebuildable:
        description["_rebuildable_"] = False
    return description


def _same(a: Any, b: Any) -> bool:
    """Whether an argument's value is its default (equal JSON scalars or same-typed values, else the same object)."""
    try:
        return bool(a == b) if type(a) is type(b) or isinstance(a, JSON_SCALARS) else a is b
    except Exception:  # noqa: BLE001 - e.g. an array compared with a scalar: not the default
        return False


def build_described(description: Mapping[str, Any]) -> Any:
    """The object a description (``{"_target_": <class path>, <argument>: <value>, ...}``) stands for; keys of the
    form ``_name_`` (``_rebuildable_``) are markers, not arguments."""
    target = locate(description["_target_"])
    if target is None:
        raise ValueError(f"cannot import {description['_target_']!r}.")
    return target(**{k: v for k, v in description.items() if not (k.startswith("_") and k.endswith("_"))})


def class_path(obj: Any) -> str:
    """The dotted path of a class or of an instance's class, as a config's ``_target_`` names it."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__name__}"


def _plain_state(obj: Any) -> dict[str, Any]:
    """The JSON-able attributes of a transform and of the transforms it holds (what its constructor stored)."""
    from monai.transforms import Transform

    state = {}
    for name, value in vars(obj).items():
        if isinstance(value, Transform):
            state.update({f"{name}.{k}": v for k, v in _plain_state(value).items()})
        else:
            ok, plain = json_value(value)
            state[name] = plain if ok else repr(value)
    return state


def without_markers(descriptions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The descriptions without their ``_rebuildable_`` marker, to compare what they describe."""
    return [{k: v for k, v in d.items() if k != "_rebuildable_"} for d in descriptions]
