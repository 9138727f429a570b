"""Threat models of issue 17: metadata linkage (and its defence), memorisation (distance to closest record)
and membership inference on the generator."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from anonaudit.anonymise import methods
from anonaudit.anonymise.config import AnonymiserConfig
from anonaudit.anonymise import workflow
from anonaudit.anonymise.release import Release, anonymise_dataset
from anonaudit.data.dataset import SensorDataset, concat_recordings
from anonaudit.data.windows import make_windows
from anonaudit.errors import DataError, ParameterError
from anonaudit.evaluate.linkage import coarsen_metadata, metadata_linkage, strip_padding
from anonaudit.evaluate.memorisation import membership, memorisation
from anonaudit.evaluate.protocols import align_released

from factories import tiny_dataset

SCRIPT = (0, 1, 2, 0)  # walk, sit, stand, walk: the published protocol every subject follows


def protocol_dataset(n_subjects: int = 10, n_trials: int = 20, rate: float = 10.0) -> SensorDataset:
    """Every subject follows SCRIPT, each run 9–11 s long, drawn afresh for every trial.

    Exact run lengths make every recording's metadata unique, so exact metadata re-links each
    one; but the timing carries no habit of the subject, so once it is coarsened nothing ties a
    recording to its subject any more and uniform chance is the floor the attacker must fall to.
    """
    rng = np.random.default_rng(0)
    parts, subjects, ids = [], [], []
    for s in range(n_subjects):
        for t in range(n_trials):
            runs = np.round(rng.uniform(9.0, 11.0, len(SCRIPT)) * rate).astype(int)
            labels = np.repeat(SCRIPT, runs)
            parts.append((rng.normal(size=(len(labels), 2)).astype(np.float32), labels))
            subjects.append(f"P{s:02d}")
            ids.append(f"P{s:02d}_t{t}")
    signals, labels, starts, lengths = concat_recordings(parts)
    return SensorDataset(
        name="protocol", sampling_rate=rate, channels=["c0", "c1"], signals=signals, labels=labels,
        activities=["walk", "sit", "stand"],
        recordings=pd.DataFrame({"recording": ids, "subject": subjects, "start": starts, "length": lengths}),
        subjects=pd.DataFrame({"subject": sorted(set(subjects))}))


@pytest.fixture(scope="module")
def original() -> SensorDataset:
    return protocol_dataset()


@pytest.fixture(scope="module")
def release(original) -> Release:
    """The real release path with the identity anonymiser: shuffled, random ids and pseudonyms, exact metadata."""
    anonymiser = methods.build(AnonymiserConfig(method="none")).fit(
        make_windows(original, 1.0).X, np.zeros(1), np.zeros(1), subjects=original.subject_ids,
        channels=original.channels)
    return anonymise_dataset(original, anonymiser, name="released")


def in_original_order(release: Release, original: SensorDataset) -> SensorDataset:
    """The release with its recordings in the original's order, so that seeded coarsening is reproducible.

    (The release's own order comes from the OS CSPRNG; the attacker never sees either order, it
    breaks ties by a seeded random permutation.)
    """
    ds = release.dataset
    position = {orig: i for i, orig in enumerate(original.recordings["recording"])}
    order = np.argsort([position[release.recording_linkage[r]] for r in ds.recordings["recording"]])
    slices = ds.recording_slices()
    lengths = ds.recordings["length"].to_numpy()[order]
    return replace(ds, signals=np.concatenate([ds.signals[slices[i]] for i in order]),
                   labels=np.concatenate([ds.labels[slices[i]] for i in order]),
                   recordings=ds.recordings.iloc[order].assign(start=np.concatenate([[0], np.cumsum(lengths)[:-1]])))


# ----------------------------------------------------------------------------- metadata linkage
def test_exact_lengths_and_labels_relink_every_recording(original, release):
    released = release.dataset
    assert not set(released.recordings["recording"]) & set(original.recordings["recording"])
    result = metadata_linkage(original, released, release.recording_linkage, n_boot=300)
    assert result.accuracy == 1.0 and result.balanced_accuracy == 1.0 and result.exact_link_rate == 1.0
    assert result.chance == pytest.approx(0.1) and result.n_subjects == 10 and result.n_recordings == 200
    assert result.risk == pytest.approx(1.0) and result.risk_ci == pytest.approx((1.0, 1.0))
    assert result.ci == {"accuracy": (1.0, 1.0), "balanced_accuracy": (1.0, 1.0)}
    assert not result.passes() and result.score > 2 * result.chance and result.metric == "accuracy"
    # metadata alone: the attacker never looks at the signals
    blank = replace(released, signals=np.zeros_like(released.signals))
    assert metadata_linkage(original, blank, release.recording_linkage, n_boot=0).accuracy == 1.0


def test_coarsened_metadata_drops_the_attacker_to_chance(original, release):
    released = in_original_order(release, original)
    coarse, _ = coarsen_metadata(released, np.random.default_rng(1))  # 10 s quantum, 1.28 s jitter
    assert set(np.unique(coarse.recordings["length"] % 100)) == {0}
    result = metadata_linkage(original, coarse, release.recording_linkage, n_boot=500)
    assert result.passes() and result.score <= 2 * result.chance
    assert result.score == getattr(result, result.metric) and result.ci[result.metric][0] <= result.score
    assert result.exact_link_rate <= 0.05  # from 1.0
    low, high = result.ci["accuracy"]
    assert low <= result.chance <= high and 0.02 < high - low < 0.2
    assert result.risk == pytest.approx((result.accuracy - 0.1) / 0.9)
    assert result.risk < 0.1
    # the same draws without the jitter: rounding alone leaves the change points as they were
    rounded, _ = coarsen_metadata(released, np.random.default_rng(1), jitter_s=0.0)
    assert metadata_linkage(original, rounded, release.recording_linkage, n_boot=0).score > result.score


def test_attacker_matches_through_small_perturbations(original, release):
    """Change points moved by up to two samples (no exact match left) still link: the matching is tolerant."""
    released = in_original_order(release, original)
    nudged, _ = coarsen_metadata(released, np.random.default_rng(2), quantum_s=0.1, jitter_s=0.2)
    assert not np.array_equal(nudged.labels, released.labels)
    result = metadata_linkage(original, nudged, release.recording_linkage, n_boot=0)
    assert result.accuracy >= 0.8 and result.exact_link_rate >= 0.8 and not result.passes()


LENGTHS = [37, 55, 8, 121]
LABELS = [np.repeat([0, 1], [20, 17]), np.repeat([2, 0, 1], [10, 25, 20]), np.full(8, 1),
          np.repeat([0, 1, 2, 1], [30, 31, 30, 30])]


def _runs(labels: np.ndarray) -> list[int]:
    return [int(v) for i, v in enumerate(labels) if i == 0 or labels[i - 1] != v]


def test_coarsen_metadata_pads_and_jitters_consistently_and_can_be_undone():
    ds = tiny_dataset(LENGTHS, ["a", "a", "b", "b"], LABELS)  # channel 0 = global sample index
    quantum, jitter = 20, 3  # samples at 10 Hz
    old_start = ds.recordings["start"].to_numpy()
    pads = moved = 0
    for seed in range(20):
        out, lead = coarsen_metadata(ds, np.random.default_rng(seed), quantum_s=2.0, jitter_s=0.3)
        assert out.recordings["recording"].tolist() == ds.recordings["recording"].tolist()
        assert out.recordings["trial"].tolist() == ds.recordings["trial"].tolist()
        for k, part in enumerate(out.recording_slices()):
            n, old = part.stop - part.start, LENGTHS[k]
            assert n % quantum == 0 and n >= quantum and 0 <= n - old < quantum  # rounded up: nothing trimmed
            source = out.signals[part, 0].astype(int)
            assert (source >= old_start[k]).all() and (source < old_start[k] + old).all()
            assert (np.abs(np.diff(source)) == 1).all()  # contiguous, mirrored at the ends when padded
            pads += lead[k] > 0
            truth, labels = ds.labels[source], out.labels[part]
            assert _runs(labels) == _runs(truth)  # the activity sequence is kept
            wrong = np.flatnonzero(labels != truth)
            change = np.flatnonzero(np.diff(truth)) + 1
            moved += len(wrong) > 0
            assert all(np.abs(change - i).min() <= jitter for i in wrong) if len(wrong) else True
        assert ds.labels.tolist() == np.concatenate(LABELS).tolist()  # input untouched
        inner = strip_padding(out, lead, LENGTHS)  # the judge's exact-length view of the published release
        assert np.array_equal(inner.signals, ds.signals) and inner.recordings["length"].tolist() == LENGTHS
    assert pads and moved
    with pytest.raises(DataError, match="padding record does not fit"):
        strip_padding(out, lead + 100, LENGTHS)
    exact, _ = coarsen_metadata(ds, np.random.default_rng(0), quantum_s=2.0, jitter_s=0.0)
    assert np.array_equal(exact.labels, ds.labels[exact.signals[:, 0].astype(int)])


@pytest.mark.parametrize("kwargs, match", [
    ({"quantum_s": 0.0}, "quantum_s"), ({"quantum_s": 0.05}, r"at least one sample \(0.1 s at 10 Hz\)"),
    ({"quantum_s": float("nan")}, "quantum_s"), ({"jitter_s": -1.0}, "jitter_s.*>= 0"),
    ({"jitter_s": float("inf")}, "jitter_s"),
])
def test_coarsen_metadata_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        coarsen_metadata(tiny_dataset(), np.random.default_rng(0), **kwargs)


def test_metadata_linkage_rejects_bad_input():
    ds = tiny_dataset([20, 15, 12], ["s0", "s1", "s0"])
    link = {"r0": "r0", "r1": "r1", "r2": "r2"}
    assert metadata_linkage(ds, ds, link, n_boot=0).exact_link_rate == 1.0
    with pytest.raises(DataError, match=r"original recordings \['nope'\] that the original dataset does not have"):
        metadata_linkage(ds, ds, {**link, "r2": "nope"})
    with pytest.raises(DataError, match=r"lacks released recordings \['r2'\]"):
        metadata_linkage(ds, ds, {"r0": "r0", "r1": "r1"})
    with pytest.raises(DataError, match=r"names recordings \['extra'\] that the released dataset does not have"):
        metadata_linkage(ds, ds, {**link, "extra": "r0"})
    with pytest.raises(DataError, match="original recording 'r0'; releases are one-to-one"):
        metadata_linkage(ds, ds, {**link, "r1": "r0"})
    empty = replace(ds, signals=np.empty((0, 2), np.float32), labels=np.empty(0, np.int16),
                    recordings=ds.recordings.iloc[:0], subjects=ds.subjects.iloc[:0])
    with pytest.raises(DataError, match="released dataset 'tiny' has no recordings"):
        metadata_linkage(ds, empty, {})
    with pytest.raises(DataError, match="one subject"):
        single = tiny_dataset([20, 15], ["s0", "s0"])
        metadata_linkage(single, single, {"r0": "r0", "r1": "r1"})
    with pytest.raises(DataError, match=r"activities \['jump'\] that the original does not"):
        metadata_linkage(ds, replace(ds, activities=["a", "b", "jump"]), link)
    with pytest.raises(ParameterError, match="grid"):
        metadata_linkage(ds, ds, link, grid=0)


# ----------------------------------------------------------------------------- memorisation
def gait_windows(rng: np.random.Generator, n: int, time: int = 32, channels: int = 3) -> np.ndarray:
    """Windows of one distribution: sinusoids of random frequency, phase and amplitude plus noise."""
    t = np.arange(time)[None, :, None]
    freq = rng.uniform(0.05, 0.2, (n, 1, channels))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, channels))
    amp = rng.uniform(0.5, 2.0, (n, 1, channels))
    return (amp * np.sin(2 * np.pi * freq * t + phase) + rng.normal(0, 0.3, (n, time, channels))).astype(np.float32)


@pytest.fixture(scope="module")
def windows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return gait_windows(rng, 400), gait_windows(rng, 400), gait_windows(rng, 400)


def test_a_generator_that_copies_training_windows_fails(windows):
    train, holdout, _ = windows
    rng = np.random.default_rng(1)
    copies = train[rng.choice(len(train), 400)] + rng.normal(0, 0.01, (400, 32, 3)).astype(np.float32)
    result = memorisation(train, holdout, copies, n_boot=300)
    assert result.ratio < 0.05 and not result.passes()
    assert result.ci[1] < 0.1 and result.close_share == 1.0 and result.close_quantile == 0.05
    assert result.median_released < 0.05 * result.median_holdout
    assert (result.n_train, result.n_holdout, result.n_released) == (400, 400, 400)


def test_fresh_windows_pass(windows):
    train, holdout, fresh = windows
    result = memorisation(train, holdout, fresh, n_boot=500)
    assert 0.95 <= result.ratio <= 1.05 and result.passes()
    low, high = result.ci
    assert low < result.ratio < high and low < 1.0 < high and high - low < 0.15
    assert 0.01 <= result.close_share <= 0.1  # ≈ close_quantile when nothing is memorised
    assert not result.passes(min_ratio=high + 0.01)


def test_channel_units_do_not_hide_a_copy(windows):
    """Copied gyro-like channels still count when a fresh channel is in units 1000 × larger (z-scoring)."""
    train, holdout, fresh = (w.copy() for w in windows)
    for w in (train, holdout, fresh):
        w[..., 0] *= 1000
    copied = np.concatenate([fresh[..., :1], train[..., 1:] + 0.01], axis=2)
    result = memorisation(train, holdout, copied, n_boot=0)
    assert 0.75 <= result.ratio <= 0.9 and not result.passes()  # in raw units the ratio would be 0.995


def test_partial_copying_shows_in_the_close_share(windows):
    train, holdout, fresh = windows
    mixed = np.concatenate([fresh[:300], train[:100] + 0.01])
    result = memorisation(train, holdout, mixed, n_boot=0)
    assert result.close_share >= 0.25 and np.isnan(result.ci).all()  # no bootstrap, no interval


def test_membership_inference_catches_a_generator_that_copies_a_tenth_of_its_training_windows(windows):
    """The median distance barely moves when a tenth is copied; the attack at a 5 % false positive rate does."""
    train, holdout, fresh = windows
    groups = np.arange(len(train)) // 10  # ten windows per recording
    mixed = np.concatenate([fresh[:360], train[:40] + 0.01])
    assert memorisation(train, holdout, mixed, n_boot=0).passes()
    attack = membership(train, holdout, mixed, train_groups=groups, holdout_groups=groups, n_boot=300)
    assert attack.tpr >= 0.1 + 0.9 * 0.02 and not attack.passes() and attack.auc > 0.55
    assert attack.ci[0] < attack.tpr < attack.ci[1] and attack.ci[0] > attack.fpr
    fair = membership(train, holdout, fresh, train_groups=groups, holdout_groups=groups, n_boot=300)
    assert fair.passes() and fair.ci[0] < fair.fpr < fair.ci[1] and abs(fair.auc - 0.5) < 0.05
    assert membership(train, holdout, train + 0.01, n_boot=0).tpr == 1.0 and np.isnan(fair.ci).sum() == 0


@pytest.mark.parametrize(("name", "value"), [("fpr", 0.0), ("fpr", 1.5), ("max_queries", 0), ("n_boot", -1)])
def test_membership_parameters_are_checked_before_any_work(windows, name, value):
    train, holdout, fresh = windows
    with pytest.raises(ParameterError, match=name):
        membership(train, holdout, fresh, **{name: value})


def test_subsampling_is_seeded_and_sampled_copies_are_caught(windows):
    train, holdout, _ = windows
    copies = train + 0.01
    result = memorisation(train, holdout, copies, max_reference=200, max_queries=150, n_boot=100, seed=3)
    assert (result.n_train, result.n_holdout, result.n_released) == (200, 150, 150)
    assert 0.35 <= result.close_share <= 0.65  # only copies of the sampled half of the training windows are caught
    assert memorisation(train, holdout, copies, max_reference=200, max_queries=150, n_boot=100, seed=3) == result


def test_group_bootstrap_widens_the_interval_for_correlated_windows(windows):
    train, holdout, _ = windows
    rng = np.random.default_rng(4)
    base = gait_windows(rng, 20)  # 20 "recordings" of 20 nearly identical windows each
    released = np.repeat(base, 20, axis=0) + rng.normal(0, 0.05, (400, 32, 3)).astype(np.float32)
    groups = np.repeat(np.arange(20), 20)
    per_window = memorisation(train, holdout, released, n_boot=500)
    per_group = memorisation(train, holdout, released, released_groups=groups, n_boot=500)
    assert per_group.ratio == per_window.ratio
    assert per_group.ci[1] - per_group.ci[0] > 2 * (per_window.ci[1] - per_window.ci[0])


def test_memorisation_rejects_bad_input(windows):
    train, holdout, released = windows
    with pytest.raises(DataError, match=r"training windows must be a non-empty array .* got shape \(0, 32, 3\)"):
        memorisation(train[:0], holdout, released)
    with pytest.raises(DataError, match="held-out windows must be .*shaped"):
        memorisation(train, holdout[:, :, 0], released)
    with pytest.raises(DataError, match=r"released windows have \(time, channels\) \(16, 3\) but training"):
        memorisation(train, holdout, released[:, :16])
    with pytest.raises(DataError, match="released windows contain non-finite"):
        memorisation(train, holdout, np.where(np.arange(32)[None, :, None] == 5, np.nan, released))
    with pytest.raises(DataError, match=r"released_groups has shape \(3,\)"):
        memorisation(train, holdout, released, released_groups=np.arange(3))
    with pytest.raises(DataError, match="held-out windows are copies of training windows"):
        memorisation(train, train, released)
    with pytest.raises(ParameterError, match="max_queries"):
        memorisation(train, holdout, released, max_queries=0)
    with pytest.raises(ParameterError, match="close_quantile"):
        memorisation(train, holdout, released, close_quantile=1.0)


def test_publish_coarsens_only_where_exact_metadata_links_and_the_judges_still_see_every_sample(original, release):
    exact = align_released(original, release.dataset, release.recording_linkage)
    plan = workflow.plan_publication(original, None, 1.28)  # measured: exact lengths re-link every recording
    assert not plan.runs and plan.quantum_s is not None
    published = workflow.publish(release, plan, 1.28)
    assert published.padding and set(published.padding) == set(release.dataset.recordings["recording"])
    lengths = published.dataset.recordings["length"].to_numpy()
    quantum = round(published.metadata_quantum_s * original.sampling_rate)
    assert (lengths % quantum == 0).all() and (lengths >= release.dataset.recordings["length"].to_numpy()).all()
    for by in ("recording", "pseudonym"):
        assert metadata_linkage(original, published.dataset, release.recording_linkage, by=by, n_boot=0).passes()
    judged = align_released(original, published.dataset, published.recording_linkage, published.padding)
    assert np.array_equal(judged.signals, exact.signals)  # the padding is undone sample for sample
    kept = workflow.plan_publication(original, 0, 1.28)  # 0: exact lengths, on the steward's word
    assert kept.quantum_s is None and workflow.publish(release, kept, 1.28).padding == {}
    forced = workflow.publish(release, workflow.plan_publication(original, 20.0, 0.0), 0.0)
    assert (forced.dataset.recordings["length"].to_numpy() % 200 == 0).all()
    with pytest.raises(DataError, match="padding record does not cover"):
        align_released(original, published.dataset, published.recording_linkage, {"R-x": 0})


def _none_release(ds: SensorDataset) -> Release:
    anonymiser = methods.build(AnonymiserConfig(method="none")).fit(
        make_windows(ds, 1.0).X, np.zeros(1), np.zeros(1), subjects=ds.subject_ids, channels=ds.channels)
    return anonymise_dataset(ds, anonymiser, name="released")


def test_publish_keeps_exact_metadata_that_does_not_link():
    """Fixed-length single-activity recordings, the same number per person: nothing is padded or split."""
    ds = tiny_dataset([30] * 60, [f"s{i % 6}" for i in range(60)], [np.full(30, (i // 6) % 2) for i in range(60)])
    plan = workflow.plan_publication(ds, None, 0.5)
    assert plan == workflow.Publication(False, "subject", None)
    published = workflow.publish(_none_release(ds), plan, 0.5)
    assert published.padding == {} and published.dataset.recordings["subject"].nunique() == 6


def habit_dataset() -> SensorDataset:
    """Fixed-length single-activity recordings; each person did the two activities a different number of times.

    No recording says whose it is, but a person's *set* of recordings does: what pseudonyms shared
    by a person's recordings give away."""
    lengths, subjects, labels = [], [], []
    for s in range(6):
        for i in range(8):
            lengths.append(30)
            subjects.append(f"s{s}")
            labels.append(np.full(30, int(i < s + 1)))
    return tiny_dataset(lengths, subjects, labels)


def test_shared_pseudonyms_link_a_persons_set_of_recordings_and_per_recording_pseudonyms_stop_it():
    ds = habit_dataset()
    release = _none_release(ds)
    one = metadata_linkage(ds, release.dataset, release.recording_linkage, n_boot=0)
    group = metadata_linkage(ds, release.dataset, release.recording_linkage, by="pseudonym", n_boot=0)
    assert one.passes() and one.score <= 2 / 6  # one recording at a time: near chance
    assert group.accuracy == 1.0 and not group.passes() and np.isnan(group.exact_link_rate)
    plan = workflow.plan_publication(ds, None, 0.5)
    assert plan == workflow.Publication(False, "recording", None)
    published = workflow.publish(release, plan, 0.5)
    pseudonyms = published.dataset.recordings["subject"]
    assert pseudonyms.is_unique and set(published.dataset.subjects["subject"]) == set(pseudonyms)
    assert {published.subject_linkage[p] for p in pseudonyms} == set(ds.subject_ids)  # privately: who is who
    after = metadata_linkage(ds, published.dataset, published.recording_linkage, by="pseudonym", n_boot=0)
    assert after.passes() and after.score <= 2 / 6
    with pytest.raises(ParameterError, match="by"):
        metadata_linkage(ds, release.dataset, release.recording_linkage, by="subject")


def session_dataset(n_subjects: int = 8, sessions: int = 2, n_runs: int = 24, rate: float = 2.0,
                    lead_s: float = 0.0) -> SensorDataset:
    """Long sessions of many activity runs (5–30 s each, drawn afresh; the first ``lead_s`` longer): HAPT's
    shape. The sequence of run durations makes every session unique at any length quantum, while single
    runs are alike."""
    rng = np.random.default_rng(3)
    lengths, subjects, labels = [], [], []
    for s in range(n_subjects):
        for _ in range(sessions):
            runs = np.round((rng.uniform(5, 30, n_runs) + lead_s * (np.arange(n_runs) == 0)) * rate).astype(int)
            label = np.repeat(np.arange(n_runs) % 3, runs)
            label[np.cumsum(runs)[:-1]] = -1  # an unlabelled sample between runs, as HAPT has
            lengths.append(len(label))
            subjects.append(f"s{s}")
            labels.append(label)
    return tiny_dataset(lengths, subjects, labels, rate=rate)


def test_sessions_that_relink_at_every_quantum_are_published_run_by_run():
    from anonaudit.data.runs import SOURCE_COLUMN, run_assignment, split_runs

    ds = session_dataset()
    plan = workflow.plan_publication(ds, None, 1.0)
    assert plan.runs and plan.pseudonyms == "recording", plan
    assert not workflow.plan_publication(ds, None, 1.0, runs=False).runs  # fixed by the steward: refused later
    runs = split_runs(ds)
    assert len(runs.recordings) == 8 * 2 * 24 and (runs.labels >= 0).all()  # the unlabelled samples are left out
    assert runs.recordings[SOURCE_COLUMN].isin(ds.recordings["recording"]).all()
    # every run is one activity, cut where its recording has it
    first = ds.recordings.iloc[0]
    part = runs.recordings[runs.recordings[SOURCE_COLUMN] == first["recording"]]
    assert [np.unique(runs.labels[s:s + n]).tolist() for s, n in zip(part["start"], part["length"])] == \
        [[i % 3] for i in range(24)]
    assert np.array_equal(runs.signals[part["start"].iloc[1]], ds.signals[first["start"] + part["length"].iloc[0] + 1])
    split = run_assignment(runs, {r: "train" if i % 2 else "test" for i, r in enumerate(ds.recordings["recording"])})
    assert {split[r] for r in part["recording"]} == {"test"}  # a session's runs stay on its side
    published = workflow.publish(_none_release(runs), plan, 1.0)
    assert published.runs and published.dataset.recordings["subject"].is_unique
    whole = _none_release(ds)
    for by in ("recording", "pseudonym"):
        assert metadata_linkage(runs, published.dataset, published.recording_linkage, by=by, n_boot=0).passes()
        assert not metadata_linkage(ds, whole.dataset, whole.recording_linkage, by=by, n_boot=0).passes()


def test_an_anonymise_job_publishes_long_sessions_run_by_run_and_the_release_check_rebuilds_them(db_url, tmp_path):
    import json

    from typer.testing import CliRunner

    from anonaudit import api
    from anonaudit.cli import app
    from anonaudit.store import jobs as job_store

    # the recording split deals each person's sessions of one (main) activity out to 3 parts
    ds = session_dataset(n_subjects=5, sessions=4, n_runs=24, rate=5.0, lead_s=250.0)
    ds = replace(ds, name="sessions", signals=np.random.default_rng(0).normal(size=ds.signals.shape))
    ds.save(tmp_path / "sessions")
    api.import_dataset(tmp_path / "sessions", name="sessions")
    fast = {"window_s": 4.0, "stride_s": 2.0, "har_model": "forest", "attackers": ["knn", "lda"],
            "biometric_model": "knn", "epochs": 1, "n_boot": 30}
    job = api.run("anonymise", {"dataset": "sessions", "method": "synth", "name": "sessions-runs", **fast})
    assert job["status"] == "succeeded", job.get("error")
    result = job["result"]
    assert result["published_runs"] is True and result["pseudonyms"] == "recording"
    published = api.open_dataset("sessions-runs")
    assert len(published.recordings) == 5 * 4 * 24 and published.recordings["subject"].is_unique
    assert (published.labels >= 0).all() and all(
        len(np.unique(published.labels[s:s + n])) == 1 for s, n in zip(published.recordings["start"],
                                                                         published.recordings["length"]))
    linkage = json.loads(job_store.artifact_files(job["id"])["private/linkage.json"].read_text())
    assert linkage["runs"] is True and set(linkage["recordings"].values()) <= {
        f"r{i}:{k}" for i in range(20) for k in range(24)}
    verdict = json.loads(job_store.artifact_files(job["id"])["release_check.json"].read_text())
    attackers = {c["attacker"] for c in verdict["checks"] if c["threat"] == "metadata"}
    assert attackers == {"duration and activity-sequence matcher", "pseudonym-group matcher"}
    check = api.run("release_check", {"dataset": "sessions-runs", "attackers": ["knn"], "n_boot": 20, "epochs": 1})
    assert check["status"] == "succeeded", check.get("error")
    again = json.loads(job_store.artifact_files(check["id"])["release_check.json"].read_text())
    assert {c["attacker"] for c in again["checks"] if c["threat"] == "metadata"} == attackers
    out = CliRunner().invoke(app, ["release-check", "sessions-runs", "--attacker", "knn"])
    assert out.exit_code == (1 if "NOT releasable" in out.output else 0), out.output
    assert "releasable" in out.output, out.output  # the verdict in words, from the rebuilt run source
