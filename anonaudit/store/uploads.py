"""Files users upload through the app, stored under generated names.

The uploaded file's own name is never used as a path (it could hold ``../`` or a device name):
only its suffix is kept, after checking it against the suffixes the caller accepts. Writes are
atomic, so a failed upload leaves nothing behind that looks finished.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from anonaudit.errors import ParameterError
from anonaudit.files import atomic_write
from anonaudit.settings import get_settings

MAX_UPLOAD_BYTES = 200 * 1024 * 1024


def uploads_dir() -> Path:
    return get_settings().home / "uploads"


def save_upload(data: bytes, original_name: str, allowed: Sequence[str], *,
                max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Store ``data`` as ``uploads/<random>.<suffix>``; ParameterError for a wrong type, size or empty file."""
    name = Path(original_name).name
    suffix = "".join(Path(name).suffixes[-2:]).lower() if name.lower().endswith(".gz") else Path(name).suffix.lower()
    if suffix not in allowed:
        raise ParameterError("file", f"{name!r} is not one of the accepted types {', '.join(allowed)}")
    if not data:
        raise ParameterError("file", f"{name!r} is empty")
    if len(data) > max_bytes:
        raise ParameterError("file", f"{name!r} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    folder = uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))
