"""End to end: the main job, the import job, the CLI and its error messages."""

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anonaudit import api
from anonaudit.cli import app
from anonaudit.data.synthetic import SampleSpec, write_sample_data
from anonaudit.anonymise.config import DEFAULT_FRONTIER
from anonaudit.errors import DataError, ParameterError
from anonaudit.jobs.kinds.pipeline import PipelineParams
from anonaudit.settings import get_settings
from anonaudit.store import datasets as dataset_store
from anonaudit.store import jobs as job_store

SMALL = SampleSpec(n_subjects=8, n_trials=3, duration_s=4.0)


@pytest.fixture
def small_sample(tmp_path) -> Path:
    out = tmp_path / "sample"
    write_sample_data(out, SMALL)
    return out


def test_main_job_end_to_end(db_url, small_sample):
    fast = dict(window_s=1.0, stride_s=0.5, epochs=1, attackers=["knn"], n_boot=50, gan_epochs=1, ae_epochs=1,
                dp_epochs=1, audit_train_subjects=2, audit_draws=1, audit_window_s=0.5)
    job = api.run_pipeline(small_sample, **fast)
    assert job["status"] == "succeeded", job.get("error")
    # the evaluation stage ran: HAR and re-identification scores with their chance levels
    assert 0 <= job["result"]["har_wf1_real"] <= 1 and job["result"]["reid_chance"] == 0.125
    assert "privacy_utility.png" in {a["name"] for a in job["artifacts"]}
    assert job["result"]["n_subjects"] == 8
    names = {a["name"] for a in job["artifacts"]}
    assert {"signals.png", "windows_per_activity.png", "private/subjects.csv", "private/subjects.parquet"} <= names
    # the release stage: a frontier of releases (activity-conditioned synthesis; donor mixing, k = 4, 8), each
    # judged under every threat model, the best passing one exported (or none, said plainly)
    points = ["sample-released-synth", "sample-released-donor-4", "sample-released-donor-8"]
    assert {"anon_frontier.csv", "anon_frontier.png", "anon_donor_4_privacy_utility.png", "anon_synth_release_check.json",
            "anon_donor_8_release_check.json", "private/anon_donor_4_linkage.json", "private/anon_synth_linkage.json"} <= names
    result = job["result"]
    assert result["anon_frontier_points"] == 3 and result["anon_released"] in (None, *points)
    verdicts = {p: dataset_store.get_dataset(p)["releasable"] for p in points}
    assert result["anon_frontier_passing"] == sum(v is True for v in verdicts.values())
    assert ("release/samples.csv.gz" in names) == (result["anon_released"] is not None) != result["anon_release_withheld"]
    if result["anon_released"] is None:
        assert result["anon_decision"].startswith("NOTHING RELEASED")
    else:
        assert verdicts[result["anon_released"]] is True and result["anon_decision"].startswith("released ")
        assert 0 <= result["anon_release_reid_max_recording"] <= 2 * result["anon_reid_chance"]
    # the explanation stage: why the activity model labels a test subject's window as it does
    assert {"explain_explanations.png", "explain_explanations.json", "explain_model.joblib"} <= names
    assert result["explain_window_subject"] in result["test_subjects"].split(", ")
    assert result["explain_predicted_class"] and 0 < result["explain_coverage"] <= 1
    # the private-model stage: ε from the accountant, a membership audit with its chance level beside it
    assert 9 < result["dp_epsilon"] <= 10 and result["dp_noise_multiplier"] > 0.3
    assert 0 <= result["dp_mia_auc"] <= 1 and {"dp_results.csv", "private/dp_model.pt"} <= names
    # the bias-audit stage: a child job whose trend test and box plot reach the main report
    audit = job_store.job_dict(result["audit_job"])
    assert audit["kind"] == "bias_audit" and audit["status"] == "succeeded"
    # 2 subjects per (age group, gender) cell: training sets of 2 span at most two cells
    assert result["audit_groups"].split() == ["1", "2a", "2b"] and "3" in result["audit_infeasible_groups"]
    assert 0 <= result["audit_tcnn_trend_p"] <= 1
    assert "audit_box_accuracy.png" in names
    for art in job["artifacts"]:
        assert (get_settings().home / art["path"]).is_file()
    windows = {(m["tags"]["protocol"], m["tags"]["split"]): m["value"] for m in job["metrics"] if m["name"] == "windows"}
    assert windows[("by_subject", "train")] > 0 and windows[("by_recording", "test")] > 0
    report = Path(job["report_path"])
    html = report.read_text()
    assert "data:image/png;base64," in html and "windows_per_activity.png" in html
    # no release table and no original subject table is embedded, whoever downloads the report
    released = api.open_dataset(points[0]).recordings
    assert "<h3>release/" not in html and "<h3>private/" not in html
    assert not any(str(r) in html for r in released["recording"]), "released recording ids in the report"
    # later runs reuse the identical dataset instead of importing it twice; same parameters, same hash
    quick = dict(evaluate=False, explain=False, anonymise=None, dp=False, audit=False)
    again = [api.run_pipeline(small_sample, **quick) for _ in range(2)]
    assert all(j["status"] == "succeeded" for j in again)
    assert {d["name"] for d in dataset_store.list_datasets()} == {"sample", *points}
    assert again[0]["config_hash"] == again[1]["config_hash"] != job["config_hash"]


def test_cli_import_list_show_and_report(db_url, small_sample):
    runner = CliRunner()
    res = runner.invoke(app, ["data", "import", str(small_sample / "mapping.toml"), "--name", "demo"])
    assert res.exit_code == 0, res.output
    assert "demo" in res.output and "8 subjects" in res.output
    res = runner.invoke(app, ["data", "list"])
    assert "demo" in res.output
    job_id = job_store.list_jobs(limit=1)[0]["id"]
    res = runner.invoke(app, ["report", str(job_id)])
    assert res.exit_code == 0 and Path(res.output.strip()).is_file()
    res = runner.invoke(app, ["jobs", "submit", "noop", "-p", "sleep_s=0"])
    assert "queued job" in res.output
    assert job_store.list_jobs(status="queued")[0]["kind"] == "noop"


def _cli(*args: str, env_from=None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "anonaudit", *args], capture_output=True, text=True,
                          env={**os.environ}, timeout=120)


def test_cli_errors_are_one_line_without_traceback(db_url, tmp_path):
    res = _cli("data", "import", str(tmp_path / "missing.csv"))
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error:") and "missing.csv" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_cli_pipeline_takes_release_methods_and_names_a_bad_one_before_any_work(db_url, small_sample, monkeypatch):
    from anonaudit import cli

    sent = []
    monkeypatch.setattr(cli, "_run_or_queue", lambda kind, params, seed, queue: sent.append(params) or {})
    runner = CliRunner()
    runner.invoke(app, ["pipeline", str(small_sample)])
    runner.invoke(app, ["pipeline", str(small_sample), "--anonymise", "donor", "--knob-value", "4"])
    runner.invoke(app, ["pipeline", str(small_sample), "--anonymise", "off"])
    assert "anonymise" not in sent[0] and sent[1]["anonymise"] == ["donor"] and sent[2]["anonymise"] is None
    assert PipelineParams().anonymise == list(DEFAULT_FRONTIER) == ["synth", "donor"]
    monkeypatch.undo()
    res = runner.invoke(app, ["pipeline", str(small_sample), "--anonymise", "synth", "--anonymise", "nope"])
    assert isinstance(res.exception, ParameterError) and res.exception.name == "anonymise" and "nope" in str(res.exception)
    assert not dataset_store.list_datasets() and not job_store.list_jobs()


def _corrupt(sample: Path, row: int, column: str, value: str) -> None:
    path = sample / "samples.csv.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    header = lines[0].split(",")
    cells = lines[row - 1].split(",")
    cells[header.index(column)] = value
    lines[row - 1] = ",".join(cells)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


@pytest.mark.parametrize("row,column,value,expect", [
    (5, "acc_y", "nan", r"column 'acc_y'.*row 5"),
    (7, "gyro_x", "abc", r"gyro_x"),
    (9, "subject", "P99", r"P99"),
])
def test_bad_input_stores_nothing(db_url, small_sample, row, column, value, expect):
    _corrupt(small_sample, row, column, value)
    with pytest.raises(DataError, match=expect):
        api.import_dataset(small_sample / "mapping.toml")
    assert dataset_store.list_datasets() == []
    datasets_dir = get_settings().datasets_dir
    assert not datasets_dir.exists() or not any(datasets_dir.iterdir())
    failed = job_store.list_jobs(status="failed")
    assert failed and failed[0]["kind"] == "import" and failed[0]["artifacts"] == []


def test_wrong_sampling_rate_is_named(db_url, small_sample):
    mapping = small_sample / "mapping.toml"
    mapping.write_text(mapping.read_text().replace("sampling_rate = 50.0", "sampling_rate = 100.0"))
    with pytest.raises(DataError, match="sampling rate"):
        api.import_dataset(mapping)
    assert dataset_store.list_datasets() == []


def test_cli_worker_runs_queued_job_and_rerun_links_it(db_url):
    runner = CliRunner()
    job_id = job_store.submit_job("noop", {"steps": 2})
    res = runner.invoke(app, ["worker", "--max-jobs", "1", "--idle-exit", "5", "--poll", "0.1"])
    assert res.exit_code == 0, res.output
    assert job_store.job_dict(job_id)["status"] == "succeeded"
    res = runner.invoke(app, ["jobs", "rerun", str(job_id)])
    assert res.exit_code == 0 and "re-run of job" in res.output
    new = job_store.list_jobs(limit=1)[0]
    assert new["rerun_of"] == job_id and new["status"] == "queued" and new["seed"] == job_store.job_dict(job_id)["seed"]


def test_cli_evaluate_released_mismatch_is_one_clear_error(db_url, small_sample, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["data", "import", str(small_sample / "mapping.toml"), "--name", "orig"]).exit_code == 0
    other = tmp_path / "other"
    write_sample_data(other, SampleSpec(n_subjects=8, n_trials=3, duration_s=3.0))
    assert runner.invoke(app, ["data", "import", str(other / "mapping.toml"), "--name", "shorter"]).exit_code == 0
    res = runner.invoke(app, ["evaluate", "orig", "--released", "shorter", "--har-model", "forest",
                              "--reid-model", "knn", "--attacker", "knn"])
    assert res.exit_code != 0 and isinstance(res.exception, DataError)
    assert "samples" in str(res.exception)  # recording lengths differ: named, not a wrong number
