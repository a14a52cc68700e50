"""The bundles are generated from one source, and their training patches are centred as the config says."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_helpers import BUNDLES, config_path
from monai.bundle import ConfigParser

from monai_nacl.losses import LOSS_DEFAULTS
from monai_nacl.workflows.bundle_sources import BUNDLE_SPECS, generate_bundles


def test_committed_bundles_are_what_the_sources_generate() -> None:
    changed = generate_bundles(check=True)
    assert not changed, f"regenerate with `python -m monai_nacl bundle generate`: {[str(p) for p in changed]}"
    assert sorted(BUNDLE_SPECS) == sorted(BUNDLES)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_losses_come_from_the_registry(bundle: str) -> None:
    parser = ConfigParser()
    parser.read_config(config_path(bundle, "train.yaml"))
    losses = parser["losses"]
    assert list(losses) == list(LOSS_DEFAULTS)
    for name, (cls, defaults) in LOSS_DEFAULTS.items():
        assert losses[name]["_target_"].rsplit(".", 1)[1] == cls.__name__
        for key, value in defaults.items():
            assert losses[name][key] == value, f"{bundle}: losses#{name}#{key}"


@pytest.mark.parametrize("protocol", ["default", "paper"])
def test_training_patches_are_centred_on_foreground_and_background_alike(protocol: str) -> None:
    """Counts the labels at the crop centres of the 2D bundle on the default dataset: pos 1, neg 1 must give about
    half background centres (before the fix: 0-3 background candidates per case, so nearly none)."""
    parser = ConfigParser()
    files = ["train.yaml"] + (["protocol_paper.yaml"] if protocol == "paper" else [])
    parser.read_config([config_path("unet2d_nacl", f) for f in files])
    # a 1-voxel crop keeps MONAI from moving a centre that is too close to the border (the 96 x 96 patch of a
    # 98 x 116 slice leaves almost no room), so the label at each centre says which kind was drawn
    parser["train#sampling_transforms#0#spatial_size"] = [1, 1, 1]
    data = parser.get_parsed_content("train#dataset#data")[:2]
    transforms = parser.get_parsed_content("train#preprocessing").transforms
    crop = next(t for t in transforms if type(t).__name__ == "RandCropByPosNegLabeld")
    crop.set_random_state(0)
    cached_steps = transforms[: transforms.index(crop)]
    background = foreground = 0
    for item in data:
        sample = dict(item)
        for transform in cached_steps:
            sample = transform(sample)
        label = np.asarray(sample["label"])[0]
        assert len(sample["label_bg_indices"]) > 1000, "too few background candidates (0-3 before the fix)"
        for _ in range(25):
            patches = crop(sample)
            for centre in crop.cropper.centers:
                value = label[tuple(int(c) for c in centre)]
                background += int(value == 0)
                foreground += int(value != 0)
            assert "label_fg_indices" not in transforms[transforms.index(crop) + 1](patches[0])
    total = background + foreground
    assert total == 2 * 25 * parser["num_samples"]
    assert 0.4 < background / total < 0.6, f"{background} background of {total} centres"
    if protocol == "paper":
        assert parser["train#augmentation"] == []
        assert parser["network_def#channels"] == [32, 64, 128, 256, 512] and parser["network_def#norm"] is None
