"""The one canonical representation of a sensor dataset.

All recordings are concatenated into one ``(n_samples, n_channels)`` float32 array; a
recordings table holds each recording's subject, offset and length (CSR style). This keeps
windowing and normalisation vectorised (one array, no per-recording objects) and makes the
Parquet round trip a handful of column writes. Every loader produces a :class:`SensorDataset`;
nothing above ``data/`` knows which source layout a dataset came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from anonaudit.data.inputs import brief, read_parquet, read_parquet_frame
from anonaudit.errors import DataError
from anonaudit.files import atomic_write, write_once

UNLABELLED = -1
FORMAT_VERSION = 1
META_FILE = "dataset.json"
SAMPLES_FILE = "samples.parquet"
RECORDINGS_FILE = "recordings.parquet"
SUBJECTS_FILE = "subjects.parquet"
_LABEL_COLUMN = "__label__"
# Plausible sampling rates (Hz) of movement sensors: a rate outside is a typo (1e300 for 100) that would
# only fail much later, when rate × seconds sample windows overflow.
MIN_SAMPLING_RATE = 0.1
MAX_SAMPLING_RATE = 100_000.0


def sampling_rate_problem(rate: object) -> str | None:
    """Why ``rate`` is not a plausible sampling rate in Hz, or None; every place that sets a rate asks."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        return f"must be a number of Hz, got {type(rate).__name__}"
    if not MIN_SAMPLING_RATE <= rate <= MAX_SAMPLING_RATE:
        shown = repr(rate) if len(repr(rate)) <= 24 else f"{repr(rate)[:23]}…"
        return f"must be between {MIN_SAMPLING_RATE:g} and {MAX_SAMPLING_RATE:g} Hz, got {shown}"
    return None


@dataclass
class SensorDataset:
    """Recordings of one or more subjects, concatenated.

    Attributes:
        name: short identifier.
        sampling_rate: samples per second, common to all channels.
        channels: channel names, one per column of ``signals``.
        signals: ``(n_samples, n_channels)`` float32, all recordings back to back.
        labels: ``(n_samples,)`` int16 activity codes indexing ``activities``; -1 = unlabelled.
        activities: activity names.
        recordings: one row per recording with columns ``recording`` (str id), ``subject`` (str),
            ``start`` and ``length`` (samples in ``signals``), plus any metadata (trial, source …).
        subjects: one row per subject, column ``subject`` (str) plus attributes (age, gender …).
        channel_groups: group name → channel names (body part, device, sensor type).
        units: channel name → unit string.
        source: where the data came from (loader name and path), for provenance.
    """

    name: str
    sampling_rate: float
    channels: list[str]
    signals: np.ndarray
    labels: np.ndarray
    activities: list[str]
    recordings: pd.DataFrame
    subjects: pd.DataFrame
    channel_groups: dict[str, list[str]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        self.signals = np.ascontiguousarray(self.signals, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int16)
        self.channels = [str(c) for c in self.channels]
        self.recordings = self.recordings.reset_index(drop=True)
        for col in ("recording", "subject"):
            if col in self.recordings:
                self.recordings[col] = self.recordings[col].astype(str)
        self.subjects = self.subjects.reset_index(drop=True)
        if "subject" in self.subjects:
            self.subjects["subject"] = self.subjects["subject"].astype(str)
        self.validate()

    # ------------------------------------------------------------------ properties
    @property
    def n_samples(self) -> int:
        return int(self.signals.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.signals.shape[1])

    @property
    def subject_ids(self) -> list[str]:
        return self.subjects["subject"].tolist()

    def recording_slices(self) -> list[slice]:
        """Slices of ``signals`` for each recording, in table order."""
        return [
            slice(int(s), int(s + n))
            for s, n in zip(self.recordings["start"], self.recordings["length"])
        ]

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check internal consistency; raise :class:`DataError` naming what is wrong."""
        where = f"dataset {self.name!r}"
        problem = sampling_rate_problem(self.sampling_rate)
        if problem is not None:
            raise DataError(f"{where}: sampling rate {problem}")
        if self.signals.ndim != 2 or self.signals.shape[1] != len(self.channels):
            raise DataError(
                f"{where}: signals have shape {self.signals.shape} but {len(self.channels)} channels are named"
            )
        if len(set(self.channels)) != len(self.channels):
            dup = sorted({c for c in self.channels if self.channels.count(c) > 1})
            raise DataError(f"{where}: duplicate channel names {dup}")
        if self.labels.shape != (self.n_samples,):
            raise DataError(f"{where}: {self.labels.shape[0]} labels for {self.n_samples} samples")
        if self.labels.size and (self.labels.min() < UNLABELLED or self.labels.max() >= len(self.activities)):
            raise DataError(f"{where}: label codes must lie in [-1, {len(self.activities) - 1}]")
        for col in ("recording", "subject", "start", "length"):
            if col not in self.recordings:
                raise DataError(f"{where}: recordings table lacks column {col!r}")
        if "subject" not in self.subjects:
            raise DataError(f"{where}: subjects table lacks column 'subject'")
        if self.recordings["recording"].duplicated().any():
            dup = self.recordings.loc[self.recordings["recording"].duplicated(), "recording"].tolist()
            raise DataError(f"{where}: duplicate recording ids {dup[:5]}")
        if self.subjects["subject"].duplicated().any():
            dup = self.subjects.loc[self.subjects["subject"].duplicated(), "subject"].tolist()
            raise DataError(f"{where}: duplicate subject ids {dup[:5]}")
        starts = self.recordings["start"].to_numpy(np.int64)
        lengths = self.recordings["length"].to_numpy(np.int64)
        expected = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else starts
        if (lengths <= 0).any() or not np.array_equal(starts, expected) or lengths.sum() != self.n_samples:
            raise DataError(f"{where}: recordings must be contiguous, non-empty and cover all samples")
        unknown = sorted(set(self.recordings["subject"]) - set(self.subjects["subject"]))
        if unknown:
            raise DataError(f"{where}: recordings refer to unknown subjects {unknown[:10]}")
        bad = ~np.isfinite(self.signals)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            rec = int(np.searchsorted(starts, row, side="right") - 1)
            raise DataError(
                f"{where}: non-finite value in recording {self.recordings['recording'].iat[rec]!r} "
                f"at sample {int(row - starts[rec])}",
                column=self.channels[col],
            )
        for group, members in self.channel_groups.items():
            missing = [m for m in members if m not in self.channels]
            if missing:
                raise DataError(f"{where}: channel group {group!r} names unknown channels {missing}")

    # ------------------------------------------------------------------ summaries
    def summary(self) -> dict[str, Any]:
        """Counts per subject and activity, JSON-serialisable (stored with the dataset)."""
        per_subject = self.recordings.groupby("subject")["length"].sum()
        codes, counts = np.unique(self.labels, return_counts=True)
        per_activity = {
            (self.activities[c] if c >= 0 else "unlabelled"): int(n) for c, n in zip(codes, counts)
        }
        return {
            "name": self.name,
            "sampling_rate": self.sampling_rate,
            "n_samples": self.n_samples,
            "n_channels": self.n_channels,
            "n_recordings": int(len(self.recordings)),
            "n_subjects": int(len(self.subjects)),
            "duration_s": round(self.n_samples / self.sampling_rate, 3),
            "channels": self.channels,
            "channel_groups": self.channel_groups,
            "activities": self.activities,
            "samples_per_activity": per_activity,
            "samples_per_subject": {str(k): int(v) for k, v in per_subject.items()},
            "subject_attributes": [c for c in self.subjects.columns if c != "subject"],
        }

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the dataset as Parquet files in directory ``path``, atomically.

        The files are written to a temporary sibling directory that is renamed into place only
        when complete, so a crash never leaves a directory that looks like a finished dataset.
        """
        return atomic_write(Path(path), self._write)

    def save_once(self, path: str | Path) -> bool:
        """:meth:`save` to a content-addressed ``path``, unless a readable copy is already there.

        Concurrent imports of the same data share the folder: the first to finish puts its copy in
        place and the others keep it. Returns True if this call's copy was put in place.
        """
        return write_once(Path(path), self._write, keep=lambda p: self.check_files(p) is None)

    def _write(self, folder: Path) -> None:
        folder.mkdir()
        arrays = [pa.array(self.signals[:, j]) for j in range(self.n_channels)]
        arrays.append(pa.array(self.labels))
        table = pa.Table.from_arrays(arrays, names=[*self.channels, _LABEL_COLUMN])
        pq.write_table(table, folder / SAMPLES_FILE, compression="zstd", row_group_size=1 << 20)
        self.recordings.to_parquet(folder / RECORDINGS_FILE, index=False)
        self.subjects.to_parquet(folder / SUBJECTS_FILE, index=False)
        meta = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "sampling_rate": self.sampling_rate,
            "channels": self.channels,
            "activities": self.activities,
            "channel_groups": self.channel_groups,
            "units": self.units,
            "source": self.source,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))

    @staticmethod
    def check_files(path: str | Path) -> str | None:
        """Why :meth:`load` would fail on ``path`` (missing or damaged files), or None if it would not.

        Reads the metadata, the Parquet footers and the recordings table only, so it is cheap
        enough to run before reusing a stored copy.
        """
        path = Path(path)
        try:
            meta = json.loads((path / META_FILE).read_text())
            if meta.get("format_version") != FORMAT_VERSION:
                return f"unsupported dataset format version {meta.get('format_version')}"
            samples = pq.read_metadata(path / SAMPLES_FILE)
            if samples.schema.to_arrow_schema().names != [*meta["channels"], _LABEL_COLUMN]:
                return f"{SAMPLES_FILE} does not hold the channels {META_FILE} names"
            lengths = pq.read_table(path / RECORDINGS_FILE, columns=["length"]).column(0).to_numpy()
            if int(lengths.sum()) != samples.num_rows:
                return f"{RECORDINGS_FILE} does not cover the {samples.num_rows} samples"
            pq.read_metadata(path / SUBJECTS_FILE)
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    @classmethod
    def load(cls, path: str | Path) -> "SensorDataset":
        """Read a dataset written by :meth:`save`; a damaged directory is a DataError naming the file."""
        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise DataError("not an anonaudit dataset directory (no dataset.json)", file=path)
        meta = _read_meta(meta_path)
        channels = [str(c) for c in meta["channels"]]
        table = read_parquet(path / SAMPLES_FILE)
        missing = [c for c in [*channels, _LABEL_COLUMN] if c not in table.column_names]
        if missing:
            raise DataError("column missing (dataset.json names it)", file=path / SAMPLES_FILE, column=missing[0])
        signals = np.empty((table.num_rows, len(channels)), dtype=np.float32)
        for j, name in enumerate(channels):
            signals[:, j] = table.column(name).to_numpy()
        return cls(
            name=meta["name"],
            sampling_rate=float(meta["sampling_rate"]),
            channels=channels,
            signals=signals,
            labels=table.column(_LABEL_COLUMN).to_numpy(),
            activities=list(meta["activities"]),
            recordings=read_parquet_frame(path / RECORDINGS_FILE),
            subjects=read_parquet_frame(path / SUBJECTS_FILE),
            channel_groups={k: list(v) for k, v in meta.get("channel_groups", {}).items()},
            units=dict(meta.get("units", {})),
            source=meta.get("source", ""),
        )

    @staticmethod
    def is_dataset_dir(path: str | Path) -> bool:
        return (Path(path) / META_FILE).is_file()


_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "sampling_rate": (int, float), "channels": list, "activities": list, "channel_groups": dict,
    "units": dict, "source": str,
}
_META_OPTIONAL = ("channel_groups", "units", "source")


def _read_meta(file: Path) -> dict[str, Any]:
    """``dataset.json``, checked so that loading fails on it only with a DataError naming the key."""
    try:
        meta = json.loads(file.read_bytes())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise DataError("not valid JSON", file=file) from exc
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        raise DataError(f"unsupported dataset format version {brief(version)}", file=file)
    for key, types in _META_TYPES.items():
        value = meta.get(key)
        if (value is None and key not in _META_OPTIONAL) or (
                value is not None and (isinstance(value, bool) or not isinstance(value, types))):
            raise DataError(f"key {key!r} is missing or not a {getattr(types, '__name__', 'number')}", file=file)
    return meta


def concat_recordings(
    parts: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stack per-recording (signals, labels) pairs; return signals, labels, starts, lengths.

    Loaders use this so the offsets are computed in one place.
    """
    lengths = np.array([len(s) for s, _ in parts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(parts) else lengths
    if not parts:
        return np.empty((0, 0), np.float32), np.empty(0, np.int16), starts, lengths
    signals = np.concatenate([s for s, _ in parts]).astype(np.float32, copy=False)
    labels = np.concatenate([lab for _, lab in parts]).astype(np.int16, copy=False)
    return signals, labels, starts, lengths
