"""`inject_loss` makes every official Auto3DSeg template train with the injected loss, each by its own merge order.

The algorithms are the stand-ins of ``auto3dseg_templates/`` (the official templates at research-contributions
21ed8e5 cannot be downloaded in CI): their configs copy the official loss entries and their scripts resolve the
config as the official ``train.py`` / ``search.py`` do, from the files ``BundleAlgo.train`` passes. The loss those
scripts build is called on a probe and compared with MONAI's own ``NACLLoss`` (per deep-supervision level, with
the labels downsampled as ``DeepSupervisionLoss`` does), so a loss replaced by the template's own fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from monai.bundle import ConfigParser
from monai.losses import NACLLoss

from monai_nacl.integrations.auto3dseg import OVERRIDE_FILE, inject_loss, loss_keys, template_config
from monai_nacl.losses import NeighborAwareLoss, create_calibration_loss
from tests.integrations.auto3dseg_templates import SCRIPTS, TEMPLATES, generated_algorithm, resolved_loss

NACL_005 = {"_target_": "monai_nacl.losses.NeighborAwareLoss", "alpha": 0.05}
STAGES = [(template, script) for template in TEMPLATES for script in SCRIPTS[template]]
DEEP_SUPERVISION = {"segresnet": (2, 3), "segresnet2d": (2, 2)}
"""Levels of the stand-ins' SegResNetDS outputs and how many spatial dims each level halves (2D: not the depth)."""


def _probe(classes: int, levels: int, halved: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    spatial = (8, 8, 6)
    logits = [
        torch.randn(2, classes, *(s >> lv if d < halved else s for d, s in enumerate(spatial)), generator=generator)
        for lv in range(levels)
    ]
    return logits, torch.randint(0, classes, (2, 1, *spatial), generator=generator).float()


def _nacl_reference(logits: list[torch.Tensor], labels: torch.Tensor, alpha: float, halved: int) -> float:
    """MONAI's NACLLoss per level, weighted 1, 1/2, ... on labels taken at the voxels ``nearest-exact`` keeps."""
    total = 0.0
    for level, level_logits in enumerate(logits):
        step, start = 1 << level, (1 << level) >> 1
        index = tuple(slice(start, None, step) if d < halved else slice(None) for d in range(3))
        level_labels = labels[(slice(None), 0, *index)].long()
        nacl = NACLLoss(classes=level_logits.shape[1], dim=3, alpha=alpha)(level_logits, level_labels)
        total += 0.5**level * nacl.item()
    return total


@pytest.mark.parametrize(("template", "script"), STAGES)
def test_each_template_trains_with_the_injected_loss(tmp_path: Path, template: str, script: str) -> None:
    """As the template's own script resolves the config: the loss is ours, with our alpha, deep supervision
    included (segresnet, segresnet2d); dints also in its architecture search."""
    algo = generated_algorithm(tmp_path, template)
    assert not isinstance(getattr(resolved_loss(algo, script), "loss", None), NeighborAwareLoss)
    inject_loss(tmp_path, NACL_005)

    loss = resolved_loss(algo, script)
    levels, halved = DEEP_SUPERVISION.get(template, (1, 3))
    inner = loss.loss if levels > 1 else loss  # segresnet wraps its loss in DeepSupervisionLoss
    assert type(inner) is NeighborAwareLoss and inner.alpha == 0.05
    logits, labels = _probe(3, levels, halved)
    value = loss(logits if levels > 1 else logits[0], labels)
    expected = _nacl_reference(logits, labels, 0.05, halved)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert value.item() != pytest.approx(_nacl_reference(logits, labels, 0.1, halved), rel=1e-3)  # not the default


def test_a_loss_merged_before_hyper_parameters_is_replaced_in_swinunetr(tmp_path: Path) -> None:
    """The regression the stand-ins exist for: a file sorted last wins in a sorted merge, but swinunetr lays
    hyper_parameters.yaml over every other file, so it trains with its DiceCELoss."""
    algo = generated_algorithm(tmp_path, "swinunetr")
    (algo / "configs" / OVERRIDE_FILE).write_text(yaml.safe_dump({"loss": NACL_005}))
    files = sorted(str(p) for p in (algo / "configs").glob("*.yaml"))
    assert ConfigParser.load_config_files(files)["loss"] == NACL_005  # what a sorted merge reports
    assert type(resolved_loss(algo)).__name__ == "DiceCELoss"  # what swinunetr's train.py trains with
    assert template_config(algo)["loss"]["_target_"] == "DiceCELoss"  # and what inject_loss reads back

    (written,) = inject_loss(algo, NACL_005)
    assert written == algo / "configs" / "hyper_parameters.yaml"
    assert type(resolved_loss(algo)) is NeighborAwareLoss


@pytest.mark.parametrize(("template", "script"), STAGES)
def test_template_config_merges_as_the_script(tmp_path: Path, template: str, script: str) -> None:
    """Loss entries in a file sorted first and one sorted last: `template_config` picks the one the script does."""
    algo = generated_algorithm(tmp_path, template)
    key = {("dints", "train"): "training#loss", ("dints", "search"): "searching#loss"}.get((template, script), "loss")
    section, _, entry = key.rpartition("#")
    first = {section: {entry: {"_target_": "DiceLoss"}}} if section else {key: {"_target_": "DiceLoss"}}
    (algo / "configs" / "aaa_first.yaml").write_text(yaml.safe_dump(first))  # a '#' id needs its section first
    (algo / "configs" / "zzz_last.yaml").write_text(yaml.safe_dump({key: {"_target_": "FocalLoss"}}))
    built = resolved_loss(algo, script)
    built = getattr(built, "loss", built)
    merged = ConfigParser(template_config(algo))
    assert merged[key]["_target_"] == type(built).__name__
    assert type(built).__name__ == ("DiceCELoss" if template == "swinunetr" else "FocalLoss")


def test_inject_by_name_into_every_template(tmp_path: Path) -> None:
    for template in TEMPLATES:
        generated_algorithm(tmp_path, template)
    written = inject_loss(tmp_path, "nacl")
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        f"dints_0/configs/{OVERRIDE_FILE}",
        f"segresnet2d_0/configs/{OVERRIDE_FILE}",
        f"segresnet_0/configs/{OVERRIDE_FILE}",
        "swinunetr_0/configs/hyper_parameters.yaml",
    ]
    by_name = {"_target_": "monai_nacl.losses.create_calibration_loss", "name": "nacl"}
    assert yaml.safe_load(written[0].read_text()) == {"training#loss": by_name, "searching#loss": by_name}
    assert "&id" not in written[0].read_text()  # two plain entries, no YAML alias
    for template, script in STAGES:
        loss = resolved_loss(tmp_path / f"{template}_0", script)
        assert type(getattr(loss, "loss", loss)) is type(create_calibration_loss("nacl"))


def test_swinunetr_hyper_parameters_keep_every_other_entry(tmp_path: Path) -> None:
    algo = generated_algorithm(tmp_path, "swinunetr")
    hyper = algo / "configs" / "hyper_parameters.yaml"
    before = yaml.safe_load(hyper.read_text())
    inject_loss(algo, "svls")
    inject_loss(algo, NACL_005)  # a second injection replaces the first
    after = yaml.safe_load(hyper.read_text())
    assert after.pop("loss") == NACL_005 and before.pop("loss")["_target_"] == "DiceCELoss"
    assert after == before
    assert not (algo / "configs" / OVERRIDE_FILE).exists()


def test_inject_component_dict_into_one_algo(tmp_path: Path) -> None:
    segresnet, dints = generated_algorithm(tmp_path, "segresnet"), generated_algorithm(tmp_path, "dints")
    inject_loss(segresnet, NACL_005)
    assert not (dints / "configs" / OVERRIDE_FILE).exists()
    assert type(resolved_loss(dints)).__name__ == "DiceFocalLoss"
    assert resolved_loss(segresnet).loss.alpha == 0.05


def test_loss_entries_are_found_in_the_configs(tmp_path: Path) -> None:
    """Where the configs hold the loss wins over the template's usual ids (a swinunetr of an older layout holds
    ``training#loss``); a custom template is merged in BundleAlgo's order and served too."""
    old_swin = generated_algorithm(tmp_path, "swinunetr")
    hyper = old_swin / "configs" / "hyper_parameters.yaml"
    config = yaml.safe_load(hyper.read_text())
    config["training"] = {"loss": config.pop("loss"), "num_epochs": 2}
    hyper.write_text(yaml.safe_dump(config))
    custom = tmp_path / "mynet_0"
    (custom / "scripts").mkdir(parents=True)
    (custom / "configs").mkdir()
    (custom / "configs" / "hyper_parameters.yaml").write_text(yaml.safe_dump({"loss": {"_target_": "DiceLoss"}}))
    assert loss_keys(old_swin) == ("training#loss",) and loss_keys(custom) == ("loss",)

    inject_loss(tmp_path, "nacl")
    merged = ConfigParser(template_config(old_swin))
    assert "loss" not in merged.get() and merged["training#num_epochs"] == 2
    assert isinstance(merged.get_parsed_content("training#loss"), NeighborAwareLoss)
    assert isinstance(ConfigParser(template_config(custom)).get_parsed_content("loss"), NeighborAwareLoss)
    assert loss_keys(custom) == ("loss",)  # the injected file is left out when looking for the entries


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "nope"}, "unknown loss name"),
        ({"loss": {"_target_": "NeighborAwareLoss"}}, "dotted-path"),
        ({"loss": "nacl", "template": "unet"}, "unknown Auto3DSeg template"),
    ],
)
def test_bad_input(tmp_path: Path, kwargs: dict, match: str) -> None:
    generated_algorithm(tmp_path, "segresnet")
    with pytest.raises(ValueError, match=match):
        inject_loss(tmp_path, **kwargs)


@pytest.mark.parametrize(
    ("template", "fills", "switch"),
    [
        ("segresnet", {"hyper_parameters.yaml": {"sigmoid": True}}, "sigmoid: true"),
        ("swinunetr", {"hyper_parameters.yaml": {"softmax": False}}, "softmax: false"),
        ("dints", {"hyper_parameters.yaml": {"training#softmax": False}}, "training#softmax: false"),
        ("dints", {"hyper_parameters_search.yaml": {"searching#softmax": False}}, "searching#softmax: false"),
    ],
)
def test_sigmoid_algorithms_are_refused(tmp_path: Path, template: str, fills: dict, switch: str) -> None:
    """Each template's own sigmoid switch (as its algo.py sets it): overlapping binary channels are no class
    distribution. Nothing is written, and the user is told why."""
    generated_algorithm(tmp_path, "segresnet2d")
    algo = generated_algorithm(tmp_path, template, fills)
    before = {p: p.read_text() for p in tmp_path.glob("*/configs/*")}
    with pytest.raises(ValueError, match=f"{algo.name} is set to sigmoid outputs \\({switch}"):
        inject_loss(tmp_path)
    assert {p: p.read_text() for p in tmp_path.glob("*/configs/*")} == before


def test_a_loss_the_template_lays_over_the_injected_one_stops_and_restores(tmp_path: Path) -> None:
    """dints' fine-tuning lays finetune#overwrite over training: a loss there would replace the injected one."""
    algo = generated_algorithm(
        tmp_path,
        "dints",
        {
            "hyper_parameters.yaml": {
                "finetune#activate_finetune": True,
                "finetune#overwrite#loss": {"_target_": "DiceLoss"},
            }
        },
    )
    previous = "training#loss: {_target_: DiceLoss}\n"  # a file left by an earlier injection, to be restored
    (algo / "configs" / OVERRIDE_FILE).write_text(previous)
    with pytest.raises(RuntimeError, match="training#loss.*DiceLoss.*finetune#overwrite#loss.*No file was changed"):
        inject_loss(tmp_path, "nacl")
    assert (algo / "configs" / OVERRIDE_FILE).read_text() == previous


def test_no_algorithms(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no generated algorithm"):
        inject_loss(tmp_path)
    (tmp_path / "mystery_0" / "configs").mkdir(parents=True)
    (tmp_path / "mystery_0" / "scripts").mkdir()
    with pytest.raises(ValueError, match="cannot tell the losses of .*mystery_0.*pass template="):
        inject_loss(tmp_path)
