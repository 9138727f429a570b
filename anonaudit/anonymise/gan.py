"""The anonymisation paper's GANs (§3; reference notes §1): Anon_AG, Anon_AcG and identity transfer (Anon_DFI).

They share the pretrained denoising autoencoder (``autoencoders.NetworkMethod``); its encoder
stays fixed, the decoder and a noise branch C_z are the generator, trained against a
discriminator and the frozen re-identification network of the dataset.

* ``anon_ag``: GAN without subject information; generator loss (Eq. 1)
  ``−log D(X′) · (m · p_ReID(y | X′) + b)`` with m + b = 1.
* ``anon_acg``: as ``anon_ag`` with the subject embedding given to the noise branch (generator only);
  trained on the true subject's embedding, released under a random other subject's per recording
  (issue 17's retrofit: the true one stamps identity onto every window).
* ``anon_dfi``: ``C = (C_x − S̄_y) + C_z(z, y′)`` and loss (Eq. 3) ``−log D(X′) · CE(ReID(X′), y′)``,
  which *raises* the target's probability (the public code lowers it), plus the code's
  identity term: ``decode(C_x − S̄_y + C_z(z, y))`` must reconstruct X.

Eq. 1 writes ``CE(ReID[X](y))``; the paper's own explanation (the term "collapses to a negligible
value" when the ReID's prediction for the true identity approaches zero) and the reference code
both make it the ReID's probability of the true subject, which is what minimising can drive to
zero. That is what is implemented.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from anonaudit.anonymise.autoencoders import NetworkMethod, batches
from anonaudit.anonymise.config import GAN_METHODS
from anonaudit.anonymise.networks import ConvAutoencoder, Discriminator, NoiseBranch
from anonaudit.data.normalise import ZScore
from anonaudit.errors import ParameterError
from anonaudit.progress import ProgressFn


class FrozenReID(nn.Module):
    """The pretrained re-identification network as a differentiable, frozen function of X′.

    X′ lives in the anonymiser's z-scored space; the network was trained on its own z-scores
    of the original units, so both affine maps are applied here (no gradient to its weights,
    dropout off).
    """

    def __init__(self, network: nn.Module, own: ZScore, theirs: ZScore) -> None:
        super().__init__()
        self.network = copy.deepcopy(network).eval()
        for p in self.network.parameters():
            p.requires_grad_(False)
        scale = torch.as_tensor(own.std_ / theirs.std_, dtype=torch.float32)
        shift = torch.as_tensor((own.mean_ - theirs.mean_) / theirs.std_, dtype=torch.float32)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def train(self, mode: bool = True) -> "FrozenReID":
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x * self.scale + self.shift)


class GAN(NetworkMethod):
    """Anon_AG, Anon_AcG and Anon_DFI (knobs: m for AG/AcG, the cycle weight for DFI)."""

    methods = GAN_METHODS

    @property
    def uses_subject(self) -> bool:
        return self.config.method == "anon_dfi"  # DFI removes the source's mean code; AcG releases without it

    @property
    def draws_targets(self) -> bool:
        return self.config.method in ("anon_acg", "anon_dfi")

    def _check_reid(self, reid: Any) -> None:
        """``reid``: the frozen re-identification model (a fitted ``NeuralClassifier`` on the same subjects)."""
        if reid is None:
            raise ParameterError("reid", f"{self.config.method} trains against a frozen re-identification network; "
                                         f"pass one")

    def _condition(self, subject: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor | None:
        method = self.config.method
        return target if method == "anon_dfi" else subject if method == "anon_acg" else None

    def _generate(self, ae: ConvAutoencoder, x: torch.Tensor, subject: torch.Tensor, target: torch.Tensor | None,
                  z: torch.Tensor) -> torch.Tensor:
        """X′ from ``ae``'s frozen encoder's code, shifted by C_z (and by −S̄_y for DFI)."""
        with torch.no_grad():
            code = ae.encode(x)
            if self.config.method == "anon_dfi":
                code = code - self.mean_codes_[subject]
        return ae.decode(code + self.noise_(z, self._condition(subject, target)))

    def _train(self, Z: torch.Tensor, s: torch.Tensor, a: torch.Tensor, n_act: int, reid: Any,
               progress: ProgressFn) -> None:
        """Generator (decoder + noise branch) against a discriminator and the frozen ReID; the encoder stays fixed."""
        reid = FrozenReID(reid.model_, self.scaler_, reid.scaler_)
        cfg, geom, n_subj = self.config, self.geometry_, len(self.subjects_)
        conditioned = cfg.method in ("anon_acg", "anon_dfi")
        self.ae_.encoder.eval()
        for p in self.ae_.encoder.parameters():
            p.requires_grad_(False)
        if cfg.method == "anon_dfi":
            with torch.no_grad():
                codes = torch.cat([self.ae_.encode(Z[i : i + 512]) for i in range(0, len(Z), 512)])
            sums = torch.zeros(n_subj, *codes.shape[1:]).index_add_(0, s, codes)
            counts = torch.bincount(s, minlength=n_subj).clamp(min=1).view(-1, 1, 1, 1)
            self.mean_codes_ = sums / counts
        self.noise_ = NoiseBranch(geom, cfg.latent, n_subj if conditioned else 0, hidden=cfg.hidden)
        disc = Discriminator(geom, n_subj if conditioned else 0)
        g_params = [*self.ae_.decoder.parameters(), *self.noise_.parameters()]
        g_opt = torch.optim.Adam(g_params, lr=cfg.g_lr, betas=(0.5, 0.999))
        d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr, betas=(0.5, 0.999))
        modules = {"ae": self.ae_, "noise": self.noise_, "disc": disc, "g_opt": g_opt, "d_opt": d_opt}
        for epoch in range(self._restore(modules), cfg.epochs):
            self.ae_.decoder.train()
            self.noise_.train()
            disc.train()
            sums: dict[str, float] = {"d_loss": 0.0, "g_loss": 0.0, "reid_p": 0.0}
            for idx in batches(len(Z), cfg.batch_size, self.gen_):
                x, y = Z[idx], s[idx]
                target = torch.randint(n_subj, (len(idx),), generator=self.gen_) if cfg.method == "anon_dfi" else None
                z = torch.randn(len(idx), cfg.latent, generator=self.gen_)
                fake = self._generate(self.ae_, x, y, target, z)
                cond = self._condition(y, target) if conditioned else None
                d_loss = (F.binary_cross_entropy_with_logits(disc(x, y if conditioned else None), torch.ones(len(idx)))
                          + F.binary_cross_entropy_with_logits(disc(fake.detach(), cond), torch.zeros(len(idx))))
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
                gan = F.softplus(-disc(fake, cond))  # −log D(X′), the non-saturating GAN term
                logits = reid(fake)
                if cfg.method == "anon_dfi":
                    g_loss = (gan * F.cross_entropy(logits, target, reduction="none")).mean()
                    with torch.no_grad():
                        own = self.ae_.encode(x) - self.mean_codes_[y]
                    g_loss = g_loss + cfg.dfi_cycle_weight * F.mse_loss(self.ae_.decode(own + self.noise_(z, y)), x)
                    p = torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
                else:
                    p = torch.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
                    g_loss = (gan * (cfg.m * p + cfg.b)).mean()
                if cfg.rec_weight > 0:
                    g_loss = g_loss + cfg.rec_weight * F.mse_loss(fake, x)
                g_opt.zero_grad(set_to_none=True)
                g_loss.backward()
                g_opt.step()
                for k, v in (("d_loss", d_loss), ("g_loss", g_loss), ("reid_p", p.mean())):
                    sums[k] += float(v.detach()) * len(idx)
            record = {"epoch": epoch + 1, **{k: v / len(Z) for k, v in sums.items()}}
            self.history_.main.append(record)
            self._write_checkpoint(epoch + 1, modules)
            label = "target" if cfg.method == "anon_dfi" else "true subject"
            progress((epoch + 1) / cfg.epochs, f"GAN epoch {epoch + 1}: ReID p({label}) {record['reid_p']:.3f}")
        self.ae_.eval()
        self.noise_.eval()

    def _codes(self, subject: np.ndarray | None, target: np.ndarray | None,
               n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        method = self.config.method
        if method == "anon_dfi" and subject is None:
            raise ParameterError("subject", f"{method} needs the subject of every window")
        if self.draws_targets and target is None:
            raise ParameterError("target", f"{method} releases every window under a target subject's code "
                                           f"(a random other subject per recording); give one per window")
        return super()._codes(subject, target, n)

    def _forward(self, x: torch.Tensor, subject: torch.Tensor, target: torch.Tensor | None,
                 gen: torch.Generator) -> torch.Tensor:
        """Fresh noise z per window, drawn from the transform's generator. AcG's embedding is the target's, never
        the true subject's: conditioned on the truth, every window carries its owner's stamp (SisFall
        re-identification 0.996, above the raw data's 0.941)."""
        z = torch.randn(len(x), self.config.latent, generator=gen)
        return self._generate(self.release_ae_, x, target if self.config.method == "anon_acg" else subject, target, z)

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state["modules"]["noise_"] = self.noise_.state_dict()
        state["mean_codes"] = getattr(self, "mean_codes_", None)
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        conditioned = self.config.method in ("anon_acg", "anon_dfi")
        self.noise_ = NoiseBranch(self.geometry_, self.config.latent, len(self.subjects_) if conditioned else 0,
                                  hidden=self.config.hidden)
        self.noise_.load_state_dict(state["modules"]["noise_"])
        self.noise_.eval()
        if state["mean_codes"] is not None:
            self.mean_codes_ = state["mean_codes"]
