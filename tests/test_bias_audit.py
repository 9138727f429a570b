"""Representation-bias audit: design, measures, statistics, bad input, the job (resumed) and its page."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from anonaudit import api
from anonaudit.audit import statistics as audit_stats
from anonaudit.audit.advice import selection_advice
from anonaudit.audit.design import SEP, build_design, level_table
from anonaudit.audit.measures import GroupCounts, fairness_ratio, fairness_row, training_measures
from anonaudit.errors import DataError, ParameterError
from anonaudit.jobs.context import WorkerStopping
from anonaudit.jobs.worker import run_worker
from anonaudit.store import jobs as job_store

from factories import import_imu_sample
PAGE = Path(__file__).resolve().parents[1] / "app" / "views" / "4_Bias_audit.py"


def subjects_table(per_cell: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = []
    for (age, gender), n in per_cell.items():
        rows += [{"age_group": age, "gender": gender, "height_cm": 150.0 + len(rows)} for _ in range(n)]
    return pd.DataFrame(rows).assign(subject=[f"S{i:02d}" for i in range(len(rows))])


BALANCED = {("young", "F"): 4, ("young", "M"): 4, ("elderly", "F"): 4, ("elderly", "M"): 4}


# ---------------------------------------------------------------------------- design
def test_groups_subgroups_sizes_and_seeded_draws():
    subjects = subjects_table(BALANCED)
    design = build_design(subjects, ["age_group", "gender"], n_train=4, n_draws=3, seed=1)
    assert design.groups() == ["1", "2a", "2b", "3", "4"] and not design.infeasible
    cell_of = design.subjects.set_index("subject")["cell"]
    for d in design.draws:
        assert len(d.subjects) == len(set(d.subjects)) == 4  # equal training-set size in every experiment
        cells = set(cell_of[list(d.subjects)])
        assert len(cells) == d.rank == int(d.group[0])
        if d.rank == 2:
            differing = sum(a != b for a, b in zip(*(c.split(SEP) for c in cells)))
            assert differing == {"2a": 1, "2b": 2}[d.group]
    for g in design.groups():
        sets = [d.subjects for d in design.draws if d.group == g]
        assert len(sets) == 3 == len(set(sets))  # distinct draws
    again = build_design(subjects, ["age_group", "gender"], n_train=4, n_draws=3, seed=1)
    other = build_design(subjects, ["age_group", "gender"], n_train=4, n_draws=3, seed=2)
    assert again.draws == design.draws and other.draws != design.draws


def test_infeasible_groups_are_reported_not_dropped():
    subjects = subjects_table({("young", "F"): 3, ("young", "M"): 5, ("elderly", "F"): 1, ("elderly", "M"): 0})
    design = build_design(subjects, ["age_group", "gender"], n_train=4, n_draws=2, seed=0)
    assert "1" in design.groups()  # only young men can fill a homogeneous set: one cell, C(5,4) = 5 sets
    reasons = {i["group"]: i["reason"] for i in design.infeasible}
    assert "4" in reasons and "elderly · M: 0" in reasons["4"]  # an empty cell: no fully heterogeneous set
    advice = selection_advice(design).set_index("cell")
    assert advice.loc["elderly · M", "status"] == "missing" and advice.loc["elderly · M", "recruit"] == 5
    assert advice.loc["young · M", "status"] == "ok"


def test_numeric_characteristics_are_binarised_at_median_or_cut():
    subjects = subjects_table(BALANCED)
    table, levels = level_table(subjects, ["height_cm"])
    assert levels["height_cm"] == ["height_cm<156", "height_cm≥156"]  # cells at 150, 154, 158, 162 cm
    assert (table["height_cm"] == "height_cm<156").sum() == 8
    table, _ = level_table(subjects, ["height_cm", "gender"], {"height_cm": 152})
    assert (table["height_cm"] == "height_cm<152").sum() == 4
    with pytest.raises(ParameterError, match="not numeric"):
        level_table(subjects, ["gender"], {"gender": 1.0})


def test_bad_input_names_subjects_groups_and_characteristics():
    subjects = subjects_table(BALANCED)
    holes = subjects.assign(gender=subjects["gender"].where(~subjects["subject"].isin(["S03", "S07"])))
    with pytest.raises(DataError, match=r"missing for subjects \['S03', 'S07'\]"):
        build_design(holes, ["age_group", "gender"])
    with pytest.raises(DataError, match="'gender' has a single level"):
        build_design(subjects.assign(gender="F"), ["age_group", "gender"], n_train=4)
    with pytest.raises(ParameterError, match="no attribute 'handedness'"):
        build_design(subjects, ["handedness"])
    with pytest.raises(ParameterError, match="train_subjects"):
        build_design(subjects, ["age_group"], n_train=16)
    few = subjects_table({("young", "F"): 1, ("young", "M"): 1, ("elderly", "F"): 1, ("elderly", "M"): 1})
    with pytest.raises(DataError, match=r"only groups \['3'\] .*group 1: .*young · F: 1"):
        build_design(few, ["age_group", "gender"], n_train=3)


# ---------------------------------------------------------------------------- measures
def test_measures_match_hand_computation():
    y_true = np.array([0, 0, 1, 1, 0, 1, 1, 0])
    y_pred = np.array([0, 1, 1, 1, 0, 0, 1, 0])
    subject = np.array(["a", "a", "a", "a", "b", "b", "c", "c"])
    age = {"a": "young", "b": "old", "c": "old"}
    m = training_measures(y_true, y_pred, subject, ["sit", "walk"], {"age": age})
    assert m.scores["accuracy"] == pytest.approx(6 / 8)
    assert m.per_subject.set_index("subject")["accuracy"].to_dict() == pytest.approx({"a": 0.75, "b": 0.5, "c": 1.0})
    pa = m.per_activity.set_index("activity")
    assert pa.loc["walk", "recall"] == pytest.approx(3 / 4) and pa.loc["walk", "precision"] == pytest.approx(3 / 4)
    f = m.fairness.iloc[0]
    # young: 3/4 correct; old: b 1/2 + c 2/2 → 3/4 … class-wise: young sit 1/2 walk 2/2; old sit 2/2 walk 1/2
    assert f["worst_group_acc"] == pytest.approx(0.75) and f["gap"] == pytest.approx(0.0)
    assert f["fairness_ratio"] == pytest.approx(1.0) and f["min_class_acc"] == pytest.approx(0.5)
    # one-vs-rest 'walk': TPR young 1, old 1/2; FPR young 1/2, old 0 → difference 1/2 (same for 'sit')
    assert f["eod_max"] == pytest.approx(0.5)
    cw = GroupCounts.of(y_true, np.where(subject == "a", y_true, 1 - y_true), np.vectorize(age.get)(subject)).classwise()
    assert fairness_ratio(cw) == pytest.approx(0.0)  # old testers: every class wrong


def test_fairness_counts_agree_with_fairlearn():
    from fairlearn.metrics import MetricFrame, equalized_odds_difference
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 600)
    groups = rng.choice(["F", "M", "X"], 600)
    y_pred = np.where(rng.random(600) < np.where(groups == "F", 0.8, 0.55), y_true, rng.integers(0, 4, 600))
    row = fairness_row(y_true, y_pred, groups)
    by_group = MetricFrame(metrics=accuracy_score, y_true=y_true, y_pred=y_pred, sensitive_features=groups).by_group
    assert row["worst_group_acc"] == pytest.approx(by_group.min()) and row["gap"] == pytest.approx(by_group.max() - by_group.min())
    assert row["worst_group"] == by_group.idxmin()
    eod = max(equalized_odds_difference(y_true == c, y_pred == c, sensitive_features=groups) for c in range(4))
    assert row["eod_max"] == pytest.approx(eod)


# ---------------------------------------------------------------------------- statistics
def _fake_runs(effect: float, spread_falls: bool, seed: int, draws: int = 6, repeats: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    runs, subj = [], []
    for group, rank in (("1", 1), ("2a", 2), ("2b", 2), ("3", 3), ("4", 4)):
        sd = 0.08 / rank if spread_falls else 0.03
        for d in range(draws):
            level = 0.6 + effect * rank + rng.normal(0, sd)
            for r in range(repeats):
                acc = level + rng.normal(0, 0.005)
                runs.append({"network": "tcnn", "key": f"g{group}_d{d}", "group": group, "rank": rank, "repeat": r,
                             "accuracy": acc, "weighted_f1": acc - 0.02})
                subj += [{"network": "tcnn", "key": f"g{group}_d{d}", "rank": rank, "subject": f"T{t}",
                          "accuracy": acc + 0.05 * (t - 2) + rng.normal(0, 0.01)} for t in range(5)]
    return pd.DataFrame(runs), pd.DataFrame(subj)


def test_statistics_detect_a_planted_trend_and_falling_spread():
    runs, subj = _fake_runs(effect=0.04, spread_falls=True, seed=0)
    result = audit_stats.analyse(runs, subj)
    t = result.tests[result.tests["metric"] == "accuracy"].set_index("test")
    trend = t.loc[t.index.str.startswith("trend")].iloc[0]
    assert trend["p_value"] < 0.001 and trend["effect"] > 0.4 and trend["ci_low"] > 0
    spread = audit_stats.analyse(*_fake_runs(effect=0.04, spread_falls=True, seed=0, draws=15, repeats=1)).tests
    spread = spread[spread["metric"] == "accuracy"].set_index("test")
    assert spread.loc["Brown–Forsythe", "p_value"] < 0.001
    falling = spread.loc[spread.index.str.startswith("spread")].iloc[0]
    assert falling["effect"] < 0 and falling["p_value"] < 0.01
    mixed = t.loc[t.index.str.startswith("mixed")].iloc[0]
    assert mixed["effect"] == pytest.approx(0.04, abs=0.02) and mixed["p_value"] < 0.001
    pw = result.pairwise[result.pairwise["metric"] == "accuracy"]
    assert {("2a", "2b"), ("1", "4")} <= set(zip(pw["group_a"], pw["group_b"]))
    assert (pw["p_holm"] >= pw["p_value"] - 1e-12).all()
    assert pw.set_index(["group_a", "group_b"]).loc[("1", "4"), "significant"]
    assert any("rises with heterogeneity" in f for f in result.findings)
    assert (result.groups.groupby("metric")["n_draws"].sum() == 30).all()  # draws, not repeats, are the units


def test_null_data_false_positive_rate_is_about_alpha():
    ranks = np.repeat([1, 2, 2, 3, 4], 5)
    assert 0.025 <= audit_stats.null_false_positive_rate(ranks, n_sim=600, seed=3) <= 0.085
    planted = 0.6 + 0.05 * ranks + np.random.default_rng(0).normal(0, 0.01, len(ranks))
    assert 0.02 <= audit_stats.null_false_positive_rate(ranks, planted, n_sim=600, seed=3) <= 0.09  # permuted labels
    draws = [audit_stats.draw_scores(_fake_runs(0.0, False, seed)[0], "accuracy") for seed in range(100)]
    hits = sum(audit_stats.trend_test(d["value"].to_numpy(), d["rank"].to_numpy())[1] < 0.05 for d in draws)
    assert hits <= 12  # ≈ 5 of 100 expected (repeats averaged per draw); counting repeats as units would flag more
    runs, subj = _fake_runs(effect=0.0, spread_falls=False, seed=11)
    assert any("no monotone trend" in f for f in audit_stats.analyse(runs, subj).findings)


def test_power_analysis_and_small_cell_warnings():
    assert audit_stats.draws_needed(0.0, 4) is None
    big, small = audit_stats.draws_needed(0.3, 4), audit_stats.draws_needed(0.05, 4)
    assert big is not None and small is not None and big < small
    runs, subj = _fake_runs(effect=0.02, spread_falls=False, seed=0, draws=2, repeats=1)
    small_warnings = [w for w in audit_stats.analyse(runs, subj).warnings if "draw(s)" in w]
    assert len(small_warnings) == 1 and "only 2 draw(s) each" in small_warnings[0], small_warnings  # one, not one per group
    assert small_warnings[0].count(",") >= 1  # it names every small group


# ---------------------------------------------------------------------------- job, resume, CLI, page
def _import_sample(tmp_path) -> str:
    return import_imu_sample(tmp_path, n_subjects=16, n_trials=2)


FAST = {"train_subjects": 4, "draws": 2, "repeats": 1, "epochs": 1, "window_s": 0.5, "stride_s": 0.5, "n_workers": 1,
        "max_windows_per_subject": 40}


def test_job_stores_each_training_and_resumes_after_interruption(db_url, tmp_path, monkeypatch):
    from anonaudit.jobs.kinds import bias_audit

    name = _import_sample(tmp_path)
    real, calls = bias_audit.train_one, []

    def interrupted(**task):
        calls.append(task["key"])
        if len(calls) == 4:
            raise WorkerStopping("worker shutting down (test)")
        return real(**task)

    monkeypatch.setattr(bias_audit, "train_one", interrupted)
    with pytest.raises(WorkerStopping):
        api.run("bias_audit", {"dataset": name, **FAST}, seed=5)
    job = job_store.list_jobs(kind="bias_audit")[0]
    assert job["status"] == "queued"  # back in the queue, three trainings stored
    stored = {m["tags"]["training"] for m in job_store.job_metrics(job["id"]) if m["name"] == "accuracy"}
    assert stored == set(calls[:3])

    calls.clear()
    monkeypatch.setattr(bias_audit, "train_one", lambda **task: calls.append(task["key"]) or real(**task))
    assert run_worker(max_jobs=1, poll_seconds=0.1, idle_exit_seconds=5) == 1
    done = job_store.job_dict(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert len(calls) == 10 - 3 and not set(calls) & stored  # 5 groups × 2 draws, only the missing ones trained
    result = done["result"]
    assert result["resumed_trainings"] == 3 and result["trainings"] == 10 and result["groups"] == "1 2a 2b 3 4"
    assert 0 <= result["tcnn_trend_p"] <= 1 and -1 <= result["tcnn_trend_tau"] <= 1
    names = {a["name"] for a in done["artifacts"]}
    assert {"trainings.csv", "trainings.parquet", "test_table.csv", "fairness_table.csv", "pairwise.csv", "advice.csv",
            "findings.json", "box_accuracy.png", "box_weighted_f1.png", "box_accuracy_subgroups_2.png",
            "activity_precision_recall.png"} <= names
    home = Path(done["artifact_dir"])
    trainings = pd.read_csv(home / "trainings.csv")
    assert len(trainings) == 10 and trainings["accuracy"].between(0, 1).all()
    fairness = pd.read_csv(home / "fairness_table.csv")
    assert {"age_group", "gender", "cell"} == set(fairness["attribute"])
    assert json.loads((home / "findings.json").read_text())["findings"]
    assert not (home / "audit_cache").exists()


def test_job_bad_input_fails_before_training(db_url, tmp_path):
    name = _import_sample(tmp_path)
    with pytest.raises(ParameterError, match="networks"):
        api.run("bias_audit", {"dataset": name, "networks": ["resnet"]})
    with pytest.raises(ParameterError, match="no attribute 'handedness'"):
        api.run("bias_audit", {"dataset": name, "characteristics": ["handedness"], **FAST})
    with pytest.raises(ParameterError, match="'activity'.*flying"):
        api.run("bias_audit", {"dataset": name, "activity": "flying", **FAST})
    with pytest.raises(ParameterError, match="draws"):
        api.run("bias_audit", {"dataset": name, **FAST, "draws": 0})
    assert all(j["status"] == "failed" for j in job_store.list_jobs(kind="bias_audit"))
    assert not job_store.job_metrics(job_store.list_jobs(kind="bias_audit")[0]["id"])  # nothing half-stored


def test_cli_audit_and_page(db_url, tmp_path):
    from typer.testing import CliRunner

    from anonaudit.cli import app

    name = _import_sample(tmp_path)
    res = CliRunner().invoke(app, ["audit", name, "--characteristics", "age_group", "--cut", "height_cm=170"])
    assert "height_cm" in str(res.exception) and "not among the characteristics" in str(res.exception)
    res = CliRunner().invoke(app, ["audit", name, "--characteristics", "age_group,gender", "--draws", "1",
                                   "--repeats", "1", "--train-subjects", "4", "--epochs", "1", "--window-s", "0.5",
                                   "--stride-s", "0.5", "--max-windows", "20", "--workers", "2"])  # the process pool path
    assert res.exit_code == 0, res.output
    assert "bias_audit) succeeded" in res.output and "tcnn_trend_p" in res.output

    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.multiselect[0].value == ["age_group", "gender"]
    assert any("Findings" in m.value for m in at.markdown)  # the finished CLI job's results are shown
    assert len(at.dataframe) >= 4
    # the results say their own settings, warn once, and name their columns in words
    assert any(c.value.startswith("Settings of this audit: 1 draws per group × 1 training(s) per draw, 1 epoch(s)")
               for c in at.caption)
    assert len([w for w in at.warning if "Read these results with care" in w.value]) <= 1
    columns = {c for d in at.dataframe for c in d.value.columns}
    assert "p (Holm-corrected)" in columns and "p_holm" not in columns
    assert not any((d.value.astype(str) == "None").any().any() for d in at.dataframe)
    next(n for n in at.number_input if n.label.startswith("Training subjects")).set_value(4).run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    queued = job_store.list_jobs(status="queued", kind="bias_audit")
    assert len(queued) == 1 and queued[0]["params"]["characteristics"] == ["age_group", "gender"]
    at.multiselect[0].set_value(["gender", "height_cm"]).run()
    assert not at.exception and any("height_cm" in n.label for n in at.number_input)
    next(n for n in at.number_input if n.label.startswith("Training subjects")).set_value(16).run()
    assert any("train_subjects" in e.value for e in at.error)  # bad input: one clear message, no traceback


def test_audit_on_a_dask_cluster_of_separate_processes(db_url, tmp_path, monkeypatch):
    """A real cluster: ``dask scheduler`` and ``dask worker`` as their own processes, as on a team's machines;
    the job reaches it through ``--scheduler`` and every training runs on a worker."""
    import subprocess
    import sys
    import time

    from typer.testing import CliRunner

    from anonaudit.cli import app

    name = _import_sample(tmp_path)
    info = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file", str(info), "--port", "0",
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 120
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(info),
                                       "--nworkers", "2", "--nthreads", "1", "--no-dashboard", "--name", "audit-test"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            monkeypatch.setattr(os, "environ", dict(os.environ))  # --scheduler writes the environment
            res = CliRunner().invoke(app, ["--scheduler", address, "audit", name, "--characteristics", "age_group,gender",
                                           "--draws", "1", "--repeats", "1", "--train-subjects", "4", "--epochs", "1",
                                           "--window-s", "0.5", "--stride-s", "0.5", "--max-windows", "20"])
            assert res.exit_code == 0, res.output
            job = job_store.list_jobs(kind="bias_audit")[0]
            assert job["status"] == "succeeded" and job["result"]["trainings"] == 5
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
            assert len(executed) == 2 and sum(executed.values()) == 5  # every training ran on the cluster's workers
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs[::-1]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
