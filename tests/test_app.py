"""The Streamlit app's pages, rendered with Streamlit's AppTest against a real job store."""

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from anonaudit import access, api
from anonaudit.errors import ParameterError
from anonaudit.store import jobs as job_store

APP = Path(__file__).resolve().parents[1] / "app" / "Home.py"
PAGES = APP.parent / "views"


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def test_home_page_lists_jobs_and_queues_the_main_job(db_url):
    job_store.submit_job("noop", {"sleep_s": 0})
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("Datasets" in h.value for h in at.subheader)
    assert {m.label: m.value for m in at.metric}["queued"] == "1"
    assert len(at.dataframe) >= 1  # the jobs table
    at.button[0].click().run()
    assert not at.exception
    assert any("Queued job" in s.value for s in at.success)
    kinds = [j["kind"] for j in job_store.list_jobs(status="queued")]
    assert kinds.count("pipeline") == 1  # submitted, not run inside the app


def test_sign_in_gate_and_roles(db_url, monkeypatch):
    monkeypatch.setenv("ANONAUDIT_UI_PASSWORD_STEWARD", access.hash_password("s3cret"))
    monkeypatch.setenv("ANONAUDIT_UI_PASSWORD_AUDITOR", "audit-pw")  # plain text is accepted too
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, at.exception
    assert not at.metric  # nothing of the store is shown before signing in
    at.selectbox[0].select("auditor")
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong password for this role."]
    assert not at.metric
    at.text_input[0].input("audit-pw")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["anonaudit_role"] == "auditor" and at.metric
    # an auditor may not queue the main job: it releases data
    next(b for b in at.button if b.label == "Queue main job").click().run()
    assert any("only a data steward" in e.value for e in at.error)
    assert not job_store.list_jobs(kind="pipeline")


def test_sign_in_from_streamlit_secrets(db_url):
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.secrets["auth"] = {"passwords": {"engineer": access.hash_password("eng", iterations=1000)}}
    at.run()
    assert at.selectbox[0].options == ["engineer"] and not at.metric
    at.text_input[0].input("eng")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["anonaudit_role"] == "engineer" and at.metric
    next(b for b in at.button if b.label == "Sign out").click().run()
    assert "anonaudit_role" not in at.session_state and not at.metric


def test_access_rules():
    stored = access.hash_password("pw", salt=b"0" * 16, iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$") and "pw" not in stored.split("$", 1)[1]
    assert access.check_password("pw", stored) and not access.check_password("pW", stored)
    assert access.check_password("plain", "plain") and not access.check_password("plain", "plain ")
    assert not access.check_password("x", "pbkdf2_sha256$1000$zz$zz")  # malformed hash never matches
    assert access.configured_passwords({"auditor": "a"}, {"ANONAUDIT_UI_PASSWORD_AUDITOR": "b"}) == {"auditor": "b"}
    with pytest.raises(ParameterError, match="unknown role 'admin'"):
        access.configured_passwords({"admin": "x"}, {})
    assert not access.authenticate("engineer", "a", {"auditor": "a"})


def _sample_in_store(tmp_path) -> None:
    from anonaudit.data.synthetic import SampleSpec, write_sample_data

    write_sample_data(tmp_path / "s", SampleSpec(n_subjects=4, n_trials=2, duration_s=3.0))
    api.import_dataset(tmp_path / "s" / "mapping.toml", name="s")


def test_datasets_page_imports_from_a_path_and_inspects(db_url, tmp_path, monkeypatch):
    from anonaudit.store import datasets as dataset_store

    monkeypatch.setenv("ANONAUDIT_DATA_ROOTS", str(tmp_path))
    at = _page("0_Datasets.py")
    at.text_input[0].input("/etc/passwd")  # outside the data roots: refused without reading or probing it
    at.button[-1].click().run()
    assert len(at.error) == 1 and at.error[0].value.startswith(
        f"parameter 'path': '/etc/passwd' is outside the data roots the server may read ({tmp_path}, ")
    at.text_input[0].input(str(tmp_path / "missing"))  # form fields apply on submit
    at.button[-1].click().run()
    assert any("does not exist" in e.value for e in at.error)
    assert not job_store.list_jobs(kind="import")
    _sample_in_store(tmp_path)
    at = _page("0_Datasets.py")
    at.text_input[0].input(str(tmp_path / "s" / "mapping.toml"))
    at.button[-1].click().run()
    queued = job_store.list_jobs(kind="import", status="queued")
    assert len(queued) == 1 and queued[0]["params"]["path"] == str((tmp_path / "s" / "mapping.toml").resolve())
    summary = dataset_store.get_dataset("s")["summary"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["subjects"] == "4" and metrics["recordings"] == str(summary["n_recordings"])
    crosstab = next(d.value for d in at.dataframe if d.value.index.name == "subject")
    assert crosstab.shape[0] == 4 and (crosstab.to_numpy() >= 0).all()
    assert crosstab.to_numpy().sum() == pytest.approx(summary["duration_s"], abs=0.5)
    seconds = pd.Series(summary["samples_per_activity"]) / summary["sampling_rate"]
    pd.testing.assert_series_equal(crosstab.sum().sort_index(), seconds[seconds > 0].sort_index(),  # JSONB: any key order
                                   check_names=False, atol=0.05 * 4)
    charts = at.get("vega_lite_chart")  # per activity, per subject, the chosen recording's signals
    assert len(charts) == 3


def test_datasets_page_upload_validates_then_a_worker_imports_it(db_url):
    from anonaudit.jobs.worker import run_worker
    from anonaudit.settings import get_settings
    from anonaudit.store import datasets as dataset_store

    at = _page("0_Datasets.py")
    at.file_uploader[0].upload("../notes.gz", b"subject,x\n1,2\n", "application/gzip").run()  # not .csv.gz
    assert any("not one of the accepted types" in e.value for e in at.error)
    rows = ["subject,activity,note,x,y"] + [f"{s},{'sit' if i < 5 else 'walk'},n{i},{i},{s}" for s in (1, 2)
                                           for i in range(10)]
    at.file_uploader[0].set_value(("../../evil.csv", "\n".join(rows).encode(), "text/csv")).run()
    assert not at.exception, at.exception
    assert at.multiselect[0].value == ["x", "y"]  # numeric columns not used as subject/activity
    at.multiselect[0].select("note")
    at.button[0].click().run()
    assert any("'note' is not numeric" in e.value for e in at.error)
    assert not job_store.list_jobs(kind="import")
    at.multiselect[0].unselect("note")
    at.button[0].click().run()
    assert not at.exception, at.exception
    job = job_store.list_jobs(kind="import")[0]
    uploads = sorted(p.name for p in (get_settings().home / "uploads").iterdir())
    assert all("evil" not in name and "notes" not in name for name in uploads) and len(uploads) == 2
    assert run_worker(max_jobs=1, poll_seconds=0.05, idle_exit_seconds=5) == 1
    assert job_store.get_job(job["id"]).status == "succeeded", job_store.job_logs(job["id"])
    summary = dataset_store.get_dataset("evil")["summary"]
    assert (summary["n_subjects"], summary["n_samples"], summary["channels"]) == (2, 20, ["x", "y"])
    assert summary["samples_per_activity"] == {"sit": 10, "walk": 10}


def test_upload_mapping_round_trips_through_the_tabular_loader(tmp_path):
    from anonaudit.data.loaders.tabular import load_tabular
    from anonaudit.data.mapping import ColumnChoice, write_mapping
    from anonaudit.errors import ParameterError

    frame = pd.DataFrame({"who": ["a"] * 4 + ["b"] * 4, "act": ["sit", "sit", "walk", "walk"] * 2,
                          "x": range(8), "y": [0.5] * 8})
    frame.to_csv(tmp_path / "f00d.csv", index=False)
    columns = list(frame.columns)
    choice = ColumnChoice(subject="who", channels=["x", "y"], sampling_rate=10.0, name="up \"q\"", activity="act")
    ds = load_tabular(write_mapping(tmp_path, "f00d.csv", choice, columns))
    assert ds.name == 'up "q"' and ds.channels == ["x", "y"] and ds.subject_ids == ["a", "b"]
    assert ds.activities == ["sit", "walk"]
    with pytest.raises(ParameterError, match="already the subject column"):
        write_mapping(tmp_path, "f00d.csv", ColumnChoice(subject="who", channels=["who"], sampling_rate=1.0,
                                                         name="n"), columns)
    with pytest.raises(ParameterError, match="'nope' is not in the file"):
        write_mapping(tmp_path, "f00d.csv", ColumnChoice(subject="nope", channels=["x"], sampling_rate=1.0,
                                                         name="n"), columns)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".csv", ".toml"]  # failures wrote nothing


def test_jobs_page_reports_reruns_cancels_and_compares(db_url):
    done = api.run("noop", {"steps": 2})["id"]
    other = api.run("noop", {"steps": 3})["id"]
    queued = job_store.submit_job("noop", {"sleep_s": 5})
    at = _page("6_Jobs.py")
    assert at.dataframe[0].value["id"].tolist() == [queued, other, done]
    at.button[0].click().run()  # the newest (queued) job is shown: cancel it
    assert job_store.get_job(queued).status == "cancelled"
    assert f"job {queued}: cancelled" in [i.value for i in at.info]
    at.selectbox[-1].select(done).run()
    assert not at.exception, at.exception
    result = next(d.value for d in at.dataframe if "figure" in d.value)
    assert dict(zip(result["figure"], result["value"])) == {"steps": 2, "slept_s": 0.0}
    assert any(d.value.get("name", pd.Series()).tolist() == ["steps"] for d in at.dataframe)  # the metrics
    rerun = next(b for b in at.button if b.label.startswith("Re-run"))
    rerun.click().run()
    new = job_store.list_jobs(status="queued")
    assert len(new) == 1 and new[0]["rerun_of"] == done and new[0]["seed"] == job_store.get_job(done).seed
    at.checkbox[0].check().run()  # preview of the standalone HTML report
    assert not at.exception, at.exception
    at.number_input[-2].set_value(done)
    at.number_input[-1].set_value(other).run()
    compare = [d.value for d in at.dataframe if "differs" in d.value]
    params, numbers = compare
    assert bool(params.loc["params.steps", "differs"]) and params.loc["params.steps"].iloc[1] == "3"
    assert numbers.loc["steps", "difference"] == 1.0
    at.number_input[-1].set_value(99999).run()
    assert any("no job with id 99999" in e.value for e in at.error)


def test_job_lists_show_cancelling_where_a_job_stopped_how_long_it_ran_and_what_is_left():
    import sys

    sys.path.insert(0, str(APP.parent))
    import ui

    now = pd.Timestamp("2026-01-01 12:00", tz="UTC")
    minute = pd.Timedelta(minutes=1)
    jobs = [{"id": 1, "status": "running", "cancel_requested": True, "progress": 0.5, "progress_message": "GAN",
             "started_at": now - minute, "finished_at": None},
            {"id": 2, "status": "cancelled", "cancel_requested": True, "progress": 1.0, "progress_message": "done",
             "started_at": now - 10 * minute, "finished_at": now - 5 * minute},
            {"id": 3, "status": "running", "cancel_requested": False, "progress": 0.25, "progress_message": "",
             "started_at": now - minute / 2, "finished_at": None},
            {"id": 4, "status": "queued", "cancel_requested": False, "progress": 0.0, "progress_message": "",
             "started_at": None, "finished_at": None}]
    shown = ui.job_frame(jobs, now)
    assert shown["status"].tolist() == ["cancelling", "cancelled", "running", "queued"]
    assert pd.isna(shown["progress"][1]) and shown["progress_message"][1] == "cancelled at 100 %"  # never a full bar
    assert shown["duration"].tolist() == ["1 min 00 s", "5 min 00 s", "30 s", ""]
    assert shown["time left"].tolist() == ["1 min 00 s", "", "1 min 30 s", ""]


def test_jobs_page_pages_through_history(db_url):
    ids = [job_store.submit_job("noop", {"sleep_s": i}) for i in range(30)]
    others = [job_store.submit_job("import", {"path": f"p{i}"}) for i in range(3)]
    at = _page("6_Jobs.py")
    assert at.number_input[0].label == "Page (of 2)" and len(at.dataframe[0].value) == 25
    assert at.dataframe[0].value["id"].tolist()[:3] == others[::-1]
    at.selectbox[1].select("noop").run()  # kind filter: the page count follows the filtered total
    assert at.number_input[0].label == "Page (of 2)"
    at.number_input[0].set_value(2).run()
    assert at.dataframe[0].value["id"].tolist() == ids[:5][::-1]
    at.selectbox[1].select("import").run()
    assert at.number_input[0].label == "Page (of 1)" and at.dataframe[0].value["id"].tolist() == others[::-1]
    assert job_store.count_jobs("kind") == {"noop": 30, "import": 3}


def test_evaluate_page_queues_a_validated_job(db_url, tmp_path):
    _sample_in_store(tmp_path)
    at = _page("1_Evaluate.py")
    at.button[0].click().run()
    assert not at.exception, at.exception
    queued = job_store.list_jobs(status="queued", kind="evaluate")
    assert len(queued) == 1 and queued[0]["params"]["dataset"] == "s"


def test_anonymise_page_queues_a_frontier_and_rejects_bad_knob_values(db_url, tmp_path):
    _sample_in_store(tmp_path)
    at = _page("2_Anonymise.py")
    at.text_input(key="knob_values").input("4, x")
    next(b for b in at.button if b.label == "Queue frontier").click().run()
    assert not at.exception, at.exception
    assert any("Knob values" in e.value for e in at.error) and not job_store.list_jobs(kind="frontier")
    at.multiselect(key="frontier_methods").set_value(["donor"])
    at.text_input(key="knob_values").input("4, 8")
    next(b for b in at.button if b.label == "Queue frontier").click().run()
    [queued] = job_store.list_jobs(status="queued", kind="frontier")
    assert queued["params"]["methods"] == ["donor"] and queued["params"]["knob_values"] == [4.0, 8.0]


def test_anonymise_page_queues_jobs_and_rejects_bad_thresholds(db_url, tmp_path):
    from anonaudit.store import datasets as dataset_store

    _sample_in_store(tmp_path)
    at = _page("2_Anonymise.py")
    at.selectbox[1].select("noise")
    at.button[0].click().run()
    assert not at.exception, at.exception
    queued = job_store.list_jobs(status="queued", kind="anonymise")
    assert len(queued) == 1 and queued[0]["params"]["method"] == "noise"
    at.button[0].click().run()  # the same form again at once (Enter plus a click): not queued twice
    assert len(job_store.list_jobs(kind="anonymise")) == 1
    assert any(f"job {queued[0]['id']}" in w.value and "not queued again" in w.value for w in at.warning)
    at.selectbox[1].select("synth")
    at.button[0].click().run()  # other parameters: a job of its own
    assert len(job_store.list_jobs(kind="anonymise")) == 2
    # a release in the store: the release-check form validates the threshold before queueing
    from factories import import_imu_sample

    import_imu_sample(tmp_path, n_subjects=4, n_trials=3, name="t")  # 3 recordings per subject: checkable
    api.run("anonymise", {"dataset": "t", "method": "none", "name": "s-rel", "evaluate": False})
    at = _page("2_Anonymise.py")
    at.text_input(key="threshold").input("1.5")
    next(b for b in at.button if b.label == "Queue release check").click().run()
    assert not at.exception, at.exception
    assert any("threshold" in e.value for e in at.error)
    assert not job_store.list_jobs(kind="release_check")
    assert dataset_store.get_dataset("s-rel")["releasable"] is None
    # an unjudged release is withheld: nothing to download until a check passes (or a steward overrides)
    assert not any(b.label.startswith("Download release/") for b in at.get("download_button"))
    refused = api.run("release_check", {"dataset": "s-rel", "attackers": ["knn"], "n_boot": 10, "epochs": 1})
    assert refused["result"]["releasable"] is False  # the identity "anonymiser" copies its training windows
    at = _page("2_Anonymise.py")
    assert not any(b.label.startswith("Download release/") for b in at.get("download_button"))
    assert any(e.value.startswith("NOT releasable:") for e in at.error)  # the verdict, in words
    at.text_area[0].input("approved for the consortium's secure enclave")
    next(b for b in at.button if b.label == "Override and export").click().run()
    assert not at.exception, at.exception
    [queued] = job_store.list_jobs(kind="release_override", status="queued")
    assert queued["params"]["actor"] == "steward (app)"
    from anonaudit.jobs.worker import run_worker

    run_worker(max_jobs=1, kinds=["release_override"])
    at = _page("2_Anonymise.py")  # shows the newest finished job: the override, which exported the files
    assert any(b.label.startswith("Download release/") for b in at.get("download_button"))
    assert any("overridden by steward (app)" in w.value for w in at.warning)


def _judged(method: str, reid: float, f1: float, **extra: float) -> None:
    """A finished anonymise job with the headline figures a real one records."""
    job = job_store.start_job("anonymise", {"dataset": "s", "method": method}, "test", 60)
    job_store.finish_job(job.id, "test", result={"released": f"s-{method}", "method": method, "reid_chance": 0.25,
                                                 "reid_retrained_recording_acc": reid, "har_wf1_released": f1,
                                                 "har_wf1_real": 0.95, "reid_real_recording_acc": 0.98, **extra})


def test_anonymise_page_privacy_utility_frontier(db_url, tmp_path):
    _sample_in_store(tmp_path)
    for method, reid, f1 in [("none", 0.9, 0.9), ("noise", 0.5, 0.4), ("ae", 0.6, 0.8), ("anon_acg", 0.3, 0.7)]:
        _judged(method, reid, f1)
    _judged("dp_synth", 0.2, 0.3, epsilon=12.5)
    at = _page("2_Anonymise.py")
    table = next(d.value for d in at.dataframe if "on frontier" in d.value)
    on = dict(zip(table["method"], table["on frontier"]))
    # noise: worse than anon_acg on both
    assert on == {"anon_acg": True, "noise": False, "ae": True, "none": True, "dp_synth": True}
    spent = dict(zip(table["method"], table["DP ε (per subject)"]))
    assert spent["dp_synth"] == 12.5 and pd.isna(spent["anon_acg"])
    # the chart marks the original data and labels chance and the limit
    import json

    layers = json.loads(at.get("vega_lite_chart")[0].proto.spec)["layer"]
    marks = [layer["mark"] if isinstance(layer["mark"], dict) else {"type": layer["mark"]} for layer in layers]
    assert any(m["type"] == "point" and m.get("shape") == "diamond" for m in marks)  # the original data
    assert [m["type"] for m in marks].count("text") == 2 and any(m["type"] == "rule" for m in marks)  # labelled
    assert at.get("vega_lite_chart")
