"""What the stand-in templates share; copied into each assembled template's ``scripts/`` (see ``__init__.py``).

``StandInAlgo`` fills the generated configs from the data source and the DataAnalyzer statistics, as the official
``algo.py`` files do for the ids a training needs. ``train_and_record`` is the training every stand-in
``train.py`` runs after resolving its config as its official template does: one epoch on the cases outside the
validation fold, the validation Dice in ``progress.yaml`` (what ``BundleAlgo.get_score`` reads) and
``loss_record.json``: the class of the loss that trained, its steps, and its value on a fixed probe.
"""

from __future__ import annotations

import json
import os

import torch
from monai.apps.auto3dseg import BundleAlgo
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from monai.metrics import compute_dice
from monai.networks import one_hot
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, ScaleIntensityd

PROBE_SHAPE = (1, 8, 8, 8)  # batch and spatial size of the probe logits; deep-supervision levels halve the size


class StandInAlgo(BundleAlgo):
    """``fill_prefixes``: (config file, prefix of its ``input_channels`` / ``output_classes`` ids) pairs (dints
    keeps them under ``training#`` and ``searching#``); the paths go into ``hyper_parameters.yaml``."""

    fill_prefixes = (("hyper_parameters.yaml", ""),)

    def fill_template_config(self, data_stats_filename, output_path, **kwargs):
        source = ConfigParser.load_config_file(self.data_list_file)
        stats = ConfigParser(ConfigParser.load_config_file(data_stats_filename))
        channels = int(stats["stats_summary#image_stats#channels#max"])
        classes = len(stats["stats_summary#label_stats#labels"])
        fills = {}
        for name, prefix in self.fill_prefixes:
            fill = {f"{prefix}input_channels": channels, f"{prefix}output_classes": classes}
            if name == "hyper_parameters.yaml":
                fill.update(
                    bundle_root=output_path,
                    data_file_base_dir=os.path.abspath(source["dataroot"]),
                    data_list_file_path=os.path.abspath(source["datalist"]),
                    fold=kwargs.get("fold", 0),
                )
            path = os.path.join(output_path, "configs", name)
            parser = ConfigParser()
            parser.read_config(path)
            parser.update(fill)
            ConfigParser.export_config_file(parser.get(), path, fmt="yaml", default_flow_style=None)
            fills[name] = fill
        return fills


def probe(classes: int, levels: int, halved: int = 3) -> tuple[list[torch.Tensor] | torch.Tensor, torch.Tensor]:
    """Fixed logits and float labels ``(B, 1, *spatial)`` as Auto3DSeg loads them. With ``levels`` > 1 the logits
    are a deep-supervision list whose level ``l`` has the first ``halved`` spatial sizes divided by ``2**l``
    (segresnet2d's 2D levels keep the depth)."""
    generator = torch.Generator().manual_seed(0)
    batch, *spatial = PROBE_SHAPE
    logits = [
        torch.randn(
            batch, classes, *(s >> level if d < halved else s for d, s in enumerate(spatial)), generator=generator
        )
        for level in range(levels)
    ]
    labels = torch.randint(0, classes, (batch, 1, *spatial), generator=generator).float()
    return (logits if levels > 1 else logits[0]), labels


def train_and_record(
    values: dict,
    network: torch.nn.Module,
    loss_function,
    ckpt_path: str,
    record_name: str,
    levels: int = 1,
    halved: int = 3,
) -> None:
    """One epoch of ``network`` with ``loss_function``; ``values`` holds the resolved data paths, fold, classes and
    learning rate; ``levels`` and ``halved`` describe the deep-supervision outputs the template trains with (see
    ``probe``); the record is written to ``ckpt_path/record_name``."""
    os.makedirs(ckpt_path, exist_ok=True)
    datalist = ConfigParser.load_config_file(values["data_list_file_path"])
    cases = {True: [], False: []}
    for item in datalist["training"]:
        files = {key: os.path.join(values["data_file_base_dir"], item[key]) for key in ("image", "label")}
        cases[item["fold"] == values["fold"]].append(files)
    transform = Compose(
        [
            LoadImaged(["image", "label"], image_only=True),
            EnsureChannelFirstd(["image", "label"]),
            ScaleIntensityd("image"),
        ]
    )
    classes = values["output_classes"]
    optimizer = torch.optim.Adam(network.parameters(), values["learning_rate"])
    losses = []
    network.train()
    for batch in DataLoader(Dataset(cases[False], transform), batch_size=1):
        optimizer.zero_grad()
        loss = loss_function(network(batch["image"]), batch["label"])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    network.eval()
    dice = []
    with torch.no_grad():
        for batch in DataLoader(Dataset(cases[True], transform), batch_size=1):
            logits = network(batch["image"])
            logits = logits[0] if isinstance(logits, (list, tuple)) else logits
            pred = one_hot(logits.argmax(1, keepdim=True), classes)
            dice.append(compute_dice(pred, one_hot(batch["label"], classes), include_background=False).nanmean())
    score = float(torch.stack(dice).mean())
    with open(os.path.join(ckpt_path, "progress.yaml"), "w") as f:
        f.write(f"- best_avg_dice_score: {score}\n")

    probe_logits, probe_labels = probe(classes, levels, halved)
    inner = getattr(loss_function, "loss", loss_function)  # the loss inside DeepSupervisionLoss
    record = {
        "loss_class": f"{type(loss_function).__module__}.{type(loss_function).__qualname__}",
        "inner_loss_class": f"{type(inner).__module__}.{type(inner).__qualname__}",
        "alpha": getattr(inner, "alpha", None),
        "losses": losses,
        "probe": loss_function(probe_logits, probe_labels).item(),
    }
    with open(os.path.join(ckpt_path, record_name), "w") as f:
        json.dump(record, f)
