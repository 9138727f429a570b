"""Anonymisers, releases and release checks: shapes, loss directions, pseudonyms, bad input, jobs."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from anonaudit import api
from anonaudit.anonymise import methods
from anonaudit.anonymise.config import AnonymiserConfig
from anonaudit.anonymise.method import Method
from anonaudit.anonymise.networks import ConvAutoencoder, Discriminator, Geometry, NoiseBranch
from anonaudit.anonymise.release import anonymise_dataset, check_no_identifiers, export_release, tile_starts
from anonaudit.data.dataset import SensorDataset
from anonaudit.data.loaders import load_dataset
from anonaudit.data.synthetic import SampleSpec, write_sample_data
from anonaudit.data.windows import make_windows
from anonaudit.errors import DataError, ParameterError
from anonaudit.evaluate.attackers import make_classifier
from anonaudit.models.training import TrainConfig
from anonaudit.store import datasets as dataset_store

from factories import IMU, import_imu_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> SensorDataset:
    out = tmp_path_factory.mktemp("sample")
    write_sample_data(out, SampleSpec(n_subjects=6, n_trials=3, duration_s=4.0))
    ds = load_dataset(out / "mapping.toml")
    keep = [ds.channels.index(c) for c in IMU]  # one IMU keeps the networks small
    return replace(ds, signals=ds.signals[:, keep], channels=IMU, channel_groups={})


@pytest.fixture(scope="module")
def windows(sample):
    return make_windows(sample, 1.0, 0.5)


@pytest.fixture(scope="module")
def reid(windows):
    model = make_classifier("tcnn", 6, config=TrainConfig(epochs=4, seed=0))
    return model.fit(windows.X, windows.subject)


def _fit(windows, sample, reid, **cfg) -> Method:
    config = AnonymiserConfig(**{"ae_epochs": 3, "epochs": 4, "seed": 0, **cfg})
    return methods.build(config).fit(windows.X, windows.subject, windows.y, subjects=sample.subject_ids,
                                  channels=sample.channels, reid=reid, n_activities=len(sample.activities))


@pytest.mark.parametrize("length,channels", [(10, 2), (50, 6), (77, 21), (128, 60)])
def test_geometry_adapts_to_any_window(length, channels):
    geom = Geometry(length, channels)
    x = torch.randn(3, length, channels)
    ae = ConvAutoencoder(geom).eval()
    code = ae.encode(x)
    assert tuple(code.shape[1:]) == geom.code_shape
    assert ae.decode(code).shape == x.shape
    assert NoiseBranch(geom, n_subjects=4)(torch.randn(3, 32), torch.tensor([0, 1, 3])).shape == code.shape
    assert Discriminator(geom, n_subjects=4)(x, torch.tensor([0, 1, 2])).shape == (3,)
    assert geom.conv_channels == (channels >= 16)


@pytest.mark.parametrize("length,channels", [(50, 6), (30, 60)])
def test_inference_copy_folds_batch_norms_without_changing_the_function(length, channels):
    torch.manual_seed(0)
    ae = ConvAutoencoder(Geometry(length, channels))
    ae.train()
    for _ in range(3):  # non-trivial running statistics and affine parameters
        ae(3 * torch.randn(16, length, channels) + 1)
    for bn in (m for m in ae.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        torch.nn.init.uniform_(bn.weight, 0.5, 2.0)
        torch.nn.init.uniform_(bn.bias, -1.0, 1.0)
    ae.eval()
    fast = ae.for_inference()
    kinds = {type(m) for m in fast.modules()}
    assert torch.nn.BatchNorm2d not in kinds and torch.nn.Dropout not in kinds
    x = torch.randn(8, length, channels)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), ae(x), rtol=1e-4, atol=1e-4)
    assert ae.training is False and any(isinstance(m, torch.nn.BatchNorm2d) for m in ae.modules())  # original untouched


def test_identity_release_reproduces_the_signals_and_hides_identifiers(sample, tmp_path):
    anonymiser = methods.build(AnonymiserConfig(method="none")).fit(
        make_windows(sample, 1.0).X, np.zeros(1), np.zeros(1), subjects=sample.subject_ids, channels=sample.channels)
    release = anonymise_dataset(sample, anonymiser, name="released")
    out = release.dataset
    # overlap-add of unchanged windows must give back every sample exactly, in the right recording
    for new_id, old_id in release.recording_linkage.items():
        a = out.signals[out.recording_slices()[out.recordings.index[out.recordings.recording == new_id][0]]]
        b = sample.signals[sample.recording_slices()[sample.recordings.index[sample.recordings.recording == old_id][0]]]
        assert np.allclose(a, b, atol=1e-5)
    assert set(out.recordings.columns) == {"recording", "subject", "start", "length"}
    assert not set(out.subjects.subject) & set(sample.subject_ids)
    assert not set(out.recordings.recording) & set(sample.recordings.recording)
    assert len(release.subject_linkage) == len(sample.subjects)
    files = export_release(out, tmp_path / "rel")
    check_no_identifiers(out, sample, files)
    flat = pd.read_csv(tmp_path / "rel" / "samples.csv.gz")
    assert len(flat) == sample.n_samples and list(flat.columns[:4]) == ["recording", "subject", "time_s", "activity"]
    assert pd.read_parquet(tmp_path / "rel" / "samples.parquet").shape == flat.shape
    # a second release: same signals (seeded), fresh pseudonyms (not derivable from the seed)
    again = anonymise_dataset(sample, anonymiser, name="released")
    assert not set(again.dataset.subjects.subject) & set(out.subjects.subject)
    leaky = replace(out, recordings=out.recordings.assign(trial=1))
    with pytest.raises(DataError, match="metadata columns"):
        check_no_identifiers(leaky, sample, files)


def test_tiling_covers_every_sample_including_short_recordings():
    lengths = np.array([3, 10, 11, 25])
    rec, start = tile_starts(lengths, 10)
    for r, n in enumerate(lengths):
        covered = np.zeros(n, bool)
        for s in start[rec == r]:
            covered[s : s + 10] = True
        assert covered.all()
        assert (start[rec == r] <= max(n - 10, 0)).all()


def test_gan_loss_lowers_true_subject_probability(windows, sample, reid):
    anon = _fit(windows, sample, reid, method="anon_acg", epochs=5)
    p = [row["reid_p"] for row in anon.history_.main]
    assert p[-1] < p[0] - 0.02, p  # Eq. 1 drives p_ReID(true subject) down


def test_acg_releases_every_recording_under_another_subjects_code_never_its_own(windows, sample, reid):
    anon = _fit(windows, sample, reid, method="anon_acg", epochs=1)
    assert not anon.uses_subject and anon.draws_targets
    with pytest.raises(ParameterError, match="target"):
        anon.transform(windows.X[:4], windows.subject[:4])
    seen, forward = [], anon.noise_.forward
    anon.noise_.forward = lambda z, cond: seen.append(cond.clone()) or forward(z, cond)
    anonymise_dataset(sample, anon, name="acg", seed=1)
    codes = torch.cat(seen).numpy()
    owners = anon.subject_codes(sample.recordings["subject"])
    # the tiles go recording by recording, ceil(length / half window) - 1 of them (at least one) per recording
    half = anon.geometry_.length // 2
    tiles = np.maximum(1, -(-sample.recordings["length"].to_numpy() // half) - 1)
    assert len(codes) == tiles.sum()
    assert not (codes == np.repeat(owners, tiles)).any()  # never the true subject's embedding
    per_recording = np.split(codes, np.cumsum(tiles)[:-1])
    assert all(len(np.unique(c)) == 1 for c in per_recording)  # one target per recording
    assert len(np.unique([c[0] for c in per_recording])) > 1


def test_dfi_loss_raises_target_probability(windows, sample, reid):
    anon = _fit(windows, sample, reid, method="anon_dfi", epochs=5)
    p = [row["reid_p"] for row in anon.history_.main]
    assert p[-1] > p[0] + 0.02, p  # Eq. 3 drives p_ReID(target) up (the reference code has the sign wrong)


def test_save_load_round_trip_and_bad_input(windows, sample, reid, tmp_path):
    anon = _fit(windows, sample, reid, method="anon_dfi", epochs=1)
    X, s = windows.X[:20], windows.subject[:20]
    t = (s + 1) % 6
    before = anon.transform(X, s, t, seed=3)
    loaded = methods.load(anon.save(tmp_path / "a.pt"))
    assert np.allclose(loaded.transform(X, s, t, seed=3), before, atol=1e-5)
    assert not np.allclose(before, X)
    with pytest.raises(DataError, match="channels"):
        loaded.check_input(X, ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "mag_z"])
    with pytest.raises(ParameterError, match="unknown to this anonymiser"):
        anonymise_dataset(sample, loaded, name="x", target="nobody")
    with pytest.raises(ParameterError, match="target"):
        loaded.transform(X, s)
    with pytest.raises(ParameterError, match="reid"):
        methods.build(AnonymiserConfig(method="anon_ag")).fit(X, s, s, subjects=sample.subject_ids, channels=IMU)
    with pytest.raises(ParameterError, match="m"):
        methods.build(AnonymiserConfig(m=1.5))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    with pytest.raises(DataError, match="not a saved anonymiser"):
        methods.load(junk)


def test_interrupted_training_resumes_from_its_checkpoint(windows, sample, reid, tmp_path):
    ckpt = tmp_path / "a.ckpt"

    class Stop(Exception):
        pass

    def stop_after_first_gan_epoch(fraction: float, message: str = "") -> None:
        if message.startswith("GAN epoch 1"):
            raise Stop

    config = AnonymiserConfig(method="anon_ag", ae_epochs=2, epochs=3, seed=0)
    args = (windows.X, windows.subject, windows.y)
    kwargs = dict(subjects=sample.subject_ids, channels=sample.channels, reid=reid, checkpoint=ckpt)
    with pytest.raises(Stop):
        methods.build(config).fit(*args, **kwargs, progress=stop_after_first_gan_epoch)
    messages = []
    resumed = methods.build(config).fit(*args, **kwargs, progress=lambda f, m="": messages.append(m))
    assert "resumed from checkpoint" in messages and not any(m.startswith("autoencoder") for m in messages)
    assert [r["epoch"] for r in resumed.history_.main] == [1, 2, 3]
    with pytest.raises(DataError, match="checkpoint"):
        methods.build(replace(config, epochs=5)).fit(*args, **kwargs)


def _import_imu_sample(tmp_path) -> str:
    return import_imu_sample(tmp_path, n_subjects=6, n_trials=3)


FAST_EVAL = {"window_s": 1.0, "stride_s": 0.5, "har_model": "forest", "attackers": ["knn"], "biometric_model": "knn",
             "epochs": 2, "n_boot": 50}


def test_anonymise_and_release_check_jobs(db_url, tmp_path):
    name = _import_imu_sample(tmp_path)
    job = api.run("anonymise", {"dataset": name, "method": "anon_acg", "name": "s-rel", "gan_epochs": 1,
                                "ae_epochs": 1, **FAST_EVAL})
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["released"] == "s-rel" and result["throughput_windows_per_s"] > 0
    assert {"reid_frozen_acc", "reid_retrained_recording_acc", "har_wf1_released"} <= set(result)
    names = {a["name"] for a in job["artifacts"]}
    assert {"private/linkage.json", "private/anonymiser.pt", "privacy_utility.png", "release_check.json"} <= names
    # the verdict is enforced: release files exist exactly when the job's own check passed
    exported = {"release/samples.csv.gz", "release/samples.parquet"} <= names
    assert exported == result["releasable"] == (not result["release_withheld"])
    released = api.open_dataset("s-rel")
    assert not set(released.subjects.subject) & set(api.open_dataset(name).subject_ids)

    lenient = api.run("release_check", {"dataset": "s-rel", "threshold": 1.0, "attackers": ["knn"]})
    assert lenient["status"] == "succeeded", lenient["error"]
    assert lenient["result"]["releasable"] is True
    assert dataset_store.get_dataset("s-rel")["releasable"] is True
    assert {"release/samples.csv.gz", "release/recordings.csv"} <= {a["name"] for a in lenient["artifacts"]}
    strict = api.run("release_check", {"dataset": "s-rel", "threshold": 0.0, "attackers": ["knn"]})
    assert strict["result"]["releasable"] is False and "NOT releasable" in strict["result"]["reason"]
    assert not any(a["name"].startswith("release/") for a in strict["artifacts"])
    record = dataset_store.get_dataset("s-rel")
    assert record["releasable"] is False and record["release_check"]["threshold"] == 0.0

    with pytest.raises(ParameterError, match="threshold"):
        api.run("release_check", {"dataset": "s-rel", "threshold": 1.5})
    with pytest.raises(DataError, match="not produced by an anonymise job or the main job"):
        api.run("release_check", {"dataset": name})
    before = {d["name"] for d in dataset_store.list_datasets()}
    with pytest.raises(ParameterError, match="target"):
        api.run("anonymise", {"dataset": name, "method": "anon_dfi", "name": "s-dfi", "target": "nobody",
                              "gan_epochs": 1, "ae_epochs": 1, **FAST_EVAL})
    with pytest.raises(ParameterError, match="method"):
        api.run("anonymise", {"dataset": name, "method": "blur"})
    assert {d["name"] for d in dataset_store.list_datasets()} == before  # nothing half-released
