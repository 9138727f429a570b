"""The Python API: every job kind as a plain function.

Each call is still a recorded job (parameters, seed, metrics, artifacts in the store, and a
report), run in this process. ``submit`` queues a job for ``anonaudit worker`` processes instead.
Every call validates the parameters with the kind's declaration before anything is stored or
trained, and asks :func:`anonaudit.access.require` whether ``role`` may do it; the CLI and scripts
act as the local operator, the app passes the signed-in role.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from anonaudit import access
from anonaudit.anonymise.config import DEFAULT_FRONTIER
from anonaudit.jobs.datasets import open_dataset
from anonaudit.jobs.reports import write_report
from anonaudit.jobs.worker import run_job_now
from anonaudit.progress import ProgressFn
from anonaudit.store import jobs as job_store

__all__ = ["cancel", "check", "frontier", "import_dataset", "open_dataset", "override_release", "rerun", "run", "run_pipeline",
           "submit", "write_report"]


def check(kind: str, params: Mapping[str, Any] | None = None, *, role: str = access.LOCAL_ROLE,
          restrict_paths: bool = False) -> None:
    """Everything a submission must pass before it is stored: the role, the parameters and, with
    ``restrict_paths`` (the app: its users are not the server's), the data roots of server paths."""
    from anonaudit.jobs.registry import validate
    from anonaudit.settings import get_settings
    from anonaudit.store.uploads import uploads_dir

    access.require(role, "submit", kind=kind)
    if restrict_paths:  # before validation, which may say whether a file exists
        access.check_server_paths(kind, params or {}, (*get_settings().data_roots, uploads_dir()))
    validate(kind, params or {})


def run(kind: str, params: dict[str, Any] | None = None, *, seed: int | None = None,
        progress: ProgressFn | None = None, role: str = access.LOCAL_ROLE) -> dict[str, Any]:
    """Run job ``kind`` now, in this process; return the finished job as a dict (``run_job_now`` validates)."""
    access.require(role, "submit", kind=kind)
    job = run_job_now(kind, params or {}, seed=seed, progress=progress)
    return job_store.job_dict(job.id)


def submit(kind: str, params: dict[str, Any] | None = None, *, seed: int | None = None,
           role: str = access.LOCAL_ROLE, restrict_paths: bool = False) -> int:
    """Queue job ``kind`` for a worker; return its id. Bad parameters fail here, not in a worker."""
    check(kind, params, role=role, restrict_paths=restrict_paths)
    return job_store.submit_job(kind, params or {}, seed=seed)


def cancel(job_id: int, *, role: str = access.LOCAL_ROLE) -> str:
    """Cancel a queued job or ask a running one to stop; returns what happened."""
    access.require(role, "cancel", kind=job_store.get_job(job_id).kind)
    return job_store.cancel_job(job_id)


def rerun(job_id: int, *, role: str = access.LOCAL_ROLE) -> int:
    """Queue a job again with its kind, parameters and seed; its parameters are checked again."""
    from anonaudit.jobs.registry import validate

    job = job_store.get_job(job_id)
    access.require(role, "rerun", kind=job.kind)
    validate(job.kind, job.params or {})
    return job_store.rerun_job(job_id)


def override_release(dataset: str, reason: str, *, role: str = access.LOCAL_ROLE,
                     actor: str | None = None) -> dict[str, Any]:
    """Export a release its check refused, on the record (a ``release_override`` job): only a steward may.

    ``actor`` says who decided (default: the operating-system user); it is stored with the
    reason, the time and the verdict overridden, and shown in the job's report."""
    import getpass

    access.require(role, "override_release")
    return run("release_override", {"dataset": dataset, "reason": reason, "actor": actor or getpass.getuser()},
               role=role)


def import_dataset(path: str | Path, format: str = "auto", *, name: str | None = None,
                   replace: bool = False, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Import a dataset (SisFall, HAPT, UTD-MHAD, tabular CSV/Parquet + mapping) into the store."""
    params = {"path": str(path), "format": format, "name": name, "replace": replace}
    return run("import", params, progress=progress)


def run_pipeline(path: str | Path = "sample_data", *, seed: int | None = None,
                 progress: ProgressFn | None = None, **params: Any) -> dict[str, Any]:
    """The main job on ``path``: import, window, split, evaluate … and a report."""
    return run("pipeline", {"path": str(path), **params}, seed=seed, progress=progress)


def frontier(dataset: str, methods: Sequence[str] = DEFAULT_FRONTIER, *, seed: int | None = None,
             progress: ProgressFn | None = None, **params: Any) -> dict[str, Any]:
    """Sweep each method's privacy knob on a registered dataset, judge every point under every threat model,
    and release the best point that passes (``result["decision"]`` says which and why, or that none did)."""
    return run("frontier", {"dataset": dataset, "methods": list(methods), **params}, seed=seed, progress=progress)
