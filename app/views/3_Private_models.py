"""Private models page: train differentially private ANN / spiking VAEs, compare ε against utility
and membership-inference risk, look at samples and reconstructions.

The page only queues ``dp_train`` / ``dp_sweep`` jobs (validated with their parameter classes first)
and reads their stored outputs. The ε shown is always the accountant's ε for the noise used.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui  # noqa: E402

from anonaudit.store import datasets as dataset_store  # noqa: E402

st.set_page_config(page_title="anonaudit · private models", layout="wide")
st.title("Differentially private generative models")
st.caption("ANN and fully spiking (FSVAE-style) VAEs trained with DP-SGD (Opacus). Give a target ε and the noise "
           "is computed for it, or give the noise and see the ε it spends (RDP accountant, PRV cross-check). "
           "Every model is audited with membership-inference attacks.")

# heavy imports after the first elements, so the title shows at once on a cold start (issue 19)
from anonaudit.jobs.kinds.dp_train import HEADLINE  # noqa: E402
from anonaudit.private.data import MNIST_DEFAULT  # noqa: E402

sources = ["digits"] + (["mnist"] if MNIST_DEFAULT.is_dir() else []) + [d["name"] for d in dataset_store.list_datasets()]

st.subheader("Train one model")
left, mid, right = st.columns(3)
data = left.selectbox("Data", sources, key="data")
model = mid.selectbox("Model", ["ann", "spiking"], key="model")
mode = right.radio("Privacy", ["target ε", "noise multiplier", "no DP"], horizontal=True, key="mode")
epsilon = left.number_input("ε", value=10.0, step=1.0, key="epsilon", disabled=mode != "target ε")
noise = mid.number_input("noise multiplier σ", value=1.0, step=0.1, key="noise", disabled=mode != "noise multiplier")
delta = right.number_input("δ (0 = default 1/(10·N))", value=0.0, format="%.2e", key="delta")
epochs = left.number_input("epochs", min_value=1, value=10, key="epochs")
batch = mid.number_input("expected batch (units per step)", min_value=1, value=250, key="batch")
n_steps = right.number_input("spiking time steps T", min_value=1, value=16, key="n_steps")
subject = st.checkbox("Subject-level privacy (sensor data: a subject's windows are one unit)", key="subject")
if st.button("Queue training", type="primary", key="train"):
    ui.submit("dp_train", {
        "data": data, "model": model, "epochs": int(epochs), "batch_size": int(batch), "n_steps": int(n_steps),
        "epsilon": float(epsilon) if mode == "target ε" else None,
        "noise_multiplier": float(noise) if mode == "noise multiplier" else None,
        "delta": float(delta) or None, "subject_level": bool(subject)})

st.subheader("Privacy–utility sweep")
left, mid, right = st.columns(3)
sweep_data = left.multiselect("Datasets", sources, default=["digits"], key="sweep_data")
sweep_models = mid.multiselect("Models", ["ann", "spiking"], default=["ann", "spiking"], key="sweep_models")
sweep_eps = right.multiselect("ε", ["1", "5", "10", "∞"], default=["1", "5", "10", "∞"], key="sweep_eps")
sweep_epochs = left.number_input("epochs per run", min_value=1, value=10, key="sweep_epochs")
if st.button("Queue sweep", key="sweep"):
    ui.submit("dp_sweep", {
        "datasets": sweep_data, "models": sweep_models, "settings": {"epochs": int(sweep_epochs)},
        "epsilons": [None if e == "∞" else float(e) for e in sweep_eps]})


def _results(jobs: list[dict]) -> pd.DataFrame:
    rows = []
    for job in jobs:
        if job["status"] == "succeeded":
            result = job.get("result") or {}
            rows.append({"job": job["id"], **{k: result.get(k) for k in ("dataset", "model", *HEADLINE)}})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["epsilon"] = table["epsilon"].map(lambda e: "∞" if e is None or not math.isfinite(e) else round(e, 3))
    return table


trained = ui.recent("dp_train")
sweeps = ui.recent("dp_sweep")
if trained:
    st.subheader("Trained models")
    ui.jobs_table(trained)
    table = _results(trained)
    if not table.empty:
        best = table.iloc[0]
        cols = st.columns(3)
        cols[0].metric("ε (accountant)", str(best["epsilon"]))
        cols[1].metric("membership AUC", "–" if best["mia_auc"] is None else f"{best['mia_auc']:.3f}")
        cols[2].metric("reconstruction MSE", "–" if best["recon_mse"] is None else f"{best['recon_mse']:.4f}")
        st.dataframe(table.dropna(axis=1, how="all"), hide_index=True, width="stretch")
if sweeps:
    st.subheader("Sweeps")
    ui.jobs_table(sweeps)
chosen = ui.pick_finished(trained + sweeps, "Show samples, reconstructions, curves and audits of job", key="show")
if chosen is not None:
    ui.show_outputs(chosen)
