"""Fully spiking VAE in the FSVAE style (Kamata et al., AAAI 2022), restructured for DP-SGD.

Tensors keep channels first and time last: (N, C, *space, T). The image is fed as a constant input
current for T steps (direct encoding); every convolution and linear layer is applied to all steps
at once with the same weights (kernel 1 along time), and parameter-free LIF neurons integrate over
time. Latents are Bernoulli spike trains sampled autoregressively: at each step one of ``k`` spike
candidates of the posterior q(z_t | x_≤t, z_<t) is drawn; the prior p(z_t | z_<t) is trained to
match it with the PSP-filtered MMD. The output is the final membrane potential of a non-firing
layer, squashed by tanh. GroupNorm (affine scale α·V_th) replaces tdBN so that no term couples the
examples of a batch. In training, FSVAE's scheduled sampling feeds the prior some of its own
predictions in place of the posterior's spikes (from step 5 on, with a probability rising over the
epochs), so that generation, which only ever sees the prior's output, is not a different regime.
"""

from __future__ import annotations

import torch
from torch import nn

from anonaudit.private.layers import InputSpec, conv, flat_size, norm, per_sample_mse, upsample
from anonaudit.private.lif import LIF, V_TH, membrane_output, psp
from anonaudit.private.vae_ann import VAEConfig

SCHEDULE_FROM = 5  # FSVAE: scheduled sampling only from this step on


class TimeLinear(nn.Linear):
    """Linear on (N, F, T): the same weights at every step (Opacus' Linear sampler takes (N, *, F))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _dense_block(c_in: int, c_out: int, alpha: float) -> list[nn.Module]:
    return [TimeLinear(c_in, c_out), norm(c_out, alpha * V_TH), LIF()]


def _latent_net(c_in: int, hidden: tuple[int, int], out: int) -> nn.Sequential:
    """3 × [linear → norm(α = 2) → LIF], the posterior's and prior's shape."""
    a, b = hidden
    return nn.Sequential(*_dense_block(c_in, a, 2.0), *_dense_block(a, b, 2.0), *_dense_block(b, out, 2.0))


def shift(z: torch.Tensor) -> torch.Tensor:
    """z_{t−1} at step t (zeros at t = 0): what the autoregressive nets may see."""
    return nn.functional.pad(z[..., :-1], (1, 0))


class SpikingVAE(nn.Module):
    def __init__(self, spec: InputSpec, cfg: VAEConfig = VAEConfig()) -> None:
        super().__init__()
        self.spec, self.cfg = spec, cfg
        d, w, L, k = spec.dims, cfg.widths, cfg.latent, cfg.k
        feat, self.inner = flat_size(spec, w)
        enc: list[nn.Module] = []
        for c_in, c_out in zip((spec.channels, *w[:-1]), w):
            enc += [conv(d, c_in, c_out, stride=2, time_axis=True), norm(c_out, V_TH), LIF()]
        self.encoder = nn.Sequential(*enc, nn.Flatten(1, -2), *_dense_block(feat, L, 1.0))
        self.posterior = _latent_net(2 * L, (2 * L, 4 * L), L * k)
        self.prior = _latent_net(L, (2 * L, 4 * L), L * k)
        self.decoder_input = nn.Sequential(*_dense_block(L, feat, 1.0))
        dec: list[nn.Module] = []
        for c_in, c_out in zip(w[::-1], (*w[-2::-1], w[0])):
            dec += [upsample(d, time_axis=True), conv(d, c_in, c_out, time_axis=True), norm(c_out, V_TH), LIF()]
        self.decoder = nn.Sequential(*dec, conv(d, w[0], spec.channels, time_axis=True))
        self.scheduled_p = 0.0

    def on_epoch(self, epoch: int, epochs: int) -> None:
        """FSVAE's schedule: p = 0.1 + 0.2 · epoch / epochs (called by the training loop)."""
        self.scheduled_p = 0.1 + 0.2 * epoch / epochs if self.cfg.scheduled else 0.0

    # ------------------------------------------------------------------ pieces
    def _candidates(self, net: nn.Module, inp: torch.Tensor) -> torch.Tensor:
        """(N, L, k, T) spike candidates."""
        out = net(inp)
        return out.view(len(out), self.cfg.latent, self.cfg.k, out.shape[-1])

    def _pick(self, cand: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return cand.gather(2, idx.unsqueeze(2)).squeeze(2)

    def _random_choice(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randint(self.cfg.k, (n, self.cfg.latent, self.cfg.n_steps), device=device)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Direct encoding: x as a constant input current for T steps → (N, L, T) spikes."""
        return self.encoder(x.unsqueeze(-1).expand(*x.shape, self.cfg.n_steps))

    def posterior_sample(self, x_enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Autoregressive z ~ q (without gradient), then one differentiable pass re-gathering the same
        choices; the nets are causal in time, so one pass over all steps equals the step-wise ones."""
        idx = self._random_choice(len(x_enc), x_enc.device)
        z = torch.zeros_like(x_enc)
        with torch.no_grad():
            for t in range(self.cfg.n_steps - 1):
                cand = self._candidates(self.posterior, torch.cat([x_enc, shift(z)], 1))
                z[..., t] = self._pick(cand, idx)[..., t]
        q = self._candidates(self.posterior, torch.cat([x_enc, shift(z)], 1))
        return self._pick(q, idx), q

    def prior_input(self, z: torch.Tensor) -> torch.Tensor:
        """The prior's (shifted, detached) input; in training each example's z_t (t ≥ 5) is replaced
        with probability ``scheduled_p`` by the prior's own prediction 1[mean_k p_t + noise > ½].
        Draws are per example, so no term couples the examples of a batch."""
        z = z.detach()
        if not (self.training and self.scheduled_p > 0):
            return shift(z)
        replace = torch.rand(len(z), z.shape[-1], device=z.device) < self.scheduled_p
        replace[:, :SCHEDULE_FROM] = False
        z = z.clone()
        with torch.no_grad():
            for t in torch.nonzero(replace.any(0)).flatten().tolist():
                mean = self._candidates(self.prior, shift(z))[..., t].mean(2)
                guess = (mean + 1e-3 * torch.randn_like(mean) > 0.5).to(z.dtype)
                z[..., t] = torch.where(replace[:, t, None], guess, z[..., t])
        return shift(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_input(z)
        h = h.view(len(z), self.cfg.widths[-1], *self.inner, h.shape[-1])
        return torch.tanh(membrane_output(self.decoder(h)))

    # ------------------------------------------------------------------ model API
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample loss: MSE(x̂, x) + mean_{L,T}(PSP(E_k q) − PSP(E_k p))² (FSVAE's MMD loss)."""
        z, q = self.posterior_sample(self.encode(x))
        p = self._candidates(self.prior, self.prior_input(z))
        mmd = ((psp(q.mean(2)) - psp(p.mean(2))) ** 2).flatten(1).mean(1)
        return per_sample_mse(self.decode(z), x) + mmd

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.posterior_sample(self.encode(x))[0])

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Generation: z_t drawn step by step from the prior's candidates."""
        idx = self._random_choice(n, torch.device("cpu"))
        z = torch.zeros(n, self.cfg.latent, self.cfg.n_steps)
        for t in range(self.cfg.n_steps):
            z[..., t] = self._pick(self._candidates(self.prior, shift(z)), idx)[..., t]
        return self.decode(z)
