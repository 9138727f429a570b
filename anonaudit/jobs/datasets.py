"""Datasets in the store: import once (Parquet under the data home), open by name.

The Parquet folder is content-addressed (``<name>-<digest>``) and written atomically before the
database row. Concurrent imports of the same data share one folder and one row; a failing import
removes only a folder it wrote itself and no row points at, so it never deletes from under a
registered dataset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from anonaudit.data.dataset import SensorDataset
from anonaudit.data.loaders import detect_format, load_dataset
from anonaudit.errors import DataError, ParameterError
from anonaudit.jobs.context import JobContext
from anonaudit.progress import ProgressFn, scaled
from anonaudit.settings import get_settings
from anonaudit.store import datasets as store

_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def content_hash(ds: SensorDataset) -> str:
    """Hash of everything that defines the data (signals, labels, tables, vocabularies)."""
    h = hashlib.sha256()
    h.update(memoryview(np.ascontiguousarray(ds.signals)).cast("B"))  # no copy
    h.update(ds.labels.tobytes())
    for frame in (ds.recordings, ds.subjects):
        h.update(frame.to_csv(index=False).encode())
    h.update(repr((ds.channels, ds.activities, ds.sampling_rate)).encode())
    return h.hexdigest()


def check_name(name: str) -> str:
    if not name or not set(name) <= _NAME_OK or name.startswith("."):
        raise ParameterError("name", f"dataset names use letters, digits, '_', '-', '.'; got {name!r}")
    return name


def import_dataset(
    ctx: JobContext,
    path: str,
    format: str = "auto",
    *,
    name: str | None = None,
    replace: bool = False,
    options: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> tuple[SensorDataset, dict[str, Any]]:
    """Load ``path``, save it as Parquet and register it; return the dataset and its record.

    Importing identical content under an existing name is a no-op (idempotent re-runs);
    different content under an existing name needs ``replace=True``.
    """
    progress = progress or ctx.progress
    source = Path(path).expanduser()
    if not source.exists():
        raise DataError("does not exist", file=source)
    fmt = detect_format(source) if format == "auto" else format
    ds = load_dataset(source, fmt, name=name, progress=scaled(progress, 0.0, 0.7), **(options or {}))
    check_name(ds.name)
    digest = content_hash(ds)
    existing = store.find_dataset(ds.name)
    if existing is not None and existing["content_sha256"] == digest:
        ctx.log(f"dataset {ds.name!r} already imported with identical content; reusing it")
        _keep_readable(ctx, ds, existing["storage_path"])
        progress(1.0, "already imported")
        return ds, existing
    if existing is not None and not replace:
        raise DataError(
            f"a different dataset named {ds.name!r} is already registered; pass a new name or replace=True",
            file=source,
        )
    progress(0.75, "writing Parquet")
    record = register_derived(ctx, ds, format=fmt, replace=replace, source_path=str(source.resolve()), digest=digest)
    progress(1.0, "imported")
    return ds, record


def register_derived(ctx: JobContext, ds: SensorDataset, *, format: str, replace: bool = False,
                     source_path: str | None = None, digest: str | None = None) -> dict[str, Any]:
    """Save a dataset as Parquet in its content-addressed folder and register it.

    If registering fails, the folder is removed only if this call wrote it and no registered row
    points at it (a concurrent import of the same data may have registered it meanwhile).
    """
    check_name(ds.name)
    digest = digest or content_hash(ds)
    target = get_settings().datasets_dir / f"{ds.name}-{digest[:12]}"
    wrote = ds.save_once(target)
    try:
        record = store.register_dataset(ds.name, format, source_path=source_path, storage_path=str(target),
                                        summary=ds.summary(), content_sha256=digest, import_job_id=ctx.job_id,
                                        replace=replace)
    except BaseException:
        if wrote:
            store.remove_files(str(target))
        raise
    if record["import_job_id"] != ctx.job_id:
        ctx.log(f"dataset {ds.name!r} was registered concurrently with identical content; reusing it")
    _keep_readable(ctx, ds, record["storage_path"])  # a concurrent removal may have missed our row
    return record


def _keep_readable(ctx: JobContext, ds: SensorDataset, storage_path: str) -> None:
    """Write ``ds`` to the folder a registered row points at again if its files are missing or damaged."""
    problem = SensorDataset.check_files(storage_path)
    if problem is not None:
        ctx.log(f"stored files of dataset {ds.name!r} are unreadable ({problem}); writing them again",
                level="warning")
        ds.save_once(storage_path)


def open_dataset(name_or_id: str | int) -> SensorDataset:
    """Load a registered dataset from its Parquet files."""
    record = store.get_dataset(name_or_id)
    return SensorDataset.load(record["storage_path"])
