"""End-to-end runs of the bundles (tiny schedules): train with loss_name=nacl, evaluate, infer, multi-process.

The numbers the evaluation writes are checked against independent NumPy computations on the NIfTI files it
wrote and the labels on disk (Dice per class, top-label ECE over foreground voxels).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_helpers import (
    BUNDLES_DIR,
    MAPS,
    adam_steps,
    check_evaluation,
    config_path,
    load_checkpoint,
    logged_scalars,
    numpy_dice,
    numpy_foreground_ece,
    read_json,
    run_bundle,
    split_list,
)
from monai.bundle import ConfigParser


@pytest.fixture(scope="module")
def default_data() -> tuple[str, str]:
    from monai_nacl.data import default_dataset_dir, ensure_default_dataset

    dataset_dir = str(default_dataset_dir())
    return dataset_dir, str(ensure_default_dataset(dataset_dir))


@pytest.fixture(scope="module")
def unet2d_run(tmp_path_factory: pytest.TempPathFactory, default_data: tuple[str, str]) -> Path:
    """unet2d_nacl trained (a few steps, loss nacl) and evaluated on the default dataset."""
    out = tmp_path_factory.mktemp("unet2d")
    common = {"output_dir": str(out), "ckpt_dir": str(out / "models"), "dataset_dir": default_data[0]}
    run_bundle(
        "unet2d_nacl",
        ["train.yaml"],
        loss_name="nacl",
        max_epochs=1,  # with the default val_interval 5: the last epoch is validated all the same
        batch_size=1,
        num_samples=4,
        cache_rate=0.0,
        **{"train#trainer#epoch_length": 2, "validate#dataset#data": split_list(default_data[1], "validation", 1)},
        **common,
    )
    assert (out / "models" / "model.pt").is_file(), "a 1-epoch run must end with a validation and a model.pt"
    run_bundle(
        "unet2d_nacl",
        ["train.yaml", "evaluate.yaml"],
        **{"validate#dataset#data": split_list(default_data[1], "test", 1)},
        **common,
    )
    return out


@pytest.mark.slow
def test_unet2d_trains_and_evaluates_on_default_data(unet2d_run: Path, default_data: tuple[str, str]) -> None:
    assert (unet2d_run / "models" / "model.pt").is_file()
    assert list(unet2d_run.glob("events.out.tfevents.*"))
    assert list((unet2d_run / "reliability").glob("reliability_epoch0001.png"))
    check_evaluation(unet2d_run, default_data[0], read_json(default_data[1])["test"][:1])


@pytest.mark.slow
def test_calibrated_model_evaluates_through_the_bundle(
    unet2d_run: Path, default_data: tuple[str, str], tmp_path: Path
) -> None:
    """calibrate.yaml (ts) writes calibration.json beside a copy of the model and notes it in task.json; evaluate.yaml
    then applies it:
    summary.json names the calibration, the metrics agree with the written maps (check_evaluation), and every
    confidence moves the way the fitted temperature says."""
    models = tmp_path / "models"
    models.mkdir()
    for name in ("model.pt", "task.json"):
        (models / name).write_bytes((unet2d_run / "models" / name).read_bytes())
    common = {"ckpt_dir": str(models), "dataset_dir": default_data[0]}
    validation = {
        "validate#dataset#data": split_list(default_data[1], "validation", 1),
        "calibration_max_voxels": 20000,
    }
    run_bundle("unet2d_nacl", ["train.yaml", "calibrate.yaml"], calibration_method="ts", **validation, **common)
    fitted = read_json(models / "calibration.json")
    assert fitted["method"] == "ts"
    assert read_json(models / "task.json")["calibration"] == {"method": "ts", "file": "calibration.json"}
    temperature = float(fitted["parameters"]["temperature"])
    out = tmp_path / "eval"
    test = {"validate#dataset#data": split_list(default_data[1], "test", 1)}
    run_bundle("unet2d_nacl", ["train.yaml", "evaluate.yaml"], output_dir=str(out), **test, **common)
    summary = read_json(out / "summary.json")
    assert summary["calibration"]["method"] == "ts"
    check_evaluation(out, default_data[0], read_json(default_data[1])["test"][:1])
    case = os.path.basename(read_json(default_data[1])["test"][0]["image"]).replace(".nii.gz", "")
    calibrated = np.asarray(nib.load(out / "predictions" / f"{case}_max_prob.nii.gz").dataobj)
    plain = np.asarray(nib.load(unet2d_run / "predictions" / f"{case}_max_prob.nii.gz").dataobj)
    assert not np.allclose(calibrated, plain, atol=1e-4), "the calibration must change the confidences"
    # T > 1 softens and T < 1 sharpens every voxel's top probability
    changed = np.abs(calibrated - plain) > 1e-4
    assert np.all((calibrated < plain)[changed]) if temperature > 1 else np.all((calibrated > plain)[changed])


@pytest.mark.slow
def test_unet2d_inference_cli_matches_evaluation(unet2d_run: Path, default_data: tuple[str, str]) -> None:
    """`python -m monai.bundle run` from the bundle folder, on one image: same label map as the evaluation."""
    case = read_json(default_data[1])["test"][0]
    image = os.path.join(default_data[0], case["image"])
    out = unet2d_run / "inference"
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml",
               "--input_files", repr([image]), "--output_dir", str(out), "--ckpt_dir", str(unet2d_run / "models")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, check=False, cwd=BUNDLES_DIR / "unet2d_nacl", env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    name = os.path.basename(image).replace(".nii.gz", "")
    for m in MAPS:
        written = nib.load(out / "predictions" / f"{name}_{m}.nii.gz")
        evaluated = nib.load(unet2d_run / "predictions" / f"{name}_{m}.nii.gz")
        np.testing.assert_allclose(written.affine, evaluated.affine)
        np.testing.assert_allclose(np.asarray(written.dataobj), np.asarray(evaluated.dataobj), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "bundle,overrides",
    [
        ("unet3d_nacl", {"train#trainer#epoch_length": 2, "num_samples": 1}),
        # 4 mm voxels: one 64^3 window covers the whole brain, so CPU inference of SwinUNETR takes seconds
        (
            "swinunetr_nacl",
            {"train#trainer#epoch_length": 1, "num_samples": 1, "feature_size": 12, "pixdim": [4.0] * 3},
        ),
    ],
)
def test_3d_bundle_trains_and_evaluates_on_default_data(
    bundle: str, overrides: dict, default_data: tuple[str, str], tmp_path: Path
) -> None:
    """Each 3D bundle trains (a few steps, loss nacl) and evaluates one whole test volume of the default dataset."""
    dataset_dir, datalist = default_data
    common = {"output_dir": str(tmp_path), "ckpt_dir": str(tmp_path / "models"), "dataset_dir": dataset_dir,
              "datalist": datalist, "roi_size": [64, 64, 64], **overrides}  # fmt: skip
    run_bundle(
        bundle,
        ["train.yaml"],
        loss_name="nacl",
        max_epochs=1,  # with the default val_interval 5: the last epoch is validated all the same
        batch_size=1,
        cache_rate=0.0,
        **{"validate#dataset#data": split_list(datalist, "validation", 1)},
        **common,
    )
    assert (tmp_path / "models" / "model.pt").is_file()
    run_bundle(
        bundle, ["train.yaml", "evaluate.yaml"], **common, **{"validate#dataset#data": split_list(datalist, "test", 1)}
    )
    check_evaluation(tmp_path, dataset_dir, read_json(datalist)["test"][:1])


def test_data_check_stops_with_a_report(tmp_path: Path, synthetic_3d: tuple[str, str]) -> None:
    dataset_dir, datalist = synthetic_3d
    broken = read_json(datalist)
    broken["training"][0]["label"] = "no_such_label.nii.gz"
    broken_path = tmp_path / "broken.json"
    broken_path.write_text(json.dumps(broken))
    with pytest.raises(SystemExit) as info:  # DataCheckFailed: no traceback (tests/bundles/test_start_up_failure.py)
        run_bundle("unet3d_nacl", ["train.yaml"], dataset_dir=dataset_dir, datalist=str(broken_path),
                   output_dir=str(tmp_path), ckpt_dir=str(tmp_path / "models"))  # fmt: skip
    chain, error = [], info.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__
    message = "\n".join(chain)
    assert "no_such_label.nii.gz" in message and "--check_data false" in message


def torchrun(configs: list[str], overrides: dict) -> None:
    """Run the 2D bundle's merged ``configs`` in two gloo processes with ``torch.distributed.run``."""
    files = repr([c if os.path.isabs(c) else config_path("unet2d_nacl", c) for c in configs])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "monai.bundle", "run", "--config_file", files, "--logging_file", "False"]  # fmt: skip
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory, synthetic_3d: tuple[str, str]) -> tuple[Path, dict]:
    """unet2d_nacl trained in two gloo processes with multi_gpu_train.yaml: ``(output_dir, common overrides)``."""
    dataset_dir, datalist = synthetic_3d
    out = tmp_path_factory.mktemp("ddp")
    common = {"dataset_dir": dataset_dir, "datalist": datalist, "output_dir": str(out), "ckpt_dir": str(out / "models")}
    train = {"max_epochs": 1, "val_interval": 1, "batch_size": 1, "num_samples": 2, "cache_rate": 0.0,
             "train#trainer#epoch_length": 1, "validate#dataset#data": split_list(datalist, "validation", 2)}  # fmt: skip
    # the validator's handlers in reverse order: the writers stay on rank 0 because of what they are, not where
    reordered = out / "reordered_handlers.yaml"
    handlers = ConfigParser.load_config_file(config_path("unet2d_nacl", "train.yaml"))["validate"]["handlers"]
    ConfigParser.export_config_file({"validate#handlers": handlers[::-1]}, str(reordered), fmt="yaml")
    torchrun(["train.yaml", "multi_gpu_train.yaml", str(reordered)], {**common, **train})
    return out, common


@pytest.mark.slow
def test_multi_process_training_writes_on_rank_zero(ddp_run: tuple[Path, dict]) -> None:
    """DistributedSampler on both loaders; rank 0 alone writes the model, the logs and the diagram."""
    out, _ = ddp_run
    assert (out / "models" / "model.pt").is_file()
    events = list(out.glob("events.out.tfevents.*"))
    assert len(events) == 2 and len({e.name.split(".")[-2] for e in events}) == 1  # trainer + evaluator, one pid
    assert len(list((out / "reliability").glob("*.png"))) == 1


@pytest.mark.slow
def test_multi_process_validation_pools_metrics_over_ranks(
    ddp_run: tuple[Path, dict], synthetic_3d: tuple[str, str]
) -> None:
    """Each rank validated one of the two cases; the logged ECE and Dice are those of both cases together: equal to
    NumPy over both cases' voxels, computed in this one process with the saved model (not to either case alone)."""
    out, _ = ddp_run
    dataset_dir, datalist = synthetic_3d
    parser = ConfigParser()
    parser.read_config(config_path("unet2d_nacl", "train.yaml"))
    parser.update({"dataset_dir": dataset_dir, "datalist": datalist, "device": "$torch.device('cpu')"})
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(load_checkpoint(out / "models" / "model.pt"))
    network.eval()
    preprocessing = parser.get_parsed_content("validate#preprocessing")
    inferer = parser.get_parsed_content("validate#inferer")
    conf, seg, label, dice = [], [], [], []
    for case in read_json(datalist)["validation"][:2]:
        item = preprocessing({k: os.path.join(dataset_dir, case[k]) for k in ("image", "label")})
        with torch.no_grad():
            probs = torch.softmax(inferer(item["image"][None], network), dim=1)[0].numpy()
        conf.append(probs.max(0).ravel())
        seg.append(probs.argmax(0).ravel())
        label.append(item["label"][0].numpy().astype(int).ravel())
        dice += [numpy_dice(seg[-1], label[-1], k) for k in (1, 2)]
    pooled_ece = numpy_foreground_ece(np.concatenate(conf), np.concatenate(seg), np.concatenate(label))
    first_case_ece = numpy_foreground_ece(conf[0], seg[0], label[0])
    assert abs(first_case_ece - pooled_ece) > 1e-3, "the two cases must differ for this test to tell pooled from not"
    assert logged_scalars(out, "val_ece") == {1: pytest.approx(pooled_ece, abs=1e-5)}
    checkpoint = torch.load(out / "models" / "checkpoint_last.pt", map_location="cpu", weights_only=True)
    assert checkpoint["validation"]["best_metric"] == pytest.approx(np.mean(dice), abs=1e-5)  # MeanDice, both cases


@pytest.mark.slow
def test_multi_process_evaluation(ddp_run: tuple[Path, dict], synthetic_3d: tuple[str, str]) -> None:
    out, common = ddp_run
    datalist = synthetic_3d[1]
    checked = f"$@skipped_cases.usable({split_list(datalist, 'test', 2)[1:]})"  # each rank checks the list
    torchrun(["train.yaml", "evaluate.yaml", "multi_gpu_evaluate.yaml"], {**common, "validate#dataset#data": checked})
    check_evaluation(out, synthetic_3d[0], read_json(synthetic_3d[1])["test"][:2])


@pytest.mark.slow
def test_multi_process_training_resumes(
    ddp_run: tuple[Path, dict], synthetic_3d: tuple[str, str], tmp_path: Path
) -> None:
    """``--resume true`` under multi_gpu_train.yaml: both ranks load rank 0's checkpoint_last.pt and continue with
    epoch 2 (one more iteration and optimizer step, not a fresh start); rank 0 alone writes again."""
    out, _ = ddp_run
    dataset_dir, datalist = synthetic_3d
    shutil.copytree(out / "models", tmp_path / "models")
    first = load_checkpoint(tmp_path / "models" / "checkpoint_last.pt")
    torchrun(
        ["train.yaml", "multi_gpu_train.yaml"],
        {"dataset_dir": dataset_dir, "datalist": datalist, "output_dir": str(tmp_path),
         "ckpt_dir": str(tmp_path / "models"), "max_epochs": 2, "val_interval": 1, "batch_size": 1,
         "num_samples": 2, "cache_rate": 0.0, "train#trainer#epoch_length": 1, "resume": "true",
         "validate#dataset#data": split_list(datalist, "validation", 2)},
    )  # fmt: skip
    resumed = load_checkpoint(tmp_path / "models" / "checkpoint_last.pt")
    assert first["trainer"]["iteration"] == 1 and resumed["trainer"]["iteration"] == 2
    assert adam_steps(resumed) == {2}  # a fresh optimizer counts 1
    assert not any(k.startswith("module.") for k in resumed["network"])  # saved unwrapped, loadable without DDP
    assert sorted(p.name for p in (tmp_path / "reliability").glob("*.png")) == ["reliability_epoch0002.png"]
    assert resumed["validation"]["best_metric"] >= first["validation"]["best_metric"]
