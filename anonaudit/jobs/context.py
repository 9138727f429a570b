"""What a job function receives: its parameters and seed, progress and cancellation, metrics,
logs, and a staging folder for its output files.

Files written through the ``write_*`` helpers appear under their final name only when complete;
the whole staging folder is published when the job succeeds and discarded otherwise.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anonaudit.errors import JobCancelled, ParameterError
from anonaudit.files import atomic_write
from anonaudit.progress import ProgressFn
from anonaudit.store import artifacts
from anonaudit.store import jobs as job_store
from anonaudit.store.db import UrlOrEngine
from anonaudit.store.models import Job

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PROGRESS_INTERVAL_S = 0.5  # at most ~2 progress writes per second


class WorkerStopping(BaseException):
    """Raised at a job's next progress report when its worker is shutting down (SIGTERM/SIGINT).

    A BaseException so that job code catching ``Exception`` does not swallow it; the worker puts
    the job back in the queue.
    """


class JobContext:
    """The running job's view of the platform, handed to ``fn(ctx)`` of every job kind."""

    def __init__(self, job: Job, *, workdir: Path, url: UrlOrEngine = None, cancel: threading.Event | None = None,
                 shutdown: threading.Event | None = None, on_progress: ProgressFn | None = None) -> None:
        self.job_id: int = job.id
        self.kind: str = job.kind
        self.params: dict[str, Any] = dict(job.params)
        self.seed: int = job.seed
        self.workdir = workdir
        self.pending_metrics: list[job_store.MetricRow] = []
        self._url = url
        self._cancel = cancel or threading.Event()  # set by the worker's heartbeat on cancel requests
        self._shutdown = shutdown or threading.Event()  # set by the worker's signal handler
        self._on_progress = on_progress
        self._last_write = float("-inf")

    # ------------------------------------------------------------------ progress and records
    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0..1); this is where a job stops when asked to.

        Raises JobCancelled once cancellation was requested, WorkerStopping when the worker is
        shutting down. Database writes are throttled, except the final one (``fraction >= 1``).
        """
        if self._on_progress is not None:
            self._on_progress(fraction, message)
        now = time.monotonic()
        if fraction >= 1.0 or now - self._last_write >= PROGRESS_INTERVAL_S:
            self._last_write = now
            if job_store.set_progress(self.job_id, fraction, message, url=self._url):
                self._cancel.set()
        if self._shutdown.is_set():
            raise WorkerStopping(f"worker shutting down during job {self.job_id}")
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.job_id} ({self.kind}) was cancelled")

    def metric(self, name: str, value: float | None, step: int | None = None, **tags: Any) -> None:
        """Buffer a metric; buffered metrics are stored when the job succeeds (or on ``flush``)."""
        self.pending_metrics.append((name, value, step, tags))

    def flush(self) -> None:
        """Store buffered metrics now (long jobs that want live curves)."""
        job_store.add_metrics(self.job_id, self.pending_metrics, url=self._url)
        self.pending_metrics = []

    def log(self, message: str, level: str = "info") -> None:
        job_store.add_log(self.job_id, level, message, url=self._url)

    def rng(self) -> np.random.Generator:
        """A generator seeded with the job's recorded seed."""
        import numpy as np

        return np.random.default_rng(self.seed)

    # ------------------------------------------------------------------ files
    def artifact_path(self, name: str) -> Path:
        """Where the job may write artifact ``name``; write complete files (see ``write_*``)."""
        path = self.workdir / artifacts.check_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _write(self, name: str, write: Callable[[Path], None]) -> Path:
        return atomic_write(self.artifact_path(name), write)

    def write_bytes(self, name: str, data: bytes) -> Path:
        return self._write(name, lambda tmp: tmp.write_bytes(data))

    def write_text(self, name: str, text: str) -> Path:
        return self._write(name, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(job_store.to_json(obj, name), indent=2) + "\n")

    def write_dataframe(self, name: str, df: pd.DataFrame, formats: Iterable[str] = ("csv", "parquet")) -> list[Path]:
        """Write ``df`` as ``name.csv`` and/or ``name.parquet`` (without the index)."""
        writers: dict[str, Callable[[Path], None]] = {
            "csv": lambda tmp: df.to_csv(tmp, index=False),
            "parquet": lambda tmp: df.to_parquet(tmp, index=False),
        }
        unknown = sorted(set(formats) - set(writers))
        if unknown:
            raise ParameterError("formats", f"unknown {unknown}; choose from {sorted(writers)}")
        return [self._write(f"{name}.{fmt}", writers[fmt]) for fmt in formats]
