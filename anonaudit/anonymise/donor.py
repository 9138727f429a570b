"""Same-activity donor mixing (k-Same style; Newton, Sweeney & Malin, IEEE TKDE 2005).

Each released window is a blend of training windows of ``k`` distinct subjects doing the same
activity, drawn uniformly among *all* subjects who did it. The source subject is drawn as often
as anyone else: excluding it, as "k other subjects" would, leaves a trace of its own — the one
person never present in a subject's recordings — which an attacker retrained on the release
learns (one run on the sample: with k = 8 of 16 subjects the recording-level linkage attacker reached 2.2×
chance). Drawn this way, a released window's distribution depends on its activity only, not on
whose recording it replaces, so the frozen, linkage and informed attackers are held to chance
by construction. What remains is metadata (which activities a subject did, how long each
recording lasts), which the release check's metadata-linkage threat model judges. The privacy
knob is ``k``: more donors dilute each donor's share of a window (the memorisation check asks
that released windows lie no nearer to the training windows than fresh real ones do), fewer
keep more of the real signals' detail.

The blend keeps the second-order statistics of the activity: with ``m_a`` the activity's mean
per channel, ``x′ = m_a + Σᵢ (xᵢ − m_a) / √k``. A plain average would shrink every deviation
by √k, so released walking would look like a weaker walker; independent donors' deviations add
in power, so dividing by √k keeps the variance (and the power spectrum) of the activity. Windows
are blended as they are, without time alignment: the release's overlap-add joins neighbouring
windows with triangular cross-fades, so there are no jumps at window joins.

``transform`` needs each window's activity (an unlabelled window, code −1, draws donors of any
activity), and ignores its subject. Donors are drawn from ``seed``; a release passes one from the
operating system's CSPRNG (``secret_draws``), since the draws say whose windows went where.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anonaudit.anonymise.method import FitHistory, Method, run_starts
from anonaudit.data.dataset import SensorDataset
from anonaudit.errors import DataError, ParameterError
from anonaudit.progress import ProgressFn, null_progress

ANY = -1  # activity code of unlabelled windows: donors of every activity


def donor_shortage(ds: SensorDataset, k: int) -> str | None:
    """Why ``ds`` cannot give every window ``k`` donors of its activity, or None if it can.

    Checked before any work: each activity needs windows of at least k distinct subjects.
    """
    rec = np.repeat(np.arange(len(ds.recordings)), ds.recordings["length"].to_numpy())
    subject = ds.recordings["subject"].to_numpy()[rec]
    labelled = ds.labels >= 0
    pairs = np.unique(np.stack([ds.labels[labelled], np.unique(subject, return_inverse=True)[1][labelled]]), axis=1)
    counts = np.bincount(pairs[0], minlength=len(ds.activities))
    short = [(name, int(n)) for name, n in zip(ds.activities, counts) if 0 < n < k]
    if not short:
        return None
    name, n = short[0]
    return (f"activity {name!r} was done by {n} subject{'s' * (n != 1)}; donor mixing with k = {k} blends k distinct "
            f"subjects' windows, so it needs at least {k} subjects per activity"
            + (f" ({len(short) - 1} more activit{'ies' if len(short) > 2 else 'y'} too)" if len(short) > 1 else "")
            + "; lower k or drop the activity")


class DonorMixing(Method):
    """Replace every window by a variance-preserving blend of k random subjects' windows of the same activity."""

    methods = ("donor",)
    follows_recordings = True
    secret_draws = True

    def fit(self, X: np.ndarray, subject: np.ndarray, activity: np.ndarray, *, subjects: Sequence[str],
            channels: Sequence[str], reid: Any = None, n_activities: int | None = None,
            checkpoint: str | Path | None = None, progress: ProgressFn = null_progress,
            recording: np.ndarray | None = None) -> "DonorMixing":
        """Keep the training windows as the donor pool (no training: ``reid`` and ``checkpoint`` are unused).

        With ``recording`` (a code per window: consecutive windows with the same code continue each
        other at half-window hops) the pool knows its continuous stretches, and releases follow them.
        """
        X = np.asarray(X)
        self._vocabulary(X, subjects, channels)
        recording = np.arange(len(X)) if recording is None else np.asarray(recording, np.int64)
        if not (len(subject) == len(activity) == len(recording) == len(X)):
            raise DataError(f"{len(X)} windows but {len(subject)} subject, {len(activity)} activity and "
                            f"{len(recording)} recording codes")
        if (np.asarray(activity) < 0).any():
            raise DataError("donor windows must be labelled with their activity (code >= 0)")
        started = time.perf_counter()
        self._pool(X.astype(np.float32), np.asarray(subject, np.int64), np.asarray(activity, np.int64), recording)
        self.history_ = FitHistory(seconds=time.perf_counter() - started)
        progress(1.0, f"donor pool: {len(X)} windows of {len(np.unique(subject))} subjects")
        return self

    def _pool(self, X: np.ndarray, subject: np.ndarray, activity: np.ndarray, recording: np.ndarray) -> None:
        """Sort the pool by (activity, subject, recording), keeping time order, and mark its chains: runs of
        windows of one recording and activity, each the continuation of the one before."""
        order = np.lexsort((np.arange(len(X)), recording, subject, activity))
        self.pool_, self.pool_subject_ = X[order], subject[order]
        self.pool_activity_, self.pool_recording_ = activity[order], recording[order]
        same = np.r_[False, (np.diff(self.pool_recording_) == 0) & (np.diff(self.pool_activity_) == 0)]
        chain = np.cumsum(~same) - 1
        first = np.flatnonzero(~same)
        self.chain_start_ = first[chain]
        self.chain_end_ = np.r_[first[1:], len(X)][chain]  # one past the chain's last window
        # per activity (and ANY): pool rows grouped by subject, where each subject's rows begin, how many
        self.donors_: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.means_: dict[int, np.ndarray] = {}
        for a in [*np.unique(activity).tolist(), ANY]:
            rows = np.flatnonzero(self.pool_activity_ == a) if a != ANY else np.arange(len(X))
            subj, inverse, count = np.unique(self.pool_subject_[rows], return_inverse=True, return_counts=True)
            if a != ANY and len(subj) < self.config.k:
                raise ParameterError("k", f"activity code {a} has windows of {len(subj)} subjects in the donor pool; "
                                          f"donor mixing with k = {self.config.k} needs at least {self.config.k}")
            self.donors_[a] = (rows[np.argsort(inverse, kind="stable")], np.r_[0, np.cumsum(count)[:-1]], count)
            self.means_[a] = self.pool_[rows].mean(axis=(0, 1))
        self.mean_table_ = np.zeros((int(activity.max()) + 2, X.shape[2]), dtype=np.float32)  # row −1: ANY
        for a, m in self.means_.items():
            self.mean_table_[a] = m

    def transform(self, X: np.ndarray, subject: np.ndarray | None = None, target: np.ndarray | None = None,
                  seed: int = 0, batch_size: int = 1024, activity: np.ndarray | None = None,
                  recording: np.ndarray | None = None) -> np.ndarray:
        """Blends of k random subjects' training windows of each window's activity (``X`` sets only the shape and
        ``subject`` nothing: a released window must not depend on whose it is).

        With ``recording`` (tiles of a recording in time order at half-window hops, as a release
        cuts them), each run of tiles of one recording and activity follows the same k donors
        through their recordings, so the release's overlap-add rebuilds continuous donor signals
        instead of cross-fading unrelated windows; a donor recording shorter than the run starts
        again at its beginning.
        """
        activity, recording = self.check_activity_input(X, target, activity, recording, self.means_)
        rng = np.random.default_rng(seed)
        new_run = run_starts(activity, recording)
        run = np.cumsum(new_run) - 1
        run_first = np.flatnonzero(new_run)
        position = np.arange(len(X)) - run_first[run]
        run_activity, run_length = activity[run_first], np.diff(np.r_[run_first, len(X)])
        rows = np.empty((len(X), self.config.k), dtype=np.int64)
        for a in np.unique(run_activity):
            runs = np.flatnonzero(run_activity == a)
            start, end = self._chains(int(a), run_length[runs], rng)  # (runs, k) first and end pool rows
            tiles = np.flatnonzero(np.isin(run, runs))
            which = np.searchsorted(runs, run[tiles])
            span = end[which] - start[which]
            rows[tiles] = start[which] + position[tiles, None] % span
        # m + Σᵢ (xᵢ − m) / √k = Σᵢ xᵢ / √k + (1 − √k) m: one gather per donor slot, no (n, k, T, C) temporary
        out = self.pool_[rows[:, 0]]
        for i in range(1, self.config.k):
            out += self.pool_[rows[:, i]]
        out /= math.sqrt(self.config.k)
        out += (1 - math.sqrt(self.config.k)) * self.mean_table_[activity][:, None, :]
        return out

    def _chains(self, a: int, need: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """For each run needing ``need`` windows of activity ``a`` (−1: any): k distinct subjects (the first k
        of a random ranking) and, for each, a stretch of one of its chains, as (first row, end row)."""
        k = self.config.k
        grouped, first, count = self.donors_[a]
        chosen = np.argpartition(rng.random((len(need), len(count))), k - 1, axis=1)[:, :k]
        picked = grouped[first[chosen] + (rng.random(chosen.shape) * count[chosen]).astype(np.int64)]
        start, end = self.chain_start_[picked], self.chain_end_[picked]
        room = np.maximum(end - start - need[:, None] + 1, 1)  # where in its chain a stretch of ``need`` fits
        first_row = start + (rng.random(chosen.shape) * room).astype(np.int64)
        return first_row, end

    def _state(self) -> dict[str, Any]:
        return {"pool": self.pool_, "pool_subject": self.pool_subject_, "pool_activity": self.pool_activity_,
                "pool_recording": self.pool_recording_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._pool(state["pool"], state["pool_subject"], state["pool_activity"], state["pool_recording"])
