"""Unit tests of monai_nacl.workflows: uncertainty maps, atomic writes, bundle start-up helpers, report rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_helpers import BUNDLES_DIR
from monai.data import MetaTensor

from monai_nacl.workflows import (
    UncertaintyMapsd,
    as_flag,
    atomic_write,
    atomic_write_text,
    case_name,
    inference_inputs,
    select_loss,
    uncertainty_maps,
)


def test_uncertainty_maps_against_numpy_loops() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3, 5, 2))
    probs = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    probs[:, 0, 0, 0] = [1.0, 0.0, 0.0, 0.0]  # 0 log 0 = 0
    seg, conf, ent = uncertainty_maps(torch.from_numpy(probs))
    for idx in np.ndindex(probs.shape[1:]):
        p = probs[(slice(None), *idx)]
        assert int(seg[(0, *idx)]) == int(np.argmax(p))
        assert float(conf[(0, *idx)]) == pytest.approx(p.max(), abs=1e-6)
        h = -sum(q * math.log(q) for q in p if q > 0) / math.log(4)
        assert float(ent[(0, *idx)]) == pytest.approx(h, abs=1e-6)
    assert float(ent[0, 0, 0, 0]) == 0.0
    _, _, raw = uncertainty_maps(torch.full((3, 2), 1 / 3), normalize_entropy=False)
    torch.testing.assert_close(raw, torch.full((1, 2), math.log(3)))


def test_uncertainty_mapsd_keeps_metadata_and_names() -> None:
    probs = MetaTensor(torch.softmax(torch.randn(3, 4, 4, 4), 0), affine=torch.diag(torch.tensor([2.0, 3, 4, 1])))
    probs.meta["filename_or_obj"] = "/data/case_07.nii.gz"
    out = UncertaintyMapsd("pred", seg_key="pred")({"pred": probs})
    assert out["pred"].shape == (1, 4, 4, 4) and out["pred"].dtype == torch.int64
    for key in ("pred", "max_prob", "entropy"):
        torch.testing.assert_close(out[key].affine, probs.affine)
    assert case_name(out) == "case_07"
    with pytest.raises(ValueError, match="one probability item"):
        UncertaintyMapsd(["pred", "other"])
    with pytest.raises(ValueError, match="C >= 2"):
        uncertainty_maps(torch.ones(1, 3, 3))


def test_atomic_write_replaces_whole_file_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "summary.json"
    atomic_write_text(target, '{"old": 1}')

    def broken(tmp: str) -> None:
        Path(tmp).write_text('{"new": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"old": 1}
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]
    atomic_write(target, lambda tmp: Path(tmp).write_text('{"new": 2}'))
    assert json.loads(target.read_text()) == {"new": 2}


def test_select_loss() -> None:
    losses = {"ce": torch.nn.CrossEntropyLoss(), "nacl": torch.nn.Identity()}
    assert select_loss(losses, "nacl") is losses["nacl"]
    with pytest.raises(ValueError, match=r"unknown loss_name 'svls'; choose one of \['ce', 'nacl'\]"):
        select_loss(losses, "svls")


def test_as_flag_reads_command_line_words() -> None:
    """`--check_data false` reaches the config as the string 'false', which Python would take as true."""
    for value in (True, 1, "true", "True", "YES", " on "):
        assert as_flag(value, "check_data") is True
    for value in (False, 0, "false", "False", "no", "OFF", "0"):
        assert as_flag(value, "check_data") is False
    for value in ("maybe", "", 2, None):
        with pytest.raises(ValueError, match="--resume .* is not a yes/no value; pass --resume true or --resume false"):
            as_flag(value, "resume")


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


def test_effective_settings_are_logged_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    """The bundle's `settings` resolve to what the run uses: a misspelled override leaves max_epochs as it was."""
    import logging

    from monai.bundle import ConfigParser

    from monai_nacl.workflows import log_settings

    parser = ConfigParser()
    parser.read_config(str(BUNDLES_DIR / "unet2d_nacl" / "configs" / "train.yaml"))
    parser.update({"bundle_root": str(BUNDLES_DIR / "unet2d_nacl"), "max_epoch": 5, "datalist": "/x/list.json"})
    settings = parser.get_parsed_content("settings")
    assert settings["max_epochs"] == 40 and settings["datalist"] == "/x/list.json"
    assert settings["dataset_dir"] == "/x"  # the datalist's folder by default
    with caplog.at_level(logging.INFO, logger="monai_nacl"):
        log_settings(settings)
    assert "effective settings" in caplog.text and "  max_epochs: 40" in caplog.text
