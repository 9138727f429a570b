"""Helpers shared by the app's pages: submitting validated jobs and showing a job's outputs.

Parameters are validated with the job kind's own dataclass *before* queueing, so bad input gets
one clear message in the page instead of a failed job later; nothing runs in the app process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from anonaudit.errors import AnonauditError
from anonaudit.jobs.params import parse_params
from anonaudit.settings import get_settings
from anonaudit.store import jobs as job_store


def submit(kind: str, params_cls: type, params: dict[str, Any]) -> int | None:
    """Validate and queue a job; show the outcome. Returns the job id, or None on bad input."""
    try:
        parse_params(params_cls, params)
        job_id = job_store.submit_job(kind, params)
    except AnonauditError as exc:
        st.error(str(exc))
        return None
    st.success(f"Queued job {job_id} ({kind}); a worker will pick it up.")
    return job_id


def recent(kind: str, limit: int = 20) -> list[dict[str, Any]]:
    return job_store.list_jobs(kind=kind, limit=limit)


def jobs_table(jobs: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(jobs)[["id", "status", "progress", "progress_message", "created_at", "error"]]
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)})


def show_outputs(job_id: int) -> None:
    """Headline result, score tables and figures of a finished job."""
    job = job_store.job_dict(job_id)
    if job["status"] != "succeeded":
        st.warning(f"job {job_id} is {job['status']}" + (f": {job['error']}" if job.get("error") else ""))
        return
    result = job.get("result") or {}
    numbers = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        st.dataframe(pd.DataFrame({"figure": list(numbers), "value": list(numbers.values())}), hide_index=True)
    for key in ("reason", "anon_release_check"):
        if key in result:
            (st.success if result.get("releasable", result.get("anon_releasable")) else st.error)(result[key])
    home = get_settings().home
    artifacts = job_store.job_artifacts(job_id)
    for art in artifacts:
        path = home / art["path"]
        if art["name"].endswith(".png") and path.is_file():
            st.image(str(path), caption=art["name"])
    tables = [a for a in artifacts if a["name"].endswith(".csv") and not a["name"].startswith(("release/", "private/"))]
    for art in tables:
        with st.expander(art["name"]):
            st.dataframe(pd.read_csv(home / art["path"]), hide_index=True, width="stretch")
    release = [a for a in artifacts if a["name"].startswith("release/")]
    if release:
        folder = Path(home / release[0]["path"]).parent
        st.info(f"Released files (CSV, Parquet): {folder}")
