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
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from anonaudit.data.normalise import ZScore
from anonaudit.errors import ParameterError
from anonaudit.evaluate.features import window_features
from anonaudit.models.classifiers import ARCHITECTURES, build_classifier
from anonaudit.models.training import TrainConfig, fit_classifier, predict_proba
from anonaudit.progress import ProgressFn, null_progress

FEATURE_MODELS = ("knn", "forest", "logreg", "lda")
PER_ACTIVITY = "_act"  # suffix: one feature model per activity, e.g. "logreg_act"


class Classifier(Protocol):
    """What the protocols need from a model: fit on windows, class probabilities out.

    ``strata`` (one code per window, e.g. the activity label, which a release keeps) lets an
    attacker condition on what it knows about each window; models that cannot use it ignore it.
    """

    name: str

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, progress: ProgressFn = null_progress,
            strata: np.ndarray | None = None) -> "Classifier": ...

    def predict_proba(self, X: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray: ...


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
            y_val: np.ndarray | None = None, progress: ProgressFn = null_progress,
            strata: np.ndarray | None = None) -> "NeuralClassifier":
        _dense_labels(y, self.n_classes)
        self.scaler_ = ZScore().fit(X)
        self.model_ = build_classifier(self.arch, X.shape[2], X.shape[1], self.n_classes, self.channel_groups)
        val = (self.scaler_.transform(X_val), y_val) if X_val is not None and y_val is not None else (None, None)
        result = fit_classifier(self.model_, self.scaler_.transform(X), y, *val, config=self.config, progress=progress)
        self.epoch_seconds = result.epoch_seconds
        self.history_ = result.history
        return self

    def predict_proba(self, X: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray:
        return predict_proba(self.model_, self.scaler_.transform(X))

    def with_seed(self, seed: int) -> "NeuralClassifier":
        return replace(self, config=replace(self.config, seed=seed))


def feature_estimator(kind: str, seed: int = 0) -> Pipeline:
    """The scikit-learn estimator of feature model ``kind`` (also the black box R-LIME explains)."""
    if kind == "knn":
        estimator = KNeighborsClassifier(n_neighbors=10, weights="distance")
    elif kind == "forest":
        estimator = RandomForestClassifier(300, min_samples_leaf=2, n_jobs=1, random_state=seed)
    elif kind == "lda":  # the classic gait-biometrics classifier; Ledoit–Wolf shrinkage for p ≈ n
        estimator = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    elif kind == "logreg":
        estimator = LogisticRegression(C=0.1, max_iter=1000)
    else:
        raise ParameterError("model", f"unknown feature model {kind!r}; choose one of {list(FEATURE_MODELS)}")
    return make_pipeline(StandardScaler(), estimator)


@dataclass
class FeatureClassifier:
    """kNN, random forest, logistic regression or shrinkage LDA on hand-crafted window features.

    The non-deep attackers. Across recording sessions they beat the deep networks at
    re-identification (orientation-free magnitudes and spectra transfer where raw waveforms do
    not). With ``per_stratum`` one model is fitted per stratum (activity): walking says more about
    identity than sitting, and a model that knows which it sees can use each to the full. Strata
    unseen in training fall back to a model fitted on all windows.
    """

    kind: str
    n_classes: int
    seed: int = 0
    channels: Sequence[str] | None = None
    per_stratum: bool = False

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_MODELS:
            raise ParameterError("attacker", f"unknown feature model {self.kind!r}; choose one of {list(FEATURE_MODELS)}")
        self.name = self.kind + (PER_ACTIVITY if self.per_stratum else "")

    def _estimator(self) -> Pipeline:
        return feature_estimator(self.kind, self.seed)

    def _features(self, X: np.ndarray) -> np.ndarray:
        return window_features(X, self.channels)

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, progress: ProgressFn = null_progress,
            strata: np.ndarray | None = None) -> "FeatureClassifier":
        _dense_labels(y, self.n_classes)
        if self.per_stratum and strata is None:
            raise ParameterError("strata", f"{self.name} needs the activity of every window")
        F = self._features(X)
        self.models_: dict[int, Pipeline] = {}
        levels = np.unique(strata) if self.per_stratum else []
        for k, level in enumerate(levels):
            mask = strata == level
            if len(np.unique(y[mask])) > 1:
                self.models_[int(level)] = self._estimator().fit(F[mask], y[mask])
            progress((k + 1) / (len(levels) + 1), f"{self.name}: stratum {level}")
        self.model_ = self._estimator().fit(F, y)
        progress(1.0, f"{self.name} fitted")
        return self

    def _full(self, model: Pipeline, F: np.ndarray) -> np.ndarray:
        full = np.zeros((len(F), self.n_classes))
        full[:, model.classes_] = model.predict_proba(F)  # classes absent from training get probability 0
        return full

    def predict_proba(self, X: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray:
        F = self._features(X)
        proba = self._full(self.model_, F)
        if self.per_stratum:
            if strata is None:
                raise ParameterError("strata", f"{self.name} needs the activity of every window")
            for level, model in self.models_.items():
                mask = strata == level
                if mask.any():
                    proba[mask] = self._full(model, F[mask])
        return proba

    def with_seed(self, seed: int) -> "FeatureClassifier":
        return replace(self, seed=seed)


def classifier_names() -> list[str]:
    """Every name :func:`make_classifier` accepts."""
    return [*ARCHITECTURES, *FEATURE_MODELS, *(f + PER_ACTIVITY for f in FEATURE_MODELS)]


def make_classifier(name: str, n_classes: int, *, config: TrainConfig | None = None,
                    channel_groups: Mapping[str, Sequence[int]] | None = None,
                    channels: Sequence[str] | None = None) -> Classifier:
    """A classifier by name: a deep architecture, a feature model, or ``<feature model>_act``."""
    base = name.removesuffix(PER_ACTIVITY)
    if base in FEATURE_MODELS:
        return FeatureClassifier(base, n_classes, seed=(config or TrainConfig()).seed, channels=channels,
                                 per_stratum=name.endswith(PER_ACTIVITY))
    if name not in ARCHITECTURES:
        raise ParameterError("model", f"unknown model {name!r}; choose one of {classifier_names()}")
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
