"""Validation logits for temperature scaling, read through a bundle config (in-process, tiny network)."""

from __future__ import annotations

import textwrap

import pytest
import torch

from monai_nacl.compare.posthoc import collect_validation_logits

CONFIG = """
imports:
  - $import torch
device: cpu
seed: 0
cases: "$[{'image': torch.randn(1, 1, 6, 5, generator=torch.Generator().manual_seed(i)),
           'label': torch.randint(0, 2, (1, 1, 6, 5), generator=torch.Generator().manual_seed(10 + i))}
          for i in range(3)]"
network_def:
  _target_: torch.nn.Conv2d
  in_channels: 1
  out_channels: 2
  kernel_size: 1
network: $@network_def.to(@device)
validate:
  dataloader: "@cases"
  inferer:
    _target_: SimpleInferer
"""


@pytest.fixture()
def bundle(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.yaml").write_text(textwrap.dedent(CONFIG))
    torch.manual_seed(3)
    net = torch.nn.Conv2d(1, 2, 1)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    return tmp_path, net


def test_logits_are_the_trained_network_outputs(bundle):
    folder, net = bundle
    logits, labels = collect_validation_logits(folder, ["train.yaml"], {"seed": "0"}, folder / "model.pt")
    expected, expected_labels = [], []
    for i in range(3):
        image = torch.randn(1, 1, 6, 5, generator=torch.Generator().manual_seed(i))
        label = torch.randint(0, 2, (1, 1, 6, 5), generator=torch.Generator().manual_seed(10 + i))
        expected.append(net(image).detach()[0].reshape(2, -1).T)
        expected_labels.append(label.reshape(-1))
    torch.testing.assert_close(logits, torch.cat(expected))
    assert torch.equal(labels, torch.cat(expected_labels))

    sampled, sampled_labels = collect_validation_logits(
        folder, ["train.yaml"], {}, folder / "model.pt", max_voxels_per_case=7, region="foreground"
    )
    assert sampled.shape == (21, 2) and bool((sampled_labels == 1).all())  # 7 foreground voxels per case
    rows = {tuple(r) for r in torch.cat(expected)[torch.cat(expected_labels) == 1].tolist()}
    assert all(tuple(r) in rows for r in sampled.tolist())


def test_checkpoint_saver_layout_and_bad_region(bundle):
    folder, net = bundle
    torch.save({"model": net.state_dict(), "optimizer": {}}, folder / "full.pt")
    logits, _ = collect_validation_logits(folder, ["train.yaml"], {}, folder / "full.pt")
    assert logits.shape == (90, 2)
    with pytest.raises(ValueError, match="region must be 'all' or 'foreground'"):
        collect_validation_logits(folder, ["train.yaml"], {}, folder / "full.pt", region="band")
