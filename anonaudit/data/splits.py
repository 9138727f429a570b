"""Train / validation / test splits that respect what each protocol needs.

* By subject (disjoint subjects): activity recognition on unseen people.
* By time or by recording (every subject in every split): re-identification, which must
  recognise a known person in new data. Windows never overlap across splits: time splits cut
  each recording at fixed fractions before windowing, recording splits keep recordings whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from anonaudit.data.dataset import SensorDataset
from anonaudit.data.windows import Windows, make_windows
from anonaudit.errors import DataError, ParameterError

SPLIT_NAMES = ("train", "val", "test")


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or (f < 0).any() or not np.isclose(f.sum(), 1.0) or f[0] <= 0 or f[2] <= 0:
        raise ParameterError(
            "fractions", f"need three non-negative fractions (train, val, test) summing to 1 with train, test > 0; got {list(fractions)}"
        )
    return f


def split_subjects(
    subjects: Sequence[str],
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    *,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Randomly partition subject ids into disjoint train / val / test lists (seeded)."""
    f = _check_fractions(fractions)
    ids = np.array(sorted(set(map(str, subjects))), dtype=object)
    n_val = int(round(f[1] * len(ids)))
    n_test = max(1, int(round(f[2] * len(ids))))
    if len(ids) - n_val - n_test < 1:
        raise DataError(f"{len(ids)} subjects are too few for a train/val/test split with fractions {list(f)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    test, val, train = np.split(ids[order], [n_test, n_test + n_val])
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def split_by_subject(windows: Windows, assignment: Mapping[str, Sequence[str]]) -> dict[str, Windows]:
    """Select windows of the subjects assigned to each split; unknown subjects are an error."""
    seen: set[str] = set()
    ids = windows.subject_ids()
    out = {}
    for name, members in assignment.items():
        members = [str(m) for m in members]
        unknown = sorted(set(members) - set(windows.subjects))
        if unknown:
            raise DataError(f"split {name!r} names unknown subjects {unknown}")
        overlap = seen & set(members)
        if overlap:
            raise DataError(f"subjects {sorted(overlap)} appear in more than one split")
        seen |= set(members)
        out[name] = windows.subset(np.isin(ids, members))
    return out


def split_by_time(
    ds: SensorDataset,
    length: float,
    stride: float | None = None,
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    unit: str = "s",
) -> dict[str, Windows]:
    """Cut every recording into consecutive train / val / test parts, then window each part.

    The same subjects (and activities) appear in every split; a window never crosses a part
    boundary, so no sample is shared between splits.
    """
    f = _check_fractions(fractions)
    edges = np.concatenate([[0.0], np.cumsum(f)])
    edges[-1] = 1.0
    return {
        name: make_windows(ds, length, stride, unit=unit, bounds=(edges[i], edges[i + 1]))
        for i, name in enumerate(SPLIT_NAMES)
        if edges[i + 1] > edges[i]
    }


def _block_sizes(k: int, f: np.ndarray) -> np.ndarray:
    """Split k items by fractions f: at least one per positive fraction when k allows, sum k."""
    sizes = np.round(f * k).astype(int)
    if k >= (f > 0).sum():
        sizes = np.where(f > 0, np.maximum(sizes, 1), 0)
    while sizes.sum() > k:
        sizes[np.argmax(sizes)] -= 1
    while sizes.sum() < k:
        sizes[np.argmax(f * k - sizes)] += 1
    return sizes


def recording_assignment(
    ds: SensorDataset,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    *,
    by: str | None = None,
) -> dict[str, str]:
    """Assign whole recordings to splits so that every subject is in every split.

    Within each (subject, activity) group the recordings are taken in table order (or sorted by
    column ``by``, e.g. ``"trial"``) and dealt out in consecutive blocks whose sizes follow the
    fractions, every split with a positive fraction getting at least one recording when the
    group has enough. Subjects who still end up missing from a split are named in the error,
    rather than silently dropped.
    """
    f = _check_fractions(fractions)
    recs = ds.recordings.copy()
    if by is not None:
        if by not in recs:
            raise ParameterError("by", f"recordings table has no column {by!r}; columns: {list(recs.columns)}")
        recs = recs.sort_values([by], kind="stable")
    # a recording's activity = its most frequent label (recordings of one activity in most datasets)
    recs["_activity"] = [np.bincount(ds.labels[s : s + n] + 1).argmax() for s, n in zip(recs["start"], recs["length"])]
    position = recs.groupby(["subject", "_activity"]).cumcount().to_numpy()
    size = recs.groupby(["subject", "_activity"])["recording"].transform("size").to_numpy()
    bounds = {k: np.cumsum(_block_sizes(k, f)) for k in np.unique(size)}
    split_idx = np.array([np.searchsorted(bounds[k], i, side="right") for i, k in zip(position, size)])
    assignment = dict(zip(recs["recording"], np.asarray(SPLIT_NAMES)[split_idx]))
    needed = [name for name, frac in zip(SPLIT_NAMES, f) if frac > 0]
    for name in needed:
        present = set(recs.loc[split_idx == SPLIT_NAMES.index(name), "subject"])
        missing = sorted(set(recs["subject"]) - present)
        if missing:
            most = recs[recs["subject"].isin(missing)].groupby(["subject", "_activity"]).size().max()
            raise DataError(
                f"subjects {missing} have too few recordings to appear in the {name!r} split: re-identification "
                f"across recordings deals each subject's recordings of one activity out to the "
                f"{', '.join(needed)} splits, which needs at least {len(needed)} recordings of one activity per "
                f"subject, and these subjects have at most {int(most)}; record more sessions of them, or import the "
                "dataset without them"
            )
    return assignment


def split_by_recording(
    ds: SensorDataset,
    length: float,
    stride: float | None = None,
    *,
    assignment: Mapping[str, str] | None = None,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    unit: str = "s",
) -> dict[str, Windows]:
    """Window the dataset and group windows by the split of their recording.

    ``assignment`` maps recording id → split name (default: :func:`recording_assignment`).
    """
    if assignment is None:
        assignment = recording_assignment(ds, fractions)
    unknown = sorted(set(assignment) - set(ds.recordings["recording"]))
    if unknown:
        raise DataError(f"assignment names unknown recordings {unknown[:10]}")
    windows = make_windows(ds, length, stride, unit=unit)
    rec_split = ds.recordings["recording"].map(assignment).to_numpy(dtype=object)
    win_split = rec_split[windows.recording]
    names = [n for n in SPLIT_NAMES if n in set(assignment.values())] + sorted(
        set(assignment.values()) - set(SPLIT_NAMES)
    )
    return {name: windows.subset(win_split == name) for name in names}
