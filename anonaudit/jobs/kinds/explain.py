"""Job kinds ``explain`` (R-LIME beside LIME and Anchor for one instance) and ``explain_eval``
(the R-LIME paper's quantitative experiments on recidivism or Adult).

``explain`` takes a CSV with a target column, the recidivism/Adult files, or the windows of an
imported sensor dataset (``format="windows"``: readable window features, target ``activity`` or
``subject``), and a black box: a scikit-learn model file (joblib/pickle) taking the raw columns,
the ``model.joblib`` of an earlier ``explain`` job (``job:ID``), ``forest`` — a random forest the
job trains — or one of the platform's feature models (``logreg``, ``lda``, ``knn``: the activity
and re-identification attackers of the evaluation). Trained models are stored as ``model.joblib``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anonaudit.errors import DataError, ParameterError
from anonaudit.evaluate.attackers import FEATURE_MODELS, feature_estimator
from anonaudit.explain import figures
from anonaudit.explain.baselines import explain_anchor, explain_lime
from anonaudit.explain.blackbox import load_model
from anonaudit.explain.evaluation import ACCURACY_TAUS, COVERAGE_TAUS, prepare, rule_coverage, run_paper_experiments
from anonaudit.explain.explanation import Explanation
from anonaudit.explain.rlime import IMBALANCE, RLime
from anonaudit.explain.tabular import TabularData, load_adult, load_csv, load_recidivism
from anonaudit.explain.windows import window_table
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.params import parse_params
from anonaudit.jobs.registry import job_kind
from anonaudit.progress import ProgressFn, scaled

FORMATS = ("csv", "recidivism", "adult", "windows")
TRAINABLE = ("forest", *(m for m in FEATURE_MODELS if m != "forest"))  # black boxes the job trains itself


def load_data(path: str, format: str, target: str | None) -> TabularData:
    """The data of an explain job from files: a CSV with ``target``, or the recidivism / Adult files."""
    if format == "csv":
        if not target:
            raise ParameterError("target", "a CSV needs the name of its target column")
        return load_csv(path, target)
    if format == "recidivism":
        return load_recidivism(path)
    if format == "adult":
        return load_adult(path)
    raise ParameterError("format", f"must be one of {FORMATS[:3]} for files, got {format!r}")


def job_data(p: "ExplainParams") -> tuple[TabularData, pd.DataFrame | None]:
    """The data and, for sensor windows, where each row's window comes from."""
    if p.format == "windows":
        from anonaudit.jobs.datasets import open_dataset

        return window_table(open_dataset(p.data), p.window_s, p.stride_s, p.target or "activity")
    return load_data(p.data, p.format, p.target), None


@dataclass
class ExplainParams:
    data: str
    target: str | None = None
    format: str = "csv"
    model: str = "forest"
    n_trees: int = 50
    index: int = 0
    instance: dict[str, Any] | None = None
    tau: float = 0.8
    delta: float = 0.05
    epsilon: float = 0.05
    beam_size: int = 10
    batch_size: int = 10
    init_samples: int = 1000
    coverage_samples: int = 10_000
    max_rule_length: int | None = None
    imbalance: str = "none"
    balance_mu: float = 0.1
    baselines: bool = True
    lime_samples: int = 5000
    window_s: float = 2.56
    stride_s: float = 1.28

    def check(self) -> None:
        if self.format not in FORMATS:
            raise ParameterError("format", f"must be one of {FORMATS}, got {self.format!r}")
        if not 0 < self.tau < 1:
            raise ParameterError("tau", f"must be in (0, 1), got {self.tau}")
        if self.imbalance not in IMBALANCE:
            raise ParameterError("imbalance", f"must be one of {IMBALANCE}, got {self.imbalance!r}")
        if self.n_trees < 1:
            raise ParameterError("n_trees", f"must be >= 1, got {self.n_trees}")


def train_black_box(data: TabularData, model: str, n_trees: int, seed: int) -> Any:
    """A model the job trains on the raw columns (categories one-hot encoded): the ``n_trees`` random
    forest of the R-LIME paper, or one of the platform's feature models."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    cats = [c for c in data.X.columns if isinstance(data.X[c].dtype, pd.CategoricalDtype)]
    nums = [c for c in data.X.columns if c not in cats]
    prep = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), cats), ("num", "passthrough", nums)])
    estimator = (RandomForestClassifier(n_trees, random_state=seed, n_jobs=1) if model == "forest"
                 else feature_estimator(model, seed))
    return Pipeline([("prep", prep), ("model", estimator)]).fit(data.X, data.y)


def _dumps(model: Any) -> bytes:
    import io

    import joblib

    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.getvalue()


def _job_model(spec: str) -> Path:
    """Path of the ``model.joblib`` stored by job ``job:ID``."""
    from anonaudit.store import jobs as job_store

    try:
        job_id = int(spec.split(":", 1)[1])
    except ValueError:
        raise ParameterError("model", f"expected job:ID, got {spec!r}") from None
    path = job_store.artifact_files(job_id).get("model.joblib")
    if path is not None:
        return path
    raise ParameterError("model", f"job {job_id} stored no model.joblib")


def _instance(data: TabularData, p: ExplainParams) -> pd.DataFrame:
    if p.instance is not None:
        return pd.DataFrame([p.instance])
    if not 0 <= p.index < len(data.y):
        raise ParameterError("index", f"must be in [0, {len(data.y) - 1}] (data rows), got {p.index}")
    return data.X.iloc[[p.index]].reset_index(drop=True)


def _weights_table(exps: list[Explanation]) -> pd.DataFrame:
    """Every method's weights, largest magnitude first."""
    rows = [{"method": e.method, "feature": k, "weight": v} for e in exps
            for k, v in sorted(e.weights.items(), key=lambda kv: -abs(kv[1]))]
    return pd.DataFrame(rows, columns=["method", "feature", "weight"])


def explain_and_record(ctx: JobContext, p: ExplainParams, data: TabularData, origin: pd.DataFrame | None,
                       progress: ProgressFn, prefix: str = "") -> dict[str, Any]:
    """Train or load the black box, explain one instance with R-LIME (and LIME, Anchor), store it all.

    Artifacts and result keys carry ``prefix`` so that the main job can hold this stage beside others.
    """
    if p.model in TRAINABLE:
        progress(0.0, f"training the black box ({p.model})")
        model = train_black_box(data, p.model, p.n_trees, ctx.seed)
        ctx.write_bytes(f"{prefix}model.joblib", _dumps(model))
    else:
        model = load_model(_job_model(p.model) if p.model.startswith("job:") else p.model)
    explainer = RLime(model, tau=p.tau, delta=p.delta, epsilon=p.epsilon, beam_size=p.beam_size,
                      batch_size=p.batch_size, init_samples=p.init_samples, coverage_samples=p.coverage_samples,
                      max_rule_length=p.max_rule_length, imbalance=p.imbalance, balance_mu=p.balance_mu,
                      model_input="raw", seed=ctx.seed).fit(data.X)
    instance = _instance(data, p)
    progress(0.1, "R-LIME")
    exp = explainer.explain(instance)
    exps: list[Explanation] = []
    if p.baselines:
        rng = np.random.default_rng(ctx.seed)
        x = np.asarray(exp.codes)
        target = explainer.black_box_.classes.index(exp.predicted_class)
        progress(0.6, "LIME")
        exps.append(explain_lime(explainer.black_box_, explainer.train_codes_, x, target, rng, p.lime_samples,
                                 instance=exp.instance))
        progress(0.7, "Anchor")
        exps.append(explain_anchor(explainer.black_box_, explainer.train_codes_, x, target, p.tau, rng,
                                   instance=exp.instance, delta=p.delta, epsilon=p.epsilon, beam_size=p.beam_size))
        # Anchor measures coverage on training rows, R-LIME on its perturbation samples: on COMPAS that flipped
        # which rule was broader in 2 of 10 explanations. Every rule is measured on the same samples here.
        shared = explainer.sampler_.sample([()], x, p.coverage_samples, rng)[0]
        for e in exps:
            e.coverage = rule_coverage(e.features, x, shared)
    exps.append(exp)
    for e in exps:
        if e.faithful is False:
            ctx.log(f"{e.method}'s surrogate does not predict '{exp.predicted_class}' at the instance itself, where "
                    f"the black box does: its weights describe the neighbourhood, not this prediction", "warning")
    where = {} if origin is None or p.instance is not None else origin.iloc[p.index].to_dict()
    ctx.write_json(f"{prefix}explanations.json", {e.method: e.to_dict() for e in exps} | {"window": where})
    ctx.write_dataframe(f"{prefix}weights", _weights_table(exps))
    ctx.write_bytes(f"{prefix}explanations.png", figures.explanations(
        exps, f"{data.name}: why '{exp.predicted_class}' for the instance"))
    for e in exps:
        for name in ("accuracy", "coverage", "seconds", "black_box_calls"):
            if getattr(e, name) is not None:
                ctx.metric(f"{prefix}{e.method}_{name}", float(getattr(e, name)), method=e.method)
    progress(1.0, "explained")
    out = {"predicted_class": exp.predicted_class, "rule": " AND ".join(exp.rule) or "(whole input space)",
           "valid": exp.valid, "faithful": exp.faithful, "accuracy": round(exp.accuracy, 4), "coverage": round(exp.coverage, 4),
           "black_box_calls": exp.black_box_calls, "seconds": round(exp.seconds, 3), "seed": exp.seed,
           **({"anchor_rule": " AND ".join(exps[1].rule), "anchor_coverage": round(exps[1].coverage, 4)}
              if p.baselines else {}),
           **{f"window_{k}": v for k, v in where.items()}}
    return {f"{prefix}{k}": v for k, v in out.items()}


@job_kind("explain", params=ExplainParams, paths=("data", "model"))
def run_explain(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(ExplainParams, ctx.params)
    ctx.progress(0.0, "loading data")
    data, origin = job_data(p)
    return explain_and_record(ctx, p, data, origin, scaled(ctx.progress, 0.05, 1.0))


@dataclass
class ExplainEvalParams:
    dataset: str = "recidivism"
    path: str | None = None
    n_instances: int = 100
    n_trees: int = 50
    balance: bool = False
    accuracy_taus: list[float] | None = None
    coverage_taus: list[float] | None = None
    n_eval: int = 10_000
    lime_samples: int = 5000
    n_examples: int = 2

    def check(self) -> None:
        if self.dataset not in ("recidivism", "adult"):
            raise ParameterError("dataset", f"must be recidivism or adult, got {self.dataset!r}")
        if self.n_instances < 1:
            raise ParameterError("n_instances", f"must be >= 1, got {self.n_instances}")


def default_data_path(dataset: str) -> Path:
    """The shared real data beside the repository (``../shared/datasets``)."""
    root = Path(__file__).resolve().parents[4] / "shared" / "datasets"
    return root / "recidivism" / "Data_1980.csv" if dataset == "recidivism" else root / "adult"


@job_kind("explain_eval", params=ExplainEvalParams, paths=("path",))
def run_explain_eval(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(ExplainEvalParams, ctx.params)
    path = Path(p.path) if p.path else default_data_path(p.dataset)
    if not path.exists():
        raise DataError("not found (give the dataset's path)", file=path)
    ctx.progress(0.0, f"loading {p.dataset}, training the black box")
    setup = prepare(load_recidivism(path) if p.dataset == "recidivism" else load_adult(path),
                    n_trees=p.n_trees, seed=ctx.seed, balance=p.balance)
    res = run_paper_experiments(setup, n_instances=p.n_instances, accuracy_taus=p.accuracy_taus or ACCURACY_TAUS,
                                coverage_taus=p.coverage_taus or COVERAGE_TAUS, n_eval=p.n_eval,
                                lime_samples=p.lime_samples, n_examples=p.n_examples, seed=ctx.seed,
                                progress=scaled(ctx.progress, 0.02, 0.97))
    summary = res.summary()
    deviation = res.deviation()
    ctx.write_dataframe("local_accuracy", res.local)
    ctx.write_dataframe("coverage", res.coverage)
    ctx.write_dataframe("summary", summary)
    ctx.write_json("deviation.json", deviation)
    name = f"{p.dataset}{' (balanced)' if p.balance else ''}, {p.n_trees}-tree forest, {p.n_instances} test instances"
    ctx.write_bytes("fig8a_local_accuracy.png", figures.local_accuracy(res.local, f"Local accuracy ({name})"))
    ctx.write_bytes("fig8b_coverage.png", figures.coverage(res.coverage, f"Coverage ({name})"))
    ctx.write_bytes("table2_accuracy_deviation.png", figures.accuracy_deviation(res.local, "Estimated vs true accuracy"))
    for i, exps in enumerate(res.examples):
        ctx.write_bytes(f"fig6_example_{i + 1}.png", figures.explanations(exps, f"{p.dataset}: instance {i + 1}"))
    for row in summary.to_dict("records"):
        for key, value in row.items():
            if key != "tau" and not pd.isna(value):
                ctx.metric(key, float(value), tau=row["tau"])
    for key, value in deviation.items():
        ctx.metric(key, value)
    ctx.metric("black_box_test_accuracy", setup.test_accuracy)
    ctx.progress(1.0, "done")
    return {"dataset": p.dataset, "n_instances": p.n_instances, "black_box_test_accuracy": round(setup.test_accuracy, 4),
            "acc_deviation_mean": round(deviation["acc_deviation_mean"], 4),
            **{f"rlime_coverage@{r['tau']:.2f}": round(r["rlime_coverage"], 4) for r in summary.to_dict("records")
               if not pd.isna(r["rlime_coverage"])},
            **{f"anchor_coverage@{r['tau']:.2f}": round(r["anchor_coverage"], 4) for r in summary.to_dict("records")
               if not pd.isna(r["anchor_coverage"])}}
