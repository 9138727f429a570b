"""The baselines every anonymiser is compared with: the real data itself, and Gaussian noise.

* ``none``: identity (the real-data row of every table).
* ``noise``: additive Gaussian noise of ``noise_sigma`` channel standard deviations (knob: σ).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anonaudit.anonymise.method import FitHistory, Method
from anonaudit.data.normalise import ZScore, scaler_from_dict
from anonaudit.progress import ProgressFn, null_progress


class Identity(Method):
    """Releases the windows as they are: what every other method's privacy is measured against."""

    methods = ("none",)

    def fit(self, X: np.ndarray, subject: np.ndarray, activity: np.ndarray, *, subjects: Sequence[str],
            channels: Sequence[str], reid: Any = None, n_activities: int | None = None,
            checkpoint: str | Path | None = None, progress: ProgressFn = null_progress) -> "Identity":
        """Only the vocabulary and window shape (there is nothing to learn)."""
        self._vocabulary(X, subjects, channels)
        self.history_ = FitHistory()
        progress(1.0, "none fitted")
        return self

    def transform(self, X: np.ndarray, subject: np.ndarray | None = None, target: np.ndarray | None = None,
                  seed: int = 0, batch_size: int = 1024, activity: np.ndarray | None = None,
                  recording: np.ndarray | None = None) -> np.ndarray:
        self.check_input(X)
        return np.asarray(X, dtype=np.float32).copy()

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        pass


class GaussianNoise(Method):
    """Adds N(0, σ²) to every z-scored sample: close to its source, so memorisation and linkage find it."""

    methods = ("noise",)

    def fit(self, X: np.ndarray, subject: np.ndarray, activity: np.ndarray, *, subjects: Sequence[str],
            channels: Sequence[str], reid: Any = None, n_activities: int | None = None,
            checkpoint: str | Path | None = None, progress: ProgressFn = null_progress) -> "GaussianNoise":
        """The channels' scale, so that σ is in standard deviations of each channel."""
        started = time.perf_counter()
        self._vocabulary(X, subjects, channels)
        self.scaler_ = ZScore().fit(X)
        self.history_ = FitHistory(seconds=time.perf_counter() - started)
        progress(1.0, "noise fitted")
        return self

    def transform(self, X: np.ndarray, subject: np.ndarray | None = None, target: np.ndarray | None = None,
                  seed: int = 0, batch_size: int = 1024, activity: np.ndarray | None = None,
                  recording: np.ndarray | None = None) -> np.ndarray:
        """Fresh noise per window, drawn from ``seed``."""
        self.check_input(X)
        Z = torch.as_tensor(self.scaler_.transform(X))
        noisy = Z + self.config.noise_sigma * torch.randn(Z.shape, generator=torch.Generator().manual_seed(seed))
        return self.scaler_.inverse_transform(noisy.numpy())

    def _state(self) -> dict[str, Any]:
        return {"scaler": self.scaler_.to_dict()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.scaler_ = scaler_from_dict(state["scaler"])
