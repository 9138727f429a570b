"""Classifiers used as HAR models and as attackers, behind one small interface.

A deep attacker (tCNN, tCNN-IMU, LSTM, Transformer) and a non-deep one (kNN or random forest
on window features) both expose ``fit`` / ``predict_proba``, so the protocols can retrain any
of them on released data — the adaptive attacker a sceptical reviewer asks for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from anonaudit.data.normalise import ZScore
from anonaudit.errors import ParameterError
from anonaudit.evaluate.features import window_features
from anonaudit.models.classifiers import ARCHITECTURES, build_classifier
from anonaudit.models.training import TrainConfig, fit_classifier, predict_proba
from anonaudit.progress import ProgressFn, null_progress

FEATURE_MODELS = ("knn", "forest")


class Classifier(Protocol):
    """What the protocols need from a model: fit on windows, class probabilities out."""

    name: str

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, progress: ProgressFn = null_progress) -> "Classifier": ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


def _dense_labels(y: np.ndarray, n_classes: int) -> None:
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ParameterError("y", f"labels must lie in [0, {n_classes - 1}]")


@dataclass
class NeuralClassifier:
    """A deep window classifier; inputs are z-scored with statistics of its own training data."""

    arch: str
    n_classes: int
    config: TrainConfig = field(default_factory=TrainConfig)
    channel_groups: Mapping[str, Sequence[int]] | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ParameterError("arch", f"unknown architecture {self.arch!r}; choose one of {list(ARCHITECTURES)}")
        self.name = self.arch
        self.epoch_seconds = 0.0

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, progress: ProgressFn = null_progress) -> "NeuralClassifier":
        _dense_labels(y, self.n_classes)
        self.scaler_ = ZScore().fit(X)
        self.model_ = build_classifier(self.arch, X.shape[2], X.shape[1], self.n_classes, self.channel_groups)
        val = (self.scaler_.transform(X_val), y_val) if X_val is not None and y_val is not None else (None, None)
        result = fit_classifier(self.model_, self.scaler_.transform(X), y, *val, config=self.config, progress=progress)
        self.epoch_seconds = result.epoch_seconds
        self.history_ = result.history
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return predict_proba(self.model_, self.scaler_.transform(X))

    def with_seed(self, seed: int) -> "NeuralClassifier":
        return replace(self, config=replace(self.config, seed=seed))


@dataclass
class FeatureClassifier:
    """kNN or random forest on hand-crafted window features (the non-deep baseline attacker)."""

    kind: str
    n_classes: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_MODELS:
            raise ParameterError("attacker", f"unknown feature model {self.kind!r}; choose one of {list(FEATURE_MODELS)}")
        self.name = self.kind

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, progress: ProgressFn = null_progress) -> "FeatureClassifier":
        _dense_labels(y, self.n_classes)
        estimator = (KNeighborsClassifier(n_neighbors=5, weights="distance") if self.kind == "knn"
                     else RandomForestClassifier(300, min_samples_leaf=2, n_jobs=1, random_state=self.seed))
        self.model_ = make_pipeline(StandardScaler(), estimator).fit(window_features(X), y)
        progress(1.0, f"{self.kind} fitted")
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        proba = self.model_.predict_proba(window_features(X))
        full = np.zeros((len(X), self.n_classes))
        full[:, self.model_.classes_] = proba  # classes absent from training get probability 0
        return full

    def with_seed(self, seed: int) -> "FeatureClassifier":
        return replace(self, seed=seed)


def make_classifier(name: str, n_classes: int, *, config: TrainConfig | None = None,
                    channel_groups: Mapping[str, Sequence[int]] | None = None) -> Classifier:
    """A classifier by name: a deep architecture or a feature model."""
    if name in FEATURE_MODELS:
        return FeatureClassifier(name, n_classes, seed=(config or TrainConfig()).seed)
    return NeuralClassifier(name, n_classes, config or TrainConfig(), channel_groups)


def aggregate_by_group(proba: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average window probabilities within each group (e.g. recording): multi-clip ensembling.

    Returns ``(group_ids, mean_proba)``; averaging probabilities, not votes, lets confident
    windows outweigh ambiguous ones.
    """
    ids, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((len(ids), proba.shape[1]))
    np.add.at(sums, inverse, proba)
    return ids, sums / np.bincount(inverse)[:, None]
