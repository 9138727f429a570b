"""Run jobs: a polling worker process (``run_worker``), or one job right here (``run_job_now``).

Both use the same path (``_execute``): clear any left-overs of earlier attempts, run the kind's
function with a heartbeat thread extending the lease (and picking up cancel requests), then
publish the staged artifacts and record success in one transaction — or record the failure or
cancellation and discard the staged files — and finally render the job's HTML report.

SIGTERM / SIGINT stop a worker gracefully: it takes no new job, and a running job stops at its
next progress report and goes back to the queue without counting the attempt, so another worker
redoes it from scratch (a job that never reports progress is finished first). A second signal
acts as usual (SIGTERM kills the process — the lease then expires —, SIGINT interrupts the job,
which is recorded as cancelled).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from sqlalchemy.exc import OperationalError

from anonaudit.errors import AnonauditError, JobCancelled
from anonaudit.jobs.context import JobContext, WorkerStopping
from anonaudit.jobs.registry import get_kind, known_kinds, validate
from anonaudit.progress import ProgressFn
from anonaudit.store import artifacts
from anonaudit.store import jobs as job_store
from anonaudit.store.db import UrlOrEngine, ensure_schema
from anonaudit.store.models import Job

log = logging.getLogger("anonaudit.worker")

DEFAULT_LEASE_S = 30.0


class _Signals:
    """First SIGTERM/SIGINT: stop taking jobs and ask the running job to stop; then the defaults."""

    def __init__(self) -> None:
        self.shutdown = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():  # handlers only work there
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        log.warning("received %s: stopping after the running job is re-queued", signal.Signals(signum).name)
        self.shutdown.set()
        self._restore()


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def _heartbeat(job: Job, worker_id: str, lease_seconds: float, cancel: threading.Event,
               url: UrlOrEngine) -> Iterator[None]:
    """Extend the job's lease every ``lease/3`` seconds; set ``cancel`` when the job should stop."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(lease_seconds / 3):
            try:
                if job_store.heartbeat(job.id, worker_id, lease_seconds, url=url):
                    cancel.set()
            except Exception as exc:  # a transient DB error must not kill the job; the lease has slack
                log.warning("heartbeat of job %s failed: %s: %s", job.id, type(exc).__name__, exc)

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _one_line(exc: BaseException) -> str:
    message = " ".join(str(exc).splitlines())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _record(action: Callable[..., None], job: Job, *args: Any, **kwargs: Any) -> None:
    """Record a job's outcome unless another worker took it over meanwhile (lease lost)."""
    try:
        action(job.id, *args, **kwargs)
    except job_store.LeaseLost as exc:
        log.warning("%s", exc)


def _succeed(job: Job, worker_id: str, ctx: JobContext, result: Any, url: UrlOrEngine) -> None:
    if result is not None and not isinstance(result, dict):
        raise TypeError(f"job kind {job.kind!r} returned {type(result).__name__}; job functions return a dict")
    records = artifacts.publish(job.id, job.attempts)
    try:
        job_store.finish_job(job.id, worker_id, result=result, metrics=ctx.pending_metrics, artifacts=records,
                             url=url)
    except BaseException:
        artifacts.unpublish(records)  # published files without rows must not look finished
        raise
    artifacts.drop_resume(job.id)


def _write_report(job: Job, url: UrlOrEngine) -> None:
    """Render the finished job's HTML report; a report problem never changes the job's outcome."""
    try:
        from anonaudit.jobs.reports import write_report

        job_store.set_report_path(job.id, write_report(job.id, url=url), url=url)
    except Exception as exc:
        job_store.add_log(job.id, "warning", f"report not written: {_one_line(exc)}", url=url)


def _execute(job: Job, worker_id: str, lease_seconds: float, *, url: UrlOrEngine,
             shutdown: threading.Event | None = None, on_progress: ProgressFn | None = None) -> Exception | None:
    """Run a claimed job to a recorded end; returns the exception it failed with, if any."""
    cancel = threading.Event()
    error: Exception | None = None
    try:
        artifacts.reset(job.id)  # left-overs of an attempt whose worker was lost
        ctx = JobContext(job, workdir=artifacts.staging_dir(job.id, job.attempts), url=url, cancel=cancel,
                         shutdown=shutdown, on_progress=on_progress)
        with _heartbeat(job, worker_id, lease_seconds, cancel, url):
            result = get_kind(job.kind)(ctx)
        _succeed(job, worker_id, ctx, result, url)
    except JobCancelled as exc:
        artifacts.discard(job.id, job.attempts)
        _record(job_store.mark_cancelled, job, worker_id, url=url)
        error = exc
    except WorkerStopping as exc:
        artifacts.discard(job.id, job.attempts)
        _record(job_store.release_job, job, worker_id, str(exc), url=url)
        raise
    except KeyboardInterrupt:  # Ctrl-C (in ``run_job_now``, or a second one in a worker)
        artifacts.discard(job.id, job.attempts)
        _record(job_store.mark_cancelled, job, worker_id, url=url)
        raise
    except Exception as exc:
        artifacts.discard(job.id, job.attempts)
        _record(job_store.fail_job, job, worker_id, _one_line(exc), traceback=traceback.format_exc(), url=url)
        error = exc
    _write_report(job, url)
    return error


def run_worker(*, worker_id: str | None = None, lease_seconds: float = DEFAULT_LEASE_S, poll_seconds: float = 1.0,
               max_jobs: int | None = None, idle_exit_seconds: float | None = None,
               kinds: Sequence[str] | None = None, url: UrlOrEngine = None) -> int:
    """Process queued jobs until stopped; returns how many jobs this worker ran.

    Stops after ``max_jobs`` jobs, after ``idle_exit_seconds`` without work, or on SIGTERM/SIGINT.
    Only kinds this process knows (or ``kinds``) are claimed.
    """
    worker_id = worker_id or default_worker_id()
    for kind in kinds or ():
        get_kind(kind)  # unknown kinds fail now, not silently never match
    runnable = list(kinds) if kinds else known_kinds()
    ensure_schema(url)
    log.info("worker %s started (kinds: %s, lease %gs)", worker_id, ", ".join(runnable), lease_seconds)
    done, idle_since = 0, time.monotonic()
    with _Signals() as signals:
        try:
            while not signals.shutdown.is_set() and (max_jobs is None or done < max_jobs):
                try:
                    for job_id in job_store.requeue_expired(url=url):
                        log.warning("job %s: its worker was lost (lease expired)", job_id)
                    job = job_store.claim_job(worker_id, lease_seconds, runnable, url=url)
                except OperationalError as exc:  # database restarting or unreachable: keep polling
                    log.warning("database unavailable: %s", str(exc.orig or exc).strip().splitlines()[0])
                    signals.shutdown.wait(poll_seconds)
                    continue
                if job is None:
                    if idle_exit_seconds is not None and time.monotonic() - idle_since >= idle_exit_seconds:
                        break
                    signals.shutdown.wait(poll_seconds)
                    continue
                log.info("job %s (%s) attempt %s started", job.id, job.kind, job.attempts)
                error = _execute(job, worker_id, lease_seconds, url=url, shutdown=signals.shutdown)
                log.info("job %s (%s) ended%s", job.id, job.kind, f": {_one_line(error)}" if error else "")
                done += 1
                idle_since = time.monotonic()
        except WorkerStopping as exc:
            log.warning("%s; the job went back to the queue", exc)
    log.info("worker %s stopped after %d job(s)", worker_id, done)
    return done


def run_job_now(kind: str, params: dict[str, Any], *, seed: int | None = None, dataset_id: int | None = None,
                progress: ProgressFn | None = None, url: UrlOrEngine = None) -> Job:
    """Record a job and run it in this process, through the same path as a worker.

    Returns the finished job; if the job failed, its exception is raised after the failure was
    recorded (``AnonauditError`` messages are meant for the user).
    """
    validate(kind, params)  # an unknown kind or a bad parameter is a usage error, not a job
    worker_id = f"{default_worker_id()}{job_store.INLINE}"
    job = job_store.start_job(kind, params, worker_id, DEFAULT_LEASE_S, seed=seed, dataset_id=dataset_id, url=url)
    error = _execute(job, worker_id, DEFAULT_LEASE_S, url=url, on_progress=progress)
    if error is not None:
        raise error
    return job_store.get_job(job.id, url=url)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m anonaudit.jobs.worker``: a worker without the Typer CLI (used by the tests)."""
    parser = argparse.ArgumentParser(prog="python -m anonaudit.jobs.worker", description=run_worker.__doc__)
    parser.add_argument("--id", dest="worker_id")
    parser.add_argument("--lease", type=float, default=DEFAULT_LEASE_S, help="lease seconds")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls when idle")
    parser.add_argument("--max-jobs", type=int)
    parser.add_argument("--idle-exit", type=float, help="exit after this many idle seconds")
    parser.add_argument("--kind", action="append", help="only run this kind (repeatable)")
    parser.add_argument("--url", help="database URL (default: ANONAUDIT_DATABASE_URL or the SQLite default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema checks are not news
    try:
        run_worker(worker_id=args.worker_id, lease_seconds=args.lease, poll_seconds=args.poll,
                   max_jobs=args.max_jobs, idle_exit_seconds=args.idle_exit, kinds=args.kind, url=args.url)
    except AnonauditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
