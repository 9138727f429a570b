"""The Python API: every job kind as a plain function.

Each call is still a recorded job (parameters, seed, metrics, artifacts in the store, and a
report), run in this process. ``submit`` queues a job for ``anonaudit worker`` processes instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anonaudit.jobs.datasets import open_dataset
from anonaudit.jobs.reports import write_report
from anonaudit.jobs.worker import run_job_now
from anonaudit.progress import ProgressFn
from anonaudit.store import jobs as job_store

__all__ = ["import_dataset", "open_dataset", "run", "run_pipeline", "submit", "write_report"]


def run(kind: str, params: dict[str, Any] | None = None, *, seed: int | None = None,
        progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run job ``kind`` now, in this process; return the finished job as a dict."""
    job = run_job_now(kind, params or {}, seed=seed, progress=progress)
    return job_store.job_dict(job.id)


def submit(kind: str, params: dict[str, Any] | None = None, *, seed: int | None = None) -> int:
    """Queue job ``kind`` for a worker; return its id."""
    from anonaudit.jobs.registry import get_kind

    get_kind(kind)  # unknown kinds fail here, not in a worker
    return job_store.submit_job(kind, params or {}, seed=seed)


def import_dataset(path: str | Path, format: str = "auto", *, name: str | None = None,
                   replace: bool = False, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Import a dataset (SisFall, HAPT, UTD-MHAD, tabular CSV/Parquet + mapping) into the store."""
    params = {"path": str(path), "format": format, "name": name, "replace": replace}
    return run("import", params, progress=progress)


def run_pipeline(path: str | Path = "sample_data", *, seed: int | None = None,
                 progress: ProgressFn | None = None, **params: Any) -> dict[str, Any]:
    """The main job on ``path``: import, window, split, evaluate … and a report."""
    return run("pipeline", {"path": str(path), **params}, seed=seed, progress=progress)

