"""Registered datasets: one row per imported dataset, pointing at its Parquet folder.

Rows are returned as plain dicts (columns plus the JSON ``summary``) so the CLI, the app and
job results can use them without a session.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from anonaudit.data.dataset import SensorDataset
from anonaudit.errors import NotFoundError, ParameterError
from anonaudit.files import remove_unless
from anonaudit.settings import get_settings
from anonaudit.store.db import UrlOrEngine, session_scope
from anonaudit.store.jobs import to_json
from anonaudit.store.models import Dataset, ReleaseOverride, utcnow

_COUNTS = {"sampling_rate": float, "n_subjects": int, "n_recordings": int, "n_samples": int, "n_channels": int}


def _find(session: Session, name_or_id: str | int) -> Dataset | None:
    if isinstance(name_or_id, int):
        return session.get(Dataset, name_or_id)
    found = session.scalars(select(Dataset).where(Dataset.name == name_or_id)).one_or_none()
    if found is None and name_or_id.isdigit():
        found = session.get(Dataset, int(name_or_id))
    return found


def _get(session: Session, name_or_id: str | int) -> Dataset:
    found = _find(session, name_or_id)
    if found is None:
        names = session.scalars(select(Dataset.name).order_by(Dataset.name)).all()
        known = f"known datasets: {', '.join(names)}" if names else "no datasets are registered yet"
        raise NotFoundError(f"no dataset {name_or_id!r} ({known}; import one with `anonaudit data import PATH`)")
    return found


def remove_files(storage_path: str, *, url: UrlOrEngine = None) -> bool:
    """Delete a dataset's folder unless a registered row points at it; True if deleted.

    Only folders inside the data home are deleted (never a user's own files). A registration that
    commits while the folder is being removed finds it gone and writes it again
    (:func:`anonaudit.jobs.datasets.register_derived`), so no row is left pointing at nothing.
    """
    path = Path(storage_path).resolve()
    if not path.is_relative_to(get_settings().datasets_dir.resolve()):
        return False
    return remove_unless(path, lambda: _points_at(path, url))


def _points_at(path: Path, url: UrlOrEngine) -> bool:
    with session_scope(url) as session:
        return any(Path(p).resolve() == path for p in session.scalars(select(Dataset.storage_path)))


def register_dataset(name: str, format: str, *, storage_path: str, summary: Mapping[str, Any],
                     content_sha256: str, source_path: str | None = None, import_job_id: int | None = None,
                     replace: bool = False, url: UrlOrEngine = None) -> dict[str, Any]:
    """Register a stored dataset and return its row.

    Counts (sampling rate, subjects, …) are read from ``summary``. With ``replace=True`` a dataset
    of the same name is unregistered in the same transaction and its files removed afterwards.
    A dataset of the same name and content (registered by a concurrent import) is returned as it
    is, so racing imports of the same data all succeed; different content is a ParameterError.
    """
    missing = [key for key in _COUNTS if key not in summary]
    if missing:
        raise ParameterError("summary", f"lacks {', '.join(missing)}")
    counts = {key: cast(summary[key]) for key, cast in _COUNTS.items()}
    replaced: str | None = None
    try:
        with session_scope(url) as session:
            old = _find(session, name)
            if old is not None and not replace and old.content_sha256 == content_sha256:
                return old.to_dict()  # the same data registered by a concurrent import: share its row
            if old is not None:
                if not replace:
                    raise _taken(name)
                replaced = old.storage_path
                session.delete(old)
                session.flush()
            row = Dataset(name=name, format=format, source_path=source_path, storage_path=storage_path,
                          summary=to_json(dict(summary), "summary"), content_sha256=content_sha256,
                          import_job_id=import_job_id, created_at=utcnow(), **counts)
            session.add(row)
    except IntegrityError:  # a concurrent registration of the name committed first
        winner = find_dataset(name, url=url)
        if winner is None:
            raise
        if winner["content_sha256"] == content_sha256:
            return winner
        raise _taken(name) from None
    if replaced is not None and Path(replaced).resolve() != Path(storage_path).resolve():
        remove_files(replaced, url=url)
    return row.to_dict()


def _taken(name: str) -> ParameterError:
    return ParameterError("name", f"a different dataset named {name!r} is already registered; "
                                  "choose another name or replace it")


def find_dataset(name_or_id: str | int, *, url: UrlOrEngine = None) -> dict[str, Any] | None:
    """The dataset's row, or None if it is not registered."""
    with session_scope(url) as session:
        found = _find(session, name_or_id)
        return found.to_dict() if found is not None else None


def get_dataset(name_or_id: str | int, *, url: UrlOrEngine = None) -> dict[str, Any]:
    """The dataset's row; NotFoundError names the registered datasets."""
    with session_scope(url) as session:
        return _get(session, name_or_id).to_dict()


def set_release_verdict(name_or_id: str | int, releasable: bool, detail: Mapping[str, Any], *,
                        url: UrlOrEngine = None) -> dict[str, Any]:
    """Record the outcome of a release check on a dataset."""
    with session_scope(url) as session:
        row = _get(session, name_or_id)
        row.releasable = releasable
        row.release_check = to_json(dict(detail), "release_check")
        session.flush()
        return row.to_dict()


def list_datasets(*, url: UrlOrEngine = None) -> list[dict[str, Any]]:
    with session_scope(url) as session:
        return [d.to_dict() for d in session.scalars(select(Dataset).order_by(Dataset.name))]


def delete_dataset(name_or_id: str | int, *, url: UrlOrEngine = None) -> str:
    """Unregister a dataset and delete its stored files; returns their path.

    Jobs that used it keep their records (their ``dataset_id`` becomes NULL).
    """
    with session_scope(url) as session:
        row = _get(session, name_or_id)
        path = row.storage_path
        session.delete(row)
    remove_files(path, url=url)
    return path


def unreadable_datasets(*, url: UrlOrEngine = None) -> list[str]:
    """Names of registered datasets whose files are missing or damaged: each one is data lost."""
    return [row["name"] for row in list_datasets(url=url) if SensorDataset.check_files(row["storage_path"])]


def record_override(name_or_id: str | int, *, actor: str, reason: str, job_id: int | None = None,
                    url: UrlOrEngine = None) -> dict[str, Any]:
    """Record a steward's override of a refused release: who, when, why, and the verdict overridden."""
    with session_scope(url) as session:
        row = _get(session, name_or_id)
        if row.format != "release":
            raise ParameterError("dataset", f"{row.name!r} is not a release; only releases have verdicts to override")
        if row.releasable is not False:
            state = "was never checked" if row.releasable is None else "passed its release check"
            raise ParameterError("dataset", f"release {row.name!r} {state}; only a refused release needs an override"
                                            + ("; run `anonaudit release-check` first" if row.releasable is None else ""))
        override = ReleaseOverride(dataset_id=row.id, job_id=job_id, actor=actor, reason=reason,
                                   verdict=to_json(row.release_check or {}, "verdict"), created_at=utcnow())
        session.add(override)
        session.flush()
        return override.to_dict()


def overrides(name_or_id: str | int, *, url: UrlOrEngine = None) -> list[dict[str, Any]]:
    """The recorded overrides of a release, oldest first."""
    with session_scope(url) as session:
        row = _get(session, name_or_id)
        stmt = select(ReleaseOverride).where(ReleaseOverride.dataset_id == row.id).order_by(ReleaseOverride.id)
        return [o.to_dict() for o in session.scalars(stmt)]


def may_export(name_or_id: str | int, *, url: UrlOrEngine = None) -> bool:
    """Whether a release's files may leave the store: its check passed, or a steward's override is recorded."""
    with session_scope(url) as session:
        row = _get(session, name_or_id)
        if row.releasable:
            return True
        stmt = select(ReleaseOverride.id).where(ReleaseOverride.dataset_id == row.id).limit(1)
        return session.scalars(stmt).first() is not None
