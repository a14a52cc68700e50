"""Start-up helpers of the bundles (monai_nacl.bundle.startup): loss choice, inference inputs, logged settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from monai_nacl.bundle import BUNDLES_DIR, inference_inputs, log_settings, select_loss


def test_select_loss() -> None:
    losses = {"ce": torch.nn.CrossEntropyLoss(), "nacl": torch.nn.Identity()}
    assert select_loss(losses, "nacl") is losses["nacl"]
    with pytest.raises(ValueError, match=r"unknown loss_name 'svls'; choose one of \['ce', 'nacl'\]"):
        select_loss(losses, "svls")


def test_inference_inputs_priority(tmp_path: Path) -> None:
    for name in ("b.nii.gz", "a.nii", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps({"test": [{"image": "b.nii.gz"}]}))
    files = [str(tmp_path / "b.nii.gz")]
    assert inference_inputs(files, tmp_path, datalist) == [{"image": files[0]}]
    assert inference_inputs(None, tmp_path) == [{"image": str(tmp_path / n)} for n in ("a.nii", "b.nii.gz")]
    assert inference_inputs(None, None, datalist, tmp_path) == [{"image": files[0]}]
    with pytest.raises(ValueError, match="missing file"):
        inference_inputs([tmp_path / "nope.nii.gz"])
    with pytest.raises(ValueError, match="not a folder"):
        inference_inputs(None, tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image to run inference on"):
        inference_inputs(None, empty)


def test_effective_settings_are_logged_at_start_up(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """The bundle's `settings` resolve to what the run uses: a misspelled override leaves max_epochs as it was, and
    the epochs logged are those the trainer runs (MONAI Label sets train#trainer#max_epochs, not max_epochs)."""
    import logging

    from monai.bundle import ConfigParser

    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps({"training": [{"image": "a.nii.gz"}], "validation": [{"image": "b.nii.gz"}]}))
    parser = ConfigParser()
    parser.read_config(str(BUNDLES_DIR / "unet2d_nacl" / "configs" / "train.yaml"))
    parser.update({"bundle_root": str(BUNDLES_DIR / "unet2d_nacl"), "max_epoch": 5, "datalist": str(datalist)})
    settings = parser.get_parsed_content("settings")
    assert settings["max_epochs"] == 40
    assert settings["data"] == f"{datalist} (relative paths from {tmp_path})"  # the datalist's folder by default
    with caplog.at_level(logging.INFO, logger="monai_nacl"):
        log_settings(settings)
    assert "effective settings" in caplog.text and "  max_epochs: 40" in caplog.text
    parser["train#trainer#max_epochs"] = 2
    parser.parse(True)
    assert parser.get_parsed_content("settings")["max_epochs"] == 2


def _previous_run(folder: Path) -> list[Path]:
    (folder / "models").mkdir(parents=True)
    files = [folder / "history.csv", *(folder / "models" / n for n in ("model.pt", "checkpoint_last.pt", "task.json"))]
    for path in files:
        path.write_text("previous\n")
    return files


def test_retraining_in_place_keeps_the_served_model_until_replaced(tmp_path: Path) -> None:
    """MONAI Label retrains into the folder it serves from: the previous run's history and last checkpoint go, its
    model.pt and task.json stay (served, and loaded as the pretrained start) until the new run saves its own."""
    from monai_nacl.bundle import OutputDirInUse, require_fresh_output

    history, model, last, task = _previous_run(tmp_path)
    with pytest.raises(OutputDirInUse):
        require_fresh_output(tmp_path, tmp_path / "models")
    assert require_fresh_output(tmp_path, tmp_path / "models", retrain=True) == str(tmp_path)
    assert model.is_file() and task.is_file() and not history.exists() and not last.exists()
    require_fresh_output(tmp_path, tmp_path / "models", overwrite=True, retrain=True)  # --overwrite deletes all
    assert not model.exists() and not task.exists()
