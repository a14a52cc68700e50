"""Post-hoc calibrators: modules that divide a trained network's logits by a fitted temperature.

Every calibrator maps logits ``z`` (before the softmax) to ``z / T`` with ``T > 0``:

- :class:`TemperatureScaling` (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): one scalar ``T``
  for every voxel and class; the argmax (hence Dice) is unchanged.
- :class:`VectorScaling`: one temperature ``T_c`` per class, ``z_c / T_c`` (Guo et al.'s vector scaling without the
  bias); the argmax can change.
- :class:`LocalTemperatureScaling` (Ding et al., "Local Temperature Scaling for Probability Calibration",
  ICCV 2021): a small convolutional network on the logits (optionally with the image) predicts a temperature map
  ``T(x)``; the argmax at each voxel is unchanged.

The temperatures are fitted by NLL on held-out data with :mod:`monai_nacl.calibration.fitting`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CALIBRATORS", "Calibrator", "LocalTemperatureScaling", "TemperatureScaling", "VectorScaling"]


class Calibrator(nn.Module):
    """Base of the calibrators: ``forward(logits, image) = logits / temperature(logits, image)``.

    Subclasses set :attr:`method` (the name written in ``calibration.json``) and :attr:`has_weights` (True when the
    parameters are a state dict saved beside the JSON rather than numbers inside it), and implement
    :meth:`temperature` and :meth:`config`.
    """

    method: ClassVar[str]
    has_weights: ClassVar[bool] = False
    uses_image: bool = False

    def temperature(self, logits: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """The temperature, broadcastable against ``logits``."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this calibrator (``type(self)(**config())``), JSON-serialisable."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for logs: the method and its parameters."""
        return self.method

    def forward(self, logits: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated logits ``logits / T`` (softmax them for probabilities).

        Args:
            logits: ``(B, C, *spatial)`` or ``(N, C)`` raw network outputs.
            image: ``(B, I, *spatial)`` input image, only for a calibrator with :attr:`uses_image`.
        """
        if logits.ndim < 2:
            raise ValueError(f"logits must be (N, C) or (B, C, *spatial), got shape {tuple(logits.shape)}.")
        return logits / self.temperature(logits, image).to(logits.dtype)


def _log_temperatures(values: float | Sequence[float], what: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if t.numel() == 0 or not bool(torch.isfinite(t).all()) or not bool((t > 0).all()):
        raise ValueError(f"{what} must be finite and > 0, got {t.tolist()}.")
    return t.log()


class TemperatureScaling(Calibrator):
    """One temperature for every voxel and class: ``softmax(z / T)`` (Guo et al., ICML 2017).

    The parameter is ``log T`` (float64), so an unconstrained optimiser keeps ``T > 0``.

    Args:
        temperature: the initial or fitted ``T > 0``; 1.0 leaves the model as it is.

    Example:
        >>> TemperatureScaling(2.0)(torch.tensor([[4.0, 0.0]])).tolist()
        [[2.0, 0.0]]
    """

    method = "ts"

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(_log_temperatures(temperature, "temperature"))

    @property
    def value(self) -> float:
        """The temperature ``T`` as a float."""
        return float(self.log_temperature.detach().exp())

    def temperature(self, logits: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        return self.log_temperature.exp().to(logits.device).reshape(())

    def config(self) -> dict[str, Any]:
        return {"temperature": self.value}

    def describe(self) -> str:
        return f"ts (T={self.value:.4f})"


class VectorScaling(Calibrator):
    """One temperature per class: ``softmax_c(z_c / T_c)``.

    Guo et al.'s vector scaling ``W z + b`` with a diagonal ``W = diag(1 / T_c)`` and no bias; unlike
    :class:`TemperatureScaling` it can change the predicted class.

    Args:
        num_classes: number of channels ``C`` of the logits.
        temperatures: ``C`` initial or fitted temperatures (> 0); default all 1.0.
    """

    method = "vector"

    def __init__(self, num_classes: int, temperatures: Sequence[float] | None = None) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
        temperatures = [1.0] * num_classes if temperatures is None else list(temperatures)
        if len(temperatures) != num_classes:
            raise ValueError(
                f"temperatures must hold num_classes={num_classes} values (one per class), got {len(temperatures)}."
            )
        self.num_classes = num_classes
        self.log_temperature = nn.Parameter(_log_temperatures(temperatures, "temperatures"))

    @property
    def values(self) -> list[float]:
        """The per-class temperatures ``T_c``."""
        return self.log_temperature.detach().exp().tolist()

    def temperature(self, logits: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits have {logits.shape[1]} channels (shape {tuple(logits.shape)}) but the vector scaling was "
                f"fitted for {self.num_classes} classes."
            )
        return self.log_temperature.exp().to(logits.device).reshape(1, -1, *([1] * (logits.ndim - 2)))

    def config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "temperatures": self.values}

    def describe(self) -> str:
        return "vector (T_c=" + ", ".join(f"{t:.4f}" for t in self.values) + ")"


def _inverse_softplus(y: float) -> float:
    """``x`` with ``softplus(x) = log(1 + e^x) = y`` (``y > 0``)."""
    return y + math.log(-math.expm1(-y))


class LocalTemperatureScaling(Calibrator):
    """A temperature per voxel predicted from the logits (and the image): ``softmax(z(x) / T(x))`` (Ding et al. 2021).

    ``T(x) = softplus(f([z(x) - mean_c z_c(x), image(x)])) + eps`` where ``f`` is a small fully convolutional net:
    a 3x3(x3) convolution, ReLU, a 3x3(x3) convolution dilated by 2, ReLU, and a 1x1(x1) convolution to one channel
    (receptive field 7 voxels). The logits enter centred over the classes because the softmax ignores a common
    shift. The last layer starts at zero weights and a bias that makes ``T(x) = initial_temperature`` everywhere,
    so the untrained module is plain temperature scaling. Borders are padded by replication.

    A 2D module (``spatial_dims=2``) also takes 3D volumes ``(B, C, H, W, D)`` (the output of a 2D network run slice
    by slice): it is applied to each slice along spatial axis ``slice_axis``.

    Args:
        num_classes: channels ``C`` of the logits.
        spatial_dims: 2 or 3, the convolutions' dimension.
        image_channels: channels of the image given beside the logits; 0 for a temperature from the logits alone.
        hidden_channels: width of the two hidden layers.
        eps: lower bound of the temperature (a temperature near 0 would make every voxel certain).
        initial_temperature: the temperature of the untrained module.
        slice_axis: the spatial axis (0, 1 or 2) along which a 2D module slices a 3D volume.
    """

    method = "lts"
    has_weights = True

    def __init__(
        self,
        num_classes: int,
        spatial_dims: int = 3,
        image_channels: int = 0,
        hidden_channels: int = 16,
        eps: float = 0.05,
        initial_temperature: float = 1.0,
        slice_axis: int = 2,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        if not isinstance(image_channels, int) or image_channels < 0:
            raise ValueError(f"image_channels must be an integer >= 0, got {image_channels!r}.")
        if not isinstance(hidden_channels, int) or hidden_channels < 1:
            raise ValueError(f"hidden_channels must be a positive integer, got {hidden_channels!r}.")
        if not 0 < eps < initial_temperature:
            raise ValueError(
                f"need 0 < eps < initial_temperature, got eps={eps}, initial_temperature={initial_temperature}."
            )
        if slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be a spatial axis 0, 1 or 2, got {slice_axis!r}.")
        self.num_classes, self.spatial_dims, self.image_channels = num_classes, spatial_dims, image_channels
        self.hidden_channels, self.eps, self.slice_axis = hidden_channels, float(eps), slice_axis
        self.initial_temperature = float(initial_temperature)
        self.uses_image = image_channels > 0
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.net = nn.Sequential(
            conv(num_classes + image_channels, hidden_channels, 3, padding=1, padding_mode="replicate"),
            nn.ReLU(),
            conv(hidden_channels, hidden_channels, 3, padding=2, dilation=2, padding_mode="replicate"),
            nn.ReLU(),
            conv(hidden_channels, 1, 1),
        )
        self.reset_temperature(initial_temperature)

    def reset_temperature(self, temperature: float) -> None:
        """Zero the last layer and set its bias so that ``T(x) = temperature`` at every voxel."""
        if not temperature > self.eps:
            raise ValueError(f"the temperature must exceed eps={self.eps}, got {temperature}.")
        last = self.net[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.fill_(_inverse_softplus(temperature - self.eps))

    def temperature(self, logits: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """The ``(B, 1, *spatial)`` temperature map of ``(B, C, *spatial)`` logits (and ``(B, I, *spatial)`` image)."""
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits have {logits.shape[1]} channels (shape {tuple(logits.shape)}) but the local temperature "
                f"scaling was fitted for {self.num_classes} classes."
            )
        spatial = logits.ndim - 2
        if spatial != self.spatial_dims and not (self.spatial_dims == 2 and spatial == 3):
            raise ValueError(
                f"a {self.spatial_dims}D local temperature scaling takes (B, C, *spatial) logits with "
                f"{self.spatial_dims} spatial axes{' (or 3, sliced)' if self.spatial_dims == 2 else ''}, got shape "
                f"{tuple(logits.shape)}."
            )
        x = logits - logits.mean(dim=1, keepdim=True)
        if self.uses_image:
            if image is None:
                raise ValueError(
                    f"this local temperature scaling was fitted with {self.image_channels} image channel(s) beside the "
                    "logits; pass the image (ApplyCalibrationd: image_key)."
                )
            if image.shape[0] != logits.shape[0] or image.shape[2:] != logits.shape[2:]:
                raise ValueError(
                    f"image shape {tuple(image.shape)} does not match logits {tuple(logits.shape)}: the image must be "
                    "on the logits' grid (apply the calibration before inverting the preprocessing)."
                )
            if image.shape[1] != self.image_channels:
                raise ValueError(f"image has {image.shape[1]} channels, the calibrator expects {self.image_channels}.")
            x = torch.cat([x, image.to(x)], dim=1)
        param = next(self.parameters())
        x = x.to(device=param.device, dtype=param.dtype)
        if spatial == self.spatial_dims:
            return (F.softplus(self.net(x)) + self.eps).to(logits.device)
        # 2D module on a 3D volume: slices along slice_axis become the batch
        axis = 2 + self.slice_axis
        batch, depth = x.shape[0], x.shape[axis]
        slices = torch.movedim(x, axis, 1).reshape(
            batch * depth, x.shape[1], *[s for i, s in enumerate(x.shape) if i not in (0, 1, axis)]
        )
        t = F.softplus(self.net(slices)) + self.eps
        t = t.reshape(batch, depth, 1, *t.shape[2:])
        return torch.movedim(t, 1, axis).to(logits.device)

    def config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "spatial_dims": self.spatial_dims,
            "image_channels": self.image_channels,
            "hidden_channels": self.hidden_channels,
            "eps": self.eps,
            "initial_temperature": self.initial_temperature,
            "slice_axis": self.slice_axis,
        }

    def describe(self) -> str:
        image = f", with {self.image_channels} image channel(s)" if self.uses_image else ""
        return f"lts ({self.spatial_dims}D temperature network{image})"


CALIBRATORS: dict[str, type[Calibrator]] = {
    "ts": TemperatureScaling,
    "vector": VectorScaling,
    "lts": LocalTemperatureScaling,
}
"""The post-hoc methods by the name ``calibration.json`` and the command line use."""
