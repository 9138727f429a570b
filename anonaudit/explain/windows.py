"""Sensor windows as a table of named features, so the platform's activity and re-identification
models can be explained by R-LIME, LIME and Anchor.

The table keeps the features a person can read in a rule and that the attackers rely on: for each
x/y/z triad (accelerometer, gyroscope, joint) the statistics of its orientation-free magnitude and
the direction of its mean (posture, gravity); channels outside any triad contribute their own
statistics. Rows are the dataset's windows in order, with the activity or subject as target.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from anonaudit.data.dataset import SensorDataset
from anonaudit.data.windows import make_windows
from anonaudit.errors import ParameterError
from anonaudit.evaluate.features import feature_names, triad_stem, window_features, xyz_triads
from anonaudit.explain.tabular import TabularData

TARGETS = ("activity", "subject")
READABLE_STATS = ("mean", "std", "range", "p10", "p90", "mad_diff")


def readable_columns(channels: list[str]) -> list[str]:
    """Names of the features kept for explanations (a subset of :func:`feature_names`)."""
    triads = xyz_triads(channels)
    in_triad = {i for t in triads for i in t}
    stems = [triad_stem(channels, t) for t in triads]
    signals = [f"{s}_norm" for s in stems] + [c for i, c in enumerate(channels) if i not in in_triad]
    wanted = {f"{s}_{stat}" for s in signals for stat in READABLE_STATS}
    wanted |= {f"{s}_dir_{axis}" for s in stems for axis in "xyz"}
    return [n for n in feature_names(channels) if n in wanted]


def window_table(ds: SensorDataset, window_s: float, stride_s: float, target: str = "activity"
                 ) -> tuple[TabularData, pd.DataFrame]:
    """Feature table of every labelled window and, per row, where the window comes from."""
    if target not in TARGETS:
        raise ParameterError("target", f"for sensor windows must be one of {TARGETS}, got {target!r}")
    windows = make_windows(ds, window_s, stride_s)
    labelled = windows.y >= 0
    windows = windows.subset(labelled)
    if len(windows) == 0:
        raise ParameterError("window_s", f"{ds.name} has no labelled window of {window_s} s")
    columns = readable_columns(list(ds.channels))
    position = {name: i for i, name in enumerate(feature_names(list(ds.channels)))}
    index = [position[c] for c in columns]
    X = pd.DataFrame(window_features(windows.X, list(ds.channels))[:, index].astype(float), columns=columns)
    labels = windows.activities if target == "activity" else windows.subjects
    codes = windows.y if target == "activity" else windows.subject
    y = np.asarray(labels, dtype=object)[codes].astype(str)
    origin = pd.DataFrame({"subject": np.asarray(windows.subjects, dtype=object)[windows.subject],
                           "recording": ds.recordings["recording"].to_numpy()[windows.recording],
                           "start_s": windows.start / ds.sampling_rate,
                           "activity": np.asarray(windows.activities, dtype=object)[windows.y]})
    return TabularData(X, y, f"{ds.name} windows ({target})"), origin
