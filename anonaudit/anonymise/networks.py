"""Networks of the GAN/DFI anonymiser (anonymisation paper, Fig. 2) and its baselines.

Windows enter as ``(batch, time, channels)`` and are treated as one-channel images
``(batch, 1, time, channels)``, as in the paper's code. The geometry is computed from the
window shape instead of hard-coded paddings: time is edge-padded to a multiple of 8 so three
stride-2 convolutions with padding 1 halve it exactly and the transposed convolutions restore
it; the channel axis is convolved the same way when there are many channels (motion capture:
kernel 4, stride 2) and left alone when there are few (one IMU: kernel 1, as the paper's
MotionSense variant), so correlated neighbouring channels share filters only where that makes
sense.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

WIDTHS = (16, 32, 64)
MANY_CHANNELS = 16  # from here on the channel axis is convolved too


@dataclass(frozen=True)
class Geometry:
    """Padded shape of a window and the shape of its bottleneck code."""

    length: int
    channels: int

    @property
    def conv_channels(self) -> bool:
        return self.channels >= MANY_CHANNELS

    @property
    def padded(self) -> tuple[int, int]:
        up = lambda n: -(-n // 8) * 8  # noqa: E731
        return up(self.length), up(self.channels) if self.conv_channels else self.channels

    @property
    def code_shape(self) -> tuple[int, int, int]:
        t, c = self.padded
        return WIDTHS[-1], t // 8, c // 8 if self.conv_channels else c

    @property
    def code_size(self) -> int:
        a, b, c = self.code_shape
        return a * b * c

    def kernel(self) -> dict[str, tuple[int, int]]:
        if self.conv_channels:
            return {"kernel_size": (4, 4), "stride": (2, 2), "padding": (1, 1)}
        return {"kernel_size": (4, 1), "stride": (2, 1), "padding": (1, 0)}

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) → (B, 1, T', C'), edge-replicated so no artificial step enters the data."""
        t, c = self.padded
        x = x.unsqueeze(1)
        if (t, c) != (self.length, self.channels):
            x = F.pad(x, (0, c - self.channels, 0, t - self.length), mode="replicate")
        return x

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, : self.length, : self.channels]


def _conv_stack(geom: Geometry, widths: tuple[int, ...], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(1 if i == 0 else widths[i - 1], w, **geom.kernel()), nn.BatchNorm2d(w), nn.ReLU()]
        if i > 0 and dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def fold_batch_norms(seq: nn.Sequential) -> nn.Sequential:
    """The eval-mode function of ``seq`` with each batch norm folded into the convolution before it.

    Dropouts, identities at inference, are left out. Sub-sequences are folded recursively.
    """
    out: list[nn.Module] = []
    mods = list(seq)
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.Sequential):
            out.append(fold_batch_norms(m))
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(m, mods[i + 1], transpose=isinstance(m, nn.ConvTranspose2d)))
            i += 1
        elif not isinstance(m, nn.Dropout):
            out.append(m)
        i += 1
    return nn.Sequential(*out)


class ConvAutoencoder(nn.Module):
    """Encoder (3 convolutions) → 1×1 bottleneck → decoder (3 transposed convolutions).

    Linear output in z-scored units (the reference squashes to [0, 1] with a sigmoid after
    clipping at μ ± 2σ, which cuts off exactly the peaks — falls, jumps — that carry activity
    information).
    """

    def __init__(self, geometry: Geometry, dropout: float = 0.1) -> None:
        super().__init__()
        self.geometry = geometry
        self.encoder = nn.Sequential(_conv_stack(geometry, WIDTHS, dropout),
                                     nn.Conv2d(WIDTHS[-1], WIDTHS[-1], 1, bias=False), nn.ReLU())
        layers: list[nn.Module] = []
        widths = (*WIDTHS[::-1], 1)
        for i in range(len(WIDTHS)):
            layers.append(nn.ConvTranspose2d(widths[i], widths[i + 1], **geometry.kernel()))
            if i < len(WIDTHS) - 1:
                layers += [nn.BatchNorm2d(widths[i + 1]), nn.ReLU(), nn.Dropout(dropout)]
        self.decoder = nn.Sequential(*layers)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.geometry.pad(x))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.geometry.crop(self.decoder(code))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def for_inference(self) -> "ConvAutoencoder":
        """A copy for releasing data: batch norms folded into the convolutions, no dropout.

        The same function as ``self.eval()`` (up to float rounding), 1.5–2× faster on CPU, where
        the batch norms' separate passes over the feature maps cost as much as the convolutions.
        """
        fast = copy.deepcopy(self).eval()
        fast.encoder, fast.decoder = fold_batch_norms(fast.encoder), fold_batch_norms(fast.decoder)
        return fast


class NoiseBranch(nn.Module):
    """z (plus an optional subject embedding) → two leaky-ReLU dense layers → C_z.

    ``hidden`` replaces the reference's two 21,504-wide layers (925 M parameters) by one narrow
    layer: the branch only has to place a perturbation in code space, and a 256-wide layer
    keeps the generator trainable in minutes on two CPU cores.
    """

    def __init__(self, geometry: Geometry, latent: int = 32, n_subjects: int = 0, embed: int = 16,
                 hidden: int = 256) -> None:
        super().__init__()
        self.code_shape = geometry.code_shape
        self.latent = latent
        self.embedding = nn.Embedding(n_subjects, embed) if n_subjects else None
        self.net = nn.Sequential(nn.Linear(latent + (embed if n_subjects else 0), hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, geometry.code_size), nn.LeakyReLU(0.2))

    def forward(self, z: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        if self.embedding is not None:
            if subject is None:
                raise ValueError("this noise branch is conditioned on a subject")
            z = torch.cat([z, self.embedding(subject)], dim=1)
        return self.net(z).view(len(z), *self.code_shape)


class Discriminator(nn.Module):
    """Three convolutions with batch norm → (⊕ subject embedding) → MLP → one logit."""

    def __init__(self, geometry: Geometry, n_subjects: int = 0, embed: int = 16, widths: tuple[int, ...] = (8, 16, 16)) -> None:
        super().__init__()
        self.geometry = geometry
        self.features = _conv_stack(geometry, widths, 0.1)
        _, t, c = geometry.code_shape
        self.embedding = nn.Embedding(n_subjects, embed) if n_subjects else None
        self.head = nn.Sequential(nn.Linear(widths[-1] * t * c + (embed if n_subjects else 0), 128), nn.ReLU(),
                                  nn.Dropout(0.3), nn.Linear(128, 1))

    def forward(self, x: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(self.geometry.pad(x)).flatten(1)
        if self.embedding is not None and subject is not None:
            h = torch.cat([h, self.embedding(subject)], dim=1)
        return self.head(h).squeeze(1)


class SmallConvNet(nn.Module):
    """A cheap 1-D CNN with global pooling: the adversary and activity head of the AAE baseline."""

    def __init__(self, channels: int, n_classes: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, width, 5, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 5, padding=2, stride=2), nn.ReLU(),
            nn.Conv1d(width, width, 5, padding=2, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2))
