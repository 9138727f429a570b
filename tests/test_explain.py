"""R-LIME (issue 7): bounds, sampler, planted rule, reproducibility, multi-class, bad input, job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anonaudit.errors import DataError, ParameterError
from anonaudit.explain import Discretiser, RLime
from anonaudit.explain.kl_lucb import kl_bernoulli, kl_lower, kl_upper
from anonaudit.explain.sampler import CodeSpace, GaussianSampler

FAST = {"init_samples": 300, "burn_in": 50, "coverage_samples": 2000, "beam_size": 4, "batch_growth": 0.25}


def planted_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Two binary flags, a nominal colour and two continuous columns."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "a": pd.Categorical(rng.choice(["no", "yes"], n), categories=["no", "yes"], ordered=True),
        "b": rng.integers(0, 2, n),
        "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
        "c": rng.normal(size=n),
        "d": rng.normal(size=n),
    })


class PlantedModel:
    """Linear in ``c`` where a = yes; a checkerboard in (c, d) elsewhere (no linear model fits there)."""

    classes_ = np.array(["neg", "pos"])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        c, d = X["c"].to_numpy(float), X["d"].to_numpy(float)
        pos = np.where(X["a"].astype(str) == "yes", c > 0, (c > 0) ^ (d > 0))
        return np.column_stack([~pos, pos]).astype(float)


class ThreeClass:
    """high where d is in its top quartile; elsewhere low / mid by the sign of c (cuts at bin edges)."""

    classes_ = np.array(["low", "mid", "high"])

    def __init__(self, X: pd.DataFrame) -> None:
        self.c_cut = np.percentile(X["c"], 50)
        self.d_cut = np.percentile(X["d"], 75)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        c, d = X["c"].to_numpy(float), X["d"].to_numpy(float)
        k = np.where(d > self.d_cut, 2, (c > self.c_cut).astype(int))
        return np.eye(3)[k]


def explainer(model: object, X: pd.DataFrame, **params: object) -> RLime:
    return RLime(model, model_input="raw", **{**FAST, **params}).fit(X)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- KL-LUCB bounds
def test_kl_bounds_bracket_the_mean_and_meet_the_level() -> None:
    p = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    level = np.full(5, 0.05)
    ub, lb = kl_upper(p, level), kl_lower(p, level)
    assert np.all(lb <= p) and np.all(p <= ub) and np.all((lb >= 0) & (ub <= 1))
    inner = (p > 0) & (p < 1)
    assert np.allclose(kl_bernoulli(p[inner], ub[inner]), 0.05, atol=2e-3)
    assert np.allclose(kl_bernoulli(p[inner], lb[inner]), 0.05, atol=2e-3)
    assert np.all(kl_upper(p, 0.01) <= ub) and np.all(kl_lower(p, 0.01) >= lb)  # more samples: tighter


# ---------------------------------------------------------------------------- sampler
def test_conditional_sampler_keeps_fixed_features_and_valid_codes() -> None:
    X = planted_frame()
    d = Discretiser().fit(X)
    codes = d.transform(X)
    space = CodeSpace(d.n_values, d.nominal, d.names, [f.values for f in d.features])
    sampler = GaussianSampler(space, codes)
    x = codes[7]
    draws = sampler.sample([(0,), (2, 4), ()], x, 500, np.random.default_rng(1))
    assert draws.shape == (3, 500, 5)
    assert np.all(draws[0][:, 0] == x[0])
    assert np.all(draws[1][:, [2, 4]] == x[[2, 4]])
    assert np.all((draws >= 0) & (draws < d.n_values))
    assert len(np.unique(draws[2][:, 2])) == 3  # the nominal colour takes all its values unconditionally
    assert d.nominal.tolist() == [False, False, True, False, False]


def test_conditional_mean_follows_correlation() -> None:
    rng = np.random.default_rng(0)
    c = rng.normal(size=5000)
    X = pd.DataFrame({"c": c, "e": c + 0.1 * rng.normal(size=5000)})
    d = Discretiser().fit(X)
    codes = d.transform(X)
    space = CodeSpace(d.n_values, d.nominal, d.names, [f.values for f in d.features])
    x = np.array([3, 3])
    draws = GaussianSampler(space, codes).sample([(0,)], x, 2000, rng)[0]
    assert draws[:, 1].mean() > 2.5  # e follows c into its top bin


# ---------------------------------------------------------------------------- R-LIME
def test_recovers_planted_rule() -> None:
    X = planted_frame()
    row = X[(X["a"] == "yes") & (X["c"] > 1)].iloc[[0]]
    exp = explainer(PlantedModel(), X, tau=0.85, seed=3).explain(row)
    assert exp.valid
    assert "a = yes" in exp.rule
    assert exp.accuracy_lower > 0.85
    assert abs(exp.weights["c"]) == max(abs(v) for v in exp.weights.values())
    assert exp.weights["c"] > 0
    assert np.isclose(sum(abs(v) for v in exp.weights.values()), 1.0)
    assert 0.3 < exp.coverage < 0.7  # about half the data has a = yes
    assert exp.black_box_calls > 0 and exp.seed == 3


def test_same_seed_same_explanation() -> None:
    X = planted_frame()
    ex = explainer(PlantedModel(), X, tau=0.85)
    first, second = ex.explain(X.iloc[[5]], seed=11), ex.explain(X.iloc[[5]], seed=11)
    assert first.rule == second.rule
    assert first.weights == second.weights
    assert first.black_box_calls == second.black_box_calls


def test_multiclass_explains_predicted_class_against_the_rest() -> None:
    X = planted_frame()
    model = ThreeClass(X)
    row = X[(X["c"] > 0.5) & (X["d"] < 0)].iloc[[0]]
    exp = explainer(model, X, tau=0.9, seed=2).explain(row)
    assert exp.predicted_class == "mid"
    assert exp.valid and exp.accuracy_lower > 0.9
    assert exp.coverage > 0.2
    high = explainer(model, X, tau=0.9, seed=2).explain(X[X["d"] > 1.5].iloc[[0]])
    assert high.predicted_class == "high" and high.valid


def test_imbalance_options_run() -> None:
    X = planted_frame()
    for option in ("weighted", "balance"):
        exp = explainer(PlantedModel(), X, tau=0.8, imbalance=option).explain(X.iloc[[1]])
        if exp.valid and option == "balance":
            assert (exp.target_share - 0.5) ** 2 < 0.1


# ---------------------------------------------------------------------------- bad input
def test_bad_input_is_one_clear_error() -> None:
    X = planted_frame(300)
    with pytest.raises(ParameterError, match="model"):
        RLime(object()).fit(X)
    for tau in (0.0, 1.0, 1.5):
        with pytest.raises(ParameterError, match="tau"):
            RLime(PlantedModel(), tau=tau)
    ex = explainer(PlantedModel(), X)
    bad = X.iloc[[0]].astype({"colour": object})
    bad.loc[bad.index[0], "colour"] = "purple"
    with pytest.raises(DataError, match="colour.*unseen category 'purple'"):
        ex.explain(bad)
    with pytest.raises(DataError, match="'d'.*missing"):
        ex.explain(X.iloc[[0]].drop(columns=["d"]))
    with pytest.raises(DataError, match="'extra'.*unexpected"):
        ex.explain(X.iloc[[0]].assign(extra=1))
    from sklearn.linear_model import LogisticRegression

    needs_e = LogisticRegression().fit(X[["c", "d"]].assign(e=0.0), X["b"])
    with pytest.raises(DataError, match="'e'"):
        explainer(needs_e, X)


def test_model_file_errors(tmp_path: Path) -> None:
    import joblib
    from sklearn.svm import LinearSVC

    from anonaudit.explain.blackbox import load_model

    X = planted_frame(200)
    joblib.dump(LinearSVC().fit(X[["c", "d"]], X["b"]), tmp_path / "svc.joblib")
    with pytest.raises(ParameterError, match="model.*predict_proba"):
        load_model(tmp_path / "svc.joblib")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ParameterError, match="model.*junk.pkl is not a joblib/pickle model"):
        load_model(tmp_path / "junk.pkl")
    with pytest.raises(ParameterError, match="not found"):
        load_model(tmp_path / "missing.joblib")


# ---------------------------------------------------------------------------- job kind
def test_explain_job_end_to_end(db_url: str, tmp_path: Path) -> None:
    import json

    from anonaudit import api
    from anonaudit.store import jobs as job_store

    X = planted_frame(600)
    frame = X.assign(label=PlantedModel().predict_proba(X)[:, 1] > 0.5)
    csv = tmp_path / "planted.csv"
    frame.to_csv(csv, index=False)
    job = api.run("explain", {"data": str(csv), "target": "label", "index": 3, "tau": 0.75, "n_trees": 10,
                              "init_samples": 300, "coverage_samples": 2000, "beam_size": 4, "lime_samples": 500},
                  seed=5)
    assert job["status"] == "succeeded", job.get("error")
    assert job["result"]["seed"] == 5
    names = {a["name"] for a in job["artifacts"]}
    assert {"explanations.json", "weights.csv", "explanations.png", "model.joblib"} <= names
    # they read right: the instance by its own values, weights by magnitude, coverage on one basis
    files = job_store.artifact_files(job["id"])
    exps = json.loads(files["explanations.json"].read_text())
    row = frame.iloc[3]
    for method in ("rlime", "lime", "anchor"):
        shown = exps[method]["instance"]
        assert set(shown) == set(X.columns)
        for name, value in shown.items():  # its own values, not "name = bin"
            assert "=" not in value and "<" not in value, (name, value)
            if isinstance(row[name], float):
                assert float(value) == pytest.approx(row[name], rel=1e-5)
    assert exps["rlime"]["faithful"] in (True, False) and exps["lime"]["faithful"] in (True, False)
    assert exps["anchor"]["faithful"] is None
    # coverage on the same perturbation samples: rules that hold on the same rows can be compared
    assert all(0 <= exps[m]["coverage"] <= 1 for m in ("rlime", "anchor")) and exps["lime"]["coverage"] == 1.0
    weights = pd.read_csv(files["weights.csv"])
    for _, part in weights.groupby("method"):
        assert (np.diff(part["weight"].abs().to_numpy()) <= 1e-12).all()  # largest magnitude first
    again = api.run("explain", {"data": str(csv), "target": "label", "index": 3, "tau": 0.75,
                                "model": f"job:{job['id']}", "baselines": False, "init_samples": 300,
                                "coverage_samples": 2000, "beam_size": 4}, seed=5)
    assert again["status"] == "succeeded", again.get("error")
    assert again["result"]["rule"] == job["result"]["rule"]


def test_rules_print_enough_decimals_that_no_interval_is_empty() -> None:
    from anonaudit.explain.tabular import BINNED, FeatureCoding

    f = FeatureCoding("x", BINNED, edges=np.array([0.0071, 0.0123, 0.0131, 2.5]))
    shown = [f.predicate(c) for c in range(f.n_values)]
    assert shown[1] == "0.007 < x <= 0.012" and shown[2] == "0.012 < x <= 0.013", shown
    for interval in shown[1:-1]:
        low, high = interval.split(" < x <= ")
        assert float(low) < float(high), interval
    assert FeatureCoding("y", BINNED, edges=np.array([1.0, 2.0])).predicate(2) == "y > 2.00"  # two decimals suffice


def test_explain_job_names_bad_parameters(db_url: str, tmp_path: Path) -> None:
    from anonaudit import api

    csv = tmp_path / "planted.csv"
    planted_frame(100).assign(label=1).to_csv(csv, index=False)
    with pytest.raises(ParameterError, match="tau"):
        api.run("explain", {"data": str(csv), "target": "label", "tau": 1.2})
    with pytest.raises(DataError, match="nope"):
        api.run("explain", {"data": str(csv), "target": "nope"})


# ---------------------------------------------------------------------------- paper experiments, CLI
def test_paper_experiments_on_tiny_data() -> None:
    from anonaudit.explain.evaluation import prepare, run_paper_experiments
    from anonaudit.explain.tabular import TabularData

    X = planted_frame(800)
    y = np.where(PlantedModel().predict_proba(X)[:, 1] > 0.5, "pos", "neg")
    setup = prepare(TabularData(X, y, "planted"), n_trees=5, seed=0)
    res = run_paper_experiments(setup, n_instances=2, accuracy_taus=(0.8,), coverage_taus=(0.8,), n_eval=500,
                                lime_samples=300, n_examples=1, rlime_params=FAST)
    assert len(res.local) == 2 and len(res.coverage) == 2
    row = res.summary().iloc[0]
    assert 0 <= row["lime_local_acc"] <= 1 and 0 <= row["rlime_local_acc"] <= 1
    assert 0 <= row["anchor_coverage"] <= 1 and 0 <= row["rlime_coverage"] <= 1
    assert [e.method for e in res.examples[0]] == ["lime", "anchor", "rlime"]
    assert set(res.deviation()) >= {"acc_deviation_mean", "estimated_mean", "true_mean"}


def test_balanced_setup_has_equal_classes() -> None:
    from anonaudit.explain.evaluation import prepare
    from anonaudit.explain.tabular import TabularData

    X = planted_frame(500)
    y = np.where(X["c"] > 0.8, "pos", "neg")  # about 21 % positive
    setup = prepare(TabularData(X, y, "planted"), n_trees=2, seed=0, balance=True)
    rows = np.concatenate([setup.train, setup.test])
    assert len(np.unique(rows)) == len(rows)
    counts = np.unique(y[setup.train], return_counts=True)[1]
    assert abs(counts[0] - counts[1]) < 0.2 * counts.sum()


def test_cli_explain_bad_tau_is_one_line(db_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    csv = tmp_path / "planted.csv"
    planted_frame(100).assign(label=1).to_csv(csv, index=False)
    res = subprocess.run([sys.executable, "-m", "anonaudit", "explain", str(csv), "--target", "label", "--tau", "1.5"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error:") and "'tau'" in res.stderr
    assert "Traceback" not in res.stderr


def test_explains_the_platforms_feature_models_on_sensor_windows(db_url: str, tmp_path: Path) -> None:
    from anonaudit import api
    from anonaudit.data.synthetic import SampleSpec, write_sample_data
    from anonaudit.explain.windows import readable_columns

    write_sample_data(tmp_path / "s", SampleSpec(n_subjects=4, n_trials=2, duration_s=3.0))
    api.import_dataset(tmp_path / "s" / "mapping.toml", name="s")
    ds_name = "s"
    job = api.run("explain", {"data": ds_name, "format": "windows", "target": "subject", "model": "lda",
                              "index": 5, "window_s": 1.0, "stride_s": 0.5, "lime_samples": 300, "init_samples": 300,
                              "coverage_samples": 2000, "beam_size": 4})
    assert job["status"] == "succeeded", job.get("error")
    result = job["result"]
    assert result["predicted_class"] in {"P01", "P02", "P03", "P04"} and result["window_subject"]
    features = readable_columns(list(api.open_dataset(ds_name).channels))
    assert any(name in result["rule"] for name in features) or result["rule"] == "(whole input space)"
    with pytest.raises(ParameterError, match="'target'"):
        api.run("explain", {"data": ds_name, "format": "windows", "target": "gender"})
    with pytest.raises(ParameterError, match="'format'"):
        api.run("explain", {"data": ds_name, "format": "excel"})
