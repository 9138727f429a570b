"""Autoencoder methods and the training machinery every network method shares.

* ``ae``: reconstruction by the pretrained denoising autoencoder only.
* ``aae``: an anonymising autoencoder in the style of Malekzadeh et al. (the GAN paper's related
  work): reconstruction + activity kept by a jointly trained activity head, identity removed by
  pushing a continually retrained identity adversary towards the uniform distribution.

:class:`NetworkMethod` holds what they and the GANs (``gan.py``) share: z-scoring, the denoising
autoencoder's pretraining (the weights of the best held-out epoch), checkpoints after pretraining
and every epoch (an interrupted job resumes where it stopped), batched inference and the saved state.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from anonaudit.anonymise.method import FitHistory, Method
from anonaudit.anonymise.networks import ConvAutoencoder, SmallConvNet
from anonaudit.data.normalise import ZScore, scaler_from_dict
from anonaudit.errors import DataError
from anonaudit.files import atomic_write
from anonaudit.progress import ProgressFn, null_progress, scaled


def batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch of index batches, from the method's own generator (reproducible from its seed)."""
    order = torch.randperm(n, generator=gen)
    return [order[i : i + size] for i in range(0, n, size)]


class NetworkMethod(Method):
    """A method built on the pretrained denoising autoencoder; subclasses add a main training phase."""

    pretrain_share: ClassVar[float] = 0.35  # share of the fit's progress spent pretraining the autoencoder

    # ------------------------------------------------------------------ fit
    def fit(self, X: np.ndarray, subject: np.ndarray, activity: np.ndarray, *, subjects: Sequence[str],
            channels: Sequence[str], reid: Any = None, n_activities: int | None = None,
            checkpoint: str | Path | None = None, progress: ProgressFn = null_progress) -> "NetworkMethod":
        """Pretrain the autoencoder on windows ``X`` (n, T, C), then run the method's own phase.

        With ``checkpoint`` the state is saved after pretraining and after every epoch, and an
        existing checkpoint is resumed from (an interrupted job picks up where it stopped).
        """
        cfg = self.config
        self._vocabulary(X, subjects, channels)
        self._check_reid(reid)
        torch.manual_seed(cfg.seed)
        self.gen_ = torch.Generator().manual_seed(cfg.seed)
        self.scaler_ = ZScore().fit(X)
        Z = torch.as_tensor(self.scaler_.transform(X))
        s = torch.as_tensor(subject, dtype=torch.long)
        a = torch.as_tensor(activity, dtype=torch.long)
        self.history_ = FitHistory()
        self.checkpoint_ = Path(checkpoint) if checkpoint else None
        self.resume_ = self._read_checkpoint()
        started = time.perf_counter()
        if self.resume_ is not None:
            self.ae_ = ConvAutoencoder(self.geometry_)
            self.ae_.load_state_dict(self.resume_["modules"]["ae"])
            self.ae_.eval()
            self.history_ = FitHistory(**self.resume_["history"])
            self.gen_.set_state(self.resume_["generator"])
            progress(self.pretrain_share, "resumed from checkpoint")
        else:
            self.ae_ = self._pretrain_autoencoder(Z, scaled(progress, 0.0, self.pretrain_share))
            self._write_checkpoint(0, {"ae": self.ae_})
        self._train(Z, s, a, n_activities or int(a.max()) + 1, reid, scaled(progress, self.pretrain_share, 1.0))
        self.release_ae_ = self.ae_.for_inference()
        self.history_.seconds = time.perf_counter() - started
        progress(1.0, f"{cfg.method} fitted")
        return self

    def _check_reid(self, reid: Any) -> None:
        """Methods that train against the frozen re-identification network refuse to start without it."""

    def _train(self, Z: torch.Tensor, s: torch.Tensor, a: torch.Tensor, n_act: int, reid: Any,
               progress: ProgressFn) -> None:
        """The method's main phase after pretraining (none for the plain autoencoder)."""

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
            for idx in batches(len(train), cfg.batch_size, self.gen_):
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

    # ------------------------------------------------------------------ transform
    @torch.no_grad()
    def transform(self, X: np.ndarray, subject: np.ndarray | None = None, target: np.ndarray | None = None,
                  seed: int = 0, batch_size: int = 1024, activity: np.ndarray | None = None,
                  recording: np.ndarray | None = None) -> np.ndarray:
        """Anonymised windows in the original units, in batches (``activity`` and ``recording`` are unused: each
        window is anonymised on its own; the GANs need ``subject`` and, for DFI, ``target`` codes)."""
        self.check_input(X)
        gen = torch.Generator().manual_seed(seed)
        Z = torch.as_tensor(self.scaler_.transform(X))
        s, t = self._codes(subject, target, len(X))
        parts = [self._forward(Z[i : i + batch_size], s[i : i + batch_size],
                               t[i : i + batch_size] if t is not None else None, gen)
                 for i in range(0, len(Z), batch_size)]
        out = torch.cat(parts) if parts else Z
        return self.scaler_.inverse_transform(out.numpy())

    def _codes(self, subject: np.ndarray | None, target: np.ndarray | None,
               n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Subject and target codes as tensors (methods that need them check they were given)."""
        s = torch.as_tensor(subject if subject is not None else np.zeros(n), dtype=torch.long)
        return s, torch.as_tensor(target, dtype=torch.long) if target is not None else None

    def _forward(self, x: torch.Tensor, subject: torch.Tensor, target: torch.Tensor | None,
                 gen: torch.Generator) -> torch.Tensor:
        return self.release_ae_(x)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        return {"scaler": self.scaler_.to_dict(), "modules": {"ae_": self.ae_.state_dict()}, "mean_codes": None}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.scaler_ = scaler_from_dict(state["scaler"])
        self.ae_ = ConvAutoencoder(self.geometry_)
        self.ae_.load_state_dict(state["modules"]["ae_"])
        self.ae_.eval()
        self.release_ae_ = self.ae_.for_inference()


class Autoencoder(NetworkMethod):
    """Reconstruction by the pretrained denoising autoencoder: what the networks' own smoothing changes."""

    methods = ("ae",)
    pretrain_share = 1.0


class AdversarialAutoencoder(NetworkMethod):
    """Malekzadeh-style anonymising autoencoder (knob: the identity-confusion weight)."""

    methods = ("aae",)

    def _train(self, Z: torch.Tensor, s: torch.Tensor, a: torch.Tensor, n_act: int, reid: Any,
               progress: ProgressFn) -> None:
        """Reconstruction + activity head, identity pushed toward uniform against a continually retrained adversary."""
        cfg, n_subj, C = self.config, len(self.subjects_), Z.shape[2]
        adversary, activity = SmallConvNet(C, n_subj), SmallConvNet(C, n_act)
        ae_opt = torch.optim.Adam([*self.ae_.parameters(), *activity.parameters()], lr=cfg.g_lr)
        adv_opt = torch.optim.Adam(adversary.parameters(), lr=1e-3)
        uniform = torch.full((1, n_subj), 1.0 / n_subj)
        modules = {"ae": self.ae_, "adversary": adversary, "activity": activity, "ae_opt": ae_opt, "adv_opt": adv_opt}
        for epoch in range(self._restore(modules), cfg.epochs):
            self.ae_.train()
            sums = {"rec": 0.0, "adv_acc": 0.0, "act_loss": 0.0}
            for idx in batches(len(Z), cfg.batch_size, self.gen_):
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
