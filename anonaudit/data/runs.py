"""Activity runs as recordings: each stretch of one recording with one activity label on its own.

A release of long sessions that hold many activities re-links by the timing of their label
changes, however much their lengths are rounded: each session's sequence of run durations is
unique (UCI HAPT: 5-minute sessions of about 24 runs). Published run by run, with every run's
length rounded, what is left to link is one duration per run, shared by many people's runs of
the same activity. Unlabelled stretches between runs are left out: nothing says what they hold.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from anonaudit.data.dataset import SensorDataset
from anonaudit.errors import DataError

SOURCE_COLUMN = "source_recording"  # the recording a run was cut from (private: a release drops it)


def split_runs(ds: SensorDataset) -> SensorDataset:
    """``ds`` with every labelled run of every recording as a recording of its own, in recording order.

    A run's id is its source recording's id and its index in that recording (``"rec:3"``); the
    source id is kept in :data:`SOURCE_COLUMN`, with every other column of the source.
    """
    rec = np.repeat(np.arange(len(ds.recordings)), ds.recordings["length"].to_numpy(np.int64))
    labels = ds.labels.astype(np.int64)
    new = np.r_[True, (np.diff(rec) != 0) | (np.diff(labels) != 0)]
    first = np.flatnonzero(new)
    length = np.diff(np.r_[first, len(labels)])
    keep = labels[first] >= 0
    first, length = first[keep], length[keep]
    if not len(first):
        raise DataError(f"dataset {ds.name!r} has no labelled samples, so it has no activity runs to publish")
    source = rec[first]
    index = np.arange(len(source)) - np.searchsorted(source, source)  # the run's number in its recording
    table = ds.recordings.iloc[source].reset_index(drop=True)
    ids = table["recording"].astype(str)
    samples = np.concatenate([np.arange(f, f + n) for f, n in zip(first, length)])
    recordings = table.assign(**{SOURCE_COLUMN: ids}, recording=ids + ":" + index.astype(str),
                              start=np.r_[0, np.cumsum(length)[:-1]], length=length)
    return replace(ds, signals=ds.signals[samples], labels=ds.labels[samples], recordings=recordings)


def run_assignment(runs: SensorDataset, assignment: dict[str, str]) -> dict[str, str]:
    """A recording split carried over to the runs cut from its recordings (a session stays on one side)."""
    return dict(zip(runs.recordings["recording"], runs.recordings[SOURCE_COLUMN].map(assignment)))
