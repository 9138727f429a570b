"""Explain page: R-LIME beside LIME and Anchor for one instance, and the R-LIME paper's experiments.

The page only queues ``explain`` / ``explain_eval`` jobs and reads their stored outputs; the black
box is a forest the job trains, or the model an earlier explain job stored (uploaded pickles are
not accepted: loading one runs arbitrary code in the worker).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui  # noqa: E402

from anonaudit.errors import AnonauditError  # noqa: E402
from anonaudit.store import jobs as job_store  # noqa: E402

METHOD_NAMES = {"rlime": "R-LIME", "lime": "LIME", "anchor": "Anchor"}

st.set_page_config(page_title="anonaudit · explain", layout="wide")
st.title("Explain a prediction")
st.caption("R-LIME finds a rule (a rectangle of the input space) inside which a linear surrogate imitates the "
           "black box with accuracy above τ; LIME and Anchor explain the same instance for comparison.")

# heavy imports after the first elements, so the title shows at once on a cold start (issue 19)
from anonaudit.jobs.kinds.explain import default_data_path, load_data  # noqa: E402


@st.cache_data(show_spinner=False)
def _features(path: str, kind: str) -> pd.DataFrame:
    """The instances as the job will see them (the loader's coding of recidivism / Adult)."""
    data = load_data(path, kind, None)
    return data.X.assign(target=data.y)


def _source() -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Data parameters of the job and the data's raw frame (for choosing the target and instance)."""
    choices = ["Upload a CSV"] + [n for n in ("recidivism", "adult") if default_data_path(n).exists()]
    kind = st.radio("Data", choices, horizontal=True)
    if kind != "Upload a CSV":
        path = str(default_data_path(kind))
        return {"data": path, "format": kind}, _features(path, kind)
    upload = st.file_uploader("CSV with one row per instance and a target column", type=["csv"])
    if upload is None:
        return {}, None
    try:
        stored = ui.stored_upload(upload, (".csv",))
        frame = pd.read_csv(stored, skipinitialspace=True)
    except (AnonauditError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        st.error(f"{upload.name}: {exc}")
        return {}, None
    if frame.shape[1] < 2 or frame.empty:
        st.error(f"{upload.name}: needs a header, at least two columns and one row")
        return {}, None
    target = st.selectbox("Target column (what the black box predicts)", list(frame.columns),
                          index=len(frame.columns) - 1)
    return {"data": str(stored), "format": "csv", "target": target}, frame


def _models() -> dict[str, str]:
    """Black boxes on offer: a new forest, or the stored model of a finished explain job."""
    models = {"a random forest trained by the job": "forest"}
    for job in job_store.list_jobs(kind="explain", status="succeeded", limit=50):
        if any(a["name"] == "model.joblib" for a in job_store.job_artifacts(job["id"])):
            models[f"the model of explain job {job['id']} ({Path(job['params']['data']).name})"] = f"job:{job['id']}"
    return models


st.subheader("New explanation")
data_params, frame = _source()
if frame is not None:
    models = _models()
    with st.form("explain"):
        model = st.selectbox("Black box", list(models))
        left, right = st.columns(2)
        index = left.number_input(f"Instance (row 0 … {len(frame) - 1})", min_value=0, max_value=len(frame) - 1,
                                  value=0, step=1)
        tau = right.slider("τ (required local accuracy of the surrogate)", 0.55, 0.95, 0.8, 0.05)
        imbalance = left.selectbox("Imbalanced labels (paper §5.1)", ["none", "weighted", "balance"])
        baselines = right.checkbox("Also run LIME and Anchor", value=True)
        go = st.form_submit_button("Queue explanation", type="primary")
    st.dataframe(frame.iloc[[int(index)]], hide_index=True, width="stretch")
    if go:
        ui.submit("explain", {**data_params, "model": models[model], "index": int(index),
                              "tau": float(tau), "imbalance": imbalance, "baselines": baselines})


def _card(exp: dict[str, Any]) -> None:
    """One method's explanation: rule, accuracy, coverage, cost, and its five largest weights."""
    st.markdown(f"#### {METHOD_NAMES.get(exp['method'], exp['method'])}")
    if exp["method"] != "lime":
        st.markdown("**Rule:** " + (" AND ".join(f"`{p}`" for p in exp["rule"]) or "the whole input space"))
    metrics = st.columns(2)
    metrics[0].metric("accuracy" if exp["method"] == "rlime" else "precision",
                      "–" if exp["accuracy"] is None else f"{exp['accuracy']:.3f}")
    metrics[1].metric("coverage", f"{exp['coverage']:.3f}")
    if exp.get("faithful") is False:
        st.warning(f"This surrogate does not predict **{exp['predicted_class']}** at the instance itself, where the "
                   "black box does: its weights describe the neighbourhood, not this prediction.")
    st.caption(f"{exp['black_box_calls']:,} black-box rows in {exp['black_box_batches']} calls, "
               f"{exp['seconds']:.2f} s, seed {exp['seed']}")
    weights = sorted(exp["weights"].items(), key=lambda kv: -abs(kv[1]))[:5]
    if weights:
        st.bar_chart(pd.DataFrame(weights, columns=["feature", "weight"]).set_index("feature"), horizontal=True,
                     sort=False)
        st.caption(f"Largest weights first: positive pushes toward **{exp['predicted_class']}**, negative away "
                   "from it (|weights| sum to 1).")


def _explanations(job_id: int) -> dict[str, Any] | None:
    path = job_store.artifact_files(job_id).get("explanations.json")
    return json.loads(path.read_text()) if path is not None else None


explain_jobs = ui.recent("explain")
if explain_jobs:
    st.subheader("Explanations")
    ui.jobs_table(explain_jobs)
    chosen = ui.pick_finished(explain_jobs, "Show explanation of job")
    if chosen is not None:
        exps = _explanations(chosen)
        if exps is None:
            ui.show_outputs(chosen)
        else:
            rlime = exps["rlime"]
            st.markdown(f"Why **{rlime['predicted_class']}** for the instance "
                        + ", ".join(f"{k} = {v}" for k, v in rlime["instance"].items()))
            if not rlime["valid"]:
                st.warning("R-LIME found no rule whose accuracy bound exceeds τ; shown is the best candidate.")
            if "anchor" in exps:
                st.caption("Coverage: the share of the same perturbation samples (drawn around the instance from "
                           "the training data) on which each rule holds, so the methods compare on one basis.")
            for column, method in zip(st.columns(len(exps)), ("rlime", "lime", "anchor")):
                if method in exps:
                    with column:
                        _card(exps[method])

st.subheader("The R-LIME paper's experiments")
st.caption("Local accuracy of LIME vs R-LIME inside R-LIME's rules (§4.2), coverage of Anchor vs R-LIME (§4.3), "
           "estimated vs true accuracy (§5.2), on a 50-tree random forest.")
available = [n for n in ("recidivism", "adult") if default_data_path(n).exists()]
if not available:
    st.info("The recidivism and Adult files are not beside this installation (../shared/datasets).")
else:
    with st.form("explain_eval"):
        dataset = st.selectbox("Dataset", available)
        n_instances = st.number_input("Test instances", min_value=1, max_value=1000, value=20, step=1)
        run = st.form_submit_button("Queue experiments")
    if run:
        ui.submit("explain_eval", {"dataset": dataset, "n_instances": int(n_instances)})
eval_jobs = ui.recent("explain_eval")
if eval_jobs:
    ui.jobs_table(eval_jobs)
    chosen_eval = ui.pick_finished(eval_jobs, "Show experiments of job")
    if chosen_eval is not None:
        ui.show_outputs(chosen_eval)
