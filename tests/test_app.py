"""The Streamlit app's pages, rendered with Streamlit's AppTest against a real job store."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from anonaudit.store import jobs as job_store

APP = Path(__file__).resolve().parents[1] / "app" / "Home.py"


def test_home_page_lists_jobs_and_queues_the_main_job(db_url):
    job_store.submit_job("noop", {"sleep_s": 0})
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("Datasets" in h.value for h in at.subheader)
    assert len(at.dataframe) >= 1  # the jobs table
    at.button[0].click().run()
    assert not at.exception
    assert any("Queued job" in s.value for s in at.success)
    kinds = [j["kind"] for j in job_store.list_jobs(status="queued")]
    assert kinds.count("pipeline") == 1  # submitted, not run inside the app


PAGES = APP.parent / "pages"


def _sample_in_store(tmp_path) -> None:
    from anonaudit import api
    from anonaudit.data.synthetic import SampleSpec, write_sample_data

    write_sample_data(tmp_path / "s", SampleSpec(n_subjects=4, n_trials=2, duration_s=3.0))
    api.import_dataset(tmp_path / "s" / "mapping.toml", name="s")


def test_evaluate_page_queues_a_validated_job(db_url, tmp_path):
    _sample_in_store(tmp_path)
    at = AppTest.from_file(str(PAGES / "1_Evaluate.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    at.button[0].click().run()
    assert not at.exception, at.exception
    queued = job_store.list_jobs(status="queued", kind="evaluate")
    assert len(queued) == 1 and queued[0]["params"]["dataset"] == "s"


def test_anonymise_page_queues_jobs_and_rejects_bad_thresholds(db_url, tmp_path):
    from anonaudit.store import datasets as dataset_store

    _sample_in_store(tmp_path)
    at = AppTest.from_file(str(PAGES / "2_Anonymise.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    at.selectbox[1].select("noise")
    at.button[0].click().run()
    assert not at.exception, at.exception
    queued = job_store.list_jobs(status="queued", kind="anonymise")
    assert len(queued) == 1 and queued[0]["params"]["method"] == "noise"
    # a release in the store: the release-check form validates the threshold before queueing
    from anonaudit import api

    api.run("anonymise", {"dataset": "s", "method": "none", "name": "s-rel", "evaluate": False})
    at = AppTest.from_file(str(PAGES / "2_Anonymise.py"), default_timeout=60).run()
    at.text_input[2].input("1.5")
    at.button[1].click().run()
    assert not at.exception, at.exception
    assert any("threshold" in e.value for e in at.error)
    assert not job_store.list_jobs(kind="release_check")
    assert dataset_store.get_dataset("s-rel")["releasable"] is None
