"""Resampling a dataset to a common rate (polyphase filtering, per recording)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
from scipy.signal import resample_poly

from anonaudit.data.dataset import SensorDataset, concat_recordings, sampling_rate_problem
from anonaudit.errors import ParameterError


def resample(ds: SensorDataset, rate: float) -> SensorDataset:
    """Return ``ds`` resampled to ``rate`` Hz.

    Signals go through an anti-aliasing polyphase filter per recording (so filters never
    smear across recording boundaries); labels take the value of the nearest earlier sample.
    """
    problem = sampling_rate_problem(rate)
    if problem is not None:
        raise ParameterError("rate", problem)
    if rate == ds.sampling_rate:
        return ds
    ratio = Fraction(rate / ds.sampling_rate).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    parts = []
    for sl in ds.recording_slices():
        x = ds.signals[sl]
        y = resample_poly(x, up, down, axis=0, padtype="line").astype(np.float32)
        src = np.minimum((np.arange(len(y)) * down) // up, len(x) - 1)
        parts.append((y, ds.labels[sl][src]))
    signals, labels, starts, lengths = concat_recordings(parts)
    recordings = ds.recordings.copy()
    recordings["start"], recordings["length"] = starts, lengths
    return SensorDataset(
        name=ds.name,
        sampling_rate=ds.sampling_rate * up / down,
        channels=ds.channels,
        signals=signals,
        labels=labels,
        activities=ds.activities,
        recordings=pd.DataFrame(recordings),
        subjects=ds.subjects,
        channel_groups=ds.channel_groups,
        units=ds.units,
        source=ds.source,
    )
