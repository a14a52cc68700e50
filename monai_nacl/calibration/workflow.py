"""Fit a post-hoc calibrator on a trained model's validation split and save it beside the model.

:func:`fit_and_save` is what a bundle's ``configs/calibrate.yaml`` calls and what ``python -m monai_nacl compare
--posthoc`` calls for each trained model, so both produce the same ``calibration.json`` from the same inputs.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from monai.config import PathLike

from monai_nacl.calibration.calibrators import TemperatureScaling, VectorScaling
from monai_nacl.calibration.fitting import (
    calibration_report,
    check_method,
    fit_calibrator,
    sample_calibration_set,
)
from monai_nacl.calibration.io import save_calibration
from monai_nacl.utils import as_flag

__all__ = ["collect_logits", "fit_and_save", "load_weights", "temperatures_at_bound"]

logger = logging.getLogger(__name__)


def load_weights(network: torch.nn.Module, model_path: PathLike, device: torch.device | str) -> torch.nn.Module:
    """Load ``model.pt`` (a bare state dict, or ``{"model": state_dict, ...}`` as ``CheckpointSaver`` writes) into
    ``network``, moved to ``device`` and put in eval mode."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ValueError(f"no trained model at {model_path}; train first (configs/train.yaml) or set ckpt_dir.")
    state = torch.load(model_path, map_location=device, weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    network.load_state_dict(state)
    return network.to(device).eval()


def collect_logits(
    network: torch.nn.Module,
    inferer: Callable[[torch.Tensor, torch.nn.Module], torch.Tensor],
    dataloader: Iterable[Mapping[str, Any]],
    device: torch.device | str,
    image_key: str = "image",
    label_key: str = "label",
    amp: bool = False,
) -> Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(logits, labels, image)`` per batch of ``dataloader``: the network's raw outputs (no softmax)
    through ``inferer``, on the CPU in float32, with the batch's labels and image."""
    device = torch.device(device)
    network.eval()
    autocast = torch.autocast(device.type) if amp and device.type == "cuda" else nullcontext()
    for batch in dataloader:
        if image_key not in batch or label_key not in batch:
            raise ValueError(
                f"calibration needs labelled batches with {image_key!r} and {label_key!r}, got keys {list(batch)}; "
                "use the validation loader (validate#dataloader)."
            )
        image = batch[image_key]
        with torch.no_grad(), autocast:
            logits = inferer(image.to(device), network)
        yield logits.float().cpu(), batch[label_key], image


def temperatures_at_bound(
    calibrator: torch.nn.Module, bounds: Sequence[float], rel_tol: float = 1e-4
) -> dict[str, float]:
    """The temperatures of a ``ts`` / ``vector`` calibrator that lie on ``bounds`` (clipped, not fitted).

    Returns ``{"T": value}`` for temperature scaling, ``{"T[c]": value, ...}`` for vector scaling, ``{}`` for a
    calibrator without global temperatures (``lts``) or when none is on a bound.

    Example:
        >>> from monai_nacl.calibration import TemperatureScaling
        >>> temperatures_at_bound(TemperatureScaling(20.0), (0.05, 20.0))
        {'T': 20.0}
    """
    if isinstance(calibrator, TemperatureScaling):
        named = {"T": calibrator.value}
    elif isinstance(calibrator, VectorScaling):
        named = {f"T[{c}]": value for c, value in enumerate(calibrator.values)}
    else:
        return {}
    low, high = float(bounds[0]), float(bounds[1])
    return {
        name: value
        for name, value in named.items()
        if math.isclose(value, low, rel_tol=rel_tol) or math.isclose(value, high, rel_tol=rel_tol)
    }


def fit_and_save(
    network: torch.nn.Module,
    inferer: Callable[[torch.Tensor, torch.nn.Module], torch.Tensor],
    dataloader: Iterable[Mapping[str, Any]],
    method: str,
    ckpt_dir: PathLike,
    device: torch.device | str = "cpu",
    checkpoint: PathLike | None = "model.pt",
    region: str = "all",
    max_voxels_per_case: int = 200_000,
    patch_size: Sequence[int] | None = None,
    patches_per_case: int = 16,
    spatial_dims: int | None = None,
    use_image: bool = True,
    steps: int = 300,
    seed: int = 0,
    num_bins: int = 15,
    image_key: str = "image",
    label_key: str = "label",
    amp: bool = False,
    bounds: tuple[float, float] = (0.05, 20.0),
) -> dict[str, Any]:
    """Run the trained network over the validation split, fit a ``method`` calibrator by NLL, save it in ``ckpt_dir``.

    Writes ``<ckpt_dir>/calibration.json`` (method, parameters, and under ``fit`` the validation NLL and ECE before
    and after, the numbers of cases and voxels, the options and the date; a ``warning`` when the validation ECE
    got worse or a fitted temperature lies on a bound, with ``fit["at_bound"]`` naming those temperatures) and, for
    ``lts``, ``<ckpt_dir>/calibration_weights.pt``.

    Args:
        network: the bundle's network (``@network``).
        inferer: the validation inferer (``@validate#inferer``), called as ``inferer(image, network)``.
        dataloader: the validation loader (``@validate#dataloader``), batches with ``image`` and ``label``.
        method: ``ts`` (one temperature), ``vector`` (one per class) or ``lts`` (local temperature scaling).
        ckpt_dir: where the calibration is written, beside ``model.pt``.
        device: where the network runs (``@device``).
        checkpoint: weights loaded into ``network`` first: a file name inside ``ckpt_dir`` or a path; None uses the
            network as given.
        region: ``all`` voxels (the standard fit) or ``foreground`` (label != 0) in the NLL.
        max_voxels_per_case: ``ts`` / ``vector``: voxels sampled per validation case.
        patch_size: ``lts``: patch size (default 64x64 for a 2D calibrator, 24^3 for 3D).
        patches_per_case: ``lts``: patches cut per validation case.
        spatial_dims: ``lts``: 2 or 3 (default: the logits'); 2 on 3D volumes calibrates slice by slice.
        use_image: ``lts``: feed the image to the temperature network beside the logits.
        steps: ``lts``: Adam steps.
        seed: seed of the sampling and of the ``lts`` initialisation.
        num_bins: bins of the ECE reported in the JSON.
        image_key: image key of the batches.
        label_key: label key of the batches.
        amp: run the network under CUDA autocast (as the bundle's evaluator does with ``amp``).
        bounds: ``ts`` / ``vector``: the range the temperatures are clipped to. A temperature that ends on a bound
            is not the NLL optimum but the clip: the fit is saved (it is the best temperature in the range) and the
            JSON's ``warning`` and the log say so.

    Returns:
        the content written to ``calibration.json``.
    """
    check_method(method)
    device = torch.device(device)
    amp, use_image = as_flag(amp, "amp"), as_flag(use_image, "use_image")
    ckpt_dir = Path(ckpt_dir)
    if checkpoint is not None:
        load_weights(network, ckpt_dir / checkpoint, device)
    data = sample_calibration_set(
        collect_logits(network, inferer, dataloader, device, image_key, label_key, amp),
        method,
        region=region,
        max_voxels_per_case=max_voxels_per_case,
        patch_size=patch_size,
        patches_per_case=patches_per_case,
        spatial_dims=spatial_dims,
        seed=seed,
    )
    options: dict[str, Any]
    if method == "lts":
        options = {"spatial_dims": spatial_dims, "use_image": use_image, "steps": steps, "seed": seed, "device": device}
    else:
        options = {"bounds": tuple(bounds)}
    calibrator = fit_calibrator(method, data, **options)
    fit = calibration_report(calibrator, data, num_bins)
    at_bound = temperatures_at_bound(calibrator, bounds)
    if at_bound:
        fit["at_bound"] = at_bound
    fit.update(
        {
            "seed": seed,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            **({"max_voxels_per_case": max_voxels_per_case} if method != "lts" else {}),
            **({"patches_per_case": patches_per_case, "steps": steps} if method == "lts" else {}),
        }
    )
    warnings = []
    if fit["ece_after"] > fit["ece_before"]:
        warnings.append(
            f"calibration made the validation ECE worse ({fit['ece_before']:.4f} -> {fit['ece_after']:.4f}, NLL "
            f"{fit['nll_before']:.4f} -> {fit['nll_after']:.4f}); the NLL fit does not minimise ECE. Compare the "
            "test metrics with and without it (--calibration none) before deploying."
        )
    if at_bound:
        shown = ", ".join(f"{name} = {value:.4f}" for name, value in at_bound.items())
        warnings.append(
            f"the fitted temperature lies on its bound ({shown}; bounds {bounds[0]:g} and {bounds[1]:g}): the NLL "
            "optimum lies beyond it, so the saved value is the clip, not the fit. This happens when the validation "
            "inputs differ from the training ones (another intensity handling or spacing) or the network predicts "
            "little better than chance; check the validation data and the model before using this calibration."
        )
    for text in warnings:
        logger.warning("calibration: %s", text)
    warning = " ".join(warnings) or None
    model_file = None if checkpoint is None else ckpt_dir / checkpoint
    path = save_calibration(calibrator.cpu(), ckpt_dir, fit, warning, model_file=model_file)
    logger.info(
        "calibration: fitted %s on %d voxels of %d validation case(s): NLL %.4f -> %.4f, ECE %.4f -> %.4f; wrote %s",
        calibrator.describe(),
        fit["voxels"],
        fit["cases"],
        fit["nll_before"],
        fit["nll_after"],
        fit["ece_before"],
        fit["ece_after"],
        path,
    )
    return json.loads(path.read_text(encoding="utf-8"))
