"""Issue 18's probes on access, validation and job recovery: each one replayed, each must fail cleanly.

Every job kind's numeric parameters are swept with out-of-range values through the one
validation that every path runs (``registry.validate``), and the CLI's inline and ``--queue``
paths, ``jobs submit``, ``api.run`` and ``api.submit`` are each shown to refuse before anything
is stored or trained.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from datetime import timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from anonaudit import access, api
from anonaudit.cli import app
from anonaudit.errors import DataError, ParameterError
from anonaudit.jobs import registry
from anonaudit.store import jobs as job_store
from anonaudit.store.models import utcnow

# the required parameters of each kind, so that only the swept one is wrong
REQUIRED = {"anonymise": {"dataset": "d"}, "release_check": {"dataset": "d"}, "evaluate": {"dataset": "d"},
            "bias_audit": {"dataset": "d"}, "explain": {"data": "d.csv", "target": "y"}, "import": {"path": "."},
            "dp_train": {"data": "digits"}, "pipeline": {"path": "."}, "dp_sweep": {}, "explain_eval": {}, "noop": {},
            "release_override": {"dataset": "d", "reason": "approved by the ethics board"}, "frontier": {"dataset": "d"}}


def _numeric_fields() -> list[tuple[str, str, type]]:
    out = []
    for kind in registry.known_kinds():
        cls = registry.spec(kind).params
        if cls is None:
            continue
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            args = {a for a in typing.get_args(hints[f.name]) if a is not type(None)} or {hints[f.name]}
            number = next((a for a in args if a in (int, float)), None)
            if number is not None:
                out.append((kind, f.name, number))
    return out


NUMERIC = _numeric_fields()


def test_every_kind_declares_its_parameters():
    builtin = {k for k in registry.known_kinds() if registry.spec(k).fn.__module__.startswith("anonaudit.")}
    assert set(REQUIRED) == builtin  # (other test modules register kinds of their own)
    for kind in builtin:
        assert registry.spec(kind).params is not None, kind
        registry.validate(kind, REQUIRED[kind])  # the defaults are valid


@pytest.mark.parametrize(("kind", "name", "number"), NUMERIC, ids=[f"{k}.{n}" for k, n, _ in NUMERIC])
def test_out_of_range_numbers_are_refused_before_any_work(kind, name, number):
    bad = [-3] if number is int else [-3.0, math.nan, math.inf]
    for value in bad:
        with pytest.raises(ParameterError) as err:
            registry.validate(kind, {**REQUIRED[kind], name: value})
        assert repr(name) in str(err.value) or name in str(err.value), (kind, name, value, str(err.value))


def test_unknown_kind_method_and_parameter_fail_on_every_path(db_url):
    cases = [("nope", {}), ("anonymise", {"dataset": "d", "method": "nope"}),
             ("anonymise", {"dataset": "d", "colour": "red"}), ("anonymise", {"dataset": "d", "gan_epochs": -3})]
    for kind, params in cases:
        for call in (api.submit, api.run):
            with pytest.raises(ParameterError):
                call(kind, params)
    assert job_store.list_jobs() == []  # nothing queued, nothing recorded


def _cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """``anonaudit ARGS`` through the console script's own entry point, in this process."""
    from anonaudit.cli import main

    monkeypatch.setattr(sys, "argv", ["anonaudit", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    captured = capsys.readouterr()
    return int(ended.value.code or 0), captured.out + captured.err


def test_cli_refuses_bad_parameters_before_training(db_url, capsys, monkeypatch):
    probes = [("anonymise", "d", "--gan-epochs", "-3"), ("anonymise", "d", "--noise-sigma", "-1"),
              ("anonymise", "d", "--method", "nope", "--queue"),
              ("jobs", "submit", "anonymise", "-p", "dataset=d", "-p", "method=nope"),
              ("jobs", "submit", "evaluate", "-p", "dataset=d", "-p", "colour=red")]
    for probe in probes:
        code, out = _cli(capsys, monkeypatch, *probe)
        assert code == 2, (probe, out)
        assert out.startswith("error: parameter"), (probe, out)
        assert "internal error" not in out and "Traceback" not in out
    assert job_store.list_jobs() == []


def test_roles_are_decided_in_one_place():
    assert access.denied("steward", "submit", kind="anonymise") is None
    assert "steward" in access.denied("engineer", "submit", kind="anonymise")
    assert access.denied("auditor", "submit", kind="evaluate") is None
    assert access.denied(None, "submit", kind="evaluate") == "sign in first"
    for action in ("cancel", "rerun"):
        assert access.denied("auditor", action, kind="pipeline") is not None
        assert access.denied("auditor", action, kind="evaluate") is None
    for action in access.STEWARD_ACTIONS:
        assert access.denied("steward", action) is None
        assert access.denied("auditor", action) is not None and access.denied("engineer", action) is not None
    for action in access.ANY_ROLE_ACTIONS:
        assert all(access.denied(role, action) is None for role in access.ROLES)
        assert access.denied(None, action) is not None
    with pytest.raises(ValueError, match="unknown action"):
        access.denied("steward", "format_disk")


def test_cancel_and_rerun_check_the_role(db_url):
    job_id = job_store.submit_job("pipeline", {"path": "."})
    with pytest.raises(access.AccessDenied, match="steward"):
        api.cancel(job_id, role="auditor")
    assert job_store.get_job(job_id).status == "queued"
    assert api.cancel(job_id, role="steward") == "cancelled"
    with pytest.raises(access.AccessDenied, match="steward"):
        api.rerun(job_id, role="engineer")
    assert api.rerun(job_id, role="steward") > job_id


def test_server_paths_stay_inside_the_data_roots(db_url, tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    (root / "ok.toml").write_text("")
    (tmp_path / "link").symlink_to("/etc/passwd")
    monkeypatch.setenv("ANONAUDIT_DATA_ROOTS", str(root))
    for path in ("/etc/passwd", str(tmp_path / "link"), str(root / ".." / "link"), "../../etc/passwd"):
        with pytest.raises(access.AccessDenied) as err:
            api.submit("import", {"path": path}, role="steward", restrict_paths=True)
        assert "data roots" in str(err.value) and "root:" not in str(err.value)
    api.submit("import", {"path": str(root / "ok.toml")}, role="steward", restrict_paths=True)
    with pytest.raises(access.AccessDenied):  # the explainer's model file is a server path too
        api.submit("explain", {"data": str(root / "ok.toml"), "target": "y", "model": "/etc/passwd"},
                   role="auditor", restrict_paths=True)
    api.check("explain", {"data": str(root / "ok.toml"), "target": "y", "model": "forest"}, role="auditor",
              restrict_paths=True)  # a model name is not a path


def test_password_hashing_cost_and_warnings():
    stored = access.hash_password("pw")
    assert stored.split("$")[1] == str(access.ITERATIONS) and access.ITERATIONS >= 600_000
    assert access.check_password("pw", stored) and not access.check_password("px", stored)
    warnings = access.weak_passwords({"steward": stored, "auditor": "plain",
                                      "engineer": access.hash_password("e", iterations=1000)})
    assert len(warnings) == 2
    assert "auditor" in warnings[0] and "plain text" in warnings[0] and "plain" not in warnings[0].split("is")[0][4:]
    assert "engineer" in warnings[1] and "1,000" in warnings[1]


def test_sign_in_is_throttled_per_role():
    now = [0.0]
    throttle = access.SignInThrottle(max_failures=3, window_s=60, clock=lambda: now[0])
    checked = []
    for _ in range(3):
        assert not throttle.attempt("steward", lambda: checked.append(1) or False)
    with pytest.raises(access.AccessDenied, match="try again in 60 s"):
        throttle.attempt("steward", lambda: checked.append(1) or True)
    assert len(checked) == 3  # a throttled attempt never reaches the password check
    assert throttle.attempt("auditor", lambda: True)  # other roles are unaffected
    now[0] = 61.0
    assert throttle.attempt("steward", lambda: True)


def test_an_inline_job_whose_process_died_is_failed_by_the_next_command(db_url):
    job = job_store.start_job("noop", {}, "host:1:inline", 30.0)
    job_store.submit_job("noop", {})
    queued = job_store.claim_job("host:2", 30.0)
    late = utcnow() + timedelta(seconds=60)
    assert job_store.requeue_expired(late) == [job.id, queued.id]
    assert job_store.get_job(job.id).status == "failed"
    assert "inline" in job_store.get_job(job.id).error and "rerun" in job_store.get_job(job.id).error
    assert job_store.get_job(queued.id).status == "queued"  # a worker's job goes back to the queue
    again = job_store.start_job("noop", {}, "host:3:inline", 0.0)
    runner = CliRunner()
    result = runner.invoke(app, ["jobs", "list"])  # any command that opens the store recovers it
    assert result.exit_code == 0
    assert job_store.get_job(again.id).status == "failed"


POSITIVE = ("epochs", "batch_size", "window_s", "stride_s", "n_boot", "draws", "repeats", "resample_hz", "lr",
            "n_trees", "n_instances", "n_train", "n_steps", "train_subjects", "audit_window_s")
ZERO = [(k, n) for k, n, _ in NUMERIC if n.endswith(POSITIVE)]


@pytest.mark.parametrize(("kind", "name"), ZERO, ids=[f"{k}.{n}" for k, n in ZERO])
def test_sizes_and_durations_must_be_positive(kind, name):
    with pytest.raises(ParameterError, match=name):
        registry.validate(kind, {**REQUIRED[kind], name: 0})


def test_a_split_that_cannot_work_fails_before_any_training(monkeypatch):
    from anonaudit.evaluate import protocols
    from anonaudit.evaluate.protocols import EvalConfig

    from factories import tiny_dataset

    # s0 has three recordings of activity a; s1 only two: no test recording is left for s1
    ds = tiny_dataset(lengths=[60] * 5, subjects=["s0", "s0", "s0", "s1", "s1"],
                      labels=[np.zeros(60, int)] * 5)
    monkeypatch.setattr(protocols, "_utility", lambda *a, **k: pytest.fail("trained before checking the split"))
    with pytest.raises(DataError) as err:
        protocols.evaluate(ds, None, EvalConfig(window_s=1.0, stride_s=0.5))
    message = str(err.value)
    assert "['s1']" in message and "at least 3 recordings of one activity" in message and "at most 2" in message
    assert "time split" not in message  # no remedy that is not an option


def test_too_short_recordings_say_the_window_the_audit_needs(tmp_path):
    from anonaudit.audit.trainings import prepare_windows

    from factories import tiny_dataset

    ds = tiny_dataset(lengths=[100, 120], rate=10.0)  # 10 s and 12 s recordings
    with pytest.raises(DataError) as err:
        prepare_windows(ds, tmp_path, window_s=2.56, stride_s=1.28)
    message = str(err.value)
    assert "no val windows of 2.56 s" in message and "at least 17.1 s" in message and "12.0 s" in message
    assert "--window-s" in message and "at most 1.80 s" in message
    prepare_windows(ds, tmp_path, window_s=1.8, stride_s=0.9)  # the length it names works


@pytest.mark.parametrize("rate", [1e300, 1e-300, 0.01])
def test_resampling_rates_are_plausible_before_any_work(rate):
    with pytest.raises(ParameterError, match="resample_hz.*between 0.1 and 100000 Hz"):
        registry.validate("evaluate", {"dataset": "d", "resample_hz": rate})
