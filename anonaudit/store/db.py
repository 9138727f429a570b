"""Engines, sessions and schema migrations.

SQLite needs zero configuration: the database file and its folder are created and migrated on
first use. On SQLite every transaction starts with ``BEGIN IMMEDIATE`` (it takes the write lock
up front), so concurrent worker processes queue on the 30 s busy timeout instead of failing
with "database is locked" when a read transaction later tries to write.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session

import anonaudit
from anonaudit.errors import AnonauditError
from anonaudit.settings import get_settings

UrlOrEngine = str | Engine | None

_engines: dict[str, Engine] = {}
_at_head: set[str] = set()
_lock = threading.Lock()


def _url(url: UrlOrEngine) -> str:
    if isinstance(url, Engine):
        return url.url.render_as_string(hide_password=False)
    return url or get_settings().database_url


def safe_url(url: UrlOrEngine = None) -> str:
    """The database URL with its password masked (for messages)."""
    return make_url(_url(url)).render_as_string(hide_password=True)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def get_engine(url: UrlOrEngine = None) -> Engine:
    """The process-wide engine for ``url`` (default: the configured database)."""
    if isinstance(url, Engine):
        return url
    key = _url(url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create_engine(key)
        return engine


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def dispose_engines() -> None:
    """Close every pooled connection (before dropping a database, or after ``fork``)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _at_head.clear()


@contextmanager
def session_scope(url: UrlOrEngine = None) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on any exception.

    Objects stay readable after the commit (``expire_on_commit=False``) so callers can return
    them. The schema is brought to head on first use.
    """
    ensure_schema(url)
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# ---------------------------------------------------------------------------- migrations
def migrations_dir() -> Path:
    """The repository's ``migrations/`` folder (Alembic's script location)."""
    path = Path(anonaudit.__file__).resolve().parent.parent / "migrations"
    if not (path / "env.py").is_file():
        raise AnonauditError(
            f"database migrations not found at {path}; anonaudit must run from a source checkout "
            "(pip install -e .)"
        )
    return path


def alembic_config(url: UrlOrEngine = None) -> Any:
    """An Alembic ``Config`` for ``url``; ``migrations/env.py`` reads the URL from its attributes."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["url"] = _url(url)
    return config


def _migrate(url: UrlOrEngine, revision: str, *, down: bool) -> None:
    """Run Alembic's upgrade or downgrade; a revision it cannot reach becomes an error naming the known ones."""
    from alembic import command
    from alembic.util import CommandError

    key = _url(url)
    with _lock:
        _at_head.discard(key)
    try:
        (command.downgrade if down else command.upgrade)(alembic_config(key), revision)
    except CommandError as exc:
        raise AnonauditError(
            f"cannot migrate {safe_url(key)} to revision {revision!r}: {exc}; the database is at "
            f"{current_revision(key) or 'base'}, known revisions are base, {', '.join(_revisions())} (head), "
            "or a number of steps such as -1"
        ) from None


def upgrade(url: UrlOrEngine = None, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    _migrate(url, revision, down=False)


def downgrade(url: UrlOrEngine = None, *, revision: str) -> None:
    """Revert migrations down to ``revision`` (e.g. ``"-1"`` or ``"base"``)."""
    _migrate(url, revision, down=True)


def current_revision(url: UrlOrEngine = None) -> str | None:
    """The database's schema revision (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _revisions() -> list[str]:
    """Every revision in ``migrations/``, oldest first."""
    from alembic.script import ScriptDirectory

    return [script.revision for script in ScriptDirectory(str(migrations_dir())).walk_revisions()][::-1]


def head_revision() -> str:
    """The newest revision in ``migrations/``."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(migrations_dir())).get_current_head()
    if head is None:
        raise AnonauditError(f"no migrations in {migrations_dir() / 'versions'}")
    return head


def ensure_schema(url: UrlOrEngine = None) -> None:
    """Migrate the database to head if needed; a set lookup once this process has checked."""
    key = _url(url)
    if key in _at_head:
        return
    current, head = current_revision(key), head_revision()
    if current != head:
        if current is not None and current not in _revisions():
            raise AnonauditError(
                f"database {safe_url(key)} is at schema revision {current}, which this version of "
                "anonaudit does not know; upgrade anonaudit"
            )
        upgrade(key)
    with _lock:
        _at_head.add(key)


@contextmanager
def scratch_postgres(server_url: str, prefix: str = "anonaudit_scratch") -> Iterator[str]:
    """A fresh, uniquely named database on a PostgreSQL server, dropped afterwards (tests, benchmarks).

    ``server_url`` names any database the role may connect to and create databases from.
    """
    import uuid

    from sqlalchemy import text
    from sqlalchemy.pool import NullPool

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                          connect_args={"connect_timeout": 10})
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            dispose_engines()
            with admin.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()
