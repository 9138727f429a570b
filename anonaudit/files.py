"""Atomic file writes: a reader sees the old file or the finished new one, never half of one.

Every writer of stored data goes through :func:`atomic_write`, so a crash, a full disk or a
bad input midway leaves only a ``NAME.tmp-XXXX`` sibling behind (removed on the way out), never
a truncated file under the real name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

TMP_MARK = ".tmp-"


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
