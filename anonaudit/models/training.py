"""Training loop for window classifiers on in-memory tensors.

Batches are index slices of tensors already in memory (no DataLoader workers, no copies per
epoch); the best model by validation score is kept (early stopping with patience); every
random choice flows from one seed.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from anonaudit.errors import ParameterError
from anonaudit.progress import ProgressFn, null_progress


@dataclass
class TrainConfig:
    """Hyper-parameters (defaults: the bias paper's RMSprop setting, shortened for CPUs)."""

    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "rmsprop"
    weight_decay: float = 0.0
    loss: str = "ce"
    asl_gamma_neg: float = 4.0
    asl_gamma_pos: float = 0.0
    asl_margin: float = 0.05
    input_noise: float = 0.001
    patience: int = 5
    threads: int | None = None
    seed: int = 0

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ParameterError("train", f"epochs, batch_size and lr must be positive: {self}")
        if self.optimizer not in ("rmsprop", "adam", "adamw"):
            raise ParameterError("optimizer", f"choose rmsprop, adam or adamw, got {self.optimizer!r}")
        if self.loss not in ("ce", "asl"):
            raise ParameterError("loss", f"choose ce or asl, got {self.loss!r}")


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    epoch_seconds: float = 0.0


def asymmetric_loss(logits: torch.Tensor, target: torch.Tensor, gamma_neg: float = 4.0,
                    gamma_pos: float = 0.0, margin: float = 0.05) -> torch.Tensor:
    """Asymmetric loss (Ben-Baruch et al.) on one-vs-rest sigmoids, for imbalanced classes.

    Easy negatives are down-weighted by (p_m)^γ− with the shifted probability
    p_m = max(p − m, 0), positives by (1 − p)^γ+ — the variant the TinyAction and HEART-MET
    reports use against positive–negative imbalance.
    """
    onehot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
    p = torch.sigmoid(logits)
    p_m = (p - margin).clamp(min=0) if margin > 0 else p
    loss_pos = onehot * (1 - p).pow(gamma_pos) * torch.log(p.clamp(min=1e-8))
    loss_neg = (1 - onehot) * p_m.pow(gamma_neg) * torch.log((1 - p_m).clamp(min=1e-8))
    return -(loss_pos + loss_neg).sum(dim=1).mean()


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=cfg.lr, alpha=0.95, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay or 1e-2)


@torch.no_grad()
def predict_logits(model: nn.Module, X: np.ndarray | torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits for all windows, in eval mode, batched."""
    model.eval()
    X = torch.as_tensor(X, dtype=torch.float32)
    return torch.cat([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]) if len(X) else torch.empty(0)


def predict_proba(model: nn.Module, X: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
    return torch.softmax(predict_logits(model, X, batch_size), dim=1).numpy()


def fit_classifier(
    model: nn.Module,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    config: TrainConfig | None = None,
    progress: ProgressFn = null_progress,
) -> TrainResult:
    """Train ``model``; keep the weights of the epoch with the best validation accuracy."""
    cfg = config or TrainConfig()
    cfg.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    X = torch.as_tensor(X_train, dtype=torch.float32)
    y = torch.as_tensor(y_train, dtype=torch.long)
    if len(X) == 0:
        raise ParameterError("X_train", "no training windows")
    has_val = X_val is not None and y_val is not None and len(X_val) > 0
    opt = _optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, -(-cfg.epochs // 3)), gamma=0.1)
    best_score, best_state, best_epoch, stale = -np.inf, None, 0, 0
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(X), generator=gen)
        total = 0.0
        for start in range(0, len(X), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            xb = X[idx]
            if cfg.input_noise > 0:
                xb = xb + cfg.input_noise * torch.randn(xb.shape, generator=gen)
            logits = model(xb)
            if cfg.loss == "asl":
                loss = asymmetric_loss(logits, y[idx], cfg.asl_gamma_neg, cfg.asl_gamma_pos, cfg.asl_margin)
            else:
                loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        record = {"epoch": epoch + 1, "train_loss": total / len(X)}
        if has_val:
            pred = predict_logits(model, X_val).argmax(1).numpy()
            record["val_acc"] = float((pred == np.asarray(y_val)).mean())
        history.append(record)
        score = record.get("val_acc", -record["train_loss"])
        if score > best_score:
            best_score, best_epoch, stale = score, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        progress((epoch + 1) / cfg.epochs, f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in record.items() if k != "epoch"))
        if has_val and stale >= cfg.patience:
            break
    elapsed = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model, history=history, best_epoch=best_epoch, epoch_seconds=elapsed / len(history))
