"""The job queue and job records.

Every function is one transaction (nothing half-written on error) and takes an optional
``url`` (database URL or engine; default: the configured database).

Claiming is a single ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``: on
PostgreSQL concurrent workers skip rows another worker is claiming, on SQLite the statement runs
under the database write lock. A claimed job carries a lease that its worker extends with
``heartbeat``; ``requeue_expired`` returns jobs of lost workers to the queue (or fails them when
their attempts are used up). Times are taken from the calling host's clock in UTC, so hosts
sharing a database need synchronised clocks (NTP); leases should be much longer than any skew.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

import anonaudit
from anonaudit.errors import AnonauditError, NotFoundError, ParameterError
from anonaudit.store.artifacts import ArtifactRecord, file_of, job_dir
from anonaudit.store.db import UrlOrEngine, session_scope
from anonaudit.store.models import (
    CANCELLED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    Artifact,
    Job,
    JobLog,
    Metric,
    utcnow,
)

LOG_LEVELS = ("debug", "info", "warning", "error")
MetricRow = tuple[str, float | None, int | None, Mapping[str, Any] | None]


INLINE = ":inline"  # worker-id suffix of a job a command runs in its own process


class JobStateError(AnonauditError):
    """The job is in a state that does not allow the operation (e.g. cancelling a finished job)."""


class LeaseLost(AnonauditError):
    """The worker no longer owns the job: its lease expired and the job was re-queued or failed."""


# ---------------------------------------------------------------------------- provenance
def _json_default(obj: Any) -> Any:
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, without importing numpy here
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} value {obj!r} is not JSON-serialisable")


def to_json(value: Any, what: str) -> Any:
    """A plain-JSON copy of ``value`` (dates, paths and numpy values converted), or a ParameterError."""
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ParameterError(what, f"must be JSON-serialisable (no NaN/inf): {exc}") from None


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _sha256(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def config_hash(kind: str, params: Mapping[str, Any], seed: int) -> str:
    """Identical hash ⇔ identical job definition (kind, parameters, seed)."""
    return _sha256({"kind": kind, "params": params, "seed": seed})


def derive_seed(kind: str, params: Mapping[str, Any]) -> int:
    """Default seed: derived from kind and parameters, so re-submitting a job reproduces it."""
    return int(_sha256({"kind": kind, "params": params})[:8], 16) & 0x7FFFFFFF


@cache
def code_version() -> str:
    """Package version plus the short git commit of a source checkout (``0.1.0+g1a2b3c4``)."""
    try:
        base = version("anonaudit")
    except PackageNotFoundError:
        base = "0+unknown"
    root = Path(anonaudit.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return base
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return base
    commit = out.stdout.strip()
    return f"{base}+g{commit}" if out.returncode == 0 and commit else base


# ---------------------------------------------------------------------------- helpers
def _get(session: Session, job_id: int, *, lock: bool = False) -> Job:
    stmt = select(Job).where(Job.id == job_id)
    job = session.scalars(stmt.with_for_update() if lock else stmt).one_or_none()
    if job is None:
        last = session.scalar(select(func.max(Job.id)))
        hint = f"the newest job is {last}" if last is not None else "there are no jobs yet"
        raise NotFoundError(f"no job with id {job_id} ({hint}; `anonaudit jobs list` shows them)")
    return job


def _owned(session: Session, job_id: int, worker_id: str) -> Job:
    """The running job, locked, if ``worker_id`` still holds it; else LeaseLost."""
    job = _get(session, job_id, lock=True)
    if job.status != RUNNING or job.worker_id != worker_id:
        raise LeaseLost(f"job {job_id} is no longer run by worker {worker_id} "
                        f"(now {job.status}, worker {job.worker_id}); its lease probably expired")
    return job


def _log(session: Session, job_id: int, level: str, message: str) -> None:
    if level not in LOG_LEVELS:
        raise ParameterError("level", f"must be one of {LOG_LEVELS}, got {level!r}")
    session.add(JobLog(job_id=job_id, level=level, message=message, ts=utcnow()))


def _metric_rows(job_id: int, metrics: Iterable[MetricRow]) -> list[Metric]:
    rows = []
    for name, value, step, tags in metrics:
        number = None if value is None else float(value)
        rows.append(Metric(
            job_id=job_id, name=str(name), value=None if number is None or math.isnan(number) else number,
            step=None if step is None else int(step), tags=to_json(dict(tags or {}), f"tags of metric {name!r}"),
        ))
    return rows


def _end(job: Job, status: str) -> None:
    job.status, job.finished_at, job.lease_expires_at = status, utcnow(), None


def _describe(job: Job, *, with_metrics: bool) -> dict[str, Any]:
    out = job.to_dict()
    out["artifacts"] = [a.to_dict() for a in job.artifacts]
    if with_metrics:
        out["metrics"] = [m.to_dict() for m in job.metrics]
    folder = job_dir(job.id)
    out["artifact_dir"] = str(folder) if job.artifacts and folder.is_dir() else None
    return out


# ---------------------------------------------------------------------------- queue
def _new_job(kind: str, params: Mapping[str, Any], *, seed: int | None, dataset_id: int | None, priority: int,
             max_attempts: int, rerun_of: int | None) -> Job:
    """A validated, not yet stored queued job (parameters as JSON, seed and config hash set)."""
    if not isinstance(kind, str) or not kind:
        raise ParameterError("kind", f"must be a non-empty string, got {kind!r}")
    if not isinstance(params, Mapping):
        raise ParameterError("params", f"must be a mapping of names to values, got {type(params).__name__}")
    if max_attempts < 1:
        raise ParameterError("max_attempts", f"must be at least 1, got {max_attempts}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ParameterError("seed", f"must be an integer, got {seed!r}")
    clean = to_json(dict(params), "params")
    seed = derive_seed(kind, clean) if seed is None else seed
    return Job(kind=kind, params=clean, status=QUEUED, priority=priority, progress=0.0, seed=seed,
               config_hash=config_hash(kind, clean, seed), code_version=code_version(), dataset_id=dataset_id,
               attempts=0, max_attempts=max_attempts, cancel_requested=False, rerun_of=rerun_of,
               created_at=utcnow())


def _claim(job: Job | type[Job], worker_id: str, lease_seconds: float) -> dict[str, Any]:
    """Column values of a job claimed by ``worker_id`` now.

    ``job`` is an instance (``start_job``) or the ``Job`` class, whose ``attempts + 1`` is then
    the SQL expression of ``claim_job``'s UPDATE.
    """
    now = utcnow()
    return {"status": RUNNING, "worker_id": worker_id, "attempts": job.attempts + 1, "started_at": now,
            "heartbeat_at": now, "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "progress": 0.0, "progress_message": None}


def submit_job(kind: str, params: Mapping[str, Any], *, seed: int | None = None, dataset_id: int | None = None,
               priority: int = 0, max_attempts: int = 2, rerun_of: int | None = None,
               url: UrlOrEngine = None) -> int:
    """Queue a job; returns its id. Parameters must be JSON; the seed is recorded either way."""
    job = _new_job(kind, params, seed=seed, dataset_id=dataset_id, priority=priority, max_attempts=max_attempts,
                   rerun_of=rerun_of)
    with session_scope(url) as session:
        session.add(job)
        session.flush()
        _log(session, job.id, "info", f"submitted {kind} (seed {job.seed})")
    return job.id


def start_job(kind: str, params: Mapping[str, Any], worker_id: str, lease_seconds: float, *,
              seed: int | None = None, dataset_id: int | None = None, max_attempts: int = 1,
              url: UrlOrEngine = None) -> Job:
    """Submit a job already claimed by ``worker_id`` (run in this process; no worker can take it)."""
    job = _new_job(kind, params, seed=seed, dataset_id=dataset_id, priority=0, max_attempts=max_attempts,
                   rerun_of=None)
    for key, value in _claim(job, worker_id, lease_seconds).items():
        setattr(job, key, value)
    with session_scope(url) as session:
        session.add(job)
        session.flush()
        _log(session, job.id, "info", f"submitted {kind} (seed {job.seed}) and started by {worker_id}")
    return job


def claim_job(worker_id: str, lease_seconds: float, kinds: Sequence[str] | None = None, *,
              url: UrlOrEngine = None) -> Job | None:
    """Atomically take the next queued job (highest priority, then oldest) of one of ``kinds``.

    Returns the claimed job (status running, attempts incremented), or None if nothing is queued.
    """
    pick = select(Job.id).where(Job.status == QUEUED)
    if kinds is not None:
        pick = pick.where(Job.kind.in_(list(kinds)))
    pick = pick.order_by(Job.priority.desc(), Job.id).limit(1).with_for_update(skip_locked=True)
    stmt = (
        update(Job)
        .where(Job.id == pick.scalar_subquery(), Job.status == QUEUED)
        .values(_claim(Job, worker_id, lease_seconds))
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    with session_scope(url) as session:
        job = session.scalars(stmt).one_or_none()
        if job is not None:
            _log(session, job.id, "info",
                 f"claimed by worker {worker_id} (attempt {job.attempts} of {job.max_attempts})")
    return job


def heartbeat(job_id: int, worker_id: str, lease_seconds: float, *, url: UrlOrEngine = None) -> bool:
    """Extend the lease; returns True when the job should stop (cancel requested, or lease lost)."""
    now = utcnow()
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == RUNNING)
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(Job.cancel_requested)
    )
    with session_scope(url) as session:
        row = session.execute(stmt).one_or_none()
    return row is None or bool(row[0])


def set_progress(job_id: int, fraction: float, message: str = "", *, url: UrlOrEngine = None) -> bool:
    """Record progress (clamped to 0..1); returns True when the job should stop (cancel requested)."""
    if not math.isfinite(fraction):
        raise ParameterError("fraction", f"progress must be a finite number, got {fraction!r}")
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status == RUNNING)
        .values(progress=min(max(float(fraction), 0.0), 1.0), progress_message=message or None)
        .returning(Job.cancel_requested)
    )
    with session_scope(url) as session:
        row = session.execute(stmt).one_or_none()
    return row is None or bool(row[0])


def finish_job(job_id: int, worker_id: str, *, result: Mapping[str, Any] | None = None,
               metrics: Iterable[MetricRow] = (), artifacts: Iterable[ArtifactRecord] = (),
               url: UrlOrEngine = None) -> None:
    """Mark the job succeeded with its result, metrics and artifact rows, all in one transaction."""
    clean = to_json(dict(result or {}), "result")
    with session_scope(url) as session:
        job = _owned(session, job_id, worker_id)
        _end(job, SUCCEEDED)
        job.result, job.progress, job.error = clean, 1.0, None
        session.add_all(_metric_rows(job_id, metrics))
        session.add_all(Artifact(job_id=job_id, created_at=utcnow(), **a.to_dict()) for a in artifacts)
        _log(session, job_id, "info", "succeeded")


def fail_job(job_id: int, worker_id: str, error: str, *, traceback: str | None = None,
             url: UrlOrEngine = None) -> None:
    """Mark the job failed with a one-line ``error``; the traceback (if any) goes to its log."""
    with session_scope(url) as session:
        job = _owned(session, job_id, worker_id)
        _end(job, FAILED)
        job.error = error
        _log(session, job_id, "error", traceback or error)


def mark_cancelled(job_id: int, worker_id: str, *, url: UrlOrEngine = None) -> None:
    """The worker stopped a job whose cancellation was requested."""
    with session_scope(url) as session:
        _end(_owned(session, job_id, worker_id), CANCELLED)
        _log(session, job_id, "warning", "cancelled while running")


def release_job(job_id: int, worker_id: str, reason: str, *, url: UrlOrEngine = None) -> None:
    """Put a running job back in the queue without counting the attempt (worker shutting down)."""
    with session_scope(url) as session:
        job = _owned(session, job_id, worker_id)
        job.status, job.attempts, job.worker_id = QUEUED, job.attempts - 1, None
        job.lease_expires_at = job.started_at = job.heartbeat_at = None
        _log(session, job_id, "warning", f"re-queued: {reason}")


def cancel_job(job_id: int, *, url: UrlOrEngine = None) -> str:
    """Cancel a queued job now, or ask a running one to stop; returns what happened."""
    with session_scope(url) as session:
        job = _get(session, job_id, lock=True)
        if job.status in FINISHED:
            raise JobStateError(f"job {job_id} already {job.status}; there is nothing to cancel")
        if job.status == QUEUED:
            _end(job, CANCELLED)
            _log(session, job_id, "warning", "cancelled before it started")
            return "cancelled"
        job.cancel_requested = True
        _log(session, job_id, "warning", "cancel requested")
        return "cancel requested; the worker stops it at its next progress report or heartbeat"


def requeue_expired(now: datetime | None = None, *, url: UrlOrEngine = None) -> list[int]:
    """Recover running jobs whose worker stopped heart-beating; returns their ids.

    A job goes back to the queue while it has attempts left, else it fails; a job whose
    cancellation was requested is cancelled; a job run inline by a command that died fails
    (re-queuing it would start it in a worker nobody asked for). Workers call this on every
    poll and the CLI before every command that opens the store.
    """
    now = now or utcnow()
    stmt = (select(Job).where(Job.status == RUNNING, Job.lease_expires_at < now)
            .order_by(Job.id).with_for_update(skip_locked=True))
    with session_scope(url) as session:
        jobs = session.scalars(stmt).all()
        for job in jobs:
            lost = f"worker {job.worker_id} lost (lease expired at {job.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC)"
            if job.cancel_requested:
                _end(job, CANCELLED)
                _log(session, job.id, "warning", f"{lost}; cancelled as requested")
            elif (job.worker_id or "").endswith(INLINE):  # its command is gone: nobody waits for a retry
                _end(job, FAILED)
                job.error = (f"the command that ran it inline stopped ({lost}); "
                             f"`anonaudit jobs rerun {job.id}` queues it again")
                _log(session, job.id, "error", job.error)
            elif job.attempts < job.max_attempts:
                job.status, job.worker_id, job.lease_expires_at = QUEUED, None, None
                _log(session, job.id, "warning",
                     f"{lost}; re-queued after attempt {job.attempts} of {job.max_attempts}")
            else:
                _end(job, FAILED)
                job.error = f"worker lost (lease expired) after {job.attempts} attempts"
                _log(session, job.id, "error", f"{lost}; failed after {job.attempts} attempts")
        return [job.id for job in jobs]


def rerun_job(job_id: int, *, url: UrlOrEngine = None) -> int:
    """Queue a new job with the same kind, parameters and seed; returns the new id."""
    old = get_job(job_id, url=url)
    return submit_job(old.kind, old.params, seed=old.seed, dataset_id=old.dataset_id, priority=old.priority,
                      max_attempts=old.max_attempts, rerun_of=old.id, url=url)


# ---------------------------------------------------------------------------- records
def add_metrics(job_id: int, metrics: Iterable[MetricRow], *, url: UrlOrEngine = None) -> None:
    """Store ``(name, value, step, tags)`` rows now (NaN is stored as NULL: undefined)."""
    with session_scope(url) as session:
        session.add_all(_metric_rows(job_id, metrics))


def add_log(job_id: int, level: str, message: str, *, url: UrlOrEngine = None) -> None:
    with session_scope(url) as session:
        _log(session, job_id, level, message)


def set_report_path(job_id: int, path: str | Path, *, url: UrlOrEngine = None) -> None:
    """Remember where the job's HTML report was written."""
    with session_scope(url) as session:
        _get(session, job_id).report_path = str(path)


def get_job(job_id: int, *, url: UrlOrEngine = None) -> Job:
    with session_scope(url) as session:
        return _get(session, job_id)


def job_dict(job_id: int, *, url: UrlOrEngine = None) -> dict[str, Any]:
    """The job's columns plus ``metrics``, ``artifacts`` and ``artifact_dir``."""
    with session_scope(url) as session:
        return _describe(_get(session, job_id), with_metrics=True)


def list_jobs(status: str | None = None, kind: str | None = None, limit: int = 50, offset: int = 0, *,
              url: UrlOrEngine = None) -> list[dict[str, Any]]:
    """Jobs newest first, each with its ``artifacts`` (metrics only via ``job_dict``)."""
    if status is not None and status not in STATUSES:
        raise ParameterError("status", f"must be one of {', '.join(STATUSES)}; got {status!r}")
    stmt = select(Job).options(selectinload(Job.artifacts)).order_by(Job.id.desc()).limit(limit).offset(offset)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    with session_scope(url) as session:
        return [_describe(job, with_metrics=False) for job in session.scalars(stmt)]


def _children(model: type[Metric] | type[Artifact] | type[JobLog], job_id: int,
              url: UrlOrEngine) -> list[dict[str, Any]]:
    with session_scope(url) as session:
        _get(session, job_id)
        rows = session.scalars(select(model).where(model.job_id == job_id).order_by(model.id))
        return [row.to_dict() for row in rows]


def job_metrics(job_id: int, *, url: UrlOrEngine = None) -> list[dict[str, Any]]:
    return _children(Metric, job_id, url)


def job_artifacts(job_id: int, *, url: UrlOrEngine = None) -> list[dict[str, Any]]:
    return _children(Artifact, job_id, url)


def artifact_files(job_id: int, *, url: UrlOrEngine = None) -> dict[str, Path]:
    """A job's published files by artifact name."""
    return {a["name"]: file_of(a) for a in job_artifacts(job_id, url=url)}


def job_logs(job_id: int, *, url: UrlOrEngine = None) -> list[dict[str, Any]]:
    return _children(JobLog, job_id, url)


def count_jobs(by: str = "status", *, kind: str | None = None, url: UrlOrEngine = None) -> dict[str, int]:
    """Number of jobs per ``status`` or per ``kind`` (optionally of one kind), in one grouped query."""
    if by not in ("status", "kind"):
        raise ParameterError("by", f"must be 'status' or 'kind', got {by!r}")
    column = getattr(Job, by)
    stmt = select(column, func.count()).group_by(column)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    with session_scope(url) as session:
        return {key: int(n) for key, n in session.execute(stmt)}
