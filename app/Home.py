"""anonaudit web app — entry point: sign-in, navigation, and the home page.

The app never trains or imports in its own process: it submits jobs that `anonaudit worker`
processes run (``anonaudit ui`` starts both), and it reads results from the same store as the CLI.
This script runs before every page, so the sign-in gate (optional; see ``anonaudit.access``)
covers every page in ``views/``, including pages added later (see DEVELOPERS.md for why the folder
is not called ``pages/``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from anonaudit.errors import AnonauditError
from anonaudit.store import datasets as dataset_store
from anonaudit.store import db
from anonaudit.store import jobs as job_store

PAGES = Path(__file__).resolve().parent / "views"


def home() -> None:
    """Overview: counts, the newest jobs, and the main job on a dataset path."""
    st.title("anonaudit")
    st.caption("Anonymise, audit and explain human-movement sensor data. Every result is a stored, re-runnable job.")
    datasets = dataset_store.list_datasets()
    counts = job_store.count_jobs("status")
    cells = st.columns(6)
    cells[0].metric("datasets", len(datasets))
    for cell, status in zip(cells[1:], ("queued", "running", "succeeded", "failed", "cancelled")):
        cell.metric(status, counts.get(status, 0))
    left, right = st.columns(2)
    with left:
        st.subheader("Datasets")
        if datasets:
            st.dataframe(pd.DataFrame(datasets)[["id", "name", "format", "n_subjects", "n_recordings", "sampling_rate"]],
                         hide_index=True, width="stretch")
        else:
            st.info("No datasets yet: import or upload one on the Datasets page, or run the main job on the sample data.")
        st.page_link("views/0_Datasets.py", label="Datasets: import, upload, inspect", icon="📂")
    with right:
        st.subheader("Main job")
        st.caption("Import, splits, evaluation, anonymised release and report, run by a worker.")
        path = st.text_input("Dataset path (on the server)", value="sample_data")
        if st.button("Queue main job", type="primary"):
            ui.submit("pipeline", {"path": path})
    st.subheader("Newest jobs")
    jobs = job_store.list_jobs(limit=10)
    if jobs:
        ui.jobs_table(jobs, ["id", "kind", "status", "progress", "progress_message", "duration", "time left", "created_at",
                            "error"])
    else:
        st.info("No jobs yet.")
    st.page_link("views/6_Jobs.py", label="Jobs: queue, history, reports, compare", icon="🗂️")


st.set_page_config(page_title="anonaudit", page_icon="🛡️", layout="wide")
try:
    db.ensure_schema()
except AnonauditError as exc:
    st.error(str(exc))
    st.stop()
ui.require_login()
navigation = st.navigation([st.Page(home, title="Home", icon="🏠", default=True),
                            *(st.Page(str(page)) for page in sorted(PAGES.glob("*.py")))])
try:
    navigation.run()
except AnonauditError as exc:  # one clear message instead of a traceback on any page
    st.error(str(exc))
