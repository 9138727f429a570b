"""UTD-MHAD (Chen et al., ICIP 2015): the same 8 people seen by a wearable IMU and a Kinect.

Layout: ``Inertial/aA_sS_tT_inertial.mat`` (``d_iner``, n×6: acc x,y,z in g, gyro x,y,z in
deg/s, 50 Hz) and ``Skeleton/aA_sS_tT_skeleton.mat`` (``d_skel``, 20 joints × 3 × n frames,
metres, 30 Hz). One modality per dataset because the two have different rates and lengths.

The joint order is the dataset's own (``Skeleton/Skeleton_joint_order.txt``: head,
shoulder_center, spine, hip_center, left arm, right arm, left leg, right leg), which differs
from the Kinect SDK enumeration order (hip_center first); the data confirm it (row 0 is the
highest joint). Subjects are "1".."8"; the dataset publishes no per-subject demographics (only
"4 females and 4 males"), so the subjects table has no attributes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from anonaudit.data.dataset import SensorDataset, concat_recordings
from anonaudit.errors import DataError, ParameterError
from anonaudit.progress import ProgressFn, null_progress

ACTIONS = (
    "right arm swipe to the left", "right arm swipe to the right", "right hand wave",
    "two hand front clap", "right arm throw", "cross arms in the chest", "basketball shoot",
    "right hand draw x", "right hand draw circle (clockwise)",
    "right hand draw circle (counter clockwise)", "draw triangle", "bowling", "front boxing",
    "baseball swing from right", "tennis right hand forehand swing", "arm curl", "tennis serve",
    "two hand push", "right hand knock on door", "right hand catch an object",
    "right hand pick up and throw", "jogging in place", "walking in place", "sit to stand",
    "stand to sit", "forward lunge", "squat",
)
JOINTS = (
    "head", "shoulder_center", "spine", "hip_center",
    "shoulder_left", "elbow_left", "wrist_left", "hand_left",
    "shoulder_right", "elbow_right", "wrist_right", "hand_right",
    "hip_left", "knee_left", "ankle_left", "foot_left",
    "hip_right", "knee_right", "ankle_right", "foot_right",
)
LIMBS = {
    "head": ("head",),
    "torso": ("shoulder_center", "spine", "hip_center"),
    "left_arm": ("shoulder_left", "elbow_left", "wrist_left", "hand_left"),
    "right_arm": ("shoulder_right", "elbow_right", "wrist_right", "hand_right"),
    "left_leg": ("hip_left", "knee_left", "ankle_left", "foot_left"),
    "right_leg": ("hip_right", "knee_right", "ankle_right", "foot_right"),
}
INERTIAL_CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
SKELETON_CHANNELS = [f"{j}_{a}" for j in JOINTS for a in "xyz"]
_MODALITIES = {
    # modality: (folder, variable, sampling rate)
    "inertial": ("Inertial", "d_iner", 50.0),
    "skeleton": ("Skeleton", "d_skel", 30.0),
}
FILE_PATTERN = re.compile(r"a(\d+)_s(\d+)_t(\d+)_(inertial|skeleton)\.mat")


def load_utd_mhad(
    path: str | Path,
    *,
    name: str | None = None,
    modality: str = "inertial",
    progress: ProgressFn = null_progress,
) -> SensorDataset:
    """Load one modality of UTD-MHAD from the folder holding ``Inertial/`` and ``Skeleton/``.

    ``name`` defaults to ``utd_mhad_<modality>`` so both modalities can be registered side by side.
    """
    if modality not in _MODALITIES:
        raise ParameterError("modality", f"unknown {modality!r}; choose one of {list(_MODALITIES)}")
    folder, variable, rate = _MODALITIES[modality]
    root = Path(path)
    files = []
    for file in sorted((root / folder).glob("*.mat")):
        match = FILE_PATTERN.fullmatch(file.name)
        if match and match.group(4) == modality:
            files.append((tuple(int(g) for g in match.groups()[:3]), file))
    if not files:
        raise DataError(f"no {folder}/a*_s*_t*_{modality}.mat files", file=root)
    files.sort()  # by (action, subject, trial) numerically, not a10 before a2

    parts, rows = [], []
    for k, ((action, subject, trial), file) in enumerate(files):
        if not 1 <= action <= len(ACTIONS):
            raise DataError(f"action number {action} outside 1..{len(ACTIONS)}", file=file)
        values = _read_matrix(file, variable, modality)
        parts.append((values, np.full(len(values), action - 1, np.int16)))
        rows.append((f"a{action}_s{subject}_t{trial}", str(subject), action, trial))
        progress((k + 1) / len(files), f"read {file.name}")
    signals, labels, starts, lengths = concat_recordings(parts)
    recordings = pd.DataFrame(rows, columns=["recording", "subject", "action", "trial"])
    recordings.insert(2, "start", starts)
    recordings.insert(3, "length", lengths)
    subjects = pd.DataFrame({"subject": sorted(set(recordings["subject"]), key=int)})
    if modality == "inertial":
        channels = INERTIAL_CHANNELS
        groups = {"acc": channels[:3], "gyro": channels[3:]}
        units = {c: ("g" if c.startswith("acc") else "deg/s") for c in channels}
    else:
        channels = SKELETON_CHANNELS
        groups = {limb: [f"{j}_{a}" for j in joints for a in "xyz"] for limb, joints in LIMBS.items()}
        units = {c: "m" for c in channels}
    return SensorDataset(
        name=name or f"utd_mhad_{modality}", sampling_rate=rate, channels=channels, signals=signals,
        labels=labels, activities=list(ACTIONS), recordings=recordings, subjects=subjects,
        channel_groups=groups, units=units, source=f"utd_mhad:{root}",
    )


def _read_matrix(file: Path, variable: str, modality: str) -> np.ndarray:
    """One recording as (n, channels) float32; skeleton frames become rows of joint coordinates."""
    try:
        content = scipy.io.loadmat(file, variable_names=[variable])
    except (OSError, ValueError, NotImplementedError) as exc:  # NotImplementedError: MATLAB v7.3
        raise DataError(f"cannot read MATLAB file: {exc}", file=file) from exc
    if variable not in content:
        raise DataError(f"MATLAB variable {variable!r} missing", file=file)
    data = np.asarray(content[variable], dtype=np.float32)
    if modality == "inertial":
        if data.ndim != 2 or data.shape[1] != len(INERTIAL_CHANNELS):
            raise DataError(f"{variable} has shape {data.shape}, expected (n, 6)", file=file)
    else:
        if data.ndim != 3 or data.shape[:2] != (len(JOINTS), 3):
            raise DataError(f"{variable} has shape {data.shape}, expected (20, 3, n)", file=file)
        data = data.reshape(len(JOINTS) * 3, -1).T  # (frames, joint-major x,y,z)
    if len(data) == 0:
        raise DataError("recording has no samples", file=file)
    bad = ~np.isfinite(data)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        channels = INERTIAL_CHANNELS if modality == "inertial" else SKELETON_CHANNELS
        raise DataError("non-finite value", file=file, column=channels[col], row=int(row) + 1)
    return data
