"""Evaluation page: utility, re-identification (frozen and retrained attackers), soft biometrics."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui  # noqa: E402

from anonaudit.store import datasets as dataset_store  # noqa: E402

st.set_page_config(page_title="anonaudit · evaluate", layout="wide")
st.title("Evaluate privacy and utility")
st.caption("HAR on unseen subjects; re-identification by the frozen network and by attackers retrained on the "
           "released data, per window and per recording; chance levels and subject-bootstrap CIs beside every score.")

# heavy imports after the first elements, so the title shows at once on a cold start (issue 19)
from anonaudit.evaluate.attackers import classifier_names  # noqa: E402

names = [d["name"] for d in dataset_store.list_datasets()]
if not names:
    st.info("No datasets yet: run the main job or import one first.")
    st.stop()
models = classifier_names()
with st.form("evaluate"):
    dataset = st.selectbox("Dataset", names)
    released = st.selectbox("Released version (optional)", ["—", *names])
    har = st.selectbox("HAR model", [m for m in models if not m.endswith("_act")], index=models.index("logreg"))
    attackers = st.multiselect("Retrained attackers", models, default=["knn", "logreg_act"])
    window_s = st.number_input("Window (s)", value=2.56, min_value=0.1)
    epochs = st.number_input("Epochs (deep models)", value=8, min_value=1, step=1)
    go = st.form_submit_button("Queue evaluation", type="primary")
if go:
    ui.submit("evaluate", {"dataset": dataset, "released": None if released == "—" else released,
                           "har_model": har, "attackers": attackers, "window_s": float(window_s),
                           "stride_s": float(window_s) / 2, "epochs": int(epochs)})

jobs = ui.recent("evaluate")
if jobs:
    st.subheader("Evaluation jobs")
    ui.jobs_table(jobs)
    chosen = ui.pick_finished(jobs, "Show results of job")
    if chosen is not None:
        ui.show_outputs(chosen)
