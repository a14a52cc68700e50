"""Fitting post-hoc calibrators by the negative log-likelihood on held-out (validation) data.

All methods minimise the mean NLL of the calibrated softmax at the true labels over the sampled voxels:

    NLL = -1/N sum_i log softmax(z_i / T_i)[y_i]

- ``ts`` and ``vector``: ``log T`` (one value, or one per class) by L-BFGS with a strong-Wolfe line search, in
  float64, on voxels sampled uniformly from each case; the fitted temperatures are clipped to ``bounds``.
- ``lts``: the temperature network by Adam on patches cut from each case (half of them centred on a foreground
  voxel when the label has one), starting from the ``ts`` fit on the same voxels; the state with the lowest NLL
  over all patches, checked five times during training, is kept (the official code keeps its best validation
  state too).

Memory stays bounded by the sampling: at most ``max_voxels_per_case`` voxels, or ``patches_per_case`` patches,
are kept per validation case.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from monai_nacl.calibration.calibrators import (
    CALIBRATORS,
    Calibrator,
    LocalTemperatureScaling,
    TemperatureScaling,
    VectorScaling,
)
from monai_nacl.utils import plain_tensor

__all__ = [
    "REGIONS",
    "CalibrationPatch",
    "CalibrationSet",
    "calibration_report",
    "check_method",
    "fit_calibrator",
    "fit_local_temperature",
    "fit_temperature",
    "fit_vector_temperatures",
    "flatten_voxels",
    "sample_calibration_set",
    "temperature_nll",
]

REGIONS = ("all", "foreground")
"""Voxels the NLL is taken over: every voxel (the standard fit) or the ground-truth foreground (label != 0)."""

DEFAULT_PATCH_SIZE = {2: (64, 64), 3: (24, 24, 24)}
"""Patch size of the ``lts`` fit per spatial dimension of the calibrator."""


def _labels_without_channel(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Labels ``(B, *spatial)`` of ``(B, C, *spatial)`` logits, from ``(B, *spatial)`` or ``(B, 1, *spatial)``."""
    if labels.ndim == logits.ndim and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match logits {tuple(logits.shape)}: expected "
            f"{(logits.shape[0], *logits.shape[2:])} or with a channel axis of 1."
        )
    return labels


def check_method(method: str) -> str:
    """``method`` if it names a calibrator (``ts``, ``vector``, ``lts``), else a ValueError listing them."""
    if method not in CALIBRATORS:
        raise ValueError(f"calibration method must be one of {sorted(CALIBRATORS)}, got {method!r}.")
    return method


def flatten_voxels(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, C)`` float64 logits and ``(N,)`` int64 labels from ``(N, C)`` / ``(N,)`` or ``(B, C, *spatial)`` /
    ``(B[, 1], *spatial)``, with the labels checked to lie in ``[0, C)``."""
    if logits.ndim < 2:
        raise ValueError(f"logits must be (N, C) or (B, C, *spatial), got shape {tuple(logits.shape)}.")
    if logits.ndim > 2:
        labels = _labels_without_channel(logits, labels)
        logits = torch.movedim(logits, 1, -1).reshape(-1, logits.shape[1])
        labels = labels.reshape(-1)
    elif labels.shape != logits.shape[:1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} must be ({logits.shape[0]},) for logits {tuple(logits.shape)}."
        )
    if labels.numel() == 0:
        raise ValueError("calibration needs at least one voxel; got empty logits/labels.")
    labels = torch.as_tensor(labels).long()
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(
            f"labels must lie in [0, {logits.shape[1] - 1}] for {logits.shape[1]} classes, got values in "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )
    return torch.as_tensor(logits).detach().double(), labels


def temperature_nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float | Sequence[float]) -> float:
    """Mean NLL of ``softmax(logits / T)`` at the true labels, ``T`` one value or one per class.

    Args:
        logits: raw network outputs, ``(N, C)`` or ``(B, C, *spatial)``.
        labels: integer labels, ``(N,)`` or ``(B, *spatial)`` / ``(B, 1, *spatial)``.
        temperature: the scalar ``T > 0``, or ``C`` per-class temperatures.
    """
    t = torch.as_tensor(temperature, dtype=torch.float64).reshape(-1)
    if not bool((t > 0).all()):
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    z, y = flatten_voxels(logits, labels)
    if t.numel() not in (1, z.shape[1]):
        raise ValueError(f"give one temperature or {z.shape[1]} (one per class), got {t.numel()}.")
    return float(F.cross_entropy(z / t, y))


def _fit_log_temperatures(
    z: torch.Tensor, y: torch.Tensor, size: int, init: float, max_iter: int, bounds: tuple[float, float]
) -> torch.Tensor:
    """L-BFGS on ``log T`` (``size`` values broadcast over the classes) minimising the mean NLL; T clipped to bounds."""
    if not 0 < bounds[0] < bounds[1]:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}.")
    if not init > 0:
        raise ValueError(f"init must be > 0, got {init}.")
    log_t = torch.full((size,), math.log(init), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return log_t.detach().exp().clamp(bounds[0], bounds[1])


def fit_temperature(
    logits: torch.Tensor,
    labels: torch.Tensor,
    init: float = 1.0,
    max_iter: int = 100,
    bounds: tuple[float, float] = (0.05, 20.0),
) -> float:
    """The temperature ``T`` minimising the mean NLL of ``softmax(logits / T)`` (Guo et al. 2017).

    Args:
        logits: raw network outputs (not probabilities), ``(N, C)`` or ``(B, C, *spatial)``.
        labels: integer labels, ``(N,)`` or ``(B, *spatial)`` / ``(B, 1, *spatial)``, values in ``[0, C)``.
        init: starting temperature (1.0 = the uncalibrated model).
        max_iter: L-BFGS iterations on ``log T``.
        bounds: the fitted T is clipped to this range; a degenerate set (e.g. every voxel correct, whose
            NLL keeps falling as T -> 0) would otherwise run off to 0 or infinity.

    Example:
        >>> z = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0]]); y = torch.tensor([0, 1, 1])
        >>> fit_temperature(z, y) > 1.0  # one confident mistake: soften
        True
    """
    z, y = flatten_voxels(logits, labels)
    return float(_fit_log_temperatures(z, y, 1, init, max_iter, bounds)[0])


def fit_vector_temperatures(
    logits: torch.Tensor,
    labels: torch.Tensor,
    init: float = 1.0,
    max_iter: int = 200,
    bounds: tuple[float, float] = (0.05, 20.0),
) -> list[float]:
    """Per-class temperatures ``T_c`` minimising the mean NLL of ``softmax_c(logits_c / T_c)``.

    Arguments as :func:`fit_temperature`; returns ``C`` temperatures.
    """
    z, y = flatten_voxels(logits, labels)
    return _fit_log_temperatures(z, y, z.shape[1], init, max_iter, bounds).tolist()


@dataclass
class CalibrationPatch:
    """One patch for the ``lts`` fit: ``logits (C, *p)``, ``labels (*p)`` int64, ``mask (*p)`` bool (voxels counted
    in the NLL, None for all), ``image (I, *p)`` or None, and the index of the case it was cut from."""

    logits: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor | None = None
    image: torch.Tensor | None = None
    case: int = 0


@dataclass
class CalibrationSet:
    """Validation data a calibrator is fitted on (see :func:`sample_calibration_set`).

    Args:
        logits: per case, ``(N_i, C)`` sampled voxel logits (``ts`` / ``vector``).
        labels: per case, ``(N_i,)`` labels of those voxels.
        patches: patches with their context (``lts``).
        cases: number of cases sampled.
        region: ``"all"`` or ``"foreground"``, the voxels counted.
    """

    logits: list[torch.Tensor] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)
    patches: list[CalibrationPatch] = field(default_factory=list)
    cases: int = 0
    region: str = "all"

    @property
    def num_classes(self) -> int:
        """Channels ``C`` of the sampled logits."""
        return int(self.logits[0].shape[1] if self.logits else self.patches[0].logits.shape[0])

    def voxels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All counted voxels as ``(N, C)`` float64 logits and ``(N,)`` labels (of the patches when there are any)."""
        if self.patches:
            z, y = [], []
            for patch in self.patches:
                flat, labels = _patch_voxels(patch.logits, patch)
                z.append(flat)
                y.append(labels)
            return torch.cat(z).double(), torch.cat(y)
        return torch.cat(self.logits).double(), torch.cat(self.labels)


def _patch_voxels(logits: torch.Tensor, patch: CalibrationPatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The counted voxels of (C, *p) ``logits`` on ``patch``'s grid: ``(n, C)`` and ``(n,)``."""
    flat = logits.reshape(logits.shape[0], -1).T
    labels = patch.labels.reshape(-1)
    if patch.mask is not None:
        keep = patch.mask.reshape(-1)
        flat, labels = flat[keep], labels[keep]
    return flat, labels


def _case_patches(
    logits: torch.Tensor,
    labels: torch.Tensor,
    image: torch.Tensor | None,
    patch_size: Sequence[int],
    count: int,
    region: str,
    generator: torch.Generator,
    case: int,
) -> list[CalibrationPatch]:
    """``count`` patches of one case (``logits (C, *s)``); even-numbered ones centred on a foreground voxel."""
    shape = labels.shape
    size = [min(p, s) for p, s in zip(patch_size, shape)]
    foreground = torch.nonzero(labels != 0)
    patches = []
    for k in range(count):
        if k % 2 == 0 and len(foreground):
            center = foreground[int(torch.randint(len(foreground), (1,), generator=generator))]
            corner = [min(max(int(c) - p // 2, 0), s - p) for c, p, s in zip(center, size, shape)]
        else:
            corner = [int(torch.randint(s - p + 1, (1,), generator=generator)) for p, s in zip(size, shape)]
        window = tuple(slice(c, c + p) for c, p in zip(corner, size))
        patch_labels = labels[window].clone()
        mask = patch_labels != 0 if region == "foreground" else None
        if mask is not None and not bool(mask.any()):
            continue
        patches.append(
            CalibrationPatch(
                logits[(slice(None), *window)].clone(),
                patch_labels,
                mask,
                None if image is None else image[(slice(None), *window)].clone(),
                case,
            )
        )
    return patches


def _full_patch_size(patch_size: Sequence[int], spatial: int, slice_axis: int) -> tuple[int, ...]:
    """A 2D patch size on 3D volumes becomes one slice thick along ``slice_axis``."""
    size = [int(p) for p in patch_size]
    if len(size) == spatial - 1:
        size.insert(slice_axis, 1)
    if len(size) != spatial or min(size) < 1:
        raise ValueError(
            f"patch_size {tuple(patch_size)} must give {spatial} (or {spatial - 1}, sliced) positive sizes for "
            f"volumes with {spatial} spatial axes."
        )
    return tuple(size)


class _Sampler:
    """Accumulates a :class:`CalibrationSet` from batches, case by case (memory-bounded)."""

    def __init__(
        self,
        method: str,
        region: str,
        max_voxels_per_case: int,
        patch_size: Sequence[int] | None,
        patches_per_case: int,
        spatial_dims: int | None,
        slice_axis: int,
        seed: int,
    ) -> None:
        check_method(method)
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {region!r}.")
        if max_voxels_per_case < 1 or patches_per_case < 1:
            raise ValueError(
                f"max_voxels_per_case and patches_per_case must be >= 1, got {max_voxels_per_case}, {patches_per_case}."
            )
        self.method, self.region, self.max_voxels = method, region, max_voxels_per_case
        self.patch_size, self.patches_per_case = patch_size, patches_per_case
        self.spatial_dims, self.slice_axis = spatial_dims, slice_axis
        self.generator = torch.Generator().manual_seed(seed)
        self.result = CalibrationSet(region=region)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, image: torch.Tensor | None = None) -> None:
        """Sample from a ``(B, C, *spatial)`` batch (labels ``(B[, 1], *spatial)``, image ``(B, I, *spatial)``)."""
        logits = plain_tensor(logits).detach().float().cpu()
        labels = plain_tensor(labels).detach().cpu()
        if logits.ndim < 3:
            raise ValueError(
                f"logits must be a (B, C, *spatial) batch of volumes, got shape {tuple(logits.shape)}; pass (N, C) "
                "voxels to fit_temperature / fit_vector_temperatures directly."
            )
        labels = _labels_without_channel(logits, labels)
        labels = labels.long()
        if labels.min() < 0 or labels.max() >= logits.shape[1]:
            raise ValueError(
                f"labels must lie in [0, {logits.shape[1] - 1}] for {logits.shape[1]} classes (logits channels), got "
                f"values in [{int(labels.min())}, {int(labels.max())}]."
            )
        if image is not None:
            image = plain_tensor(image).detach().float().cpu()
            if image.shape[0] != logits.shape[0] or image.shape[2:] != logits.shape[2:]:
                raise ValueError(f"image shape {tuple(image.shape)} does not match logits {tuple(logits.shape)}.")
        for b in range(logits.shape[0]):
            self.result.cases += 1
            if self.method == "lts":
                spatial = logits.ndim - 2
                dims = self.spatial_dims or spatial
                size = _full_patch_size(self.patch_size or DEFAULT_PATCH_SIZE[dims], spatial, self.slice_axis)
                self.result.patches += _case_patches(
                    logits[b],
                    labels[b],
                    None if image is None else image[b],
                    size,
                    self.patches_per_case,
                    self.region,
                    self.generator,
                    self.result.cases - 1,
                )
                continue
            flat = logits[b].reshape(logits.shape[1], -1).T
            flat_labels = labels[b].reshape(-1)
            if self.region == "foreground":
                keep = flat_labels != 0
                flat, flat_labels = flat[keep], flat_labels[keep]
            if flat.shape[0] > self.max_voxels:
                index = torch.randperm(flat.shape[0], generator=self.generator)[: self.max_voxels]
                flat, flat_labels = flat[index], flat_labels[index]
            if flat.shape[0]:
                self.result.logits.append(flat.clone())
                self.result.labels.append(flat_labels.clone())


def sample_calibration_set(
    batches: Iterable[Sequence[torch.Tensor]],
    method: str,
    region: str = "all",
    max_voxels_per_case: int = 200_000,
    patch_size: Sequence[int] | None = None,
    patches_per_case: int = 16,
    spatial_dims: int | None = None,
    slice_axis: int = 2,
    seed: int = 0,
) -> CalibrationSet:
    """Sample the data a ``method`` calibrator is fitted on from ``(logits, labels[, image])`` batches.

    Args:
        batches: tuples of ``(B, C, *spatial)`` logits, ``(B[, 1], *spatial)`` labels and optionally the
            ``(B, I, *spatial)`` image; a list of single volumes works with ``B = 1``.
        method: ``ts`` / ``vector`` (voxels) or ``lts`` (patches).
        region: ``all`` voxels or ``foreground`` (label != 0) counted in the NLL.
        max_voxels_per_case: ``ts`` / ``vector``: voxels drawn uniformly without replacement per case.
        patch_size: ``lts``: patch size (default 64x64 for a 2D and 24^3 for a 3D calibrator), clipped to the
            volume; a 2D size on 3D volumes cuts one-slice patches along ``slice_axis``.
        patches_per_case: ``lts``: patches per case.
        spatial_dims: ``lts``: the calibrator's spatial dimension (default: the volumes').
        slice_axis: ``lts``: spatial axis along which a 2D calibrator slices 3D volumes.
        seed: seed of the sampling.

    Raises:
        ValueError: for an unknown method or region, mismatched shapes, labels outside ``[0, C)``, or when no
            voxel was counted.
    """
    sampler = _Sampler(
        method, region, max_voxels_per_case, patch_size, patches_per_case, spatial_dims, slice_axis, seed
    )
    for batch in batches:
        if not 2 <= len(batch) <= 3:
            raise ValueError(f"each batch must be (logits, labels) or (logits, labels, image), got {len(batch)} items.")
        sampler.add(*batch)
    result = sampler.result
    if not result.logits and not result.patches:
        where = "foreground (label != 0) " if region == "foreground" else ""
        raise ValueError(f"no {where}voxel to fit the calibration on in {result.cases} validation case(s).")
    return result


def _patch_nll(calibrator: Calibrator, patches: Sequence[CalibrationPatch], device: torch.device) -> torch.Tensor:
    """Mean NLL of the calibrated softmax over the counted voxels of ``patches`` (patches of one shape stacked)."""
    groups: dict[tuple, list[CalibrationPatch]] = {}
    for patch in patches:
        groups.setdefault((tuple(patch.logits.shape), patch.mask is None, patch.image is None), []).append(patch)
    total = torch.zeros((), device=device)
    count = 0
    for group in groups.values():
        image = None if group[0].image is None else torch.stack([p.image for p in group]).to(device)
        calibrated = calibrator(torch.stack([p.logits for p in group]).to(device), image)
        nll = F.cross_entropy(calibrated, torch.stack([p.labels for p in group]).to(device), reduction="none")
        if group[0].mask is not None:
            nll = nll[torch.stack([p.mask for p in group]).to(device)]
        total = total + nll.sum()
        count += nll.numel()
    return total / max(count, 1)


def fit_local_temperature(
    data: CalibrationSet,
    spatial_dims: int | None = None,
    use_image: bool = True,
    hidden_channels: int = 16,
    steps: int = 300,
    lr: float = 1e-2,
    batch_size: int = 4,
    holdout_every: int = 5,
    slice_axis: int = 2,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> LocalTemperatureScaling:
    """Train a :class:`LocalTemperatureScaling` by NLL on the patches of ``data``.

    The temperature network starts as the ``ts`` fit on the same voxels (a constant map). The patches of every
    ``holdout_every``-th case (of the last case when that selects none; of no case when there is one) are held out;
    Adam takes ``steps`` steps on ``batch_size`` random patches of the other cases each, and the state with the
    lowest held-out NLL, checked at the start and ten times during training, is returned. The fit so never ends
    worse than ``ts`` on the held-out cases, and stops before the network memorises the noise of the labels
    (holding out patches rather than cases would not: patches of one case overlap).

    Args:
        data: a set sampled with ``method="lts"``.
        spatial_dims: 2 or 3 (default: the patches').
        use_image: feed the image patches to the network too (when ``data`` has them).
        hidden_channels: width of the temperature network.
        steps: Adam steps.
        lr: Adam learning rate.
        batch_size: patches per step.
        holdout_every: one case in this many selects the state; 0 trains on all and selects on all.
        slice_axis: spatial axis along which a 2D network slices 3D patches.
        seed: seed of the network's initialisation and of the patch order.
        device: where to train (default CPU).
    """
    if not data.patches:
        raise ValueError("fit_local_temperature needs patches: sample the data with method='lts'.")
    if steps < 1 or batch_size < 1 or not lr > 0 or holdout_every < 0:
        raise ValueError(
            f"steps and batch_size must be >= 1, lr > 0 and holdout_every >= 0, got {steps}, {batch_size}, {lr}, "
            f"{holdout_every}."
        )
    device = torch.device(device or "cpu")
    first = data.patches[0]
    spatial_dims = spatial_dims or first.logits.ndim - 1
    image_channels = first.image.shape[0] if use_image and first.image is not None else 0
    patches = data.patches
    if not image_channels:
        patches = [CalibrationPatch(p.logits, p.labels, p.mask, None, p.case) for p in patches]
    initial = fit_temperature(*data.voxels())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        calibrator = LocalTemperatureScaling(
            data.num_classes,
            spatial_dims,
            image_channels,
            hidden_channels,
            initial_temperature=max(initial, 0.1),
            slice_axis=slice_axis,
        ).to(device)
    optimizer = torch.optim.Adam(calibrator.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    cases = sorted({p.case for p in patches})
    held_cases = set(cases[holdout_every - 1 :: holdout_every] or cases[-1:]) if holdout_every else set()
    if len(cases) < 2 or not held_cases:
        held_out = train = patches
    else:
        held_out = [p for p in patches if p.case in held_cases]
        train = [p for p in patches if p.case not in held_cases]
    checks = {round(steps * k / 10) for k in range(1, 11)}
    with torch.no_grad():
        best_nll, best_state = float(_patch_nll(calibrator, held_out, device)), copy.deepcopy(calibrator.state_dict())
    for step in range(1, steps + 1):
        chosen = torch.randint(len(train), (min(batch_size, len(train)),), generator=generator).tolist()
        optimizer.zero_grad()
        loss = _patch_nll(calibrator, [train[i] for i in chosen], device)
        loss.backward()
        optimizer.step()
        if step in checks:
            with torch.no_grad():
                nll = float(_patch_nll(calibrator, held_out, device))
            if nll < best_nll:
                best_nll, best_state = nll, copy.deepcopy(calibrator.state_dict())
    calibrator.load_state_dict(best_state)
    return calibrator.eval()


def fit_calibrator(
    method: str,
    data: CalibrationSet | Iterable[Sequence[torch.Tensor]],
    bounds: tuple[float, float] = (0.05, 20.0),
    **lts_options: Any,
) -> Calibrator:
    """Fit a ``method`` calibrator (``ts``, ``vector`` or ``lts``) by NLL.

    Args:
        method: the calibrator's name.
        data: a :class:`CalibrationSet`, or ``(logits, labels[, image])`` batches sampled with the defaults of
            :func:`sample_calibration_set`.
        bounds: ``ts`` / ``vector``: range the temperatures are clipped to.
        lts_options: ``lts``: keyword arguments of :func:`fit_local_temperature`.

    Example:
        >>> z = torch.tensor([[[4.0, 0.0, 4.0]], [[0.0, 4.0, 0.0]]]).permute(1, 0, 2)  # (1, 2, 3)
        >>> fit_calibrator("ts", [(z, torch.tensor([[0, 1, 1]]))]).value > 1.0
        True
    """
    check_method(method)
    if not isinstance(data, CalibrationSet):
        data = sample_calibration_set(data, method)
    if method == "lts":
        return fit_local_temperature(data, **lts_options)
    if lts_options:
        raise ValueError(f"options {sorted(lts_options)} only apply to method 'lts', not {method!r}.")
    z, y = data.voxels()
    if method == "ts":
        return TemperatureScaling(float(_fit_log_temperatures(z, y, 1, 1.0, 100, bounds)[0]))
    return VectorScaling(z.shape[1], _fit_log_temperatures(z, y, z.shape[1], 1.0, 200, bounds).tolist())


def _nll_and_ece(logits: torch.Tensor, labels: torch.Tensor, num_bins: int) -> tuple[float, float]:
    from monai_nacl.metrics import expected_calibration_error

    z = logits.double()
    probs = torch.softmax(z, dim=1)
    ece = expected_calibration_error(probs.T.contiguous()[None], labels[None], num_bins=num_bins)
    return float(F.cross_entropy(z, labels)), float(ece)


@torch.no_grad()
def calibration_report(calibrator: Calibrator, data: CalibrationSet, num_bins: int = 15) -> dict[str, Any]:
    """NLL and top-label ECE of the sampled validation voxels before and after calibration.

    Returns ``{"region", "cases", "voxels", "num_bins", "nll_before", "nll_after", "ece_before", "ece_after"}``;
    the voxels are those the calibrator was fitted on (all voxels of the patches for ``lts``, restricted to the
    foreground for ``region="foreground"``).
    """
    before_z, labels = data.voxels()
    if data.patches:
        device = next(calibrator.parameters()).device
        after = []
        for patch in data.patches:
            image = patch.image[None].to(device) if calibrator.uses_image else None
            calibrated = calibrator(patch.logits[None].to(device), image)[0].cpu()
            after.append(_patch_voxels(calibrated, patch)[0])
        after_z = torch.cat(after).double()
    else:
        after_z = calibrator(before_z)
    nll_before, ece_before = _nll_and_ece(before_z, labels, num_bins)
    nll_after, ece_after = _nll_and_ece(after_z, labels, num_bins)
    return {
        "region": data.region,
        "cases": data.cases,
        "voxels": int(labels.numel()),
        "num_bins": num_bins,
        "nll_before": nll_before,
        "nll_after": nll_after,
        "ece_before": ece_before,
        "ece_after": ece_after,
    }
