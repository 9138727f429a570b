"""Utility, robustness and empirical privacy of a trained VAE.

* Utility: reconstruction MSE; Fréchet distance in the hidden layer of a classifier trained on real
  data (FID's idea without ImageNet, which says little about digits or IMU windows) and in a
  pretrained autoencoder's latent (the FSVAE/DP-SVAE papers' AID); an inception-style score from
  the same classifier; for sensor windows train-on-synthetic / test-on-real (TSTR).
* Robustness (the DP-SVAE paper's Tables 6, 7): FGSM, Carlini–Wagner and Square attacks that
  maximise the reconstruction error within an L∞ ball, written out here (they are small).
* Empirical privacy: membership inference by a loss threshold and by a loss calibrated per
  example with a reference model trained on disjoint data (Watson et al., ICLR 2022), as AUC and
  TPR at 1 % FPR.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import linalg
from torch import nn

from anonaudit.private.data import PrivateData
from anonaudit.private.layers import InputSpec, per_sample_mse
from anonaudit.private.vae_ann import ANNVAE, VAEConfig


def _batches(X: np.ndarray | torch.Tensor, size: int = 256) -> list[torch.Tensor]:
    Xt = torch.as_tensor(X, dtype=torch.float32)
    return [Xt[i:i + size] for i in range(0, len(Xt), size)]


@torch.no_grad()
def reconstructions(model: nn.Module, X: np.ndarray, seed: int = 0) -> np.ndarray:
    torch.manual_seed(seed)
    model.eval()
    return torch.cat([model.reconstruct(b) for b in _batches(X)]).numpy()


def reconstruction_mse(model: nn.Module, X: np.ndarray, seed: int = 0) -> float:
    return float(np.mean((reconstructions(model, X, seed) - X) ** 2))


@torch.no_grad()
def samples(model: nn.Module, n: int, seed: int = 0) -> np.ndarray:
    torch.manual_seed(seed)
    model.eval()
    return torch.cat([model.sample(min(256, n - i)) for i in range(0, n, 256)]).numpy()


# ---------------------------------------------------------------------------- utility
@dataclass
class Reference:
    """Models fitted once per dataset on real (population) data: a classifier and an autoencoder."""

    classifier: Any  # sklearn MLPClassifier on flattened inputs
    autoencoder: ANNVAE
    classes: np.ndarray

    def features(self, X: np.ndarray) -> np.ndarray:
        """The classifier's hidden-layer activations (the 'inception features')."""
        c = self.classifier
        return np.maximum(X.reshape(len(X), -1) @ c.coefs_[0] + c.intercepts_[0], 0.0)

    def probs(self, X: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(X.reshape(len(X), -1))

    @torch.no_grad()
    def latent(self, X: np.ndarray) -> np.ndarray:
        self.autoencoder.eval()
        return torch.cat([self.autoencoder.latent_mean(b) for b in _batches(X)]).numpy()


def fit_reference(real: PrivateData, widths: tuple[int, ...], seed: int = 0, ae_epochs: int = 10) -> Reference:
    from sklearn.neural_network import MLPClassifier

    from anonaudit.private import dp

    clf = MLPClassifier((128,), max_iter=200, early_stopping=True, random_state=seed).fit(
        real.X.reshape(len(real), -1), real.y)
    spec = InputSpec(real.X.shape[1], tuple(real.X.shape[2:]))
    ae = ANNVAE(spec, VAEConfig(widths=widths[:2], latent=64 if real.kind == "image" else 32), variational=False)
    dp.train(ae, real.X, dp.DPConfig(epochs=ae_epochs, batch_size=64, seed=seed))
    return Reference(clf, ae, clf.classes_)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2(Σ_a Σ_b)^{1/2}) between Gaussian fits of two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # singular covariances (fewer samples than features) are expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(ca @ cb)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


def inception_score(p: np.ndarray, splits: int = 10) -> float:
    """exp E_x KL(p(y|x) ‖ p(y)), averaged over splits (Salimans et al.) with the real-data classifier."""
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part + 1e-12) - np.log(py + 1e-12)), 1))))
    return float(np.mean(scores))


def tstr(ref: Reference, synthetic: np.ndarray, real: PrivateData, seed: int = 0) -> dict[str, float]:
    """Train on synthetic windows (labelled by the real-data classifier, as the VAEs are unconditional),
    test on real held-out windows: macro F1, beside the same model trained on real data."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    flat = synthetic.reshape(len(synthetic), -1)
    labels = ref.classifier.predict(flat)
    test_X, test_y = real.X.reshape(len(real), -1), real.y
    if len(np.unique(labels)) < 2:
        return {"tstr_f1": 0.0}
    model = LogisticRegression(max_iter=500, random_state=seed).fit(flat, labels)
    return {"tstr_f1": float(f1_score(test_y, model.predict(test_X), average="macro"))}


def utility(model: nn.Module, ref: Reference, holdout: PrivateData, n_samples: int, seed: int = 0) -> tuple[dict[str, float], np.ndarray]:
    """All utility figures of a model against held-out real data, and the generated samples."""
    gen = samples(model, n_samples, seed)
    real = holdout.X[:n_samples]
    out = {"recon_mse": reconstruction_mse(model, holdout.X, seed),
           "fd_classifier": frechet_distance(ref.features(gen), ref.features(real)),
           "fd_autoencoder": frechet_distance(ref.latent(gen), ref.latent(real)),
           "inception_score": inception_score(ref.probs(gen))}
    if holdout.kind == "sensor":
        out |= tstr(ref, gen, holdout, seed)
    return out, gen


# ---------------------------------------------------------------------------- robustness
def _recon_loss(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # the same latent draws for clean and attacked inputs
    return per_sample_mse(model.reconstruct(x_adv), x)


def fgsm(model: nn.Module, x: torch.Tensor, eps: float, seed: int = 0) -> torch.Tensor:
    """One signed-gradient step of size ε that raises the reconstruction error (Goodfellow et al.)."""
    x_adv = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_recon_loss(model, x_adv, x, seed).sum(), x_adv)
    return (x + eps * grad.sign()).clamp(-1, 1).detach()


def carlini_wagner(model: nn.Module, x: torch.Tensor, eps: float, iters: int = 50, c: float = 10.0,
                   lr: float = 0.05, seed: int = 0) -> torch.Tensor:
    """C&W-style optimisation: minimise ‖δ‖² − c·MSE(x̂(x + δ), x) with δ = ε·tanh(w) (box by
    change of variables); keeps each example's most damaging iterate."""
    w = torch.zeros_like(x, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    best, best_loss = x.clone(), torch.full((len(x),), -np.inf)
    for _ in range(iters):
        x_adv = (x + eps * torch.tanh(w)).clamp(-1, 1)
        rec = _recon_loss(model, x_adv, x, seed)
        objective = ((x_adv - x) ** 2).flatten(1).sum(1) - c * rec
        opt.zero_grad()
        objective.sum().backward()
        opt.step()
        better = rec.detach() > best_loss
        best[better], best_loss[better] = x_adv.detach()[better], rec.detach()[better]
    return best


@torch.no_grad()
def square(model: nn.Module, x: torch.Tensor, eps: float, iters: int = 50, patch: int = 4,
           seed: int = 0) -> torch.Tensor:
    """Square Attack (Andriushchenko et al.), score-based: start from ±ε stripes, then propose a random
    ±ε patch per example and keep it where the reconstruction error grows."""
    g = torch.Generator().manual_seed(seed)
    size = x.shape[2:]
    sign = lambda shape: torch.randint(0, 2, shape, generator=g).to(x.dtype) * 2 - 1  # noqa: E731
    x_adv = (x + eps * sign((len(x), x.shape[1], *([1] * (len(size) - 1)), size[-1]))).clamp(-1, 1)
    loss = _recon_loss(model, x_adv, x, seed)
    for _ in range(iters):
        mask = torch.ones((len(x), 1, *size), dtype=torch.bool)
        for axis, s in enumerate(size):
            p = min(patch, s)
            start = torch.randint(0, s - p + 1, (len(x),), generator=g)
            pos = torch.arange(s)
            inside = (pos >= start[:, None]) & (pos < start[:, None] + p)
            shape = [len(x)] + [1] * (len(size) + 1)
            shape[2 + axis] = s
            mask &= inside.view(shape)
        delta = eps * sign((len(x), x.shape[1], *([1] * len(size))))
        cand = torch.where(mask, (x + delta).clamp(-1, 1), x_adv)
        new = _recon_loss(model, cand, x, seed)
        better = new > loss
        x_adv[better], loss[better] = cand[better], new[better]
    return x_adv


def attack_report(model: nn.Module, X: np.ndarray, eps: float = 0.3, iters: int = 50, patch: int = 4,
                  seed: int = 0) -> dict[str, float]:
    """Reconstruction MSE without attack and under each attack, and the increase (Tables 6 and 7)."""
    model.eval()
    x = torch.as_tensor(X, dtype=torch.float32)
    clean = float(_recon_loss(model, x, x, seed).detach().mean())
    out = {"attack_none": clean}
    for name, fn in (("fgsm", lambda: fgsm(model, x, eps, seed)),
                     ("cw", lambda: carlini_wagner(model, x, eps, iters, seed=seed)),
                     ("square", lambda: square(model, x, eps, iters, patch, seed))):
        adv = fn()
        out[f"attack_{name}"] = float(_recon_loss(model, adv, x, seed).detach().mean())
        out[f"attack_{name}_increase"] = out[f"attack_{name}"] - clean
    return out


# ---------------------------------------------------------------------------- membership inference
@torch.no_grad()
def example_losses(model: nn.Module, X: np.ndarray, draws: int = 4, seed: int = 0) -> np.ndarray:
    """Each example's loss (the negative ELBO-style training objective), averaged over latent draws."""
    torch.manual_seed(seed)
    model.eval()
    return np.mean([torch.cat([model(b) for b in _batches(X)]).numpy() for _ in range(draws)], axis=0)


def attack_scores(scores_members: np.ndarray, scores_non: np.ndarray) -> dict[str, float]:
    """AUC and TPR at 1 % FPR of 'higher score ⇒ member'."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.r_[np.ones(len(scores_members)), np.zeros(len(scores_non))]
    s = np.r_[scores_members, scores_non]
    fpr, tpr, _ = roc_curve(y, s)
    return {"auc": float(roc_auc_score(y, s)), "tpr_at_1fpr": float(np.interp(0.01, fpr, tpr))}


def membership_audit(target_members: np.ndarray, target_non: np.ndarray,
                     ref_members: np.ndarray | None = None, ref_non: np.ndarray | None = None) -> dict[str, float]:
    """Loss-threshold attack (low loss ⇒ member) and, given a reference model's losses on the same
    examples, the difficulty-calibrated attack (loss lower than the reference's ⇒ member)."""
    out = {f"mia_{k}": v for k, v in attack_scores(-target_members, -target_non).items()}
    if ref_members is not None and ref_non is not None:
        cal = attack_scores(ref_members - target_members, ref_non - target_non)
        out |= {f"mia_calibrated_{k}": v for k, v in cal.items()}
    return out
