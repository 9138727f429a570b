"""The Gaussian mechanism on per-unit statistics: subject-level DP for models fitted in closed form.

A model whose fit is a function of sums (counts, first and second moments) is made private by
releasing those sums once with Gaussian noise: every privacy unit (a subject, with all its
windows) contributes one vector, clipped to L2 norm ``clip``, and the sum gets N(0, σ²clip²) on
every coordinate. This is one step of the same mechanism DP-SGD repeats with subsampling, so the
same accountants apply (sampling rate 1, one step); a closed-form fit spends its budget once
where gradient descent on the same model would spend it over many noisy steps. ε is the RDP
accountant's for the σ used, cross-checked with the PRV accountant, as in :mod:`anonaudit.private.dp`.
"""

from __future__ import annotations

import secrets
import warnings

import numpy as np

from anonaudit.errors import ParameterError
from anonaudit.private.dp import Privacy, check_budget, epsilon_for_noise, noise_for_epsilon, prv_cross_check


def clip_rows(rows: np.ndarray, clip: float) -> np.ndarray:
    """Each row scaled down to L2 norm ``clip`` where it is longer (the mechanism's sensitivity bound)."""
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows * np.minimum(1.0, clip / np.maximum(norm, 1e-300))


def gaussian_sum(contributions: np.ndarray, epsilon: float, delta: float | None = None, clip: float = 1.0,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, Privacy]:
    """The sum of the units' contributions (one row each, clipped to ``clip``) with Gaussian noise for (ε, δ).

    δ defaults to 1/(10·units). The noise comes from the operating system's CSPRNG unless ``rng``
    is given (tests): whoever knows a seed can subtract the noise."""
    contributions = np.asarray(contributions, dtype=np.float64)
    if contributions.ndim != 2:
        raise ParameterError("contributions", f"need one row per privacy unit, got shape {contributions.shape}")
    if not clip > 0:
        raise ParameterError("clip", f"must be positive, got {clip}")
    n_units = len(contributions)
    delta = check_budget(epsilon, delta, n_units)
    # at large ε the best RDP order lies below Opacus' smallest (1.1): its ε is then an upper bound, conservative;
    # the PRV grid takes log(1 − q), −∞ at q = 1, which it handles
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.filterwarnings("ignore", message="Optimal order is the smallest alpha", category=UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        sigma = noise_for_epsilon(float(epsilon), delta, 1.0, 1)
        spent, prv = epsilon_for_noise(sigma, delta, 1.0, 1), prv_cross_check(sigma, delta, 1.0, 1)
    from_seed = rng is not None
    rng = rng or np.random.default_rng(secrets.randbits(128))
    noisy = clip_rows(contributions, clip).sum(axis=0) + rng.normal(0.0, sigma * clip, contributions.shape[1])
    privacy = Privacy(unit="subject", n_units=n_units, sample_rate=1.0, steps=1, noise_multiplier=sigma, delta=delta,
                      epsilon=spent, epsilon_prv=prv, max_grad_norm=clip, noise_from_seed=from_seed)
    return noisy, privacy
