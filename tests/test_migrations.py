"""Alembic migrations: up, down, up again on SQLite and PostgreSQL; models match the migration."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from anonaudit.errors import AnonauditError
from anonaudit.store import db
from anonaudit.store.models import Base

TABLES = {"datasets", "jobs", "metrics", "artifacts", "job_logs"}


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
