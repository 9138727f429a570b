"""Parameter-free leaky integrate-and-fire neurons with a surrogate gradient (FSVAE, §4.1 of the notes).

Parameter-free on purpose: Opacus computes per-sample gradients layer by layer and a neuron without
parameters or buffers needs no grad sampler, so the same module can be reused at every time step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

TAU = 0.25  # leak factor of the membrane potential
V_TH = 0.2  # firing threshold
SURROGATE_WIDTH = 0.5  # rectangular surrogate: dO/du = 1 on |u - V_th| < 0.5


class SpikeFn(torch.autograd.Function):
    """Heaviside step forward, rectangular surrogate backward.

    The surrogate window is centred on the threshold (u − V_th), as the spike is; the FSVAE code's
    window is centred on the same shifted input, so this is the reference behaviour. New-style
    ``setup_context`` so that functorch (Opacus' fallback sampler) can trace it.
    """

    @staticmethod
    def forward(v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return (v > 0).to(v.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return grad * (v.abs() < SURROGATE_WIDTH).to(grad.dtype) / (2 * SURROGATE_WIDTH)


def spike(v: torch.Tensor) -> torch.Tensor:
    return SpikeFn.apply(v)  # type: ignore[no-any-return]


class LIF(nn.Module):
    """LIF over the last (time) axis: u_t = τ·u_{t−1}·(1 − o_{t−1}) + I_t, o_t = 1[u_t > V_th], hard reset."""

    def __init__(self, tau: float = TAU, v_th: float = V_TH) -> None:
        super().__init__()
        self.tau, self.v_th = tau, v_th

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        steps = current.unbind(-1)  # one backward op for all steps (indexing would fill a zero tensor per step)
        u = torch.zeros_like(steps[0])
        o = torch.zeros_like(u)
        out = []
        for i_t in steps:  # the recurrence is inherently sequential in time
            u = self.tau * u * (1 - o) + i_t
            o = spike(u - self.v_th)
            out.append(o)
        return torch.stack(out, dim=-1)


def psp(x: torch.Tensor, tau_s: float = 2.0) -> torch.Tensor:
    """Post-synaptic potential filter over the last axis: syn_t = syn_{t−1} + (x_t − syn_{t−1})/τ_s.

    Linear, so applied as one lower-triangular matrix product instead of a loop.
    """
    T = x.shape[-1]
    t = torch.arange(T, dtype=x.dtype, device=x.device)
    lag = t[:, None] - t[None, :]
    kernel = torch.where(lag >= 0, (1 - 1 / tau_s) ** lag.clamp(min=0) / tau_s, torch.zeros((), dtype=x.dtype))
    return x @ kernel.T


def membrane_output(x: torch.Tensor, decay: float = 0.8) -> torch.Tensor:
    """Final membrane potential of a non-firing neuron: Σ_t x_t · decay^{T−1−t} (FSVAE output layer)."""
    T = x.shape[-1]
    w = decay ** torch.arange(T - 1, -1, -1, dtype=x.dtype, device=x.device)
    return (x * w).sum(-1)
