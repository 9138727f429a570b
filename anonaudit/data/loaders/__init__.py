"""Readers that turn published dataset layouts into a :class:`SensorDataset`.

``detect_format`` recognises a layout from its files; ``load_dataset`` dispatches to the
loader. Every loader reports problems as :class:`DataError` naming file, column and row, with
one row convention: the line number in a text file as an editor shows it (a CSV header is
line 1, so the first data row is row 2; a SisFall file has no header, its first sample is
row 1); for Parquet files the 1-based row index; for MATLAB files the 1-based sample index.
"""

from __future__ import annotations

import inspect
import lzma
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anonaudit.data.dataset import SensorDataset
from anonaudit.data.inputs import csv_header
from anonaudit.data.loaders.hapt import HEADER as HAPT_HEADER
from anonaudit.data.loaders.hapt import load_hapt
from anonaudit.data.loaders.sisfall import ARCHIVE as SISFALL_ARCHIVE
from anonaudit.data.loaders.sisfall import FILE_PATTERN as SISFALL_FILE
from anonaudit.data.loaders.sisfall import load_sisfall
from anonaudit.data.loaders.tabular import MAPPING_FILE, load_tabular
from anonaudit.data.loaders.utd_mhad import FILE_PATTERN as UTD_FILE
from anonaudit.data.loaders.utd_mhad import load_utd_mhad
from anonaudit.errors import DataError, ParameterError
from anonaudit.progress import ProgressFn, null_progress

FORMATS = ("sisfall", "hapt", "utd_mhad", "tabular", "anonaudit")
_SUBJECT_DIR = re.compile(r"S[AE]\d{2}")
_PEEK_MEMBERS = 8  # SisFall archives name a subject folder within the first few entries


def _load_anonaudit(
    path: str | Path, *, name: str | None = None, progress: ProgressFn = null_progress
) -> SensorDataset:
    """A dataset directory written by :meth:`SensorDataset.save` (optionally renamed)."""
    ds = SensorDataset.load(path)
    if name:
        ds.name = name
    progress(1.0, "loaded")
    return ds


_LOADERS: dict[str, Callable[..., SensorDataset]] = {
    "sisfall": load_sisfall,
    "hapt": load_hapt,
    "utd_mhad": load_utd_mhad,
    "tabular": load_tabular,
    "anonaudit": _load_anonaudit,
}


def detect_format(path: str | Path) -> str:
    """Name of the format of ``path`` (one of :data:`FORMATS`), judged from names and headers only."""
    path = Path(path)
    if not path.exists():
        raise DataError("does not exist", file=path)
    if path.is_dir():
        if SensorDataset.is_dataset_dir(path):
            return "anonaudit"
        if (path / MAPPING_FILE).is_file():
            return "tabular"
        children = {p.name for p in path.iterdir()}
        if (SISFALL_ARCHIVE in children or "SisFall_dataset" in children
                or any(_SUBJECT_DIR.fullmatch(c) and (path / c).is_dir() for c in children)):
            return "sisfall"
        if any(UTD_FILE.fullmatch(f.name) for sub in ("Inertial", "Skeleton") for f in (path / sub).glob("*.mat")):
            return "utd_mhad"
    else:
        if path.suffix == ".toml":
            return "tabular"
        if path.name.endswith((".tar.xz", ".txz")) and _is_sisfall_archive(path):
            return "sisfall"
        if path.name.endswith((".csv", ".csv.gz")) and _csv_header(path)[: len(HAPT_HEADER)] == list(HAPT_HEADER):
            return "hapt"
    raise DataError(
        "cannot tell the dataset format: expected a SisFall .tar.xz or folder, a HAPT csv(.gz), a UTD-MHAD "
        "folder (Inertial/, Skeleton/), a mapping .toml or an anonaudit dataset directory; "
        f"or pass one of {list(FORMATS)}",
        file=path,
    )


def load_dataset(
    path: str | Path,
    format: str = "auto",
    *,
    name: str | None = None,
    progress: ProgressFn = null_progress,
    **options: Any,
) -> SensorDataset:
    """Load ``path`` with the loader of ``format`` ("auto": :func:`detect_format`).

    ``options`` are the loader's own keyword arguments (e.g. ``activities="adl"`` for SisFall,
    ``modality="skeleton"`` for UTD-MHAD); an option the loader does not take is a ParameterError.
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in _LOADERS:
        raise ParameterError("format", f"unknown {format!r}; choose auto or one of {list(FORMATS)}")
    loader = _LOADERS[fmt]
    accepted = [p for p in inspect.signature(loader).parameters if p not in ("path", "name", "progress")]
    for option in options:
        if option not in accepted:
            raise ParameterError(option, f"not an option of the {fmt} loader; options: {accepted}")
    if name is not None:
        options["name"] = name
    return loader(Path(path), progress=progress, **options)


def _is_sisfall_archive(path: Path) -> bool:
    """Peek at the first members only (stream mode decompresses no further than needed)."""
    try:
        with tarfile.open(path, mode="r|xz") as tar:
            for k, info in enumerate(tar):
                parts = info.name.split("/")
                if "SisFall_dataset" in parts or any(_SUBJECT_DIR.fullmatch(p) or SISFALL_FILE.fullmatch(p)
                                                     for p in parts):
                    return True
                if k >= _PEEK_MEMBERS:
                    return False
    except (tarfile.TarError, lzma.LZMAError, OSError, EOFError) as exc:
        raise DataError(f"cannot read the archive: {exc}", file=path) from exc
    return False


def _csv_header(path: Path) -> list[str]:
    """The header of a CSV(.gz) file, or nothing when it has none: this only guesses a format."""
    try:
        return csv_header(path)
    except DataError:
        return []
