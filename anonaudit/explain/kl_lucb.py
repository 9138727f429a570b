"""KL confidence bounds for Bernoulli means and the KL-LUCB exploration rate, vectorised.

Same bounds as the Anchor code the R-LIME reference builds on (bisection on the Bernoulli KL
divergence, Kaufmann & Kalyanakrishnan 2013), but over whole arrays of arms at once.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-7
N_BISECT = 16


def kl_bernoulli(p: np.ndarray | float, q: np.ndarray | float) -> np.ndarray:
    """KL(Ber(p) ‖ Ber(q)), with p and q clipped away from 0 and 1."""
    p = np.clip(p, _EPS, 1 - _EPS)
    q = np.clip(q, _EPS, 1 - _EPS)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def _bisect(p: np.ndarray, level: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Bisect between p (KL = 0) and ``outer`` for the point where KL(p ‖ q) reaches ``level``."""
    inner = p.copy()
    for _ in range(N_BISECT):
        mid = (inner + outer) / 2
        above = kl_bernoulli(p, mid) > level
        outer = np.where(above, mid, outer)
        inner = np.where(above, inner, mid)
    return outer


def kl_upper(p: np.ndarray | float, level: np.ndarray | float) -> np.ndarray:
    """Largest q ≥ p with KL(p ‖ q) ≤ level (upper confidence bound of a mean p)."""
    p, level = np.broadcast_arrays(np.asarray(p, float), np.asarray(level, float))
    return _bisect(p, level, np.minimum(1.0, p + np.sqrt(level / 2)))


def kl_lower(p: np.ndarray | float, level: np.ndarray | float) -> np.ndarray:
    """Smallest q ≤ p with KL(p ‖ q) ≤ level (lower confidence bound of a mean p)."""
    p, level = np.broadcast_arrays(np.asarray(p, float), np.asarray(level, float))
    return _bisect(p, level, np.maximum(0.0, p - np.sqrt(level / 2)))


def lucb_beta(n_arms: int, t: int, delta: float) -> float:
    """Exploration rate β(t) of KL-LUCB (constants of Kaufmann & Kalyanakrishnan, as in Anchor)."""
    temp = np.log(405.5 * n_arms * t**1.1 / delta)
    return float(temp + np.log(temp))


def validity_beta(delta: float, beam_size: int, n_features: int) -> float:
    """Confidence level for the final acc_l(A, δ) > τ test, union-bounded over the beam's candidates."""
    return float(np.log((1 + (beam_size - 1) * n_features) / delta))
