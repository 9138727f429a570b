"""Deterministic synthetic IMU + skeleton dataset for demos and tests.

The generator plants the signatures that make real movement data sensitive: step frequency
falls with height and age, amplitude grows with weight and differs by gender, and each person
has a persistent gait "fingerprint" (harmonic mix, asymmetry, sensor tilt, tremor). Activity
recognition and re-identification are therefore both well above chance, and soft-biometric
attributes are learnable — exactly what anonymisers and audits must be judged on.

It writes the generic tabular import format (``mapping.toml`` + CSV), so the sample data also
exercises the path users take with their own files. Output is byte-for-byte reproducible from
the seed: values are rounded before formatting and gzip is written with a fixed timestamp.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from anonaudit.files import atomic_write

ACTIVITIES = ("walking", "jogging", "stairs", "sitting", "standing")
IMU_CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
JOINTS = ("head", "wrist_left", "wrist_right", "ankle_left", "ankle_right")
SKELETON_CHANNELS = tuple(f"{j}_{a}" for j in JOINTS for a in "xyz")
CHANNEL_GROUPS = {
    "imu_acc": ["acc_x", "acc_y", "acc_z"],
    "imu_gyro": ["gyro_x", "gyro_y", "gyro_z"],
    "head": [f"head_{a}" for a in "xyz"],
    "left_arm": [f"wrist_left_{a}" for a in "xyz"],
    "right_arm": [f"wrist_right_{a}" for a in "xyz"],
    "left_leg": [f"ankle_left_{a}" for a in "xyz"],
    "right_leg": [f"ankle_right_{a}" for a in "xyz"],
}
UNITS = {**{c: "g" for c in IMU_CHANNELS[:3]}, **{c: "deg/s" for c in IMU_CHANNELS[3:]},
         **{c: "m" for c in SKELETON_CHANNELS}}

# activity: (step frequency Hz, dynamic amplitude g, trunk pitch deg, harmonic boost)
_ACTIVITY_MODEL = {
    "walking": (1.8, 0.25, 0.0, 1.0),
    "jogging": (2.7, 0.80, 8.0, 0.6),
    "stairs": (1.5, 0.35, 12.0, 1.6),
    "sitting": (0.0, 0.0, 70.0, 0.0),
    "standing": (0.0, 0.0, 2.0, 0.0),
}


@dataclass(frozen=True)
class SampleSpec:
    """Size of the generated dataset (defaults give ~100k samples, a few MB compressed)."""

    n_subjects: int = 16
    n_trials: int = 3
    duration_s: float = 8.0
    sampling_rate: float = 50.0
    seed: int = 7


def _subjects(spec: SampleSpec, rng: np.random.Generator) -> pd.DataFrame:
    n = spec.n_subjects
    elderly = np.arange(n) % 4 >= 2  # balanced age group × gender cells
    gender = np.where(np.arange(n) % 2 == 0, "F", "M")
    age = np.where(elderly, rng.integers(60, 81, n), rng.integers(20, 36, n))
    height = np.where(gender == "F", 163.0, 177.0) - 3.0 * elderly + rng.normal(0, 6, n)
    bmi = np.where(elderly, 26.0, 23.0) + rng.normal(0, 2.5, n)
    weight = bmi * (height / 100) ** 2
    return pd.DataFrame({
        "subject": [f"P{i + 1:02d}" for i in range(n)],
        "age": age.astype(int),
        "age_group": np.where(elderly, "elderly", "young"),
        "gender": gender,
        "height_cm": np.round(height, 1),
        "weight_kg": np.round(weight, 1),
    })


def _rotation(pitch_deg: float, roll_deg: float) -> np.ndarray:
    p, r = np.deg2rad([pitch_deg, roll_deg])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    return ry @ rx


def _recording(
    person: pd.Series, trait: dict[str, float], activity: str, t: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One recording: (len(t), 21) array of IMU (acc g, gyro deg/s) and joint positions (m)."""
    f0, a0, pitch, boost = _ACTIVITY_MODEL[activity]
    h = person["height_cm"] / 100.0
    f = f0 * trait["cadence"] * np.exp(rng.normal(0, 0.03))
    amp = a0 * trait["amplitude"] * np.exp(rng.normal(0, 0.05))
    phase = rng.uniform(0, 2 * np.pi)
    w = 2 * np.pi * f * t + phase
    # dynamic trunk acceleration with the person's harmonic fingerprint
    vertical = amp * (np.sin(w) + boost * trait["h2"] * np.sin(2 * w + trait["p2"])
                      + boost * trait["h3"] * np.sin(3 * w + trait["p3"]))
    forward = 0.5 * amp * np.sin(w + np.pi / 2 + trait["p2"] / 3)
    lateral = amp * trait["asym"] * np.sin(w / 2)
    tremor = trait["tremor"] * np.sin(2 * np.pi * trait["tremor_f"] * t + rng.uniform(0, 2 * np.pi))
    sway = 0.01 * np.sin(2 * np.pi * trait["sway_f"] * t + rng.uniform(0, 2 * np.pi))
    rot = _rotation(pitch + trait["pitch"] + rng.normal(0, 2), trait["roll"] + rng.normal(0, 2))
    gravity = rot @ np.array([0.0, 0.0, 1.0])
    acc = gravity + np.stack([forward + sway, lateral + tremor, vertical], axis=1) @ rot.T
    gyro = np.stack([
        40 * amp * trait["asym"] * np.cos(w / 2),
        60 * amp * np.cos(w + trait["p3"]),
        25 * amp * np.sin(w / 2 + trait["p2"]),
    ], axis=1) + 50 * np.stack([sway, tremor, sway], axis=1)
    # skeleton (body-centred, metres): proportions scale with height
    stride = (0.0 if f0 == 0 else 0.22 * h * (1.3 if activity == "jogging" else 1.0)) * trait["stride"]
    gait = w / 2  # one stride = two steps
    seated = activity == "sitting"
    head = np.stack([np.full_like(t, 0.05 * np.sin(np.deg2rad(pitch))), sway,
                     (0.30 if seated else 0.48) * h + 0.02 * amp * np.sin(w)], axis=1)
    wrists, ankles = [], []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        swing = sign * 0.6 * stride * np.sin(gait + trait["arm_phase"])
        wrists.append(np.stack([swing, np.full_like(t, sign * 0.19 * h), np.full_like(t, -0.02 * h)], axis=1))
        step = -sign * stride * np.sin(gait)
        lift = np.maximum(0.0, -sign * np.cos(gait)) * 0.3 * stride
        ankle_x = step + (0.42 * h if seated else 0.0)
        ankle_z = lift + (-0.27 * h if seated else -0.48 * h)
        ankles.append(np.stack([ankle_x, np.full_like(t, sign * 0.09 * h), ankle_z], axis=1))
    # per-trial pose-estimation calibration error, so bone lengths are informative but not exact
    skeleton = np.concatenate([head, *wrists, *ankles], axis=1) + rng.normal(0, 0.015, 3 * len(JOINTS))
    noise = np.concatenate([rng.normal(0, 0.01, acc.shape), rng.normal(0, 1.0, gyro.shape),
                            rng.normal(0, 0.004, skeleton.shape)], axis=1)
    return np.concatenate([acc, gyro, skeleton], axis=1) + noise


def _traits(person: pd.Series, rng: np.random.Generator) -> dict[str, float]:
    """Persistent per-person characteristics (the identity signature)."""
    elderly = person["age_group"] == "elderly"
    male = person["gender"] == "M"
    return {
        "cadence": (172.0 / person["height_cm"]) ** 0.5 * (0.88 if elderly else 1.0) * np.exp(rng.normal(0, 0.05)),
        "amplitude": (person["weight_kg"] / 65.0) ** 0.25 * (1.3 if male else 1.0) * (0.8 if elderly else 1.0)
        * np.exp(rng.normal(0, 0.08)),
        "h2": rng.uniform(0.15, 0.6), "h3": rng.uniform(0.05, 0.3),
        "p2": rng.uniform(0, 2 * np.pi), "p3": rng.uniform(0, 2 * np.pi),
        "asym": rng.uniform(-0.3, 0.3), "stride": np.exp(rng.normal(0, 0.08)),
        "arm_phase": rng.normal(0, 0.3),
        "pitch": rng.normal(0, 6), "roll": rng.normal(0, 6),
        "tremor": (0.02 if elderly else 0.004) * rng.uniform(0.5, 1.5), "tremor_f": rng.uniform(4.0, 6.0),
        "sway_f": rng.uniform(0.2, 0.5),
    }


def generate_frames(spec: SampleSpec = SampleSpec()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (samples, subjects) tables of the synthetic dataset."""
    rng = np.random.default_rng(spec.seed)
    subjects = _subjects(spec, rng)
    n = int(round(spec.duration_s * spec.sampling_rate))
    t = np.arange(n) / spec.sampling_rate
    channels = [*IMU_CHANNELS, *SKELETON_CHANNELS]
    frames = []
    for _, person in subjects.iterrows():
        trait = _traits(person, rng)
        for activity in ACTIVITIES:
            for trial in range(1, spec.n_trials + 1):
                values = _recording(person, trait, activity, t, rng)
                frame = pd.DataFrame(values, columns=channels)
                frame.insert(0, "time_s", np.round(t, 3))
                frame.insert(0, "trial", trial)
                frame.insert(0, "activity", activity)
                frame.insert(0, "recording", f"{person['subject']}_{activity}_t{trial}")
                frame.insert(0, "subject", person["subject"])
                frames.append(frame)
    samples = pd.concat(frames, ignore_index=True)
    decimals = {c: (2 if c.startswith("gyro") else 4) for c in channels}
    return samples.round(decimals), subjects


def mapping_toml(spec: SampleSpec) -> str:
    """The tabular-import mapping that describes the generated files."""
    groups = "\n".join(f'{k} = [{", ".join(repr(c).replace(chr(39), chr(34)) for c in v)}]'
                       for k, v in CHANNEL_GROUPS.items())
    units = "\n".join(f'{k} = "{v}"' for k, v in UNITS.items())
    channels = ", ".join(f'"{c}"' for c in (*IMU_CHANNELS, *SKELETON_CHANNELS))
    return f"""# anonaudit tabular import mapping for the synthetic sample dataset
[dataset]
name = "sample"
sampling_rate = {spec.sampling_rate}
samples = "samples.csv.gz"
subjects = "subjects.csv"

[columns]
subject = "subject"
recording = "recording"
activity = "activity"
time = "time_s"
channels = [{channels}]

[channel_groups]
{groups}

[units]
{units}
"""


def write_sample_data(out_dir: str | Path, spec: SampleSpec = SampleSpec()) -> dict[str, str]:
    """Write ``samples.csv.gz``, ``subjects.csv`` and ``mapping.toml``; return their sha256."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples, subjects = generate_frames(spec)
    files = {
        "samples.csv.gz": gzip.compress(samples.to_csv(index=False, lineterminator="\n").encode(), 9, mtime=0),
        "subjects.csv": subjects.to_csv(index=False, lineterminator="\n").encode(),
        "mapping.toml": mapping_toml(spec).encode(),
    }
    digests = {}
    for name, payload in files.items():
        atomic_write(out / name, lambda tmp, b=payload: tmp.write_bytes(b))
        digests[name] = hashlib.sha256(payload).hexdigest()
    return digests
