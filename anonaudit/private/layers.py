"""Input geometry and the convolution blocks both VAEs share (images: 2-D, sensor windows: 1-D).

Every block is Opacus-compatible: plain ``nn.Conv*`` / ``nn.Linear`` leaves, ``nn.GroupNorm``
(per-sample statistics, unlike batch normalisation) and parameter-free activations. Decoders
upsample with nearest-neighbour + convolution instead of transposed convolutions, which Opacus
handles with its fast hook samplers rather than the functorch fallback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from anonaudit.errors import ParameterError


@dataclass(frozen=True)
class InputSpec:
    """What a model is built for: ``channels`` × ``size`` (H, W) for images or (L,) for windows."""

    channels: int
    size: tuple[int, ...]

    @property
    def kind(self) -> str:
        return "image" if len(self.size) == 2 else "sensor"

    @property
    def dims(self) -> int:
        return len(self.size)

    def check_stages(self, n_stages: int) -> tuple[int, ...]:
        """Size after ``n_stages`` stride-2 convolutions; each one must halve the size exactly."""
        if self.dims not in (1, 2):
            raise ParameterError("image_size", f"inputs must be images (H, W) or windows (L,), got size {self.size}")
        step = 2 ** n_stages
        if any(s % step or s < step for s in self.size):
            raise ParameterError("image_size", f"{'x'.join(map(str, self.size))} is not a multiple of {step} "
                                 f"(2^{n_stages} for {n_stages} encoder stages); pad or crop the input or use fewer stages")
        return tuple(s // step for s in self.size)

    def check_input(self, X: np.ndarray | torch.Tensor) -> None:
        """Reject data of another shape before any training starts."""
        shape = tuple(X.shape[1:])
        if shape != (self.channels, *self.size):
            what = "image" if self.kind == "image" else "window"
            raise ParameterError("image_size", f"the model expects {what}s of shape {(self.channels, *self.size)} "
                                 f"(channels, {'height, width' if self.kind == 'image' else 'length'}), got {shape}")


def norm(channels: int, weight: float | None = None) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups; ``weight`` sets the affine scale (tdBN's α·V_th firing regime)."""
    gn = nn.GroupNorm(math.gcd(channels, 8), channels)
    if weight is not None:
        nn.init.constant_(gn.weight, weight)
    return gn


def conv(dims: int, c_in: int, c_out: int, stride: int = 1, time_axis: bool = False) -> nn.Module:
    """k=3 convolution over ``dims`` spatial axes; with ``time_axis`` a trailing time axis of kernel 1
    (the same weights at every time step, FSVAE's tdConv)."""
    n = dims + int(time_axis)
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[n]
    k = (3,) * dims + (1,) * int(time_axis)
    s = (stride,) * dims + (1,) * int(time_axis)
    p = (1,) * dims + (0,) * int(time_axis)
    return cls(c_in, c_out, k, stride=s, padding=p)


def upsample(dims: int, time_axis: bool = False) -> nn.Upsample:
    return nn.Upsample(scale_factor=(2.0,) * dims + (1.0,) * int(time_axis), mode="nearest")


def flat_size(spec: InputSpec, widths: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """Features after the encoder's stages and the spatial shape they come from."""
    inner = spec.check_stages(len(widths))
    return widths[-1] * int(np.prod(inner)), inner


def per_sample_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return ((x_hat - x) ** 2).flatten(1).mean(1)
