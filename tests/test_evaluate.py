"""Evaluation: metrics, alignment checks, training-window sampling, models and the protocols."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score

from anonaudit import api
from anonaudit.data.loaders import load_dataset
from anonaudit.data.synthetic import SampleSpec, write_sample_data
from anonaudit.data.windows import make_windows
from anonaudit.errors import DataError, ParameterError
from anonaudit.evaluate.attackers import aggregate_by_group, make_classifier
from anonaudit.evaluate.features import feature_names, window_features, xyz_triads
from anonaudit.evaluate.metrics import chance_levels, classification_report, js_divergence
from anonaudit.evaluate.protocols import EvalConfig, align_released, evaluate, sample_training_windows
from anonaudit.models.classifiers import ARCHITECTURES, build_classifier
from anonaudit.models.training import TrainConfig, asymmetric_loss

FAST = dict(har_model="forest", reid_model="knn", attackers=("forest",), biometric_model="knn",
            attributes=("gender", "height_cm"), n_boot=200, window_s=1.0, stride_s=1.0)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    write_sample_data(out, SampleSpec(n_subjects=12, n_trials=3, duration_s=4.0))
    return load_dataset(out / "mapping.toml")


def test_metrics_match_sklearn_and_chance():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    pred = np.where(rng.random(400) < 0.7, y, rng.integers(0, 4, 400))
    rep = classification_report(y, pred, 5, groups=rng.integers(0, 8, 400), n_boot=300)
    assert rep.scores["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert rep.scores["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert rep.scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    lo, hi = rep.ci["accuracy"]
    assert lo < rep.scores["accuracy"] < hi and hi - lo > 0.01
    prior = np.bincount(y) / len(y)
    assert rep.chance["weighted_f1"] == pytest.approx((prior**2).sum())
    assert rep.chance["accuracy"] == pytest.approx(prior.max())
    assert classification_report(y, pred, 5).ci == {}  # no groups, no (dishonestly narrow) interval
    # a class that is never predicted shows recall 0, not hidden in an average
    assert classification_report(y, np.where(pred == 3, 0, pred), 5).per_class["recall"][3] == 0
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0) and js_divergence([1, 2], [1, 2]) == 0


def test_chance_levels_binary():
    assert chance_levels(np.array([0, 0, 0, 1]), 2)["balanced_accuracy"] == 0.5


def test_align_released_rejects_mismatches(sample):
    ok = align_released(sample, sample)
    assert np.array_equal(ok.signals, sample.signals)
    with pytest.raises(DataError, match="channels"):
        align_released(sample, replace(sample, channels=[c + "_x" for c in sample.channels]))
    with pytest.raises(DataError, match="Hz"):
        align_released(sample, replace(sample, sampling_rate=25.0))
    short = sample.recordings.iloc[1:].copy()
    short["start"] -= short["start"].iat[0]
    with pytest.raises(DataError, match="lacks recordings"):
        align_released(sample, replace(sample, recordings=short, signals=sample.signals[sample.recordings["length"].iat[0]:],
                                       labels=sample.labels[sample.recordings["length"].iat[0]:]))
    renamed = sample.recordings.assign(recording="anon_" + sample.recordings["recording"])
    linkage = dict(zip(renamed["recording"], sample.recordings["recording"]))
    assert align_released(sample, replace(sample, recordings=renamed), linkage).n_samples == sample.n_samples


@pytest.mark.parametrize("mode,expected", [("random", 2), ("equidistant", 2), ("uniform", 2)])
def test_training_window_sampling(sample, mode, expected):
    w = make_windows(sample, 0.5, 0.5)
    out = sample_training_windows(w, mode, 2, np.random.default_rng(0))
    counts = np.bincount(out.recording)
    assert counts[counts > 0].max() <= expected + 1 and set(out.recording) == set(w.recording)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_architectures_forward_and_learn(arch):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 24, 4)).astype(np.float32)
    y = (X[:, :, 0].mean(1) > 0).astype(int)
    X[:, :, 1] += 3 * y[:, None]  # an easy signal
    clf = make_classifier(arch, 2, config=TrainConfig(epochs=8, batch_size=16, lr=1e-3, optimizer="adam"),
                          channel_groups={"a": [0, 1], "b": [2, 3]})
    clf.fit(X[:64], y[:64], X[64:], y[64:])
    proba = clf.predict_proba(X[64:])
    assert proba.shape == (32, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert (proba.argmax(1) == y[64:]).mean() >= 0.8


def test_model_parameter_errors():
    with pytest.raises(ParameterError, match="arch"):
        build_classifier("resnet", 3, 64, 2)
    with pytest.raises(ParameterError, match="window_length"):
        build_classifier("tcnn", 3, 10, 2)


def test_asymmetric_loss_reduces_to_binary_cross_entropy():
    logits = torch.randn(6, 3)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    onehot = torch.nn.functional.one_hot(target, 3).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, onehot, reduction="none").sum(1).mean()
    assert asymmetric_loss(logits, target, gamma_neg=0, gamma_pos=0, margin=0) == pytest.approx(float(bce), rel=1e-4)
    assert asymmetric_loss(logits, target) < bce  # easy negatives down-weighted


def test_window_features_names_triads_and_rotation_invariance():
    channels = ["acc_x", "acc_y", "acc_z", "gyro-x", "gyro-y", "gyro-z", "temp"]
    assert xyz_triads(channels) == [(0, 1, 2), (3, 4, 5)]
    X = np.random.default_rng(0).normal(size=(5, 64, 7)).astype(np.float32)
    F = window_features(X, channels)
    names = feature_names(channels)
    assert F.shape == (5, len(names)) and np.isfinite(F).all()
    # rotating the accelerometer leaves its magnitude's features unchanged
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    rotated = X.copy()
    rotated[:, :, :3] = X[:, :, :3] @ q.T.astype(np.float32)
    norm_cols = [i for i, n in enumerate(names) if n.startswith("acc_norm")]
    assert len(norm_cols) > 10
    assert np.allclose(window_features(rotated, channels)[:, norm_cols], F[:, norm_cols], atol=1e-3)
    assert not np.allclose(window_features(rotated, channels)[:, 0], F[:, 0])  # raw axes do change
    assert window_features(X).shape[1] == len(feature_names(["a", "b", "c", "d", "e", "f", "g"]))


def test_per_activity_attacker_uses_the_stratum():
    """Identity shows only in one activity: a per-activity model finds it, the pooled one is diluted."""
    rng = np.random.default_rng(0)
    n, subjects = 600, rng.integers(0, 3, 600)
    activity = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 32, 2)).astype(np.float32)
    X[:, :, 0] += np.where(activity == 0, subjects, -subjects)[:, None]  # sign flips with activity
    tr, te = slice(0, 400), slice(400, None)
    scores = {}
    for name in ("logreg", "logreg_act"):
        clf = make_classifier(name, 3).fit(X[tr], subjects[tr], strata=activity[tr])
        scores[name] = (clf.predict_proba(X[te], strata=activity[te]).argmax(1) == subjects[te]).mean()
    assert scores["logreg_act"] > 0.9 and scores["logreg_act"] > scores["logreg"] + 0.2
    with pytest.raises(ParameterError, match="strata"):
        make_classifier("knn_act", 3).fit(X, subjects)
    with pytest.raises(ParameterError, match="har_model"):
        EvalConfig(har_model="logreg_act").check()  # conditioning HAR on the activity would be cheating
    with pytest.raises(ParameterError, match="attackers"):
        EvalConfig(attackers=("resnet",)).check()


def test_reid_assignment_must_cover_every_subject(sample):
    recs = sample.recordings
    only_first = {r: ("train" if s == recs["subject"].iat[0] else "test") for r, s in zip(recs["recording"], recs["subject"])}
    with pytest.raises(DataError, match="no recordings in the re-identification 'train' split"):
        evaluate(sample, None, EvalConfig(**FAST), reid_assignment=only_first)


def test_recording_level_aggregation():
    ids, mean = aggregate_by_group(np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]]), np.array([5, 5, 7]))
    assert ids.tolist() == [5, 7] and np.allclose(mean[0], [0.65, 0.35])


def test_protocols_on_sample_data(sample):
    cfg = EvalConfig(**FAST)
    same = evaluate(sample, align_released(sample, sample), cfg).table()
    acc = same[(same.metric == "accuracy") & (same.level == "window")].set_index(["protocol", "model", "train_data", "test_data"])["value"]
    # identical "released" data: frozen models score exactly as on real data
    assert acc[("utility", "forest", "real", "released")] == acc[("utility", "forest", "real", "real")]
    assert acc[("privacy", "knn", "real", "released")] == acc[("privacy", "knn", "real", "real")]
    assert acc[("utility", "forest", "real", "real")] > 0.6  # HAR well above chance (0.2)
    assert acc[("privacy", "knn", "real", "real")] > 0.3  # re-identification well above chance (1/12)
    # released data replaced by noise: retrained attackers fall to about chance
    noise = replace(sample, signals=np.random.default_rng(1).normal(size=sample.signals.shape).astype(np.float32))
    res = evaluate(sample, align_released(sample, noise), cfg)
    t = res.table()
    retrained = t[(t.protocol == "privacy") & t.train_data.str.endswith("(retrained)") & (t.metric == "accuracy") & (t.level == "window")]
    assert (retrained["value"] < 3 * retrained["chance"]).all()
    har_rel = t[(t.protocol == "utility") & (t.test_data == "released") & (t.metric == "weighted_f1") & (t.level == "window")]["value"]
    assert har_rel.max() < 0.5
    assert res.fidelity["har_prediction_jsd"] > 0.05
    assert set(t[t.protocol == "soft_biometrics"].target) == {"gender", "height_cm"}


def test_evaluate_job_stores_metrics_and_figures(db_url, tmp_path):
    write_sample_data(tmp_path / "s", SampleSpec(n_subjects=12, n_trials=3, duration_s=4.0))
    api.import_dataset(tmp_path / "s" / "mapping.toml", name="s")
    params = {"dataset": "s", **{k: list(v) if isinstance(v, tuple) else v for k, v in FAST.items()}}
    job = api.run("evaluate", params)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["har_wf1_real"] > 0.5 and job["result"]["reid_chance"] == pytest.approx(1 / 12, abs=1e-3)
    names = {a["name"] for a in job["artifacts"]}
    assert {"scores.csv", "scores.parquet", "privacy_utility.png", "har_real_to_real_window_confusion.png"} <= names
    m = [x for x in job["metrics"] if x["name"] == "accuracy" and x["tags"]["protocol"] == "privacy"]
    assert m and all("chance" in x["tags"] for x in m)
    with pytest.raises(ParameterError, match="attributes"):
        api.run("evaluate", {"dataset": "s", **{k: list(v) if isinstance(v, tuple) else v for k, v in FAST.items()},
                             "attributes": ["shoe_size"]})
