"""DP VAEs (issue 5): per-sample gradients, accounting, subject-level clipping, audits, bad input, jobs, page."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from anonaudit.errors import ParameterError
from anonaudit.private import dp, evaluation
from anonaudit.private.layers import InputSpec
from anonaudit.private.vae_ann import ANNVAE, VAEConfig
from anonaudit.private.vae_spiking import SpikingVAE

TINY = VAEConfig(widths=(4, 8), latent=6, n_steps=4, k=3)
SPEC = InputSpec(1, (8, 8))
JOB = {"data": "digits", "epochs": 1, "batch_size": 100, "n_train": 200, "widths": [4, 8], "latent": 8, "n_steps": 4,
       "k": 3, "n_eval": 60, "attack_iters": 3, "n_attack": 10, "mia_draws": 1, "reference_epochs": 2}
PAGE = Path(__file__).resolve().parents[1] / "app" / "views" / "3_Private_models.py"


def digits(n: int = 200) -> np.ndarray:
    from anonaudit.private.data import load

    return load("digits").X[:n]


# ---------------------------------------------------------------------------- Opacus compatibility
@pytest.mark.parametrize("model_cls", [ANNVAE, SpikingVAE])
@pytest.mark.parametrize("spec", [SPEC, InputSpec(3, (16,))], ids=["image", "sensor"])
def test_opacus_per_sample_gradients_equal_per_example_autograd(model_cls: type, spec: InputSpec) -> None:
    torch.manual_seed(0)
    model = model_cls(spec, replace(TINY, n_steps=7)).double()
    model.scheduled_p = 0.5  # the spiking VAE's scheduled sampling must not couple examples either
    x = torch.rand(5, spec.channels, *spec.size, dtype=torch.float64) * 2 - 1
    gsm, _ = dp.make_private(model, torch.optim.SGD(model.parameters(), lr=0.0), 1.0, 1.0, 5)
    torch.manual_seed(1)
    gsm(x).mean().backward()
    per_sample = {n: p.grad_sample.clone() for n, p in model.named_parameters()}
    gsm.disable_hooks()
    torch.manual_seed(1)  # the same latent draws: one batch forward, one gradient per example's loss
    losses = model(x)
    for i in range(len(x)):
        grads = torch.autograd.grad(losses[i], list(model.parameters()), retain_graph=True, allow_unused=True)
        for (name, p), g in zip(model.named_parameters(), grads):
            expected = torch.zeros_like(p) if g is None else g
            assert torch.allclose(per_sample[name][i], expected, atol=1e-10), (name, i)
    assert any(per_sample[n].abs().sum() > 0 for n in per_sample)


def test_scheduled_sampling_feeds_the_prior_its_own_predictions() -> None:
    from anonaudit.private.vae_spiking import shift

    torch.manual_seed(0)
    model = SpikingVAE(SPEC, replace(TINY, n_steps=8))  # k = 3: a mean of k spikes is never exactly ½
    z = (torch.rand(5, TINY.latent, 8) < 0.5).float()
    model.train()
    model.scheduled_p = 1.0
    expected = z.clone()
    for t in range(5, 8):  # from step 5 on, each z_t is the prior's thresholded mean given the replaced past
        expected[..., t] = (model._candidates(model.prior, shift(expected))[..., t].mean(2) > 0.5).float()
    fed = model.prior_input(z)
    assert torch.equal(fed, shift(expected)) and torch.equal(fed[..., :6], shift(z)[..., :6])
    assert not torch.equal(fed, shift(z))
    model.eval()  # never at generation or evaluation time
    assert torch.equal(model.prior_input(z), shift(z))
    model.on_epoch(0, 10)
    assert model.scheduled_p == pytest.approx(0.1)
    model.on_epoch(9, 10)
    assert model.scheduled_p == pytest.approx(0.28)
    off = SpikingVAE(SPEC, replace(TINY, scheduled=False))
    off.on_epoch(5, 10)
    assert off.scheduled_p == 0.0


# ---------------------------------------------------------------------------- accounting
def test_epsilon_matches_opacus_privacy_engine() -> None:
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.randn(100, 3), torch.randn(100, 1))
    model = nn.Linear(3, 1)
    engine = PrivacyEngine(accountant="rdp")
    model, opt, loader = engine.make_private(module=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                             data_loader=DataLoader(data, batch_size=20), noise_multiplier=1.3,
                                             max_grad_norm=1.0)
    steps = 0
    for _ in range(3):
        for xb, yb in loader:
            opt.zero_grad()
            ((model(xb) - yb) ** 2).mean().backward()
            opt.step()
            steps += 1
    assert math.isclose(dp.epsilon_for_noise(1.3, 1e-3, 0.2, steps), engine.get_epsilon(1e-3), rel_tol=1e-9)


def test_training_reports_the_accountants_epsilon_for_the_noise_used() -> None:
    history = dp.train(ANNVAE(SPEC, TINY), digits(), dp.DPConfig(epochs=2, batch_size=50, noise_multiplier=1.1))
    priv = history.privacy
    assert priv.noise_multiplier == 1.1 and priv.steps == 8 and priv.sample_rate == 0.25
    assert priv.epsilon == pytest.approx(dp.epsilon_for_noise(1.1, priv.delta, 0.25, 8))
    assert priv.epsilon_prv is not None and 0.5 * priv.epsilon < priv.epsilon_prv <= priv.epsilon * 1.05


def test_empty_poisson_batches_still_take_noisy_steps() -> None:
    model = ANNVAE(SPEC, TINY)
    before = [p.detach().clone() for p in model.parameters()]
    history = dp.train(model, digits(10), dp.DPConfig(epochs=3, batch_size=1, noise_multiplier=1.0, seed=4,
                                                       reproducible_noise=True))
    assert history.privacy.steps == 30 and history.privacy.noise_from_seed  # q = 0.1: several steps see no example
    assert not any(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_target_epsilon_round_trip() -> None:
    for eps in (1.0, 5.0, 10.0):
        sigma = dp.noise_for_epsilon(eps, 1e-5, 0.01, 1000)
        got = dp.epsilon_for_noise(sigma, 1e-5, 0.01, 1000)
        assert 0.98 * eps <= got <= eps * 1.001
        assert dp.epsilon_for_noise(sigma * 0.95, 1e-5, 0.01, 1000) > eps  # less noise would overspend


def test_issue_scale_figures_at_the_papers_mnist_setting() -> None:
    q, steps, delta = 250 / 60_000, 150 * 240, 1 / 60_000
    assert 9.0 < dp.epsilon_for_noise(0.73, delta, q, steps) < 11.0
    assert 0.85 < dp.epsilon_for_noise(3.2, delta, q, steps) < 1.15
    assert dp.epsilon_for_noise(0.001, delta, q, steps) > 1e9  # the paper's "ε = 10" is no privacy at all


def test_group_privacy_for_window_level_dp_grows_with_windows() -> None:
    one = dp.group_epsilon(1.0, 1e-6, 1)
    assert one["epsilon_group"] == 1.0 and one["delta_group"] == pytest.approx(1e-6)
    five = dp.group_epsilon(1.0, 1e-6, 5)
    assert five["epsilon_group"] == 5.0 and five["delta_group"] == pytest.approx(5 * math.exp(4) * 1e-6)
    vacuous = dp.group_epsilon(10.0, 1e-6, 50)
    assert vacuous["vacuous"] == 1.0 and vacuous["delta_group"] == 1.0


def test_subject_level_clipping_bounds_a_subjects_contribution() -> None:
    torch.manual_seed(0)
    model = ANNVAE(SPEC, TINY)
    x = torch.as_tensor(digits(40)) * 1.0
    owner = np.zeros(40, dtype=np.int64)  # one subject with 40 windows
    C = 0.5

    def update(subject_level: bool) -> float:
        net, opt = dp.make_private(model, torch.optim.SGD(model.parameters(), lr=0.0), 0.0, C, 1)
        dp.step(net, opt, x, owner if subject_level else np.arange(40), 1 if subject_level else 40, subject_level, True)
        norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
        net._close()
        return float(norm)

    assert update(True) <= C * (1 + 1e-5)  # the whole subject counts once
    assert update(False) > 5 * C  # clipped per window, 40 windows add up


# ---------------------------------------------------------------------------- audits
def test_membership_inference_detects_an_overfit_model_and_not_random_scores() -> None:
    X = digits(120)
    members, non = X[:20], X[20:120]
    model = ANNVAE(SPEC, VAEConfig(widths=(16, 32), latent=16, kld_weight=0.0))
    dp.train(model, members, dp.DPConfig(epochs=150, batch_size=20, lr=3e-3, weight_decay=0.0))
    audit = evaluation.membership_audit(evaluation.example_losses(model, members), evaluation.example_losses(model, non))
    assert audit["mia_auc"] > 0.8
    rng = np.random.default_rng(0)
    chance = evaluation.attack_scores(rng.normal(size=3000), rng.normal(size=3000))
    assert abs(chance["auc"] - 0.5) < 0.03 and chance["tpr_at_1fpr"] < 0.03


def test_attacks_increase_reconstruction_error() -> None:
    model = ANNVAE(SPEC, TINY)
    dp.train(model, digits(), dp.DPConfig(epochs=3, batch_size=50))
    report = evaluation.attack_report(model, digits(30), eps=0.3, iters=10)
    for name in ("fgsm", "cw", "square"):
        assert report[f"attack_{name}"] > report["attack_none"], name
        assert report[f"attack_{name}_increase"] > 0


def test_frechet_distance_and_inception_score() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 3))
    assert evaluation.frechet_distance(a, rng.normal(size=(2000, 3))) < 0.05
    assert evaluation.frechet_distance(a, rng.normal(size=(2000, 3)) + 2) == pytest.approx(12, rel=0.05)
    assert evaluation.inception_score(np.eye(10)[rng.integers(0, 10, 1000)]) == pytest.approx(10, rel=0.05)
    assert evaluation.inception_score(np.full((100, 10), 0.1)) == pytest.approx(1.0)


# ---------------------------------------------------------------------------- bad input
class BatchNormVAE(ANNVAE):
    def __init__(self) -> None:
        super().__init__(SPEC, TINY)
        self.encoder[1] = nn.BatchNorm2d(TINY.widths[0])


@pytest.mark.parametrize("cfg, model, message", [
    (dp.DPConfig(epsilon=0.0), None, "epsilon"),
    (dp.DPConfig(epsilon=-1.0), None, "epsilon"),
    (dp.DPConfig(epsilon=1.0, delta=1 / 200), None, "delta"),
    (dp.DPConfig(epsilon=1.0), BatchNormVAE, "model"),
    (dp.DPConfig(epsilon=1.0), lambda: ANNVAE(InputSpec(1, (16, 16)), TINY), "image_size"),
])
def test_bad_input_fails_before_training(cfg: dp.DPConfig, model: object, message: str) -> None:
    net = (model or (lambda: ANNVAE(SPEC, TINY)))()  # type: ignore[operator]
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ParameterError, match=message):
        dp.train(net, digits(), cfg)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # nothing trained


def test_image_size_must_halve_exactly() -> None:
    with pytest.raises(ParameterError, match="multiple of 16"):
        ANNVAE(InputSpec(1, (28, 28)), VAEConfig())


# ---------------------------------------------------------------------------- jobs
def test_dp_train_job_end_to_end(db_url: str) -> None:
    from anonaudit import api
    from anonaudit.store import jobs as job_store

    job = api.run("dp_train", {**JOB, "model": "spiking", "epsilon": 5.0}, seed=3)
    assert job["status"] == "succeeded", job.get("error")
    result = job["result"]
    assert result["epsilon"] <= 5.0 and result["epsilon"] > 4.5 and result["noise_multiplier"] > 0
    assert 0.0 <= result["mia_auc"] <= 1.0 and "mia_calibrated_auc" in result and result["recon_mse"] > 0
    names = {a["name"] for a in job_store.job_artifacts(job["id"])}
    assert {"results.csv", "results.parquet", "privacy.json", "private/model.pt"} <= names
    assert any(n.endswith("_samples.png") for n in names) and any(n.endswith("_reconstructions.png") for n in names)
    with pytest.raises(ParameterError, match="delta"):
        api.run("dp_train", {**JOB, "delta": 0.5})


def test_dp_sweep_job_fans_out_tabulates_and_resumes(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from anonaudit import api
    from anonaudit.jobs.context import WorkerStopping
    from anonaudit.jobs.worker import run_worker
    from anonaudit.private import experiment
    from anonaudit.store import artifacts
    from anonaudit.store import jobs as job_store
    from anonaudit.settings import get_settings
    import pandas as pd

    real, calls = experiment.run_task, []

    def interrupted(**task):
        calls.append(task.get("role", "target"))
        if len(calls) == 4:
            raise WorkerStopping("worker shutting down (test)")
        return real(**task)

    monkeypatch.setattr(experiment, "run_task", interrupted)
    settings = {k: v for k, v in JOB.items() if k != "data"} | {"attacks": False}
    with pytest.raises(WorkerStopping):
        api.run("dp_sweep", {"datasets": ["digits"], "models": ["ann", "spiking"], "epsilons": [10.0, None],
                             "settings": settings, "n_workers": 1}, seed=1)
    job_id = job_store.list_jobs(kind="dp_sweep")[0]["id"]
    assert len(list(artifacts.resume_dir(job_id).glob("sweep-*.pt"))) == 3

    calls.clear()
    monkeypatch.setattr(experiment, "run_task", lambda **task: calls.append(task.get("role", "target")) or real(**task))
    assert run_worker(max_jobs=1, poll_seconds=0.1, idle_exit_seconds=5) == 1
    job = job_store.job_dict(job_id)
    assert job["status"] == "succeeded", job.get("error")
    assert len(calls) == 6 - 3 and job["result"]["resumed_trainings"] == 3  # 4 runs + 2 shadows, 3 stored
    assert not (artifacts.job_dir(job_id) / artifacts.RESUME).exists()
    arts = {a["name"]: a for a in job_store.job_artifacts(job_id)}
    table = pd.read_csv(get_settings().home / arts["privacy_utility.csv"]["path"])
    assert len(table) == 4 and set(table["model"]) == {"ann", "spiking"}
    private = table[np.isfinite(table["epsilon"])]
    assert len(private) == 2 and (private["epsilon"] <= 10.0).all() and table["mia_calibrated_auc"].notna().all()
    assert "privacy_utility.png" in arts and sum(n.endswith("_reconstructions.png") for n in arts) == 4


def test_subject_level_dp_on_sensor_windows(db_url: str, tmp_path: Path) -> None:
    from anonaudit import api
    from anonaudit.data.synthetic import SampleSpec, write_sample_data
    from anonaudit.store import jobs as job_store

    write_sample_data(tmp_path / "s", SampleSpec(n_subjects=9, n_trials=1, duration_s=6.0))
    api.import_dataset(tmp_path / "s" / "mapping.toml", name="s")
    base = {**JOB, "data": "s", "window_s": 1.28, "stride_s": 0.64, "widths": [4, 8, 16], "batch_size": 2, "attacks": False}
    subject = api.run("dp_train", {**base, "subject_level": True, "epsilon": 10.0, "calibrated": False})
    assert subject["status"] == "succeeded", subject.get("error")
    assert subject["result"]["epsilon"] <= 10.0 and "tstr_f1" in subject["result"]
    window = api.run("dp_train", {**base, "batch_size": 20, "epsilon": 10.0, "calibrated": False})
    assert window["result"]["subject_epsilon_group"] > 10.0  # a subject's windows form a group
    warned = [r["message"] for r in job_store.job_logs(window["id"]) if r["level"] == "warning"]
    assert any("promises nothing" in m for m in warned)  # said in words, in the job's log and report
    assert not any("promises nothing" in r["message"] for r in job_store.job_logs(subject["id"]))
    with pytest.raises(ParameterError, match="subject_level"):
        api.run("dp_train", {**JOB, "subject_level": True})


# ---------------------------------------------------------------------------- app page
def test_private_models_page_submits_and_shows_results(db_url: str) -> None:
    from streamlit.testing.v1 import AppTest

    from anonaudit import api
    from anonaudit.store import jobs as job_store

    job = api.run("dp_train", {**JOB, "epsilon": 10.0, "calibrated": False, "attacks": False})
    assert job["status"] == "succeeded", job.get("error")
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("mia_auc" in str(df.value) for df in at.dataframe) or any(m.label == "membership AUC" for m in at.metric)
    at.number_input(key="epsilon").set_value(-1.0)
    at.button(key="train").click().run()
    assert not at.exception and any("epsilon" in e.value for e in at.error)
    at.number_input(key="epsilon").set_value(5.0)
    at.button(key="train").click().run()
    queued = job_store.list_jobs(status="queued", kind="dp_train")
    assert len(queued) == 1 and queued[0]["params"]["epsilon"] == 5.0


def test_cli_bad_privacy_budget_is_one_line(db_url: str) -> None:
    import subprocess
    import sys

    from typer.testing import CliRunner

    from anonaudit.cli import app

    res = subprocess.run([sys.executable, "-m", "anonaudit", "dp-train", "digits", "--epsilon", "-1"],
                         capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().startswith("error:") and "'epsilon'" in res.stderr and "Traceback" not in res.stderr
    for args, name in ((["--delta", "0.5"], "delta"), (["--no-dp", "--noise-multiplier", "1"], "noise_multiplier")):
        result = CliRunner().invoke(app, ["dp-train", "digits", "--epochs", "1", *args])
        assert isinstance(result.exception, ParameterError) and result.exception.name == name
