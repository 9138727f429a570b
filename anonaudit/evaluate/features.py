"""Hand-crafted window features for non-deep attackers and explainers.

Per channel: mean, standard deviation, range, 10/50/90th percentiles, mean absolute
first difference, and log power in a few frequency bands (relative to Nyquist). Computed for
all windows at once with NumPy; the names make the features readable in R-LIME rules.
"""

from __future__ import annotations

import numpy as np

BANDS = ((0.0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 1.0))  # fractions of Nyquist
STATS = ("mean", "std", "range", "p10", "p50", "p90", "mad_diff")


def feature_names(channels: list[str]) -> list[str]:
    names = [f"{c}_{s}" for s in STATS for c in channels]
    names += [f"{c}_band{lo:.2f}-{hi:.2f}" for lo, hi in BANDS for c in channels]
    return names


def window_features(X: np.ndarray) -> np.ndarray:
    """``(n, T, C)`` windows → ``(n, F)`` float32 features, F = C × (7 + 5)."""
    X = np.asarray(X, dtype=np.float32)
    p10, p50, p90 = np.percentile(X, [10, 50, 90], axis=1)
    stats = [X.mean(1), X.std(1), X.max(1) - X.min(1), p10, p50, p90, np.abs(np.diff(X, axis=1)).mean(1)]
    power = np.abs(np.fft.rfft(X - X.mean(1, keepdims=True), axis=1)) ** 2
    freq = np.linspace(0.0, 1.0, power.shape[1])
    bands = [np.log1p(power[:, (freq >= lo) & (freq < hi) if hi < 1 else (freq >= lo), :].sum(1)) for lo, hi in BANDS]
    return np.concatenate(stats + bands, axis=1).astype(np.float32)
