"""Anonymisation page: train an anonymiser, release under pseudonyms, check the release."""

from __future__ import annotations

import sys
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui  # noqa: E402

from anonaudit.anonymise.config import DEFAULT_FRONTIER, MAX_EPSILON, METHODS  # noqa: E402
from anonaudit.store import datasets as dataset_store  # noqa: E402
from anonaudit.store import jobs as job_store  # noqa: E402

st.set_page_config(page_title="anonaudit · anonymise", layout="wide")
st.title("Anonymise and release")
st.caption("Activity-conditioned synthesis (every recording a fresh draw from a model of its activities: none "
           "of its source's signal), same-activity donor mixing (every window a blend of k random subjects' windows), GAN (Anon_AG, Anon_AcG), identity transfer (Anon_DFI) and baselines. Releases carry random pseudonyms; "
           "the linkage stays private to this store. A release is judged under six threat models (frozen, "
           "retrained, informed, metadata linkage, memorisation, membership inference) and exported only if "
           "it passes, or on a "
           "steward's recorded override.")

datasets = dataset_store.list_datasets()
originals = [d["name"] for d in datasets if d["format"] != "release"]
if not originals:
    st.info("No datasets yet: run the main job or import one first.")
    st.stop()
if not ui.may_release():
    st.info(f"Signed in as {ui.current_role()}: you can read results here, but only a data steward may "
            "anonymise, check or download releases.")
with st.form("anonymise"):
    dataset = st.selectbox("Dataset", originals)
    method = st.selectbox("Method", METHODS, index=METHODS.index(DEFAULT_FRONTIER[0]))
    k = st.number_input("Donors per window (donor mixing: k subjects, ≥ 2)", value=4, min_value=2, step=1)
    epsilon = st.number_input("ε (dp_synth: subject-level differential privacy of the fitted model)", value=10.0,
                              min_value=0.01, max_value=MAX_EPSILON)
    name = st.text_input("Release name (optional)")
    target = st.text_input("DFI target subject (optional)")
    gan_epochs = st.number_input("GAN epochs", value=8, min_value=1, step=1)
    window_s = st.number_input("Window (s)", value=2.56, min_value=0.1)
    quantum = st.text_input("Round published recording lengths up to (s)",
                            help="Empty: planned from the metadata, with the grain (whole recordings or "
                                 "activity runs) and the pseudonyms (per person or per recording): the least "
                                 "coarse publication that stops both metadata-linkage attackers (measured). "
                                 "A number rounds to it (0: exact lengths); grain and pseudonyms are still planned.")
    go = st.form_submit_button("Queue anonymisation", type="primary")
if go:
    try:
        quantum_s = float(quantum) if quantum.strip() else None
    except ValueError:
        st.error(f"Round published recording lengths: {quantum!r} is not a number of seconds")
    else:
        ui.submit("anonymise", {"dataset": dataset, "method": method, "name": name or None,
                                "target": target or None, "gan_epochs": int(gan_epochs), "k": int(k),
                                "epsilon": float(epsilon),
                                "metadata_quantum_s": quantum_s, "window_s": float(window_s),
                                "stride_s": float(window_s) / 2})

with st.expander("Sweep a privacy–utility frontier and release the best point that passes"):
    st.caption("Each method's privacy knob is swept (donor: k; noise: σ; dp_synth: ε; synthesis has one point); every point is released, judged under "
               "every threat model and kept private; the most useful point that passes is exported, and the job "
               "says which and why — or that none passed.")
    with st.form("frontier"):
        sweep_dataset = st.selectbox("Dataset", originals, key="frontier_dataset")
        sweep_methods = st.multiselect("Methods", METHODS, default=list(DEFAULT_FRONTIER), key="frontier_methods")
        values = st.text_input("Knob values (comma-separated, one method only; empty: each method's own grid)",
                               key="knob_values")
        sweep = st.form_submit_button("Queue frontier")
    if sweep:
        try:
            grid = [float(v) for v in values.split(",") if v.strip()] or None
        except ValueError:
            st.error(f"Knob values: {values!r} is not a comma-separated list of numbers")
        else:
            ui.submit("frontier", {"dataset": sweep_dataset, "methods": sweep_methods, "knob_values": grid})

releases = [d for d in datasets if d["format"] == "release"]
if releases:
    st.subheader("Releases")
    frame = pd.DataFrame(releases)[["name", "n_subjects", "n_recordings", "releasable", "created_at"]]
    frame["releasable"] = frame["releasable"].map({True: "yes", False: "NO", None: "not checked"})
    st.dataframe(frame, hide_index=True, width="stretch")
    with st.form("check"):
        chosen = st.selectbox("Release to check", [d["name"] for d in releases])
        threshold = st.text_input("Highest acceptable re-identification, any threat model and level "
                                  "(0–1; empty: twice uniform chance, 2/N subjects)", key="threshold")
        check = st.form_submit_button("Queue release check")
    if check:
        try:
            value = float(threshold) if threshold.strip() else None
        except ValueError:
            st.error(f"threshold: {threshold!r} is not a number")
        else:
            ui.submit("release_check", {"dataset": chosen, "threshold": value})
    refused = [d["name"] for d in releases if d["releasable"] is False]
    if refused:
        why = ui.denied("override_release")
        with st.expander("Override a refused release (recorded: who, when, why, which verdict)"):
            st.caption("A refused release is kept out of the exported files and the downloads. Overriding exports "
                       "it anyway; the decision is stored and shown in the override job's report.")
            with st.form("override"):
                target = st.selectbox("Refused release", refused)
                reason = st.text_area("Why it may go out anyway")
                go_override = st.form_submit_button("Override and export", disabled=why is not None, help=why)
            if go_override:
                ui.submit("release_override", {"dataset": target, "reason": reason,
                                               "actor": f"{ui.current_role()} (app)"})


def _frontier_chart(table: pd.DataFrame) -> alt.LayerChart:
    """Releases as points (shape: verdict), the frontier as a line, the original data as a labelled point, and
    chance and the release limit (2 × chance) as labelled rules."""
    points = alt.Chart(table).mark_point(size=90, filled=True).encode(
        x=alt.X("re-identification:Q", scale=alt.Scale(domain=[0, 1]), title="re-identification (strongest attacker)"),
        y=alt.Y("HAR weighted F1:Q", scale=alt.Scale(domain=[0, 1])), color="method:N", shape="releasable:N",
        tooltip=["job", "release", "method", "re-identification", "HAR weighted F1", "releasable"])
    line = alt.Chart(table[table["on frontier"]]).mark_line(color="grey").encode(
        x="re-identification:Q", y="HAR weighted F1:Q")
    layers = points + line
    chance = pd.to_numeric(table["re-id chance"], errors="coerce").max()
    if not pd.isna(chance):
        rules = pd.DataFrame({"x": [chance, 2 * chance], "label": ["chance", "limit (2 × chance)"], "y": [0.04, 0.1]})
        layers += alt.Chart(rules).mark_rule(strokeDash=[4, 4]).encode(
            x="x:Q", color=alt.Color("label:N", scale=alt.Scale(range=["grey", "red"]), legend=None))
        layers += alt.Chart(rules).mark_text(align="left", dx=4).encode(x="x:Q", y="y:Q", text="label:N")
    original = table[["re-id (original)", "HAR F1 (original)"]].apply(pd.to_numeric, errors="coerce").median()
    if original.notna().all():
        raw = pd.DataFrame({"x": [original.iloc[0]], "y": [original.iloc[1]], "label": ["original data"]})
        layers += alt.Chart(raw).mark_point(shape="diamond", size=140, filled=True, color="black").encode(
            x="x:Q", y="y:Q", tooltip=["label"])
        layers += alt.Chart(raw).mark_text(align="left", dx=8, dy=-8).encode(x="x:Q", y="y:Q", text="label:N")
    return layers


judged = [j for kind in ("anonymise", "frontier", "pipeline")
          for j in job_store.list_jobs(kind=kind, status="succeeded", limit=200)]
table = ui.privacy_utility_table(judged, {d["name"]: d["releasable"] for d in datasets})
st.subheader("Privacy–utility")
if table.empty:
    st.info("No judged releases yet: anonymise with evaluation on to place a release here.")
else:
    st.caption("Each point is a release: lower re-identification (left) and higher activity-recognition F1 (up) "
               "are better; the line joins the releases no other release beats on both. The diamond is the original "
               "data; a release passes only left of the red limit (and every other check).")
    st.altair_chart(_frontier_chart(table), width="stretch")
    st.dataframe(table.sort_values("re-identification"), hide_index=True, width="stretch")

jobs = ui.recent("anonymise") + ui.recent("frontier") + ui.recent("release_check") + ui.recent("release_override")
if jobs:
    st.subheader("Anonymisation, release-check and override jobs")
    ui.jobs_table(sorted(jobs, key=lambda j: -j["id"]))
    chosen = ui.pick_finished(jobs, "Show results of job")
    if chosen is not None:
        ui.show_outputs(chosen)
