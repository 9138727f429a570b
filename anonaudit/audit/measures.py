"""Measures of one audit training on its test subjects: performance, per activity, per subject, fairness.

Fairness compares attribute groups of the *test* subjects (e.g. elderly vs young testers):
worst-group accuracy, the best–worst gap, the FER fairness paper's Eq. 4 (§4.1: the smallest
summed class-wise accuracy of a group relative to the best group), the smallest class-wise
accuracy of any group, and Fairlearn's equalized-odds difference, taken one activity against the
rest (Fairlearn defines it for binary labels) and reported as the maximum over activities.

Everything comes from one table of per-(group, class) counts: calling Fairlearn per class and
attribute took ~0.2 s a call (seconds per training on SisFall, in the job's serial part); the
tests check the counts against ``fairlearn.metrics`` on the same predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support


@dataclass
class TrainingMeasures:
    scores: dict[str, float]  # accuracy, weighted_f1, macro_f1
    per_activity: pd.DataFrame  # activity, precision, recall, support
    per_subject: pd.DataFrame  # subject, accuracy, windows
    fairness: pd.DataFrame  # attribute, n_groups, worst_group, worst_group_acc, best_group_acc, gap, fairness_ratio, min_class_acc, eod_max


@dataclass
class GroupCounts:
    """Per (group, class) counts that every fairness figure derives from (one bincount each)."""

    groups: np.ndarray  # group names
    correct: np.ndarray  # (G,) correct windows per group
    total: np.ndarray  # (G,)
    tp: np.ndarray  # (G, C) true class c predicted as c
    pos: np.ndarray  # (G, C) true class c
    pred: np.ndarray  # (G, C) predicted as c

    @classmethod
    def of(cls, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> "GroupCounts":
        names, g = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        n_classes = int(max(y_true.max(), y_pred.max())) + 1
        count = lambda idx, w=None: np.bincount(g * n_classes + idx, weights=w, minlength=len(names) * n_classes)  # noqa: E731
        ok = (y_true == y_pred).astype(float)
        return cls(names, np.bincount(g, ok, len(names)), np.bincount(g, minlength=len(names)).astype(float),
                   count(y_true, ok).reshape(len(names), -1), count(y_true).reshape(len(names), -1).astype(float),
                   count(y_pred).reshape(len(names), -1).astype(float))

    def classwise(self) -> np.ndarray:
        """Recall of every class in every group; NaN where a group has no window of the class."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.pos > 0, self.tp / self.pos, np.nan)

    def equalized_odds(self) -> np.ndarray:
        """Fairlearn's equalized-odds difference for each class taken one-vs-rest: the larger of the
        between-group ranges of TPR and FPR (classes absent from a group's truth are skipped)."""
        neg = self.total[:, None] - self.pos
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = np.where(self.pos > 0, self.tp / self.pos, np.nan)
            fpr = np.where(neg > 0, (self.pred - self.tp) / neg, np.nan)
        present = (self.pos > 0).all(axis=0) & (neg > 0).all(axis=0)
        ranges = np.maximum(np.ptp(tpr, axis=0), np.ptp(fpr, axis=0))
        return np.where(present, ranges, np.nan)


def fairness_ratio(classwise: np.ndarray) -> float:
    """FER paper Eq. 4: min over groups of Σ_c acc_c(group) / Σ_c acc_c(best group).

    Only classes present in every group enter the sums, so groups are compared on the same classes.
    """
    shared = classwise[:, ~np.isnan(classwise).any(axis=0)]
    if shared.shape[1] == 0 or len(shared) < 2:
        return float("nan")
    sums = shared.sum(axis=1)
    return float(sums.min() / sums.max()) if sums.max() > 0 else float("nan")


def fairness_row(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> dict[str, float | str | int]:
    """Group fairness of one set of predictions across the attribute levels in ``groups``."""
    c = GroupCounts.of(np.asarray(y_true), np.asarray(y_pred), groups)
    acc = c.correct / c.total
    classwise = c.classwise()
    eod = c.equalized_odds()
    return {
        "n_groups": int(len(acc)),
        "worst_group": str(c.groups[acc.argmin()]),
        "worst_group_acc": float(acc.min()),
        "best_group_acc": float(acc.max()),
        "gap": float(acc.max() - acc.min()),
        "fairness_ratio": fairness_ratio(classwise),
        "min_class_acc": float(np.nanmin(classwise)),
        "eod_max": float(np.nanmax(eod)) if len(acc) > 1 and np.isfinite(eod).any() else float("nan"),
    }


def training_measures(y_true: np.ndarray, y_pred: np.ndarray, subject: np.ndarray, activities: Sequence[str],
                      attributes: Mapping[str, Mapping[str, str]]) -> TrainingMeasures:
    """All measures of one training; ``subject`` holds subject ids per window, ``attributes`` maps
    attribute name → (subject id → level) for the fairness groups (characteristics and their cells)."""
    y_true, y_pred, subject = np.asarray(y_true), np.asarray(y_pred), np.asarray(subject).astype(str)
    labels = np.arange(len(activities))
    precision, recall, _, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    scores = {"accuracy": float(accuracy_score(y_true, y_pred)),
              "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
              "macro_f1": float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0))}
    per_activity = pd.DataFrame({"activity": list(activities), "precision": precision, "recall": recall, "support": support})
    per_activity = per_activity[per_activity["support"] > 0].reset_index(drop=True)
    ok = pd.DataFrame({"subject": subject, "ok": y_true == y_pred})
    per_subject = ok.groupby("subject")["ok"].agg(accuracy="mean", windows="size").reset_index()
    rows = []
    for name, mapping in attributes.items():
        groups = pd.Series(subject).map(mapping).to_numpy()
        rows.append({"attribute": name, **fairness_row(y_true, y_pred, groups)})
    return TrainingMeasures(scores, per_activity, per_subject, pd.DataFrame(rows))
