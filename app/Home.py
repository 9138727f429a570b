"""anonaudit web app — home page: datasets, jobs and reports from the shared job store.

The app never trains or imports in its own process: it submits jobs that `anonaudit worker`
processes run (``anonaudit ui`` starts both), and it reads results from the same store as the CLI.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from anonaudit.errors import AnonauditError
from anonaudit.store import datasets as dataset_store
from anonaudit.store import db
from anonaudit.store import jobs as job_store

st.set_page_config(page_title="anonaudit", page_icon="🛡️", layout="wide")
st.title("anonaudit")
st.caption("Anonymise, audit and explain human-movement sensor data. Every result is a stored, re-runnable job.")

try:
    db.ensure_schema()
    datasets = dataset_store.list_datasets()
    jobs = job_store.list_jobs(limit=50)
except AnonauditError as exc:
    st.error(str(exc))
    st.stop()

left, right = st.columns(2)
with left:
    st.subheader("Datasets")
    if datasets:
        st.dataframe(
            pd.DataFrame(datasets)[["id", "name", "format", "n_subjects", "n_recordings", "n_samples", "sampling_rate"]],
            hide_index=True, width="stretch",
        )
    else:
        st.info("No datasets yet. Run the main job on the sample data, or `anonaudit data import PATH`.")
with right:
    st.subheader("Run")
    path = st.text_input("Dataset path for the main job", value="sample_data")
    if st.button("Queue main job", type="primary"):
        try:
            job_id = job_store.submit_job("pipeline", {"path": path})
            st.success(f"Queued job {job_id}; a worker will pick it up.")
        except AnonauditError as exc:
            st.error(str(exc))

st.subheader("Jobs")
if jobs:
    frame = pd.DataFrame(jobs)[["id", "kind", "status", "progress", "progress_message", "created_at", "error"]]
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)})
    finished = [j["id"] for j in jobs if j["status"] in ("succeeded", "failed")]
    if finished:
        chosen = st.selectbox("Report of job", finished)
        from pathlib import Path

        from anonaudit.jobs.reports import write_report

        job = next(j for j in jobs if j["id"] == chosen)
        path = Path(job["report_path"]) if job.get("report_path") else None
        if path is None or not path.is_file():
            path = write_report(chosen)
        html = path.read_text(encoding="utf-8")
        st.download_button("Download report (HTML)", html, file_name=path.name, mime="text/html")
        st.components.v1.html(html, height=900, scrolling=True)
else:
    st.info("No jobs yet.")
