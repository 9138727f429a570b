"""The anonymisers: GAN (Anon_AG, Anon_AcG), identity transfer (Anon_DFI) and baselines.

One estimator in scikit-learn style: parameters in :class:`AnonymiserConfig`, ``fit`` on
training windows (with the frozen re-identification network the GAN variants play against),
``transform`` on any windows of the same shape. ``save``/``load`` keep everything needed to
anonymise later (weights, scaler, subject vocabulary, mean codes) in one file, which is
private: it names the training subjects.

Methods (anonymisation paper, §3; reference notes §1):

* ``none``: identity (the real-data row of every table).
* ``ae``: reconstruction by the pretrained denoising autoencoder only.
* ``noise``: additive Gaussian noise of ``noise_sigma`` channel standard deviations.
* ``aae``: an anonymising autoencoder in the style of Malekzadeh et al. (paper's related work):
  reconstruction + activity kept by a jointly trained activity head, identity removed by
  pushing a continually retrained identity adversary towards the uniform distribution.
* ``anon_ag``: GAN without subject information; generator loss (Eq. 1)
  ``−log D(X′) · (m · p_ReID(y | X′) + b)`` with m + b = 1.
* ``anon_acg``: as ``anon_ag`` with the subject embedding given to the noise branch (generator only).
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
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from anonaudit.anonymise.config import GAN_METHODS, NEEDS_AE, NETWORK_METHODS
from anonaudit.anonymise.method import FitHistory, Method
from anonaudit.anonymise.networks import ConvAutoencoder, Discriminator, Geometry, NoiseBranch, SmallConvNet
from anonaudit.data.normalise import ZScore, scaler_from_dict
from anonaudit.errors import DataError, ParameterError
from anonaudit.files import atomic_write
from anonaudit.progress import ProgressFn, null_progress, scaled

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


def _batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=gen)
    return [order[i : i + size] for i in range(0, n, size)]


class Anonymiser(Method):
    """The network methods and their baselines: fit on windows of known subjects, transform windows."""

    methods = NETWORK_METHODS

    @property
    def uses_subject(self) -> bool:
        return self.config.method in ("anon_acg", "anon_dfi")

    # ------------------------------------------------------------------ fit
    def fit(self, X: np.ndarray, subject: np.ndarray, activity: np.ndarray, *, subjects: Sequence[str],
            channels: Sequence[str], reid: Any = None, n_activities: int | None = None,
            checkpoint: str | Path | None = None, progress: ProgressFn = null_progress) -> "Anonymiser":
        """Train on windows ``X`` (n, T, C) with subject and activity codes.

        ``reid`` is the frozen re-identification model (a fitted ``NeuralClassifier``), needed
        by the GAN methods; it must have been trained on the same subject vocabulary. With
        ``checkpoint`` the state is saved after pretraining and after every epoch, and an
        existing checkpoint is resumed from (an interrupted job picks up where it stopped).
        """
        cfg = self.config
        if X.ndim != 3 or len(X) < 2:
            raise DataError(f"need at least two windows shaped (n, time, channels), got {X.shape}")
        if cfg.method in GAN_METHODS and reid is None:
            raise ParameterError("reid", f"{cfg.method} trains against a frozen re-identification network; pass one")
        torch.manual_seed(cfg.seed)
        self.gen_ = torch.Generator().manual_seed(cfg.seed)
        self.channels_, self.subjects_ = list(channels), list(subjects)
        self.geometry_ = Geometry(X.shape[1], X.shape[2])
        self.scaler_ = ZScore().fit(X)
        Z = torch.as_tensor(self.scaler_.transform(X))
        s = torch.as_tensor(subject, dtype=torch.long)
        a = torch.as_tensor(activity, dtype=torch.long)
        self.history_ = FitHistory()
        self.checkpoint_ = Path(checkpoint) if checkpoint else None
        self.resume_ = self._read_checkpoint()
        started = time.perf_counter()
        if cfg.method in NEEDS_AE:
            ae_share = 1.0 if cfg.method == "ae" else 0.35
            if self.resume_ is not None:
                self.ae_ = ConvAutoencoder(self.geometry_)
                self.ae_.load_state_dict(self.resume_["modules"]["ae"])
                self.ae_.eval()
                self.history_ = FitHistory(**self.resume_["history"])
                self.gen_.set_state(self.resume_["generator"])
                progress(ae_share, "resumed from checkpoint")
            else:
                self.ae_ = self._pretrain_autoencoder(Z, scaled(progress, 0.0, ae_share))
                self._write_checkpoint(0, {"ae": self.ae_})
            main = scaled(progress, ae_share, 1.0)
            if cfg.method in GAN_METHODS:
                frozen = FrozenReID(reid.model_, self.scaler_, reid.scaler_)
                self._train_gan(Z, s, frozen, main)
            elif cfg.method == "aae":
                self._train_aae(Z, s, a, n_activities or int(a.max()) + 1, main)
            self.release_ae_ = self.ae_.for_inference()
        self.history_.seconds = time.perf_counter() - started
        progress(1.0, f"{cfg.method} fitted")
        return self

    def _read_checkpoint(self) -> dict[str, Any] | None:
        if self.checkpoint_ is None or not self.checkpoint_.is_file():
            return None
        state: dict[str, Any] = torch.load(self.checkpoint_, weights_only=False)
        if state["config"] != asdict(self.config) or state["shape"] != [self.geometry_.length, self.geometry_.channels]:
            raise DataError("checkpoint was written for other parameters or data; delete it to start afresh",
                            file=self.checkpoint_)
        return state

    def _write_checkpoint(self, epoch: int, modules: dict[str, Any]) -> None:
        """Everything needed to continue after ``epoch`` (modules, optimisers, RNG, history)."""
        if self.checkpoint_ is None:
            return
        state = {"config": asdict(self.config), "shape": [self.geometry_.length, self.geometry_.channels],
                 "epoch": epoch, "modules": {k: m.state_dict() for k, m in modules.items()},
                 "history": asdict(self.history_), "generator": self.gen_.get_state(),
                 "mean_codes": getattr(self, "mean_codes_", None)}
        atomic_write(self.checkpoint_, lambda tmp: torch.save(state, tmp))

    def _restore(self, modules: dict[str, Any]) -> int:
        """Load a resumed main phase into ``modules``; return the first epoch still to run."""
        state = self.resume_
        if state is None or state["epoch"] == 0:
            return 0
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        return int(state["epoch"])

    def _pretrain_autoencoder(self, Z: torch.Tensor, progress: ProgressFn) -> ConvAutoencoder:
        """Denoising MSE pretraining; the weights of the best held-out epoch are kept."""
        cfg = self.config
        ae = ConvAutoencoder(self.geometry_)
        n_val = max(1, len(Z) // 10)
        perm = torch.randperm(len(Z), generator=self.gen_)
        val, train = Z[perm[:n_val]], Z[perm[n_val:]]
        opt = torch.optim.Adam(ae.parameters(), lr=cfg.ae_lr)
        best, best_state, stale = np.inf, None, 0
        for epoch in range(cfg.ae_epochs):
            ae.train()
            total = 0.0
            for idx in _batches(len(train), cfg.batch_size, self.gen_):
                x = train[idx]
                noisy = x + cfg.denoise_sigma * torch.randn(x.shape, generator=self.gen_)
                loss = F.mse_loss(ae(noisy), x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            ae.eval()
            with torch.no_grad():
                val_loss = float(F.mse_loss(ae(val), val))
            self.history_.ae.append({"epoch": epoch + 1, "train_mse": total / len(train), "val_mse": val_loss})
            progress((epoch + 1) / cfg.ae_epochs, f"autoencoder epoch {epoch + 1}: val MSE {val_loss:.4f}")
            if val_loss < best:
                best, best_state, stale = val_loss, copy.deepcopy(ae.state_dict()), 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
        ae.load_state_dict(best_state)
        return ae.eval()

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

    def _train_gan(self, Z: torch.Tensor, s: torch.Tensor, reid: FrozenReID, progress: ProgressFn) -> None:
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
            for idx in _batches(len(Z), cfg.batch_size, self.gen_):
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

    def _train_aae(self, Z: torch.Tensor, s: torch.Tensor, a: torch.Tensor, n_act: int, progress: ProgressFn) -> None:
        cfg, n_subj, C = self.config, len(self.subjects_), Z.shape[2]
        adversary, activity = SmallConvNet(C, n_subj), SmallConvNet(C, n_act)
        ae_opt = torch.optim.Adam([*self.ae_.parameters(), *activity.parameters()], lr=cfg.g_lr)
        adv_opt = torch.optim.Adam(adversary.parameters(), lr=1e-3)
        uniform = torch.full((1, n_subj), 1.0 / n_subj)
        modules = {"ae": self.ae_, "adversary": adversary, "activity": activity, "ae_opt": ae_opt, "adv_opt": adv_opt}
        for epoch in range(self._restore(modules), cfg.epochs):
            self.ae_.train()
            sums = {"rec": 0.0, "adv_acc": 0.0, "act_loss": 0.0}
            for idx in _batches(len(Z), cfg.batch_size, self.gen_):
                x, y, act = Z[idx], s[idx], a[idx]
                out = self.ae_(x)
                adv_logits = adversary(out.detach())
                adv_loss = F.cross_entropy(adv_logits, y)
                adv_opt.zero_grad(set_to_none=True)
                adv_loss.backward()
                adv_opt.step()
                rec = F.mse_loss(out, x)
                act_loss = F.cross_entropy(activity(out), act)
                confusion = F.kl_div(F.log_softmax(adversary(out), 1), uniform.expand(len(idx), -1), reduction="batchmean")
                loss = rec + cfg.aae_activity_weight * act_loss + cfg.aae_identity_weight * confusion
                ae_opt.zero_grad(set_to_none=True)
                loss.backward()
                ae_opt.step()
                sums["rec"] += float(rec.detach()) * len(idx)
                sums["act_loss"] += float(act_loss.detach()) * len(idx)
                sums["adv_acc"] += float((adv_logits.argmax(1) == y).float().sum())
            record = {"epoch": epoch + 1, **{k: v / len(Z) for k, v in sums.items()}}
            self.history_.main.append(record)
            self._write_checkpoint(epoch + 1, modules)
            progress((epoch + 1) / cfg.epochs, f"AAE epoch {epoch + 1}: adversary accuracy {record['adv_acc']:.3f}")
        self.ae_.eval()

    # ------------------------------------------------------------------ transform
    @torch.no_grad()
    def transform(self, X: np.ndarray, subject: np.ndarray | None = None, target: np.ndarray | None = None,
                  seed: int = 0, batch_size: int = 1024, activity: np.ndarray | None = None,
                  recording: np.ndarray | None = None) -> np.ndarray:
        """Anonymised windows in the original units.

        ``subject`` (codes) is needed by ``anon_acg`` and ``anon_dfi``; ``target`` (codes) by
        ``anon_dfi``; ``activity`` and ``recording`` by none of these (each window is anonymised on
        its own). Fresh noise z per window, drawn from ``seed``.
        """
        self.check_input(X)
        method = self.config.method
        gen = torch.Generator().manual_seed(seed)
        if method == "none":
            return np.asarray(X, dtype=np.float32).copy()
        Z = torch.as_tensor(self.scaler_.transform(X))
        if method == "noise":
            out = Z + self.config.noise_sigma * torch.randn(Z.shape, generator=gen)
            return self.scaler_.inverse_transform(out.numpy())
        if method in ("anon_acg", "anon_dfi") and subject is None:
            raise ParameterError("subject", f"{method} needs the subject of every window")
        if method == "anon_dfi" and target is None:
            raise ParameterError("target", "anon_dfi needs a target subject for every window")
        s = torch.as_tensor(subject if subject is not None else np.zeros(len(X)), dtype=torch.long)
        t = torch.as_tensor(target, dtype=torch.long) if target is not None else None
        ae = self.release_ae_
        parts = []
        for i in range(0, len(Z), batch_size):
            x = Z[i : i + batch_size]
            if method in GAN_METHODS:
                z = torch.randn(len(x), self.config.latent, generator=gen)
                parts.append(self._generate(ae, x, s[i : i + batch_size], t[i : i + batch_size] if t is not None else None, z))
            else:
                parts.append(ae(x))
        out = torch.cat(parts) if parts else Z
        return self.scaler_.inverse_transform(out.numpy())

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        modules = {name: getattr(self, name).state_dict() for name in ("ae_", "noise_") if hasattr(self, name)}
        return {"scaler": self.scaler_.to_dict(), "modules": modules, "mean_codes": getattr(self, "mean_codes_", None)}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.scaler_ = scaler_from_dict(state["scaler"])
        if "ae_" in state["modules"]:
            self.ae_ = ConvAutoencoder(self.geometry_)
            self.ae_.load_state_dict(state["modules"]["ae_"])
            self.ae_.eval()
            self.release_ae_ = self.ae_.for_inference()
        if "noise_" in state["modules"]:
            conditioned = self.config.method in ("anon_acg", "anon_dfi")
            self.noise_ = NoiseBranch(self.geometry_, self.config.latent, len(self.subjects_) if conditioned else 0,
                                      hidden=self.config.hidden)
            self.noise_.load_state_dict(state["modules"]["noise_"])
            self.noise_.eval()
        if state["mean_codes"] is not None:
            self.mean_codes_ = state["mean_codes"]
