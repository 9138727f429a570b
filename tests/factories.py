"""Tiny in-memory datasets for tests (no files, no real data)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from anonaudit.data.dataset import SensorDataset, concat_recordings


def tiny_dataset(
    lengths: list[int] | None = None,
    subjects: list[str] | None = None,
    labels: list[np.ndarray] | None = None,
    n_channels: int = 2,
    rate: float = 10.0,
) -> SensorDataset:
    """Recordings whose channel 0 holds the global sample index (so windows are easy to check)."""
    lengths = lengths or [20, 15]
    subjects = subjects or [f"s{i % 2}" for i in range(len(lengths))]
    labels = labels or [np.full(n, i % 2) for i, n in enumerate(lengths)]
    offset = 0
    parts = []
    for n, lab in zip(lengths, labels):
        sig = np.zeros((n, n_channels), np.float32)
        sig[:, 0] = np.arange(offset, offset + n)
        sig[:, 1:] = np.random.default_rng(n).normal(size=(n, n_channels - 1))
        parts.append((sig, np.asarray(lab)))
        offset += n
    signals, lab, starts, lens = concat_recordings(parts)
    recs = pd.DataFrame({"recording": [f"r{i}" for i in range(len(lengths))], "subject": subjects,
                         "start": starts, "length": lens, "trial": np.arange(len(lengths))})
    return SensorDataset(
        name="tiny", sampling_rate=rate, channels=[f"c{j}" for j in range(n_channels)],
        signals=signals, labels=lab, activities=["a", "b", "c"], recordings=recs,
        subjects=pd.DataFrame({"subject": sorted(set(subjects)), "age": np.arange(len(set(subjects))) + 20}),
    )


IMU = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]


def import_imu_sample(folder, n_subjects: int, n_trials: int, name: str = "s") -> str:
    """The synthetic sample with one IMU only (keeps networks small), imported into the store as ``name``."""
    from anonaudit import api
    from anonaudit.data.synthetic import SampleSpec, write_sample_data

    write_sample_data(folder / name, SampleSpec(n_subjects=n_subjects, n_trials=n_trials, duration_s=4.0))
    mapping = folder / name / "mapping.toml"
    lines = [line for line in mapping.read_text().splitlines() if not line.startswith(("head", "left_", "right_", "wrist", "ankle"))]
    lines = [f"channels = {IMU!r}".replace("'", '"') if line.startswith("channels =") else line for line in lines]
    mapping.write_text("\n".join(lines) + "\n")
    api.import_dataset(mapping, name=name)
    return name
