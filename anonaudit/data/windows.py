"""Cutting recordings into fixed-length windows.

Windows are gathered from one strided view of the concatenated signal array with a single
fancy-index, so cutting is vectorised however many recordings there are; start positions are
computed per recording, which is what guarantees that no window straddles two recordings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from anonaudit.data.dataset import UNLABELLED, SensorDataset
from anonaudit.errors import ParameterError


@dataclass
class Windows:
    """A batch of equally long windows with their labels and provenance.

    ``X`` is ``(n, length, n_channels)`` float32; ``y`` the majority activity code (-1 when most
    samples are unlabelled); ``subject`` indexes ``subjects``; ``recording`` indexes the source
    dataset's recordings table; ``start`` is the window's first sample within its recording.
    """

    X: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    recording: np.ndarray
    start: np.ndarray
    subjects: list[str]
    activities: list[str]
    channels: list[str]
    sampling_rate: float
    channel_groups: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def length(self) -> int:
        return int(self.X.shape[1])

    def subset(self, index: np.ndarray) -> "Windows":
        """Windows selected by a boolean mask or an index array (same vocabularies)."""
        return replace(
            self,
            X=self.X[index],
            y=self.y[index],
            subject=self.subject[index],
            recording=self.recording[index],
            start=self.start[index],
        )

    def subject_ids(self) -> np.ndarray:
        """Subject id string for every window."""
        return np.asarray(self.subjects, dtype=object)[self.subject]


def to_samples(value: float, sampling_rate: float, unit: str, name: str) -> int:
    """Convert a length given in seconds or samples to a whole number of samples."""
    if unit not in ("s", "samples"):
        raise ParameterError("unit", f"must be 's' or 'samples', got {unit!r}")
    n = value * sampling_rate if unit == "s" else value
    if not np.isfinite(n) or round(n) < 1:
        raise ParameterError(name, f"must be at least one sample, got {value} {unit}")
    return int(round(n))


def window_starts(lengths: np.ndarray, length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets of all windows inside segments of the given lengths.

    Returns ``(segment_index, offset)`` arrays. Computed without a Python loop over segments:
    each segment contributes ``floor((len - length) / stride) + 1`` windows.
    """
    counts = np.where(lengths >= length, (lengths - length) // stride + 1, 0).astype(np.int64)
    seg = np.repeat(np.arange(len(lengths)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
    offset = (np.arange(counts.sum()) - np.repeat(first, counts)) * stride
    return seg, offset


def majority_labels(labels: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Most frequent label in each window ``labels[s:s+length]``; ties go to the lower code.

    Uses cumulative class counts over the classes actually present, so the cost is
    O(n_samples × n_present_classes) rather than O(n_windows × length).
    """
    if len(starts) == 0:
        return np.empty(0, dtype=np.int64)
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) == 1:
        return np.full(len(starts), classes[0], dtype=np.int64)
    best = np.full(len(starts), -1, dtype=np.int64)
    best_count = np.full(len(starts), -1, dtype=np.int64)
    for k in range(len(classes)):  # loop over classes, vectorised over windows
        cum = np.concatenate([[0], np.cumsum(codes == k, dtype=np.int64)])
        count = cum[starts + length] - cum[starts]
        better = count > best_count
        best[better] = k
        best_count[better] = count[better]
    return classes[best].astype(np.int64)


def make_windows(
    ds: SensorDataset,
    length: float,
    stride: float | None = None,
    *,
    unit: str = "s",
    bounds: tuple[float, float] = (0.0, 1.0),
    drop_unlabelled: bool = True,
) -> Windows:
    """Cut every recording of ``ds`` into windows.

    Args:
        length, stride: window length and step, in seconds (``unit="s"``) or samples.
            ``stride`` defaults to ``length`` (no overlap).
        bounds: keep only the part ``[lo, hi)`` of each recording, as fractions of its length;
            time-based splits use disjoint bounds so that no window crosses a split boundary.
        drop_unlabelled: drop windows whose majority label is unlabelled (-1).
    """
    n = to_samples(length, ds.sampling_rate, unit, "length")
    step = to_samples(stride if stride is not None else length, ds.sampling_rate, unit, "stride")
    lo, hi = bounds
    if not 0.0 <= lo < hi <= 1.0:
        raise ParameterError("bounds", f"must satisfy 0 <= lo < hi <= 1, got {bounds}")
    rec_start = ds.recordings["start"].to_numpy(np.int64)
    rec_len = ds.recordings["length"].to_numpy(np.int64)
    seg_lo = np.floor(rec_len * lo).astype(np.int64)
    seg_hi = np.floor(rec_len * hi).astype(np.int64)
    rec, offset = window_starts(seg_hi - seg_lo, n, step)
    start_in_rec = seg_lo[rec] + offset
    global_start = rec_start[rec] + start_in_rec
    y = majority_labels(ds.labels, global_start, n)
    keep = y != UNLABELLED if drop_unlabelled else np.ones(len(y), dtype=bool)
    global_start, rec, start_in_rec, y = global_start[keep], rec[keep], start_in_rec[keep], y[keep]
    if len(global_start):
        view = sliding_window_view(ds.signals, n, axis=0)  # (N - n + 1, C, n), no copy
        X = np.ascontiguousarray(view[global_start].transpose(0, 2, 1))
    else:
        X = np.empty((0, n, ds.n_channels), dtype=np.float32)
    subjects = ds.subject_ids
    subject_code = {s: i for i, s in enumerate(subjects)}
    rec_subject = np.array([subject_code[s] for s in ds.recordings["subject"]], dtype=np.int64)
    return Windows(
        X=X,
        y=y,
        subject=rec_subject[rec] if len(rec) else np.empty(0, np.int64),
        recording=rec,
        start=start_in_rec,
        subjects=subjects,
        activities=list(ds.activities),
        channels=list(ds.channels),
        sampling_rate=ds.sampling_rate,
        channel_groups={k: list(v) for k, v in ds.channel_groups.items()},
    )
