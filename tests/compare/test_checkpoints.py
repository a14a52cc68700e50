"""The final checkpoint's weights: the network of checkpoint_last.pt written as a model.pt of its own, with the
training's task.json describing it (its own hash, no calibration), so evaluate.yaml reads it through ckpt_dir."""

from __future__ import annotations

import json

import pytest
import torch

from monai_nacl.bundle import TrainedTask
from monai_nacl.compare.checkpoints import write_final_model
from monai_nacl.utils import file_sha256


def test_final_model_is_the_last_checkpoints_network_with_its_task(tmp_path):
    ckpt_dir, final_dir = tmp_path / "models", tmp_path / "final" / "models"
    ckpt_dir.mkdir()
    best, last = torch.nn.Conv2d(1, 2, 1), torch.nn.Conv2d(1, 2, 1)
    torch.save(best.state_dict(), ckpt_dir / "model.pt")
    optimizer = torch.optim.SGD(last.parameters(), lr=0.1)
    # what LastCheckpointSaver saves; the trainer as ignite's Engine.state_dict(): 168 iterations of 24 = 7 epochs
    state = {
        "network": last.state_dict(),
        "optimizer": optimizer.state_dict(),
        "trainer": {"epoch_length": 24, "iteration": 168, "max_epochs": 9},
    }
    torch.save(state, ckpt_dir / "checkpoint_last.pt")
    task = {
        "format_version": 1,
        "num_classes": 2,
        "pixdim": [2.0, 2.0],
        "roi_size": [8, 8],
        "model": {"file": "model.pt", "sha256": file_sha256(ckpt_dir / "model.pt")},
        "calibration": {"method": "ts"},
    }
    (ckpt_dir / "task.json").write_text(json.dumps(task))

    model = write_final_model(ckpt_dir, final_dir)
    assert model == final_dir / "model.pt"
    saved = torch.load(model, weights_only=True)
    assert saved.keys() == last.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in last.state_dict().items())
    record = json.loads((final_dir / "task.json").read_text())
    assert record["model"] == {
        "file": "model.pt",
        "sha256": file_sha256(model),
        "source": "checkpoint_last.pt",
        "epoch": 7,
    }
    assert record["calibration"] is None and record["pixdim"] == [2.0, 2.0]
    trained = TrainedTask(final_dir)
    assert trained.require_model() == str(model) and trained.num_classes == 2
    trained.network(torch.nn.Conv2d(1, 2, 1))  # the weights fit the recorded network


def test_final_model_refusals(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint_last.pt in .*use --checkpoint best"):
        write_final_model(tmp_path, tmp_path / "final")
    torch.save({"model": {}}, tmp_path / "checkpoint_last.pt")
    with pytest.raises(ValueError, match=r"holds no 'network' state dict \(it holds \['model'\]\)"):
        write_final_model(tmp_path, tmp_path / "final")
    assert not (tmp_path / "final").exists()
