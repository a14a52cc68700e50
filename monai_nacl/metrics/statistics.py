"""Sufficient statistics of calibration: confidence histograms that sum over voxels, images, batches and ranks.

Every calibration metric of this package is a function of a few sums over the counted voxels, so one pass
over a batch turns it into a fixed-size set of histograms (:func:`calibration_statistics`) and a second,
cheap function turns histograms into values (:func:`monai_nacl.metrics.functional.calibration_values`).
The functional API and the streaming :class:`~monai_nacl.metrics.SegmentationCalibrationMetric` both call
these two functions, so there is one implementation with two faces (the split torchmetrics uses).

Binning. ``num_bins`` equal-width bins on [0, 1], membership ``(lower, upper]`` as in the NACL authors'
evaluation code (``confidence > lower and confidence <= upper``): bin index ``ceil(p * num_bins) - 1``, with
``p = 0`` put into the first bin (the authors' code drops it; it then still counts in the denominator, so the
two agree unless a voxel with ``p_c = 0`` has label ``c``, a miscalibration that the authors' code ignores).
torchmetrics uses ``[lower, upper)`` and gives ``p = 1`` a bin of its own: the two differ only for
confidences exactly on a bin edge. Each bin is split into ``sub_bins`` equal sub-bins (the fine histogram,
``num_bins * sub_bins`` bins): coarse bins are sums of whole sub-bins, so ECE/MCE are exact at any
resolution, and the fine histogram feeds the adaptive (equal-mass) ECE. Indices are computed in float64,
where ``p * num_bins * sub_bins`` is exact for float32 inputs, so bin membership is exact.

Accumulation is float64 throughout (counts are integers), in chunks of voxels so that the temporary memory is
bounded (20 bytes per voxel and histogram row of a chunk, about 10 MiB per worker thread). For integer labels each
chunk runs a dozen kernels and two ``bincount`` calls over combined codes of every histogram row (see
:func:`_hard_chunk_statistics`). The chunks are shared among ``torch.get_num_threads()`` worker threads, each
running its kernels on one intra-op thread (see :func:`_map_chunks`): a parallel kernel waits for its slowest
thread, which on a loaded machine (data loaders beside a validation step) is a descheduled one; independent
workers do not wait for each other.

:func:`marginal_statistics` bins instead as MONAI's ``monai.metrics.CalibrationErrorMetric`` does (per image and
class, one class against the rest), so that the marginal calibration errors equal MONAI's.

Region. These functions count every voxel where ``mask`` is nonzero (every voxel without a mask). The
region-aware tools (:class:`~monai_nacl.metrics.SegmentationCalibrationMetric`,
:func:`~monai_nacl.metrics.evaluate_segmentation`, :class:`~monai_nacl.handlers.CalibrationMetricHandler`) build
that mask from the labels with :func:`region_mask` and default to ``region="foreground"`` (``label != 0``), the NACL
papers' protocol.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from monai.utils import convert_to_tensor

__all__ = [
    "ACTIVATIONS",
    "NLL_EPS",
    "PROBABILITY_TOLERANCE",
    "REGIONS",
    "REGION_DESCRIPTIONS",
    "CalibrationStatistics",
    "calibration_statistics",
    "hard_labels",
    "marginal_statistics",
    "prepare_inputs",
    "reference_labels",
    "region_mask",
    "resolve_activation",
    "warn_if_empty",
]

ACTIVATIONS = ("softmax", "sigmoid")
"""How the channels of ``probs`` are read. ``"softmax"``: the C channels are the classes of one distribution (they
sum to 1 at every voxel). ``"sigmoid"``: each channel is a probability of its own (multi-label, e.g. BraTS's
overlapping regions, or one foreground channel), as MONAI's ``CalibrationErrorMetric`` reads every input; channel
``c`` is the binary problem ``p_c`` against ``y_c``. A single channel is always read as a sigmoid (a softmax over one
channel is the constant 1)."""

PROBABILITY_TOLERANCE = 1e-3
"""Largest accepted ``|sum_c p_c - 1|`` (float16 softmax outputs are off by ~1e-3; float32 by ~1e-6)."""

REGIONS = ("all", "foreground", "band", "bbox")
"""Voxel regions the papers evaluate over (see :func:`region_mask`)."""

REGION_DESCRIPTIONS = {
    "all": "every voxel",
    "foreground": "ground-truth foreground voxels (label != 0)",
    "band": "ground-truth foreground dilated by band_width voxels",
    "bbox": "bounding box of the ground-truth foreground",
}
"""The voxels each region of :data:`REGIONS` counts, in words (for reports and figure titles)."""

NLL_EPS = 1e-12
"""Probabilities are clamped to at least this value inside the log of the NLL, so a float32 softmax that
underflowed to 0 gives a large finite loss (-log 1e-12 = 27.6) instead of inf."""

_CHUNK_ELEMENTS = 1 << 19
"""Histogram-row elements per chunk: a chunk holds ``_CHUNK_ELEMENTS // (C + 1)`` voxels (C classes and the top
label), so the buffers of a worker thread (float64 values and scratch, int32 codes) stay near 10 MiB whatever C."""


@dataclass
class CalibrationStatistics:
    """Histograms and sums over the counted voxels, enough to compute every calibration metric.

    All tensors are float64 and may carry leading batch dimensions ``...`` (one set per image).
    ``M = num_bins * sub_bins`` is the number of fine bins; fine bin ``f`` holds ``f/M < p <= (f+1)/M``.

    Attributes:
        num_bins: number of equal-width (coarse) bins of ECE/MCE/reliability diagrams.
        sub_bins: fine sub-bins per coarse bin (1: exact ECE/MCE only; larger: adaptive ECE too).
        top_label: ``(..., 3, M)``: per fine bin, the voxel count, the sum of top-label confidences
            ``max_c p_c`` and the sum of accuracies (``1[argmax p = y]``, or ``q_{argmax p}`` for a soft
            reference ``q``). ``None`` when not computed.
        classwise: ``(..., C, 3, M)``: the same for each class ``c`` with confidence ``p_c`` and accuracy
            ``1[y = c]`` (or ``q_c``). ``None`` when not computed.
        totals: ``(..., 3)``: counted voxels ``N``, the NLL sum ``-sum log p_y`` (``-sum_c q_c log p_c``) and
            the Brier sum ``sum_c (p_c - 1[y = c])^2`` (``(p_c - q_c)^2``).
    """

    num_bins: int
    sub_bins: int
    top_label: torch.Tensor | None
    classwise: torch.Tensor | None
    totals: torch.Tensor

    @property
    def fine_bins(self) -> int:
        """Number of fine bins ``num_bins * sub_bins``."""
        return self.num_bins * self.sub_bins

    @property
    def num_classes(self) -> int | None:
        """Number of classes of the classwise histograms (None when they were not computed)."""
        return None if self.classwise is None else self.classwise.shape[-3]

    def __add__(self, other: CalibrationStatistics) -> CalibrationStatistics:
        if (self.num_bins, self.sub_bins) != (other.num_bins, other.sub_bins):
            raise ValueError(
                f"cannot add statistics with different binning: {self.num_bins}x{self.sub_bins} bins and "
                f"{other.num_bins}x{other.sub_bins} bins; use the same num_bins and resolution."
            )

        def add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
            return None if a is None or b is None else a + b

        return CalibrationStatistics(
            self.num_bins,
            self.sub_bins,
            add(self.top_label, other.top_label),
            add(self.classwise, other.classwise),
            self.totals + other.totals,
        )

    def sum(self, dim: int = 0) -> CalibrationStatistics:
        """Pool the statistics over a leading dimension (e.g. images of a batch)."""

        def total(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.sum(dim)

        return CalibrationStatistics(
            self.num_bins, self.sub_bins, total(self.top_label), total(self.classwise), self.totals.sum(dim)
        )

    def to_vector(self) -> torch.Tensor:
        """Flatten to ``(..., S)`` (top-label, classwise, totals), the form summed across batches and ranks."""
        if self.top_label is None or self.classwise is None:
            raise ValueError("to_vector needs both top-label and classwise histograms; compute them both.")
        lead = self.totals.shape[:-1]
        return torch.cat([self.top_label.reshape(*lead, -1), self.classwise.reshape(*lead, -1), self.totals], dim=-1)

    @classmethod
    def from_vector(cls, vector: torch.Tensor, num_classes: int, num_bins: int, sub_bins: int) -> CalibrationStatistics:
        """Inverse of :meth:`to_vector` for ``C = num_classes`` classes."""
        fine = num_bins * sub_bins
        top, cls_, tot = 3 * fine, num_classes * 3 * fine, 3
        if vector.shape[-1] != top + cls_ + tot:
            raise ValueError(
                f"statistics vector has {vector.shape[-1]} entries, expected {top + cls_ + tot} for "
                f"{num_classes} classes and {num_bins}x{sub_bins} bins."
            )
        lead = vector.shape[:-1]
        return cls(
            num_bins,
            sub_bins,
            vector[..., :top].reshape(*lead, 3, fine),
            vector[..., top : top + cls_].reshape(*lead, num_classes, 3, fine),
            vector[..., top + cls_ :],
        )


def checked_tensor(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as a tensor without metadata; a ValueError naming ``name`` for anything that is not array-like."""
    try:
        return convert_to_tensor(x, track_meta=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a tensor or array, got {type(x).__name__}.") from e


def resolve_activation(activation: str, channels: int) -> str:
    """The reading of ``channels`` probability channels under ``activation`` (see :data:`ACTIVATIONS`): one channel
    is always a sigmoid."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {ACTIVATIONS}, got {activation!r}: 'softmax' when the channels sum to 1 "
            "(one class per voxel), 'sigmoid' when each channel is a probability of its own (multi-label)."
        )
    return "sigmoid" if channels == 1 else activation


def prepare_inputs(
    probs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None, activation: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor, bool, torch.Tensor | None]:
    """Check shapes and flatten the spatial axes.

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        labels: ``(B, 1, *spatial)`` or ``(B, *spatial)`` integer labels, or ``(B, C, *spatial)`` one-hot or soft
            (probabilistic) reference; for sigmoid channels (:data:`ACTIVATIONS`) a ``(B, C, *spatial)`` reference is
            per channel (binary or soft, any number of channels positive at a voxel) and integer labels stand for
            their one-hot form (channel ``c`` positive where ``y = c``).
        mask: optional ``(B, 1, *spatial)`` or ``(B, *spatial)``, nonzero where voxels count.
        activation: ``"softmax"`` or ``"sigmoid"``, see :data:`ACTIVATIONS`.

    Returns:
        ``(p, ref, soft, m)``: ``p`` of shape ``(B, C, N)``; ``ref`` the ``(B, N)`` labels or ``(B, C, N)`` soft
        (softmax) or per-channel (sigmoid) reference; ``soft`` whether ``ref`` is ``(B, C, N)``; ``m`` the ``(B, N)``
        bool mask or None. Values are checked later, chunk by chunk, by :func:`calibration_statistics`.
    """
    probs = checked_tensor(probs, "probs")
    labels = checked_tensor(labels, "labels")
    if probs.ndim < 2 or probs.shape[1] < 1:
        raise ValueError(
            f"probs must be (B, C, *spatial) probabilities with at least one channel, got shape {tuple(probs.shape)}."
        )
    resolve_activation(activation, probs.shape[1])
    if not probs.is_floating_point():
        raise ValueError(f"probs must be floating point probabilities, got dtype {probs.dtype}.")
    batch, channels, spatial = probs.shape[0], probs.shape[1], tuple(probs.shape[2:])
    hard_shapes = ((batch, 1, *spatial), (batch, *spatial))
    if tuple(labels.shape) == tuple(probs.shape) or (channels == 1 and tuple(labels.shape) in hard_shapes):
        soft = True
        if not labels.is_floating_point():
            labels = labels.double()
        ref = labels.reshape(batch, channels, -1)
    elif tuple(labels.shape) in hard_shapes:
        soft = False
        ref = labels.reshape(batch, -1)
    else:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match probs shape {tuple(probs.shape)}: expected "
            f"{hard_shapes[0]} or {hard_shapes[1]} integer labels, or {tuple(probs.shape)} one-hot/soft labels."
        )
    m = None
    if mask is not None:
        mask = checked_tensor(mask, "mask")
        if tuple(mask.shape) not in hard_shapes:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not match probs shape {tuple(probs.shape)}: expected "
                f"{hard_shapes[0]} or {hard_shapes[1]}."
            )
        m = mask.reshape(batch, -1).to(device=probs.device) != 0
    return probs.reshape(batch, channels, -1), ref.to(probs.device), soft, m


def _check_probabilities(p: torch.Tensor, name: str, sigmoid: bool = False) -> None:
    """Raise a ValueError unless ``p`` (C, n) is finite, within [0, 1] and (softmax) sums to 1 along C."""
    if p.numel() == 0:
        return
    lo, hi = torch.aminmax(p)
    lo, hi = float(lo), float(hi)
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"{name} contain NaN; check the network output (e.g. a diverged model) before evaluating.")
    if lo < 0.0 or hi > 1.0:
        activation = "torch.sigmoid(logits)" if sigmoid else "torch.softmax(logits, dim=1)"
        raise ValueError(
            f"{name} must lie in [0, 1], got values in [{lo:.6g}, {hi:.6g}]; pass probabilities, not logits "
            f"(e.g. {activation})."
        )
    if sigmoid:
        return
    err = float((p.sum(0, dtype=torch.float64 if p.dtype == torch.float64 else torch.float32) - 1.0).abs().max())
    if err > PROBABILITY_TOLERANCE:
        raise ValueError(
            f"{name} must sum to 1 over the class axis (dim 1), but a voxel is off by {err:.3g} "
            f"(tolerance {PROBABILITY_TOLERANCE}); apply softmax over dim 1, or pass activation='sigmoid' when "
            "each channel is a probability of its own (sigmoid per channel, multi-label)."
        )


def _check_reference(q: torch.Tensor) -> None:
    """Raise a ValueError unless the per-channel reference ``q`` (C, n) of sigmoid channels lies in [0, 1]."""
    if q.numel() == 0:
        return
    lo, hi = (float(v) for v in torch.aminmax(q))
    if math.isnan(lo) or math.isnan(hi) or lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"labels of sigmoid channels must be a per-channel reference in [0, 1] (binary, e.g. one-hot or "
            f"multi-hot, or soft), got values in [{lo:.6g}, {hi:.6g}]; give integer class labels as (B, 1, *spatial)."
        )


def _check_labels(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Return integer labels (n,) int64 after checking they are whole numbers in [0, C-1]."""
    if y.numel() == 0:
        return y.long()
    if y.is_floating_point() and (bool(torch.isnan(y).any()) or bool((y != torch.round(y)).any())):
        raise ValueError("labels must be integer class indices; found NaN or non-integer values.")
    lo, hi = (int(v) for v in torch.aminmax(y))
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes - 1}] for {num_classes} classes (probs channels), "
            f"got values in [{lo}, {hi}]."
        )
    return y.long()


def _first_argmax(p: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """Index of the first class reaching the maximum ``conf`` (as ``argmax``), by C elementwise passes, much faster
    on CPU than ``max(dim=0)`` / ``argmax(dim=0)`` over the short class axis."""
    pred = torch.full(conf.shape, p.shape[0] - 1, dtype=torch.int64, device=p.device)
    for c in range(p.shape[0] - 2, -1, -1):
        pred = torch.where(p[c] == conf, c, pred)
    return pred


class _ChunkBuffers:
    """Buffers reused chunk after chunk: float64 values, float64 scratch and int32 codes of ``rows x n`` elements."""

    def __init__(self, elements: int, device: torch.device) -> None:
        self.values = torch.empty(elements, dtype=torch.float64, device=device)
        self.scratch = torch.empty(elements, dtype=torch.float64, device=device)
        self.codes = torch.empty(elements, dtype=torch.int32, device=device)

    def views(self, rows: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = rows * n
        return (
            self.values[:size].view(rows, n),
            self.scratch[:size].view(rows, n),
            self.codes[:size].view(rows, n),
        )


def _hard_chunk_statistics(
    p: torch.Tensor,
    y: torch.Tensor,
    fine: int,
    top_label: torch.Tensor | None,
    classwise: torch.Tensor | None,
    totals: torch.Tensor,
    buffers: _ChunkBuffers,
) -> None:
    """Add the statistics of voxels ``p`` (C, n) with integer labels ``y`` (n,) into the float64 buffers.

    Histogram rows are the C classes (value ``v = p_c``, hit ``1[y = c]``) then the top label (``v = max_c p_c``,
    hit ``1[argmax p = y]``). With ``R`` rows, each voxel and row gets the integer code
    ``row * M + f + hit * R * M``, where ``f = max(ceil(v * M), 1) - 1`` is the fine bin (``v = 0`` in bin 0). One
    ``bincount`` of all codes gives every count and accuracy sum, one weighted by ``v`` every confidence sum: a
    dozen large kernels per chunk in all. ``v * M`` is computed in float64, where it is exact for float32 and
    float16 ``v``, so bin membership matches the comparisons ``lower < v <= upper``.
    """
    channels, n = p.shape
    conf = p.amax(0)
    p_y = p.gather(0, y[None])[0]
    if int(torch.count_nonzero(p == conf)) != n:  # a tie at the maximum: argmax takes the first class reaching it
        correct = _first_argmax(p, conf) == y
    else:
        correct = p_y == conf
    nll = -p_y.double().clamp_min(NLL_EPS).log_().sum()  # not in place: for float64 p, p_y.double() is p_y
    sum_p_y = p_y.sum(dtype=torch.float64)
    class_rows = channels if classwise is not None else 0
    rows = class_rows + (1 if top_label is not None else 0)
    values, scratch, codes = buffers.views(rows, n)
    if class_rows:
        values[:channels].copy_(p)
        square_sum = torch.dot(values[:channels].view(-1), values[:channels].view(-1))
    else:
        p64 = p.double()
        square_sum = torch.dot(p64.reshape(-1), p64.reshape(-1))  # a float64 chunk of (C, N) is not contiguous
    brier = square_sum - 2.0 * sum_p_y + n
    totals += torch.stack([torch.tensor(float(n), dtype=torch.float64, device=p.device), nll, brier])
    if rows == 0:
        return
    if top_label is not None:
        values[class_rows].copy_(conf)
    codes.copy_(torch.mul(values, fine, out=scratch).ceil_())
    codes.clamp_min_(1).add_(torch.arange(rows, dtype=codes.dtype, device=p.device)[:, None] * fine - 1)
    hit = rows * fine
    if class_rows:
        codes[:channels].scatter_add_(0, y[None], torch.full((1, 1), hit, dtype=codes.dtype).expand(1, n))
    if top_label is not None:
        torch.add(codes[class_rows], correct, alpha=hit, out=codes[class_rows])
    flat = codes.view(-1)
    counts = torch.bincount(flat, minlength=2 * hit).view(2, rows, fine).double()
    sums = torch.bincount(flat, weights=values.view(-1), minlength=2 * hit).view(2, rows, fine).sum(0)
    histogram = torch.stack([counts.sum(0), sums, counts[1]], dim=1)  # (rows, 3, M): count, confidence, accuracy
    if classwise is not None:
        classwise += histogram[:channels]
    if top_label is not None:
        top_label += histogram[class_rows]


def _soft_chunk_statistics(
    p32: torch.Tensor,
    q: torch.Tensor,
    fine: int,
    top_label: torch.Tensor | None,
    classwise: torch.Tensor | None,
    totals: torch.Tensor,
) -> None:
    """Add the statistics of voxels ``p32`` (C, n) with a float64 soft reference ``q`` (C, n) into the buffers.

    The accuracy of a voxel is ``q_{argmax p}`` (top label) and ``q_c`` (classwise); fine bins as in
    :func:`_hard_chunk_statistics`, one ``bincount`` per statistic.
    """
    channels, n = p32.shape
    p = p32.double()
    conf = p.amax(0)
    pred = _first_argmax(p, conf)
    acc = q.gather(0, pred[None])[0]
    nll = -torch.dot(q.reshape(-1), p.clamp_min(NLL_EPS).log_().reshape(-1))
    diff = p - q
    brier = torch.dot(diff.reshape(-1), diff.reshape(-1))
    totals += torch.stack([torch.tensor(float(n), dtype=torch.float64, device=p.device), nll, brier])

    if top_label is not None:
        f_top = conf.mul(fine).ceil_().clamp_min_(1).sub_(1).int()
        top_label[0] += torch.bincount(f_top, minlength=fine).double()
        top_label[1] += torch.bincount(f_top, weights=conf, minlength=fine)
        top_label[2] += torch.bincount(f_top, weights=acc, minlength=fine)

    if classwise is not None:
        # code c*M + ceil(p_c*M) - 1, at least c*M (p = 0): exact float64 sum, then int32 codes
        offsets = torch.arange(channels, device=p.device, dtype=torch.float64)[:, None] * fine - 1.0
        lowest = torch.arange(channels, device=p.device, dtype=torch.int32)[:, None] * fine
        index = torch.add(offsets, p, alpha=fine).ceil_().int()
        index = torch.maximum(index, lowest).view(-1)
        size = channels * fine
        flat = classwise.view(channels * 3, fine)
        flat[0::3] += torch.bincount(index, minlength=size).double().view(channels, fine)
        flat[1::3] += torch.bincount(index, weights=p.view(-1), minlength=size).view(channels, fine)
        flat[2::3] += torch.bincount(index, weights=q.reshape(-1), minlength=size).view(channels, fine)


def _sigmoid_chunk_statistics(
    p: torch.Tensor,
    q: torch.Tensor,
    fine: int,
    top_label: torch.Tensor | None,
    classwise: torch.Tensor | None,
    totals: torch.Tensor,
) -> None:
    """Add the statistics of sigmoid channels ``p`` (C, n) against a per-channel float64 reference ``q`` (C, n).

    Channel ``c`` is the binary problem ``[1 - p_c, p_c]`` against ``[1 - q_c, q_c]``, counted by
    :func:`_soft_chunk_statistics`: its class-1 row is the classwise histogram of ``p_c`` against ``q_c``; its top
    label (confidence ``max(p_c, 1 - p_c)``, accuracy of the decision ``p_c > 0.5``) adds to the top-label histogram,
    which so counts every (voxel, channel) decision. Per voxel the NLL sums the channels' binary cross-entropies and
    the Brier score ``sum_c (p_c - q_c)^2`` (half the two-row value); ``N`` counts voxels, not channels.
    """
    channels, n = p.shape
    p = p.double()
    binary_classwise = None if classwise is None else torch.zeros(2, 3, fine, dtype=torch.float64, device=p.device)
    binary_totals = torch.zeros(3, dtype=torch.float64, device=p.device)
    for c in range(channels):
        if binary_classwise is not None:
            binary_classwise.zero_()
        binary_totals.zero_()
        _soft_chunk_statistics(
            torch.stack([1.0 - p[c], p[c]]),
            torch.stack([1.0 - q[c], q[c]]),
            fine,
            top_label,
            binary_classwise,
            binary_totals,
        )
        if classwise is not None:
            classwise[c] += binary_classwise[1]
        totals[1] += binary_totals[1]
        totals[2] += binary_totals[2] / 2.0
    totals[0] += n


def _chunk_ranges(batch: int, voxels: int, chunk: int) -> list[tuple[int, int, int]]:
    """``(image, start, stop)`` of every chunk of ``chunk`` voxels, image by image."""
    return [(b, start, min(start + chunk, voxels)) for b in range(batch) for start in range(0, voxels, chunk)]


def _checked_chunks(
    p_all: torch.Tensor,
    ref_all: torch.Tensor,
    soft: bool,
    m_all: torch.Tensor | None,
    chunks: list[tuple[int, int, int]],
    sigmoid: bool = False,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(image, p, ref)`` of the given chunks: voxels of the mask only, probabilities and labels checked.

    Sigmoid channels: ``ref`` is always the float64 per-channel reference ``(C, n)`` (integer labels one-hot).
    """
    channels = p_all.shape[1]
    for b, start, stop in chunks:
        p = p_all[b, :, start:stop]
        ref = ref_all[b, ..., start:stop]
        if m_all is not None:
            keep = m_all[b, start:stop]
            p, ref = p[:, keep], ref[..., keep]
        if p.shape[1] == 0:
            continue
        _check_probabilities(p, "probs", sigmoid)
        if sigmoid and soft:
            ref = ref.double()
            _check_reference(ref)
        elif sigmoid:
            ref = _check_labels(ref, channels)
            ref = (torch.arange(channels, device=ref.device)[:, None] == ref[None]).double()
        elif soft:
            ref = ref.double()
            _check_probabilities(ref, "soft labels")
        else:
            ref = _check_labels(ref, channels)
        yield b, p, ref


_T = TypeVar("_T")


def _map_chunks(
    work: Callable[[list[tuple[int, int, int]]], _T], chunks: list[tuple[int, int, int]], device: torch.device
) -> list[_T]:
    """Run ``work`` on the chunks, split round-robin among ``torch.get_num_threads()`` worker threads on CPU.

    Each worker runs its kernels on one intra-op thread (``torch.set_num_threads(1)`` is per thread for a thread
    that computes; the process-wide setting is restored afterwards), so that no kernel waits at a barrier for a
    thread the operating system has descheduled: on a loaded machine a 2-thread kernel is as slow as its slower
    half, while a worker that gets no core simply lets the other go on. The split is static, so the sums (and
    their rounding) do not depend on timing. Returns one result per worker, in worker order.
    """
    threads = torch.get_num_threads()
    workers = min(threads, len(chunks)) if device.type == "cpu" else 1
    if workers <= 1:
        return [work(chunks)]

    def single_threaded(part: list[tuple[int, int, int]]) -> _T:
        torch.set_num_threads(1)
        return work(part)

    try:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(single_threaded, [chunks[k::workers] for k in range(workers)]))
    finally:
        torch.set_num_threads(threads)


def calibration_statistics(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 15,
    mask: torch.Tensor | None = None,
    sub_bins: int = 1,
    top_label: bool = True,
    classwise: bool = True,
    per_image: bool = False,
    activation: str = "softmax",
) -> CalibrationStatistics:
    """Turn a batch into calibration histograms (the sufficient statistics of every metric here).

    One pass over the voxels in float64 chunks: per fine bin ``f/M < p <= (f+1)/M`` (``M = num_bins * sub_bins``,
    ``p = 0`` in bin 0) it sums voxel counts, confidences and accuracies, for the top label and for each class,
    plus the NLL and Brier sums (see :class:`CalibrationStatistics`). Sums add across chunks, images, batches
    and ranks, so pooled metrics over a whole dataset are exact.

    Sigmoid channels (``activation="sigmoid"``, or a single channel): each channel ``c`` is a binary problem, ``p_c``
    against ``y_c``, as MONAI's ``CalibrationErrorMetric`` reads it. The classwise histograms are then per channel
    (``p_c`` against ``y_c``), the top-label histograms count the binary decision of every (voxel, channel) pair
    (confidence ``max(p_c, 1 - p_c)``, correct when ``1[p_c > 0.5] = y_c``; soft: accuracy ``y_c`` or ``1 - y_c``),
    the NLL sums the channels' binary cross-entropies ``-y_c log p_c - (1 - y_c) log(1 - p_c)`` per voxel and the
    Brier sum is ``sum_c (p_c - y_c)^2``.

    Args:
        probs: ``(B, C, *spatial)`` probabilities, checked to lie in [0, 1] and be finite; softmax output (the
            default) must also sum to 1 over C within :data:`PROBABILITY_TOLERANCE`.
        labels: ``(B, 1, *spatial)`` / ``(B, *spatial)`` integer labels in [0, C-1] (float tensors holding whole
            numbers are accepted), or ``(B, C, *spatial)`` one-hot / soft reference (e.g. the mean of several
            raters' one-hot maps), checked like ``probs``.
        num_bins: number of equal-width bins (15 in the NACL papers).
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``; only voxels where it is nonzero count.
        sub_bins: fine sub-bins per bin; 1 suffices for ECE/MCE/reliability, more for the adaptive ECE.
        top_label: compute the top-label histograms.
        classwise: compute the per-class histograms (``C`` times the work of the top label).
        per_image: keep one set of statistics per image (leading dimension B) instead of pooling the batch.
        activation: ``"softmax"`` (default) or ``"sigmoid"``: how the channels are read (:data:`ACTIVATIONS`). For
            sigmoid channels ``labels`` is a ``(B, C, *spatial)`` per-channel reference in [0, 1] (any number of
            channels positive at a voxel; a single channel also ``(B, *spatial)``), or integer labels standing for
            their one-hot form.

    Returns:
        :class:`CalibrationStatistics`, float64, on the device of ``probs``.

    Example:
        >>> probs = torch.tensor([[[0.9, 0.3], [0.1, 0.7]]], dtype=torch.float64)  # (B=1, C=2, N=2)
        >>> stats = calibration_statistics(probs, torch.tensor([[0, 0]]), num_bins=2)
        >>> stats.top_label  # bins (0, .5], (.5, 1]: count, confidence sum, accuracy sum
        tensor([[0.0000, 2.0000],
                [0.0000, 1.6000],
                [0.0000, 1.0000]], dtype=torch.float64)
    """
    if not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive integer, got {num_bins!r}.")
    if not isinstance(sub_bins, int) or sub_bins < 1:
        raise ValueError(f"sub_bins must be a positive integer, got {sub_bins!r}.")
    p_all, ref_all, soft, m_all = prepare_inputs(probs, labels, mask, activation)
    batch, channels, voxels = p_all.shape
    sigmoid = resolve_activation(activation, channels) == "sigmoid"
    fine = num_bins * sub_bins
    chunk = max(1, _CHUNK_ELEMENTS // (channels + 1))

    def accumulate(chunks: list[tuple[int, int, int]]) -> CalibrationStatistics:
        opts = {"dtype": torch.float64, "device": p_all.device}
        top = torch.zeros(batch, 3, fine, **opts) if top_label else None
        cls_ = torch.zeros(batch, channels, 3, fine, **opts) if classwise else None
        totals = torch.zeros(batch, 3, **opts)
        buffers = None if soft or sigmoid else _ChunkBuffers(min(chunk, voxels) * (channels + 1), p_all.device)
        for b, p, ref in _checked_chunks(p_all, ref_all, soft, m_all, chunks, sigmoid):
            top_b = None if top is None else top[b]
            cls_b = None if cls_ is None else cls_[b]
            if sigmoid:
                _sigmoid_chunk_statistics(p, ref, fine, top_b, cls_b, totals[b])
            elif soft:
                _soft_chunk_statistics(p, ref, fine, top_b, cls_b, totals[b])
            else:
                _hard_chunk_statistics(p, ref, fine, top_b, cls_b, totals[b], buffers)
        return CalibrationStatistics(num_bins, sub_bins, top, cls_, totals)

    partials = _map_chunks(accumulate, _chunk_ranges(batch, voxels, chunk), p_all.device)
    stats = partials[0]
    for other in partials[1:]:
        stats = stats + other
    return stats if per_image else stats.sum(0)


def marginal_statistics(
    probs: torch.Tensor,
    labels: torch.Tensor,
    num_bins: int = 20,
    mask: torch.Tensor | None = None,
    activation: str = "softmax",
) -> torch.Tensor:
    """Per image and class, the binning of MONAI's ``monai.metrics.CalibrationErrorMetric`` as float64 sums.

    Each class ``c`` on its own, one against the rest: ``p_c`` against ``1[y = c]`` (or ``q_c``), binned exactly as
    ``monai.metrics.calibration_binning`` (``right=False``) bins it: ``torch.bucketize`` of ``p_c`` in float32
    against the upper edges of ``torch.linspace(0, 1 + eps_float32, num_bins + 1)`` (a value on an edge goes to
    the lower bin, the last bin also takes 1). The sums are float64 (MONAI's are float32), so the values agree with
    MONAI's to float32 rounding and bin membership is identical.

    Region: every voxel where ``mask`` is nonzero (every voxel without a mask, as in MONAI).

    Every channel is a binary problem here whatever ``activation``; it only says which inputs are valid: softmax
    channels must sum to 1, sigmoid channels (MONAI's inputs: one channel, or per-channel probabilities with a
    ``(B, C, *spatial)`` binary reference) need not.

    Args:
        probs: ``(B, C, *spatial)`` probabilities, checked as in :func:`calibration_statistics`.
        labels: ``(B, 1, *spatial)`` / ``(B, *spatial)`` integer labels, or ``(B, C, *spatial)`` one-hot / soft
            (softmax) or per-channel (sigmoid) reference.
        num_bins: number of equal-width bins (20, MONAI's default).
        mask: optional ``(B, 1, *spatial)`` / ``(B, *spatial)``; only voxels where it is nonzero count.
        activation: ``"softmax"`` (default) or ``"sigmoid"`` (:data:`ACTIVATIONS`).

    Returns:
        ``(B, C, 3, num_bins)`` float64: per bin the voxel count, the sum of ``p_c`` and the sum of ``1[y = c]``.
    """
    if not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive integer, got {num_bins!r}.")
    p_all, ref_all, soft, m_all = prepare_inputs(probs, labels, mask, activation)
    batch, channels, voxels = p_all.shape
    sigmoid = resolve_activation(activation, channels) == "sigmoid"
    boundaries = torch.linspace(0.0, 1.0 + torch.finfo(torch.float32).eps, num_bins + 1, device=p_all.device)[1:]
    offsets = torch.arange(channels, device=p_all.device)[:, None] * num_bins
    size = channels * num_bins

    def accumulate(chunks: list[tuple[int, int, int]]) -> torch.Tensor:
        hist = torch.zeros(batch, 3, size, dtype=torch.float64, device=p_all.device)
        for b, p, ref in _checked_chunks(p_all, ref_all, soft, m_all, chunks, sigmoid):
            codes = torch.bucketize(p.float(), boundaries).clamp_(max=num_bins - 1).add_(offsets).view(-1)
            hist[b, 0] += torch.bincount(codes, minlength=size).double()
            hist[b, 1] += torch.bincount(codes, weights=p.double().reshape(-1), minlength=size)
            if soft or sigmoid:
                hist[b, 2] += torch.bincount(codes, weights=ref.reshape(-1), minlength=size)
            else:
                hits = codes.view(channels, -1).gather(0, ref[None])[0]
                hist[b, 2] += torch.bincount(hits, minlength=size).double()
        return hist

    chunk = max(1, _CHUNK_ELEMENTS // channels)
    hist = sum(_map_chunks(accumulate, _chunk_ranges(batch, voxels, chunk), p_all.device))
    return hist.view(batch, 3, channels, num_bins).transpose(1, 2).contiguous()


def hard_labels(labels: torch.Tensor, probs_shape: tuple[int, ...]) -> torch.Tensor:
    """``(B, *spatial)`` integer labels from the label forms accepted with probabilities of shape ``probs_shape``:
    ``(B, 1, *spatial)`` / ``(B, *spatial)`` labels as they are, ``(B, C, *spatial)`` one-hot/soft by argmax over C."""
    labels = checked_tensor(labels, "labels")
    probs_shape = tuple(probs_shape)
    if tuple(labels.shape) == probs_shape:
        return labels.argmax(1)
    return labels.reshape(probs_shape[:1] + probs_shape[2:]).long()


def reference_labels(labels: torch.Tensor, probs_shape: tuple[int, ...], activation: str = "softmax") -> torch.Tensor:
    """``(B, *spatial)`` integer map, 0 where the reference is background, from which :func:`region_mask` derives
    the counted region. Softmax channels: :func:`hard_labels`. Sigmoid channels: integer labels as they are; a
    per-channel reference gives 1 where any channel is positive (``y_c > 0.5``): every channel is a structure of
    its own, none is background (with a background channel in the reference every voxel is foreground; count
    ``region="all"`` or pass a mask then)."""
    probs_shape = tuple(probs_shape)
    if resolve_activation(activation, probs_shape[1]) == "softmax":
        return hard_labels(labels, probs_shape)
    labels = checked_tensor(labels, "labels")
    if tuple(labels.shape) == probs_shape or probs_shape[1] == 1:
        return (labels.reshape(probs_shape) > 0.5).any(1).long()
    return labels.reshape(probs_shape[:1] + probs_shape[2:]).long()


def region_mask(labels: torch.Tensor, region: str = "all", band_width: int = 1) -> torch.Tensor | None:
    """Voxels a calibration metric counts, from integer labels ``(B, *spatial)`` (0 = background).

    - ``"all"``: every voxel (returns None).
    - ``"foreground"``: ground-truth foreground ``label != 0`` (the NACL authors' protocol).
    - ``"band"``: the foreground dilated by ``band_width`` voxels (cube structuring element, i.e. every voxel
      within Chebyshev distance ``band_width`` of a foreground voxel, foreground included; the authors'
      optional dilation is ``band_width=1`` in 2D).
    - ``"bbox"``: the axis-aligned bounding box of each image's foreground.

    Args:
        labels: ``(B, *spatial)`` integer labels (1 to 3 spatial dimensions for ``"band"``).
        region: one of :data:`REGIONS`.
        band_width: dilation radius in voxels for ``"band"``.

    Returns:
        ``(B, *spatial)`` bool mask, or None for ``"all"``. Images without foreground get an empty mask.
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}.")
    if region == "all":
        return None
    foreground = labels != 0
    if region == "foreground":
        return foreground
    spatial_dims = foreground.ndim - 1
    if region == "band":
        if not isinstance(band_width, int) or band_width < 0:
            raise ValueError(f"band_width must be a non-negative integer (voxels), got {band_width!r}.")
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"region 'band' supports 1 to 3 spatial dimensions, got labels {tuple(labels.shape)}.")
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[spatial_dims - 1]
        dilated = pool(foreground[:, None].float(), kernel_size=2 * band_width + 1, stride=1, padding=band_width)
        return dilated[:, 0] > 0
    box = torch.ones_like(foreground)
    for axis in range(1, foreground.ndim):
        others = [d for d in range(1, foreground.ndim) if d != axis]
        present = foreground.any(dim=others) if others else foreground  # (B, size_axis)
        size = present.shape[1]
        index = torch.arange(size, device=labels.device)
        first = torch.where(present, index, size).amin(1)
        last = torch.where(present, index, -1).amax(1)
        inside = (index >= first[:, None]) & (index <= last[:, None])  # (B, size_axis)
        shape = [foreground.shape[0]] + [1] * spatial_dims
        shape[axis] = size
        box = box & inside.reshape(shape)
    return box


def warn_if_empty(count: float, what: str) -> None:
    """Warn (never raise) when no voxel was counted, so a validation round survives an empty region."""
    if count == 0:
        warnings.warn(
            f"{what}: no voxel was counted (empty mask or region, e.g. an image without foreground); "
            "the calibration values are NaN.",
            stacklevel=3,
        )
