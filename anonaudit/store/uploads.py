"""Files users upload through the app, stored under generated names.

The uploaded file's own name is never used as a path (it could hold ``../`` or a device name):
only its suffix is kept, after checking it against the suffixes the caller accepts. Writes are
atomic, so a failed upload leaves nothing behind that looks finished. A compressed upload is
decompressed once, as a stream, to check what it expands to (a small .gz can hold gigabytes).
Uploads are working copies, not a store: the app deletes one it rejects, and saving an upload
removes those older than :data:`UPLOAD_MAX_AGE_S`.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from anonaudit.data.inputs import gzip_size
from anonaudit.errors import ParameterError
from anonaudit.files import atomic_write
from anonaudit.settings import get_settings

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
UPLOAD_MAX_AGE_S = 24 * 3600


def uploads_dir() -> Path:
    return get_settings().home / "uploads"


def save_upload(data: bytes, original_name: str, allowed: Sequence[str], *,
                max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Store ``data`` as ``uploads/<random>.<suffix>``; an error for a wrong type, size or empty file.

    A ``.gz`` upload that is damaged or decompresses past the data layer's limit is a DataError
    naming the uploaded file, checked without holding the decompressed bytes.
    """
    name = Path(original_name).name
    suffix = "".join(Path(name).suffixes[-2:]).lower() if name.lower().endswith(".gz") else Path(name).suffix.lower()
    if suffix not in allowed:
        raise ParameterError("file", f"{name!r} is not one of the accepted types {', '.join(allowed)}")
    if not data:
        raise ParameterError("file", f"{name!r} is empty")
    if len(data) > max_bytes:
        raise ParameterError("file", f"{name!r} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    if suffix.endswith(".gz") and gzip_size(io.BytesIO(data), name) == 0:
        raise ParameterError("file", f"{name!r} decompresses to nothing")
    folder = uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_uploads()
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def delete_upload(path: str | Path) -> None:
    """Delete one upload; a path that is not a file directly in the uploads folder is a ParameterError."""
    path = Path(path)
    if path.is_symlink() or path.resolve().parent != uploads_dir().resolve():
        raise ParameterError("path", f"{path} is not an upload")
    path.unlink(missing_ok=True)


def remove_stale_uploads() -> int:
    """Delete uploads (and leftovers of interrupted writes) older than :data:`UPLOAD_MAX_AGE_S`; returns how many."""
    folder = uploads_dir()
    if not folder.is_dir():
        return 0
    cutoff = time.time() - UPLOAD_MAX_AGE_S
    removed = 0
    for path in folder.iterdir():
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another session removed it first
            continue
    return removed
