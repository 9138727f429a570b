"""Perturbation samples: a Gaussian fitted on the training codes, conditioned on a rule.

As in the R-LIME reference, ordered codes (bins, ordered or binary categories) are one Gaussian
dimension each and are mapped back by rounding and clipping. Unordered categories with more than
two values are one-hot blocks instead (mapped back by argmax), so a nominal code never gets a
meaningless "between" value. Conditioning on a rule fixes the rule's features at the instance's
codes and uses the Gaussian conditional (pseudo-inverse: one-hot blocks make Σ singular).
Everything is batched: many rules × many samples in one matrix product.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Rule = tuple[int, ...]


class CodeSpace:
    """Codes ``(n, m)`` ⇄ real vectors ``(n, D)``: ordered codes as numbers, nominal ones one-hot."""

    def __init__(self, n_values: np.ndarray, nominal: np.ndarray, names: Sequence[str],
                 categories: Sequence[Sequence[object]]) -> None:
        self.n_values = np.asarray(n_values, dtype=np.int64)
        self.nominal = np.asarray(nominal, dtype=bool)
        widths = np.where(self.nominal, self.n_values, 1)
        self.start = np.concatenate([[0], np.cumsum(widths)[:-1]])
        self.width = widths
        self.dim = int(widths.sum())
        self.columns: list[str] = []
        for j, name in enumerate(names):
            self.columns += [f"{name}={c}" for c in categories[j]] if self.nominal[j] else [name]
        self._ord = np.flatnonzero(~self.nominal)
        self._ord_cols = self.start[self._ord]
        self._nom = np.flatnonzero(self.nominal)

    def columns_of(self, features: Sequence[int]) -> np.ndarray:
        """Expanded column indices of the given features."""
        if len(features) == 0:
            return np.empty(0, dtype=np.int64)
        return np.concatenate([np.arange(self.start[j], self.start[j] + self.width[j]) for j in features])

    def encode(self, codes: np.ndarray) -> np.ndarray:
        """``(..., m)`` codes → ``(..., D)`` floats."""
        out = np.zeros((*codes.shape[:-1], self.dim))
        out[..., self._ord_cols] = codes[..., self._ord]
        for j in self._nom:
            np.put_along_axis(out, (self.start[j] + codes[..., j:j + 1]).astype(np.int64), 1.0, axis=-1)
        return out

    def decode(self, z: np.ndarray) -> np.ndarray:
        """``(..., D)`` floats → nearest valid codes ``(..., m)``."""
        codes = np.empty((*z.shape[:-1], len(self.n_values)), dtype=np.int64)
        codes[..., self._ord] = np.clip(np.rint(z[..., self._ord_cols]), 0, self.n_values[self._ord] - 1)
        for j in self._nom:
            codes[..., j] = np.argmax(z[..., self.start[j]:self.start[j] + self.width[j]], axis=-1)
        return codes


class GaussianSampler:
    """Multivariate normal fitted on encoded training codes; conditional draws per rule (cached)."""

    def __init__(self, space: CodeSpace, train_codes: np.ndarray) -> None:
        self.space = space
        enc = space.encode(train_codes)
        self.mean = enc.mean(axis=0)
        self.cov = np.atleast_2d(np.cov(enc, rowvar=False))
        self._cache: dict[Rule, tuple[np.ndarray, np.ndarray]] = {}
        self._target = b""

    def conditional(self, rule: Rule, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and a square-root factor ``L`` (Σ = L Lᵀ) of the Gaussian given the rule's features."""
        if target.tobytes() != self._target:  # the cache holds one instance's rules only
            self._cache, self._target = {}, target.tobytes()
        hit = self._cache.get(rule)
        if hit is not None:
            return hit
        fixed = self.space.columns_of(rule)
        free = np.setdiff1d(np.arange(self.space.dim), fixed)
        mean = self.mean.copy()
        cov = self.cov.copy()
        if len(fixed):
            x_f = self.space.encode(target)[fixed]
            gain = self.cov[np.ix_(free, fixed)] @ np.linalg.pinv(self.cov[np.ix_(fixed, fixed)], hermitian=True)
            mean[free] += gain @ (x_f - self.mean[fixed])
            mean[fixed] = x_f
            cov = np.zeros_like(self.cov)
            cov[np.ix_(free, free)] = self.cov[np.ix_(free, free)] - gain @ self.cov[np.ix_(fixed, free)]
        vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
        factor = vecs * np.sqrt(np.clip(vals, 0.0, None))
        self._cache[rule] = (mean, factor)
        return mean, factor

    def sample(self, rules: Sequence[Rule], target: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """Codes ``(len(rules), n, m)``: ``n`` draws per rule, the rule's features equal to ``target``'s."""
        params = [self.conditional(r, target) for r in rules]
        means = np.stack([p[0] for p in params])
        factors = np.stack([p[1] for p in params])
        eps = rng.standard_normal((len(rules), n, self.space.dim))
        codes = self.space.decode(means[:, None, :] + eps @ factors.transpose(0, 2, 1))
        for i, rule in enumerate(rules):  # exact, whatever rounding did
            codes[i][:, list(rule)] = target[list(rule)]
        return codes
