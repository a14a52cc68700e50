"""Logits of a trained bundle model on its validation split, for post-hoc temperature scaling.

The bundle's own config is parsed with ``monai.bundle.ConfigParser`` (with the run's overrides), so the
network, the validation preprocessing and the inferer are exactly those of training; the weights come
from the run's ``model.pt``. Voxels are subsampled per case to bound memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from monai_nacl.compare.overrides import literal

__all__ = ["collect_validation_logits", "load_weights", "parse_bundle"]


def parse_bundle(bundle_dir: Path, configs: list[str], overrides: dict[str, Any]):
    """A ``ConfigParser`` holding the merged configs, the metadata and the overrides (read as literals)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(bundle_dir / "configs" / name) for name in configs])
    meta = bundle_dir / "configs" / "metadata.json"
    if meta.is_file():
        parser.read_meta(str(meta))
    for key, value in overrides.items():
        parser[key] = literal(value) if isinstance(value, str) else value
    return parser


def _first_id(parser, ids: tuple[str, ...], what: str) -> str:
    for config_id in ids:
        if config_id in parser:
            return config_id
    raise ValueError(f"the bundle config defines none of {list(ids)} ({what}); temperature scaling needs one.")


def load_weights(network: torch.nn.Module, model_path: Path, device: torch.device) -> torch.nn.Module:
    """Load ``model.pt`` (a bare state dict, or ``{"model": state_dict, ...}`` as ``CheckpointSaver`` writes)."""
    state = torch.load(model_path, map_location=device, weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    network.load_state_dict(state)
    return network.to(device).eval()


@torch.no_grad()
def collect_validation_logits(
    bundle_dir: Path,
    configs: list[str],
    overrides: dict[str, Any],
    model_path: Path,
    max_voxels_per_case: int = 200_000,
    seed: int = 0,
    region: str = "all",
    image_key: str = "image",
    label_key: str = "label",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the trained network over the validation split; return sampled ``(N, C)`` logits and ``(N,)`` labels.

    Args:
        bundle_dir: bundle folder.
        configs: configs that define the network and the validation loader (the training configs).
        overrides: the run's overrides (dataset, seed, loss, ...).
        model_path: the run's trained weights.
        max_voxels_per_case: voxels drawn uniformly without replacement from each validation case.
        seed: seed of the voxel sampling.
        region: ``"all"`` voxels (the standard temperature-scaling fit) or ``"foreground"`` (label != 0, the
            region the NACL papers evaluate).
        image_key: image key of the loader's batches.
        label_key: label key of the loader's batches.
    """
    if region not in ("all", "foreground"):
        raise ValueError(f"region must be 'all' or 'foreground', got {region!r}.")
    parser = parse_bundle(bundle_dir, configs, overrides)
    device = torch.device(parser.get_parsed_content("device")) if "device" in parser else torch.device("cpu")
    network = parser.get_parsed_content(_first_id(parser, ("network", "network_def"), "the network"))
    network = load_weights(network, model_path, device)
    loader = parser.get_parsed_content(_first_id(parser, ("validate#dataloader",), "the validation loader"))
    inferer = parser.get_parsed_content(_first_id(parser, ("validate#inferer", "inferer"), "the inferer"))
    generator = torch.Generator().manual_seed(seed)
    all_logits, all_labels = [], []
    for batch in loader:
        logits = inferer(batch[image_key].to(device), network).float().cpu()
        labels = batch[label_key]
        labels = labels[:, 0] if labels.ndim == logits.ndim else labels
        for case_logits, case_labels in zip(logits, labels):
            flat = case_logits.reshape(case_logits.shape[0], -1).T
            flat_labels = torch.as_tensor(case_labels).reshape(-1).long()
            if region == "foreground":
                keep = flat_labels != 0
                flat, flat_labels = flat[keep], flat_labels[keep]
            if flat.shape[0] > max_voxels_per_case:
                index = torch.randperm(flat.shape[0], generator=generator)[:max_voxels_per_case]
                flat, flat_labels = flat[index], flat_labels[index]
            all_logits.append(flat.as_subclass(torch.Tensor))
            all_labels.append(flat_labels.as_subclass(torch.Tensor))
    if not all_logits:
        raise ValueError(
            f"the validation loader of {bundle_dir.name} yielded no case; check the datalist's 'validation'."
        )
    return torch.cat(all_logits), torch.cat(all_labels)
