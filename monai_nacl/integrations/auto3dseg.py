"""Use a calibration loss in MONAI Auto3DSeg algorithms (segresnet, segresnet2d, swinunetr, dints).

``BundleAlgo.train`` runs each generated algorithm's ``scripts/train.py`` in a new process and passes it every
``configs/*.yaml`` in sorted order; what the script does with them differs per template (Project-MONAI
research-contributions ``auto3dseg/algorithm_templates`` at :data:`TEMPLATES_COMMIT`, the templates MONAI 1.6.1
downloads):

- segresnet, segresnet2d (``scripts/segmenter.py`` ``Segmenter.parse_input_config``) and dints (``scripts/train.py``
  and the architecture search ``scripts/search.py``) merge the files in the order given, the last file winning;
- swinunetr (``scripts/train.py`` ``run``) merges every file except ``hyper_parameters.yaml``, then sets each
  top-level key of ``hyper_parameters.yaml`` over the result (``parser.update(pairs=...)``), so that file's
  ``loss`` replaces a loss from any other file.

:func:`inject_loss` therefore writes the loss where the template's own merge makes it final: the extra file
:data:`OVERRIDE_FILE` (sorted last) for segresnet, segresnet2d and dints (``training#loss`` and the search stage's
``searching#loss``), and the ``loss`` entry of ``hyper_parameters.yaml`` itself for swinunetr. It then merges each
algorithm's configs as its template does (:func:`template_config`) and stops with an error if any loss entry does
not resolve to the injected component. The loss is a component with a dotted ``_target_``: segresnet builds it
with a parser of that entry alone, which has no ``imports``.

Typical use, between AutoRunner's generation and training (its cache keeps the generated folders)::

    AutoRunner(work_dir, input=task, train=False, ensemble=False).run()  # analysis and generation
    inject_loss(work_dir, "nacl")
    AutoRunner(work_dir, input=task).run()  # trains the generated algorithms with the injected loss
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from monai.bundle import ConfigParser

from monai_nacl.losses import LOSS_NAMES
from monai_nacl.utils import atomic_write_text

__all__ = [
    "LOSS_KEYS",
    "OVERRIDE_FILE",
    "TEMPLATES_COMMIT",
    "algorithm_template",
    "find_algorithms",
    "inject_loss",
    "loss_component",
    "loss_keys",
    "template_config",
]

TEMPLATES_COMMIT = "21ed8e57c7256834d4fbaf19579ca25ad3d135ee"
"""The research-contributions commit of the templates whose merge orders are reproduced here (MONAI 1.6.1's
``MONAI_ALGO_HASH`` default, ``21ed8e5``)."""

OVERRIDE_FILE = "zz_calibration_loss.yaml"
"""Name of the file written for templates that merge their config files in order: ``zz_`` sorts it last."""

LOSS_KEYS = {
    "segresnet": ("loss",),
    "segresnet2d": ("loss",),
    "swinunetr": ("loss",),
    "dints": ("training#loss", "searching#loss"),
}
"""Config ids of the losses each template trains with (dints: training, then architecture search)."""

_LOSS_IDS = ("loss", "training#loss", "searching#loss")
_SIGMOID_SWITCHES = {"sigmoid": True, "softmax": False, "training#softmax": False, "searching#softmax": False}
"""Config ids and values that set a template to sigmoid outputs (segresnet: ``sigmoid``; swinunetr: ``softmax``;
dints: ``training#softmax`` and ``searching#softmax``)."""


def loss_component(loss: str | dict[str, Any]) -> dict[str, Any]:
    """The config component of ``loss``.

    Args:
        loss: a name of :data:`monai_nacl.losses.LOSS_NAMES` (built by ``monai_nacl.losses.create_calibration_loss``
            with its defaults) or a component dict with a dotted-path ``_target_`` (no ``imports`` are available
            where the templates parse it), e.g. ``{"_target_": "monai_nacl.losses.NeighborAwareLoss", "alpha": 0.1}``.
    """
    if isinstance(loss, str):
        if loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss name {loss!r}; use one of {sorted(LOSS_NAMES)} or a component dict.")
        return {"_target_": "monai_nacl.losses.create_calibration_loss", "name": loss}
    if isinstance(loss, dict):
        target = loss.get("_target_")
        if not isinstance(target, str) or "." not in target:
            raise ValueError(
                f"loss component needs a dotted-path `_target_` (got {target!r}), e.g. "
                "'monai_nacl.losses.NeighborAwareLoss': the Auto3DSeg templates parse it without imports."
            )
        return dict(loss)
    raise ValueError(f"loss must be a loss name or a component dict, got {type(loss).__name__}.")


def algorithm_template(algo_dir: str | Path, template: str | None = None) -> str | None:
    """The official template of a generated algorithm: ``template`` if given, else the one its folder is named
    after (``segresnet2d_0`` -> ``segresnet2d``); ``None`` for a folder named after no official template."""
    if template is not None:
        if template not in LOSS_KEYS:
            raise ValueError(f"unknown Auto3DSeg template {template!r}; use one of {sorted(LOSS_KEYS)}.")
        return template
    name = Path(algo_dir).name.lower()
    for known in sorted(LOSS_KEYS, key=len, reverse=True):
        if name == known or name.startswith(f"{known}_"):
            return known
    return None


def _config_files(algo_dir: Path) -> list[Path]:
    """The files ``BundleAlgo._create_cmd`` passes to the algorithm's scripts, in its (sorted) order."""
    config_dir = algo_dir / "configs"
    return [
        config_dir / name for name in sorted(p.name for p in config_dir.iterdir()) if name.endswith(("yaml", "json"))
    ]


def _hyper_parameters_file(files: list[Path]) -> Path | None:
    """The file swinunetr's ``pre_operation`` returns: the last one whose name ends with ``hyper_parameters.yaml``."""
    hyper = [f for f in files if f.name.endswith("hyper_parameters.yaml")]
    return hyper[-1] if hyper else None


def template_config(algo_dir: str | Path, template: str | None = None) -> dict[str, Any]:
    """The configs of a generated algorithm merged as its template's scripts merge them (before command-line
    overrides), for the templates at :data:`TEMPLATES_COMMIT`.

    Args:
        algo_dir: a generated algorithm folder (``configs/`` and ``scripts/``).
        template: its template (one of :data:`LOSS_KEYS`); ``None`` takes it from the folder name
            (:func:`algorithm_template`), and a folder of no official template is merged in the order
            ``BundleAlgo`` passes the files, as segresnet and dints merge them.
    """
    algo_dir = Path(algo_dir)
    return _merge(_config_files(algo_dir), algorithm_template(algo_dir, template))


def _merge(files: list[Path], template: str | None) -> dict[str, Any]:
    if template == "swinunetr":
        # swinunetr/scripts/train.py run(): read_config(every file but hyper_parameters.yaml, hidden and .lock),
        # then parser.update(pairs=<hyper_parameters.yaml>): each top-level key of that file replaces the merged one
        parser = ConfigParser()
        parser.read_config(
            [str(f) for f in files if not (f.name.endswith("hyper_parameters.yaml") or f.name.startswith("."))]
        )
        hyper = _hyper_parameters_file(files)
        if hyper is not None:
            parser.update(pairs=ConfigParser.load_config_file(hyper))
        return parser.get()
    config = ConfigParser.load_config_files([str(f) for f in files]) if files else {}
    finetune = config.get("finetune") if template == "dints" else None
    # dints/scripts/train.py run(): a fine-tuning run lays finetune#overwrite over training
    if isinstance(finetune, dict) and finetune.get("activate_finetune") and isinstance(finetune.get("overwrite"), dict):
        config.setdefault("training", {}).update(finetune["overwrite"])
    return config


def loss_keys(algo_dir: str | Path, template: str | None = None) -> tuple[str, ...]:
    """Config ids of the losses of a generated algorithm.

    The ids among ``loss``, ``training#loss``, ``searching#loss`` that its configs define (merged as its template
    merges them, :data:`OVERRIDE_FILE` left out), so that other template versions and custom templates are served;
    when they define none, the ids of :data:`LOSS_KEYS` for its template (see :func:`algorithm_template`).
    """
    algo_dir = Path(algo_dir)
    template = algorithm_template(algo_dir, template)
    files = [f for f in _config_files(algo_dir) if f.name != OVERRIDE_FILE]
    merged = ConfigParser(_merge(files, template))
    defined = tuple(key for key in _LOSS_IDS if key in merged)
    if defined:
        return defined
    if template is not None:
        return LOSS_KEYS[template]
    raise ValueError(
        f"cannot tell the losses of {algo_dir}: its configs define none of {list(_LOSS_IDS)} and its name starts "
        f"with none of {sorted(LOSS_KEYS)}; pass template= (its merge order and loss ids)."
    )


def _check_softmax(algo_dir: Path, template: str | None) -> None:
    """The losses here are softmax losses over exclusive classes; a template set to sigmoid outputs trains
    overlapping binary channels, whose targets they would take as (unnormalised) class distributions."""
    merged = ConfigParser(template_config(algo_dir, template))
    for key, sigmoid_value in _SIGMOID_SWITCHES.items():
        if key in merged and merged[key] is sigmoid_value:
            raise ValueError(
                f"{algo_dir} is set to sigmoid outputs ({key}: {str(sigmoid_value).lower()}, overlapping labels); "
                "the monai_nacl losses are softmax losses over exclusive classes. Generate the algorithms with "
                "sigmoid false (the default) to use them."
            )


def find_algorithms(path: str | Path) -> list[Path]:
    """Generated algorithm folders (holding ``configs/`` and ``scripts/``) at ``path`` or directly below it.

    Args:
        path: one algorithm folder, or an Auto3DSeg work dir holding ``<template>_<fold>`` folders.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; pass an Auto3DSeg work dir or a generated algorithm folder.")
    if (root / "configs").is_dir() and (root / "scripts").is_dir():
        return [root]
    algos = sorted(p for p in root.iterdir() if (p / "configs").is_dir() and (p / "scripts").is_dir())
    if not algos:
        raise ValueError(
            f"no generated algorithm (a folder with configs/ and scripts/) in {root}; run BundleGen first."
        )
    return algos


def _target_file(algo_dir: Path, template: str | None) -> Path:
    """The file whose entries the template's merge order makes final: swinunetr's ``hyper_parameters.yaml``, else
    :data:`OVERRIDE_FILE` (merged last by templates that merge their files in order)."""
    if template != "swinunetr":
        return algo_dir / "configs" / OVERRIDE_FILE
    hyper = _hyper_parameters_file(_config_files(algo_dir))
    if hyper is None:
        raise ValueError(
            f"{algo_dir} has no configs/hyper_parameters.yaml, which swinunetr's train.py merges last; "
            "generate the algorithm with BundleGen (or AutoRunner) first."
        )
    return hyper


def _with_entries(path: Path, keys: tuple[str, ...], component: dict[str, Any]) -> str:
    """The text of ``path`` with a copy of ``component`` at each of ``keys``; :data:`OVERRIDE_FILE` holds only those,
    as ``#`` ids that the merge of config files places in the nested structure."""
    entries = {key: copy.deepcopy(component) for key in keys}
    if path.name == OVERRIDE_FILE:
        return yaml.safe_dump(entries, sort_keys=False)
    parser = ConfigParser(ConfigParser.load_config_file(path))
    parser.update(entries)
    return yaml.safe_dump(parser.get(), sort_keys=False, default_flow_style=None)


def inject_loss(path: str | Path, loss: str | dict[str, Any] = "nacl", template: str | None = None) -> list[Path]:
    """Make each algorithm under ``path`` train with ``loss``; return the files written.

    segresnet, segresnet2d, dints and custom templates get ``configs/`` :data:`OVERRIDE_FILE`; swinunetr's loss is
    replaced inside its ``configs/hyper_parameters.yaml`` (a new generation restores the template's). Every
    algorithm is checked before any file is written; afterwards each loss entry is read back as the template merges
    its configs (:func:`template_config`), and if one is not the injected loss every file is restored and an error
    names the entry. A ``loss`` passed in the training parameters of ``BundleAlgo.train``
    still overrides the files, as in any template.

    Args:
        path: an Auto3DSeg work dir (after ``BundleGen.generate`` or ``AutoRunner(..., train=False).run()``) or one
            generated algorithm folder.
        loss: a loss name of :data:`monai_nacl.losses.LOSS_NAMES` or a component dict (see :func:`loss_component`).
        template: the template of every algorithm (one of :data:`LOSS_KEYS`), which fixes its merge order and, where
            its configs define no loss entry, its loss ids; ``None`` takes each algorithm's from its folder name.
    """
    component = loss_component(loss)
    plans = {}
    for algo in find_algorithms(path):
        algo_template = algorithm_template(algo, template)
        _check_softmax(algo, algo_template)
        plans[algo] = (algo_template, loss_keys(algo, algo_template), _target_file(algo, algo_template))
    previous: dict[Path, str | None] = {}
    try:
        for algo, (algo_template, keys, target) in plans.items():
            previous[target] = target.read_text() if target.is_file() else None
            atomic_write_text(target, _with_entries(target, keys, component))
            merged = ConfigParser(template_config(algo, algo_template))
            wrong = {key: merged[key] for key in keys if merged[key] != component}
            if wrong:
                raise RuntimeError(
                    f"{algo}: after writing {target.name}, {wrong} is what the {algo_template or 'sorted-file'} "
                    f"merge order reads, not the injected {component!r}; another config entry replaces it "
                    "(e.g. dints' finetune#overwrite#loss): remove that entry. No file was changed."
                )
    except BaseException:
        for target, text in previous.items():  # every algorithm trains with the injected loss, or none does
            if text is None:
                target.unlink(missing_ok=True)
            else:
                atomic_write_text(target, text)
        raise
    return list(previous)
