"""R-LIME (Ohara et al.): a linear surrogate inside the largest rectangle where it is accurate.

A rule is a conjunction of predicates "feature has the instance's code" (a rectangle in code
space). Beam search grows rules one predicate at a time; KL-LUCB picks the ``beam_size`` rules
whose surrogates are most accurate; a rule is accepted when the lower confidence bound of its
surrogate's accuracy exceeds τ, and the search stops at the first rule length that has one,
returning the accepted rule with the largest coverage.

Beyond the reference code (``rlime==0.1.1``):

* **Multi-class**: the surrogate separates the predicted class from the rest.
* **Vectorised**: all draws of one bandit round — the initial samples of every new candidate,
  or the two arms KL-LUCB pulls — are one batched Gaussian draw and one ``predict_proba`` call;
  coverage is a boolean reduction over shared unconditional samples.
* **Surrogate**: each candidate keeps an online logistic regression updated by one Newton step
  per batch on its accumulated Hessian (a Laplace filter), so it is near its batch optimum after
  a few batches; the reference's single SGD step per batch stays close to a constant predictor.
  Accuracy is estimated prequentially (each batch is scored *before* the surrogate learns from
  it), after a burn-in batch that is used for training only. Every scored sample is a Bernoulli
  draw given the past, so the KL bounds hold for the average accuracy of the surrogates seen,
  which, as the surrogate improves, is a conservative estimate of the final one's (§5.2).
* **Imbalanced labels** (§5.1): ``imbalance="weighted"`` weighs the logistic loss by inverse
  class frequency; ``imbalance="balance"`` only accepts rules whose share of the predicted class
  p satisfies (p − ½)² < ``balance_mu``.
* **Fewer model calls**: KL-LUCB means start from the initial samples (the reference starts
  them at ½); pulls grow geometrically (``batch_growth``), so rounds — each one ``predict_proba``
  call — are logarithmic in the samples needed; a model on codes is never asked twice about the
  same row (label cache); in the validity check, rules whose coverage cannot beat a rule already
  shown valid are not sampled further; the reference also labels its coverage samples, we don't.
* **Reproducible**: every random draw comes from ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from threadpoolctl import threadpool_limits

from anonaudit.errors import DataError, ParameterError
from anonaudit.explain.blackbox import BlackBox
from anonaudit.explain.explanation import Explanation, normalise
from anonaudit.explain.kl_lucb import kl_lower, kl_upper, lucb_beta, validity_beta
from anonaudit.explain.sampler import CodeSpace, GaussianSampler, Rule
from anonaudit.explain.tabular import Discretiser

IMBALANCE = ("none", "weighted", "balance")


@dataclass
class RLimeExplanation(Explanation):
    """R-LIME's explanation: a rule (rectangle) and the linear surrogate valid inside it."""

    accuracy_lower: float = 0.0  # lower confidence bound of the accuracy; valid when above tau
    valid: bool = False  # False: no rule reached the bound; the most accurate candidate is returned
    tau: float = 0.0
    target_share: float = 0.0  # share of the predicted class among the rule's samples
    n_samples: int = 0  # samples drawn under the chosen rule
    coef: list[float] = field(repr=False, default_factory=list)  # surrogate on encoded codes
    intercept: float = field(repr=False, default=0.0)


class _Arms:
    """State of a set of candidate rules, one row per rule: counts and online surrogates."""

    def __init__(self, rules: list[Rule], dim: int, l2: float, coverage: np.ndarray) -> None:
        k = len(rules)
        self.rules = rules
        self.coverage = coverage
        self.n = np.zeros(k)  # scored samples
        self.rewards = np.zeros(k)
        self.drawn = np.zeros(k, dtype=np.int64)  # all samples, burn-in included
        self.pos = np.zeros(k)  # samples of the predicted class
        self.sum = np.zeros((k, dim))
        self.sumsq = np.zeros((k, dim))
        self.w = np.zeros((k, dim + 1))
        self.hess = np.broadcast_to(l2 * np.eye(dim + 1), (k, dim + 1, dim + 1)).copy()

    def mean(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        return self.rewards[idx] / np.maximum(self.n[idx], 1)

    def learn(self, idx: np.ndarray, phi: np.ndarray, y: np.ndarray, score: bool, weighted: bool) -> None:
        """Score the batch with the current surrogates (if ``score``), then one Newton step each."""
        X = np.concatenate([phi, np.ones((*phi.shape[:2], 1))], axis=2)  # (k, b, D+1)
        logits = np.einsum("kbd,kd->kb", X, self.w[idx])
        if score:
            self.rewards[idx] += ((logits > 0) == y).sum(axis=1)
            self.n[idx] += y.shape[1]
        self.drawn[idx] += y.shape[1]
        self.pos[idx] += y.sum(axis=1)
        self.sum[idx] += phi.sum(axis=1)
        self.sumsq[idx] += (phi**2).sum(axis=1)
        c = np.ones_like(logits)
        if weighted:  # inverse class frequency over everything this arm has seen
            share = np.clip(self.pos[idx] / self.drawn[idx], 1e-3, 1 - 1e-3)[:, None]
            c = np.where(y, 0.5 / share, 0.5 / (1 - share))
        p = expit(logits)
        grad = np.einsum("kb,kbd->kd", c * (p - y), X)
        self.hess[idx] += (X * (c * p * (1 - p))[..., None]).transpose(0, 2, 1) @ X
        self.w[idx] -= np.linalg.solve(self.hess[idx], grad[..., None])[..., 0]

    def std(self, i: int) -> np.ndarray:
        m = self.sum[i] / self.drawn[i]
        return np.sqrt(np.clip(self.sumsq[i] / self.drawn[i] - m**2, 0.0, None))


class RLime:
    """R-LIME explainer in scikit-learn style: parameters here, ``fit`` on training data, ``explain``.

    ``model`` is any classifier with ``predict_proba``; ``model_input="codes"`` when it was
    trained on the discretised codes (as in the paper), ``"raw"`` when on the raw columns.
    """

    def __init__(self, model: Any, *, tau: float = 0.8, delta: float = 0.05, epsilon: float = 0.05,
                 epsilon_stop: float = 0.05, beam_size: int = 10, batch_size: int = 10,
                 batch_growth: float = 0.3, init_samples: int = 1000, burn_in: int = 100,
                 coverage_samples: int = 10_000,
                 max_rule_length: int | None = None, max_samples_per_rule: int = 20_000,
                 imbalance: str = "none", balance_mu: float = 0.1, l2: float = 1.0,
                 model_input: str = "codes", discretiser: Discretiser | None = None, seed: int = 0) -> None:
        self.model = model
        self.tau = tau
        self.delta = delta
        self.epsilon = epsilon
        self.epsilon_stop = epsilon_stop
        self.beam_size = beam_size
        self.batch_size = batch_size
        self.batch_growth = batch_growth
        self.init_samples = init_samples
        self.burn_in = burn_in
        self.coverage_samples = coverage_samples
        self.max_rule_length = max_rule_length
        self.max_samples_per_rule = max_samples_per_rule
        self.imbalance = imbalance
        self.balance_mu = balance_mu
        self.l2 = l2
        self.model_input = model_input
        self.discretiser = discretiser
        self.seed = seed
        self.check()

    def check(self) -> None:
        """ParameterError naming the first invalid parameter."""
        for name in ("tau", "delta", "epsilon", "epsilon_stop"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ParameterError(name, f"must be in (0, 1), got {value}")
        for name in ("beam_size", "batch_size", "init_samples", "coverage_samples", "max_samples_per_rule"):
            if getattr(self, name) < 1:
                raise ParameterError(name, f"must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.batch_growth <= 1:
            raise ParameterError("batch_growth", f"must be in [0, 1], got {self.batch_growth}")
        if not 0 <= self.burn_in < self.init_samples:
            raise ParameterError("burn_in", f"must be in [0, init_samples), got {self.burn_in}")
        if self.imbalance not in IMBALANCE:
            raise ParameterError("imbalance", f"must be one of {IMBALANCE}, got {self.imbalance!r}")
        if not 0 < self.balance_mu <= 0.25:
            raise ParameterError("balance_mu", f"must be in (0, 0.25], got {self.balance_mu}")

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame) -> RLime:
        """Learn the discretisation (unless given) and the sampling Gaussian from training data."""
        self.check()
        d = self.discretiser_ = self.discretiser or Discretiser().fit(X)
        self.train_codes_ = d.transform(X)
        self.black_box_ = BlackBox(self.model, d, X, self.model_input)
        self.space_ = CodeSpace(d.n_values, d.nominal, d.names,
                                [f.values for f in d.features])
        self.sampler_ = GaussianSampler(self.space_, self.train_codes_)
        return self

    def instance_codes(self, instance: pd.DataFrame | pd.Series | dict[str, Any]) -> np.ndarray:
        """Codes of one instance; DataError on wrong columns or unseen categories."""
        if not hasattr(self, "space_"):
            raise ParameterError("explainer", "call fit(training frame) before explain")
        frame = _one_row(instance)
        return self.discretiser_.transform(frame)[0]

    def predicted_class(self, instance: pd.DataFrame | pd.Series | dict[str, Any],
                        rng: np.random.Generator) -> int:
        """The black box's class for the instance (from its raw values when the model takes them)."""
        frame = _one_row(instance)
        codes = self.instance_codes(frame)
        if self.model_input == "raw":
            return int(np.argmax(self.black_box_.proba_raw(frame)[0]))
        return int(self.black_box_.labels(codes[None, :], rng)[0])

    # ------------------------------------------------------------------ explain
    def explain(self, instance: pd.DataFrame | pd.Series | dict[str, Any], seed: int | None = None) -> RLimeExplanation:
        """Explain the black box's prediction for one instance (raw feature values).

        BLAS runs single-threaded meanwhile: the solves and factorisations here are small and
        many, and a threaded BLAS on a shared machine made them hundreds of times slower.
        """
        with threadpool_limits(limits=1, user_api="blas"):
            return self._explain(instance, self.seed if seed is None else seed)

    def _explain(self, instance: pd.DataFrame | pd.Series | dict[str, Any], seed: int) -> RLimeExplanation:
        rng = np.random.default_rng(seed)
        started = time.perf_counter()
        bb = self.black_box_
        bb.forget()
        calls0, batches0 = bb.calls, bb.batches
        x = self.instance_codes(instance)
        target = self.predicted_class(instance, rng)
        m = len(x)
        max_len = m if self.max_rule_length is None else min(self.max_rule_length, m)
        cover = self.sampler_.sample([()], x, self.coverage_samples, rng)[0] == x  # (N, m)

        best: _Arms | None = None
        chosen: tuple[_Arms, int] | None = None
        for _ in range(max_len + 1):
            rules = [()] if best is None else sorted(
                {tuple(sorted((*r, f))) for r in best.rules for f in range(m) if f not in r})
            if not rules:
                break
            arms = _Arms(rules, self.space_.dim, self.l2,
                         np.array([cover[:, list(r)].all(axis=1).mean() for r in rules]))
            self._pull(arms, np.arange(len(rules)), self.init_samples, x, target, rng, init=True)
            best = self._best_candidates(arms, x, target, rng)
            pick = self._largest_valid(best, x, target, rng, m)
            if pick is not None:
                chosen = (best, pick)
                break
        assert best is not None
        valid = chosen is not None
        if chosen is None:  # no valid rule: report the candidate with the highest lower bound
            chosen = (best, int(np.argmax(self._lower(best, m))))
        return self._explanation(*chosen, x, self.discretiser_.values(_one_row(instance)), target, seed, valid=valid,
                                 seconds=time.perf_counter() - started, calls=bb.calls - calls0,
                                 batches=bb.batches - batches0)

    def _pull(self, arms: _Arms, idx: np.ndarray, n: int, x: np.ndarray, target: int,
              rng: np.random.Generator, init: bool = False) -> None:
        """Draw ``n`` samples for each arm in ``idx``, label them in one call, update the surrogates."""
        codes = self.sampler_.sample([arms.rules[i] for i in idx], x, n, rng)  # (k, n, m)
        y = (self.black_box_.labels(codes.reshape(-1, len(x)), rng) == target).reshape(len(idx), n)
        phi = self.space_.encode(codes)
        weighted = self.imbalance == "weighted"
        if not init:
            arms.learn(idx, phi, y, score=True, weighted=weighted)
            return
        step = max(self.burn_in, self.batch_size)
        if self.burn_in:
            arms.learn(idx, phi[:, :self.burn_in], y[:, :self.burn_in], score=False, weighted=weighted)
        for start in range(self.burn_in, n, step):  # test-then-train, chunk by chunk
            arms.learn(idx, phi[:, start:start + step], y[:, start:start + step], score=True, weighted=weighted)

    def _batch(self, arms: _Arms, idx: np.ndarray) -> int:
        """Samples per pulled arm: ``batch_size``, or ``batch_growth`` × what the arms have if more.

        Growing batches geometrically keeps the number of bandit rounds — hence of black-box
        invocations, which dominate the cost for ensembles — logarithmic in the samples needed,
        for at most ``batch_growth`` more samples than one-batch-at-a-time pulling.
        """
        return max(self.batch_size, int(np.ceil(self.batch_growth * arms.drawn[idx].min())))

    def _best_candidates(self, arms: _Arms, x: np.ndarray, target: int, rng: np.random.Generator) -> _Arms:
        """KL-LUCB: the ``beam_size`` most accurate arms, up to tolerance ε, with confidence 1 − δ."""
        k, b = len(arms.rules), self.beam_size
        if k > b:
            for t in range(1, 1_000_000):
                order = np.argsort(arms.mean(), kind="stable")
                top, rest = order[-b:], order[:-b]
                beta = lucb_beta(k, t, self.delta)
                ub = kl_upper(arms.mean(rest), beta / arms.n[rest])
                lb = kl_lower(arms.mean(top), beta / arms.n[top])
                if ub.max() - lb.min() <= self.epsilon:
                    break
                pulls = np.array([rest[np.argmax(ub)], top[np.argmin(lb)]])
                pulls = pulls[arms.drawn[pulls] < self.max_samples_per_rule]
                if len(pulls) == 0:
                    break
                self._pull(arms, pulls, self._batch(arms, pulls), x, target, rng)
            keep = np.sort(np.argsort(arms.mean(), kind="stable")[-b:])
        else:
            keep = np.arange(k)
        return _subset(arms, keep)

    def _largest_valid(self, arms: _Arms, x: np.ndarray, target: int, rng: np.random.Generator,
                       m: int) -> int | None:
        """The valid beam rule (acc_l > τ) of largest coverage, or None.

        Undecided rules are sampled until acc_l > τ or acc_u < τ + ε_stop, but only while their
        coverage beats the best rule already shown valid: the others cannot change the answer.
        """
        beta = validity_beta(self.delta, self.beam_size, m)
        while True:
            mean, n = arms.mean(), np.maximum(arms.n, 1)
            lb, ub = kl_lower(mean, beta / n), kl_upper(mean, beta / n)
            valid = self._valid(arms, lb)
            best = arms.coverage[valid].max() if valid.any() else -1.0
            open_ = ((lb <= self.tau) & (ub >= self.tau + self.epsilon_stop)
                     & (arms.drawn < self.max_samples_per_rule) & (arms.coverage > best))
            if not open_.any():
                break
            pulls = np.flatnonzero(open_)
            self._pull(arms, pulls, self._batch(arms, pulls), x, target, rng)
        if not valid.any():
            return None
        cand = np.flatnonzero(valid)
        return int(cand[np.lexsort((-lb[cand], -arms.coverage[cand]))[0]])

    def _lower(self, arms: _Arms, m: int) -> np.ndarray:
        """acc_l(A, δ) of every arm, at the confidence level of the final validity test."""
        return kl_lower(arms.mean(), validity_beta(self.delta, self.beam_size, m) / np.maximum(arms.n, 1))

    def _valid(self, arms: _Arms, lb: np.ndarray) -> np.ndarray:
        """acc_l > τ, and with ``imbalance="balance"`` the paper's (p − ½)² < μ on the class share p."""
        ok = lb > self.tau
        if self.imbalance == "balance":
            ok &= (arms.pos / np.maximum(arms.drawn, 1) - 0.5) ** 2 < self.balance_mu
        return ok

    def _explanation(self, arms: _Arms, i: int, x: np.ndarray, instance: dict[str, str], target: int, seed: int,
                     *, valid: bool, seconds: float, calls: int, batches: int) -> RLimeExplanation:
        d = self.discretiser_
        rule = list(arms.rules[i])
        w = arms.w[i]
        weights = normalise(w[:-1] * arms.std(i))  # per standard deviation of the input under the rule
        classes = self.black_box_.classes
        m = len(x)
        exp = RLimeExplanation(
            method="rlime", rule=d.predicates(rule, x), features=rule,
            weights={c: float(v) for c, v in zip(self.space_.columns, weights)},
            accuracy=float(arms.mean(i)), coverage=float(arms.coverage[i]),
            predicted_class=classes[target] if target < len(classes) else str(target), seed=int(seed),
            black_box_calls=int(calls), black_box_batches=int(batches), seconds=float(seconds),
            instance=instance, codes=x.tolist(),
            accuracy_lower=float(self._lower(arms, m)[i]),
            valid=valid, tau=self.tau, target_share=float(arms.pos[i] / arms.drawn[i]),
            n_samples=int(arms.drawn[i]), coef=w[:-1].tolist(), intercept=float(w[-1]))
        exp.faithful = bool(self.surrogate_predict(exp, x[None, :])[0])
        return exp

    def surrogate_predict(self, explanation: RLimeExplanation, codes: np.ndarray) -> np.ndarray:
        """The explanation's surrogate on codes ``(n, m)``: True where it predicts the explained class."""
        return self.space_.encode(codes) @ np.asarray(explanation.coef) + explanation.intercept > 0


def _subset(arms: _Arms, keep: np.ndarray) -> _Arms:
    out = _Arms.__new__(_Arms)
    for name, value in vars(arms).items():
        setattr(out, name, [value[i] for i in keep] if isinstance(value, list) else value[keep])
    return out


def _one_row(instance: pd.DataFrame | pd.Series | dict[str, Any]) -> pd.DataFrame:
    if isinstance(instance, pd.DataFrame):
        frame = instance
    elif isinstance(instance, pd.Series):
        frame = instance.to_frame().T
    elif isinstance(instance, dict):
        frame = pd.DataFrame([instance])
    else:
        raise ParameterError("instance", f"expected a one-row DataFrame, a Series or a dict, got {type(instance).__name__}")
    if len(frame) != 1:
        raise DataError(f"an instance is one row, got {len(frame)}")
    return frame.reset_index(drop=True)
