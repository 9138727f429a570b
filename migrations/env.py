"""Alembic environment for anonaudit.

The database URL comes from ``config.attributes["url"]`` (set by ``anonaudit.store.db``), else
from ``ANONAUDIT_DATABASE_URL`` / the default SQLite file (via ``anonaudit.settings``), so the
``alembic`` CLI and ``anonaudit db upgrade`` always migrate the same database.

On SQLite every migration runs with foreign keys off, following SQLite's own recipe for schema
changes (https://sqlite.org/lang_altertable.html#otheralter): batch operations copy a table, drop
the original and rename the copy, and with foreign keys on, the drop fires ``ON DELETE SET NULL``
and ``CASCADE`` in every table that references it (jobs lose their dataset, metrics, artifacts and
logs their job). All migrations of one run share one transaction, which ``PRAGMA
foreign_key_check`` must pass before it commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, make_url, text

from anonaudit.errors import AnonauditError
from anonaudit.settings import get_settings
from anonaudit.store.db import get_engine
from anonaudit.store.models import Base

# Any constant: serialises concurrent auto-upgrades of one PostgreSQL database (several
# workers starting at once on an empty database).
_PG_MIGRATION_LOCK = 0x616E6F6E

config = context.config
if config.config_file_name is not None:  # the alembic CLI: use alembic.ini's logging set-up
    fileConfig(config.config_file_name, disable_existing_loggers=False)
url: str = config.attributes.get("url") or get_settings().database_url
target_metadata = Base.metadata
is_sqlite = make_url(url).get_backend_name() == "sqlite"
# Alembic treats SQLite's DDL as non-transactional (pysqlite used to commit before DDL; anonaudit's
# engine issues BEGIN itself), which would commit each migration on its own: one transaction for
# the whole run lets the foreign key check roll everything back.
_OPTIONS = {"target_metadata": target_metadata, "render_as_batch": is_sqlite, "transactional_ddl": True}


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """On SQLite, foreign keys off on ``connection`` while the block runs and on again afterwards.

    The pragma is ignored inside a transaction, so it goes straight to the DBAPI connection
    (autocommit: anonaudit's engine issues BEGIN itself) before Alembic begins one.
    """
    if not is_sqlite:
        yield
        return
    raw = connection.connection.driver_connection
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")  # the connection goes back to the pool


def _check_foreign_keys(connection: Connection) -> None:
    """Fail, and so roll back, if the migrations leave rows pointing at rows that do not exist."""
    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if dangling:
        found = ", ".join(sorted({f"{table} → {parent}" for table, _rowid, parent, _fk in dangling}))
        raise AnonauditError(
            f"the migration was rolled back: {len(dangling)} rows would reference rows that do not exist "
            f"({found}); `sqlite3 {make_url(url).database} 'PRAGMA foreign_key_check'` lists them "
            "(table, rowid, missing parent): delete or fix them, then migrate again"
        )


def run_migrations_online() -> None:
    with get_engine(url).connect() as connection, _sqlite_foreign_keys_off(connection):
        context.configure(connection=connection, **_OPTIONS)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            context.run_migrations()
            if is_sqlite:
                _check_foreign_keys(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
