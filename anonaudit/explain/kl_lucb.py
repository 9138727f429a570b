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


def kl_upper(p: np.ndarray | float, level: np.ndarray | float) -> np.ndarray:
    """Largest q ≥ p with KL(p ‖ q) ≤ level (upper confidence bound of a mean p)."""
    p, level = np.broadcast_arrays(np.asarray(p, float), np.asarray(level, float))
    lo, hi = p.copy(), np.minimum(1.0, p + np.sqrt(level / 2))
    for _ in range(N_BISECT):
        mid = (lo + hi) / 2
        above = kl_bernoulli(p, mid) > level
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return hi


def kl_lower(p: np.ndarray | float, level: np.ndarray | float) -> np.ndarray:
    """Smallest q ≤ p with KL(p ‖ q) ≤ level (lower confidence bound of a mean p)."""
    p, level = np.broadcast_arrays(np.asarray(p, float), np.asarray(level, float))
    lo, hi = np.maximum(0.0, p - np.sqrt(level / 2)), p.copy()
    for _ in range(N_BISECT):
        mid = (lo + hi) / 2
        above = kl_bernoulli(p, mid) > level
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return lo


def lucb_beta(n_arms: int, t: int, delta: float) -> float:
    """Exploration rate β(t) of KL-LUCB (constants of Kaufmann & Kalyanakrishnan, as in Anchor)."""
    temp = np.log(405.5 * n_arms * t**1.1 / delta)
    return float(temp + np.log(temp))


def validity_beta(delta: float, beam_size: int, n_features: int) -> float:
    """Confidence level for the final acc_l(A, δ) > τ test, union-bounded over the beam's candidates."""
    return float(np.log((1 + (beam_size - 1) * n_features) / delta))
