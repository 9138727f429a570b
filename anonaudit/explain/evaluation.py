"""The R-LIME paper's quantitative experiments as plain functions (no database, no files).

Setup (§4.1): the data is discretised (quantile bins, categories as they are), split 80/10/10
(train/validation/test, as in the Anchor code: 7,639/955/955 rows of recidivism), and a random
forest (50 trees) trained on the training codes is the black box; the Gaussian is fitted on the
training codes. For each test instance drawn at random:

* §4.2 — LIME (once) and R-LIME at each τ of ``accuracy_taus``; 10,000 fresh samples inside
  R-LIME's rectangle are labelled by the black box, and both linear models are scored on them.
* §4.3 — R-LIME and Anchor at each τ of ``coverage_taus``; both rules' coverage is measured on the
  same 10,000 unconditional Gaussian samples (Anchor's own estimate is kept too).
* §5.2 — R-LIME's estimated accuracy against the true accuracy from the §4.2 samples.

R-LIME explanations are shared between §4.2 and §4.3 where the τ are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from anonaudit.errors import ParameterError
from anonaudit.explain.baselines import LimeExplanation, explain_anchor, explain_lime
from anonaudit.explain.explanation import Explanation
from anonaudit.explain.rlime import RLime, RLimeExplanation
from anonaudit.explain.tabular import Discretiser, TabularData
from anonaudit.progress import ProgressFn, null_progress

ACCURACY_TAUS = (0.7, 0.8, 0.9)
COVERAGE_TAUS = (0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


@dataclass
class Setup:
    """Data, discretisation, split and black box shared by every experiment."""

    data: TabularData
    discretiser: Discretiser
    codes: np.ndarray
    train: np.ndarray  # row indices
    test: np.ndarray
    model: Any
    test_accuracy: float

    def explainer(self, tau: float, **params: Any) -> RLime:
        return RLime(self.model, tau=tau, discretiser=self.discretiser, model_input="codes",
                     **params).fit(self.data.X.iloc[self.train])


def prepare(data: TabularData, *, n_trees: int = 50, seed: int = 0, balance: bool = False) -> Setup:
    """Discretise, split 80/10/10 and train the random-forest black box on the training codes.

    ``balance`` first down-samples every class to the smallest one's size, as the R-LIME
    reference's data loader does by default (``balance=True``; it samples with replacement, we
    without): the black box then predicts both classes equally often and rules get longer.
    """
    from sklearn.ensemble import RandomForestClassifier

    if n_trees < 1:
        raise ParameterError("n_trees", f"must be >= 1, got {n_trees}")
    rng = np.random.default_rng(seed)
    rows = np.arange(len(data.y))
    if balance:
        classes, counts = np.unique(data.y, return_counts=True)
        rows = np.concatenate([rng.choice(np.flatnonzero(data.y == c), counts.min(), replace=False) for c in classes])
    order = rng.permutation(rows)
    n_train = int(0.8 * len(order))
    n_val = (len(order) - n_train) // 2
    train, test = order[:n_train], order[n_train + n_val:]
    disc = Discretiser().fit(data.X.iloc[train])
    codes = disc.transform(data.X)
    model = RandomForestClassifier(n_estimators=n_trees, random_state=int(rng.integers(2**31)), n_jobs=1)
    model.fit(codes[train], data.y[train])
    acc = float((model.predict(codes[test]) == data.y[test]).mean())
    return Setup(data, disc, codes, train, test, model, acc)


@dataclass
class PaperResults:
    """Per-(instance, τ) rows of the experiments, their summaries, and example explanations."""

    local: pd.DataFrame  # §4.2 and §5.2: one row per instance and accuracy τ
    coverage: pd.DataFrame  # §4.3: one row per instance and coverage τ
    examples: list[list[Explanation]] = field(default_factory=list)  # Figs. 6-7: per instance LIME, Anchor, R-LIME

    def summary(self) -> pd.DataFrame:
        """Per τ: mean ± std of local accuracies (LIME, R-LIME) and coverages (Anchor, R-LIME)."""
        acc = self.local.groupby("tau").agg(
            rlime_local_acc=("rlime_true_acc", "mean"), rlime_local_acc_std=("rlime_true_acc", "std"),
            lime_local_acc=("lime_local_acc", "mean"), lime_local_acc_std=("lime_local_acc", "std"))
        cov = self.coverage.groupby("tau").agg(
            rlime_coverage=("rlime_coverage", "mean"), rlime_coverage_std=("rlime_coverage", "std"),
            anchor_coverage=("anchor_coverage", "mean"), anchor_coverage_std=("anchor_coverage", "std"),
            rlime_valid_share=("rlime_valid", "mean"), rlime_seconds=("rlime_seconds", "median"),
            anchor_seconds=("anchor_seconds", "median"))
        return acc.join(cov, how="outer").reset_index()

    def deviation(self) -> dict[str, float]:
        """§5.2 (Table 2): estimated vs true accuracy of R-LIME's surrogates (valid rules only)."""
        v = self.local[self.local["rlime_valid"]]
        diff = v["rlime_true_acc"] - v["rlime_est_acc"]
        return {"n": int(len(v)), "estimated_mean": float(v["rlime_est_acc"].mean()),
                "estimated_std": float(v["rlime_est_acc"].std()), "true_mean": float(v["rlime_true_acc"].mean()),
                "true_std": float(v["rlime_true_acc"].std()), "acc_deviation_mean": float(diff.abs().mean()),
                "acc_deviation_std": float(diff.abs().std()), "signed_deviation_mean": float(diff.mean()),
                "signed_deviation_std": float(diff.std())}


def rule_coverage(features: Sequence[int], x: np.ndarray, samples: np.ndarray) -> float:
    """Share of ``samples`` (codes) that have the instance's code on every rule feature."""
    return float((samples[:, list(features)] == x[list(features)]).all(axis=1).mean())


def run_paper_experiments(setup: Setup, *, n_instances: int = 100, accuracy_taus: Sequence[float] = ACCURACY_TAUS,
                          coverage_taus: Sequence[float] = COVERAGE_TAUS, n_eval: int = 10_000,
                          lime_samples: int = 5000, n_examples: int = 2, seed: int = 0,
                          rlime_params: dict[str, Any] | None = None,
                          progress: ProgressFn = null_progress) -> PaperResults:
    """§4.2, §4.3 and §5.2 on ``n_instances`` random test instances."""
    if not 1 <= n_instances <= len(setup.test):
        raise ParameterError("n_instances", f"must be in [1, {len(setup.test)}] (test rows), got {n_instances}")
    for tau in (*accuracy_taus, *coverage_taus):
        if not 0 < tau < 1:
            raise ParameterError("tau", f"must be in (0, 1), got {tau}")
    rng = np.random.default_rng(seed)
    taus = sorted(set(accuracy_taus) | set(coverage_taus))
    explainers = {tau: setup.explainer(tau, **(rlime_params or {})) for tau in taus}
    any_exp = explainers[taus[0]]
    train_codes = setup.codes[setup.train]
    local_rows: list[dict[str, Any]] = []
    cov_rows: list[dict[str, Any]] = []
    examples: list[list[Explanation]] = []
    instances = rng.choice(setup.test, size=n_instances, replace=False)
    for k, row in enumerate(instances):
        progress(k / n_instances, f"instance {k + 1} of {n_instances}")
        x = setup.codes[row]
        target = int(any_exp.black_box_.labels(x[None, :], rng)[0])
        shown_values = any_exp.discretiser_.values(setup.data.X.iloc[[row]])
        lime = explain_lime(any_exp.black_box_, train_codes, x, target, rng, n_samples=lime_samples,
                            instance=shown_values)
        shared = any_exp.sampler_.sample([()], x, n_eval, rng)[0]
        shown: list[Explanation] = [lime]
        for tau in taus:
            exp = explainers[tau].explain(setup.data.X.iloc[[row]], seed=int(rng.integers(2**31)))
            base = {"instance": int(row), "tau": tau, "rlime_valid": exp.valid, "rlime_rule": " AND ".join(exp.rule),
                    "rlime_rule_length": len(exp.rule), "rlime_est_acc": exp.accuracy, "rlime_seconds": exp.seconds,
                    "rlime_black_box_calls": exp.black_box_calls, "rlime_black_box_batches": exp.black_box_batches}
            if tau in accuracy_taus:
                local_rows.append({**base, **_local_accuracy(explainers[tau], exp, lime, x, n_eval, rng)})
            if tau in coverage_taus:
                anchor = explain_anchor(any_exp.black_box_, train_codes, x, target, tau, rng, instance=shown_values,
                                        delta=explainers[tau].delta, epsilon=explainers[tau].epsilon,
                                        beam_size=explainers[tau].beam_size)
                cov_rows.append({**base, "rlime_coverage": rule_coverage(exp.features, x, shared),
                                 "rlime_own_coverage": exp.coverage, "anchor_coverage": rule_coverage(
                                     anchor.features, x, shared), "anchor_own_coverage": anchor.coverage,
                                 "anchor_precision": anchor.accuracy, "anchor_rule": " AND ".join(anchor.rule),
                                 "anchor_seconds": anchor.seconds, "anchor_black_box_calls": anchor.black_box_calls})
                if k < n_examples and tau in (min(taus), max(taus)):
                    shown += [anchor, exp]
        if k < n_examples:
            examples.append(shown)
    progress(1.0, f"{n_instances} instances explained")
    return PaperResults(pd.DataFrame(local_rows), pd.DataFrame(cov_rows), examples)


def _local_accuracy(explainer: RLime, exp: RLimeExplanation, lime: LimeExplanation, x: np.ndarray, n: int,
                    rng: np.random.Generator) -> dict[str, float]:
    """Both linear models scored on ``n`` fresh black-box-labelled samples inside R-LIME's rectangle."""
    z = explainer.sampler_.sample([tuple(exp.features)], x, n, rng)[0]
    target = explainer.black_box_.classes.index(exp.predicted_class)
    y = explainer.black_box_.labels(z, rng) == target
    return {"rlime_true_acc": float((explainer.surrogate_predict(exp, z) == y).mean()),
            "lime_local_acc": float((lime.predict(z) == y).mean()), "rlime_coverage_own": exp.coverage}
