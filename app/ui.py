"""Helpers shared by the app's pages: sign-in, submitting validated jobs and showing a job's outputs.

Parameters are validated with the job kind's own dataclass *before* queueing, so bad input gets
one clear message in the page instead of a failed job later; nothing runs in the app process.
Who may submit what is decided by :mod:`anonaudit.access` (only a steward releases data).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from anonaudit import access
from anonaudit.errors import AnonauditError
from anonaudit.reporting.captions import caption
from anonaudit.reporting.summary import INFO, PASS, REFUSED, WARNING, summarise
from anonaudit.store import datasets as dataset_store
from anonaudit.store import jobs as job_store
from anonaudit.store.artifacts import file_of, shown
from anonaudit.store.uploads import save_upload

ROLE_KEY = "anonaudit_role"


# ---------------------------------------------------------------------------- access
def passwords() -> dict[str, str]:
    """Configured role passwords (Streamlit secrets ``[auth.passwords]``, then the environment)."""
    secret: dict[str, str] = {}
    if st.secrets.load_if_toml_exists():
        secret = dict(st.secrets.get("auth", {}).get("passwords", {}))
    return access.configured_passwords(secret)


def current_role() -> str | None:
    """The signed-in role; without configured passwords the single local user is a steward."""
    if not passwords():
        return "steward"
    return st.session_state.get(ROLE_KEY)


@st.cache_resource
def _throttle() -> access.SignInThrottle:
    """One sign-in throttle per server process: shared by every session and browser tab."""
    return access.SignInThrottle()


def require_login() -> str:
    """Show the sign-in form until a role's password is entered; returns the role.

    Nothing else renders before this returns: the entry point calls it before navigation.
    """
    configured = passwords()
    role = current_role()
    if role is not None:
        if configured:
            st.sidebar.caption(f"Signed in as **{role}**")
            if st.sidebar.button("Sign out"):
                del st.session_state[ROLE_KEY]
                st.rerun()
        return role
    st.title("anonaudit — sign in")
    with st.form("login"):
        chosen = st.selectbox("Role", [r for r in access.ROLES if r in configured])
        password = st.text_input("Password", type="password")
        go = st.form_submit_button("Sign in", type="primary")
    if go:
        try:
            ok = _throttle().attempt(chosen, lambda: access.authenticate(chosen, password, configured))
        except access.AccessDenied as exc:
            st.error(str(exc))
            st.stop()
        if ok:
            st.session_state[ROLE_KEY] = chosen
            st.rerun()
        st.error("Wrong password for this role.")  # never echo what was typed
    st.stop()


def denied(action: str, kind: str | None = None) -> str | None:
    """Why the signed-in role may not take ``action`` (the policy lives in :mod:`anonaudit.access`)."""
    return access.denied(current_role(), action, kind=kind)


def may_release() -> bool:
    return denied("download_release") is None


# ---------------------------------------------------------------------------- uploads
def stored_upload(upload: UploadedFile, allowed: tuple[str, ...]) -> Path:
    """Save each uploaded file once per session under a generated name (type and size checked)."""
    key = f"upload-{upload.file_id}"
    if key not in st.session_state:
        st.session_state[key] = str(save_upload(upload.getvalue(), upload.name, allowed))
    return Path(st.session_state[key])


# ---------------------------------------------------------------------------- jobs
def submit(kind: str, params: dict[str, Any]) -> int | None:
    """Validate and queue a job; show the outcome. Returns the job id, or None on bad input.

    The role, the parameters and the data roots of server paths are checked by ``api.submit``,
    the same check every other path runs."""
    from anonaudit import api

    twin = duplicate(kind, params)
    if twin is not None:
        st.warning(f"An identical {kind} job (job {twin}) was queued moments ago; it was not queued again.")
        return twin
    try:
        job_id = api.submit(kind, params, role=current_role() or "", restrict_paths=True)
    except AnonauditError as exc:
        st.error(str(exc))
        return None
    st.success(f"Queued job {job_id} ({kind}); a worker will pick it up.")
    return job_id


DUPLICATE_S = 30.0  # a second identical submission this soon is a double click or Enter plus a click


def duplicate(kind: str, params: dict[str, Any], now: pd.Timestamp | None = None) -> int | None:
    """The id of a job of the same kind and parameters queued in the last ``DUPLICATE_S`` seconds, if any."""
    now = now or pd.Timestamp.now(tz="UTC")
    wanted = json.loads(json.dumps(params, default=str))
    for job in job_store.list_jobs(kind=kind, limit=10):
        created = pd.Timestamp(job["created_at"])
        created = created.tz_localize("UTC") if created.tzinfo is None else created
        stored = job.get("params") or {}
        if (now - created).total_seconds() <= DUPLICATE_S and all(stored.get(k) == v for k, v in wanted.items()):
            return int(job["id"])
    return None


def recent(kind: str, limit: int = 20) -> list[dict[str, Any]]:
    return job_store.list_jobs(kind=kind, limit=limit)


TONES: dict[str, Callable[[str], Any]] = {PASS: st.success, REFUSED: st.error, WARNING: st.warning, INFO: st.info}
JOB_COLUMNS = ["id", "status", "progress", "progress_message", "duration", "time left", "created_at", "error"]


def _span(seconds: pd.Series) -> pd.Series:
    """Seconds as "1 h 02 min", "3 min 05 s" or "12 s" (empty where unknown)."""
    def one(s: float) -> str:
        if pd.isna(s):
            return ""
        s = int(round(s))
        return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s" if s >= 60 \
            else f"{s} s"
    return seconds.map(one)


def job_frame(jobs: list[dict[str, Any]], now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Jobs as people read them: "cancelling" while a requested cancel waits for the worker; a cancelled job
    shows where it stopped instead of a progress bar (it did not finish, whatever its last report said);
    how long each ran, and while running how long is left at its pace so far."""
    frame = pd.DataFrame(jobs)
    now = now or pd.Timestamp.now(tz="UTC")
    running = frame["status"] == "running"
    frame.loc[running & frame["cancel_requested"].fillna(False).astype(bool), "status"] = "cancelling"
    cancelled = frame["status"] == "cancelled"
    stopped = (100 * frame["progress"].fillna(0)).astype(int).astype(str)
    frame.loc[cancelled, "progress_message"] = "cancelled at " + stopped[cancelled] + " %"
    frame["progress"] = frame["progress"].where(~cancelled)
    started = pd.to_datetime(frame["started_at"], utc=True)
    ended = frame["finished_at"].astype(object).where(frame["finished_at"].notna(), now)
    ran = (pd.to_datetime(ended, utc=True) - started).dt.total_seconds()
    frame["duration"] = _span(ran)
    pace = frame["progress"].where(frame["status"].isin(["running", "cancelling"]) & (frame["progress"] > 0.02))
    frame["time left"] = _span(ran * (1 - pace) / pace)
    return frame


def jobs_table(jobs: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    frame = job_frame(jobs)[columns or JOB_COLUMNS]
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)})


def pick_finished(jobs: list[dict[str, Any]], label: str, statuses: tuple[str, ...] = ("succeeded", "failed"),
                  key: str | None = None) -> int | None:
    """A choice among the jobs that have ended (newest first); None while none has."""
    done = sorted((j["id"] for j in jobs if j["status"] in statuses), reverse=True)
    return st.selectbox(label, done, key=key) if done else None


def show_outputs(job_id: int) -> None:
    """Headline result, score tables and figures of a finished job."""
    job = job_store.job_dict(job_id)
    if job["status"] != "succeeded":
        st.warning(f"job {job_id} is {job['status']}" + (f": {job['error']}" if job.get("error") else ""))
        return
    result = job.get("result") or {}
    artifacts = job["artifacts"]
    # each stage's decision first and in words, then its key figures and checks (the report's own summary)
    for section in summarise(job, {a["name"]: file_of(a) for a in artifacts if shown(a["name"])}):
        st.markdown(f"**{section.title}**")
        TONES[section.tone](section.verdict)
        for note in section.notes:
            st.caption(note)
        if not section.figures.empty:
            st.dataframe(section.figures, hide_index=True, width="stretch")
        if not section.checks.empty:
            st.dataframe(section.checks, hide_index=True, width="stretch")
    if "overridden_by" in result:
        st.warning(f"Exported although its check refused it: overridden by {result['overridden_by']} at "
                   f"{result['overridden_at']} — {result['override_reason']}")
    for art in artifacts:
        path = file_of(art)
        if art["name"].endswith(".png") and shown(art["name"]) and path.is_file():
            st.image(str(path), caption=f"{caption(art['name'])} ({art['name']})")
    numbers = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        with st.expander(f"All result values ({len(numbers)})"):
            st.dataframe(pd.DataFrame({"figure": list(numbers), "value": list(numbers.values())}), hide_index=True)
    tables = [a for a in artifacts if a["name"].endswith(".csv") and shown(a["name"])]
    for art in tables:
        with st.expander(art["name"]):
            st.dataframe(pd.read_csv(file_of(art)), hide_index=True, width="stretch")
    release_downloads(job_id, artifacts, result)


def _reader(path: Path) -> Callable[[], bytes]:
    """A deferred download: the file is read only when the button is clicked."""
    return lambda: path.read_bytes()


def release_downloads(job_id: int, artifacts: list[dict[str, Any]], result: dict[str, Any] | None = None) -> None:
    """Download buttons for a job's released files — for stewards only (releasing is their call)."""
    release = [a for a in artifacts if a["name"].startswith("release/")]
    if not release:
        return
    if not may_release():
        st.info("This job released data; only a data steward may download it.")
        return
    result = job_store.job_dict(job_id)["result"] if result is None else result
    name = result.get("anon_released") or result.get("released") or result.get("dataset")
    if name is None or not dataset_store.may_export(name):  # files of a release that was refused later
        st.error(f"Release {name!r} is withheld: its check refused it and no override is recorded.")
        return
    st.markdown("**Released data** (pseudonymised; the linkage stays private to this store)")
    for art in release:
        st.download_button(f"Download {art['name']} ({art['size_bytes'] / 2**20:.1f} MB)", _reader(file_of(art)),
                           file_name=f"job-{job_id}-{Path(art['name']).name}", mime=art.get("media_type"),
                           key=f"release-{job_id}-{art['name']}", on_click="ignore")


def report_html(job_id: int) -> tuple[str, str]:
    """The job's standalone HTML report (rendered now if the worker did not write it) and its file name."""
    from anonaudit.jobs.reports import write_report

    job = job_store.get_job(job_id)
    path = Path(job.report_path) if job.report_path else None
    if path is None or not path.is_file():
        path = write_report(job_id)
    return path.read_text(encoding="utf-8"), path.name


def report_download(job_id: int) -> None:
    """Download buttons for the standalone HTML report and, where the job judged a release, its datasheet;
    each rendered only when clicked."""
    from anonaudit.jobs.reports import release_datasheet

    name = f"job-{job_id}.html"
    st.download_button("Download report (standalone HTML)", lambda: report_html(job_id)[0], file_name=name,
                       mime="text/html", key=f"report-{job_id}", on_click="ignore")
    sheet = release_datasheet(job_id)  # a summary of stored figures: cheap, and shown only where it exists
    if sheet is not None:
        st.download_button("Download the release's datasheet (Markdown)", sheet, file_name=f"job-{job_id}-datasheet.md",
                           mime="text/markdown", key=f"datasheet-{job_id}", on_click="ignore")


def params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, indent=2, sort_keys=True, default=str)


# ---------------------------------------------------------------------------- privacy–utility
# the release check's figure (every threat model) first; older jobs measured only some attackers
PRIVACY_KEYS = ("release_reid_max_recording", "reid_retrained_recording_acc", "reid_retrained_window_acc",
                "reid_frozen_acc")
UTILITY_KEY = "har_wf1_released"


def frontier(privacy: pd.Series, utility: pd.Series) -> pd.Series:
    """True for releases no other release beats on both axes (lower re-identification, higher utility)."""
    order = np.lexsort((-utility.to_numpy(), privacy.to_numpy()))  # by privacy, ties: best utility first
    best_before = np.maximum.accumulate(np.r_[-np.inf, utility.to_numpy()[order]])[:-1]
    mask = np.zeros(len(privacy), bool)
    mask[order] = utility.to_numpy()[order] > best_before
    return pd.Series(mask, index=privacy.index)


def privacy_utility_table(jobs: list[dict[str, Any]], releasable: dict[str, bool | None]) -> pd.DataFrame:
    """One row per judged release: headline privacy and utility, verdict, and frontier membership.

    Privacy is the strongest attack at recording level over every threat model (the release
    check's figure), falling back, for jobs that measured less, to the strongest retrained
    attacker and then to the frozen network. A frontier (or the main job's release stage)
    contributes every point it judged, from its frontier table. The DP ε is what a method fitted
    with differential privacy spent (empty for the others).
    """
    rows = []
    for job in jobs:
        result = job.get("result") or {}
        table = next((a for a in job["artifacts"] if a["name"] in ("frontier.csv", "anon_frontier.csv")), None)
        if table is not None and file_of(table).is_file():
            for point in pd.read_csv(file_of(table)).to_dict("records"):
                knob = f" {point['knob']}={point['value']:g}" if isinstance(point["knob"], str) else ""
                rows.append({"job": job["id"], "method": point["method"] + knob, "release": point["released"],
                             "re-identification": point["release_reid_max_recording"],
                             "HAR weighted F1": point["har_wf1_released"], "HAR F1 (original)": point["har_wf1_real"],
                             "re-id chance": point["reid_chance"], "re-id (original)": point.get("reid_real_recording_acc"),
                             "DP ε (per subject)": point.get("epsilon"),
                             "releasable": {True: "yes", False: "NO"}.get(releasable.get(point["released"]),
                                                                          "not checked")})
            continue
        prefix = "anon_" if job["kind"] == "pipeline" else ""
        values = {k: result.get(prefix + k) for k in (*PRIVACY_KEYS, UTILITY_KEY, "har_wf1_real", "reid_chance",
                                                      "reid_real_recording_acc")}
        privacy = next((values[k] for k in PRIVACY_KEYS if values[k] is not None), None)
        if privacy is None or values[UTILITY_KEY] is None:
            continue
        name = result.get(prefix + "released")
        rows.append({"job": job["id"], "method": result.get(prefix + "method"), "release": name,
                     "re-identification": privacy, "HAR weighted F1": values[UTILITY_KEY],
                     "HAR F1 (original)": values["har_wf1_real"], "re-id chance": values["reid_chance"],
                     "re-id (original)": values["reid_real_recording_acc"],
                     "DP ε (per subject)": result.get(prefix + "epsilon"),
                     "releasable": {True: "yes", False: "NO", None: "not checked"}[releasable.get(name)]})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["on frontier"] = frontier(frame["re-identification"], frame["HAR weighted F1"])
    return frame
