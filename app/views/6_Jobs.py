"""Jobs page: queue and history, one job's report, logs and controls, and two runs side by side.

Everything here reads the job store (one paged query for the list) and acts through it:
cancelling flags the job for its worker, re-running queues a copy with the same kind,
parameters and seed. The standalone HTML report is rendered only when downloaded or previewed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui  # noqa: E402

from anonaudit.errors import AnonauditError  # noqa: E402
from anonaudit.store import datasets as dataset_store  # noqa: E402
from anonaudit.store import jobs as job_store  # noqa: E402

ALL = "all"
ACTIVE = ("queued", "running")
NOTICE = "jobs_notice"  # a message that survives the rerun after cancelling
LIST_COLUMNS = ["id", "kind", "status", "progress", "progress_message", "duration", "time left", "created_at",
                "finished_at", "rerun_of", "error"]

st.set_page_config(page_title="anonaudit · jobs", layout="wide")
st.title("Jobs")


# ---------------------------------------------------------------------------- queue and history
def _job_list() -> list[dict[str, Any]]:
    """Filters and one page of jobs (newest first); returns the jobs shown."""
    by_status, by_kind = job_store.count_jobs("status"), job_store.count_jobs("kind")
    left, mid, right, size_col = st.columns([2, 2, 1, 1])
    status = left.selectbox("Status", [ALL, *sorted(by_status)],
                            format_func=lambda s: f"{s} ({by_status[s]})" if s in by_status else s)
    kind = mid.selectbox("Kind", [ALL, *sorted(by_kind)],
                         format_func=lambda k: f"{k} ({by_kind[k]})" if k in by_kind else k)
    size = size_col.selectbox("Per page", [25, 50, 100], index=0)
    matching = by_status if kind == ALL else job_store.count_jobs("status", kind=kind)
    total = matching.get(status, 0) if status != ALL else sum(matching.values())
    pages = max(1, -(-total // size))
    page = right.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, step=1)
    jobs = job_store.list_jobs(status=None if status == ALL else status, kind=None if kind == ALL else kind,
                               limit=size, offset=(int(page) - 1) * size)
    if not jobs:
        st.info("No jobs match." if total else "No jobs yet: queue one from another page or with `anonaudit jobs submit`.")
        return []
    ui.jobs_table(jobs, LIST_COLUMNS)
    return jobs


# ---------------------------------------------------------------------------- one job
def _controls(job: dict[str, Any]) -> None:
    """Cancel (queued/running) and re-run (finished) buttons."""
    notice = st.session_state.pop(NOTICE, None)
    if notice:
        st.info(notice)
    from anonaudit import api

    role = ui.current_role() or ""
    if job["status"] in ACTIVE:
        why = ui.denied("cancel", job["kind"])
        if st.button("Cancel job", key=f"cancel-{job['id']}", disabled=why is not None, help=why):
            try:
                st.session_state[NOTICE] = f"job {job['id']}: {api.cancel(job['id'], role=role)}"
            except AnonauditError as exc:  # e.g. it finished in the meantime, or the role may not
                st.error(str(exc))
                return
            st.rerun()  # show the new status
    else:
        why = ui.denied("rerun", job["kind"])
        if st.button("Re-run (same parameters and seed)", key=f"rerun-{job['id']}", disabled=why is not None,
                     help=why):
            try:
                st.success(f"Queued job {api.rerun(job['id'], role=role)} as a re-run of job {job['id']}.")
            except AnonauditError as exc:
                st.error(str(exc))


def _metrics_frame(metrics: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(metrics, columns=["name", "value", "step", "tags"])
    frame["tags"] = frame["tags"].map(lambda t: ", ".join(f"{k}={v}" for k, v in sorted((t or {}).items())))
    return frame


def _kind_view(job: dict[str, Any]) -> None:
    """What a reader of this kind of job looks for first, then the generic outputs."""
    result = job.get("result") or {}
    if job["kind"] == "import" and job["status"] == "succeeded" and "name" in result:
        record = dataset_store.find_dataset(result["name"])
        if record is not None:
            s = record["summary"]
            st.success(f"Imported **{record['name']}**: {s['n_subjects']} subjects, {s['n_recordings']} recordings, "
                       f"{s['n_channels']} channels at {s['sampling_rate']:g} Hz; inspect it on the Datasets page.")
    ui.show_outputs(job["id"])


def _job_detail(job_id: int) -> None:
    job = job_store.job_dict(job_id)
    st.markdown(f"### Job {job_id} · {job['kind']} · {job['status']}")
    if job["status"] in ACTIVE:
        st.progress(float(job["progress"] or 0.0), text=job.get("progress_message") or job["status"])
    if job.get("error"):
        st.error(job["error"])
    _controls(job)
    report, metrics, logs, definition = st.tabs(["Report", "Metrics", "Log", "Parameters and provenance"])
    with report:
        if job["status"] in ACTIVE:
            st.info("The report appears when the job has finished.")
        else:
            _kind_view(job)
            ui.report_download(job_id)
            if st.checkbox("Preview the standalone HTML report here", key=f"preview-{job_id}"):
                st.iframe(ui.report_html(job_id)[0], height=900)  # the report escapes every stored string
    with metrics:
        if job["metrics"]:
            st.dataframe(_metrics_frame(job["metrics"]), hide_index=True, width="stretch")
        else:
            st.info("No metrics recorded.")
    with logs:
        st.dataframe(pd.DataFrame(job_store.job_logs(job_id), columns=["ts", "level", "message"]),
                     hide_index=True, width="stretch")
    with definition:
        st.code(ui.params_json(job["params"]), language="json")
        st.dataframe(pd.DataFrame({"field": f, "value": str(job.get(f))} for f in (
            "seed", "config_hash", "code_version", "worker_id", "attempts", "max_attempts", "created_at",
            "started_at", "finished_at", "rerun_of", "report_path")), hide_index=True, width="stretch")


# ---------------------------------------------------------------------------- compare
def _flat(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested parameters as ``a.b`` keys with printable values."""
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): "" if value is None else str(value)}


def _side_by_side(left: dict[str, Any], right: dict[str, Any], names: tuple[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame({names[0]: pd.Series(left, dtype=object), names[1]: pd.Series(right, dtype=object)})
    frame["differs"] = frame[names[0]].astype(str) != frame[names[1]].astype(str)
    return frame.sort_values(["differs"], ascending=False, kind="stable")


def _metric_values(job: dict[str, Any]) -> dict[str, float | None]:
    frame = _metrics_frame(job["metrics"])
    keys = frame["name"] + frame["tags"].map(lambda t: f" [{t}]" if t else "") + frame["step"].map(
        lambda s: "" if pd.isna(s) else f" @{int(s)}")
    return dict(zip(keys, frame["value"]))


def _compare(a_id: int, b_id: int) -> None:
    a, b = job_store.job_dict(a_id), job_store.job_dict(b_id)
    names = (f"job {a_id} ({a['kind']})", f"job {b_id} ({b['kind']})")
    st.markdown("**Parameters and provenance**")
    definition = [{**_flat(j["params"], "params."), "seed": str(j["seed"]), "status": j["status"],
                   "code_version": j["code_version"]} for j in (a, b)]
    st.dataframe(_side_by_side(*definition, names), width="stretch")
    st.markdown("**Result and metrics**")
    numbers = [{**{f"result.{k}": v for k, v in (j.get("result") or {}).items() if not isinstance(v, (dict, list))},
                **_metric_values(j)} for j in (a, b)]
    table = _side_by_side(*numbers, names)
    both = pd.to_numeric(table[names[0]], errors="coerce"), pd.to_numeric(table[names[1]], errors="coerce")
    table.insert(2, "difference", both[1] - both[0])
    st.dataframe(table, width="stretch")


# ---------------------------------------------------------------------------- page
def _active() -> int:
    counts = job_store.count_jobs("status")
    return sum(counts.get(s, 0) for s in ACTIVE)


polling = _active() > 0


@st.fragment(run_every=3.0 if polling else None)
def _history() -> None:
    """List and chosen job; re-read every few seconds while jobs are queued or running."""
    if polling and not _active():
        st.rerun(scope="app")  # the last job finished: show its report and stop polling
    jobs = _job_list()
    if not jobs:
        return
    ids = [j["id"] for j in jobs]
    wanted = st.query_params.get("job")
    default = ids.index(int(wanted)) if wanted and wanted.isdigit() and int(wanted) in ids else 0
    labels = {j["id"]: f"{j['id']} · {j['kind']} · {j['status']}" for j in jobs}
    chosen = st.selectbox("Job", ids, index=default, format_func=labels.get)
    st.query_params["job"] = str(chosen)
    _job_detail(int(chosen))


history, compare = st.tabs(["Queue and history", "Compare two runs"])
with history:
    _history()
with compare:
    left, right = st.columns(2)
    a_id = left.number_input("First job id", min_value=1, step=1, value=None)
    b_id = right.number_input("Second job id", min_value=1, step=1, value=None)
    if a_id and b_id:
        try:
            _compare(int(a_id), int(b_id))
        except AnonauditError as exc:
            st.error(str(exc))
    else:
        st.caption("Enter two job ids (e.g. a job and its re-run) to see parameters and metrics side by side.")
