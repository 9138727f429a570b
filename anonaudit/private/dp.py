"""DP-SGD for the VAEs with Opacus, and honest privacy accounting.

One training loop serves window-level (example-level) and subject-level privacy: each *privacy
unit* (an example, or a subject with all its windows) is Poisson-sampled with rate q; Opacus'
``GradSampleModule`` gives per-example gradients, which are averaged per unit, and Opacus'
``DPOptimizer`` clips every unit's gradient to ``max_grad_norm``, adds N(0, σ²C²) and averages.
For window-level DP the units are the examples themselves — exactly Opacus' ``make_private``
(tests check the accounting against ``PrivacyEngine``). The ε reported is always the RDP
accountant's ε for the noise actually used, cross-checked with the PRV accountant; a noise
multiplier is never "accounted as if" it were another (the DP-SVAE paper's budget multiplier).
"""

from __future__ import annotations

import functools
import math
import secrets
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.grad_sample import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator
from torch import nn

from anonaudit.errors import ParameterError
from anonaudit.private import grad_samples
from anonaudit.progress import ProgressFn, null_progress


@dataclass
class DPConfig:
    """``epsilon=None`` and ``noise_multiplier=None`` train without DP (the ε = ∞ baseline)."""

    epochs: int = 10
    batch_size: int = 250  # expected units per step (Poisson sampling: q = batch_size / units)
    lr: float = 1e-3
    weight_decay: float = 1e-3
    epsilon: float | None = None
    delta: float | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0
    max_windows_per_unit: int = 32  # subject-level: windows of a sampled subject used per step
    seed: int = 0
    # DP noise and Poisson sampling from the seed: reproducible, but whoever knows the seed can subtract
    # the noise. Off by default: then they come from the OS CSPRNG (the seed still fixes initialisation).
    reproducible_noise: bool = False

    @property
    def private(self) -> bool:
        return self.epsilon is not None or self.noise_multiplier is not None


@dataclass
class Privacy:
    """What a training run spent: the accountant's ε for the noise actually used."""

    unit: str
    n_units: int
    sample_rate: float
    steps: int
    noise_multiplier: float | None
    delta: float | None
    epsilon: float  # RDP accountant; inf without DP
    epsilon_prv: float | None  # PRV accountant cross-check (None when it cannot evaluate)
    max_grad_norm: float | None
    noise_from_seed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class TrainHistory:
    losses: list[float]
    epoch_seconds: list[float]
    privacy: Privacy


# ---------------------------------------------------------------------------- accounting
def check_budget(epsilon: float | None, delta: float | None, n_units: int | None,
                 noise_multiplier: float | None = None) -> float | None:
    """Validate (ε, δ) before training; returns δ (default 1/(10·N)) for private runs.

    ``n_units=None`` checks what can be checked before the data are known (signs, δ < 1)."""
    if epsilon is not None and not (epsilon > 0 and math.isfinite(epsilon)):
        raise ParameterError("epsilon", f"must be a positive finite number (leave it out to train without DP), got {epsilon}")
    if noise_multiplier is not None and epsilon is not None:
        raise ParameterError("noise_multiplier", "give a target epsilon or a noise multiplier, not both")
    if noise_multiplier is not None and not noise_multiplier > 0:
        raise ParameterError("noise_multiplier", f"must be positive, got {noise_multiplier}")
    if delta is not None and not 0 < delta < 1:
        raise ParameterError("delta", f"must lie in (0, 1/N), got {delta}")
    if epsilon is None and noise_multiplier is None or n_units is None:
        return delta
    if n_units < 2:
        raise ParameterError("data", f"DP training needs at least 2 privacy units, got {n_units}")
    if delta is None:
        return 1.0 / (10 * n_units)
    if not 0 < delta < 1.0 / n_units:
        raise ParameterError("delta", f"must lie in (0, 1/N) = (0, {1.0 / n_units:.3g}) for N = {n_units} privacy units "
                             f"(δ ≥ 1/N allows releasing a whole record), got {delta}")
    return delta


@functools.lru_cache(maxsize=64)
def noise_for_epsilon(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """Smallest noise multiplier whose RDP ε after ``steps`` Poisson-sampled steps is ≤ ε (Opacus).

    Cached: the search costs seconds at large sampling rates, and a sweep asks the same question per model.
    The search's first guesses are tiny noise levels whose best RDP order is Opacus' largest; its
    warning about them says nothing about the σ returned, so it is silenced here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha", category=UserWarning)
        return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                          steps=steps, accountant="rdp", epsilon_tolerance=0.005))


def epsilon_for_noise(noise_multiplier: float, delta: float, sample_rate: float, steps: int,
                      accountant: str = "rdp") -> float:
    """ε spent by ``steps`` steps of the subsampled Gaussian mechanism (RDP or PRV accountant)."""
    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    acc.history = [(noise_multiplier, sample_rate, steps)]
    return float(acc.get_epsilon(delta))


def prv_cross_check(noise_multiplier: float, delta: float, sample_rate: float, steps: int) -> float | None:
    """The PRV accountant's ε, or None where its numerical discretisation does not apply (tiny noise)."""
    try:
        eps = epsilon_for_noise(noise_multiplier, delta, sample_rate, steps, accountant="prv")
    except (ValueError, RuntimeError, OverflowError, MemoryError):
        return None
    # at tiny noise its grid overflows and returns log(float max) ≈ 709.8 for any larger ε: no answer either
    return eps if math.isfinite(eps) and eps < 700 else None


def group_epsilon(epsilon: float, delta: float, k: int) -> dict[str, float]:
    """Group privacy for k records of one subject under record-level (ε, δ)-DP.

    The standard bound (Dwork & Roth, Thm 2.2 generalised): (kε, k·e^{(k−1)ε}·δ). It is loose and
    quickly vacuous (δ_group ≥ 1) — which is the honest message: window-level DP protects windows,
    not people with many windows; use subject-level DP-SGD for that.
    """
    log_delta = math.log(k) + (k - 1) * epsilon + math.log(delta)
    # a δ of 1 or more promises nothing: reported as 1 (finite, so it can be stored and plotted)
    return {"k": float(k), "epsilon_group": k * epsilon, "delta_group": math.exp(min(log_delta, 0.0)),
            "vacuous": float(log_delta >= 0)}


# ---------------------------------------------------------------------------- validation
def check_model(model: nn.Module) -> None:
    """Reject layers DP-SGD cannot handle (batch norm, …) with Opacus' validator, before training."""
    errors = ModuleValidator.validate(model, strict=False)
    coupled = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._NormBase)
               and not isinstance(m, nn.modules.instancenorm._InstanceNorm)]
    if errors or coupled:
        detail = "; ".join([str(e) for e in errors] + [f"{n}: batch normalisation couples examples" for n in coupled])
        raise ParameterError("model", f"not trainable with DP-SGD (use GroupNorm, no buffers in trainable layers): {detail}")


# ---------------------------------------------------------------------------- training
def _unit_index(units: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unit labels and, per unit, the indices of its examples."""
    labels, inverse = np.unique(units, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(labels)))[:-1]
    return labels, np.split(order, bounds)


def _per_unit(grad_sample: torch.Tensor, owner: torch.Tensor, n_units: int) -> torch.Tensor:
    """Average per-example gradients over each unit's examples (a subject's mean loss gradient)."""
    summed = torch.zeros((n_units, *grad_sample.shape[1:]), dtype=grad_sample.dtype)
    summed.index_add_(0, owner, grad_sample)
    counts = torch.bincount(owner, minlength=n_units).to(grad_sample.dtype)
    return summed / counts.view(-1, *([1] * (grad_sample.dim() - 1)))


def train(model: nn.Module, X: np.ndarray, cfg: DPConfig, units: np.ndarray | None = None,
          progress: ProgressFn = null_progress) -> TrainHistory:
    """Train ``model`` (whose ``forward`` returns per-example losses) on ``X`` with or without DP-SGD.

    ``units`` names each example's privacy unit (its subject); ``None`` means every example is its
    own unit (window-level / image-level DP). All checks happen before the first step.
    """
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.max_grad_norm <= 0:
        raise ParameterError("train", f"epochs, batch_size, lr and max_grad_norm must be positive: {cfg}")
    spec = getattr(model, "spec", None)
    if spec is not None:
        spec.check_input(X)
    subject_level = units is not None
    members = _unit_index(np.asarray(units))[1] if subject_level else None
    n_units = len(members) if members is not None else len(X)
    if n_units == 0:
        raise ParameterError("data", "no training examples")
    delta = check_budget(cfg.epsilon, cfg.delta, n_units, cfg.noise_multiplier)
    q = min(1.0, cfg.batch_size / n_units)
    steps_per_epoch = max(1, round(1 / q))
    steps = cfg.epochs * steps_per_epoch
    sigma: float | None = None
    if cfg.private:
        check_model(model)
        sigma = cfg.noise_multiplier if cfg.noise_multiplier is not None else noise_for_epsilon(cfg.epsilon, delta, q, steps)  # type: ignore[arg-type]
    torch.manual_seed(cfg.seed)
    private_seed = cfg.seed if cfg.reproducible_noise or sigma is None else secrets.randbits(63)
    gen = torch.Generator().manual_seed(private_seed)
    Xt = torch.as_tensor(X, dtype=next(model.parameters()).dtype)
    base = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    net, opt = (model, base) if sigma is None else make_private(model, base, sigma, cfg.max_grad_norm, q * n_units, gen)
    accountant = RDPAccountant()
    losses, seconds = [], []
    model.train()
    for epoch in range(cfg.epochs):
        if hasattr(model, "on_epoch"):  # per-epoch schedules (the spiking VAE's scheduled sampling)
            model.on_epoch(epoch, cfg.epochs)
        started, total, seen = time.perf_counter(), 0.0, 0
        order = torch.randperm(n_units, generator=gen)
        for i in range(steps_per_epoch):
            if sigma is None:  # non-private baseline: shuffled batches of units
                chosen = order[i * cfg.batch_size:(i + 1) * cfg.batch_size].numpy()
            else:  # Poisson sampling: the amplification the accountant assumes
                chosen = torch.nonzero(torch.rand(n_units, generator=gen) < q).flatten().numpy()
            idx, owner = (_examples(members, chosen, cfg.max_windows_per_unit, gen) if members is not None
                          else (chosen, np.arange(len(chosen))))
            loss = step(net, opt, Xt[torch.as_tensor(idx)], owner, len(chosen), subject_level, sigma is not None)
            if sigma is not None:
                accountant.step(noise_multiplier=sigma, sample_rate=q)
            total, seen = total + loss * len(idx), seen + len(idx)
            progress((epoch + (i + 1) / steps_per_epoch) / cfg.epochs, f"epoch {epoch + 1}/{cfg.epochs}")
        losses.append(total / max(seen, 1))
        seconds.append(time.perf_counter() - started)
    if isinstance(net, GradSampleModule):
        net.disable_hooks()
    model.eval()
    privacy = Privacy(unit="subject" if subject_level else "example", n_units=n_units, sample_rate=q, steps=steps,
                      noise_multiplier=sigma, delta=delta, max_grad_norm=cfg.max_grad_norm if sigma else None,
                      epsilon=float(accountant.get_epsilon(delta)) if sigma is not None else math.inf,
                      epsilon_prv=prv_cross_check(sigma, delta, q, steps) if sigma is not None else None,
                      noise_from_seed=sigma is not None and cfg.reproducible_noise)
    return TrainHistory(losses, seconds, privacy)


def _examples(members: list[np.ndarray], chosen: np.ndarray, cap: int,
              gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Example indices of the chosen units (at most ``cap`` random ones each) and their unit's position."""
    picks = []
    for m in (members[u] for u in chosen):
        if len(m) > cap:
            m = m[torch.randperm(len(m), generator=gen)[:cap].numpy()]
        picks.append(m)
    if not picks:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    owner = np.repeat(np.arange(len(picks)), [len(p) for p in picks])
    return np.concatenate(picks), owner


def make_private(model: nn.Module, optimizer: torch.optim.Optimizer, noise_multiplier: float, max_grad_norm: float,
                 expected_units: float, generator: torch.Generator | None = None) -> tuple[GradSampleModule, DPOptimizer]:
    """Opacus' per-sample-gradient wrapper and its clipping, noising, averaging optimiser."""
    grad_samples.install()
    net = GradSampleModule(model, loss_reduction="mean")
    opt = DPOptimizer(optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                      expected_batch_size=max(1, round(expected_units)), loss_reduction="mean", generator=generator)
    return net, opt


def step(net: nn.Module, opt: torch.optim.Optimizer, xb: torch.Tensor, owner: np.ndarray, n_units: int,
         subject_level: bool, private: bool) -> float:
    """One optimiser step on batch ``xb``; ``owner[i]`` is the position of example i's unit among the
    ``n_units`` sampled units (subject-level: per-unit mean gradient, clipped as one)."""
    opt.zero_grad(set_to_none=True)
    params = [p for p in net.parameters() if p.requires_grad]
    if len(xb) == 0:  # an empty Poisson batch still takes a (pure-noise) step, as the accountant assumes
        if private:
            for p in params:
                p.grad_sample = torch.zeros((1, *p.shape), dtype=p.dtype)
            opt.step()
        return 0.0
    loss = net(xb).mean()
    with warnings.catch_warnings():  # Opacus' hooks fire on module outputs; inputs never need gradients here
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        loss.backward()
    if private and subject_level:
        owner_t = torch.as_tensor(owner)
        for p in params:
            p.grad_sample = _per_unit(p.grad_sample, owner_t, n_units)
    opt.step()
    return float(loss.detach())
