"""The informed threat model: attackers trained on the published method's own output (issue 17)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from anonaudit.anonymise import methods
from anonaudit.anonymise.config import AnonymiserConfig
from anonaudit.anonymise.published import published
from anonaudit.anonymise.release import anonymise_dataset
from anonaudit.data.loaders import load_dataset
from anonaudit.data.splits import recording_assignment
from anonaudit.data.synthetic import SampleSpec, write_sample_data
from anonaudit.data.windows import make_windows
from anonaudit.errors import DataError, ParameterError
from anonaudit.evaluate.informed import INFORMED, WindowTransform, informed_attack
from anonaudit.evaluate.protocols import EvalConfig, ModelScore, align_released, evaluate
from tests.factories import IMU, tiny_dataset

N_SUBJECTS = 8
CFG = EvalConfig(reid_model="knn", attackers=("logreg_act", "lda"), protocols=("privacy",), n_boot=200,
                 window_s=1.0, stride_s=1.0)
CHANCE = 1 / N_SUBJECTS


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The synthetic sample's trunk IMU only (six channels keep the feature attackers quick)."""
    out = tmp_path_factory.mktemp("sample")
    write_sample_data(out, SampleSpec(n_subjects=N_SUBJECTS, n_trials=3, duration_s=4.0))
    ds = load_dataset(out / "mapping.toml")
    keep = [ds.channels.index(c) for c in IMU]
    return replace(ds, channels=IMU, signals=ds.signals[:, keep], units={c: ds.units[c] for c in IMU},
                   channel_groups={g: cs for g, cs in ds.channel_groups.items() if set(cs) <= set(IMU)})


@pytest.fixture(scope="module")
def assignment(sample):
    return recording_assignment(sample, CFG.recording_fractions)


@pytest.fixture(scope="module")
def identity(sample, assignment) -> pd.DataFrame:
    """The harness on an identity release: linkage on it is re-identification of the raw data."""
    return evaluate(sample, sample, CFG, reid_assignment=assignment).table()


@pytest.fixture(scope="module")
def noise_anonymiser(sample):
    windows = make_windows(sample, CFG.window_s, CFG.stride_s)
    return methods.build(AnonymiserConfig(method="noise", noise_sigma=0.5)).fit(
        windows.X, windows.subject, windows.y, subjects=sample.subject_ids, channels=sample.channels)


def table(scores: list[ModelScore]) -> pd.DataFrame:
    return pd.DataFrame([r for s in scores for r in s.rows()])


def accuracy(t: pd.DataFrame, train_data: str, test_data: str, level: str = "recording") -> pd.Series:
    """Accuracy per model of one threat model's rows."""
    rows = t[(t.train_data == train_data) & (t.test_data == test_data) & (t.level == level) & (t.metric == "accuracy")]
    return rows.set_index("model")["value"]


def planted(n_channels: int) -> WindowTransform:
    """A fixed invertible transform, the same for every subject: channels permuted, flipped, scaled and shifted."""
    rng = np.random.default_rng(0)
    gains = rng.uniform(0.5, 2.0, n_channels) * rng.choice([-1.0, 1.0], n_channels)
    mix = (np.eye(n_channels)[rng.permutation(n_channels)] * gains).astype(np.float32)
    shift = rng.normal(size=n_channels).astype(np.float32)
    return lambda X, subject, activity: X @ mix + shift


def test_fixed_invertible_transform_fools_frozen_but_not_informed(sample, assignment, identity):
    transform = planted(sample.n_channels)
    release = replace(sample, signals=transform(sample.signals, None, None))
    harness = evaluate(sample, release, CFG, reid_assignment=assignment).table()
    informed = table(informed_attack(sample, release, assignment, transform, CFG))
    raw_best = accuracy(identity, "released (retrained)", "released").max()
    frozen_raw = accuracy(harness, "real", "real")["knn"]
    frozen = accuracy(harness, "real", "released")["knn"]
    linkage_best = accuracy(harness, "released (retrained)", "released").max()
    best = accuracy(informed, INFORMED, "released").max()
    # the frozen network, trained on raw data, is fooled ...
    assert frozen <= 2 * CHANCE and frozen < 0.4 * frozen_raw
    # ... the attacker who runs the public method on its own reference recordings is not: it does
    # about as well as on raw data, and as one holding labelled released recordings
    assert best > 4 * CHANCE and best >= 0.9 * raw_best and abs(best - linkage_best) <= 0.05
    assert accuracy(informed, INFORMED, "released", "window").max() > 3 * CHANCE


def test_identity_gives_informed_equal_linkage_and_raw(sample, assignment, identity):
    scores = informed_attack(sample, sample, assignment, lambda X, s, a: X.copy(), CFG)
    informed = table(scores)
    assert [(s.model, s.level) for s in scores] == [(m, lvl) for m in ("knn", "logreg_act", "lda") for lvl in ("window", "recording")]
    assert set(informed.protocol) == {"privacy"} and set(informed.target) == {"subject"}
    for level in ("window", "recording"):
        linkage = accuracy(identity, "released (retrained)", "released", level)
        got = accuracy(informed, INFORMED, "released", level)
        assert np.allclose(got[linkage.index], linkage)  # the same windows, models and seeds: the same figures
        assert got["knn"] == pytest.approx(accuracy(identity, "real", "real", level)["knn"])  # and the raw data's
    rec = informed[(informed.level == "recording") & informed.metric.isin(["accuracy", "balanced_accuracy"])]
    assert set(rec.metric) == {"accuracy", "balanced_accuracy"}
    assert np.allclose(rec["chance"], CHANCE)  # uniform 1/N, beside a subject-bootstrap interval
    assert (rec["ci_low"] < rec["value"]).all() and (rec["value"] < rec["ci_high"]).all()


def test_noise_release_leaves_informed_attacker_at_chance(sample, assignment):
    rng = np.random.default_rng(1)
    noise = replace(sample, signals=rng.normal(size=sample.signals.shape).astype(np.float32))
    scores = informed_attack(sample, noise, assignment,
                             lambda X, s, a: rng.normal(size=X.shape).astype(np.float32), CFG)
    rows = table(scores)
    scored = rows[rows.metric.isin(["accuracy", "balanced_accuracy"])]
    assert len(scored) == 12  # three attackers, two levels, two scores
    assert ((scored["ci_low"] <= CHANCE) & (CHANCE <= scored["ci_high"])).all(), scored


def test_published_anonymiser_gets_its_own_noise(sample, assignment, noise_anonymiser):
    anonymiser = noise_anonymiser
    windows = make_windows(sample, CFG.window_s, CFG.stride_s)
    release = anonymise_dataset(sample, anonymiser, name="rel", seed=3)
    aligned = align_released(sample, release.dataset, release.recording_linkage)
    transform = published(anonymiser, 99, sample)
    X = windows.X[:20]
    first, second = transform(X, windows.subject[:20], windows.y[:20]), transform(X, windows.subject[:20], windows.y[:20])
    assert first.shape == X.shape and not np.allclose(first, second)  # fresh noise per call
    assert not np.allclose(first, anonymiser.transform(X, seed=3))  # not the release's noise
    informed = table(informed_attack(sample, aligned, assignment, transform, CFG))
    assert accuracy(informed, INFORMED, "released").max() > 2 * CHANCE  # noise of σ/2 hides little
    renamed = {sid: f"X{i}" for i, sid in enumerate(sample.subject_ids)}
    stranger = replace(sample, subjects=sample.subjects.assign(subject=sample.subjects["subject"].map(renamed)),
                       recordings=sample.recordings.assign(subject=sample.recordings["subject"].map(renamed)))
    with pytest.raises(ParameterError, match="unknown to this anonymiser"):
        published(anonymiser, 99, stranger)
    with pytest.raises(DataError, match="channels"):
        published(anonymiser, 99, replace(sample, channels=[c + "_x" for c in sample.channels]))


def test_published_dfi_targets_are_random_other_subjects():
    ds = tiny_dataset(lengths=[20, 20, 20], subjects=["s0", "s1", "s2"])
    anonymiser = methods.build(AnonymiserConfig(method="anon_dfi"))
    anonymiser.scaler_, anonymiser.channels_, anonymiser.subjects_ = None, list(ds.channels), ["s2", "s1", "s0"]
    calls = []
    anonymiser.transform = lambda X, subject, target, seed, activity=None: calls.append((subject, target, seed)) or X
    transform = published(anonymiser, 5, ds)
    codes = np.array([0, 1, 2] * 100)
    transform(np.zeros((300, 4, 2)), codes, codes)
    transform(np.zeros((300, 4, 2)), codes, codes)
    (source, target, seed), (_, target2, seed2) = calls
    assert source.tolist() == [2, 1, 0] * 100  # the dataset's codes in the anonymiser's vocabulary
    assert (target != source).all() and set(target) == {0, 1, 2}
    assert seed != seed2 and not np.array_equal(target, target2)
    alone = tiny_dataset(lengths=[20, 20], subjects=["s0", "s0"])
    anonymiser.subjects_ = ["s0"]
    with pytest.raises(ParameterError, match="at least two subjects"):
        published(anonymiser, 5, alone)


def test_bad_input_is_named(sample, assignment, noise_anonymiser):
    def run(transform=lambda X, s, a: X, assign=assignment, release=sample):
        informed_attack(sample, release, assign, transform, CFG)

    with pytest.raises(DataError, match=r"returned windows shaped \(\d+, 50, 5\) for windows shaped \(\d+, 50, 6\)"):
        run(transform=lambda X, s, a: X[:, :, 1:])
    with pytest.raises(DataError, match="returned 1 non-finite values"):
        run(transform=lambda X, s, a: np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X))
    first = sample.recordings["subject"].iat[0]
    subject_of = dict(zip(sample.recordings["recording"], sample.recordings["subject"]))
    no_reference = {r: "test" if subject_of[r] == first and a == "train" else a for r, a in assignment.items()}
    with pytest.raises(DataError, match=rf"subjects \['{first}'\] have no recordings in the re-identification 'train' split"):
        run(assign=no_reference)
    with pytest.raises(DataError, match="does not assign recordings"):
        run(assign={r: a for r, a in list(assignment.items())[1:]})
    release = anonymise_dataset(sample, noise_anonymiser, name="rel").dataset  # not aligned: pseudonymous, shuffled
    with pytest.raises(DataError, match="not aligned with the original: its recordings are not the original's"):
        run(release=release)
