"""One DP-VAE experiment: data → audit split → (DP-)training → utility, attacks, membership audit.

Shared by the ``dp_train`` and ``dp_sweep`` jobs and the benchmark. ``run_task`` is a module-level
function of keyword arguments so that the executor (``anonaudit.compute``) can fan it out; every
task rebuilds the same seeded split, so nothing large travels between processes.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from anonaudit.errors import ParameterError
from anonaudit.private import data as pdata
from anonaudit.private import dp, evaluation
from anonaudit.private.layers import InputSpec
from anonaudit.private.vae_ann import ANNVAE, VAEConfig
from anonaudit.private.vae_spiking import SpikingVAE

MODELS = ("ann", "spiking")


@dataclass
class ExperimentConfig:
    """Everything that defines one trained model (the job parameters minus bookkeeping)."""

    data: str = "digits"
    path: str | None = None
    model: str = "ann"
    epsilon: float | None = 10.0
    delta: float | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0
    subject_level: bool = False
    epochs: int = 10
    batch_size: int = 250
    lr: float = 1e-3
    n_train: int | None = None
    image_size: int | None = None
    widths: list[int] | None = None
    latent: int | None = None
    n_steps: int = 16
    k: int = 20
    scheduled: bool = True  # spiking: FSVAE's scheduled sampling of the prior
    kld_weight: float = 0.0025
    window_s: float = 2.56
    stride_s: float = 1.28
    n_eval: int = 500
    attacks: bool = True
    attack_eps: float = 0.3
    attack_iters: int = 50
    n_attack: int = 100
    mia_draws: int = 4
    reference_epochs: int = 10  # training epochs of the AID autoencoder
    reproducible_noise: bool = False  # DP noise from the job seed (testing only: a known seed voids DP)

    def check(self) -> None:
        if self.model not in MODELS:
            raise ParameterError("model", f"must be one of {MODELS}, got {self.model!r}")
        for name in ("epochs", "batch_size", "n_steps", "k", "n_eval", "mia_draws", "reference_epochs"):
            if getattr(self, name) < 1:
                raise ParameterError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.epsilon is not None and self.noise_multiplier is not None:
            raise ParameterError("noise_multiplier", "give a target epsilon or a noise multiplier, not both")
        dp.check_budget(self.epsilon, self.delta, None, self.noise_multiplier)  # δ < 1/N once N is known
        if self.n_train is not None and self.n_train < 2:
            raise ParameterError("n_train", f"must be >= 2, got {self.n_train}")
        if self.widths is not None and (not self.widths or min(self.widths) < 1):
            raise ParameterError("widths", f"must be positive channel counts, got {self.widths}")

    def vae_config(self, size: tuple[int, ...]) -> VAEConfig:
        return VAEConfig(widths=tuple(self.widths or default_widths(size)), latent=self.latent or (128 if min(size) >= 28 else 32),
                         kld_weight=self.kld_weight, n_steps=self.n_steps, k=self.k,
                         scheduled=self.scheduled)

    def dp_config(self, seed: int) -> dp.DPConfig:
        return dp.DPConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, epsilon=self.epsilon,
                           delta=self.delta, noise_multiplier=self.noise_multiplier,
                           max_grad_norm=self.max_grad_norm, seed=seed,
                           reproducible_noise=self.reproducible_noise)


def default_widths(size: tuple[int, ...]) -> tuple[int, ...]:
    """FSVAE's four stages (32 → 2) for MNIST-sized inputs, two for small digits."""
    return (32, 64, 128, 256) if min(size) >= 28 else (32, 64)


def build_model(model: str, spec: InputSpec, cfg: VAEConfig) -> nn.Module:
    return ANNVAE(spec, cfg) if model == "ann" else SpikingVAE(spec, cfg)


def prepare(cfg: ExperimentConfig, seed: int) -> tuple[pdata.AuditSplit, VAEConfig, InputSpec]:
    """Load, fit the input size to the encoder, split; raises on bad sizes before anything trains."""
    raw = pdata.load(cfg.data, cfg.path, cfg.window_s, cfg.stride_s)
    vae = cfg.vae_config(tuple(raw.X.shape[2:]))
    data = pdata.fit_size(raw, 2 ** len(vae.widths), cfg.image_size)
    spec = InputSpec(data.X.shape[1], tuple(data.X.shape[2:]))
    spec.check_stages(len(vae.widths))
    if cfg.subject_level and data.kind != "sensor":
        raise ParameterError("subject_level", f"{cfg.data} has no subjects; subject-level DP needs a sensor dataset")
    return pdata.audit_split(data, cfg.n_train, seed), vae, spec


def preflight(cfg: ExperimentConfig, seed: int) -> pdata.AuditSplit:
    """Every check that can fail on user input — sizes, model layers, (ε, δ) against N — before training."""
    cfg.check()
    split, vae, spec = prepare(cfg, seed)
    model = build_model(cfg.model, spec, vae)
    spec.check_input(split.members.X)
    n_units = len(np.unique(split.members.unit)) if cfg.subject_level else len(split.members)
    if cfg.epsilon is not None or cfg.noise_multiplier is not None:
        dp.check_model(model)
        dp.check_budget(cfg.epsilon, cfg.delta, n_units, cfg.noise_multiplier)
    return split


def state_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def fit_reference(cfg: ExperimentConfig, seed: int) -> evaluation.Reference:
    """The utility classifier and AID autoencoder for ``cfg``'s data (trained on the population split)."""
    split, vae, _ = prepare(cfg, seed)
    return evaluation.fit_reference(split.population, vae.widths, seed, cfg.reference_epochs)


def run_task(cfg: dict[str, Any], seed: int, role: str = "target",
             reference: evaluation.Reference | None = None) -> dict[str, Any]:
    """Train one model and audit it.

    ``role="target"``: (DP-)train on the members, then utility, attacks and audit losses.
    ``role="shadow"``: the calibrated attack's reference — same architecture, no DP, trained on the
    population split (disjoint from members and holdout); only its audit losses are returned.
    """
    c = ExperimentConfig(**cfg)
    c.check()
    split, vae, spec = prepare(c, seed)
    model = build_model(c.model, spec, vae)
    train_cfg = c.dp_config(seed)
    part = split.members
    if role == "shadow":
        train_cfg.epsilon = train_cfg.noise_multiplier = None
        part = split.population
    started = time.perf_counter()
    history = dp.train(model, part.X, train_cfg, units=part.unit if (c.subject_level and role == "target") else None)
    train_s = time.perf_counter() - started
    audit_n = min(len(split.members), len(split.holdout), c.n_eval)
    losses = {"members": evaluation.example_losses(model, split.members.X[:audit_n], c.mia_draws, seed),
              "holdout": evaluation.example_losses(model, split.holdout.X[:audit_n], c.mia_draws, seed)}
    out: dict[str, Any] = {"role": role, "losses": losses, "epoch_s": float(np.mean(history.epoch_seconds)),
                           "train_s": train_s, "history": history.losses, "privacy": history.privacy.to_dict()}
    if role == "shadow":
        return out
    row: dict[str, Any] = {"dataset": c.data, "model": c.model, "subject_level": c.subject_level,
                           "epsilon": history.privacy.epsilon, "epsilon_prv": history.privacy.epsilon_prv,
                           "target_epsilon": c.epsilon, "delta": history.privacy.delta,
                           "noise_multiplier": history.privacy.noise_multiplier,
                           "max_grad_norm": history.privacy.max_grad_norm, "epoch_s": out["epoch_s"],
                           "n_train": len(part), "privacy_units": history.privacy.n_units}
    if part.kind == "sensor" and not c.subject_level and history.privacy.noise_multiplier is not None:
        k = int(np.bincount(part.unit).max())  # the most windows one subject contributes
        row |= {f"subject_{key}": v for key, v in dp.group_epsilon(row["epsilon"], row["delta"], k).items()}
    if reference is not None:
        metrics, gen = evaluation.utility(model, reference, split.holdout, min(c.n_eval, len(split.holdout)), seed)
        row |= metrics
        out["samples"] = gen[:16]
    if c.attacks:
        row |= evaluation.attack_report(model, split.holdout.X[:c.n_attack], c.attack_eps, c.attack_iters, seed=seed)
    row |= evaluation.membership_audit(losses["members"], losses["holdout"])
    out["reconstructions"] = np.stack([split.holdout.X[:8], evaluation.reconstructions(model, split.holdout.X[:8], seed)])
    out["row"] = row
    out["state"] = state_bytes(model)
    return out


def calibrate(row: dict[str, Any], target_losses: dict[str, np.ndarray], shadow_losses: dict[str, np.ndarray]) -> dict[str, Any]:
    """Add the calibrated membership attack to a target's row, given the shadow model's losses."""
    audit = evaluation.membership_audit(target_losses["members"], target_losses["holdout"],
                                        shadow_losses["members"], shadow_losses["holdout"])
    return row | audit
