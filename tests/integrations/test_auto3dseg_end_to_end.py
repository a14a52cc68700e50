"""Auto3DSeg end to end: AutoRunner analyses the data and generates an algorithm per template, `inject_loss` puts
NACL into each, AutoRunner trains them from its cache, and each training script reports that it ran our loss with
our parameters; dints' architecture search too.

The official templates are downloaded at run time, so the templates here are the stand-ins of
``auto3dseg_templates/`` (segresnet, segresnet2d, swinunetr, dints), passed as a local ``templates_path_or_url``:
laid out as the official ones, their scripts resolve the config from the files ``BundleAlgo.train`` passes as the
official scripts of research-contributions 21ed8e5 do (swinunetr: ``hyper_parameters.yaml`` laid over the others),
build the loss as they do (segresnet: ``DeepSupervisionLoss`` of a parser of the loss entry alone) and train a
small network for one epoch. Each training is a fresh Python process (about 15 s of imports here).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml
from monai.apps.auto3dseg import AutoRunner
from monai.auto3dseg.utils import algo_from_json
from monai.losses import DeepSupervisionLoss, NACLLoss
from monai.utils.enums import AlgoKeys

from monai_nacl.data import make_synthetic_dataset
from monai_nacl.integrations.auto3dseg import OVERRIDE_FILE, inject_loss
from tests.integrations.auto3dseg_templates import TEMPLATES, assemble_templates

NUM_CLASSES = 3
DEEP_SUPERVISION = {"segresnet": (2, 3), "segresnet2d": (2, 2)}
"""Levels of the stand-ins' SegResNetDS outputs and how many spatial dims each level halves (2D: not the depth)."""
CKPT = {"segresnet": "model", "segresnet2d": "model", "swinunetr": "model_fold0", "dints": "model_fold0"}


def _probe_value(levels: int, halved: int, alpha: float) -> float:
    """The stand-ins' probe (``stand_in.probe``) under MONAI's NACLLoss with ``alpha``, deep supervision by MONAI's
    ``DeepSupervisionLoss`` where the template uses it."""
    generator = torch.Generator().manual_seed(0)
    spatial = (8, 8, 8)
    logits = [
        torch.randn(1, NUM_CLASSES, *(s >> lv if d < halved else s for d, s in enumerate(spatial)), generator=generator)
        for lv in range(levels)
    ]
    labels = torch.randint(0, NUM_CLASSES, (1, 1, *spatial), generator=generator)

    class MonaiNacl(torch.nn.Module):  # NACLLoss takes (B, *spatial) integer labels
        def forward(self, x, y):
            return NACLLoss(classes=NUM_CLASSES, dim=3, alpha=alpha)(x, y[:, 0].long())

    loss = DeepSupervisionLoss(MonaiNacl()) if levels > 1 else MonaiNacl()
    return loss(logits if levels > 1 else logits[0], labels.float()).item()


@pytest.fixture
def template_modules(monkeypatch: pytest.MonkeyPatch):
    """AutoRunner imports ``<template>.scripts.algo`` from a folder it puts on sys.path: undo both afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for module in [m for m in sys.modules if m.split(".")[0] in TEMPLATES]:
        del sys.modules[module]


@pytest.mark.slow
def test_autorunner_trains_every_template_with_injected_nacl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template_modules: None
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    templates = assemble_templates(tmp_path / "templates")
    # Auto3DSeg's datalist: 4 training cases in fold 1, the validation case in fold 0; one fold is trained
    synthetic = json.loads(Path(make_synthetic_dataset(tmp_path / "data", num_cases=6, size=32)).read_text())
    folds = [{**case, "fold": 1} for case in synthetic["training"]] + [{**synthetic["validation"][0], "fold": 0}]
    datalist = tmp_path / "data" / "auto3dseg_datalist.json"
    datalist.write_text(json.dumps({"training": folds, "testing": synthetic["test"]}))
    work_dir = tmp_path / "work_dir"
    task = {"modality": "mri", "datalist": str(datalist), "dataroot": str(tmp_path / "data"), "num_fold": 1}

    def runner(**kwargs) -> AutoRunner:
        r = AutoRunner(
            work_dir=str(work_dir), input=task, templates_path_or_url=str(templates), ensemble=False, **kwargs
        )
        r.set_analyze_params({"do_ccp": False, "device": "cpu", "worker": 0})  # no loader processes for 5 cases
        return r.set_device_info(cuda_visible_devices="", cmd_prefix=sys.executable)

    runner(train=False).run()  # data analysis and algorithm generation only
    algos = {template: work_dir / f"{template}_0" for template in TEMPLATES}
    assert sorted(p.name for p in work_dir.iterdir() if (p / "scripts" / "train.py").is_file()) == sorted(
        a.name for a in algos.values()
    )

    component = {"_target_": "monai_nacl.losses.NeighborAwareLoss", "alpha": 0.05}
    written = inject_loss(work_dir, component)
    swin_hyper = algos["swinunetr"] / "configs" / "hyper_parameters.yaml"
    assert sorted(written) == sorted(
        [algos[t] / "configs" / OVERRIDE_FILE for t in TEMPLATES if t != "swinunetr"] + [swin_hyper]
    )

    runner().run()  # from AutoRunner's cache: no new analysis or generation (which would drop the injection)
    dints, _ = algo_from_json(str(algos["dints"] / "algo_object.json"), template_path=str(templates))
    cmd, devices_info = dints._create_cmd({})  # as the official DintsAlgo.train(search=True) runs the search
    dints._run_cmd(cmd.replace("train.py", "search.py"), devices_info)

    records = {t: algos[t] / CKPT[t] / "loss_record.json" for t in TEMPLATES}
    records["dints search"] = next((algos["dints"]).glob("arch_ram*_fold0")) / "search_loss_record.json"
    for stage, path in records.items():
        record = json.loads(path.read_text())
        levels, halved = DEEP_SUPERVISION.get(stage, (1, 3))
        assert record["inner_loss_class"] == "monai_nacl.losses.neighborhood.NeighborAwareLoss", stage
        assert record["alpha"] == 0.05, stage
        assert len(record["losses"]) == 4 and all(math.isfinite(v) and v > 0 for v in record["losses"]), stage
        # the loss that trained computes MONAI's NACLLoss with alpha 0.05 (not its default 0.1), per level
        nacl, default_nacl = _probe_value(levels, halved, 0.05), _probe_value(levels, halved, 0.1)
        assert record["probe"] == pytest.approx(nacl, rel=1e-5) and record["probe"] != pytest.approx(default_nacl)
    for template in TEMPLATES:  # AutoRunner recorded each algorithm as trained, with the Dice its train.py wrote
        score = yaml.safe_load((algos[template] / CKPT[template] / "progress.yaml").read_text())[-1]
        algo_object = json.loads((algos[template] / "algo_object.json").read_text())
        assert 0.0 <= score["best_avg_dice_score"] <= 1.0
        assert algo_object[AlgoKeys.SCORE] == pytest.approx(score["best_avg_dice_score"])
