import numpy as np
import pytest

from anonaudit.data.dataset import SensorDataset
from anonaudit.data.normalise import SigmaRange, ZScore, scaler_from_dict
from anonaudit.data.resample import resample
from anonaudit.data.windows import make_windows, majority_labels
from anonaudit.errors import DataError, ParameterError
from factories import tiny_dataset


def test_windows_never_straddle_recordings():
    ds = tiny_dataset(lengths=[20, 15])
    w = make_windows(ds, 6, 4, unit="samples")
    # recording 0 (20 samples): starts 0,4,8,12 ; recording 1 (15): 0,4,8
    assert w.recording.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert w.start.tolist() == [0, 4, 8, 12, 0, 4, 8]
    first = w.X[:, 0, 0]
    assert first.tolist() == [0, 4, 8, 12, 20, 24, 28]
    # every window's samples are consecutive and from one recording
    assert np.all(np.diff(w.X[:, :, 0], axis=1) == 1)
    assert w.X.shape == (7, 6, 2) and w.X.dtype == np.float32


def test_recording_shorter_than_window_gives_no_windows():
    ds = tiny_dataset(lengths=[5, 30])
    w = make_windows(ds, 10, 10, unit="samples")
    assert set(w.recording.tolist()) == {1}
    assert len(w) == 3


def test_window_exact_fit_and_seconds_unit():
    ds = tiny_dataset(lengths=[20], subjects=["s0"], rate=10.0)
    w = make_windows(ds, 2.0, 1.0)  # 20 samples, stride 10
    assert len(w) == 1 and w.length == 20


def test_majority_label_and_ties():
    labels = np.array([0, 0, 1, 1, 1, -1, -1, -1, -1, 2])
    starts = np.array([0, 2, 4, 6])
    # windows of 4: [0,0,1,1] tie -> lower code 0; [1,1,1,-1] -> 1; [1,-1,-1,-1] -> -1; [-1,-1,-1,2] -> -1
    assert majority_labels(labels, starts, 4).tolist() == [0, 1, -1, -1]


def test_unlabelled_windows_dropped_or_kept():
    lab = np.r_[np.full(10, -1), np.full(10, 2)]
    ds = tiny_dataset(lengths=[20], subjects=["s0"], labels=[lab])
    assert make_windows(ds, 10, 10, unit="samples").y.tolist() == [2]
    assert make_windows(ds, 10, 10, unit="samples", drop_unlabelled=False).y.tolist() == [-1, 2]


@pytest.mark.parametrize("kwargs", [dict(length=0), dict(length=5, stride=0), dict(length=5, unit="min"),
                                    dict(length=5, bounds=(0.5, 0.5))])
def test_bad_window_parameters(kwargs):
    with pytest.raises(ParameterError):
        make_windows(tiny_dataset(), unit=kwargs.pop("unit", "samples"), **kwargs)


def test_bounds_cut_disjoint_parts():
    ds = tiny_dataset(lengths=[40], subjects=["s0"])
    a = make_windows(ds, 5, 5, unit="samples", bounds=(0.0, 0.5))
    b = make_windows(ds, 5, 5, unit="samples", bounds=(0.5, 1.0))
    assert a.X[:, :, 0].max() < b.X[:, :, 0].min()


def test_resample_halves_rate_and_keeps_boundaries():
    ds = tiny_dataset(lengths=[40, 20], rate=100.0)
    half = resample(ds, 50.0)
    assert half.sampling_rate == 50.0
    assert half.recordings["length"].tolist() == [20, 10]
    assert half.labels.tolist() == [0] * 20 + [1] * 10
    with pytest.raises(ParameterError):
        resample(ds, 0)


def test_scalers_fit_on_train_only_and_roundtrip():
    rng = np.random.default_rng(0)
    train = rng.normal(5, 2, size=(200, 10, 3)).astype(np.float32)
    test = rng.normal(5, 2, size=(50, 10, 3)).astype(np.float32)
    z = ZScore().fit(train)
    assert np.allclose(z.transform(train).reshape(-1, 3).mean(0), 0, atol=1e-5)
    assert np.allclose(z.inverse_transform(z.transform(test)), test, atol=1e-4)
    s = SigmaRange().fit(train)
    out = s.transform(test)
    assert out.min() >= 0 and out.max() <= 1
    inside = np.abs(test - s.mean_) < 2 * s.std_
    assert np.allclose(s.inverse_transform(out)[inside], test[inside], atol=1e-4)
    restored = scaler_from_dict(s.to_dict())
    assert np.array_equal(restored.transform(test), out)
    with pytest.raises(ParameterError):
        s.transform(test[..., :2])
    with pytest.raises(ParameterError):
        ZScore().transform(test)


def test_dataset_roundtrip_and_validation(tmp_path):
    ds = tiny_dataset()
    path = ds.save(tmp_path / "tiny")
    back = SensorDataset.load(path)
    assert np.array_equal(back.signals, ds.signals) and np.array_equal(back.labels, ds.labels)
    assert back.recordings.equals(ds.recordings) and back.subjects.equals(ds.subjects)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # no temporary folder left behind
    bad = ds.signals.copy()
    bad[23, 1] = np.nan
    with pytest.raises(DataError, match=r"column 'c1'.*recording 'r1' at sample 3"):
        SensorDataset(**{**ds.__dict__, "signals": bad})
    with pytest.raises(DataError, match="unknown subjects"):
        SensorDataset(**{**ds.__dict__, "subjects": ds.subjects.iloc[:1]})
