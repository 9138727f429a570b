"""UCI HAPT (Smartphone-Based Recognition of Human Activities and Postural Transitions).

Reads the raw 50 Hz signals converted to one CSV(.gz) row per sample: ``user, recording,
acc-x, acc-y, acc-z (g), gyro-x, gyro-y, gyro-z (rad/s, kept as published), sequence, label``.
One recording per (user, recording). Subject ids are the UCI user numbers as strings, "1".."30"
(no zero padding, so they match the published user ids); the dataset has no demographics.
Row numbers in errors are CSV line numbers (header = line 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anonaudit.data.dataset import UNLABELLED, SensorDataset
from anonaudit.data.inputs import csv_header, csv_row
from anonaudit.data.loaders.tabular import (
    check_finite,
    read_csv_checked,
    repeated_run,
    require_columns,
    run_starts,
)
from anonaudit.errors import DataError
from anonaudit.progress import ProgressFn, null_progress

SAMPLING_RATE = 50.0
ACTIVITIES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING")
TRANSITIONS = ("STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND")
FILE_CHANNELS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
CHANNELS = [c.replace("-", "_") for c in FILE_CHANNELS]
HEADER = ("user", "recording", *FILE_CHANNELS, "sequence", "label")
_DTYPES = {"user": np.int32, "recording": np.int32, **{c: np.float32 for c in FILE_CHANNELS},
           "sequence": np.int64, "label": np.int16}


def load_hapt(
    path: str | Path,
    *,
    name: str = "hapt",
    include_transitions: bool = False,
    keep_unlabelled: bool = True,
    progress: ProgressFn = null_progress,
) -> SensorDataset:
    """Load the HAPT samples file.

    ``include_transitions=False`` turns the six postural transitions into unlabelled samples
    rather than deleting them, so no window silently joins the signal across a gap.
    ``keep_unlabelled=False`` removes unlabelled samples; each remaining contiguous labelled run
    becomes its own recording (``u1_r0_seg3``) for the same reason.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError("HAPT samples file not found", file=file)
    require_columns(file, csv_header(file), list(HEADER))
    progress(0.0, f"reading {file.name}")
    frame = read_csv_checked(file, _DTYPES)
    if len(frame) == 0:
        raise DataError("no data rows", file=file)
    progress(0.7, "checking samples")
    signals = frame[list(FILE_CHANNELS)].to_numpy(np.float32)
    check_finite(file, signals, list(FILE_CHANNELS))

    label = frame["label"].to_numpy()
    allowed = len(ACTIVITIES) + len(TRANSITIONS)
    bad = (label != UNLABELLED) & ((label < 1) | (label > allowed))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"label {label[i]} outside -1, 1..{allowed}", file=file, column="label", row=csv_row(i))
    activities = [*ACTIVITIES, *TRANSITIONS] if include_transitions else list(ACTIVITIES)
    codes = np.where(label == UNLABELLED, UNLABELLED, label - 1).astype(np.int16)
    codes[codes >= len(activities)] = UNLABELLED

    user = frame["user"].to_numpy()
    session = frame["recording"].to_numpy()
    key = user.astype(np.int64) << 32 | session.astype(np.int64)
    starts = run_starts(key)
    repeat = repeated_run(key, starts)
    if repeat is not None:
        raise DataError(f"rows of user {user[repeat]} recording {session[repeat]} are not contiguous",
                        file=file, column="recording", row=csv_row(repeat))
    sequence = frame["sequence"].to_numpy()
    step_ok = np.diff(sequence) == 1
    step_ok[starts[1:] - 1] = True  # a new recording may start anywhere
    if not step_ok.all():
        i = int(np.argmin(step_ok)) + 1
        raise DataError(f"sequence jumps from {sequence[i - 1]} to {sequence[i]} within user {user[i]} "
                        f"recording {session[i]} (samples missing or out of order)",
                        file=file, column="sequence", row=csv_row(i))

    recordings = pd.DataFrame({"recording": [f"u{u}_r{s}" for u, s in zip(user[starts], session[starts])],
                               "subject": user[starts].astype(str), "session": session[starts].astype(np.int64)})
    if not keep_unlabelled:
        signals, codes, starts, recordings = _labelled_segments(signals, codes, starts, recordings)
        if len(signals) == 0:
            raise DataError("no labelled samples left with keep_unlabelled=False", file=file)
    recordings.insert(2, "start", starts.astype(np.int64))
    recordings.insert(3, "length", np.diff(np.r_[starts, len(signals)]).astype(np.int64))
    subjects = pd.DataFrame({"subject": sorted(set(recordings["subject"]), key=int)})
    units = {c: ("g" if c.startswith("acc") else "rad/s") for c in CHANNELS}
    progress(1.0, "loaded")
    return SensorDataset(
        name=name, sampling_rate=SAMPLING_RATE, channels=CHANNELS, signals=signals, labels=codes,
        activities=activities, recordings=recordings, subjects=subjects,
        channel_groups={"acc": CHANNELS[:3], "gyro": CHANNELS[3:]}, units=units, source=f"hapt:{file}",
    )


def _labelled_segments(
    signals: np.ndarray, codes: np.ndarray, starts: np.ndarray, recordings: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Drop unlabelled samples; every contiguous labelled run becomes a recording ``<id>_seg<k>``.

    ``k`` counts the runs within the original recording from 1.
    """
    keep = codes != UNLABELLED
    recording_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(codes)]))
    run_id = np.cumsum(np.r_[True, (recording_of[1:] != recording_of[:-1]) | (keep[1:] != keep[:-1])])
    signals, codes, run_id, recording_of = signals[keep], codes[keep], run_id[keep], recording_of[keep]
    seg_starts = run_starts(run_id)
    parent = recording_of[seg_starts]
    ordinal = np.arange(len(seg_starts)) - np.searchsorted(parent, parent) + 1
    segments = recordings.iloc[parent].reset_index(drop=True)
    segments["recording"] = [f"{r}_seg{k}" for r, k in zip(segments["recording"], ordinal)]
    segments["segment"] = ordinal
    return signals, codes, seg_starts, segments
