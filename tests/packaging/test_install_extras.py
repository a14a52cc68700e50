"""Training and evaluation run with what ``pip install ".[plot,train]"`` (the README's install) brings, and nothing more.

The suite's environment holds the test extras too (torchmetrics, nilearn, jsonschema, ...), so a module that needs one
of them would pass here and fail for a user. The run below happens in a subprocess where every installed
distribution outside the dependency closure of ``monai_nacl[plot,train]`` cannot be imported: the closure is read from
the installed package's metadata (``Requires-Dist`` with its markers and extras), and a ``sitecustomize`` puts a
finder in front of ``sys.meta_path`` that refuses the top-level modules of the other distributions, and an
``importlib.util.find_spec`` that does not find them, as if they were not installed (MONAI's ``optional_import`` and
torch's probes then see them missing, as they would for the user).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "unet2d_nacl"

SITECUSTOMIZE = """
import importlib.abc, importlib.util, json, os, sys

_BLOCKED = frozenset(json.loads(os.environ["MONAI_NACL_BLOCKED_MODULES"]))


class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not part of monai_nacl[plot,train])", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
_find_spec = importlib.util.find_spec


def _find_spec_of_installed(name, package=None):
    # a probe (torch, MONAI's optional_import) asks whether a module exists: it does not
    if name.partition(".")[0] in _BLOCKED:
        return None
    return _find_spec(name, package)


importlib.util.find_spec = _find_spec_of_installed
"""


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _closure(root: str, extras: set[str]) -> set[str]:
    """The installed distributions ``root[extras]`` needs, ``root`` included (normalised names)."""
    from packaging.requirements import Requirement

    needed: set[str] = set()
    todo: list[tuple[str, set[str]]] = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency of a dependency that is not installed: nothing to block
        key = _name(dist.metadata["Name"])
        if key in needed and not wanted:
            continue
        needed.add(key)
        for text in dist.requires or []:
            requirement = Requirement(text)
            environments = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                todo.append((requirement.name, set(requirement.extras)))
    return needed


def _blocked_modules(allowed: set[str]) -> set[str]:
    """Top-level modules provided only by installed distributions outside ``allowed``."""
    owners = metadata.packages_distributions()
    blocked = set()
    for module, dists in owners.items():
        names = {_name(d) for d in dists}
        if names and not names & allowed and not module.startswith("_"):
            blocked.add(module)
    return blocked


@pytest.mark.slow
def test_training_and_evaluation_need_no_test_extra(tmp_path: Path) -> None:
    from monai_nacl.data import make_synthetic_dataset

    allowed = _closure("monai_nacl", {"plot", "train"})
    assert {"monai", "torch", "scipy", "matplotlib", "nibabel"} <= allowed, sorted(allowed)
    blocked = _blocked_modules(allowed)
    # what the suite has and the README's install does not: these must be unreachable in the run
    assert {"torchmetrics", "pytest", "nilearn", "jsonschema"} <= blocked, sorted(blocked)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "MONAI_NACL_BLOCKED_MODULES": json.dumps(sorted(blocked)),
        "OMP_NUM_THREADS": "1",
    }
    probe = subprocess.run(
        [sys.executable, "-c", "import torchmetrics"], env=env, capture_output=True, text=True, check=False
    )
    assert probe.returncode != 0 and "not part of monai_nacl[plot,train]" in probe.stderr

    data = tmp_path / "data"
    datalist = make_synthetic_dataset(data, num_cases=6, spatial_dims=3, size=32, num_classes=3, seed=0)
    first = "$monai_nacl.bundle.training_data.datalist_section(@datalist, '{}', @dataset_dir)[:{}]"
    common = ["--bundle_root", str(BUNDLE), "--datalist", str(datalist), "--dataset_dir", str(data),
              "--output_dir", str(tmp_path / "run"), "--sw_batch_size", "4"]  # fmt: skip
    runner = [sys.executable, "-m", "monai.bundle", "run", "--meta_file", str(BUNDLE / "configs" / "metadata.json")]
    training = ["--config_file", str(BUNDLE / "configs" / "train.yaml"), "--max_epochs", "1", "--val_interval", "1",
                "--num_samples", "2", "--train#dataset#data", first.format("training", 2),
                "--validate#dataset#data", first.format("validation", 1)]  # fmt: skip
    evaluation = ["--config_file", str([str(BUNDLE / "configs" / n) for n in ("train.yaml", "evaluate.yaml")])]
    steps = {"training": training, "evaluation": evaluation}
    for step, arguments in steps.items():
        result = subprocess.run(
            [*runner, *arguments, *common],
            check=False,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert result.returncode == 0, f"{step} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["num_cases"] >= 1
    assert (tmp_path / "run" / "metrics.csv").is_file() and (tmp_path / "run" / "reliability.png").is_file()
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    hd95 = [c for c in header if c.startswith("hd95_")]
    assert hd95, header  # HD95 (scipy) was computed, the column written
