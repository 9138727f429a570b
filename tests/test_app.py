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
