"""The bundles divide the learning rate by 10 once, after half the epochs, whatever the epoch count."""

from __future__ import annotations

import pytest
import torch
from bundle_helpers import BUNDLES, config_path
from monai.bundle import ConfigParser


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("protocol", [[], ["protocol_paper.yaml"]])
@pytest.mark.parametrize("max_epochs", [1, 3, 4, 7, 100])
def test_one_drop_at_half_the_schedule(bundle: str, protocol: list[str], max_epochs: int) -> None:
    parser = ConfigParser()
    parser.read_config([config_path(bundle, name) for name in ["train.yaml", *protocol]])
    parser["optimizer#params"] = "$[torch.nn.Parameter(torch.zeros(1))]"
    parser["max_epochs"] = max_epochs
    parser["learning_rate"] = 1e-3
    scheduler = parser.get_parsed_content("lr_scheduler")
    rates = []
    for _ in range(max_epochs):  # LrScheduleHandler steps once per epoch, after it
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    half = max(1, max_epochs // 2)
    assert rates == pytest.approx([1e-3] * half + [1e-4] * (max_epochs - half)), rates
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_the_drop_follows_the_epochs_the_trainer_runs(bundle: str) -> None:
    """MONAI Label sets train#trainer#max_epochs (its default: 50), not max_epochs: the one drop is at half of those."""
    parser = ConfigParser()
    parser.read_config(config_path(bundle, "train.yaml"))
    parser["optimizer#params"] = "$[torch.nn.Parameter(torch.zeros(1))]"
    parser["train#trainer#max_epochs"] = 50
    assert parser.get_parsed_content("lr_scheduler").milestones == {25: 1}
