"""Atomic writes: a reader sees the old file or folder or the finished new one, never half of one.

Every writer of stored data goes through :func:`atomic_write` (or :func:`write_once` for
content-addressed places), so a crash, a full disk or a bad input midway leaves only a
``NAME.tmp-XXXX`` sibling behind (removed on the way out), never a truncated file under the real
name. Every transient name carries :data:`TMP_MARK`, so listings can skip them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

TMP_MARK = ".tmp-"


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path`` (a file or a folder), then rename it into place.

    A folder already at ``path`` is swapped out, and deleted only once the new one is in place.
    """
    _write(path, write, keep=None)
    return path


def write_once(path: Path, write: Callable[[Path], object], keep: Callable[[Path], bool]) -> bool:
    """:func:`atomic_write` for a content-addressed ``path``: what is there stays if ``keep(path)``.

    Concurrent writers of the same content race to rename theirs into place; the first wins and the
    others drop theirs, so nobody ever replaces (let alone deletes) a good copy another may already
    have handed out. Something at ``path`` that ``keep`` rejects (a damaged copy) is replaced.
    Returns True if this call's copy was put in place.
    """
    return _write(path, write, keep)


def remove_unless(path: Path, in_use: Callable[[], bool]) -> bool:
    """Delete the file or folder ``path`` unless ``in_use()``; True if deleted.

    ``in_use`` is asked again after ``path`` has been renamed aside (and it is put back if the
    answer changed): whoever starts using ``path`` after that second look finds it gone and can
    write it again, so something in use is never deleted.
    """
    if in_use():
        return False
    aside = _sibling(path, "gone-")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    used = True  # if asking fails, keep it
    try:
        used = in_use()
    finally:
        if used:
            _place(aside, path, keep=Path.exists)  # put back, unless it was written again meanwhile
        _discard(aside)
    return not used


def _write(path: Path, write: Callable[[Path], object], keep: Callable[[Path], bool] | None) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "")
    try:
        write(tmp)
        return _place(tmp, path, keep)
    finally:
        _discard(tmp)


def _place(tmp: Path, path: Path, keep: Callable[[Path], bool] | None) -> bool:
    """Rename ``tmp`` to ``path``; True if done, False if ``keep`` accepted what was there."""
    while True:
        if keep is not None and keep(path):
            return False
        try:
            os.replace(tmp, path)  # a folder fails to replace a non-empty one rather than merge with it
            return True
        except OSError:
            if not (tmp.is_dir() and path.is_dir()):
                raise
        if (keep is None or not keep(path)) and _swap(tmp, path):
            return True


def _swap(tmp: Path, path: Path) -> bool:
    """Move the folder at ``path`` aside and ``tmp`` in; False if ``path`` changed meanwhile (look again)."""
    old = _sibling(path, "old-")
    try:
        os.rename(path, old)
    except FileNotFoundError:
        return False
    try:
        os.rename(tmp, path)
    except OSError:
        if path.exists():
            return False  # another writer got in between
        os.rename(old, path)
        raise
    finally:
        _discard(old)
    return True


def _sibling(path: Path, kind: str) -> Path:
    """A name next to ``path`` that no other attempt uses, marked as transient."""
    return path.with_name(f"{path.name}{TMP_MARK}{kind}{uuid.uuid4().hex[:12]}")


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
