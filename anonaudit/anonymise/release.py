"""Turning an anonymiser into a releasable dataset: whole recordings, pseudonyms, exports.

Recordings are cut into half-overlapping windows (the last one aligned to the recording's end,
short recordings edge-padded), anonymised in batches and put back together by overlap-add with
triangular weights, so the released recordings have the original lengths and no seams.

Identifiers: subjects get random pseudonyms and recordings random ids, both drawn from the
operating system's CSPRNG — *not* from the job seed, which is recorded with the job; a seeded
mapping could be recomputed by anyone who knows the seed and the subject list. Recording order
is shuffled the same way, every metadata column but the activity labels is dropped, and the
mapping back (the linkage) is returned separately, to be stored privately.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from anonaudit.anonymise.method import Method
from anonaudit.data.dataset import SensorDataset
from anonaudit.errors import DataError, ParameterError
from anonaudit.progress import ProgressFn, null_progress


@dataclass
class Release:
    """The released dataset and the private linkage back to the original."""

    dataset: SensorDataset
    recording_linkage: dict[str, str]  # released recording id → original recording id
    subject_linkage: dict[str, str]  # pseudonym → original subject id (DFI: the target's)
    targets: dict[str, str]  # DFI: original recording id → target subject id
    windows: int
    seconds: float
    padding: dict[str, int] = field(default_factory=dict)  # coarsened lengths: where each source recording starts
    metadata_quantum_s: float | None = None  # published lengths are multiples of this (None: exact lengths)
    pseudonyms: str = "subject"  # "subject": one per person; "recording": one per released recording
    runs: bool = False  # each published recording is one activity run of a source recording

    @property
    def windows_per_s(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else float("nan")


def tile_starts(lengths: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(recording index, start) of half-overlapping windows covering every recording entirely."""
    hop = max(1, window // 2)
    counts = np.maximum(1, -(-(np.maximum(lengths - window, 0)) // hop) + 1)
    rec = np.repeat(np.arange(len(lengths)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    k = np.arange(counts.sum()) - np.repeat(first, counts)
    start = np.minimum(k * hop, np.maximum(lengths[rec] - window, 0))
    return rec, start


def resolve_targets(anonymiser: Method, ds: SensorDataset, target: str | None, rng: np.random.Generator) -> np.ndarray:
    """Target subject code per recording (``draws_targets``): one named subject (DFI), or a random other subject."""
    source = anonymiser.subject_codes(ds.recordings["subject"], "subject")
    n = len(anonymiser.subjects_)
    if target:
        return np.full(len(source), anonymiser.subject_codes([target], "target")[0])
    if n < 2:
        raise ParameterError("target", "a release under a random other subject's code needs at least two subjects")
    shift = rng.integers(1, n, size=len(source))  # never the source itself
    return (source + shift) % n


def _batches(rec: np.ndarray, size: int, whole: bool) -> list[tuple[int, int]]:
    """(first, end) tiles of each batch; ``whole``: batches end where recordings end (a method that follows
    recordings continues a recording's signal from tile to tile, so none is cut across two calls)."""
    if not whole:
        return [(b, min(b + size, len(rec))) for b in range(0, len(rec), size)]
    ends = np.r_[np.flatnonzero(np.diff(rec)) + 1, len(rec)]
    out, b = [], 0
    while b < len(rec):
        e = int(ends[max(np.searchsorted(ends, b + size, side="right") - 1, np.searchsorted(ends, b, side="right"))])
        out.append((b, e))
        b = e
    return out


def anonymise_dataset(ds: SensorDataset, anonymiser: Method, *, name: str, target: str | None = None,
                      seed: int = 0, batch_size: int = 1024, progress: ProgressFn = null_progress) -> Release:
    """Anonymise every recording of ``ds`` and pseudonymise it (see the module docstring)."""
    anonymiser.check_channels(ds.channels)
    method = anonymiser.config.method
    rng = np.random.default_rng(seed)
    subj_codes = anonymiser.subject_codes(ds.recordings["subject"]) if anonymiser.uses_subject else None
    if target and method != "anon_dfi":
        raise ParameterError("target", f"only anon_dfi transfers identities; {method} takes no target")
    targets = resolve_targets(anonymiser, ds, target, rng) if anonymiser.draws_targets else None
    T = anonymiser.geometry_.length
    lengths = ds.recordings["length"].to_numpy(np.int64)
    offsets = ds.recordings["start"].to_numpy(np.int64)
    rec, start = tile_starts(lengths, T)
    pos = start[:, None] + np.arange(T)[None, :]  # position inside the recording
    inside = pos < lengths[rec][:, None]
    idx = offsets[rec][:, None] + np.minimum(pos, lengths[rec][:, None] - 1)  # edge-pad short recordings
    activity = ds.labels[idx[:, T // 2]].astype(np.int64)  # each tile's activity: the label at its centre
    weights = np.minimum(np.arange(1, T + 1), np.arange(T, 0, -1)).astype(np.float64)  # triangle, > 0 everywhere
    out = np.zeros_like(ds.signals, dtype=np.float64)
    norm = np.zeros(ds.n_samples)
    started = time.perf_counter()
    for b, e in _batches(rec, batch_size, whole=anonymiser.follows_recordings):
        sl = slice(b, e)
        X = ds.signals[idx[sl]]
        Xa = anonymiser.transform(X, subj_codes[rec[sl]] if subj_codes is not None else None,
                                  targets[rec[sl]] if targets is not None else None,
                                  seed=secrets.randbits(63) if anonymiser.secret_draws else seed + b,
                                  activity=activity[sl], recording=rec[sl])
        keep = inside[sl]
        flat = idx[sl][keep]
        lo = int(flat.min())  # a batch covers neighbouring recordings: add into that span only
        local, span = flat - lo, int(flat.max()) + 1 - lo
        w = np.broadcast_to(weights, keep.shape)[keep]
        norm[lo : lo + span] += np.bincount(local, weights=w, minlength=span)
        values = Xa[keep]
        for c in range(ds.n_channels):
            out[lo : lo + span, c] += np.bincount(local, weights=w * values[:, c], minlength=span)
        progress(e / len(rec), f"anonymised {e}/{len(rec)} windows")
    seconds = time.perf_counter() - started
    signals = (out / norm[:, None]).astype(np.float32)
    return _pseudonymise(ds, signals, name, targets if method == "anon_dfi" else None, anonymiser, len(rec), seconds)


def _token(prefix: str, taken: set[str]) -> str:
    while True:
        value = f"{prefix}{secrets.token_hex(4)}"
        if value not in taken:
            taken.add(value)
            return value


def _pseudonymise(ds: SensorDataset, signals: np.ndarray, name: str, targets: np.ndarray | None,
                  anonymiser: Method, n_windows: int, seconds: float) -> Release:
    taken: set[str] = set()
    if targets is not None:  # DFI: each recording now belongs to its target
        owners = np.asarray(anonymiser.subjects_, dtype=object)[targets]
    else:
        owners = ds.recordings["subject"].to_numpy(dtype=object)
    pseudonym = {sid: _token("S-", taken) for sid in sorted(set(owners))}
    order = list(range(len(ds.recordings)))
    secrets.SystemRandom().shuffle(order)
    slices = ds.recording_slices()
    new_ids = [_token("R-", taken) for _ in order]
    lengths = ds.recordings["length"].to_numpy(np.int64)[order]
    recordings = pd.DataFrame({"recording": new_ids, "subject": [pseudonym[owners[i]] for i in order],
                               "start": np.concatenate([[0], np.cumsum(lengths)[:-1]]), "length": lengths})
    subjects = pd.DataFrame({"subject": sorted(pseudonym.values())})
    released = SensorDataset(
        name=name, sampling_rate=ds.sampling_rate, channels=list(ds.channels),
        signals=np.concatenate([signals[slices[i]] for i in order]) if order else signals,
        labels=np.concatenate([ds.labels[slices[i]] for i in order]) if order else ds.labels,
        activities=list(ds.activities), recordings=recordings, subjects=subjects,
        channel_groups={k: list(v) for k, v in ds.channel_groups.items()}, units=dict(ds.units),
        source=f"anonaudit release ({anonymiser.config.method})",
    )
    original = ds.recordings["recording"].astype(str).to_numpy()
    recording_linkage = {new_ids[k]: original[i] for k, i in enumerate(order)}
    targets_of = dict(zip(original, owners)) if targets is not None else {}
    return Release(released, recording_linkage, {v: k for k, v in pseudonym.items()}, targets_of, n_windows, seconds)


def pseudonym_per_recording(release: Release) -> Release:
    """The release with a pseudonym of its own for every recording: nothing says which recordings are one person's.

    Pseudonyms shared by a person's recordings let an attacker match the *set* of their
    recordings' lengths and activities to a subject's, where no single recording gives them away.
    """
    owners = release.dataset.recordings["subject"].map(release.subject_linkage).to_numpy(dtype=object)
    taken = set(release.dataset.recordings["recording"])
    fresh = [_token("S-", taken) for _ in owners]
    dataset = replace(release.dataset, recordings=release.dataset.recordings.assign(subject=fresh),
                      subjects=pd.DataFrame({"subject": sorted(fresh)}))
    return replace(release, dataset=dataset, subject_linkage=dict(zip(fresh, owners)), pseudonyms="recording")


def export_release(ds: SensorDataset, directory: Path) -> list[Path]:
    """Flat files anyone can open: samples (CSV and Parquet, one row per sample), recordings, subjects."""
    directory.mkdir(parents=True, exist_ok=True)
    rec_index = np.repeat(np.arange(len(ds.recordings)), ds.recordings["length"].to_numpy())
    offset = np.arange(ds.n_samples) - ds.recordings["start"].to_numpy()[rec_index]
    activity = np.asarray([*ds.activities, ""], dtype=object)[np.where(ds.labels >= 0, ds.labels, len(ds.activities))]
    samples = pd.DataFrame({"recording": ds.recordings["recording"].to_numpy()[rec_index],
                            "subject": ds.recordings["subject"].to_numpy()[rec_index],
                            "time_s": np.round(offset / ds.sampling_rate, 6), "activity": activity})
    samples = pd.concat([samples, pd.DataFrame(ds.signals, columns=ds.channels)], axis=1)
    paths = [directory / "samples.parquet", directory / "samples.csv.gz",
             directory / "recordings.csv", directory / "subjects.csv"]
    samples.to_parquet(paths[0], index=False)
    samples.to_csv(paths[1], index=False, float_format="%.6g")
    ds.recordings[["recording", "subject", "length"]].to_csv(paths[2], index=False)
    ds.subjects.to_csv(paths[3], index=False)
    return paths


def check_no_identifiers(released: SensorDataset, original: SensorDataset, files: list[Path]) -> None:
    """Refuse a release in which an original subject or recording id survives.

    Checks every identifier field and the column sets of the released tables (metadata such as
    trial numbers or source paths must be gone), the dataset name and the file names.
    """
    ids = {str(x) for x in (*original.recordings["recording"], *original.subjects["subject"])}
    fields = {*released.recordings["recording"], *released.recordings["subject"], *released.subjects["subject"]}
    leaked = sorted(ids & fields)
    leaked += sorted(i for i in ids if len(i) >= 3 and any(i in text for text in (released.name, *(f.name for f in files))))
    extra = sorted(set(released.recordings.columns) - {"recording", "subject", "start", "length"})
    extra += sorted(set(released.subjects.columns) - {"subject"})
    if leaked or extra:
        what = (f"original identifiers {leaked[:5]}" if leaked else "") + (f" metadata columns {extra}" if extra else "")
        raise DataError(f"the release still contains {what.strip()}; nothing was released")
