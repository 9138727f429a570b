"""The Explain page (issue 7 in the app): uploads under generated names, validated jobs, side-by-side cards."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from anonaudit.errors import ParameterError
from anonaudit.store import jobs as job_store
from anonaudit.store.uploads import save_upload, uploads_dir

PAGE = Path(__file__).resolve().parents[1] / "app" / "views" / "5_Explain.py"


def _planted_csv() -> bytes:
    from test_explain import PlantedModel, planted_frame

    X = planted_frame(400)
    return X.assign(label=PlantedModel().predict_proba(X)[:, 1] > 0.5).to_csv(index=False).encode()


def _page_with_upload(name: str = "planted.csv") -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    at.file_uploader[0].set_value((name, _planted_csv(), "text/csv")).run()
    assert not at.exception, at.exception
    return at


def test_upload_is_stored_under_a_generated_name_and_the_job_is_queued(db_url: str) -> None:
    at = _page_with_upload("../../evil name.csv")
    assert at.selectbox[0].value == "label"  # the last column is offered as the target
    at.number_input[0].set_value(7)
    at.button[0].click().run()
    assert not at.exception, at.exception
    queued = job_store.list_jobs(status="queued", kind="explain")
    assert len(queued) == 1
    params = queued[0]["params"]
    stored = Path(params["data"])
    assert stored.parent == uploads_dir() and "evil" not in stored.name and stored.suffix == ".csv"
    assert stored.read_bytes() == _planted_csv()
    assert params["target"] == "label" and params["index"] == 7 and params["model"] == "forest"


def test_results_show_rlime_lime_and_anchor_side_by_side(db_url: str, tmp_path: Path) -> None:
    from anonaudit import api

    csv = tmp_path / "planted.csv"
    csv.write_bytes(_planted_csv())
    job = api.run("explain", {"data": str(csv), "target": "label", "index": 3, "tau": 0.75, "n_trees": 5,
                              "init_samples": 300, "coverage_samples": 2000, "beam_size": 4, "lime_samples": 300})
    assert job["status"] == "succeeded", job.get("error")
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    headings = [m.value for m in at.markdown]
    assert {"#### R-LIME", "#### LIME", "#### Anchor"} <= set(headings)
    assert any(h.startswith("**Rule:**") for h in headings)
    assert any(m.label == "coverage" for m in at.metric)
    # a surrogate that does not predict the black box's class at the instance is flagged on its card
    import json

    from anonaudit.store import jobs as job_store

    stored = job_store.artifact_files(job["id"])["explanations.json"]
    exps = json.loads(stored.read_text())
    unfaithful = any(e.get("faithful") is False for e in exps.values() if isinstance(e, dict))
    assert any("does not predict" in w.value for w in at.warning) == unfaithful
    stored.write_text(json.dumps({**exps, "lime": {**exps["lime"], "faithful": False}}))
    flagged = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert any("does not predict" in w.value for w in flagged.warning)
    # the stored model is offered as a black box for the next explanation
    at.file_uploader[0].set_value(("again.csv", _planted_csv(), "text/csv")).run()
    assert any(o.startswith(f"the model of explain job {job['id']}") for o in at.selectbox[1].options)


def test_save_upload_rejects_wrong_type_empty_and_oversized_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANONAUDIT_HOME", str(tmp_path))
    with pytest.raises(ParameterError, match="accepted types"):
        save_upload(b"x", "model.pkl", (".csv",))
    with pytest.raises(ParameterError, match="empty"):
        save_upload(b"", "a.csv", (".csv",))
    with pytest.raises(ParameterError, match="limit"):
        save_upload(b"x" * 11, "a.csv", (".csv",), max_bytes=10)
    assert not uploads_dir().exists() or not any(uploads_dir().iterdir())
    assert save_upload(gzip.compress(b"a,b\n"), "x.CSV.gz", (".csv", ".csv.gz")).name.endswith(".csv.gz")
