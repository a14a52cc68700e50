"""Whether a weight file fits a network: the same parameter names and shapes.

Loading weights into a network of other shapes fails deep in PyTorch (``size mismatch for ...``), and a network
with the same shapes but another class is silently wrong; the bundles check both before they load a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from monai.config import PathLike

__all__ = ["parameter_shapes", "weight_shape_differences"]


def parameter_shapes(network: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """The shape of each entry of ``network.state_dict()``."""
    return {k: tuple(v.shape) for k, v in network.state_dict().items()}


def weight_shape_differences(network: torch.nn.Module, model_file: PathLike) -> list[str]:
    """The entries of ``network`` whose shape in ``model_file`` differs or that ``model_file`` lacks, one line each
    (``<name>: <shape in the file> in <file name>, <shape> in the network``); empty when the weights fit.

    ``model_file`` holds a state dict, or ``{"model": state_dict, ...}`` as MONAI's ``CheckpointSaver`` writes it.
    """
    model_file = Path(model_file)
    state = torch.load(model_file, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    saved = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    return [
        f"{key}: {saved.get(key, 'absent')} in {model_file.name}, {shape} in the network"
        for key, shape in parameter_shapes(network).items()
        if saved.get(key) != shape
    ]
