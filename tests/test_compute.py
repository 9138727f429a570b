import os

import pytest

from anonaudit.compute import DaskExecutor, LocalExecutor, TaskFailed, get_executor
from anonaudit.errors import ParameterError


def square(x: int) -> tuple[int, int, str]:
    return x * x, os.getpid(), os.environ.get("OMP_NUM_THREADS", "")


def explode(x: int) -> int:
    if x == 3:
        raise ValueError("boom")
    return x


@pytest.mark.parametrize("n_workers", [1, 2])
def test_local_executor_runs_every_task_once(n_workers):
    ex = LocalExecutor(n_workers)
    try:
        results = dict(ex.map_unordered(square, [{"x": i} for i in range(8)]))
    finally:
        ex.close()
    assert {i: r[0] for i, r in results.items()} == {i: i * i for i in range(8)}
    if n_workers == 2:
        assert len({r[1] for r in results.values()} - {os.getpid()}) >= 1  # ran in child processes
        assert {r[2] for r in results.values()} == {"1"}  # one thread per task


def test_failed_task_is_named():
    ex = LocalExecutor(2)
    try:
        with pytest.raises(TaskFailed, match=r"task 3 \(x=3\).*ValueError: boom"):
            list(ex.map_unordered(explode, [{"x": i} for i in range(5)]))
    finally:
        ex.close()


def test_dask_local_cluster(monkeypatch):
    import sys
    import types

    import dask
    from distributed import Client, LocalCluster

    # spawned workers re-run __main__'s file: give them none (pytest's, or a page an AppTest left behind)
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))

    # generous connect timeouts: on a loaded 2-core machine the default 30 s can pass before a nanny's worker is up
    with dask.config.set({"distributed.comm.timeouts.connect": "120s"}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        ex = get_executor(scheduler=cluster.scheduler_address)
        try:
            assert isinstance(ex, DaskExecutor) and ex.n_workers == 2
            results = dict(ex.map_unordered(square, [{"x": i} for i in range(10)]))
            assert {i: r[0] for i, r in results.items()} == {i: i * i for i in range(10)}
            with pytest.raises(TaskFailed, match="task 3"):
                list(ex.map_unordered(explode, [{"x": i} for i in range(5)]))
        finally:
            ex.close()
        with Client(cluster) as client:  # an existing client is used, not closed
            ex = DaskExecutor(client)
            assert dict(ex.map_unordered(square, [{"x": 2}]))[0][0] == 4
            ex.close()
            assert client.status == "running"


def test_executor_parameter_errors(monkeypatch):
    with pytest.raises(ParameterError, match="n_workers"):
        LocalExecutor(0)
    monkeypatch.setenv("ANONAUDIT_DASK_SCHEDULER", "tcp://127.0.0.1:1")
    with pytest.raises(ParameterError, match="cannot reach Dask scheduler"):
        get_executor()


def test_cli_scheduler_option_selects_dask(monkeypatch):
    from typer.testing import CliRunner

    from anonaudit.cli import app
    from anonaudit.settings import get_settings

    monkeypatch.delenv("ANONAUDIT_DASK_SCHEDULER", raising=False)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the option writes the environment
    res = CliRunner().invoke(app, ["--scheduler", "tcp://127.0.0.1:8786", "data", "sample", "--help"])
    assert res.exit_code == 0
    assert get_settings().dask_scheduler == "tcp://127.0.0.1:8786"
