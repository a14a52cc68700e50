"""task.json: what training writes beside the weights and how evaluation and inference read it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from monai.networks.nets import UNet
from monai.transforms import Lambdad, NormalizeIntensityd, ScaleIntensityRanged

from monai_nacl.bundle import (
    TASK_FILE,
    MissingModel,
    TaskMismatch,
    TrainedTask,
    default_ckpt_dir,
    describe_transform,
    record_calibration,
)
from monai_nacl.bundle.weights import parameter_shapes
from monai_nacl.calibration import ApplyCalibrationd, StaleCalibration, TemperatureScaling, save_calibration
from monai_nacl.handlers import TaskSettingsWriter

UNET_ARGS = {"spatial_dims": 2, "in_channels": 1, "out_channels": 3, "channels": [4, 8], "strides": [2]}


def _task(**changes):
    task = {
        "bundle": "unet2d_nacl",
        "num_classes": 3,
        "class_names": ["background", "grey_matter", "white_matter"],
        "pixdim": [1.5, 1.5, 3.0],
        "roi_size": [64, 64],
        "network_def": {"target": "monai.networks.nets.UNet", "args": dict(UNET_ARGS)},
        "intensity_transforms": [NormalizeIntensityd(keys="image", nonzero=True)],
        "loss_name": "nacl",
    }
    task.update(changes)
    return task


def _trained(folder: Path, **changes) -> Path:
    """A model.pt and the task.json the writer makes for it."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(UNet(**UNET_ARGS).state_dict(), folder / "model.pt")
    writer = TaskSettingsWriter(_task(**changes), folder)
    assert writer() == folder / TASK_FILE
    return folder


def test_described_transforms_rebuild_to_the_same_transform():
    for transform in (NormalizeIntensityd(keys="image", nonzero=True), ScaleIntensityRanged("image", -100, 200, 0, 1)):
        description = json.loads(json.dumps(describe_transform(transform)))  # plain JSON
        assert "_rebuildable_" not in description
    assert describe_transform(NormalizeIntensityd(keys="image", nonzero=True)) == {
        "_target_": "monai.transforms.intensity.dictionary.NormalizeIntensityd",
        "keys": ["image"],
        "nonzero": True,
    }
    scale = describe_transform(ScaleIntensityRanged("image", -100, 200, 0, 1, clip=True))
    assert {k: scale[k] for k in ("a_min", "a_max", "b_min", "b_max", "clip")} == {
        "a_min": -100,
        "a_max": 200,
        "b_min": 0,
        "b_max": 1,
        "clip": True,
    }
    # a function cannot be written to JSON: the description is only compared, never rebuilt
    assert describe_transform(Lambdad("image", lambda x: x * 2))["_rebuildable_"] is False


def test_writer_writes_when_the_model_changes_and_resets_the_calibration(tmp_path):
    folder = _trained(tmp_path / "models")
    record = json.loads((folder / TASK_FILE).read_text())
    assert record["num_classes"] == 3 and record["pixdim"] == [1.5, 1.5, 3.0] and record["roi_size"] == [64, 64]
    assert record["network_def"] == {"_target_": "monai.networks.nets.UNet", **UNET_ARGS}
    assert record["intensity_transforms"][0]["nonzero"] is True
    assert record["calibration"] is None and len(record["model"]["sha256"]) == 64
    fitted_elsewhere = {"method": "ts", "model": {"file": "model.pt", "sha256": "0" * 64}}
    assert record_calibration(folder, fitted_elsewhere) is None  # other weights: not claimed for this model
    assert record_calibration(folder, {"method": "ts"}) is None  # no model recorded: nothing to tie it to
    assert json.loads((folder / TASK_FILE).read_text())["calibration"] is None
    fitted_here = {"method": "ts", "model": {"file": "model.pt", "sha256": record["model"]["sha256"]}}
    assert record_calibration(folder, fitted_here) == folder / TASK_FILE
    assert json.loads((folder / TASK_FILE).read_text())["calibration"] == {"method": "ts", "file": "calibration.json"}

    writer = TaskSettingsWriter(_task(), folder)
    assert writer() is not None  # first look: written (the model may be new)
    assert writer() is None  # model.pt unchanged: nothing written
    torch.save(UNet(**UNET_ARGS).state_dict(), folder / "model.pt")
    assert writer() is not None
    assert json.loads((folder / TASK_FILE).read_text())["calibration"] is None
    assert TaskSettingsWriter(_task(), tmp_path / "empty")() is None  # no model.pt yet: no task.json


def test_resumed_run_of_another_task_is_refused(tmp_path):
    from ignite.engine import Engine

    folder = _trained(tmp_path / "models")
    TaskSettingsWriter(_task(), folder, resume=True).attach(Engine(lambda e, b: None))
    with pytest.raises(TaskMismatch) as error:
        TaskSettingsWriter(_task(pixdim=[2.0, 2.0, 2.0]), folder, resume="true").attach(Engine(lambda e, b: None))
    assert "pixdim: [2.0, 2.0, 2.0] in this run, [1.5, 1.5, 3.0]" in str(error.value)


def test_trained_values_and_refused_contradictions(tmp_path):
    task = TrainedTask(_trained(tmp_path / "models"), defaults={"num_classes": 9, "pixdim": [9, 9, 9]})
    assert (task.num_classes, task.pixdim, task.roi_size) == (3, [1.5, 1.5, 3.0], [64, 64])
    assert task.class_names == ["background", "grey_matter", "white_matter"]
    task.check(num_classes=3, pixdim=(1.5, 1.5, 3), roi_size=[96, 96])  # equal values, another window: fine
    with pytest.raises(TaskMismatch) as error:
        task.check(num_classes=4, pixdim=[2.0, 2.0, 2.0])
    lines = str(error.value).splitlines()
    assert lines[0].endswith("(2):") and len(error.value.conflicts) == 2
    assert lines[1].startswith("--num_classes 4 contradicts") and "trained with num_classes 3" in lines[1]
    assert "--pixdim [2.0, 2.0, 2.0]" in lines[2] and "pixdim [1.5, 1.5, 3.0]" in lines[2]
    # the evaluated datalist names other classes than the model learnt
    other = {"labels": {"0": "background", "1": "liver", "2": "tumour"}, "test": []}
    with pytest.raises(TaskMismatch, match=r"names the classes \['background', 'liver', 'tumour'\]"):
        task.check(datalist=other)
    task.check(datalist={"labels": {"0": "background", "1": "grey matter", "2": "white matter"}})
    task.check(datalist={"test": []})  # no labels declared: nothing to compare


def test_without_task_file_the_defaults_are_used_and_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="monai_nacl"):
        task = TrainedTask(tmp_path, defaults={"num_classes": 3, "pixdim": [2.0, 2.0, 2.0], "roi_size": [96, 96]})
    assert "no task.json" in caplog.text and "--pixdim" in caplog.text
    assert (task.num_classes, task.pixdim, task.roi_size, task.class_names) == (3, [2.0, 2.0, 2.0], [96, 96], None)
    task.check(num_classes=5, pixdim=[1, 1, 1])  # nothing recorded: nothing contradicts
    configured = UNet(**UNET_ARGS)
    assert task.network(configured) is configured
    with pytest.raises(ValueError, match="pass --num_classes"):
        _ = TrainedTask(tmp_path).num_classes
    with pytest.raises(MissingModel, match="pass --ckpt_dir"):
        task.require_model()


def test_missing_model_names_the_bundle_model(tmp_path):
    bundle = tmp_path / "bundle"
    _trained(bundle / "models")
    with pytest.raises(MissingModel) as error:
        TrainedTask(tmp_path / "elsewhere" / "models").require_model(bundle)
    assert f"a model lies in {bundle / 'models'}: pass --ckpt_dir {bundle / 'models'}" in str(error.value)
    assert TrainedTask(bundle / "models").require_model(bundle) == str(bundle / "models" / "model.pt")


def test_network_is_the_trained_one(tmp_path):
    task = TrainedTask(_trained(tmp_path / "models"))
    same = UNet(**UNET_ARGS)
    assert task.network(same) is same  # the config's network is the trained one: kept (MONAI Label reads it)
    other = UNet(**{**UNET_ARGS, "channels": [8, 16]})
    built = task.network(other)
    assert built is not other and [p.shape for p in built.parameters()] == [
        p.shape for p in UNet(**UNET_ARGS).parameters()
    ]
    built.load_state_dict(torch.load(tmp_path / "models" / "model.pt"))  # the weights fit


def test_intensity_transforms_follow_the_training(tmp_path):
    task = TrainedTask(_trained(tmp_path / "models"))
    configured = [NormalizeIntensityd(keys="image", nonzero=True)]
    assert task.intensity_transforms(configured)[0] is configured[0]
    rebuilt = task.intensity_transforms([NormalizeIntensityd(keys="image", nonzero=False)])
    assert isinstance(rebuilt[0], NormalizeIntensityd) and rebuilt[0].normalizer.nonzero is True
    lambda_task = TrainedTask(_trained(tmp_path / "lambda", intensity_transforms=[Lambdad("image", lambda x: x)]))
    with pytest.raises(TaskMismatch, match="cannot be rebuilt"):
        lambda_task.intensity_transforms(configured)


def test_output_dir_moves_the_models(tmp_path):
    assert default_ckpt_dir(tmp_path, tmp_path / "eval") == str((tmp_path / "models").resolve())
    assert default_ckpt_dir(tmp_path, tmp_path / "run1") == str((tmp_path / "run1" / "models").resolve())


def test_calibration_of_other_weights_is_refused(tmp_path):
    folder = _trained(tmp_path / "models")
    calibrator = TemperatureScaling(1.5)
    save_calibration(calibrator, folder, model_file=folder / "model.pt")
    logits = torch.randn(3, 4, 4)
    apply = ApplyCalibrationd("pred", calibration_dir=folder, model_file=folder / "model.pt")
    torch.testing.assert_close(apply({"pred": logits})["pred"], logits / 1.5)
    torch.save(UNet(**{**UNET_ARGS, "channels": [8, 16]}).state_dict(), folder / "model.pt")  # trained again
    with pytest.raises(StaleCalibration, match="fitted for other weights"):
        ApplyCalibrationd("pred", calibration_dir=folder, model_file=folder / "model.pt")({"pred": logits})
    # without the model's path there is nothing to compare
    ApplyCalibrationd("pred", calibration_dir=folder)({"pred": logits})


def test_weights_of_another_network_are_refused_before_loading(tmp_path):
    """Without task.json (bundle defaults) a model with another number of classes: a clear refusal naming a
    parameter and --num_classes, not PyTorch's size-mismatch traceback."""
    folder = tmp_path / "models"
    folder.mkdir()
    torch.save(UNet(**{**UNET_ARGS, "out_channels": 4}).state_dict(), folder / "model.pt")
    task = TrainedTask(folder, defaults={"num_classes": 3})
    with pytest.raises(TaskMismatch) as error:
        task.network(UNet(**UNET_ARGS))
    message = str(error.value)
    assert "parameter(s) differ" in message and "(4," in message and "(3," in message and "--num_classes" in message
    fitting = UNet(**{**UNET_ARGS, "out_channels": 4})
    assert task.network(fitting) is fitting


def test_inference_network_def_is_the_trained_network_and_loads_strictly(tmp_path):
    """``trained_network`` (inference.yaml's network_def) builds task.json's network; its load_state_dict refuses
    other weights even with strict=False (MONAI Label), after copy.deepcopy (MONAI Label's per-device copy), and a
    partial copy (monai.networks.utils.copy_model_state, as `monai.bundle ckpt_export` loads)."""
    import copy

    from monai.networks.utils import copy_model_state

    from monai_nacl.bundle.task import trained_network
    from monai_nacl.bundle.weights import WeightsMismatch

    folder = _trained(tmp_path / "models", network_def={"target": "monai.networks.nets.UNet", "args": UNET_ARGS})
    configured = {**UNET_ARGS, "channels": [16, 32, 64], "strides": [2, 2]}  # what the config says
    network = trained_network(TrainedTask(folder), "monai.networks.nets.UNet", **configured)
    assert parameter_shapes(network) == parameter_shapes(UNet(**UNET_ARGS))
    network.load_state_dict(torch.load(folder / "model.pt", weights_only=True), strict=False)
    other = UNet(**configured).state_dict()
    for load in (
        lambda n: n.load_state_dict(other, strict=False),
        lambda n: copy.deepcopy(n).load_state_dict(other, strict=False),
        lambda n: copy_model_state(n, other),
    ):
        with pytest.raises(WeightsMismatch, match=r"monai.networks.nets.UNet\(spatial_dims=2, .*channels=\[4, 8\]"):
            load(network)
