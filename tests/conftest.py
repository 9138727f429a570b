"""Shared fixtures.

``db_url`` runs a test on SQLite and on PostgreSQL. PostgreSQL is required, never skipped: each
test gets a throw-away database on the server named by ``ANONAUDIT_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError

from anonaudit.store.db import dispose_engines, scratch_postgres

POSTGRES_URL = os.environ.get("ANONAUDIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A fresh, uniquely named database on the test server, dropped afterwards; a failure if unusable."""
    try:
        with scratch_postgres(POSTGRES_URL, "anonaudit_test") as url:
            yield url
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        pytest.fail(f"PostgreSQL is needed by the tests but {make_url(POSTGRES_URL).render_as_string()} is not "
                    f"usable: {reason}. Start the server or set ANONAUDIT_TEST_POSTGRES_URL.", pytrace=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty database (SQLite file or fresh PostgreSQL database) that anonaudit is configured to use.

    Also points ``ANONAUDIT_HOME`` and ``ANONAUDIT_REPORTS`` at temporary folders; worker
    subprocesses inherit the environment.
    """
    monkeypatch.setenv("ANONAUDIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ANONAUDIT_REPORTS", str(tmp_path / "reports"))
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'home' / 'anonaudit.db'}"
        monkeypatch.setenv("ANONAUDIT_DATABASE_URL", url)
        yield url
        dispose_engines()
        return
    with _postgres_database() as url:
        monkeypatch.setenv("ANONAUDIT_DATABASE_URL", url)
        yield url


@pytest.fixture(autouse=True)
def _keep_main_module() -> Iterator[None]:
    """Streamlit's AppTest runs pages as ``__main__``; process pools that spawn (Dask nannies, the
    executor) re-run ``__main__``'s file in every child. Put pytest's module, and its file, back."""
    import sys

    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    yield
    if main is None:
        return
    sys.modules["__main__"] = main
    for key in ("__file__", "__spec__"):
        if key in saved:
            main.__dict__[key] = saved[key]
        else:
            main.__dict__.pop(key, None)
