"""Memorisation: does a release sit closer to the training windows than fresh real data does?

Threat model 5 of issue 17 (distance to closest record; synthcity's identifiability, Stadler et
al. 2022). A generator or anonymiser that copies its training windows is linkable even where no
classifier finds it: each copy points at one training window, hence at one subject. Real windows
of the same distribution that the model never saw (held-out) give the reference: a release that
does not memorise lies as far from the training windows as they do, so the ratio of the median
distances is about 1 and a copying release drives it toward 0. A ratio well above 1 is not a
privacy problem, only a sign of poor fidelity, which the utility figures judge.

Windows are z-scored per channel with the training windows' statistics (so no channel dominates
by its unit) and compared by Euclidean distance on the flattened window. The nearest neighbour
search is exact (scikit-learn's chunked brute force); query and reference sets are subsampled,
seeded, to bound its cost. A copy is caught only if its source is among the sampled training
windows, so ``max_reference`` should cover all training windows where time allows.

The ratio of medians misses a generator that copies a minority of its training windows (a fifth
copied leaves the median where it was). :func:`membership` is the attack that finds it, as an
attacker would run it (GAN-Leaks' black-box attack, Chen et al. 2020; reported at a low false
positive rate, Carlini et al. 2022): holding real windows of people, some used to fit the
generator and some not, it calls a window a member when the release holds a window nearer to it
than all but ``fpr`` of non-members have. Chance is ``fpr`` itself, and the limit twice that, as
for re-identification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import pairwise_distances_argmin_min, roc_auc_score

from anonaudit.errors import DataError, ParameterError
from anonaudit.progress import ProgressFn, null_progress


# A held-out window whose root-mean-square difference from a training window is below this many
# training standard deviations is a copy of it (rounding leaves about 1e-7 on exact copies).
_COPY = 1e-4


@dataclass(frozen=True)
class MemorisationResult:
    """Distances to the closest training window (z-scored units) of released and held-out windows.

    ``ratio`` = ``median_released`` / ``median_holdout`` with a bootstrap 95 % ``ci`` (groups
    resampled when given); ``close_share`` is the share of released windows nearer to a training
    window than ``close_threshold``, the ``close_quantile`` of held-out distances, so a release
    that does not memorise has ``close_share`` ≈ ``close_quantile``. Counts are after subsampling.
    """

    ratio: float
    ci: tuple[float, float]
    median_released: float
    median_holdout: float
    close_share: float
    close_threshold: float
    close_quantile: float
    n_train: int
    n_holdout: int
    n_released: int

    def passes(self, min_ratio: float = 0.95) -> bool:
        """Whether released windows are at least ``min_ratio`` × as far from training data as held-out ones."""
        return self.ratio >= min_ratio


def _check_windows(arrays: dict[str, np.ndarray]) -> None:
    """DataError naming the set that is not a non-empty, finite (n, time, channels) array like the others."""
    shape = None
    for name, X in arrays.items():
        if X.ndim != 3 or len(X) == 0:
            raise DataError(f"{name} must be a non-empty array shaped (windows, time, channels), got shape {X.shape}")
        if shape is not None and X.shape[1:] != shape[1]:
            raise DataError(f"{name} have (time, channels) {X.shape[1:]} but {shape[0]} have {shape[1]}; "
                            "cut all three sets with the same window length and channels")
        if not np.isfinite(X).all():
            raise DataError(f"{name} contain non-finite values")
        shape = shape or (name, X.shape[1:])


def _check_groups(groups: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise DataError(f"{name} has shape {groups.shape}; it needs one group (recording or subject) per "
                        f"window, shape ({n},)")
    return groups


def _subsample(n: int, most: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, most, replace=False)) if n > most else np.arange(n)


def _group_weights(groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, windows) counts of each window in ``n_boot`` resamples of whole groups with replacement.

    Windows of one recording are not independent, so groups, not windows, are the resampled unit
    (as in :func:`anonaudit.evaluate.metrics.classification_report`).
    """
    codes, inverse = np.unique(groups, return_inverse=True)
    return rng.multinomial(len(codes), np.full(len(codes), 1 / len(codes)), size=n_boot)[:, inverse.reshape(-1)]


def _weighted_quantiles(d: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """The ``q`` quantile of ``d`` under each row of ``weights``."""
    order = np.argsort(d)
    cumulative = np.cumsum(weights[:, order], axis=1)
    return d[order][(cumulative >= cumulative[:, -1:] * q).argmax(axis=1)]


def _bootstrap_medians(d: np.ndarray, groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``d`` over ``n_boot`` resamples of whole groups (weighted medians)."""
    return _weighted_quantiles(d, _group_weights(groups, n_boot, rng), 0.5)


def _standardise(reference: np.ndarray):
    """Flattens windows z-scored per channel with ``reference``'s statistics (a channel constant there
    is compared in its own units)."""
    mean = reference.mean(axis=(0, 1), dtype=np.float64)
    std = reference.std(axis=(0, 1), dtype=np.float64)
    scale = np.where(std > 0, std, 1.0)

    def flat(X: np.ndarray, index: np.ndarray) -> np.ndarray:
        return ((X[index] - mean) / scale).reshape(len(index), -1).astype(np.float32)

    return flat


def _window_sets(train: np.ndarray, holdout: np.ndarray, released: np.ndarray, max_queries: int, max_reference: int,
                 n_boot: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three window sets as arrays, and the sampling parameters, checked before any distance is computed."""
    _check_counts(max_queries=(max_queries, 1), max_reference=(max_reference, 1), n_boot=(n_boot, 0))
    arrays = {"training windows": np.asarray(train), "held-out windows": np.asarray(holdout),
              "released windows": np.asarray(released)}
    _check_windows(arrays)
    return tuple(arrays.values())


def _closest(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each query's Euclidean distance to its nearest reference row (exact, chunked)."""
    return pairwise_distances_argmin_min(queries, reference)[1]


def _check_counts(**counts: tuple[int, int]) -> None:
    for name, (value, least) in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ParameterError(name, f"must be a whole number >= {least}, got {value!r}")


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ParameterError(name, f"must be a fraction strictly between 0 and 1, got {value!r}")


def memorisation(
    train: np.ndarray,
    holdout: np.ndarray,
    released: np.ndarray,
    *,
    holdout_groups: np.ndarray | None = None,
    released_groups: np.ndarray | None = None,
    max_queries: int = 2000,
    max_reference: int = 20_000,
    close_quantile: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    progress: ProgressFn = null_progress,
) -> MemorisationResult:
    """Distance-to-closest-record check of ``released`` against ``train``, with ``holdout`` as the reference.

    All three are (windows, time, channels) arrays: what the model was fitted on, real windows
    of the same distribution it never saw, and the release cut into windows of the same shape.
    ``*_groups`` (the recording or subject of each window) make the bootstrap resample whole
    groups; without them every window is its own group.
    """
    _check_fraction("close_quantile", close_quantile)
    train, holdout, released = _window_sets(train, holdout, released, max_queries, max_reference, n_boot)
    holdout_groups = _check_groups(holdout_groups, len(holdout), "holdout_groups")
    released_groups = _check_groups(released_groups, len(released), "released_groups")

    rng = np.random.default_rng(seed)
    flat = _standardise(train)
    reference = flat(train, _subsample(len(train), max_reference, rng))
    h_index = _subsample(len(holdout), max_queries, rng)
    r_index = _subsample(len(released), max_queries, rng)
    d_holdout = _closest(flat(holdout, h_index), reference)
    progress(0.5, "held-out windows: distance to the closest training window")
    d_released = _closest(flat(released, r_index), reference)
    progress(0.9, "released windows: distance to the closest training window")

    median_holdout, median_released = float(np.median(d_holdout)), float(np.median(d_released))
    if median_holdout <= _COPY * math.sqrt(reference.shape[1]):
        raise DataError("most held-out windows are copies of training windows; hold out whole recordings or "
                        "subjects that the model was not fitted on")
    threshold = float(np.quantile(d_holdout, close_quantile))
    ci = (math.nan, math.nan)
    if n_boot > 0:
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample of copies only: 0 / 0
            boot = (_bootstrap_medians(d_released, released_groups[r_index], n_boot, rng)
                    / _bootstrap_medians(d_holdout, holdout_groups[h_index], n_boot, rng))
        ci = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
    progress(1.0, "memorisation ratio")
    return MemorisationResult(
        ratio=median_released / median_holdout,
        ci=ci,
        median_released=median_released,
        median_holdout=median_holdout,
        close_share=float(np.mean(d_released < threshold)),
        close_threshold=threshold,
        close_quantile=float(close_quantile),
        n_train=len(reference),
        n_holdout=len(h_index),
        n_released=len(r_index),
    )


@dataclass(frozen=True)
class MembershipResult:
    """The distance attack on the generator's training set, at the false positive rate ``fpr``.

    ``tpr`` is the share of training windows (members) called members, with a bootstrap 95 % ``ci``
    (groups resampled on both sides); chance is ``fpr``. ``auc`` is the attack's area under the ROC
    curve over every threshold (0.5 at chance). Counts are after subsampling.
    """

    tpr: float
    ci: tuple[float, float]
    fpr: float
    auc: float
    n_members: int
    n_nonmembers: int
    n_released: int

    def passes(self, max_ratio: float = 2.0) -> bool:
        """Whether the attack finds members at most ``max_ratio`` × as often as chance (``fpr``)."""
        return self.tpr <= max_ratio * self.fpr


def membership(
    train: np.ndarray,
    holdout: np.ndarray,
    released: np.ndarray,
    *,
    train_groups: np.ndarray | None = None,
    holdout_groups: np.ndarray | None = None,
    fpr: float = 0.05,
    max_queries: int = 2000,
    max_reference: int = 20_000,
    n_boot: int = 1000,
    seed: int = 0,
) -> MembershipResult:
    """Membership inference on whatever produced ``released``: are ``train``'s windows nearer to it than ``holdout``'s?

    Each real window's score is its distance to the closest released window (z-scored with the
    release's own statistics: all the attacker holds); the threshold is the ``fpr`` quantile of the
    non-members' distances. ``*_groups`` (recording or subject per window) make the bootstrap
    resample whole groups. A release that copies training windows, even a few, puts members at
    distance ~0 where no non-member is.
    """
    _check_fraction("fpr", fpr)
    train, holdout, released = _window_sets(train, holdout, released, max_queries, max_reference, n_boot)
    train_groups = _check_groups(train_groups, len(train), "train_groups")
    holdout_groups = _check_groups(holdout_groups, len(holdout), "holdout_groups")

    rng = np.random.default_rng(seed)
    flat = _standardise(released)
    reference = flat(released, _subsample(len(released), max_reference, rng))
    m_index = _subsample(len(train), max_queries, rng)
    n_index = _subsample(len(holdout), max_queries, rng)
    d_member, d_non = _closest(flat(train, m_index), reference), _closest(flat(holdout, n_index), reference)

    threshold = np.quantile(d_non, fpr)
    tpr = float(np.mean(d_member < threshold))
    auc = float(roc_auc_score(np.r_[np.ones(len(d_member)), np.zeros(len(d_non))], -np.r_[d_member, d_non]))
    ci = (math.nan, math.nan)
    if n_boot > 0:
        thresholds = _weighted_quantiles(d_non, _group_weights(holdout_groups[n_index], n_boot, rng), fpr)
        weights = _group_weights(train_groups[m_index], n_boot, rng)
        boot = (weights * (d_member[None, :] < thresholds[:, None])).sum(axis=1) / weights.sum(axis=1)
        ci = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
    return MembershipResult(tpr=tpr, ci=ci, fpr=float(fpr), auc=auc, n_members=len(m_index),
                            n_nonmembers=len(n_index), n_released=len(reference))
