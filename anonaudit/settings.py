"""Where anonaudit keeps its database, datasets, artifacts and reports.

Zero configuration by default: everything lives under ``ANONAUDIT_HOME`` (default
``./.anonaudit``) with an SQLite database; teams point ``ANONAUDIT_DATABASE_URL`` at PostgreSQL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    reports_dir: Path
    dask_scheduler: str | None
    data_roots: tuple[Path, ...]  # folders whose files the app may import (its users are not the server's)

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"


def get_settings() -> Settings:
    """Read settings from the environment (read on every call so tests can change it)."""
    home = Path(os.environ.get("ANONAUDIT_HOME", ".anonaudit")).expanduser().resolve()
    url = os.environ.get("ANONAUDIT_DATABASE_URL") or f"sqlite:///{home / 'anonaudit.db'}"
    reports = Path(os.environ.get("ANONAUDIT_REPORTS", "reports")).expanduser().resolve()
    return Settings(
        home=home,
        database_url=url,
        reports_dir=reports,
        dask_scheduler=os.environ.get("ANONAUDIT_DASK_SCHEDULER") or None,
        data_roots=tuple(Path(r).expanduser().resolve()
                         for r in (os.environ.get("ANONAUDIT_DATA_ROOTS") or str(Path.cwd())).split(os.pathsep) if r),
    )
