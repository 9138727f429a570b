"""Activity-conditioned synthesis: released signals drawn from a model of each activity, not from anyone.

The generator never sees who a window belongs to, and at release time not the source signal
either: what it keeps of a recording is its activity sequence and duration. Every released
recording is one continuous draw, so the frozen, linkage and informed attackers are held to
chance by construction, and no window is a copy or a blend of a few training windows (the
memorisation check's concern with donor mixing).

The model is an autoregressive linear-Gaussian process over half-window blocks. Windows are
z-scored per channel and each half (a block of ``T // 2`` samples × channels) projected on the
principal components of all training blocks (those explaining ``VARIANCE`` of it, at most
``MAX_RANK``). For every activity and every *phase* of an activity run (its first, middle and
last third: UTD-MHAD's gestures are 2–3 s long and begin and end differently from their middle)
the joint distribution of two consecutive blocks is Gaussian; a release draws the first block of
a recording from its marginal and every next block from the conditional given the one before:
``b′ = ν + A (b − ν) + L ε``. The cross-covariance of consecutive blocks is kept as it is (not
symmetrised), so motion keeps its direction in time; the two blocks' own covariances are
averaged, so the process is stationary within a phase and does not drift over long recordings.
Conditional draws of truncated block codes still leave small jumps where blocks meet (on
UTD-MHAD's smooth skeletons the seam score, the window grid's share of the step energy, was 16
against 2.1 for the real data); each block is therefore shifted to start where the one before,
continued by its last step, would go, the shift fading out over the block (seam score 1.25).
Where a recording changes activity a fresh draw of the new activity begins, and the release's
overlap-add cross-fades the two over half a window: continuing the old activity's state under the
new activity's transition would carry the old motion into the new one (a state the new model was
never fitted on, which a near-periodic transition preserves for many blocks).

A Gaussian process gives each run of near-periodic motion a random amplitude (Rayleigh for one
sinusoid: some walks faint, some violent) where people vary far less, so each drawn run is
rescaled, channel by channel, to a spread drawn from its activity's log-normal law of real runs'
spreads: a Gaussian scale mixture (on UTD-MHAD a real-trained classifier's score on the release
rose from 59 % to 79 % of real, one probe each).

Few examples per (activity, phase) would give noisy covariances; each is the posterior mean under
an inverse-Wishart prior centred on its parent (phase → activity → the pooled within-cell
covariance, Ledoit–Wolf shrunk), with the dimension as prior strength: ``Σ = (n S + d Σ_parent) / (n + d)``.

Why this and not a neural generator: it is fitted in closed form in seconds on two cores,
releases millions of windows per minute, and its privacy does not depend on training going well;
what its realism costs in utility is measured by the benchmark (HAR on released, TSTR). Unlabelled
windows (code −1) are drawn from the root model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.covariance import ledoit_wolf

from anonaudit.anonymise.method import FitHistory, Method, run_starts
from anonaudit.errors import DataError
from anonaudit.progress import ProgressFn, null_progress

PHASES = 3  # thirds of an activity run, each with its own model
VARIANCE = 0.999  # share of the block variance the principal components keep
MAX_RANK = 128
MAX_PERSISTENCE = 0.999  # largest singular value of the whitened block-to-block transition


def run_phases(activity: np.ndarray, recording: np.ndarray) -> np.ndarray:
    """Phase (0 … PHASES − 1) of each window in its run of one recording and activity, windows in time order."""
    new = run_starts(activity, recording)
    run = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    length = np.diff(np.r_[first, len(activity)])
    position = np.arange(len(activity)) - first[run]
    return np.minimum((PHASES * (position + 0.5) / length[run]).astype(np.int64), PHASES - 1)


def run_log_spreads(Z: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Log standard deviation per channel of each run (windows ``Z`` in time order, ``new`` where runs begin)."""
    run = np.repeat(np.cumsum(new) - 1, Z.shape[1])
    flat = Z.reshape(-1, Z.shape[2])
    count = np.bincount(run)
    mean = np.stack([np.bincount(run, weights=flat[:, c]) for c in range(flat.shape[1])], 1) / count[:, None]
    square = np.stack([np.bincount(run, weights=flat[:, c] ** 2) for c in range(flat.shape[1])], 1) / count[:, None]
    return 0.5 * np.log(np.clip(square - mean**2, 1e-8, None))


def sqrt_psd(S: np.ndarray) -> np.ndarray:
    """A square root ``L`` with ``L Lᵀ = S`` for a symmetric matrix, negative eigenvalues (rounding) set to 0."""
    w, V = np.linalg.eigh((S + S.T) / 2)
    return V * np.sqrt(np.clip(w, 0, None))


def stationary(S: np.ndarray) -> np.ndarray:
    """The joint covariance of two consecutive blocks with both blocks' own covariances averaged."""
    r = len(S) // 2
    S = S.copy()
    S[:r, :r] = S[r:, r:] = (S[:r, :r] + S[r:, r:]) / 2
    return S


def shrink(S: np.ndarray, n: float, parent: np.ndarray) -> np.ndarray:
    """The inverse-Wishart posterior mean ``(n S + d P) / (n + d)`` with the prior ``P`` the parent's correlations
    at this cell's own variances: a static activity borrows the structure of the pooled covariance, not the
    dynamic activities' energy."""
    d = len(S)
    own = np.sqrt(np.clip(np.diag(S), 1e-9 * np.diag(S).mean() + 1e-12, None))
    scale = own / np.sqrt(np.diag(parent))
    return (n * S + d * parent * np.outer(scale, scale)) / (n + d)


class ActivitySynthesis(Method):
    """Release a fresh autoregressive Gaussian draw per recording, conditioned on its activity sequence only."""

    methods = ("synth",)
    follows_recordings = True

    def fit(self, X: np.ndarray, subject: np.ndarray, activity: np.ndarray, *, subjects: Sequence[str],
            channels: Sequence[str], reid: Any = None, n_activities: int | None = None,
            checkpoint: str | Path | None = None, progress: ProgressFn = null_progress,
            recording: np.ndarray | None = None) -> "ActivitySynthesis":
        """Fit the per-(activity, phase) block models on windows cut at half-window hops in time order.

        ``recording`` codes mark stretches of consecutive windows (they set the phases); subjects are
        not used. ``reid`` and ``checkpoint`` are unused (nothing trains iteratively).
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 3 or X.shape[1] < 2:
            raise DataError(f"need windows shaped (n, time >= 2, channels), got {X.shape}")
        activity = np.asarray(activity, np.int64)
        recording = np.arange(len(X)) if recording is None else np.asarray(recording, np.int64)
        if not (len(activity) == len(recording) == len(X)):
            raise DataError(f"{len(X)} windows but {len(activity)} activity and {len(recording)} recording codes")
        if (activity < 0).any() or len(X) < 2:
            raise DataError("activity-conditioned synthesis needs at least two windows, each labelled with its "
                            "activity (code >= 0); this dataset has no activity labels to condition on"
                            if len(X) < 2 or (activity < 0).all() else "every training window needs its activity")
        started = time.perf_counter()
        self._vocabulary(X, subjects, channels)
        self.offset_ = X.mean(axis=(0, 1))
        self.scale_ = np.where(X.std(axis=(0, 1)) > 0, X.std(axis=(0, 1)), 1.0)
        half = X.shape[1] // 2
        Z = (X - self.offset_) / self.scale_
        halves = Z[:, : 2 * half].reshape(len(X), 2, half * X.shape[2])
        self._basis(halves.reshape(-1, halves.shape[2]), half, progress)
        pairs = ((halves - self.block_mean_) @ self.basis_.T).reshape(len(X), -1)  # (first, second) block codes
        self._estimate(pairs, Z, np.asarray(subject, np.int64), activity, recording,
                       n_activities or int(activity.max()) + 1)
        self.history_ = FitHistory(seconds=time.perf_counter() - started)
        progress(1.0, f"{len(np.unique(activity))} activities modelled from {len(X)} windows")
        return self

    def _basis(self, blocks: np.ndarray, half: int, progress: ProgressFn) -> None:
        """The block mean and the principal components of the training blocks that keep ``VARIANCE``."""
        self.block_mean_ = blocks.mean(axis=0)
        _, s, Vt = np.linalg.svd(blocks - self.block_mean_, full_matrices=False)
        explained = np.cumsum(s**2) / max(float((s**2).sum()), 1e-12)
        rank = int(min(np.searchsorted(explained, VARIANCE) + 1, MAX_RANK, len(s)))
        self.basis_ = Vt[:rank]
        progress(0.5, f"block basis: {rank} components keep {explained[rank - 1]:.4f} of the variance")

    def _estimate(self, pairs: np.ndarray, Z: np.ndarray, subject: np.ndarray, activity: np.ndarray,
                  recording: np.ndarray, n_activities: int) -> None:
        """The block models and the spread laws from the block codes and the z-scored windows (subjects unused)."""
        self._models(pairs, activity, run_phases(activity, recording), n_activities)
        self._spreads(Z, activity, recording, n_activities)

    def _models(self, pairs: np.ndarray, activity: np.ndarray, phase: np.ndarray, n_activities: int) -> None:
        """Mean and covariance of every (activity, phase), shrunk toward their parents.

        The parents' covariances are *within* their cells (around each cell's own mean): the spread
        between activities' means is not variation within an activity, and added to it would make
        every level persist across blocks as if it were part of the motion."""
        halves = pairs.reshape(len(pairs), 2, pairs.shape[1] // 2)
        cell = activity * PHASES + phase
        codes, inverse, count = np.unique(cell, return_inverse=True, return_counts=True)
        cell_mean = np.stack([halves[inverse == i].mean(axis=(0, 1)) for i in range(len(codes))])
        centred = pairs - np.tile(cell_mean, 2)[inverse]

        def scatter(rows: np.ndarray) -> np.ndarray:
            return centred[rows].T @ centred[rows] / len(rows)

        root_mean = halves.mean(axis=(0, 1))
        total = stationary(ledoit_wolf(pairs - np.tile(root_mean, 2), assume_centered=True)[0])
        within = stationary(ledoit_wolf(centred, assume_centered=True)[0])
        means, covs = [root_mean], [total]  # model 0: every activity (unlabelled windows)
        self.table_ = np.zeros((n_activities + 1, PHASES), dtype=np.int64)  # row a + 1; row 0 → model 0
        self.activities_ = sorted(np.unique(activity).tolist())
        for a in self.activities_:
            rows = np.flatnonzero(activity == a)
            m_a = halves[rows].mean(axis=(0, 1))
            cov_a = shrink(scatter(rows), len(rows), within)
            for p in range(PHASES):
                found = np.flatnonzero(codes == a * PHASES + p)
                if len(found):
                    i, n = int(found[0]), int(count[found[0]])
                    mean = (n * cell_mean[i] + m_a) / (n + 1)
                    cov = shrink(scatter(np.flatnonzero(inverse == i)), n, cov_a)
                else:
                    mean, cov = m_a, cov_a
                self.table_[a + 1, p] = len(means)
                means.append(mean)
                covs.append(stationary(cov))
        self._factors(np.stack(means), np.stack(covs))

    def _spreads(self, Z: np.ndarray, activity: np.ndarray, recording: np.ndarray, n_activities: int) -> None:
        """Per activity, the log-normal law of a run's standard deviation per channel (z-scored units).

        A Gaussian draw of near-periodic motion has a random amplitude that persists over the run
        (Rayleigh-distributed for one sinusoid), where real people walking vary far less; a release
        rescales each run to a spread drawn from this law, so draws are a Gaussian scale mixture
        whose run-to-run spread is the real one."""
        new = run_starts(activity, recording)
        log_spread = run_log_spreads(Z, new)
        run_activity = activity[new]
        self.spread_mean_ = np.zeros((n_activities + 1, Z.shape[2]))
        self.spread_root_ = np.zeros((n_activities + 1, Z.shape[2], Z.shape[2]))
        for a in [-1, *self.activities_]:
            rows = log_spread if a < 0 else log_spread[run_activity == a]
            self.spread_mean_[a + 1] = rows.mean(axis=0)
            if len(rows) > 1:
                self.spread_root_[a + 1] = sqrt_psd(ledoit_wolf(rows - rows.mean(axis=0), assume_centered=True)[0])

    def _factors(self, means: np.ndarray, covs: np.ndarray) -> None:
        """The sampling factors of each model: marginal root ``W``, transition ``A``, conditional root.

        In whitened coordinates the transition is ``M = W⁻¹ Γ₁ W⁻ᵀ`` (Γ₁: cross-covariance of
        consecutive blocks); its singular values are capped at ``MAX_PERSISTENCE``, so the joint
        stays a covariance and ``A Γ₀ Aᵀ + L Lᵀ = Γ₀`` holds exactly: a draw keeps its spread over
        any number of blocks instead of growing where estimated covariances are not quite consistent.
        """
        r = means.shape[1]
        self.means_, self.covs_ = means, covs
        first, transition, step = [], [], []
        for S in covs:
            w, V = np.linalg.eigh(S[:r, :r])
            w = np.clip(w, w.max() * 1e-9, None)
            root, inverse = V * np.sqrt(w), (V / np.sqrt(w)).T
            U, sv, Vt = np.linalg.svd(inverse @ S[r:, :r] @ inverse.T)
            M = (U * np.minimum(sv, MAX_PERSISTENCE)) @ Vt
            first.append(root)
            transition.append(root @ M @ inverse)
            step.append(root @ sqrt_psd(np.eye(r) - M @ M.T))
        self.first_root_, self.transition_, self.step_root_ = (np.stack(x).astype(np.float32)
                                                               for x in (first, transition, step))

    def transform(self, X: np.ndarray, subject: np.ndarray | None = None, target: np.ndarray | None = None,
                  seed: int = 0, batch_size: int = 1024, activity: np.ndarray | None = None,
                  recording: np.ndarray | None = None) -> np.ndarray:
        """Synthetic windows for each window's activity (``X`` sets only the shape; ``subject`` is ignored).

        With ``recording`` (tiles in time order at half-window hops, as a release cuts them) the
        tiles of each run of one recording and activity are consecutive pieces of one continuous
        draw; without it every window is a draw of its own.
        """
        activity, recording = self.check_activity_input(X, target, activity, recording, self.activities_)
        if not len(X):
            return np.empty(X.shape, dtype=np.float32)
        model = self.table_[activity + 1, run_phases(activity, recording)]
        new = run_starts(activity, recording)  # each run is one draw
        sequence = np.cumsum(new) - 1
        step = np.arange(len(X)) - np.flatnonzero(new)[sequence]
        length = np.bincount(sequence)
        T, C = self.geometry_.length, self.geometry_.channels
        half = T // 2
        per_tile = -(-T // half)  # blocks a window spans (3 when T is odd)
        grid = np.zeros((len(length), length.max()), dtype=np.int64)  # model of each sequence's tiles
        grid[sequence, step] = model
        grid[np.arange(grid.shape[1])[None, :] >= length[:, None]] = -1
        last = grid[np.arange(len(length)), length - 1]
        rng = np.random.default_rng(seed)
        codes = self._draw(grid, last, grid.shape[1] + per_tile - 1, rng)
        drawn = codes @ self.basis_.astype(np.float32) + self.block_mean_.astype(np.float32)
        drawn = drawn.reshape(len(length), codes.shape[1], half, C)
        # each block starts where the one before, continued by its last step, would go; the correction fades
        # out over the block (conditional draws of truncated codes leave small jumps at block boundaries)
        jump = drawn[:, 1:, 0] - (2 * drawn[:, :-1, -1] - drawn[:, :-1, -2]) if half > 1 else 0 * drawn[:, 1:, 0]
        drawn[:, 1:] -= jump[:, :, None] * np.linspace(1.0, 0.0, half, endpoint=False, dtype=np.float32)[:, None]
        drawn = drawn.reshape(len(length), -1, C)
        # each run's spread per channel, drawn from its activity's law, over the spread the draw happens to have
        inside = (np.arange(drawn.shape[1]) < (length + per_tile - 1)[:, None] * half)[..., None]
        n = inside.sum(axis=1)
        centre = (drawn * inside).sum(axis=1) / n
        spread = np.sqrt(np.clip((((drawn - centre[:, None]) ** 2) * inside).sum(axis=1) / n, 1e-8, None))
        run_activity = activity[new]
        wanted = np.exp(self.spread_mean_[run_activity + 1] + np.einsum(
            "nij,nj->ni", self.spread_root_[run_activity + 1], rng.standard_normal((len(length), C))))
        gain = (wanted / spread).astype(np.float32)
        signal = drawn[sequence[:, None], step[:, None] * half + np.arange(T)]  # (n, T, C): tile j starts at block j
        signal = centre[sequence, None] + (signal - centre[sequence, None]) * gain[sequence, None]
        return (signal * self.scale_ + self.offset_).astype(np.float32)

    def _draw(self, grid: np.ndarray, last: np.ndarray, steps: int, rng: np.random.Generator) -> np.ndarray:
        """Block codes (sequences, steps, rank): the first from its model's marginal, each next one given the one
        before, under the model of the tile whose centre it starts at (past a sequence's end: its last tile's).

        Rows sharing a model are drawn with one matrix product per step (gathering a matrix per row would
        copy rank² floats per row and step)."""
        r = self.means_.shape[1]
        mean = self.means_.astype(np.float32)
        codes = np.empty((len(grid), steps, r), dtype=np.float32)
        for s in range(steps):
            m = grid[:, s - 1] if 0 < s <= grid.shape[1] else (grid[:, 0] if s == 0 else last)
            m = np.where(m < 0, last, m)
            noise = rng.standard_normal((len(m), r), dtype=np.float32)
            order = np.argsort(m, kind="stable")
            models, first = np.unique(m[order], return_index=True)
            for u, rows in zip(models, np.split(order, first[1:])):
                if s == 0:
                    codes[rows, 0] = mean[u] + noise[rows] @ self.first_root_[u].T
                else:
                    codes[rows, s] = (mean[u] + (codes[rows, s - 1] - mean[u]) @ self.transition_[u].T
                                      + noise[rows] @ self.step_root_[u].T)
        return codes

    def _state(self) -> dict[str, Any]:
        return {"offset": self.offset_, "scale": self.scale_, "block_mean": self.block_mean_, "basis": self.basis_,
                "table": self.table_, "activities": self.activities_, "means": self.means_, "covs": self.covs_,
                "spread_mean": self.spread_mean_, "spread_root": self.spread_root_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.offset_, self.scale_, self.block_mean_ = state["offset"], state["scale"], state["block_mean"]
        self.basis_, self.table_, self.activities_ = state["basis"], state["table"], list(state["activities"])
        self._factors(state["means"], state["covs"])
        self.spread_mean_, self.spread_root_ = state["spread_mean"], state["spread_root"]
