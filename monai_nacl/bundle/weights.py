"""Whether a weight file fits a network: the same parameter names and shapes.

Loading weights into a network of other shapes fails deep in PyTorch (``size mismatch for ...``), and a network
with the same shapes but another class is silently wrong; the bundles check both before they load a model.
Clients load the weights themselves, and some leniently: MONAI Label's ``BundleInferTask`` calls
``load_state_dict(strict=False)`` (a key mismatch is a warning, the network keeps its random initialisation) and
``monai.bundle ckpt_export`` copies only the entries whose names and shapes match. So the networks the bundles build
load strictly whatever the caller asks (:func:`require_strict_loading`): weights that do not fit stop the load with
both architectures named.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from monai.config import PathLike

__all__ = [
    "StrictLoading",
    "WeightsMismatch",
    "describe_state",
    "parameter_shapes",
    "require_strict_loading",
    "weight_shape_differences",
]


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


class WeightsMismatch(RuntimeError):
    """Weights loaded into a bundle's network do not fit it (a ``RuntimeError``, as PyTorch's own strict load)."""


def describe_state(state: Mapping[str, Any], shown: int = 2) -> str:
    """``N entries, e.g. <name> (shape), ...``: what a state dict holds, for messages that name an architecture
    by its weights."""
    tensors = [(k, tuple(v.shape)) for k, v in state.items() if isinstance(v, torch.Tensor)]
    examples = ", ".join(f"{k} {shape}" for k, shape in tensors[:shown])
    return f"{len(tensors)} entries" + (f", e.g. {examples}" if examples else "")


class StrictLoading:
    """A ``load_state_dict`` pre-hook that refuses weights which do not fit the network, whatever ``strict`` says.

    Refused: a state dict that lacks one of the network's entries, holds an entry the network does not have, or
    gives one another shape; and one that passes the network's own tensors back (a partial copy, as
    ``monai.networks.utils.copy_model_state`` makes when names or shapes differ: the entries it could not match stay
    the network's own). Attach it with :func:`require_strict_loading`.

    Args:
        architecture: how the message names the network (class and arguments).
    """

    def __init__(self, architecture: str) -> None:
        self.architecture = architecture

    def __call__(
        self,
        module: torch.nn.Module,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        own = {k: v for k, v in module.state_dict().items()}
        given = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        problems = [f"{len(missing)} of its {len(own)} entries missing (e.g. {missing[0]})"] if missing else []
        if unexpected:
            problems.append(f"{len(unexpected)} entries it does not have (e.g. {unexpected[0]})")
        reshaped = [
            f"{k}: {tuple(given[k].shape)} in the weights, {tuple(v.shape)} in the network"
            for k, v in own.items()
            if k in given and isinstance(given[k], torch.Tensor) and tuple(given[k].shape) != tuple(v.shape)
        ]
        if reshaped:
            problems.append(f"{len(reshaped)} of another shape (e.g. {reshaped[0]})")
        kept = [k for k, v in own.items() if k in given and _same_storage(given[k], v)]
        if kept and not (missing or unexpected or reshaped):
            problems.append(
                f"{len(kept)} of its {len(own)} entries are the network's own tensors, not loaded weights (a partial "
                "copy, as monai.networks.utils.copy_model_state makes when names or shapes differ)"
            )
        if problems:
            raise WeightsMismatch(
                f"the weights do not fit the network they are loaded into, {self.architecture} "
                f"({describe_state(own)}): the weights hold {describe_state(given)}; {'; '.join(problems)}. "
                "They were trained with another architecture: serve them with the bundle whose task.json describes "
                "them, or train this one."
            )


def _same_storage(a: Any, b: torch.Tensor) -> bool:
    return isinstance(a, torch.Tensor) and a.numel() > 0 and a.data_ptr() == b.data_ptr()


def require_strict_loading(network: torch.nn.Module, architecture: str | None = None) -> torch.nn.Module:
    """Make every ``network.load_state_dict`` strict (see :class:`StrictLoading`); returns ``network``.

    The hook travels with the network through ``copy.deepcopy`` (MONAI Label copies the network per device) and
    ``torch.save``; attaching it twice has no further effect.

    Args:
        network: the network to protect.
        architecture: how errors name it; default: its class path.
    """
    hooks = network._load_state_dict_pre_hooks.values()
    if not any(isinstance(getattr(h, "hook", None), StrictLoading) for h in hooks):
        architecture = architecture or f"{type(network).__module__}.{type(network).__qualname__}"
        network.register_load_state_dict_pre_hook(StrictLoading(architecture))
    return network
