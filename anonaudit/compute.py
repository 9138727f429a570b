"""One executor interface for fan-out inside a job (many trainings).

Local processes by default; a Dask distributed cluster when one machine is not enough
(``--scheduler tcp://HOST:8786`` or ``ANONAUDIT_DASK_SCHEDULER``). Results are yielded as tasks
finish, so callers can store each one immediately and an interrupted job resumes where it
stopped. Task functions must be importable module-level functions taking keyword arguments.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any, Protocol

from anonaudit.errors import AnonauditError, ParameterError
from anonaudit.settings import get_settings

Task = Mapping[str, Any]


class TaskFailed(AnonauditError):
    """A fanned-out task raised; names the task so the user can find and re-run it."""


class Executor(Protocol):
    """Runs ``fn(**task)`` for every task and yields ``(task_index, result)`` as they finish."""

    n_workers: int

    def map_unordered(self, fn: Callable[..., Any], tasks: Iterable[Task]) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


def _single_thread_init() -> None:
    """Each task process uses one BLAS / torch thread: parallelism comes from the processes."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # torch is a dependency, but the executor itself does not need it
        pass


def _call(fn: Callable[..., Any], task: Task) -> Any:
    _single_thread_init()
    return fn(**task)


class LocalExecutor:
    """A process pool on this machine (``n_workers=1`` runs tasks in-process, in order)."""

    def __init__(self, n_workers: int | None = None) -> None:
        n = n_workers if n_workers is not None else (os.cpu_count() or 1)
        if n < 1:
            raise ParameterError("n_workers", f"must be at least 1, got {n}")
        self.n_workers = n
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: children start clean, without the parent's threads or torch state
            self._pool = ProcessPoolExecutor(self.n_workers, mp_context=get_context("forkserver"))
        return self._pool

    def map_unordered(self, fn: Callable[..., Any], tasks: Iterable[Task]) -> Iterator[tuple[int, Any]]:
        task_list = list(tasks)
        if self.n_workers == 1:
            for i, task in enumerate(task_list):
                with _naming_task(task, i):
                    result = fn(**task)
                yield i, result
            return
        pool = self._get_pool()
        futures: dict[Future[Any], int] = {pool.submit(_call, fn, t): i for i, t in enumerate(task_list)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    with _naming_task(task_list[i], i):
                        result = fut.result()
                    yield i, result
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """Tasks on a Dask distributed cluster (a scheduler address, or an existing ``Client``)."""

    def __init__(self, scheduler: str | Any) -> None:
        from distributed import Client

        if isinstance(scheduler, Client):
            self.client, self._owns_client = scheduler, False
        else:
            try:
                self.client, self._owns_client = Client(scheduler, timeout="10s"), True
            except OSError as exc:
                raise ParameterError("scheduler", f"cannot reach Dask scheduler at {scheduler}: {exc}") from exc
        self.n_workers = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))

    def map_unordered(self, fn: Callable[..., Any], tasks: Iterable[Task]) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        task_list = list(tasks)
        futures = [self.client.submit(_call, fn, t, pure=False) for t in task_list]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                i = index[fut.key]
                with _naming_task(task_list[i], i):
                    result = fut.result()
                yield i, result
        finally:
            self.client.cancel([f for f in futures if not f.done()])

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


@contextmanager
def _naming_task(task: Task, index: int) -> Iterator[None]:
    """Turn a task's unexpected exception into a TaskFailed that says which task it was."""
    try:
        yield
    except AnonauditError:
        raise
    except Exception as exc:
        raise TaskFailed(f"task {index} ({_describe(task)}) failed: {type(exc).__name__}: {exc}") from exc


def _describe(task: Task) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in task.items() if isinstance(v, (int, float, str, bool)))
    return text[:200] or "no scalar arguments"


def get_executor(scheduler: str | None = None, n_workers: int | None = None) -> Executor:
    """Dask if a scheduler is given (argument or ``ANONAUDIT_DASK_SCHEDULER``), else local processes."""
    scheduler = scheduler or get_settings().dask_scheduler
    if scheduler:
        return DaskExecutor(scheduler)
    return LocalExecutor(n_workers)
