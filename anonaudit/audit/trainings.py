"""One audit training as an executor task: train a network on a draw's subjects, predict the rest.

The parent cuts windows once and saves them as ``.npy`` files; every task memory-maps them, so a
task's arguments stay a few strings and numbers (cheap to ship to a Dask worker on a shared
filesystem) and two local workers share the page cache instead of holding copies. Train and
validation come from the training subjects' own recordings (first 70 % / next 15 % of every
recording, as the paper's code does); the test set is every recording of every other subject.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anonaudit.data.dataset import SensorDataset
from anonaudit.data.windows import Windows, make_windows
from anonaudit.errors import DataError
from anonaudit.files import atomic_write

SPLITS = {"train": (0.0, 0.7), "val": (0.7, 0.85), "test": (0.0, 1.0)}
META = "meta.json"


@dataclass(frozen=True)
class TrainSettings:
    """What every training of an audit shares (the paper's RMSprop setting; epochs shortened for CPUs)."""

    epochs: int = 15
    batch_size: int = 50
    lr: float = 1e-3
    patience: int = 5


def _sample_per_subject(w: Windows, cap: int | None, rng: np.random.Generator) -> Windows:
    """At most ``cap`` windows per subject (seeded), so test cost does not grow with recording length."""
    if cap is None:
        return w
    keep = np.zeros(len(w), dtype=bool)
    for s in np.unique(w.subject):
        idx = np.flatnonzero(w.subject == s)
        keep[rng.choice(idx, size=min(cap, len(idx)), replace=False)] = True
    return w.subset(keep)


def prepare_windows(ds: SensorDataset, folder: Path, *, window_s: float, stride_s: float,
                    test_stride_s: float | None = None, max_windows_per_subject: int | None = None,
                    seed: int = 0) -> Path:
    """Cut train/val/test windows of every subject once and save them for the tasks to memory-map.

    ``max_windows_per_subject`` caps every split per subject (seeded): equal weight per subject and
    a bounded cost on long recordings.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, bounds in SPLITS.items():
        stride = (test_stride_s or window_s) if split == "test" else stride_s
        w = _sample_per_subject(make_windows(ds, window_s, stride, bounds=bounds), max_windows_per_subject, rng)
        if len(w) == 0:
            share = bounds[1] - bounds[0]
            longest = float(ds.recordings["length"].max()) / ds.sampling_rate
            raise DataError(
                f"dataset {ds.name!r}: no {split} windows of {window_s:g} s: the {split} part is the "
                f"{100 * bounds[0]:.0f}–{100 * bounds[1]:.0f} % stretch of each recording, so a recording needs at "
                f"least {window_s / share:.1f} s, and the longest here is {longest:.1f} s; set the window length "
                f"(`--window-s`, parameter window_s) to at most {share * longest:.2f} s")
        for name, arr in (("X", w.X), ("y", w.y.astype(np.int16)), ("subject", w.subject.astype(np.int32))):
            atomic_write(folder / f"{split}_{name}.npy", lambda tmp, a=arr: np.save(tmp.open("wb"), a))
        counts[split] = len(w)
    meta = {"subjects": list(ds.subject_ids), "activities": list(ds.activities), "windows": counts,
            "window_length": int(w.X.shape[1]), "n_channels": int(w.X.shape[2])}
    atomic_write(folder / META, lambda tmp: tmp.write_text(json.dumps(meta)))
    return folder


def _load(folder: Path, split: str, subjects: np.ndarray, inside: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    subject = np.load(folder / f"{split}_subject.npy")
    mask = np.isin(subject, subjects) == inside
    X = np.load(folder / f"{split}_X.npy", mmap_mode="r")
    return np.asarray(X[mask]), np.load(folder / f"{split}_y.npy")[mask], subject[mask]


def train_one(cache: str, train_subjects: Sequence[str], network: str, seed: int, settings: dict[str, Any],
              key: str = "") -> dict[str, Any]:
    """Train ``network`` on the windows of ``train_subjects``; predict every other subject's windows.

    Returns the test labels, predictions and subject codes (int arrays) and the training time.
    Inputs are z-scored with the training windows' channel statistics only.
    """
    import torch

    from anonaudit.models.classifiers import build_classifier
    from anonaudit.models.training import TrainConfig, fit_classifier, predict_logits

    folder = Path(cache)
    meta = json.loads((folder / META).read_text())
    codes = np.array([meta["subjects"].index(s) for s in train_subjects])
    X_tr, y_tr, _ = _load(folder, "train", codes, True)
    X_va, y_va, _ = _load(folder, "val", codes, True)
    X_te, y_te, s_te = _load(folder, "test", codes, False)
    if len(X_tr) == 0:
        raise DataError(f"training set {key or list(train_subjects)} has no windows")
    mean = X_tr.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)
    std = X_tr.std(axis=(0, 1), dtype=np.float64).astype(np.float32) + 1e-6
    X_tr, X_va, X_te = ((a - mean) / std for a in (X_tr, X_va, X_te))
    torch.manual_seed(seed)
    model = build_classifier(network, meta["n_channels"], meta["window_length"], len(meta["activities"]))
    cfg = TrainConfig(**asdict(TrainSettings(**settings)), seed=seed)
    started = time.perf_counter()
    fit_classifier(model, X_tr, y_tr, X_va, y_va, cfg)
    pred = predict_logits(model, X_te).argmax(1).numpy().astype(np.int16)
    return {"key": key, "y_true": y_te, "y_pred": pred, "subject": s_te, "seconds": time.perf_counter() - started,
            "n_train_windows": int(len(X_tr))}
