"""Datasets in the store: import once (Parquet under the data home), open by name.

The Parquet directory is written atomically before the database row; if registering fails
the directory is removed again, so the two never disagree.
"""

from __future__ import annotations

import hashlib
import shutil
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
    """Save a dataset as Parquet and register it; the files are removed again if registering fails."""
    check_name(ds.name)
    digest = digest or content_hash(ds)
    target = get_settings().datasets_dir / f"{ds.name}-{digest[:12]}"
    ds.save(target)
    try:
        return store.register_dataset(ds.name, format, source_path=source_path, storage_path=str(target),
                                      summary=ds.summary(), content_sha256=digest, import_job_id=ctx.job_id,
                                      replace=replace)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def open_dataset(name_or_id: str | int) -> SensorDataset:
    """Load a registered dataset from its Parquet files."""
    record = store.get_dataset(name_or_id)
    return SensorDataset.load(record["storage_path"])
