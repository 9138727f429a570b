"""ANN VAE baseline (FSVAE's ``ann_vae``) with GroupNorm instead of BatchNorm, for DP-SGD.

``forward(x)`` returns the per-sample loss (reconstruction MSE + weighted KL): DP-SGD clips each
example's gradient, so the loss must be a batch mean of per-example terms and nothing may couple
examples of a batch. With ``variational=False`` it is a plain autoencoder (the AID reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from anonaudit.private.layers import InputSpec, conv, flat_size, norm, per_sample_mse, upsample


@dataclass(frozen=True)
class VAEConfig:
    """Shared by both VAEs: encoder widths (one stride-2 stage each), latent size and loss weights."""

    widths: tuple[int, ...] = (32, 64, 128, 256)
    latent: int = 128
    kld_weight: float = 0.0025  # ANN: the reference's batch/N at MNIST scale
    n_steps: int = 16  # spiking: time steps T
    k: int = 20  # spiking: spike candidates per latent (one drawn)
    scheduled: bool = True  # spiking: FSVAE's scheduled sampling of the prior's inputs in training


class ANNVAE(nn.Module):
    def __init__(self, spec: InputSpec, cfg: VAEConfig = VAEConfig(), variational: bool = True) -> None:
        super().__init__()
        self.spec, self.cfg, self.variational = spec, cfg, variational
        d, w = spec.dims, cfg.widths
        feat, self.inner = flat_size(spec, w)
        layers: list[nn.Module] = []
        for c_in, c_out in zip((spec.channels, *w[:-1]), w):
            layers += [conv(d, c_in, c_out, stride=2), norm(c_out), nn.LeakyReLU()]
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.fc_mu = nn.Linear(feat, cfg.latent)
        self.fc_var = nn.Linear(feat, cfg.latent) if variational else None
        self.decoder_input = nn.Linear(cfg.latent, feat)
        ups: list[nn.Module] = []
        for c_in, c_out in zip(w[::-1], (*w[-2::-1], w[0])):
            ups += [upsample(d), conv(d, c_in, c_out), norm(c_out), nn.LeakyReLU()]
        self.decoder = nn.Sequential(*ups, conv(d, w[0], spec.channels), nn.Tanh())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_var(h) if self.fc_var is not None else None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_input(z).view(len(z), self.cfg.widths[-1], *self.inner)
        return self.decoder(h)

    def _latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_var = self.encode(x)
        if log_var is None:
            return mu, torch.zeros(len(x), dtype=x.dtype, device=x.device)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        kld = -0.5 * (1 + log_var - mu**2 - log_var.exp()).sum(1)
        return z, kld

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample loss: MSE(x̂, x) + kld_weight · KL(q(z|x) ‖ N(0, I))."""
        z, kld = self._latent(x)
        return per_sample_mse(self.decode(z), x) + self.cfg.kld_weight * kld

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self._latent(x)[0])

    def latent_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.decode(torch.randn(n, self.cfg.latent))
