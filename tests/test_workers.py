"""Worker processes against a shared database: no job runs twice, lost workers are recovered,
SIGTERM re-queues, cancellation stops a running job."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anonaudit.jobs.worker import run_worker
from anonaudit.store import artifacts
from anonaudit.store import jobs as job_store


Spawn = Callable[..., subprocess.Popen]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``python -m anonaudit.jobs.worker`` processes with the test's environment, output kept
    for failures; any still running at teardown are killed, so a failed test leaks no worker that
    would go on polling the database."""
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        with open(tmp_path / f"{name}.log", "w") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "anonaudit.jobs.worker", "--id", name, *args],
                                          stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def _markers(marker_dir: Path) -> Counter:
    return Counter(int(p.name.split("-")[0]) for p in marker_dir.iterdir()) if marker_dir.exists() else Counter()


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("*.log")))


def test_four_workers_run_each_job_exactly_once(db_url, tmp_path, spawn):
    markers = tmp_path / "markers"
    ids = [job_store.submit_job("noop", {"sleep_s": 0.02, "marker_dir": str(markers)}) for _ in range(100)]
    workers = [spawn(f"w{i}", "--poll", "0.05", "--idle-exit", "1.5") for i in range(4)]
    for proc in workers:
        assert proc.wait(timeout=90) == 0, _logs(tmp_path)

    jobs = {j["id"]: j for j in job_store.list_jobs(limit=200)}
    assert sorted(jobs) == ids
    assert {j["status"] for j in jobs.values()} == {"succeeded"}, _logs(tmp_path)
    assert {j["attempts"] for j in jobs.values()} == {1}
    assert _markers(markers) == Counter({job_id: 1 for job_id in ids})
    assert all([a["name"] for a in j["artifacts"]] == ["noop.json"] for j in jobs.values())
    assert len({j["worker_id"] for j in jobs.values()}) >= 2  # the work really was shared


def test_killed_worker_is_recovered_and_exhausted_job_fails(db_url, tmp_path, spawn):
    markers = tmp_path / "markers"
    params = {"sleep_s": 3.0, "marker_dir": str(markers)}
    retried = job_store.submit_job("noop", params, max_attempts=2)
    exhausted = job_store.submit_job("noop", params, max_attempts=1)
    doomed = [spawn(f"doomed{i}", "--lease", "2", "--max-jobs", "1", "--poll", "0.05") for i in range(2)]
    _wait_for(lambda: len(_markers(markers)) == 2, 30, "both jobs to start")
    for proc in doomed:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    rescuer = spawn("rescuer", "--lease", "2", "--max-jobs", "1", "--poll", "0.1", "--idle-exit", "15")
    assert rescuer.wait(timeout=60) == 0, _logs(tmp_path)
    job_store.requeue_expired()  # in case the rescuer left before the second lease expired

    job = job_store.get_job(retried)
    assert (job.status, job.attempts, job.worker_id) == ("succeeded", 2, "rescuer"), _logs(tmp_path)
    job = job_store.get_job(exhausted)
    assert (job.status, job.attempts, job.error) == ("failed", 1, "worker lost (lease expired) after 1 attempts")
    assert _markers(markers) == Counter({retried: 2, exhausted: 1})
    assert [a["name"] for a in job_store.job_artifacts(retried)] == ["noop.json"]
    assert not artifacts.job_dir(exhausted).exists() or not any(artifacts.job_dir(exhausted).rglob("*.json"))


def test_sigterm_puts_the_running_job_back(db_url, tmp_path, spawn):
    markers = tmp_path / "markers"
    job_id = job_store.submit_job("noop", {"sleep_s": 60, "steps": 600, "marker_dir": str(markers)})
    proc = spawn("w", "--poll", "0.05")
    _wait_for(lambda: len(_markers(markers)) == 1, 30, "the job to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, _logs(tmp_path)
    job = job_store.get_job(job_id)
    assert (job.status, job.attempts, job.worker_id) == ("queued", 0, None)
    assert job_store.job_logs(job_id)[-1]["message"] == f"re-queued: worker shutting down during job {job_id}"
    assert not artifacts.job_dir(job_id).exists()


def test_cancel_stops_a_running_job(db_url, tmp_path):
    markers = tmp_path / "markers"
    job_id = job_store.submit_job("noop", {"sleep_s": 60, "steps": 600, "marker_dir": str(markers)})
    thread = threading.Thread(target=run_worker, kwargs={"max_jobs": 1, "poll_seconds": 0.05, "lease_seconds": 30})
    thread.start()
    _wait_for(lambda: len(_markers(markers)) == 1, 30, "the job to start")
    assert job_store.cancel_job(job_id).startswith("cancel requested")
    thread.join(timeout=20)
    assert not thread.is_alive()
    job = job_store.job_dict(job_id)
    assert (job["status"], job["artifacts"]) == ("cancelled", [])
    assert not artifacts.job_dir(job_id).exists()


def test_a_restarted_attempt_keeps_the_resume_folder_and_success_drops_it(db_url):
    job_id = job_store.submit_job("noop", {"sleep_s": 0})
    checkpoint = artifacts.resume_dir(job_id) / "anonymiser.ckpt"
    checkpoint.write_bytes(b"epoch 3")
    leftover = artifacts.job_dir(job_id) / "plot.png"  # a lost attempt's file without an artifact row
    leftover.write_bytes(b"png")
    artifacts.reset(job_id)
    assert checkpoint.read_bytes() == b"epoch 3" and not leftover.exists()
    assert run_worker(max_jobs=1, poll_seconds=0.05) == 1
    assert job_store.job_dict(job_id)["status"] == "succeeded"
    assert not checkpoint.parent.exists()
