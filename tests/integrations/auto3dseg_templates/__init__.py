"""Stand-ins for the official Auto3DSeg algorithm templates (Project-MONAI/research-contributions
``auto3dseg/algorithm_templates`` at 21ed8e57c7256834d4fbaf19579ca25ad3d135ee, the templates MONAI 1.6.1 downloads),
which cannot be downloaded in CI.

Each ``<template>/`` is laid out as the official one (``configs/``, ``scripts/algo.py`` with a ``BundleAlgo``
subclass, ``scripts/train.py``; dints also ``scripts/search.py``): its configs copy the official keys that decide
the loss and the data, and its scripts resolve the config and build the loss as the official scripts do (each file
cites the code it follows), then train a small network for one epoch (``stand_in.py``). A change of merge order
such as swinunetr's (``hyper_parameters.yaml`` laid over every other file) is therefore seen by these tests.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
from pathlib import Path
from types import ModuleType

from monai.apps.auto3dseg import BundleAlgo
from monai.bundle import ConfigParser

FIXTURES = Path(__file__).parent
TEMPLATES = ("segresnet", "segresnet2d", "swinunetr", "dints")
SCRIPTS = {"segresnet": ("train",), "segresnet2d": ("train",), "swinunetr": ("train",), "dints": ("train", "search")}
"""The scripts of each template that build a loss (dints' search.py: the architecture search)."""


def assemble_templates(dest: Path) -> Path:
    """The stand-in templates as a ``templates_path_or_url`` folder for AutoRunner / BundleGen."""
    for template in TEMPLATES:
        shutil.copytree(FIXTURES / template, dest / template, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(FIXTURES / "stand_in.py", dest / template / "scripts" / "stand_in.py")
    return dest


def generated_algorithm(work_dir: Path, template: str, fills: dict | None = None) -> Path:
    """``work_dir/<template>_0`` as ``BundleGen`` writes it: the template copied, its data ids filled as the stand-in
    ``algo.py`` fills them (data paths that are never read here) plus ``fills`` (``{file: {id: value}}``)."""
    algo = work_dir / f"{template}_0"
    shutil.copytree(FIXTURES / template, algo, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(FIXTURES / "stand_in.py", algo / "scripts" / "stand_in.py")
    prefix = "training#" if template == "dints" else ""
    filled = {
        "hyper_parameters.yaml": {
            "bundle_root": str(algo),
            "data_file_base_dir": str(work_dir),
            "data_list_file_path": str(work_dir / "datalist.json"),
            f"{prefix}input_channels": 1,
            f"{prefix}output_classes": 3,
        }
    }
    if template == "dints":
        filled["hyper_parameters_search.yaml"] = {"searching#input_channels": 1, "searching#output_classes": 3}
    for name, values in (fills or {}).items():
        filled.setdefault(name, {}).update(values)
    for name, values in filled.items():
        path = algo / "configs" / name
        parser = ConfigParser(ConfigParser.load_config_file(path))
        parser.update(values)
        ConfigParser.export_config_file(parser.get(), path, fmt="yaml", default_flow_style=None)
    return algo


def config_file_argument(algo: Path) -> str:
    """The ``--config_file`` value ``BundleAlgo.train`` gives the algorithm's scripts (every config, its order)."""
    bundle_algo = BundleAlgo(str(algo))
    bundle_algo.output_path = str(algo)
    cmd, _ = bundle_algo._create_cmd()
    (value,) = [arg.split("=", 1)[1] for arg in shlex.split(cmd) if arg.startswith("--config_file=")]
    return value


def load_script(algo: Path, name: str) -> ModuleType:
    """The algorithm's ``scripts/<name>.py`` as a module (its ``stand_in`` import is made only when it trains)."""
    path = algo / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"stand_in_{algo.name}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolved_loss(algo: Path, script: str = "train"):
    """The loss the template's ``scripts/<script>.py`` trains with, the config resolved as that script does it from
    the files ``BundleAlgo.train`` passes."""
    module = load_script(algo, script)
    argument = config_file_argument(algo)
    if hasattr(module, "parse_input_config"):  # segresnet, segresnet2d
        return module.build_loss(module.parse_input_config(argument))
    return module.build_loss(module.resolve_config(argument))


__all__ = [
    "FIXTURES",
    "SCRIPTS",
    "TEMPLATES",
    "assemble_templates",
    "config_file_argument",
    "generated_algorithm",
    "load_script",
    "resolved_loss",
]
