"""Activity-conditioned synthesis with subject-level DP (issue 17, method 1's DP variant): the ε it spends."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anonaudit import api
from anonaudit.anonymise import dpsynth, methods
from anonaudit.anonymise.config import AnonymiserConfig
from anonaudit.anonymise.dpsynth import PrivateSynthesis
from anonaudit.errors import DataError, ParameterError
from anonaudit.jobs.kinds.anonymise import AnonymiseParams
from anonaudit.private.dp import epsilon_for_noise
from anonaudit.private.mechanism import gaussian_sum
from anonaudit.store import datasets as dataset_store
from anonaudit.store import jobs as job_store
from factories import import_imu_sample
from test_hardening import _cli
from test_synth import C, T, _walks

SUBJECTS = [f"P{i}" for i in range(30)]


def _subjects_walks() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The synthesis tests' walks spread over 30 subjects (two recordings each)."""
    X, _, activity, recording = _walks(n_rec=60)
    return X, recording // 2, activity, recording


def _fit(epsilon: float, X: np.ndarray, subject: np.ndarray, activity: np.ndarray,
         recording: np.ndarray) -> PrivateSynthesis:
    return PrivateSynthesis(AnonymiserConfig(method="dp_synth", epsilon=epsilon)).fit(
        X, subject, activity, recording=recording, subjects=SUBJECTS[: subject.max() + 1],
        channels=[f"c{i}" for i in range(C)], n_activities=2)


def test_the_epsilon_reported_is_the_accountants_for_the_noise_used():
    X, subject, activity, recording = _subjects_walks()
    spent = _fit(5.0, X, subject, activity, recording).privacy_
    assert spent.unit == "subject" and spent.n_units == 30 and spent.delta == pytest.approx(1 / 300)
    assert spent.steps == 1 and spent.sample_rate == 1.0 and not spent.noise_from_seed
    assert spent.epsilon == pytest.approx(epsilon_for_noise(spent.noise_multiplier, spent.delta, 1.0, 1))
    assert 4.9 <= spent.epsilon <= 5.0  # the least noise that stays within the target
    assert spent.epsilon_prv is not None and spent.epsilon_prv <= spent.epsilon * 1.01


def test_the_mechanism_clips_each_unit_so_one_person_moves_the_sum_by_at_most_the_clip():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(20, 4000))
    outlier = np.vstack([rows, 1e6 * np.ones(4000)])  # one person with an enormous contribution
    without, spent = gaussian_sum(rows, 2.0, delta=1e-3, rng=np.random.default_rng(1))
    with_, _ = gaussian_sum(outlier, 2.0, delta=1e-3, rng=np.random.default_rng(1))
    assert np.linalg.norm(with_ - without) == pytest.approx(1.0)  # the same noise draw: the difference is the clip
    noise = without - np.sum(rows / np.linalg.norm(rows, axis=1, keepdims=True), axis=0)
    assert noise.std() == pytest.approx(spent.noise_multiplier, rel=0.05) and spent.noise_from_seed


def test_every_subject_contributes_at_most_norm_one_however_many_windows_it_has(monkeypatch):
    X, subject, activity, recording = _subjects_walks()
    heavy = np.r_[subject, np.zeros(600, int)]  # subject 0 holds 600 more windows
    X, activity, recording = (np.concatenate([X, np.tile(X[:20], (30, 1, 1))]), np.r_[activity, np.tile(activity[:20], 30)],
                              np.r_[recording, np.repeat(np.arange(30) + 100, 20)])
    seen = []

    def spy(contributions, epsilon, **kwargs):
        seen.append(contributions)
        return gaussian_sum(contributions, epsilon, **kwargs)

    monkeypatch.setattr(dpsynth, "gaussian_sum", spy)
    _fit(10.0, X, heavy, activity, recording)
    [rows] = seen
    assert len(rows) == 30 and np.linalg.norm(rows, axis=1).max() <= 1.0 + 1e-9


def test_a_large_epsilon_recovers_each_activity_and_a_small_one_does_not():
    X, subject, activity, recording = _subjects_walks()
    act = np.repeat([0, 1], 200)
    rec = np.repeat([0, 1], 200)

    def level_error(epsilon: float) -> float:
        """How far channel 2's level per activity (0 and 5 in the training walks) lands, over five fits."""
        errors = []
        for _ in range(5):
            out = _fit(epsilon, X, subject, activity, recording).transform(
                np.zeros((400, T, C), np.float32), activity=act, recording=rec, seed=1)
            errors.append(abs(out[:200, :, 2].mean() - 0.0) + abs(out[200:, :, 2].mean() - 5.0))
        return float(np.median(errors))

    assert level_error(1e3) < 0.5
    assert level_error(1.0) > 2 * level_error(1e3)


def test_the_noise_comes_from_the_operating_system_and_the_saved_model_keeps_its_budget(tmp_path):
    X, subject, activity, recording = _subjects_walks()
    a, b = (_fit(50.0, X, subject, activity, recording) for _ in range(2))
    assert not np.allclose(a.means_, b.means_)  # same configuration and seed, fresh noise
    again = methods.load(a.save(tmp_path / "dp.pt"))
    assert isinstance(again, PrivateSynthesis) and again.privacy_ == a.privacy_
    kwargs = dict(activity=np.tile([0, 1], 10), recording=np.repeat(np.arange(4), 5), seed=3)
    assert np.allclose(a.transform(np.zeros((20, T, C), np.float32), **kwargs),
                       again.transform(np.zeros((20, T, C), np.float32), **kwargs), atol=1e-5)


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.inf, 1e5])
def test_an_epsilon_out_of_range_is_named_before_any_work(epsilon):
    with pytest.raises(ParameterError, match="epsilon") as err:
        AnonymiseParams(dataset="d", method="dp_synth", epsilon=epsilon).check()
    assert err.value.name == "epsilon"


def test_one_subject_cannot_be_protected_at_subject_level():
    X, subject, activity, recording = _subjects_walks()
    with pytest.raises(DataError, match="at least two subjects"):
        _fit(10.0, X, np.zeros(len(X), int), activity, recording)


def test_a_dp_synth_job_reports_its_budget_from_the_cli_and_the_api(db_url, tmp_path, capsys, monkeypatch):
    name = import_imu_sample(tmp_path, n_subjects=8, n_trials=3)
    fast = {"window_s": 1.0, "stride_s": 0.5, "har_model": "forest", "attackers": ["knn", "lda"],
            "biometric_model": "knn", "epochs": 1, "n_boot": 30}
    job = api.run("anonymise", {"dataset": name, "method": "dp_synth", "epsilon": 20.0, "name": "s-dp", **fast})
    assert job["status"] == "succeeded", job.get("error")
    result = job["result"]
    assert result["privacy_unit"] == "subject" and result["delta"] == pytest.approx(1 / 80)
    assert result["epsilon"] == pytest.approx(epsilon_for_noise(result["noise_multiplier"], 1 / 80, 1.0, 1))
    assert result["epsilon"] <= 20.0
    assert "releasable" in result  # judged under every threat model like any release
    for bad in ("0", "1e5"):
        code, out = _cli(capsys, monkeypatch, "anonymise", name, "--method", "dp_synth", "--epsilon", bad, "--name", "s-bad")
        assert code == 2 and out.startswith("error: parameter 'epsilon'"), out
    code, out = _cli(capsys, monkeypatch, "anonymise", name, "--method", "dp_synth", "--epsilon", "30", "--name", "s-cli",
                     "--window-s", "1", "--stride-s", "0.5", "--no-evaluate")
    assert code == 0 and "s-cli" in out and "WITHHELD" in out, out  # not judged: kept back
    [cli_job] = [j for j in job_store.list_jobs(kind="anonymise") if j["result"] and j["result"]["released"] == "s-cli"]
    assert cli_job["result"]["epsilon"] <= 30.0
    assert dataset_store.find_dataset("s-bad") is None
    statuses = [j["status"] for j in job_store.list_jobs(kind="anonymise")]
    assert statuses.count("succeeded") == 2 and len(statuses) == 2, statuses  # the refused ones queued nothing
