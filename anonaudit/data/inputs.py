"""Reading the files users bring (CSV, CSV.gz, Parquet) with bounded memory and one kind of error.

Whatever a user's file holds, reading it ends in data or in a :class:`DataError` naming the
file (and the line, when known); never in a library's exception. Two limits keep memory
bounded: a ``.gz`` file may expand a thousandfold, so decompressed bytes are counted as they
are read and reading stops past :data:`MAX_TEXT_BYTES`; and the header line is read with a
length limit, so a file without line breaks is not swallowed whole to find its first line.
Messages show at most the offending cell or the column names, shortened, never a whole line of
the file: a path on the server may name any file (``/etc/passwd``).
"""

from __future__ import annotations

import codecs
import gzip
import io
import operator
import re
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, SupportsIndex

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from anonaudit.errors import DataError

MAX_TEXT_BYTES = 2 * 2**30  # decompressed: ~10 times the app's upload limit, ~25 times HAPT's samples file
MAX_HEADER_BYTES = 2**20
_CHUNK = 2**20
_SHOWN_CHARS = 40
_SHOWN_COLUMNS = 20
_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


# ---------------------------------------------------------------------------- messages
def brief(value: object) -> str:
    """``repr(value)`` shortened to a few dozen characters, for quoting one cell in a message."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS - 1]}…"


def column_list(names: Sequence[str], *, header: bool = True) -> str:
    """Column names for a message: at most 20, each shortened.

    The lone "column" of a file's ``header`` is not shown: it is what a file that is not a
    comma-separated table yields, and its name would be the file's whole first line.
    """
    if header and len(names) == 1:
        return "a single column: is it a comma-separated table with a header line?"
    shown = ", ".join(brief(str(n)) for n in names[:_SHOWN_COLUMNS])
    more = f" and {len(names) - _SHOWN_COLUMNS} more" if len(names) > _SHOWN_COLUMNS else ""
    return f"{len(names)} columns: {shown}{more}"


# ---------------------------------------------------------------------------- text
class _CappedGzip(io.RawIOBase):
    """Decompressed bytes of a gzip stream; a DataError past :data:`MAX_TEXT_BYTES`, or when it is damaged."""

    def __init__(self, raw: BinaryIO, name: str | Path) -> None:
        super().__init__()
        self._raw = raw
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self._name = name
        self._limit = MAX_TEXT_BYTES
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            n = self._gzip.readinto(buffer)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError("not a valid gzip file (damaged or truncated)", file=self._name) from exc
        self.total += n
        if self.total > self._limit:
            raise DataError(f"decompresses to more than {self._limit / 2**30:g} GiB, the limit for compressed "
                            "input; split it or upload it uncompressed", file=self._name)
        return n

    def close(self) -> None:
        self._gzip.close()
        self._raw.close()
        super().close()


def open_text(file: Path) -> BinaryIO:
    """``file`` as a binary stream, decompressed (and capped) if its name ends in ``.gz``."""
    try:
        raw = open(file, "rb")
    except OSError as exc:
        raise DataError(f"cannot open: {exc.strerror}", file=file) from exc
    if not file.name.lower().endswith(".gz"):
        return raw
    return io.BufferedReader(_CappedGzip(raw, file), _CHUNK)


def gzip_size(data: BinaryIO, name: str | Path) -> int:
    """Bytes the gzip stream ``data`` decompresses to, reading 1 MiB at a time (DataError past the cap)."""
    stream = _CappedGzip(data, name)
    while stream.read(_CHUNK):
        pass
    return stream.total


def _undecodable_line(file: Path) -> int:
    """Line number of the first bytes of ``file`` that are not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open_text(file) as stream:
        while True:
            chunk = stream.read(_CHUNK)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return line + (pending + chunk)[:exc.start].count(b"\n")
            if not chunk:
                return line
            line += chunk.count(b"\n")


@contextmanager
def _csv_errors(file: Path) -> Iterator[None]:
    """pandas' errors for an unreadable CSV as DataErrors naming the file (and line)."""
    try:
        yield
    except pd.errors.EmptyDataError as exc:
        raise DataError("empty file (no header line)", file=file) from exc
    except pd.errors.ParserError as exc:
        counts = _FIELD_COUNT.search(str(exc))
        if counts:
            expected, line, saw = map(int, counts.groups())
            raise DataError(f"{saw} fields, but the header has {expected} names", file=file, row=line) from exc
        reason = str(exc).strip().removeprefix("Error tokenizing data. C error: ")
        raise DataError(f"malformed CSV: {reason}", file=file) from exc
    except UnicodeDecodeError as exc:
        raise DataError("not UTF-8 text (save the file as UTF-8)", file=file, row=_undecodable_line(file)) from exc


def csv_header(file: Path) -> list[str]:
    """Column names of a CSV(.gz) file as pandas names them, from its first line only (each at most once)."""
    with open_text(file) as stream:
        line = stream.readline(MAX_HEADER_BYTES + 1)
    if not line:
        raise DataError("empty file (no header line)", file=file)
    if len(line) > MAX_HEADER_BYTES:
        raise DataError(f"the first line is longer than {MAX_HEADER_BYTES // 2**10} KiB: not a CSV header",
                        file=file, row=1)
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError("not UTF-8 text (save the file as UTF-8)", file=file, row=1) from exc
    if not text.strip():
        raise DataError("line 1 is empty: the header must be the first line", file=file, row=1)
    with _csv_errors(file):
        names = [str(c) for c in pd.read_csv(io.StringIO(text), nrows=0).columns]
        raw = pd.read_csv(io.StringIO(text), header=None, dtype=str, keep_default_na=False).iloc[0].tolist()
    _refuse_repeats(file, raw, row=1)
    return names


def _refuse_repeats(file: Path, names: Sequence[str], row: int | None = None) -> None:
    """A column name given twice is an error: pandas would rename the second ``a.1`` (CSV) or pick one (Parquet)."""
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise DataError("this column name appears twice in the header", file=file, column=name, row=row)
        seen.add(name)


def csv_row(index: SupportsIndex) -> int:
    """Row number reported for the 0-based data row ``index`` of a CSV read by :func:`read_csv`:
    its line number as an editor shows it (header = line 1)."""
    return operator.index(index) + 2


def read_csv(file: Path, **options: Any) -> pd.DataFrame:
    """``pd.read_csv`` (C parser) through :func:`open_text`, errors as DataErrors.

    Blank lines are kept as empty rows, so that data row ``i`` is line ``i + 2`` of the file as
    the error messages say; blank lines at the end (an editor's or a spreadsheet's habit) are
    dropped. A row with more fields than the header is an error: pandas would
    drop the surplus (with ``usecols``) or shift the columns (a decimal comma, "1,5", would
    silently become two values), so callers read all columns and pick theirs afterwards.
    """
    with open_text(file) as stream, _csv_errors(file):
        frame = pd.read_csv(stream, engine="c", skip_blank_lines=False, **options)
    if not frame.index.equals(pd.RangeIndex(len(frame))):  # pandas made the surplus leading fields an index
        raise DataError("more fields than the header has names", file=file, row=csv_row(0))
    filled = np.flatnonzero(frame.notna().any(axis=1).to_numpy())
    return frame.iloc[: filled[-1] + 1 if len(filled) else 0]


# ---------------------------------------------------------------------------- Parquet
@contextmanager
def _parquet_errors(file: Path) -> Iterator[None]:
    # a damaged file fails in pyarrow (ArrowInvalid, OSError) or in pandas' metadata (JSON, Key, Type errors);
    # their messages may quote the file's bytes, so none is shown
    try:
        yield
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"not a readable Parquet file (damaged or truncated: {type(exc).__name__})",
                        file=file) from exc


def parquet_columns(file: Path) -> list[str]:
    """Column names of a Parquet file, from its footer (each at most once)."""
    with _parquet_errors(file):
        names = pq.read_schema(file).names
    _refuse_repeats(file, names)
    return names


def read_parquet(file: Path, columns: Sequence[str] | None = None) -> pa.Table:
    with _parquet_errors(file):
        return pq.read_table(file, columns=None if columns is None else list(columns))


def read_parquet_frame(file: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    with _parquet_errors(file):
        return read_parquet(file, columns).to_pandas()
