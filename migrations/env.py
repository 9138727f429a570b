"""Alembic environment for anonaudit.

The database URL comes from ``config.attributes["url"]`` (set by ``anonaudit.store.db``), else
from ``ANONAUDIT_DATABASE_URL`` / the default SQLite file (via ``anonaudit.settings``), so the
``alembic`` CLI and ``anonaudit db upgrade`` always migrate the same database.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import make_url, text

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


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=is_sqlite, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with get_engine(url).connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=is_sqlite)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
