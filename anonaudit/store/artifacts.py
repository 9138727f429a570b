"""Atomic artifact files: nothing that looks finished unless the job finished.

A running job writes into ``jobs_dir/<job_id>/.staging/<attempt>/``, each file as
``NAME.tmp-XXXX`` then ``os.replace``-d into place. When the job succeeds the worker
``publish``-es the staged files to ``jobs_dir/<job_id>/`` and records them in the same
transaction that marks the job succeeded (``unpublish`` if that transaction fails); on failure or
cancellation it ``discard``-s the staging folder. Files in a job folder without artifact rows are
therefore left-overs of an attempt whose worker died, and the next attempt ``reset``-s the folder.

Staging is per attempt so that a worker which lost its lease but still runs (a "zombie") never
touches the files of the attempt that replaced it.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from anonaudit.errors import ParameterError
from anonaudit.files import TMP_MARK
from anonaudit.settings import get_settings

STAGING = ".staging"
RESUME = ".resume"
# folders of a job whose files are never shown in a report or a page: private/ names real people
# (linkage, models, the original subjects table); release/ is the released data itself, which
# leaves the store only through the release check's gate
UNSHOWN = ("private/", "release/")

_KIND_BY_SUFFIX = {
    ".png": "plot", ".svg": "plot", ".jpg": "plot", ".jpeg": "plot", ".pdf": "plot",
    ".csv": "table", ".parquet": "table", ".tsv": "table",
    ".html": "report", ".md": "report",
    ".pt": "model", ".pkl": "model", ".joblib": "model", ".onnx": "model",
}
_EXTRA_MEDIA_TYPES = {".parquet": "application/vnd.apache.parquet", ".md": "text/markdown"}


@dataclass(frozen=True)
class ArtifactRecord:
    """A published file, as stored in the ``artifacts`` table."""

    name: str
    kind: str
    path: str  # relative to settings.home
    media_type: str
    sha256: str
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shown(name: str) -> bool:
    """Whether an artifact may be embedded in a report or shown in the app, whatever the role."""
    return not name.startswith(UNSHOWN)


def job_dir(job_id: int) -> Path:
    return get_settings().jobs_dir / str(job_id)


def staging_dir(job_id: int, attempt: int) -> Path:
    """The folder an attempt of a job writes its files into (created if missing)."""
    path = job_dir(job_id) / STAGING / str(attempt)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_name(name: str) -> str:
    """Artifact names are relative paths inside the job folder (``a.png``, ``tables/b.csv``)."""
    parts = Path(name).parts
    if (not name or Path(name).is_absolute() or any(p in ("..", ".") or p.startswith(".") for p in parts)
            or TMP_MARK in name):
        raise ParameterError("name", f"artifact names are relative paths without '..' or a leading '.'; got {name!r}")
    return name


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def describe(name: str) -> tuple[str, str]:
    """(kind, media type) of an artifact from its file suffix."""
    suffix = Path(name).suffix.lower()
    media = _EXTRA_MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return _KIND_BY_SUFFIX.get(suffix, "file"), media


def publish(job_id: int, attempt: int) -> list[ArtifactRecord]:
    """Move every complete staged file to the job folder; return the records to store.

    Unfinished temporary files (``*.tmp-*``) are dropped with the staging folder.
    """
    staging = staging_dir(job_id, attempt)
    final, home = job_dir(job_id), get_settings().home
    records = []
    for src in sorted(p for p in staging.rglob("*") if p.is_file() and TMP_MARK not in p.name):
        name = src.relative_to(staging).as_posix()
        kind, media = describe(name)
        digest, size = sha256_file(src), src.stat().st_size
        dest = final / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        records.append(ArtifactRecord(name, kind, dest.relative_to(home).as_posix(), media, digest, size))
    discard(job_id, attempt)
    return records


def unpublish(records: list[ArtifactRecord]) -> None:
    """Delete published files whose rows were not recorded (the job's finish failed)."""
    home = get_settings().home
    for record in records:
        (home / record.path).unlink(missing_ok=True)


def discard(job_id: int, attempt: int) -> None:
    """Delete an attempt's staging folder (and the job folder if nothing else is in it)."""
    staging = job_dir(job_id) / STAGING / str(attempt)
    shutil.rmtree(staging, ignore_errors=True)
    for folder in (staging.parent, staging.parent.parent):
        try:
            folder.rmdir()
        except OSError:  # not empty (published files, another attempt) or already gone
            break


def file_of(art: dict[str, Any]) -> Path:
    """The file of a published artifact row (rows store paths relative to the home folder)."""
    return get_settings().home / art["path"]


def resume_dir(job_id: int) -> Path:
    """Where a job keeps what lets a later attempt resume (checkpoints); survives :func:`reset`,
    removed by :func:`drop_resume` once the job succeeded. Never published as artifacts."""
    path = job_dir(job_id) / RESUME
    path.mkdir(parents=True, exist_ok=True)
    return path


def drop_resume(job_id: int) -> None:
    shutil.rmtree(job_dir(job_id) / RESUME, ignore_errors=True)


def reset(job_id: int) -> None:
    """Clear the folder of a job that is (re)starting but for its resume folder: nothing else in it
    was recorded as an artifact."""
    folder = job_dir(job_id)
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.name == RESUME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
