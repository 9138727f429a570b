"""Generic import of a CSV/Parquet samples table described by a TOML mapping file.

Users bring their own data without writing code: the mapping names the columns that hold
subject, recording, activity, time and channels. The mapping format (see the project README
and ``sample_data/mapping.toml``)::

    [dataset]
    name = "sample"            # optional, default: the mapping file's parent directory name
    sampling_rate = 50.0       # required, Hz
    samples = "samples.csv.gz" # required, relative to the mapping file; .csv, .csv.gz or .parquet
    subjects = "subjects.csv"  # optional; .csv or .parquet with the subject column
    [columns]
    subject = "subject"        # required
    recording = "recording"    # optional; default: one recording per subject
    activity = "activity"      # optional; empty/NaN = unlabelled
    time = "time_s"            # optional; checked against sampling_rate (1 % tolerance)
    channels = ["acc_*"]       # required; fnmatch globs expand in file column order
    [channel_groups]           # optional; group -> channel names or globs
    [units]                    # optional; channel name (or glob) -> unit

Row numbers in errors follow the loaders' convention: the line number in a text file as an
editor shows it (CSV header = line 1, so the first data row is row 2); for Parquet files, the
1-based row index. The CSV helpers here are shared with the HAPT loader.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anonaudit.data.dataset import UNLABELLED, SensorDataset, sampling_rate_problem
from anonaudit.data.inputs import (
    brief,
    column_list,
    csv_header,
    csv_row,
    parquet_columns,
    read_csv,
    read_parquet_frame,
)
from anonaudit.errors import DataError
from anonaudit.progress import ProgressFn, null_progress

MAPPING_FILE = "mapping.toml"
TIME_TOLERANCE = 0.01

_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    # section -> key -> (allowed types, required)
    "dataset": {
        "name": (str, False),
        "sampling_rate": ((int, float), True),
        "samples": (str, True),
        "subjects": (str, False),
    },
    "columns": {
        "subject": (str, True),
        "recording": (str, False),
        "activity": (str, False),
        "time": (str, False),
        "channels": (list, True),
    },
}
_FREE_SECTIONS = ("channel_groups", "units")  # user-chosen keys, checked by value type
# words pandas' C parser turns into 1.0 / 0.0 when they fill a numeric column (or one read chunk of it)
_BOOL_WORDS = ["True", "TRUE", "true", "False", "FALSE", "false"]
_MAX_ACTIVITIES = int(np.iinfo(np.int16).max)  # labels are int16 codes


# ---------------------------------------------------------------------------- shared helpers
def file_row(file: Path, index: int | np.integer) -> int:
    """Reported row number for data row ``index`` of ``file`` (CSV: line number; Parquet: 1-based)."""
    return int(index) + 1 if file.suffix == ".parquet" else csv_row(index)


def require_columns(file: Path, available: list[str], needed: list[str]) -> None:
    """Raise a DataError naming the file and the first needed column it lacks."""
    for col in needed:
        if col not in available:
            raise DataError(f"missing column (the file has {column_list(available)})", file=file, column=col)


def _numeric(dtype: Any) -> bool:
    return dtype is not str and np.issubdtype(np.dtype(dtype), np.number)


def read_csv_checked(file: Path, dtypes: dict[str, Any]) -> pd.DataFrame:
    """Read ``dtypes``' columns with the C parser; a value that is not a number names its row.

    Explicit dtypes keep big files fast, but pandas' conversion errors carry no row number and
    it reads a numeric column of True/False as 1.0/0.0. So True/False are read as missing in
    numeric columns, and after a conversion error or any missing number the numeric columns are
    re-read as text to locate the first bad value (missing floats are left to the caller).
    """
    numeric = [c for c, t in dtypes.items() if _numeric(t)]
    try:
        frame = read_csv(file, dtype=dtypes, na_values={c: _BOOL_WORDS for c in numeric})
    except (ValueError, OverflowError) as exc:
        _raise_unparsable(file, dtypes)
        raise DataError(f"cannot parse: {exc}", file=file) from exc
    if frame[numeric].isna().to_numpy().any():
        _raise_unparsable(file, dtypes)
    return frame[list(dtypes)]


def _raise_unparsable(file: Path, dtypes: dict[str, Any]) -> None:
    """Raise a DataError at the first (in file order) cell of a numeric column that is not a number of its type."""
    numeric = [c for c, t in dtypes.items() if _numeric(t)]
    raw = read_csv(file, dtype={c: str for c in numeric})
    first_bad: dict[str, int] = {}
    for col in numeric:
        text = raw[col]
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna() & text.notna()
        if np.issubdtype(np.dtype(dtypes[col]), np.integer):
            limits = np.iinfo(dtypes[col])
            bad |= text.isna() | (values % 1 != 0) | (values < limits.min) | (values > limits.max)
        if bad.any():
            first_bad[col] = int(np.argmax(bad.to_numpy()))
    if not first_bad:
        return
    col = min(first_bad, key=first_bad.__getitem__)
    cell = raw[col].iat[first_bad[col]]
    kind = np.dtype(dtypes[col])
    expected = f"an integer in [{np.iinfo(kind).min}, {np.iinfo(kind).max}]" if np.issubdtype(kind, np.integer) \
        else "a number"
    what = f"missing value (expected {expected})" if pd.isna(cell) else f"not {expected}: {brief(cell)}"
    raise DataError(what, file=file, column=col, row=csv_row(first_bad[col]))


def check_finite(file: Path, values: np.ndarray, columns: list[str]) -> None:
    """Raise a DataError naming the first (in file order) NaN/inf cell of ``values``."""
    values = values.reshape(len(values), -1)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad.any(axis=1)))
        j = int(np.argmax(bad[i]))
        what = "an empty cell or NaN" if np.isnan(values[i, j]) else "inf, or too large for the column's type"
        raise DataError(f"non-finite value {values[i, j]} ({what})", file=file, column=columns[j],
                        row=file_row(file, i))


def run_starts(codes: np.ndarray) -> np.ndarray:
    """Indices where a run of equal consecutive ``codes`` begins."""
    if len(codes) == 0:
        return np.empty(0, np.int64)
    return np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])


def repeated_run(codes: np.ndarray, starts: np.ndarray) -> int | None:
    """First row that starts a run of a code seen in an earlier run (a non-contiguous recording)."""
    first = np.unique(codes[starts], return_index=True)[1]
    if len(first) == len(starts):
        return None
    later = np.ones(len(starts), bool)
    later[first] = False
    return int(starts[np.argmax(later)])


# ---------------------------------------------------------------------------- mapping
def _mapping_path(path: Path) -> Path:
    if path.is_dir():
        path = path / MAPPING_FILE
    if not path.is_file():
        raise DataError("mapping file not found", file=path)
    return path


def _read_mapping(file: Path) -> dict[str, Any]:
    """Parse and type-check the mapping; every error names the mapping file and the key."""
    try:
        mapping = tomllib.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError("not UTF-8 text, so not a TOML mapping", file=file) from exc
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"invalid TOML: {exc}", file=file) from exc

    def fail(key: str, message: str) -> DataError:
        return DataError(f"key {key!r}: {message}", file=file)

    allowed = [*_SCHEMA, *_FREE_SECTIONS]
    for section, body in mapping.items():
        if section not in allowed:
            raise fail(section, f"unknown section; allowed: {allowed}")
        if not isinstance(body, dict):
            raise fail(section, "must be a table ([section])")
    for section, keys in _SCHEMA.items():
        body = mapping.get(section)
        if body is None:
            raise fail(section, "missing required section")
        for key in body:
            if key not in keys:
                raise fail(f"{section}.{key}", f"unknown key; allowed: {list(keys)}")
        for key, (types, required) in keys.items():
            if key not in body:
                if required:
                    raise fail(f"{section}.{key}", "missing required key")
                continue
            value = body[key]
            if isinstance(value, bool) or not isinstance(value, types):
                raise fail(f"{section}.{key}", f"wrong type {type(value).__name__}")
            if isinstance(value, str) and not value:
                raise fail(f"{section}.{key}", "must not be empty")
    problem = sampling_rate_problem(mapping["dataset"]["sampling_rate"])
    if problem is not None:
        raise fail("dataset.sampling_rate", f"{problem} (set [dataset] sampling_rate to the samples per second)")
    channels = mapping["columns"]["channels"]
    if not channels or not all(isinstance(c, str) and c for c in channels):
        raise fail("columns.channels", "must be a non-empty list of column names")
    for key, value in mapping.get("channel_groups", {}).items():
        if not (isinstance(value, list) and value and all(isinstance(c, str) for c in value)):
            raise fail(f"channel_groups.{key}", "must be a non-empty list of channel names")
    for key, value in mapping.get("units", {}).items():
        if not isinstance(value, str):
            raise fail(f"units.{key}", f"wrong type {type(value).__name__}, expected a string")
    return mapping


def _expand(patterns: list[str], names: list[str], *, file: Path, key: str, taken: Mapping[str, str],
            in_file: bool) -> list[str]:
    """Expand globs against ``names`` (file order within a pattern); each pattern must match.

    ``taken`` maps columns that play another role to that role: a glob skips them, naming one is
    an error. ``in_file``: ``names`` are the file's columns (else the mapping's channels).
    """
    out: list[str] = []
    for pattern in patterns:
        if pattern in taken:
            raise DataError(f"key {key!r}: this column is already the {taken[pattern]} column", file=file,
                            column=pattern)
        if pattern in names:
            matches = [pattern]
        else:
            matches = [n for n in names if n not in taken and fnmatch.fnmatchcase(n, pattern)]
        if not matches:
            where = "the file has" if in_file else "the channels are"
            raise DataError(f"key {key!r}: {brief(pattern)} matches no column ({where} "
                            f"{column_list(names, header=in_file)})", file=file, column=pattern)
        out.extend(m for m in matches if m not in out)
    return out


def _resolve(mapping_file: Path, relative: str, key: str, suffixes: tuple[str, ...]) -> Path:
    if "\0" in relative:
        raise DataError(f"key {key!r}: a file name cannot hold a NUL character", file=mapping_file)
    path = (mapping_file.parent / relative).resolve()
    if not any(path.name.endswith(s) for s in suffixes):
        raise DataError(f"key {key!r}: unsupported file type {path.name!r}; use {list(suffixes)}", file=mapping_file)
    if not path.is_file():
        raise DataError(f"key {key!r}: file not found: {path}", file=mapping_file)
    return path


# ---------------------------------------------------------------------------- reading
def _read_table(file: Path, header: list[str], text_cols: list[str], numeric: dict[str, Any]) -> pd.DataFrame:
    """Read the needed columns: identifiers/labels as text, ``numeric`` ones with their dtypes."""
    require_columns(file, header, [*text_cols, *numeric])
    if file.suffix != ".parquet":
        return read_csv_checked(file, {**{c: str for c in text_cols}, **numeric})
    frame = read_parquet_frame(file, columns=list(dict.fromkeys([*text_cols, *numeric])))
    for col in text_cols:
        frame[col] = _as_text(frame[col])
    for col in numeric:
        _require_numbers(file, frame[col])
    return frame


def _require_numbers(file: Path, column: pd.Series) -> None:
    """A Parquet column read as numbers holds numbers: not True/False, not text (its first one is named)."""
    name = str(column.name)
    if pd.api.types.is_bool_dtype(column):
        raise DataError("holds True/False values, not numbers", file=file, column=name)
    if pd.api.types.is_numeric_dtype(column):
        return
    values = column.tolist()
    i = next((k for k, v in enumerate(values) if isinstance(v, bool) or not isinstance(v, (int, float))), 0)
    raise DataError(f"holds {column.dtype} values, not numbers: {brief(values[i])}", file=file, column=name,
                    row=file_row(file, i))


def _as_text(column: pd.Series) -> pd.Series:
    """Text form of identifiers/labels; integral floats (from NaN-holding int columns) lose '.0'."""
    if pd.api.types.is_float_dtype(column) and (column.dropna() % 1 == 0).all():
        column = column.astype("Int64")
    return column.astype("string").astype(object).where(column.notna(), None)


def _sort_labels(values: list[str]) -> list[str]:
    """Sorted activity names; numeric codes first and in numeric order ("2" before "10")."""

    def key(value: str) -> tuple[int, float, str]:
        try:
            return (0, float(value), value)
        except ValueError:
            return (1, 0.0, value)

    return sorted(values, key=key)


def _read_subjects(file: Path, column: str) -> pd.DataFrame:
    """Subjects table with the id column renamed to ``subject`` (str), other columns kept.

    The id column is the samples' subject column name, or else one called ``subject``; it is
    read as text so ids like "01" survive.
    """

    def id_column(columns: list[str]) -> str:
        chosen = column if column in columns or "subject" not in columns else "subject"
        require_columns(file, columns, [chosen])
        return chosen

    if file.suffix == ".parquet":
        column = id_column(parquet_columns(file))
        table = read_parquet_frame(file)
    else:
        column = id_column(csv_header(file))
        table = read_csv(file, dtype={column: str})
    ids = _as_text(table[column])
    if ids.isna().any():
        raise DataError("missing subject id", file=file, column=column, row=file_row(file, int(np.argmax(ids.isna()))))
    if ids.duplicated().any():
        i = int(np.argmax(ids.duplicated().to_numpy()))
        raise DataError(f"subject {brief(ids.iat[i])} listed twice", file=file, column=column, row=file_row(file, i))
    table = table.drop(columns=[column]).drop(columns=["subject"], errors="ignore")
    table.insert(0, "subject", ids.to_numpy())
    return table


# ---------------------------------------------------------------------------- loader
def load_tabular(
    path: str | Path, *, name: str | None = None, progress: ProgressFn = null_progress
) -> SensorDataset:
    """Load the samples table described by a mapping file (or a directory holding ``mapping.toml``)."""
    mapping_file = _mapping_path(Path(path))
    mapping = _read_mapping(mapping_file)
    ds_cfg, cols = mapping["dataset"], mapping["columns"]
    rate = float(ds_cfg["sampling_rate"])
    samples_file = _resolve(mapping_file, ds_cfg["samples"], "dataset.samples", (".csv", ".csv.gz", ".parquet"))
    subjects_file = (
        _resolve(mapping_file, ds_cfg["subjects"], "dataset.subjects", (".csv", ".parquet"))
        if "subjects" in ds_cfg else None
    )

    progress(0.0, f"reading {samples_file.name}")
    header = parquet_columns(samples_file) if samples_file.suffix == ".parquet" else csv_header(samples_file)
    roles = [k for k in ("subject", "recording", "activity", "time") if k in cols]
    id_cols = [cols[k] for k in roles if k != "time"]
    channels = _expand(cols["channels"], header, file=samples_file, key="columns.channels",
                       taken={cols[k]: k for k in roles}, in_file=True)
    # float32 is the dataset's precision; time stays float64 (seconds lose ms steps in float32)
    numeric: dict[str, Any] = {c: np.float32 for c in channels}
    if "time" in cols:
        numeric[cols["time"]] = np.float64
    frame = _read_table(samples_file, header, id_cols, numeric)
    progress(0.6, "checking samples")

    if len(frame) == 0:
        raise DataError("no data rows", file=samples_file)
    subject = frame[cols["subject"]]
    if subject.isna().any():
        i = int(np.argmax(subject.isna().to_numpy()))
        raise DataError("missing subject", file=samples_file, column=cols["subject"], row=file_row(samples_file, i))
    subjects = None
    if subjects_file is not None:
        subjects = _read_subjects(subjects_file, cols["subject"])
        unknown = ~subject.isin(subjects["subject"]).to_numpy()
        if unknown.any():
            i = int(np.argmax(unknown))
            raise DataError(f"unknown subject {brief(subject.iat[i])} (not in {subjects_file.name})",
                            file=samples_file, column=cols["subject"], row=file_row(samples_file, i))
    signals = frame[channels].to_numpy(np.float32, na_value=np.nan)
    check_finite(samples_file, signals, channels)

    recording = frame[cols["recording"]] if "recording" in cols else subject
    if recording.isna().any():
        i = int(np.argmax(recording.isna().to_numpy()))
        raise DataError("missing recording id", file=samples_file, column=cols["recording"],
                        row=file_row(samples_file, i))
    key = pd.MultiIndex.from_arrays([subject, recording]).factorize()[0]
    starts = run_starts(key)
    repeat = repeated_run(key, starts)
    if repeat is not None:
        raise DataError(
            f"rows of recording {brief(recording.iat[repeat])} (subject {brief(subject.iat[repeat])}) are not "
            "contiguous (it reappears here)",
            file=samples_file, column=cols.get("recording", cols["subject"]), row=file_row(samples_file, repeat),
        )
    lengths = np.diff(np.r_[starts, len(frame)])
    rec_subject = [str(s) for s in subject.to_numpy()[starts]]
    rec_ids = [str(r) for r in recording.to_numpy()[starts]]
    if len(set(rec_ids)) != len(rec_ids):  # same recording name under several subjects
        rec_ids = [f"{s}_{r}" for s, r in zip(rec_subject, rec_ids)]

    if "time" in cols:
        _check_time(samples_file, frame[cols["time"]].to_numpy(np.float64, na_value=np.nan), starts, rec_ids, rate,
                    cols["time"])

    if "activity" in cols:
        activity = frame[cols["activity"]]
        activities = _sort_labels([str(a) for a in activity.dropna().unique()])
        if len(activities) > _MAX_ACTIVITIES:
            raise DataError(f"{len(activities)} distinct activities, more than {_MAX_ACTIVITIES}: is it the "
                            "activity column?", file=samples_file, column=cols["activity"])
        codes = pd.Categorical(activity, categories=activities).codes.astype(np.int16)
    else:
        activities, codes = [], np.full(len(frame), UNLABELLED, np.int16)

    present = list(dict.fromkeys(rec_subject))
    if subjects is None:
        subjects = pd.DataFrame({"subject": present})
    else:  # subjects listed without recordings are dropped
        subjects = subjects[subjects["subject"].isin(present)]

    recordings = pd.DataFrame({"recording": rec_ids, "subject": rec_subject,
                               "start": starts.astype(np.int64), "length": lengths.astype(np.int64)})
    groups = {g: _expand(p, channels, file=mapping_file, key=f"channel_groups.{g}", taken={}, in_file=False)
              for g, p in mapping.get("channel_groups", {}).items()}
    units: dict[str, str] = {}
    for pattern, unit in mapping.get("units", {}).items():
        for ch in _expand([pattern], channels, file=mapping_file, key=f"units.{pattern}", taken={},
                          in_file=False):
            units[ch] = unit
    progress(1.0, "loaded")
    return SensorDataset(
        name=name or ds_cfg.get("name") or mapping_file.parent.resolve().name,
        sampling_rate=rate, channels=channels, signals=signals, labels=codes,
        activities=activities, recordings=recordings, subjects=subjects, channel_groups=groups,
        units=units, source=f"tabular:{mapping_file}",
    )


def _check_time(
    file: Path, time: np.ndarray, starts: np.ndarray, rec_ids: list[str], rate: float, column: str
) -> None:
    """Consecutive time stamps within a recording must be 1/rate apart (1 % tolerance)."""
    check_finite(file, time, [column])
    step = np.diff(time) * rate
    inside = np.ones(len(step), bool)
    inside[starts[1:] - 1] = False  # differences across a recording boundary
    bad = inside & (np.abs(step - 1.0) > TIME_TOLERANCE)
    if bad.any():
        i = int(np.argmax(bad)) + 1  # the row whose time stamp is off
        rec = rec_ids[np.searchsorted(starts, i, side="right") - 1]
        dt = time[i] - time[i - 1]
        found = f"~{1.0 / dt:.4g} Hz" if dt > 0 else f"a time step of {dt:g} s"
        raise DataError(
            f"wrong sampling rate: file has {found}, mapping says {rate:g} Hz (recording {rec!r})",
            file=file, column=column, row=file_row(file, i),
        )
