"""Alembic migrations: up, down, up again on SQLite and PostgreSQL, keeping every row and link; models
match the migration; the ``db`` commands."""

import sqlite3
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from anonaudit.cli import app
from anonaudit.errors import AnonauditError
from anonaudit.store import datasets as dataset_store
from anonaudit.store import db
from anonaudit.store import jobs as job_store
from anonaudit.store.artifacts import ArtifactRecord
from anonaudit.store.models import Base

TABLES = {"datasets", "jobs", "metrics", "artifacts", "job_logs", "release_overrides"}


def _tables(url: str) -> set[str]:
    return set(inspect(db.get_engine(url)).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(db_url):
    assert db.current_revision(db_url) is None
    db.upgrade(db_url)
    assert _tables(db_url) == TABLES
    assert db.current_revision(db_url) == db.head_revision()
    indexes = {ix["name"] for ix in inspect(db.get_engine(db_url)).get_indexes("jobs")}
    assert "ix_jobs_queue" in indexes

    db.downgrade(db_url, revision="base")
    assert _tables(db_url) == set()
    assert db.current_revision(db_url) is None

    db.upgrade(db_url)
    assert _tables(db_url) == TABLES


def test_models_match_the_migration(db_url):
    db.upgrade(db_url)
    with db.get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_ensure_schema_migrates_on_first_use_and_rejects_unknown_revisions(db_url):
    db.ensure_schema(db_url)
    assert _tables(db_url) == TABLES
    with db.get_engine(db_url).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    db.dispose_engines()  # forget that this process saw the schema at head
    with pytest.raises(AnonauditError, match="from_the_future.*upgrade anonaudit"):
        db.ensure_schema(db_url)


# ---------------------------------------------------------------------------- data survives migrations
# Every foreign key of the schema, as (table, columns): the columns a table rebuild must keep.
LINKS = {"datasets": "id, import_job_id", "jobs": "id, dataset_id, rerun_of", "metrics": "id, job_id",
         "artifacts": "id, job_id", "job_logs": "id, job_id"}


def _populate(url: str) -> None:
    """A dataset imported by a job, a finished job on it with metrics and artifacts, and a re-run."""
    importer = job_store.start_job("import", {"path": "in.csv"}, "w", 60, url=url)
    dataset = dataset_store.register_dataset(
        "d", "csv", storage_path="/nowhere", content_sha256="0" * 64, import_job_id=importer.id, url=url,
        summary={"sampling_rate": 50.0, "n_subjects": 2, "n_recordings": 3, "n_samples": 10, "n_channels": 6})
    job = job_store.start_job("evaluate", {"k": 1}, "w", 60, dataset_id=dataset["id"], url=url)
    job_store.finish_job(job.id, "w", metrics=[("acc", 0.5, None, {}), ("acc", 0.6, 1, {"fold": 1})],
                         artifacts=[ArtifactRecord("report.html", "html", f"jobs/{job.id}/report.html",
                                                   "text/html", "1" * 64, 10)], url=url)
    job_store.add_log(job.id, "warning", "a log line", url=url)
    job_store.rerun_job(job.id, url=url)


def _links(url: str) -> dict[str, list[tuple]]:
    """Every row's id and foreign keys (columns that exist at every revision)."""
    with db.get_engine(url).connect() as conn:
        return {table: [tuple(row) for row in conn.execute(text(f"SELECT {cols} FROM {table} ORDER BY id"))]
                for table, cols in LINKS.items()}


def _populated_at_head(url: str) -> dict[str, list[tuple]]:
    """Migrate to head, populate, and check that every link the round trip must keep is set."""
    db.upgrade(url)
    _populate(url)
    links = _links(url)
    assert links["datasets"][0][1] is not None and all(dataset_id is not None for _, dataset_id, _ in links["jobs"][1:])
    assert links["jobs"][2][2] == links["jobs"][1][0]  # the re-run
    assert [len(links[t]) for t in ("metrics", "artifacts")] == [2, 1] and len(links["job_logs"]) >= 4
    return links


def _assert_foreign_keys_enforced(url: str, links: dict[str, list[tuple]]) -> None:
    """Deleting a job still cascades: the connection that ran the migrations has foreign keys on again."""
    job_id = links["metrics"][0][1]
    with db.get_engine(url).begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": job_id})
        assert conn.execute(text("SELECT count(*) FROM metrics WHERE job_id = :id"), {"id": job_id}).scalar() == 0


def test_rows_and_links_survive_a_round_trip_to_the_first_revision(db_url):
    before = _populated_at_head(db_url)
    first = next(s.revision for s in ScriptDirectory(str(db.migrations_dir())).walk_revisions()
                 if s.down_revision is None)
    while db.current_revision(db_url) != first:
        db.downgrade(db_url, revision="-1")
        assert _links(db_url) == before
    db.upgrade(db_url)
    assert db.current_revision(db_url) == db.head_revision()
    assert _links(db_url) == before
    _assert_foreign_keys_enforced(db_url, before)


def test_cli_downgrades_one_step_and_back(db_url):
    before = _populated_at_head(db_url)
    runner = CliRunner()
    res = runner.invoke(app, ["db", "downgrade", "-1"])
    assert res.exit_code == 0, res.output
    assert db.current_revision(db_url) != db.head_revision() and _links(db_url) == before
    res = runner.invoke(app, ["db", "upgrade", "head"])
    assert res.exit_code == 0, res.output
    assert f"database at {db.head_revision()}" in res.output and _links(db_url) == before
    _assert_foreign_keys_enforced(db_url, before)


def test_cli_unknown_revision_is_one_error_line(db_url):
    db.upgrade(db_url)
    res = subprocess.run([sys.executable, "-m", "anonaudit", "db", "downgrade", "nosuchrev"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error:") and "nosuchrev" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert db.current_revision(db_url) == db.head_revision()


def test_sqlite_migration_that_leaves_dangling_rows_is_rolled_back(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    links = _populated_at_head(url)
    raw = sqlite3.connect(tmp_path / "a.db")  # foreign keys off: a row whose job does not exist
    with raw:
        raw.execute("UPDATE metrics SET job_id = 999 WHERE id = :id", {"id": links["metrics"][0][0]})
    raw.close()
    with pytest.raises(AnonauditError, match=r"rolled back.*metrics → jobs.*foreign_key_check"):
        db.downgrade(url, revision="-1")
    assert db.current_revision(url) == db.head_revision()
    assert inspect(db.get_engine(url)).get_columns("datasets")[-1]["name"] == "release_check"  # not dropped
    _assert_foreign_keys_enforced(url, links)
    db.dispose_engines()
