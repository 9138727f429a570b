"""Per-channel normalisation, fitted on training data only (scikit-learn style).

Both scalers reduce over every axis but the last (channels), so they accept raw sample
arrays ``(n, C)`` and window batches ``(n, T, C)`` alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self

import numpy as np

from anonaudit.errors import ParameterError


class _ChannelScaler(ABC):
    """Shared fit and (de)serialisation: per-channel mean and standard deviation."""

    mean_: np.ndarray
    std_: np.ndarray

    def fit(self, X: np.ndarray) -> Self:
        X = np.asarray(X, dtype=np.float64)
        flat = X.reshape(-1, X.shape[-1])
        if flat.shape[0] < 2:
            raise ParameterError("X", "need at least two samples to fit a scaler")
        self.mean_ = flat.mean(axis=0)
        std = flat.std(axis=0)
        self.std_ = np.where(std > 1e-12, std, 1.0)  # constant channels: leave unscaled
        return self

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def _check(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise ParameterError("scaler", "call fit() on training data first")
        X = np.asarray(X)
        if X.shape[-1] != self.mean_.shape[0]:
            raise ParameterError("X", f"has {X.shape[-1]} channels, scaler was fitted on {self.mean_.shape[0]}")
        return X

    def to_dict(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "mean": self.mean_.tolist(), "std": self.std_.tolist(), **self._extra()}

    def _extra(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def transform(self, X: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def inverse_transform(self, X: np.ndarray) -> np.ndarray: ...


class ZScore(_ChannelScaler):
    """(x − μ) / σ per channel."""

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        return ((X - self.mean_) / self.std_).astype(np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        return (X * self.std_ + self.mean_).astype(np.float32)


class SigmaRange(_ChannelScaler):
    """The papers' scaling: [μ − kσ, μ + kσ] → [0, 1], clipped (k = 2 by default).

    Clipping loses the tails; ``inverse_transform`` therefore maps back into the range only.
    """

    def __init__(self, k: float = 2.0) -> None:
        if k <= 0:
            raise ParameterError("k", f"must be positive, got {k}")
        self.k = k

    def _extra(self) -> dict[str, Any]:
        return {"k": self.k}

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        lo = self.mean_ - self.k * self.std_
        return np.clip((X - lo) / (2 * self.k * self.std_), 0.0, 1.0).astype(np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        lo = self.mean_ - self.k * self.std_
        return (X * 2 * self.k * self.std_ + lo).astype(np.float32)


SCALERS: dict[str, type[_ChannelScaler]] = {"zscore": ZScore, "sigma_range": SigmaRange}


def make_scaler(name: str) -> _ChannelScaler:
    """Scaler by name ('zscore' or 'sigma_range')."""
    if name not in SCALERS:
        raise ParameterError("normalisation", f"unknown {name!r}; choose one of {sorted(SCALERS)}")
    return SCALERS[name]()


def scaler_from_dict(state: dict[str, Any]) -> _ChannelScaler:
    """Rebuild a fitted scaler saved with ``to_dict`` (e.g. next to a trained anonymiser)."""
    kinds = {cls.__name__: cls for cls in SCALERS.values()}
    cls = kinds.get(state.get("kind", ""))
    if cls is None:
        raise ParameterError("scaler", f"unknown scaler kind {state.get('kind')!r}")
    scaler = cls(state["k"]) if cls is SigmaRange else cls()
    scaler.mean_ = np.asarray(state["mean"], dtype=np.float64)
    scaler.std_ = np.asarray(state["std"], dtype=np.float64)
    return scaler
