"""A bundle whose data check fails ends with the list of problems as its last lines: one line per problem, no
traceback (``monai.bundle run`` wraps a config expression's exceptions in tracebacks; the check leaves through
``SystemExit``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bundle_helpers import config_path

from monai_nacl.bundle import DataCheckFailed, require_valid_datalist
from monai_nacl.data import check_datalist

SHAPE = (12, 10, 8)


def _save(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))
    return path.name


def _broken_datalist(folder: Path) -> Path:
    """Two good training cases, then a two-channel 4D image, a 2D image and a label value 5 (3 classes); a missing
    validation label; no test cases."""
    rng = np.random.default_rng(0)
    images = {
        "good0": rng.random(SHAPE),
        "good1": rng.random(SHAPE),
        "four_d": rng.random((*SHAPE, 2)),
        "flat": rng.random(SHAPE[:2]),
        "label5": rng.random(SHAPE),
        "val": rng.random(SHAPE),
    }
    cases = {}
    for name, image in images.items():
        label = rng.integers(0, 3, image.shape[:3]).astype(np.uint8)
        if name == "label5":
            label[0, 0, 0] = 5
        _save(folder / "images" / f"{name}.nii.gz", image.astype(np.float32))
        _save(folder / "labels" / f"{name}.nii.gz", label)
        cases[name] = {"image": f"images/{name}.nii.gz", "label": f"labels/{name}.nii.gz"}
    cases["val"]["label"] = "labels/no_such_label.nii.gz"
    data = {
        "training": [cases[n] for n in ("good0", "good1", "four_d", "flat", "label5")],
        "validation": [cases["val"]],
    }
    (folder / "datalist.json").write_text(json.dumps(data))
    return folder / "datalist.json"


def test_failure_raises_system_exit_with_the_problems_last(tmp_path: Path) -> None:
    datalist = _broken_datalist(tmp_path)
    with pytest.raises(DataCheckFailed) as info:
        require_valid_datalist(datalist, 3)
    lines = str(info.value).splitlines()
    expected = [str(p) for p in check_datalist(datalist, 3, required_sections=("training", "validation"))]
    assert len(expected) == 4 and lines[1:] == expected and len(info.value.problems) == 4
    assert "--check_data false" in lines[0] and f"relative paths from {tmp_path}" in lines[0]
    assert isinstance(info.value, SystemExit) and not isinstance(info.value, Exception)
    assert require_valid_datalist(datalist, 3, enabled="false") == str(datalist)


def test_bundle_run_ends_with_one_line_per_problem_and_no_traceback(tmp_path: Path) -> None:
    datalist = _broken_datalist(tmp_path)
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_path("unet2d_nacl", "train.yaml"),
               "--meta_file", config_path("unet2d_nacl", "metadata.json"), "--datalist", str(datalist),
               "--dataset_dir", str(tmp_path), "--output_dir", str(tmp_path / "eval"),
               "--ckpt_dir", str(tmp_path / "models")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    expected = [str(p) for p in check_datalist(datalist, 3, required_sections=("training", "validation"))]
    assert lines[-len(expected) :] == expected
    assert lines[-len(expected) - 1].startswith(f"the data check of {datalist} ")
    problems = [line.split(": ", 3)[:3] for line in expected]
    assert problems == [
        ["training[2] four_d", "images/four_d.nii.gz", "wrong number of image channels"],
        ["training[3] flat", "images/flat.nii.gz", "image is 2D, expected 3D"],
        ["training[4] label5", "labels/label5.nii.gz", "label values outside [0, 3)"],
        ["validation[0] val", "labels/no_such_label.nii.gz", "missing file"],
    ]
    assert not (tmp_path / "models").exists()
