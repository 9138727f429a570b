"""The job store on SQLite and PostgreSQL: lifecycle, atomic records and artifacts, leases."""

from datetime import timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.exc import IntegrityError

from anonaudit.errors import AnonauditError, NotFoundError, ParameterError
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.registry import job_kind
from anonaudit.jobs.worker import run_job_now
from anonaudit.settings import get_settings
from anonaudit.store import artifacts
from anonaudit.store import datasets as dataset_store
from anonaudit.store import jobs as job_store
from anonaudit.store.artifacts import ArtifactRecord
from anonaudit.store.models import utcnow

W = "worker-a"


def _record(name: str) -> ArtifactRecord:
    return ArtifactRecord(name, "table", f"jobs/x/{name}", "text/csv", "0" * 64, 3)


def test_submit_claim_finish(db_url):
    job_id = job_store.submit_job("noop", {"b": 1, "a": [1, 2]}, seed=7)
    job = job_store.get_job(job_id)
    assert (job.status, job.seed, job.attempts, job.max_attempts) == ("queued", 7, 0, 2)
    assert job.created_at.tzinfo is timezone.utc and job.code_version.startswith("0.")

    claimed = job_store.claim_job(W, lease_seconds=30)
    assert claimed is not None and claimed.id == job_id
    assert (claimed.status, claimed.worker_id, claimed.attempts) == ("running", W, 1)
    assert claimed.lease_expires_at > utcnow() + timedelta(seconds=25)
    assert job_store.claim_job("worker-b", 30) is None  # nothing else queued
    assert job_store.heartbeat(job_id, W, 30) is False
    assert job_store.heartbeat(job_id, "worker-b", 30) is True  # not its job: stop
    assert job_store.set_progress(job_id, 0.5, "half") is False

    metrics = [("acc", 0.9, None, {"split": "test", "class": "walking"}), ("loss", float("nan"), 3, None)]
    job_store.finish_job(job_id, W, result={"accuracy": np.float32(0.5)}, metrics=metrics,
                         artifacts=[_record("t.csv")])
    done = job_store.job_dict(job_id)
    assert (done["status"], done["progress"], done["result"]) == ("succeeded", 1.0, {"accuracy": 0.5})
    assert [(m["name"], m["value"], m["step"], m["tags"]) for m in done["metrics"]] == [
        ("acc", 0.9, None, {"split": "test", "class": "walking"}), ("loss", None, 3, {})]
    assert [a["name"] for a in done["artifacts"]] == ["t.csv"]
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]
    assert [log["message"] for log in job_store.job_logs(job_id)][-1] == "succeeded"
    assert [j["id"] for j in job_store.list_jobs(status="succeeded", kind="noop")] == [job_id]


def test_claim_order_and_kinds(db_url):
    low = job_store.submit_job("noop", {"n": 1})
    high = job_store.submit_job("noop", {"n": 2}, priority=5)
    other = job_store.submit_job("other", {})
    assert job_store.claim_job(W, 30, kinds=["noop"]).id == high
    assert job_store.claim_job(W, 30, kinds=["noop"]).id == low
    assert job_store.claim_job(W, 30, kinds=["noop"]) is None
    assert job_store.claim_job(W, 30).id == other


def test_config_hash_and_seed_are_stable(db_url):
    a = job_store.get_job(job_store.submit_job("noop", {"x": 1, "y": [1, 2]}))
    b = job_store.get_job(job_store.submit_job("noop", {"y": [1, 2], "x": 1}))
    c = job_store.get_job(job_store.submit_job("noop", {"x": 1, "y": [1, 2]}, seed=a.seed + 1))
    assert a.seed == b.seed and a.config_hash == b.config_hash  # derived seed, key order irrelevant
    assert c.config_hash != a.config_hash
    assert a.config_hash == job_store.config_hash("noop", {"y": [1, 2], "x": 1}, a.seed)
    with pytest.raises(ParameterError, match="'params'.*JSON"):
        job_store.submit_job("noop", {"x": object()})
    with pytest.raises(ParameterError, match="'params'"):
        job_store.submit_job("noop", {"x": float("nan")})


def test_finish_is_one_transaction(db_url):
    job_id = job_store.submit_job("noop", {})
    job_store.claim_job(W, 30)
    with pytest.raises(IntegrityError):  # duplicate artifact name: the whole finish rolls back
        job_store.finish_job(job_id, W, result={"r": 1}, metrics=[("m", 1.0, None, None)],
                             artifacts=[_record("a.csv"), _record("a.csv")])
    job = job_store.job_dict(job_id)
    assert (job["status"], job["result"], job["metrics"], job["artifacts"]) == ("running", None, [], [])
    with pytest.raises(job_store.LeaseLost):
        job_store.finish_job(job_id, "worker-b", result={})
    job_store.finish_job(job_id, W, result={"r": 1}, metrics=[("m", 1.0, None, None)], artifacts=[_record("a.csv")])
    assert job_store.get_job(job_id).status == "succeeded"


def test_fail_cancel_rerun(db_url):
    failing = job_store.submit_job("noop", {"fail": True}, seed=3)
    job_store.claim_job(W, 30)
    job_store.fail_job(failing, W, "ValueError: bad", traceback="Traceback ...\nValueError: bad")
    job = job_store.get_job(failing)
    assert (job.status, job.error) == ("failed", "ValueError: bad")
    assert job_store.job_logs(failing)[-1]["message"].startswith("Traceback")

    rerun = job_store.get_job(job_store.rerun_job(failing))
    assert (rerun.kind, rerun.params, rerun.seed, rerun.config_hash, rerun.rerun_of, rerun.status) == (
        job.kind, job.params, job.seed, job.config_hash, failing, "queued")

    assert job_store.cancel_job(rerun.id) == "cancelled"
    assert job_store.get_job(rerun.id).status == "cancelled"
    running = job_store.submit_job("noop", {})
    job_store.claim_job(W, 30)
    assert job_store.cancel_job(running).startswith("cancel requested")
    assert job_store.heartbeat(running, W, 30) is True
    job_store.mark_cancelled(running, W)
    assert job_store.get_job(running).status == "cancelled"
    with pytest.raises(job_store.JobStateError, match=f"job {failing} already failed"):
        job_store.cancel_job(failing)
    with pytest.raises(NotFoundError, match="no job with id 999"):
        job_store.cancel_job(999)
    with pytest.raises(ParameterError, match="status"):
        job_store.list_jobs(status="done")


def test_lease_expiry_requeues_then_fails(db_url):
    job_id = job_store.submit_job("noop", {}, max_attempts=2)
    job_store.claim_job("lost-1", lease_seconds=1)
    assert job_store.requeue_expired() == []  # lease still valid
    later = utcnow() + timedelta(seconds=5)
    assert job_store.requeue_expired(now=later) == [job_id]
    assert (job_store.get_job(job_id).status, job_store.get_job(job_id).attempts) == ("queued", 1)

    assert job_store.claim_job("lost-2", lease_seconds=1).attempts == 2
    with pytest.raises(job_store.LeaseLost):
        job_store.finish_job(job_id, "lost-1", result={})  # the first worker came back too late
    assert job_store.requeue_expired(now=later) == [job_id]
    job = job_store.get_job(job_id)
    assert (job.status, job.error) == ("failed", "worker lost (lease expired) after 2 attempts")
    assert "lost-2 lost" in job_store.job_logs(job_id)[-1]["message"]


def test_run_job_now_publishes_only_on_success(db_url):
    ok = run_job_now("noop", {"steps": 2})
    assert ok.status == "succeeded"
    [art] = job_store.job_artifacts(ok.id)
    path = get_settings().home / art["path"]
    assert path.is_file() and artifacts.sha256_file(path) == art["sha256"] and art["size_bytes"] == path.stat().st_size
    assert not artifacts.job_dir(ok.id).joinpath(artifacts.STAGING).exists()

    with pytest.raises(AnonauditError, match="failed on purpose"):
        run_job_now("noop", {"fail": True})
    failed = job_store.list_jobs(limit=1)[0]
    assert (failed["status"], failed["error"], failed["artifacts"]) == (
        "failed", f"AnonauditError: noop job {failed['id']} failed on purpose (fail=true)", [])
    assert not artifacts.job_dir(failed["id"]).exists()

    with pytest.raises(ParameterError, match="unknown job kind 'nope'; known kinds: .*noop"):
        run_job_now("nope", {})
    assert len(job_store.list_jobs()) == 2


def test_a_lost_worker_never_touches_the_next_attempt(db_url):
    """A worker whose lease expired but that still runs ("zombie") finishes after the retry started."""
    job_id = job_store.submit_job("noop", {})
    job_store.claim_job("zombie", lease_seconds=1)
    job_store.requeue_expired(now=utcnow() + timedelta(seconds=5))
    assert job_store.claim_job("w2", lease_seconds=30).attempts == 2
    artifacts.reset(job_id)
    (artifacts.staging_dir(job_id, 2) / "mine.csv").write_text("attempt 2")

    (artifacts.staging_dir(job_id, 1) / "zombie.csv").write_text("attempt 1")
    records = artifacts.publish(job_id, 1)
    with pytest.raises(job_store.LeaseLost):
        job_store.finish_job(job_id, "zombie", artifacts=records)
    artifacts.unpublish(records)

    job_store.finish_job(job_id, "w2", artifacts=artifacts.publish(job_id, 2))
    assert [a["name"] for a in job_store.job_artifacts(job_id)] == ["mine.csv"]
    assert sorted(p.name for p in artifacts.job_dir(job_id).iterdir()) == ["mine.csv"]


@job_kind("test_context")
def _context_kind(ctx: JobContext) -> dict:
    ctx.write_bytes("raw.bin", b"\x00\x01")
    ctx.write_text("notes/readme.md", "hello")
    ctx.write_json("summary.json", {"mean": np.float64(1.5), "n": np.int64(3)})
    ctx.write_dataframe("table", pd.DataFrame({"a": [1, 2]}))
    ctx.artifact_path("partial.csv").with_name("partial.csv.tmp-dead").write_text("unfinished")
    ctx.metric("accuracy", 0.75, split="test")
    ctx.log("halfway", level="warning")
    ctx.progress(1.0, "done")
    return {"draw": int(ctx.rng().integers(1000))}


def test_job_context_helpers(db_url):
    job = job_store.job_dict(run_job_now("test_context", {}, seed=11).id)
    assert job["result"]["draw"] == int(np.random.default_rng(11).integers(1000))
    kinds = {a["name"]: (a["kind"], a["media_type"]) for a in job["artifacts"]}
    assert kinds == {
        "notes/readme.md": ("report", "text/markdown"), "raw.bin": ("file", "application/octet-stream"),
        "summary.json": ("file", "application/json"), "table.csv": ("table", "text/csv"),
        "table.parquet": ("table", "application/vnd.apache.parquet"),
    }
    assert pd.read_parquet(get_settings().home / f"jobs/{job['id']}/table.parquet")["a"].tolist() == [1, 2]
    assert [(m["name"], m["tags"]) for m in job["metrics"]] == [("accuracy", {"split": "test"})]
    assert any(log["level"] == "warning" and log["message"] == "halfway" for log in job_store.job_logs(job["id"]))
    with pytest.raises(ParameterError, match="artifact names"):
        JobContext(job_store.get_job(job["id"]), workdir=get_settings().home).artifact_path("../escape.txt")


def test_datasets(db_url):
    summary = {"sampling_rate": 50.0, "n_subjects": 3, "n_recordings": 6, "n_samples": 600, "n_channels": 6,
               "activities": ["walk"]}
    stored = get_settings().datasets_dir / "demo-1"
    stored.mkdir(parents=True)
    row = dataset_store.register_dataset("demo", "tabular", storage_path=str(stored), summary=summary,
                                         content_sha256="a" * 64)
    assert (row["name"], row["n_subjects"], row["summary"]["activities"]) == ("demo", 3, ["walk"])
    assert dataset_store.get_dataset(row["id"])["name"] == dataset_store.get_dataset(str(row["id"]))["name"] == "demo"
    with pytest.raises(ParameterError, match="already registered"):
        dataset_store.register_dataset("demo", "tabular", storage_path=str(stored), summary=summary,
                                       content_sha256="b" * 64)
    with pytest.raises(NotFoundError, match="no dataset 'other' \\(known datasets: demo"):
        dataset_store.get_dataset("other")
    assert dataset_store.delete_dataset("demo") == str(stored)
    assert not stored.exists() and dataset_store.list_datasets() == []
    assert dataset_store.find_dataset("demo") is None
