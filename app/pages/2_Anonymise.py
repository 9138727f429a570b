"""Anonymisation page: train an anonymiser, release under pseudonyms, check the release."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui  # noqa: E402

from anonaudit.anonymise.anonymiser import METHODS  # noqa: E402
from anonaudit.jobs.kinds.anonymise import AnonymiseParams, ReleaseCheckParams  # noqa: E402
from anonaudit.store import datasets as dataset_store  # noqa: E402

st.set_page_config(page_title="anonaudit · anonymise", layout="wide")
st.title("Anonymise and release")
st.caption("GAN (Anon_AG, Anon_AcG), identity transfer (Anon_DFI) and baselines. Releases carry random pseudonyms; "
           "the linkage stays private to this store. A release check retrains attackers on the release.")

datasets = dataset_store.list_datasets()
originals = [d["name"] for d in datasets if d["format"] != "release"]
if not originals:
    st.info("No datasets yet: run the main job or import one first.")
    st.stop()
with st.form("anonymise"):
    dataset = st.selectbox("Dataset", originals)
    method = st.selectbox("Method", METHODS, index=METHODS.index("anon_acg"))
    name = st.text_input("Release name (optional)")
    target = st.text_input("DFI target subject (optional)")
    gan_epochs = st.number_input("GAN epochs", value=8, min_value=1, step=1)
    window_s = st.number_input("Window (s)", value=2.56, min_value=0.1)
    go = st.form_submit_button("Queue anonymisation", type="primary")
if go:
    ui.submit("anonymise", AnonymiseParams, {"dataset": dataset, "method": method, "name": name or None,
                                             "target": target or None, "gan_epochs": int(gan_epochs),
                                             "window_s": float(window_s), "stride_s": float(window_s) / 2})

releases = [d for d in datasets if d["format"] == "release"]
if releases:
    st.subheader("Releases")
    frame = pd.DataFrame(releases)[["name", "n_subjects", "n_recordings", "releasable", "created_at"]]
    frame["releasable"] = frame["releasable"].map({True: "yes", False: "NO", None: "not checked"})
    st.dataframe(frame, hide_index=True, width="stretch")
    with st.form("check"):
        chosen = st.selectbox("Release to check", [d["name"] for d in releases])
        threshold = st.text_input("Highest acceptable recording-level re-identification (0–1; empty: twice chance)")
        check = st.form_submit_button("Queue release check")
    if check:
        try:
            value = float(threshold) if threshold.strip() else None
        except ValueError:
            st.error(f"threshold: {threshold!r} is not a number")
        else:
            ui.submit("release_check", ReleaseCheckParams, {"dataset": chosen, "threshold": value})

jobs = ui.recent("anonymise") + ui.recent("release_check")
if jobs:
    st.subheader("Anonymisation and release-check jobs")
    ui.jobs_table(sorted(jobs, key=lambda j: -j["id"]))
    done = sorted((j["id"] for j in jobs if j["status"] in ("succeeded", "failed")), reverse=True)
    if done:
        ui.show_outputs(st.selectbox("Show results of job", done))
