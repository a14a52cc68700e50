"""Refuse a ``python -m monai.bundle run`` override that names no id of the config (a typo such as ``--max_epoch``).

MONAI's bundle runner takes every unknown ``--key value`` as an override and, when ``key`` names nothing, adds a new
id that no expression reads: ``--max_epoch 1`` trained the default 40 epochs without a word. The bundles' start-up
calls :func:`refuse_unknown_overrides` first; it re-reads the command line the runner was given, merges the
config files the same way, and stops naming each unknown id with the closest existing ones.

Accepted: every id of the merged configs (nested ``a#b#c`` included), the runner's own options, and a new argument
of a component (``--network_def#dropout 0.1`` where ``network_def`` has a ``_target_``), which MONAI passes to
the constructor. Overrides set in an ``--args_file`` are checked the same way.

Only a process started as ``python -m monai.bundle run`` is checked: inside MONAI Label, Auto3DSeg or a test that
builds a ``ConfigParser`` itself, ``sys.argv`` belongs to another program and nothing is done.
"""

from __future__ import annotations

import ast
import difflib
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["RUNNER_OPTIONS", "UnknownOverride", "refuse_unknown_overrides", "unknown_overrides"]

# the keyword arguments of monai.bundle.scripts.run (and run_workflow): not config ids
RUNNER_OPTIONS = frozenset(
    {
        "run_id",
        "init_id",
        "final_id",
        "meta_file",
        "config_file",
        "logging_file",
        "tracking",
        "args_file",
        "workflow_type",
        "workflow_name",
        "properties_path",
    }
)


class UnknownOverride(SystemExit):
    """An override names no id of the config; :attr:`unknown` maps each such id to its closest existing ids.

    A ``SystemExit`` for the reason :class:`monai_nacl.bundle.DataCheckFailed` gives: MONAI passes it through, and the
    interpreter prints the message alone and exits with status 1.
    """

    def __init__(self, message: str, unknown: Mapping[str, Sequence[str]]) -> None:
        super().__init__(message)
        self.unknown = dict(unknown)


def _config_ids(content: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(content, Mapping):
        items: Iterable[tuple[Any, Any]] = content.items()
    elif isinstance(content, list):
        items = enumerate(content)
    else:
        return
    for key, value in items:
        name = f"{prefix}{key}"
        yield name
        yield from _config_ids(value, f"{name}#")


def _lookup(content: Any, parts: Sequence[str]) -> tuple[bool, Any]:
    for part in parts:
        if isinstance(content, Mapping) and part in content:
            content = content[part]
        elif isinstance(content, list) and part.isdigit() and int(part) < len(content):
            content = content[int(part)]
        else:
            return False, None
    return True, content


def unknown_overrides(config: Mapping[str, Any], override_ids: Iterable[str], n: int = 3) -> dict[str, list[str]]:
    """The override ids that name nothing in ``config``, each with up to ``n`` closest existing ids.

    ``config`` is the merged content of the config files (nested dictionaries). An id is known when it exists,
    when it is one of the runner's options, or when it adds an argument to a component (its parent is a dictionary
    with ``_target_``). MONAI's ``::`` separator is read as ``#``.

    >>> unknown_overrides({"max_epochs": 10, "net": {"_target_": "UNet"}}, ["max_epoch", "net#dropout", "run_id"])
    {'max_epoch': ['max_epochs']}
    """
    ids = sorted(set(_config_ids(config)))
    unknown: dict[str, list[str]] = {}
    for override in override_ids:
        key = str(override).replace("::", "#")
        if key in RUNNER_OPTIONS:
            continue
        parts = key.split("#")
        found, _ = _lookup(config, parts)
        if found:
            continue
        parent_found, parent = _lookup(config, parts[:-1])
        if len(parts) > 1 and parent_found and isinstance(parent, Mapping) and "_target_" in parent:
            continue
        # ids at the same depth first (--max_epoch: max_epochs, not settings#max_epochs), else any depth
        same_depth = [i for i in ids if i.count("#") == key.count("#")]
        unknown[key] = difflib.get_close_matches(key, same_depth, n=n, cutoff=0.6) or difflib.get_close_matches(
            key, ids, n=n, cutoff=0.6
        )
    return unknown


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_runner_argv(argv: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``(runner options, override ids)`` of ``monai.bundle run`` arguments (Fire's ``--key value``/``--key=value``)."""
    options: dict[str, Any] = {}
    overrides: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if not token.startswith("--") or token == "--":
            continue
        key, has_value, value = token[2:].partition("=")
        if not has_value and index < len(argv) and not argv[index].startswith("--"):
            value, index = argv[index], index + 1
        if key in RUNNER_OPTIONS:
            options[key] = _literal(value)
        else:
            overrides.append(key)
    return options, overrides


def _started_as_bundle_runner(argv: Sequence[str]) -> bool:
    if len(argv) < 2 or argv[1] not in ("run", "run_workflow"):
        return False
    path = Path(argv[0])
    return path.name == "__main__.py" and path.parent.name == "bundle" and path.parent.parent.name == "monai"


def refuse_unknown_overrides(argv: Sequence[str] | None = None) -> None:
    """Stop a ``python -m monai.bundle run`` whose overrides name ids that no config file holds.

    Args:
        argv: the runner's command line; default ``sys.argv`` (nothing is checked unless it is
            ``.../monai/bundle/__main__.py run ...``). Tests pass ``["monai/bundle/__main__.py", "run", ...]``.

    Raises:
        UnknownOverride: naming each unknown id, the closest ids of the config and the fix.
    """
    argv = list(sys.argv if argv is None else argv)
    if not _started_as_bundle_runner(argv):
        return
    from monai.bundle import ConfigParser

    options, overrides = _parse_runner_argv(argv[2:])
    if options.get("args_file"):
        from_file = ConfigParser.load_config_file(str(options["args_file"]))
        if isinstance(from_file, Mapping):
            options = {**{k: v for k, v in from_file.items() if k in RUNNER_OPTIONS}, **options}
            overrides += [k for k in from_file if k not in RUNNER_OPTIONS]
    if not overrides or not options.get("config_file"):
        return
    config = dict(ConfigParser.load_config_files(options["config_file"]))
    if options.get("meta_file"):
        config["_meta_"] = ConfigParser.load_config_files(options["meta_file"])
    unknown = unknown_overrides(config, overrides)
    if not unknown:
        return
    lines = []
    for key, close in unknown.items():
        hint = f"did you mean {', '.join('--' + c for c in close)}?" if close else "no id of the config is close."
        lines.append(f"  --{key}: {hint}")
    raise UnknownOverride(
        f"{len(unknown)} override(s) name no id of the config {options['config_file']}, so they would change "
        "nothing (MONAI adds an unknown id silently):\n"
        + "\n".join(lines)
        + "\nfix: correct the spelling (ids are listed in the config files), or remove the override.",
        unknown,
    )
