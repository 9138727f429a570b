"""Activity-conditioned synthesis with subject-level differential privacy (knob: ε).

The model is :mod:`anonaudit.anonymise.synth`'s, fitted from sums released once through the
Gaussian mechanism (:mod:`anonaudit.private.mechanism`), so that adding or removing one person
with all their recordings changes the released model's distribution by at most (ε, δ):

* the block basis is fixed in advance instead of learned: per channel, the lowest cosine (DCT-II)
  frequencies of a half window, ``DP_RANK`` numbers per block in all (a learned basis would be a
  function of everyone's data and need a budget of its own);
* per subject and activity the mean block-pair code, its mean outer product and the mean and mean
  square of the runs' log spreads, each code clipped to the largest norm a z-scored pair can have
  without exceeding unit variance per sample, and each subject's whole contribution scaled to norm 1
  (the mechanism's sensitivity); every subject weighs the same, however many windows it has;
* the sums of those contributions over subjects, plus N(0, σ²) per coordinate with σ the RDP
  accountant's for (ε, δ) at one step, give every activity's mean, covariance and spread law;
  activities are one model each (the three phases would triple the noise), shrunk toward the pooled
  model by the noisy subject count, and a noisy count below one falls back to the pooled model.

Not covered by ε, as for the DP VAEs' μ ± 2σ scaling: the per-channel location and scale the
windows are z-scored with (two numbers per channel, taken as public calibration of the sensors), the
activity vocabulary and the window geometry. Subject-level DP with tens of subjects needs a large ε
for any utility: each subject's clipped contribution is as large as the signal it adds to a sum of
tens, and the noise covers thousands of coordinates; the benchmark measures what that costs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.fft import dct

from anonaudit.anonymise.synth import PHASES, ActivitySynthesis, run_log_spreads, shrink, stationary
from anonaudit.anonymise.method import run_starts
from anonaudit.errors import DataError
from anonaudit.private.dp import Privacy
from anonaudit.private.mechanism import clip_rows, gaussian_sum
from anonaudit.progress import ProgressFn

DP_RANK = 48  # numbers per block: the lowest max(1, DP_RANK // channels) frequencies of every channel
LOG_SPREAD_BOUND = 3.0  # runs' log standard deviations (z-scored units) are clipped to ± this


def _psd(S: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """The nearest symmetric matrix with eigenvalues at least ``floor`` times the largest (noise makes some negative)."""
    w, V = np.linalg.eigh((S + S.T) / 2)
    return (V * np.clip(w, floor * max(float(w.max()), 1e-12), None)) @ V.T


class PrivateSynthesis(ActivitySynthesis):
    """Activity-conditioned synthesis fitted from sums released with subject-level (ε, δ)-DP."""

    methods = ("dp_synth",)

    def _basis(self, blocks: np.ndarray, half: int, progress: ProgressFn) -> None:
        channels = blocks.shape[1] // half
        frequencies = max(1, min(half, DP_RANK // channels))
        cosines = dct(np.eye(half), norm="ortho", axis=0)[:frequencies]  # (frequency, time), orthonormal rows
        self.block_mean_ = np.zeros(blocks.shape[1])
        self.basis_ = np.kron(cosines, np.eye(channels))  # row (k, c) over the block's (time, channel) samples
        progress(0.5, f"block basis: the {frequencies} lowest frequencies of each of {channels} channels")

    def _estimate(self, pairs: np.ndarray, Z: np.ndarray, subject: np.ndarray, activity: np.ndarray,
                  recording: np.ndarray, n_activities: int) -> None:
        units, unit = np.unique(subject, return_inverse=True)
        if len(units) < 2:
            raise DataError(f"subject-level DP needs at least two subjects, got {len(units)}")
        d, C = pairs.shape[1], Z.shape[2]
        bound = np.sqrt(Z.shape[1] // 2 * 2 * C)  # a pair of blocks at unit variance per sample
        b = clip_rows(pairs, bound) / bound
        new = run_starts(activity, recording)
        spread = np.clip(run_log_spreads(Z, new), -LOG_SPREAD_BOUND, LOG_SPREAD_BOUND) / LOG_SPREAD_BOUND
        parts = {"count": 1, "mean": d, "second": d * d, "spread": C, "spread2": C}
        width = sum(parts.values())
        weight = 1.0 / np.sqrt(len(parts) * n_activities)  # each part has norm <= 1 per activity
        contributions = np.zeros((len(units), n_activities, width))

        def per_cell(values: np.ndarray, cell: np.ndarray) -> np.ndarray:
            """Mean of ``values`` per (unit, activity) cell."""
            total = np.zeros((len(units) * n_activities, values.shape[1]))
            np.add.at(total, cell, values)
            count = np.bincount(cell, minlength=len(total))
            return (total / np.maximum(count, 1)[:, None]).reshape(len(units), n_activities, -1)

        window_cell = unit * n_activities + activity
        run_cell = window_cell[new]
        present = np.bincount(window_cell, minlength=len(units) * n_activities).reshape(len(units), n_activities) > 0
        columns = np.cumsum([0, *parts.values()])
        contributions[..., 0] = present
        contributions[..., columns[1]:columns[2]] = per_cell(b, window_cell)
        order = np.argsort(window_cell, kind="stable")
        cells, starts = np.unique(window_cell[order], return_index=True)
        flat = contributions.reshape(-1, width)
        for c, rows in zip(cells, np.split(order, starts[1:])):  # one outer-product mean per cell, not per window
            flat[c, columns[2]:columns[3]] = (b[rows].T @ b[rows]).ravel() / len(rows)
        contributions[..., columns[3]:columns[4]] = per_cell(spread, run_cell)
        contributions[..., columns[4]:columns[5]] = per_cell(spread**2, run_cell)
        noisy, self.privacy_ = gaussian_sum(contributions.reshape(len(units), -1) * weight, self.config.epsilon)
        sums = noisy.reshape(n_activities, width) / weight
        self._noisy_models(*(sums[:, columns[i]:columns[i + 1]] for i in range(len(parts))), bound, n_activities)

    def _noisy_models(self, count: np.ndarray, mean: np.ndarray, second: np.ndarray, spread: np.ndarray,
                      spread2: np.ndarray, bound: float, n_activities: int) -> None:
        """Every activity's block model and spread law from the noisy sums (pooled model for row 0)."""
        d = mean.shape[1]
        r = d // 2
        n = count[:, 0]
        second = second.reshape(n_activities, d, d) * bound**2
        mean = mean * bound
        total_n = max(float(n.clip(0).sum()), 1.0)
        pooled_mean = mean.sum(axis=0) / total_n
        within = _psd((second.sum(axis=0) - np.einsum("a,ai,aj->ij", 1 / np.maximum(n, 1), mean, mean)) / total_n)
        means = [(pooled_mean[:r] + pooled_mean[r:]) / 2]
        covs = [stationary(_psd(second.sum(axis=0) / total_n - np.outer(pooled_mean, pooled_mean)))]
        self.table_ = np.zeros((n_activities + 1, PHASES), dtype=np.int64)
        self.activities_ = list(range(n_activities))
        log_mean = np.zeros((n_activities + 1, spread.shape[1]))
        log_var = np.zeros_like(log_mean)
        log_mean[0] = spread.sum(axis=0) / total_n * LOG_SPREAD_BOUND
        log_var[0] = spread2.sum(axis=0) / total_n * LOG_SPREAD_BOUND**2 - log_mean[0] ** 2
        for a in np.flatnonzero(n >= 1):
            m = mean[a] / n[a]
            cov = _psd(second[a] / n[a] - np.outer(m, m))
            self.table_[a + 1] = len(means)
            means.append((m[:r] + m[r:]) / 2)
            covs.append(stationary(_psd(shrink(cov, float(n[a]), within))))
            log_mean[a + 1] = spread[a] / n[a] * LOG_SPREAD_BOUND
            log_var[a + 1] = spread2[a] / n[a] * LOG_SPREAD_BOUND**2 - log_mean[a + 1] ** 2
        for a in np.flatnonzero(n < 1):
            log_mean[a + 1], log_var[a + 1] = log_mean[0], log_var[0]
        self.spread_mean_ = log_mean
        self.spread_root_ = np.stack([np.diag(np.sqrt(np.clip(v, 0, None))) for v in log_var])
        self._factors(np.stack(means), np.stack(covs))

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "privacy": self.privacy_.to_dict()}

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        self.privacy_ = Privacy(**state["privacy"])
