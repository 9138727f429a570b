"""Classification metrics with chance levels and subject-bootstrap confidence intervals.

Everything is computed from confusion matrices, so a bootstrap over subjects is a weighted
sum of per-subject confusion matrices (one ``einsum``), not a Python loop over resamples.
Chance levels are the scores of the best *trivial* predictor on the same test labels, so a
figure can always be read against what guessing would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts[i, j] = windows of true class i predicted as j."""
    return np.bincount(np.asarray(y_true) * n_classes + np.asarray(y_pred), minlength=n_classes**2).reshape(
        n_classes, n_classes
    ).astype(np.float64)


def _scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, weighted F1, macro F1, balanced accuracy from (…, K, K) confusion matrices."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(-1)
    predicted = cm.sum(-2)
    total = support.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        present = support > 0
        return {
            "accuracy": tp.sum(-1) / total,
            "weighted_f1": (f1 * support).sum(-1) / total,
            "macro_f1": (f1 * present).sum(-1) / present.sum(-1),
            "balanced_accuracy": (recall * present).sum(-1) / present.sum(-1),
        }


def chance_levels(y_true: np.ndarray, n_classes: int, k: int = 5) -> dict[str, float]:
    """Scores of trivial predictors on these labels.

    accuracy: always predicting the majority class; top-k: the k most frequent classes;
    weighted F1: guessing by the class priors (expected wF1 = Σ p²); macro F1 and balanced
    accuracy: guessing uniformly (1/K for balanced accuracy, mean prior-matched F1 for macro).
    """
    prior = np.bincount(y_true, minlength=n_classes) / max(len(y_true), 1)
    present = prior > 0
    return {
        "accuracy": float(prior.max()),
        f"top{k}_accuracy": float(np.sort(prior)[::-1][:k].sum()),
        "weighted_f1": float((prior**2).sum()),
        "macro_f1": float((2 * prior / (1 + prior * n_classes))[present].mean()),
        "balanced_accuracy": float(1.0 / present.sum()),
    }


def top_k_accuracy(y_true: np.ndarray, proba: np.ndarray, k: int = 5) -> float:
    k = min(k, proba.shape[1])
    top = np.argpartition(-proba, k - 1, axis=1)[:, :k]
    return float((top == np.asarray(y_true)[:, None]).any(1).mean())


@dataclass
class ClassificationReport:
    """Scores, their chance levels and subject-bootstrap 95 % intervals, plus per-class detail."""

    scores: dict[str, float]
    chance: dict[str, float]
    ci: dict[str, tuple[float, float]]
    per_class: dict[str, np.ndarray]
    confusion: np.ndarray
    n: int

    def rows(self) -> list[dict[str, float | str]]:
        """One row per score: value, 95 % CI and chance (for tables and the job store)."""
        return [
            {"metric": name, "value": value, "ci_low": self.ci.get(name, (np.nan, np.nan))[0],
             "ci_high": self.ci.get(name, (np.nan, np.nan))[1], "chance": self.chance.get(name, np.nan)}
            for name, value in self.scores.items()
        ]


def classification_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    *,
    groups: np.ndarray | None = None,
    proba: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> ClassificationReport:
    """Scores of predictions; ``groups`` (e.g. test subject per window) enables the bootstrap.

    The bootstrap resamples whole groups with replacement, because windows of one subject are
    not independent — resampling windows would give intervals that are far too narrow.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    cm = confusion(y_true, y_pred, n_classes)
    scores = {k: float(v) for k, v in _scores_from_confusion(cm).items()}
    if proba is not None and n_classes > 5:
        scores["top5_accuracy"] = top_k_accuracy(y_true, proba, 5)
    support, predicted, tp = cm.sum(1), cm.sum(0), np.diag(cm)
    per_class = {
        "support": support,
        "precision": np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0),
        "recall": np.divide(tp, support, out=np.zeros_like(tp), where=support > 0),
    }
    ci: dict[str, tuple[float, float]] = {}
    if groups is not None and n_boot > 0:
        codes, inverse = np.unique(np.asarray(groups), return_inverse=True)
        if len(codes) >= 2:
            per_group = np.zeros((len(codes), n_classes, n_classes))
            np.add.at(per_group, (inverse, y_true, y_pred), 1.0)
            rng = np.random.default_rng(seed)
            weights = rng.multinomial(len(codes), np.full(len(codes), 1 / len(codes)), size=n_boot).astype(float)
            boot = _scores_from_confusion(np.einsum("bg,gij->bij", weights, per_group))
            ci = {k: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for k, v in boot.items()}
    return ClassificationReport(scores, chance_levels(y_true, n_classes), ci, per_class, cm, len(y_true))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) between two discrete distributions."""
    p = np.asarray(p, float) / np.sum(p)
    q = np.asarray(q, float) / np.sum(q)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / b[mask])).sum())

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)
