"""Issue 17's release gate: verdicts against uniform chance, enforced, overridable only on the record."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from anonaudit import access, api
from anonaudit.errors import DataError, ParameterError
from anonaudit.evaluate.verdict import NOT_REIDENTIFICATION, Check, release_verdict, reidentification_checks
from anonaudit.store import datasets as dataset_store
from anonaudit.store import jobs as job_store
from factories import import_imu_sample


def _row(train: str, model: str, level: str, metric: str, value: float, chance: float) -> dict:
    return {"protocol": "privacy", "model": model, "target": "subject", "train_data": train, "test_data": "released",
            "level": level, "metric": metric, "value": value, "ci_low": value - 0.05, "ci_high": value + 0.05,
            "chance": chance}


def test_a_skewed_dataset_cannot_pass_a_leaky_release():
    """18 subjects, one holding 26 % of the recordings: the attacker at 3.2× uniform chance must be refused,
    though its accuracy is below twice the majority share (the old limit)."""
    table = pd.DataFrame([
        _row("released (retrained)", "lda", "recording", "accuracy", 0.30, 0.26),
        _row("released (retrained)", "lda", "recording", "balanced_accuracy", 0.178, 1 / 18),
        _row("real", "tcnn", "window", "accuracy", 0.05, 0.26),
        _row("real", "real-real", "window", "accuracy", 0.9, 0.26) | {"test_data": "real"},  # raw data: not the release
    ])
    checks = reidentification_checks(table, n_subjects=18)
    assert {(c.threat, c.attacker, c.level) for c in checks} == {("linkage", "lda", "recording"),
                                                                 ("frozen", "tcnn", "window")}
    assert all(c.chance == pytest.approx(1 / 18) and c.limit == pytest.approx(2 / 18) for c in checks)
    verdict = release_verdict(checks)
    assert not verdict.releasable
    assert verdict.decided_by.attacker == "lda" and verdict.decided_by.value == pytest.approx(0.30)
    assert "linkage threat model, lda at recording level" in verdict.reason and "uniform chance 5.6%" in verdict.reason
    assert verdict.decided_by.risk == pytest.approx((0.30 - 1 / 18) / (1 - 1 / 18))
    passing = release_verdict(reidentification_checks(table[table["model"] == "tcnn"], n_subjects=18))
    assert passing.releasable and passing.decided_by.threat == "frozen"


def test_balanced_accuracy_counts_where_accuracy_hides_the_attack():
    table = pd.DataFrame([_row("informed", "knn", "window", "accuracy", 0.10, 0.5),
                          _row("informed", "knn", "window", "balanced_accuracy", 0.40, 0.1)])
    verdict = release_verdict(reidentification_checks(table, n_subjects=10))
    assert not verdict.releasable and verdict.decided_by.metric == "balanced_accuracy"
    assert verdict.decided_by.threat == "informed"


def test_a_failing_memorisation_check_refuses_on_its_own():
    table = pd.DataFrame([_row("released (retrained)", "knn", "recording", "accuracy", 0.1, 0.1)])
    checks = reidentification_checks(table, n_subjects=10)
    memorised = Check("memorisation", "nearest training window", "window", "distance_ratio", 0.3, 0.25, 0.35, 1.0,
                      0.95, False)
    verdict = release_verdict([*checks, memorised])
    assert not verdict.releasable and verdict.decided_by.threat == "memorisation"
    assert "0.30× as far" in verdict.reason


def test_verdict_inputs_are_checked():
    table = pd.DataFrame([_row("real", "tcnn", "window", "accuracy", 0.1, 0.1)])
    with pytest.raises(ParameterError, match="threshold"):
        reidentification_checks(table, 10, threshold=1.5)
    with pytest.raises(DataError, match="at least 2 subjects"):
        reidentification_checks(table, 1)
    with pytest.raises(DataError, match="no attack could be measured"):
        release_verdict([])


FAST = {"window_s": 1.0, "stride_s": 0.5, "har_model": "forest", "attackers": ["knn"], "biometric_model": "knn",
        "epochs": 1, "n_boot": 20}


def test_a_refused_release_is_withheld_until_a_steward_overrides_it_on_the_record(db_url, tmp_path):
    name = import_imu_sample(tmp_path, n_subjects=4, n_trials=3)
    job = api.run("anonymise", {"dataset": name, "method": "none", "name": "s-none", **FAST})  # identity: leaks
    result = job["result"]
    assert result["releasable"] is False and result["release_withheld"] is True
    # the identity release copies its training windows: memorisation refuses it (ratio 0, the most it can), and
    # every threat model was measured; exact metadata of 4 subjects can link every recording too, and a tie of two
    # maximal failures may go to either
    verdict = json.loads(job_store.artifact_files(job["id"])["release_check.json"].read_text())
    assert {c["threat"] for c in verdict["checks"]} == {"frozen", "linkage", "informed", "metadata", "memorisation", "membership"}
    [copied] = [c for c in verdict["checks"] if c["threat"] == "memorisation"]
    assert copied["value"] == pytest.approx(0.0, abs=1e-6) and not copied["passes"]
    assert result["release_threat_model"] in ("memorisation", "metadata") and "NOT releasable" in result["release_check"]
    assert all(c["chance"] == pytest.approx(0.25) for c in verdict["checks"] if c["threat"] not in NOT_REIDENTIFICATION)
    assert not any(a["name"].startswith("release/") for a in job["artifacts"])
    assert not dataset_store.may_export("s-none")
    assert any("withheld" in log["message"] for log in job_store.job_logs(job["id"]))

    with pytest.raises(access.AccessDenied, match="steward"):
        api.override_release("s-none", "the board approved it", role="auditor")
    with pytest.raises(ParameterError, match="reason"):
        api.override_release("s-none", "ok")
    assert dataset_store.overrides("s-none") == []

    done = api.override_release("s-none", "the board approved it for the consortium", actor="dana")
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["overridden_by"] == "dana" and "NOT releasable" in done["result"]["overridden_verdict"]
    assert {"release/samples.csv.gz", "release/recordings.csv"} <= {a["name"] for a in done["artifacts"]}
    [override] = dataset_store.overrides("s-none")
    assert override["actor"] == "dana" and override["job_id"] == done["id"]
    assert override["verdict"]["releasable"] is False
    assert dataset_store.may_export("s-none") and dataset_store.get_dataset("s-none")["releasable"] is False
    report = open(done["report_path"]).read()
    assert "dana" in report and "the board approved it for the consortium" in report

    with pytest.raises(DataError, match="not produced by an anonymise job"):  # the original is not a release
        api.override_release(name, "this is not a release at all")
    # a steward's lenient re-identification limit does not excuse copied training windows
    checked = api.run("release_check", {"dataset": "s-none", "threshold": 1.0, "attackers": ["knn"]})
    assert checked["result"]["releasable"] is False and checked["result"]["threat_model"] == "memorisation"
    assert not any(a["name"].startswith("release/") for a in checked["artifacts"])
    api.run("anonymise", {"dataset": name, "method": "noise", "name": "s-unjudged", "evaluate": False, **FAST})
    with pytest.raises(ParameterError, match="never checked.*release-check"):
        api.override_release("s-unjudged", "nothing was judged here yet")


def test_the_main_jobs_release_can_be_checked(db_url, tmp_path):
    from anonaudit.data.synthetic import SampleSpec, write_sample_data

    write_sample_data(tmp_path / "sample", SampleSpec(n_subjects=4, n_trials=3, duration_s=4.0))
    job = api.run_pipeline(tmp_path / "sample", window_s=1.0, stride_s=0.5, epochs=1, attackers=["knn"], n_boot=20,
                           anonymise=["noise"], knob_values=[0.5], explain=False, dp=False, audit=False)
    assert job["status"] == "succeeded", job.get("error")
    assert job["result"]["anon_released"] is None and job["result"]["anon_decision"].startswith("NOTHING RELEASED")
    check = api.run("release_check", {"dataset": "sample-released-noise-0.5", "threshold": 1.0, "attackers": ["knn"]})
    assert check["status"] == "succeeded", check["error"]
    verdict = json.loads(job_store.artifact_files(check["id"])["release_check.json"].read_text())
    assert {c["threat"] for c in verdict["checks"]} == {"frozen", "linkage", "informed", "metadata", "memorisation", "membership"}
    # Gaussian noise leaves each released window near its source: memorisation refuses it, whatever the limit
    assert check["result"]["releasable"] is False and check["result"]["threat_model"] == "memorisation"
    assert not any(a["name"].startswith("release/") for a in check["artifacts"])
    # both reports put the decision first: the outcome beside the job's status, the verdict before any figure,
    # every check against its limit with the deciding one on top, the raw keys collapsed at the end
    from anonaudit.jobs.reports import write_report

    for finished, verdict_text in ((job, "NOTHING RELEASED"), (check, "NOT releasable: memorisation")):
        page = write_report(finished["id"]).read_text()
        assert "job succeeded</span> <span class='status refused'>release refused</span>" in page
        first = page.index("<section class='headline refused'><h2>Release</h2>")
        assert first < page.index(verdict_text) < page.index("<h2>Figures</h2>") < page.index("<summary>All result")
        assert "anon_reid" not in page[:page.index("<details>")] and "release_reid_max" not in page[:page.index("<details>")]
    # the datasheet that travels with the release says what it protects against and what not
    from anonaudit.jobs.reports import release_datasheet

    sheet = release_datasheet(check["id"])
    assert sheet.startswith("# Datasheet:") and "**Verdict:** NOT releasable." in sheet
    assert sheet.index("## What it protects against") < sheet.index("## What it does not protect")
    assert sum(line.startswith("| ") for line in sheet.splitlines()) == len(verdict["checks"]) + 1  # + header
    assert "S-" not in sheet and "private" not in sheet  # no pseudonym, no private artifact
    checks = page[page.index("Every threat model and attacker"):page.index("</section>", first)]
    rows = checks.split("<tr>")[1:]  # the header row carries a style attribute
    assert "memorisation" in rows[0] and "NO" in rows[0] and len(rows) == len(verdict["checks"])


def test_a_frontiers_points_are_read_back_with_their_verdicts():
    import io

    import pandas as pd

    from anonaudit.reporting.summary import _points

    stored = pd.DataFrame({"method": ["synth", "donor"], "knob": [None, "k"], "value": [None, 4.0],
                           "releasable": [True, False], "release_threat_model": ["metadata", "membership"]})
    frame = pd.read_csv(io.StringIO(stored.to_csv(index=False)))  # as the report reads it: numpy bools
    assert _points(frame) == "synth passed; donor k=4 refused by membership"
