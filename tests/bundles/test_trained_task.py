"""A model trained with non-default settings is evaluated and inferred with only data paths: task.json beside the
weights carries the spacing, window, classes, network and intensity handling; a contradicting override is refused;
``--output_dir`` alone puts the weights under it, not into the bundle folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bundle_helpers import BUNDLES_DIR, config_path, read_json, run_bundle, split_list

from monai_nacl.bundle import TaskMismatch

TRAINED = {"pixdim": [3.0, 3.0, 3.0], "roi_size": [48, 48], "network_def#channels": [8, 16, 32, 64]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """unet2d_nacl trained (2 steps) at 3 mm with a 48^2 window and a narrower UNet, given only --output_dir."""
    from monai_nacl.data import default_dataset_dir, ensure_default_dataset

    dataset_dir = str(default_dataset_dir())
    datalist = str(ensure_default_dataset(dataset_dir))
    out = tmp_path_factory.mktemp("trained_task")
    bundle_models = BUNDLES_DIR / "unet2d_nacl" / "models"
    before = sorted(bundle_models.iterdir()) if bundle_models.is_dir() else None
    run_bundle(
        "unet2d_nacl",
        ["train.yaml"],
        output_dir=str(out),
        max_epochs=1,
        batch_size=1,
        num_samples=2,
        cache_rate=0.0,
        **TRAINED,
        **{"train#trainer#epoch_length": 2, "validate#dataset#data": split_list(datalist, "validation", 1)},
    )
    after = sorted(bundle_models.iterdir()) if bundle_models.is_dir() else None
    assert before == after, "--output_dir alone must keep the weights out of the bundle folder"
    return out, dataset_dir, datalist


def _test_cases(datalist: str, count: int = 1) -> dict[str, str]:
    return {"validate#dataset#data": f"$@skipped_cases.usable({split_list(datalist, 'test', count)[1:]})"}


@pytest.mark.slow
def test_task_file_describes_the_trained_model(trained: tuple[Path, str, str]) -> None:
    out, _, datalist = trained
    assert (out / "models" / "model.pt").is_file() and (out / "models" / "checkpoint_last.pt").is_file()
    task = read_json(out / "models" / "task.json")
    assert task["pixdim"] == [3.0, 3.0, 3.0] and task["roi_size"] == [48, 48] and task["num_classes"] == 3
    assert task["class_names"] == ["background_other", "grey_matter", "white_matter"]
    assert task["network_def"]["_target_"] == "monai.networks.nets.UNet"
    assert task["network_def"]["channels"] == [8, 16, 32, 64] and task["network_def"]["out_channels"] == 3
    assert task["intensity_transforms"][0]["nonzero"] is True
    # both sections read from the datalist (the validation case a slice of its section, still that datalist's)
    assert task["datalist"] == datalist
    assert task["calibration"] is None
    from monai_nacl.utils import file_sha256

    assert task["model"]["sha256"] == file_sha256(out / "models" / "model.pt")


@pytest.mark.slow
def test_evaluation_takes_the_task_from_the_model(trained: tuple[Path, str, str], tmp_path: Path) -> None:
    """Evaluated with data paths only, and with the trained values given explicitly: the same numbers, so the
    first run used the trained spacing, window and network (the bundle defaults are 2 mm, 96^2, 16..128 filters,
    and the weights would not even load into the default network)."""
    out, _, datalist = trained
    ckpt = {"ckpt_dir": str(out / "models")}
    run_bundle("unet2d_nacl", ["train.yaml", "evaluate.yaml"], output_dir=str(tmp_path / "a"), **ckpt,
               **_test_cases(datalist))  # fmt: skip
    run_bundle("unet2d_nacl", ["train.yaml", "evaluate.yaml"], output_dir=str(tmp_path / "b"), **ckpt,
               pixdim=[3, 3, 3], num_classes=3, **_test_cases(datalist))  # fmt: skip
    rows = [list(csv.DictReader((tmp_path / d / "metrics.csv").open())) for d in ("a", "b")]
    assert rows[0] == rows[1] and len(rows[0]) == 1
    assert {"dice_grey_matter", "dice_white_matter", "mean_dice"} <= set(rows[0][0])
    assert read_json(tmp_path / "a" / "summary.json")["classes"] == {"1": "grey_matter", "2": "white_matter"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "override,shown",
    [({"pixdim": [2.0, 2.0, 2.0]}, "--pixdim [2.0, 2.0, 2.0] contradicts"), ({"num_classes": 4}, "--num_classes 4")],
)
def test_contradicting_override_is_refused(trained, tmp_path, override, shown) -> None:
    out, _, datalist = trained
    with pytest.raises(TaskMismatch) as error:
        run_bundle("unet2d_nacl", ["train.yaml", "evaluate.yaml"], output_dir=str(tmp_path), ckpt_dir=str(out / "models"),
                   **override, **_test_cases(datalist))  # fmt: skip
    last = str(error.value).splitlines()[-1]
    assert last.startswith(shown) and "task.json" in last and "trained with" in last
    assert not (tmp_path / "metrics.csv").exists()


@pytest.mark.slow
def test_inference_cli_takes_the_task_from_the_model(trained: tuple[Path, str, str], tmp_path: Path) -> None:
    """`python -m monai.bundle run` with inference.yaml and only --input_files/--ckpt_dir: the label map on the
    image's grid equals the evaluation's; with --pixdim contradicting task.json it exits 1, the conflict as its last
    line and no traceback."""
    out, dataset_dir, datalist = trained
    case = read_json(datalist)["test"][0]
    image = os.path.join(dataset_dir, case["image"])
    run_bundle("unet2d_nacl", ["train.yaml", "evaluate.yaml"], output_dir=str(tmp_path / "eval"),
               ckpt_dir=str(out / "models"), **_test_cases(datalist))  # fmt: skip
    base = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_path("unet2d_nacl", "inference.yaml"),
            "--input_files", repr([image]), "--ckpt_dir", str(out / "models"), "--output_dir", str(tmp_path / "inf")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(base, check=False, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    name = os.path.basename(image).replace(".nii.gz", "")
    inferred = np.asarray(nib.load(tmp_path / "inf" / "predictions" / f"{name}_seg.nii.gz").dataobj)
    evaluated = np.asarray(nib.load(tmp_path / "eval" / "predictions" / f"{name}_seg.nii.gz").dataobj)
    np.testing.assert_array_equal(inferred, evaluated)
    assert "inference: [1/1]" in result.stderr  # the progress bar

    refused = subprocess.run([*base, "--pixdim", "[2.0,2.0,2.0]"], check=False, env=env, capture_output=True, text=True)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert lines[-1].startswith("--pixdim [2.0, 2.0, 2.0] contradicts") and "[3.0, 3.0, 3.0]" in lines[-1]
    assert "Traceback" not in refused.stderr
