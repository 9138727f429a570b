"""Hand-crafted window features for non-deep attackers and explainers.

Per channel: distribution statistics, mean absolute first difference and log power in 16
frequency bands (relative to Nyquist). For each x/y/z triad of channels (an accelerometer, a
gyroscope, a skeleton joint) also the magnitude as an extra channel — it does not change when the
sensor is worn at another angle, which is what makes identity survive from one session to the
next — the direction of the triad's mean (gravity for an accelerometer) and the correlations
between its axes. Computed for all windows at once with NumPy; the names keep the features
readable in R-LIME rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

N_BANDS = 16  # 15 equal bands up to half Nyquist (where gait lives), one for the rest
_EDGES = np.r_[np.linspace(0.0, 0.5, N_BANDS), 1.0]
BANDS = tuple((float(lo), float(hi)) for lo, hi in zip(_EDGES[:-1], _EDGES[1:]))
STATS = ("mean", "std", "range", "p10", "p50", "p90", "mad_diff", "skew", "kurtosis")
_AXIS = re.compile(r"^(?P<stem>.*?)[_\-. ]?(?P<axis>[xyzXYZ])$")


def xyz_triads(channels: Sequence[str]) -> list[tuple[int, int, int]]:
    """Indices of channel triads named ``<stem>x``, ``<stem>y``, ``<stem>z`` (any separator)."""
    found: dict[str, dict[str, int]] = {}
    for i, name in enumerate(channels):
        m = _AXIS.match(name)
        if m:
            found.setdefault(m["stem"], {})[m["axis"].lower()] = i
    return [(axes["x"], axes["y"], axes["z"]) for axes in found.values() if len(axes) == 3]


def triad_stem(channels: Sequence[str], triad: tuple[int, int, int]) -> str:
    m = _AXIS.match(channels[triad[0]])
    return m["stem"] if m else channels[triad[0]]


def feature_names(channels: Sequence[str]) -> list[str]:
    """Names of the columns :func:`window_features` returns for these channels."""
    triads = xyz_triads(channels)
    extended = [*channels, *(f"{triad_stem(channels, t)}_norm" for t in triads)]
    names = [f"{c}_{s}" for s in STATS for c in extended]
    names += [f"{c}_band{lo:.2f}-{hi:.2f}" for lo, hi in BANDS for c in extended]
    for t in triads:
        stem = triad_stem(channels, t)
        names += [f"{stem}_dir_{a}" for a in "xyz"] + [f"{stem}_corr_{p}" for p in ("xy", "xz", "yz")]
    return names


def _moments(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = (X - mean[:, None]) / (std[:, None] + 1e-8)
    z2 = z * z
    return (z2 * z).mean(1), (z2 * z2).mean(1) - 3.0


def window_features(X: np.ndarray, channels: Sequence[str] | None = None) -> np.ndarray:
    """``(n, T, C)`` windows → ``(n, F)`` float32 features named by :func:`feature_names`.

    Without ``channels`` no triads are recognised and only the per-channel features are returned.
    """
    X = np.asarray(X, dtype=np.float32)
    triads = xyz_triads(channels) if channels is not None else []
    norms = [np.linalg.norm(X[:, :, list(t)], axis=2) for t in triads]
    Z = np.concatenate([X, np.stack(norms, axis=2)], axis=2) if norms else X
    mean, std = Z.mean(1), Z.std(1)
    p10, p50, p90 = np.percentile(Z, [10, 50, 90], axis=1)
    skew, kurt = _moments(Z, mean, std)
    stats = [mean, std, Z.max(1) - Z.min(1), p10, p50, p90, np.abs(np.diff(Z, axis=1)).mean(1), skew, kurt]
    power = np.abs(np.fft.rfft(Z - mean[:, None], axis=1)) ** 2
    freq = np.linspace(0.0, 1.0, power.shape[1])
    bands = [np.log1p(power[:, (freq >= lo) & ((freq < hi) | (hi >= 1.0)), :].sum(1)) for lo, hi in BANDS]
    triad_feats = []
    for k, t in enumerate(triads):
        m = mean[:, list(t)]
        direction = m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-8)
        centred = Z[:, :, list(t)] - m[:, None]
        s = std[:, list(t)] + 1e-8
        corr = [(centred[:, :, a] * centred[:, :, b]).mean(1) / (s[:, a] * s[:, b]) for a, b in ((0, 1), (0, 2), (1, 2))]
        triad_feats += [direction, np.stack(corr, axis=1)]
    return np.concatenate(stats + bands + triad_feats, axis=1).astype(np.float32)
