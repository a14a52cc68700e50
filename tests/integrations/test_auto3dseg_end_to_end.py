"""Auto3DSeg end to end: AutoRunner analyses the data and generates an algorithm, `inject_loss` puts NACL into it,
AutoRunner trains it from its cache, and the training script reports that it ran our loss with our parameters.

The official templates are downloaded at run time, so the template here is a small stand-in written in the test,
laid out as MONAI's ``algorithm_templates`` (``segresnet/scripts/algo.py`` with a ``BundleAlgo`` subclass,
``configs/hyper_parameters.yaml``, ``scripts/train.py`` run by ``BundleAlgo.train``) and named after the official
segresnet, whose loss entry it copies: top-level ``loss``, built by a parser of that dict alone (no ``imports``).
Each training is a fresh Python process (about 15 s of imports here), so one template is trained; the dints layout
(``training#loss``) is covered by ``test_auto3dseg.py`` on the files ``BundleAlgo`` passes to its script.
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
from monai.losses import NACLLoss
from monai.utils.enums import AlgoKeys

from monai_nacl.data import make_synthetic_dataset
from monai_nacl.integrations.auto3dseg import OVERRIDE_FILE, inject_loss

NUM_CLASSES = 3

ALGO_PY = '''"""Stand-in for segresnet's algo.py: fills hyper_parameters.yaml from the data source and DataAnalyzer stats."""

import os

from monai.apps.auto3dseg import BundleAlgo
from monai.bundle import ConfigParser


class SegresnetAlgo(BundleAlgo):
    def fill_template_config(self, data_stats_filename, output_path, **kwargs):
        source = ConfigParser.load_config_file(self.data_list_file)
        stats = ConfigParser(ConfigParser.load_config_file(data_stats_filename))
        fill = {
            "bundle_root": output_path,
            "data_file_base_dir": os.path.abspath(source["dataroot"]),
            "data_list_file_path": os.path.abspath(source["datalist"]),
            "fold": kwargs.get("fold", 0),
            "input_channels": int(stats["stats_summary#image_stats#channels#max"]),
            "output_classes": len(stats["stats_summary#label_stats#labels"]),
        }
        path = os.path.join(output_path, "configs", "hyper_parameters.yaml")
        parser = ConfigParser()
        parser.read_config(path)
        parser.update(fill)
        ConfigParser.export_config_file(parser.get(), path, fmt="yaml", sort_keys=False)
        return {"hyper_parameters.yaml": fill}
'''

TRAIN_PY = '''"""Stand-in for segresnet's train.py: one epoch of a tiny UNet with the loss of the merged configs."""

import json
import os

import fire
import torch
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from monai.metrics import compute_dice
from monai.networks import one_hot
from monai.networks.nets import UNet
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, ScaleIntensityd


def run(config_file, **override):
    parser = ConfigParser()
    parser.read_config(config_file)  # BundleAlgo passes configs/*.yaml in sorted order; merged in that order
    parser.update(override)
    loss_function = ConfigParser(parser["loss"]).get_parsed_content(instantiate=True)  # as segresnet's Segmenter
    ckpt_path = parser.get_parsed_content("ckpt_path")
    os.makedirs(ckpt_path, exist_ok=True)
    classes = parser["output_classes"]

    datalist = ConfigParser.load_config_file(parser["data_list_file_path"])
    base, fold = parser["data_file_base_dir"], parser["fold"]
    cases = {True: [], False: []}
    for item in datalist["training"]:
        files = {key: os.path.join(base, item[key]) for key in ("image", "label")}
        cases[item["fold"] == fold].append(files)
    transform = Compose([LoadImaged(["image", "label"], image_only=True), EnsureChannelFirstd(["image", "label"]),
                         ScaleIntensityd("image")])
    torch.manual_seed(0)
    network = UNet(3, parser["input_channels"], classes, channels=(4, 8), strides=(2,), num_res_units=0)
    optimizer = torch.optim.Adam(network.parameters(), parser["learning_rate"])
    losses = []
    for batch in DataLoader(Dataset(cases[False], transform), batch_size=1):
        optimizer.zero_grad()
        loss = loss_function(network(batch["image"]), batch["label"])  # float labels (B, 1, ...), as Auto3DSeg's
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    network.eval()
    dice = []
    with torch.no_grad():
        for batch in DataLoader(Dataset(cases[True], transform), batch_size=1):
            pred = one_hot(network(batch["image"]).argmax(1, keepdim=True), classes)
            dice.append(compute_dice(pred, one_hot(batch["label"], classes), include_background=False).nanmean())
    score = float(torch.stack(dice).mean())
    with open(os.path.join(ckpt_path, "progress.yaml"), "w") as f:  # what BundleAlgo.get_score reads
        f.write(f"- best_avg_dice_score: {score}\\n")

    generator = torch.Generator().manual_seed(0)
    probe_logits = torch.randn(1, classes, 8, 8, 8, generator=generator)
    probe_labels = torch.randint(0, classes, (1, 1, 8, 8, 8), generator=generator).float()
    record = {
        "loss_class": f"{type(loss_function).__module__}.{type(loss_function).__qualname__}",
        "alpha": getattr(loss_function, "alpha", None),
        "losses": losses,
        "probe": loss_function(probe_logits, probe_labels).item(),
    }
    with open(os.path.join(ckpt_path, "loss_record.json"), "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    fire.Fire()
'''

HYPER_PARAMETERS = {
    "bundle_root": None,
    "ckpt_path": "$@bundle_root + '/model'",
    "data_file_base_dir": None,
    "data_list_file_path": None,
    "fold": 0,
    "input_channels": None,
    "output_classes": None,
    "learning_rate": 0.001,
    "loss": {"_target_": "DiceCELoss", "include_background": True, "softmax": True, "to_onehot_y": True},
}


def _write_template(root: Path) -> None:
    scripts = root / "segresnet" / "scripts"
    scripts.mkdir(parents=True)
    (root / "segresnet" / "configs").mkdir()
    (root / "segresnet" / "configs" / "hyper_parameters.yaml").write_text(yaml.safe_dump(HYPER_PARAMETERS))
    (scripts / "__init__.py").write_text("")
    (scripts / "algo.py").write_text(ALGO_PY)
    (scripts / "train.py").write_text(TRAIN_PY)


@pytest.fixture
def template_modules(monkeypatch: pytest.MonkeyPatch):
    """AutoRunner imports ``segresnet.scripts.algo`` from a folder it puts on sys.path: undo both afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for module in [m for m in sys.modules if m.split(".")[0] == "segresnet"]:
        del sys.modules[module]


@pytest.mark.slow
def test_autorunner_trains_a_generated_algorithm_with_injected_nacl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template_modules: None
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    templates = tmp_path / "templates"
    _write_template(templates)
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
    algo = work_dir / "segresnet_0"
    assert sorted(p.name for p in work_dir.iterdir() if (p / "scripts" / "train.py").is_file()) == [algo.name]

    written = inject_loss(work_dir, {"_target_": "monai_nacl.losses.NeighborAwareLoss", "alpha": 0.05})
    assert written == [algo / "configs" / OVERRIDE_FILE]
    assert yaml.safe_load(written[0].read_text()) == {
        "loss": {"_target_": "monai_nacl.losses.NeighborAwareLoss", "alpha": 0.05}
    }

    runner().run()  # from AutoRunner's cache: no new analysis or generation (which would drop the override)

    generator = torch.Generator().manual_seed(0)
    probe_logits = torch.randn(1, NUM_CLASSES, 8, 8, 8, generator=generator)
    probe_labels = torch.randint(0, NUM_CLASSES, (1, 1, 8, 8, 8), generator=generator)
    nacl = NACLLoss(classes=NUM_CLASSES, dim=3, alpha=0.05)(probe_logits, probe_labels[:, 0]).item()  # MONAI's NACL
    default_nacl = NACLLoss(classes=NUM_CLASSES, dim=3)(probe_logits, probe_labels[:, 0]).item()
    assert written[0].is_file()
    record = json.loads((algo / "model" / "loss_record.json").read_text())
    assert record["loss_class"] == "monai_nacl.losses.neighborhood.NeighborAwareLoss"
    assert record["alpha"] == 0.05
    assert len(record["losses"]) == 4 and all(math.isfinite(v) and v > 0 for v in record["losses"])
    # the loss that trained computes MONAI's NACLLoss with alpha 0.05 (not its default 0.1)
    assert record["probe"] == pytest.approx(nacl, rel=1e-5) and record["probe"] != pytest.approx(default_nacl)
    # AutoRunner recorded the algorithm as trained, with the validation Dice its train.py wrote
    score = yaml.safe_load((algo / "model" / "progress.yaml").read_text())[-1]["best_avg_dice_score"]
    assert 0.0 <= score <= 1.0
    assert json.loads((algo / "algo_object.json").read_text())[AlgoKeys.SCORE] == pytest.approx(score)
