"""Training data for the DP VAEs and the splits of a membership audit.

``digits`` (scikit-learn's bundled 8×8 digits, for fast tests), ``mnist`` (the shared folder:
``mnist_5k.csv.gz`` and the 10k test set) and any imported sensor dataset (windows, channels
first, scaled to [−1, 1] per channel with μ ± 2σ). Every input is in [−1, 1] because both VAEs
end in tanh.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from anonaudit.errors import DataError, ParameterError

MNIST_DEFAULT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"


@dataclass
class PrivateData:
    """``X`` (N, C, *size) float32 in [−1, 1]; ``y`` class labels (digit or activity) for the utility
    classifiers; ``unit`` the privacy unit of each example (subject for sensor data, else the example)."""

    name: str
    X: np.ndarray
    y: np.ndarray
    unit: np.ndarray
    kind: str  # "image" or "sensor"

    def subset(self, index: np.ndarray) -> "PrivateData":
        return replace(self, X=self.X[index], y=self.y[index], unit=self.unit[index])

    def __len__(self) -> int:
        return len(self.X)


def _digits() -> PrivateData:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images[:, None] / 8.0 - 1.0).astype(np.float32)
    return PrivateData("digits", X, d.target.astype(np.int64), np.arange(len(X)), "image")


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def _mnist(folder: str | Path | None) -> PrivateData:
    root = Path(folder) if folder else MNIST_DEFAULT
    files = [root / "mnist_5k.csv.gz", root / "t10k-images-idx3-ubyte.gz", root / "t10k-labels-idx1-ubyte.gz"]
    for f in files:
        if not f.is_file():
            raise DataError("MNIST file not found (give the folder with --path)", file=f)
    train = np.loadtxt(files[0], delimiter=",", dtype=np.uint8)
    if train.ndim != 2 or train.shape[1] != 785:
        raise DataError(f"expected 784 pixel columns and a label, got {train.shape[-1]} columns", file=files[0])
    images = np.concatenate([train[:, :784], _idx(files[1], 16).reshape(-1, 784)])
    labels = np.concatenate([train[:, 784], _idx(files[2], 8)]).astype(np.int64)
    if len(images) != len(labels):
        raise DataError("images and labels differ in number", file=files[1])
    X = (images.reshape(-1, 1, 28, 28) / 127.5 - 1.0).astype(np.float32)
    return PrivateData("mnist", X, labels, np.arange(len(X)), "image")


def _sensor(name: str, window_s: float, stride_s: float) -> PrivateData:
    from anonaudit.data.normalise import SigmaRange
    from anonaudit.data.windows import make_windows
    from anonaudit.jobs.datasets import open_dataset

    w = make_windows(open_dataset(name), window_s, stride_s)
    if len(w) == 0:
        raise DataError(f"dataset {name!r} has no labelled windows of {window_s} s")
    X = SigmaRange(2.0).fit_transform(w.X) * 2 - 1  # (n, L, C) → [−1, 1] per channel
    return PrivateData(name, np.ascontiguousarray(X.transpose(0, 2, 1), dtype=np.float32), w.y, w.subject, "sensor")


def load(data: str, path: str | None = None, window_s: float = 2.56, stride_s: float = 1.28) -> PrivateData:
    """``digits``, ``mnist`` (``path``: its folder) or the name of an imported sensor dataset."""
    if data == "digits":
        return _digits()
    if data == "mnist":
        return _mnist(path)
    return _sensor(data, window_s, stride_s)


def fit_size(d: PrivateData, multiple: int, size: int | None = None) -> PrivateData:
    """Pad images with background (−1) to ``size`` (default: the next multiple), crop windows to a
    multiple; the encoder halves the size once per stage. Larger images than ``size`` are an error."""
    shape = d.X.shape[2:]
    if d.kind == "sensor":
        L = shape[0] - shape[0] % multiple
        if L < multiple:
            raise ParameterError("window_s", f"windows of {shape[0]} samples are shorter than {multiple} (2^stages)")
        return replace(d, X=np.ascontiguousarray(d.X[..., :L]))
    target = size or -(-max(shape) // multiple) * multiple
    if max(shape) > target:
        raise ParameterError("image_size", f"images of {shape[0]}x{shape[1]} do not fit in {target}x{target}")
    pads = [(0, 0), (0, 0)] + [((target - s) // 2, target - s - (target - s) // 2) for s in shape]
    return replace(d, X=np.pad(d.X, pads, constant_values=-1.0))


@dataclass
class AuditSplit:
    """Disjoint parts: ``members`` train the model; ``holdout`` are the audit's non-members and the
    test data of the utility metrics; ``population`` trains the reference model of the calibrated
    attack and the utility classifiers. Sensor data are split by subject."""

    members: PrivateData
    population: PrivateData
    holdout: PrivateData


def audit_split(d: PrivateData, n_train: int | None, seed: int) -> AuditSplit:
    rng = np.random.default_rng(seed)
    units = rng.permutation(np.unique(d.unit))
    n_units = len(units)
    if n_units < 3:
        raise DataError(f"{d.name}: needs at least 3 privacy units (subjects) for train / population / holdout, got {n_units}")
    n_mem = min(n_train or n_units // 3, n_units // 3) if d.kind == "image" else max(1, n_units // 3)
    n_pop = min(n_mem, (n_units - n_mem) // 2) if d.kind == "image" else max(1, (n_units - n_mem) // 2)
    parts = np.split(units, [n_mem, n_mem + n_pop])
    if d.kind == "image":  # the holdout at most as large as the member set keeps the audit balanced
        parts[2] = parts[2][:max(n_mem, 1)]
    members, population, holdout = (d.subset(np.isin(d.unit, p)) for p in parts)
    return AuditSplit(members, population, holdout)
