import numpy as np
import pytest

from anonaudit.data.splits import (
    recording_assignment,
    split_by_recording,
    split_by_subject,
    split_by_time,
    split_subjects,
)
from anonaudit.data.windows import make_windows
from anonaudit.errors import DataError, ParameterError
from factories import tiny_dataset


def six_recordings():
    # subjects s0, s1 each with 3 recordings of activity 0
    return tiny_dataset(lengths=[30] * 6, subjects=["s0", "s0", "s0", "s1", "s1", "s1"],
                        labels=[np.zeros(30, int)] * 6)


def test_split_subjects_disjoint_and_seeded():
    ids = [f"p{i}" for i in range(10)]
    a = split_subjects(ids, (0.6, 0.2, 0.2), seed=3)
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(ids)
    assert not set(a["train"]) & set(a["test"]) and not set(a["val"]) & set(a["test"])
    assert a == split_subjects(ids, (0.6, 0.2, 0.2), seed=3)
    assert a != split_subjects(ids, (0.6, 0.2, 0.2), seed=4)
    with pytest.raises(DataError):
        split_subjects(["a", "b"], (0.4, 0.3, 0.3))
    with pytest.raises(ParameterError):
        split_subjects(ids, (0.5, 0.5, 0.5))


def test_split_by_subject_rejects_unknown_and_overlap():
    w = make_windows(six_recordings(), 10, 10, unit="samples")
    out = split_by_subject(w, {"train": ["s0"], "test": ["s1"]})
    assert set(out["train"].subject_ids()) == {"s0"} and set(out["test"].subject_ids()) == {"s1"}
    with pytest.raises(DataError, match="unknown subjects"):
        split_by_subject(w, {"train": ["s9"]})
    with pytest.raises(DataError, match="more than one split"):
        split_by_subject(w, {"train": ["s0"], "test": ["s0"]})


def test_time_split_has_every_subject_and_no_shared_samples():
    ds = six_recordings()
    out = split_by_time(ds, 4, 2, unit="samples", fractions=(0.6, 0.2, 0.2))
    for part in out.values():
        assert set(part.subject_ids()) == {"s0", "s1"}
    samples = {name: set(part.X[:, :, 0].ravel().tolist()) for name, part in out.items()}
    assert not samples["train"] & samples["test"] and not samples["val"] & samples["test"]


def test_recording_split_keeps_recordings_whole_and_covers_subjects():
    ds = six_recordings()
    assignment = recording_assignment(ds, (0.34, 0.33, 0.33))
    assert sorted(assignment.values()) == ["test", "test", "train", "train", "val", "val"]
    out = split_by_recording(ds, 10, 5, unit="samples", assignment=assignment)
    recs = {name: set(part.recording.tolist()) for name, part in out.items()}
    assert not recs["train"] & recs["test"]
    assert all(set(p.subject_ids()) == {"s0", "s1"} for p in out.values())


def test_recording_split_names_subjects_with_too_few_recordings():
    ds = tiny_dataset(lengths=[30, 30, 30], subjects=["s0", "s0", "s1"], labels=[np.zeros(30, int)] * 3)
    with pytest.raises(DataError, match=r"\['s1'\]"):
        recording_assignment(ds, (0.5, 0.0, 0.5))
