"""Reliability under hostile input, races, anonymous visitors and killed workers (issue 18).

``python benchmarks/reliability.py [--json out.json] [--parts inputs,race,pages,queue]``

What it does, part by part (each in its own temporary ``ANONAUDIT_HOME``):

* **inputs**: replays a corpus of bad inputs through the same entry points users reach — the
  CLI (Typer's runner, in process, classified exactly as ``anonaudit.cli.main`` classifies), the
  Python API (``api.run`` / ``api.submit`` / ``api.check``) and the import of data files. The data
  files are cut from the real datasets in ``../shared/datasets`` (the first rows of UCI HAPT, two
  UTD-MHAD inertial recordings) and the synthetic sample, then corrupted by a seeded generator:
  truncations, byte flips, text or booleans in numeric columns, dropped or duplicated columns,
  bad mapping values. Each input counts once (``bad_inputs_tried``); an exception that is not an
  ``AnonauditError``, or a message carrying a traceback, counts in ``internal_errors``. A
  mutation that happens to be valid data and imports is counted in ``accepted_inputs``, and its
  dataset must open. After every input the store is checked: a registered dataset whose files
  are missing or unreadable, or a temporary folder left in the data home, is a data-loss event.
* **race**: rounds of two ``anonaudit data import`` processes importing the same sample into one
  database at the same moment, on SQLite and on PostgreSQL; after every round every registered
  dataset must open (``data_loss_events``).
* **pages**: ``anonaudit ui`` with passwords set; headless Chromium requests every page URL as a
  new, anonymous visitor's first request (``pages_reachable_unauthenticated``: pages that show
  anything but the sign-in form).
* **queue**: 4 worker processes × 200 jobs on a fresh PostgreSQL database, a ``kill -9`` of a
  worker that is running a job every 20 finished jobs (the worker is restarted); every job must
  finish exactly once, none lost, and the attempts of the killed ones recorded
  (``jobs_run_exactly_once``).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
POSTGRES = os.environ.get("ANONAUDIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PAGES = ("", "Datasets", "Evaluate", "Anonymise", "Private_models", "Bias_audit", "Explain", "Jobs", "Jobs?job=1",
         "Datasets/", "nonexistent_page")


@contextlib.contextmanager
def fresh_home(url: str | None = None) -> Iterator[Path]:
    """A temporary data home (and database) that anonaudit in this process and its children use."""
    from anonaudit.store.db import dispose_engines

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        saved = {k: os.environ.get(k) for k in ("ANONAUDIT_HOME", "ANONAUDIT_REPORTS", "ANONAUDIT_DATABASE_URL")}
        os.environ.update(ANONAUDIT_HOME=str(home), ANONAUDIT_REPORTS=str(Path(tmp) / "reports"),
                          ANONAUDIT_DATABASE_URL=url or f"sqlite:///{home / 'anonaudit.db'}")
        try:
            yield home
        finally:
            dispose_engines()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def losses(home: Path) -> int:
    """Registered datasets that do not open, plus temporary folders left in the data home."""
    from anonaudit.files import TMP_MARK
    from anonaudit.store.datasets import unreadable_datasets

    stray = [p for p in (home / "datasets").glob("*") if TMP_MARK in p.name] if (home / "datasets").exists() else []
    return len(unreadable_datasets()) + len(stray)


# ---------------------------------------------------------------------------- inputs
class Tally:
    """Outcome of every bad input: a clear error, an internal error, or accepted."""

    def __init__(self) -> None:
        self.tried: set[str] = set()
        self.internal: list[str] = []
        self.accepted = 0
        self.clear = 0

    def replay(self, key: str, action: Callable[[], Any]) -> None:
        from anonaudit.errors import AnonauditError

        if key in self.tried:
            return
        self.tried.add(key)
        try:
            outcome = action()
        except AnonauditError as exc:
            message = str(exc)
            if not message or "Traceback" in message or "internal error" in message:
                self.internal.append(f"{key}: unclear message {message!r}")
            else:
                self.clear += 1
            return
        except Exception as exc:  # noqa: BLE001 — exactly what the benchmark counts
            self.internal.append(f"{key}: {type(exc).__name__}: {exc}"[:300])
            return
        if isinstance(outcome, str) and outcome.startswith("internal"):
            self.internal.append(f"{key}: {outcome[:300]}")
        elif outcome == "clear":
            self.clear += 1
        else:
            self.accepted += 1


def cli(*args: str) -> str:
    """Run the CLI in process; classify its end as ``anonaudit.cli.main`` would print it."""
    from typer.testing import CliRunner

    from anonaudit.cli import app
    from anonaudit.errors import AnonauditError

    result = CliRunner().invoke(app, list(args))
    if result.exception is None or isinstance(result.exception, SystemExit):
        return "ok" if result.exit_code == 0 else "clear"  # a usage error or an `error:` line
    if isinstance(result.exception, AnonauditError):
        return "clear"
    return f"internal error: {type(result.exception).__name__}: {result.exception}"


def _numeric_cases() -> Iterator[tuple[str, dict[str, Any]]]:
    import dataclasses
    import math
    import typing

    from anonaudit.jobs import registry

    required = {"anonymise": {"dataset": "d"}, "release_check": {"dataset": "d"}, "evaluate": {"dataset": "d"},
                "bias_audit": {"dataset": "d"}, "explain": {"data": "d.csv", "target": "y"},
                "import": {"path": "."}, "dp_train": {"data": "digits"}, "pipeline": {"path": "."},
                "release_override": {"dataset": "d", "reason": "approved by the ethics board"}}
    for kind in registry.known_kinds():
        cls = registry.spec(kind).params
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kinds = set(typing.get_args(hints[f.name])) or {hints[f.name]}
            if kinds & {int, float}:
                for value in (-3, -0.5, math.nan, math.inf, "seven", [1]):
                    yield kind, {**required.get(kind, {}), f.name: value}
        yield kind, {**required.get(kind, {}), "no_such_parameter": 1}
    yield "no_such_kind", {}


def _real_hapt_rows(n: int = 3000) -> bytes:
    path = DATASETS / "hapt" / "HAPT_raw_50Hz_converted.csv.gz"
    with gzip.open(path, "rt") as src:
        return "".join(next(src) for _ in range(n)).encode()


def _mutations(data: bytes, rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
    """Seeded corruptions of a CSV: truncations, byte flips, text/bool cells, dropped/duplicated columns."""
    text = data.decode()
    lines = text.splitlines()
    header = lines[0].split(",")
    yield "empty", b""
    yield "header only", (lines[0] + "\n").encode()
    yield "not text", bytes(rng.randrange(256) for _ in range(2000))
    for i in range(n):
        choice = i % 6
        if choice == 0:
            cut = rng.randrange(1, len(data))
            yield f"truncated at {cut}", data[:cut]
        elif choice == 1:
            flipped = bytearray(data)
            for _ in range(rng.randrange(1, 20)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            yield f"flipped {i}", bytes(flipped)
        elif choice == 2:
            row, col = rng.randrange(1, len(lines)), rng.randrange(len(header))
            cells = lines[row].split(",")
            cells[col] = rng.choice(["True", "abc", "1e999", "", "nan", "-inf", "1,5"])
            yield f"cell {row}:{header[col]}={cells[col]!r}", "\n".join(lines[:row] + [",".join(cells)] + lines[row + 1:]).encode()
        elif choice == 3:
            col = rng.randrange(len(header))
            yield f"dropped {header[col]}", "\n".join(",".join(c for j, c in enumerate(line.split(",")) if j != col) for line in lines).encode()
        elif choice == 4:
            yield f"duplicated header {i}", ("\n".join([lines[0] + "," + header[rng.randrange(len(header))]] + [line + ",0" for line in lines[1:]])).encode()
        else:
            keep = sorted(rng.sample(range(1, len(lines)), k=max(1, len(lines) // 3)))
            yield f"shuffled rows {i}", "\n".join([lines[0]] + [lines[k] for k in reversed(keep)]).encode()


def _mapping_mutations(mapping: str, rng: random.Random, n: int) -> Iterator[tuple[str, str]]:
    edits = [("sampling_rate = ", ["1e300", "1e-300", "0", "-50", "\"fast\"", "nan"]),
             ("channels = ", ["[\"X-Axis\"]", "[]", "\"acc_*\"", "[1, 2]"]),
             ("subject = ", ["\"nope\"", "3"]), ("activity = ", ["\"nope\"", "[]"])]
    yield "toml syntax", mapping.replace("=", "==", 1)
    yield "unknown key", mapping + "\n[extra]\nx = 1\n"
    for i in range(n):
        prefix, values = edits[i % len(edits)]
        lines = mapping.splitlines()
        hits = [k for k, line in enumerate(lines) if line.strip().startswith(prefix)]
        if not hits:
            continue
        value = rng.choice(values)
        k = hits[0]
        lines[k] = prefix + value
        yield f"{prefix.strip()} {value}", "\n".join(lines) + "\n"


def bench_inputs(seed: int, n_mutations: int) -> dict[str, Any]:
    from anonaudit import api
    from anonaudit.data.synthetic import SampleSpec, write_sample_data

    rng = random.Random(seed)
    tally = Tally()
    lost = 0
    with fresh_home() as home:
        work = home.parent / "inputs"
        work.mkdir()
        # parameters through the one validation every path runs, and through the CLI
        for kind, params in _numeric_cases():
            tally.replay(f"api.submit {kind} {params}", lambda k=kind, p=params: api.submit(k, p))
            tally.replay(f"api.run {kind} {params}", lambda k=kind, p=params: api.run(k, p))
        probes = [("anonymise", "d", "--gan-epochs", "-3"), ("anonymise", "d", "--noise-sigma", "-1"),
                  ("anonymise", "d", "--method", "nope", "--queue"), ("evaluate", "d", "--epochs", "0"),
                  ("jobs", "submit", "anonymise", "-p", "dataset=d", "-p", "method=nope"),
                  ("jobs", "submit", "evaluate", "-p", "dataset=d", "-p", "colour=red"), ("jobs", "show", "999"),
                  ("jobs", "cancel", "999"), ("jobs", "rerun", "999"), ("report", "999"), ("data", "show", "nope"),
                  ("data", "delete", "nope"), ("data", "import", "/etc/passwd"), ("data", "import", str(work / "none")),
                  ("explain", str(work / "none.csv"), "--target", "y"), ("db", "downgrade", "nosuch"),
                  ("release-check", "nope", "--threshold", "2"), ("dp-train", "digits", "--epsilon", "-1"),
                  ("dp-sweep", "digits", "--epsilon", "x"), ("audit", "nope", "--draws", "0"),
                  ("audit", "nope", "--cut", "height"), ("pipeline", str(work / "none"))]
        for probe in probes:
            tally.replay("cli " + " ".join(probe), lambda a=probe: cli(*a))
        # server paths the app must refuse, whatever the role
        for path in ("/etc/passwd", "/etc", "../../../etc/shadow", str(Path.home())):
            tally.replay(f"app import {path}", lambda p=path: api.check("import", {"path": p}, role="steward",
                                                                         restrict_paths=True))
        # real data, corrupted
        hapt = _real_hapt_rows()
        for label, data in _mutations(hapt, rng, n_mutations):
            target = work / f"hapt-{len(tally.tried)}.csv"
            target.write_bytes(data)
            tally.replay(f"hapt {label}", lambda t=target: _import(t, "hapt"))
            lost += losses(home)
        utd = sorted((DATASETS / "utd_mhad" / "Inertial").glob("a1_s1_t*_inertial.mat"))[:2]
        for i in range(n_mutations // 4):
            folder = work / f"utd-{i}"
            (folder / "Inertial").mkdir(parents=True)
            for src in utd:
                raw = src.read_bytes()
                cut = rng.randrange(1, len(raw)) if src is utd[0] else len(raw)
                (folder / "Inertial" / src.name).write_bytes(raw[:cut])
            tally.replay(f"utd truncated {i}", lambda f=folder: _import(f, "utd_mhad", modality="inertial"))
            lost += losses(home)
        # the synthetic sample in the user's import format: mapping and CSV, corrupted
        sample = work / "sample"
        write_sample_data(sample, SampleSpec(n_subjects=3, n_trials=1, duration_s=3.0))
        mapping = (sample / "mapping.toml").read_text()
        for label, text in _mapping_mutations(mapping, rng, n_mutations):
            (sample / "mapping.toml").write_text(text)
            tally.replay(f"mapping {label}", lambda: _import(sample / "mapping.toml", "tabular", name="m"))
            lost += losses(home)
        (sample / "mapping.toml").write_text(mapping)
        csv_name = next(p.name for p in sample.iterdir() if p.name.endswith((".csv", ".csv.gz")) and "subject" not in p.name)
        original = (sample / csv_name).read_bytes()
        raw = gzip.decompress(original) if csv_name.endswith(".gz") else original
        for label, data in _mutations(raw, rng, n_mutations):
            (sample / csv_name).write_bytes(gzip.compress(data) if csv_name.endswith(".gz") else data)
            tally.replay(f"sample csv {label}", lambda: _import(sample / "mapping.toml", "tabular", name="c"))
            lost += losses(home)
        # a corrupt Parquet dataset folder
        ds_dir = next((home / "datasets").glob("*"), None)
        if ds_dir is not None:
            copy = work / "parquet"
            shutil.copytree(ds_dir, copy)
            for part in sorted(copy.glob("*.parquet")):
                part.write_bytes(part.read_bytes()[: len(part.read_bytes()) // 2])
                tally.replay(f"parquet truncated {part.name}", lambda: _import(copy, "anonaudit", name="p"))
        lost += losses(home)
    return {"bad_inputs_tried": len(tally.tried), "internal_errors": len(tally.internal),
            "clear_errors": tally.clear, "accepted_inputs": tally.accepted, "input_data_loss_events": lost,
            "internal_error_examples": tally.internal[:10]}


def _import(path: Path, fmt: str, name: str | None = None, **options: Any) -> str:
    """Import and, when it is accepted, open the stored dataset (it must be readable)."""
    from anonaudit import api
    from anonaudit.jobs.datasets import open_dataset

    params = {"path": str(path), "format": fmt, "name": name or f"in-{uuid.uuid4().hex[:8]}", "replace": True,
              "options": options}
    record = api.run("import", params)["result"]
    open_dataset(record["name"])
    return "ok"


# ---------------------------------------------------------------------------- race
def bench_race(rounds: int) -> dict[str, Any]:
    from anonaudit.data.synthetic import SampleSpec, write_sample_data
    from anonaudit.store.db import scratch_postgres

    out: dict[str, Any] = {}
    total = 0
    for backend in ("sqlite", "postgres"):
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(scratch_postgres(POSTGRES, "anonaudit_bench")) if backend == "postgres" else None
            home = stack.enter_context(fresh_home(url))
            lost = 0
            for i in range(rounds):
                sample = home.parent / f"race{i}"
                write_sample_data(sample, SampleSpec(n_subjects=2, n_trials=1, duration_s=2.0))
                cmd = [sys.executable, "-m", "anonaudit", "data", "import", str(sample / "mapping.toml"), "--name",
                       f"race{i}"]
                procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
                         for _ in range(2)]
                for proc in procs:
                    proc.wait(timeout=300)
                lost += losses(home)
            out[f"race_{backend}_rounds"] = rounds
            out[f"race_{backend}_data_loss_events"] = lost
            total += lost
    out["race_data_loss_events"] = total
    return out


# ---------------------------------------------------------------------------- pages
def bench_pages() -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from anonaudit.access import hash_password

    with fresh_home() as home:
        env = {**os.environ, "ANONAUDIT_UI_PASSWORD_STEWARD": hash_password("s"), "OMP_NUM_THREADS": "1"}
        port = 8700 + random.Random().randrange(200)
        proc = subprocess.Popen([sys.executable, "-m", "anonaudit", "ui", "--port", str(port)], env=env,
                                cwd=home.parent, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        reachable: list[str] = []
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    import urllib.request

                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the app did not start") from None
                    time.sleep(0.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run"])
                for slug in PAGES:
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(f"{url}/{slug}")
                    try:
                        page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
                        body = page.locator("body").inner_text()
                        if any(w in body for w in ("Newest jobs", "Queue", "Cancel job", "Download")):
                            reachable.append(slug)
                    except Exception:  # noqa: BLE001 — no sign-in form: the page rendered something else
                        reachable.append(slug)
                    context.close()
                browser.close()
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return {"pages_requested": len(PAGES), "pages_reachable_unauthenticated": len(reachable),
            "pages_reachable_examples": reachable}


# ---------------------------------------------------------------------------- queue
def bench_queue(n_jobs: int, n_workers: int, kill_every: int, seed: int) -> dict[str, Any]:
    from anonaudit.store import jobs as job_store
    from anonaudit.store.db import scratch_postgres

    rng = random.Random(seed)
    with scratch_postgres(POSTGRES, "anonaudit_bench") as url, fresh_home(url) as home:
        markers = home.parent / "markers"
        ids = [job_store.submit_job("noop", {"sleep_s": 0.3, "steps": 3, "marker_dir": str(markers)}, max_attempts=5)
               for _ in range(n_jobs)]
        logs = home.parent / "logs"
        logs.mkdir()

        def start(name: str) -> subprocess.Popen:
            with open(logs / f"{name}.log", "a") as log:
                return subprocess.Popen([sys.executable, "-m", "anonaudit.jobs.worker", "--id", name, "--lease", "3",
                                         "--poll", "0.1"], stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())

        workers = {f"w{i}": start(f"w{i}") for i in range(n_workers)}
        kills, restarts, next_kill = 0, 0, kill_every
        start_t = time.monotonic()
        try:
            while time.monotonic() - start_t < 1200:
                counts = job_store.count_jobs("status")
                done = counts.get("succeeded", 0) + counts.get("failed", 0) + counts.get("cancelled", 0)
                if done >= n_jobs:
                    break
                if done >= next_kill:
                    running = [j["worker_id"] for j in job_store.list_jobs(status="running", limit=50)]
                    victims = [w for w in running if w in workers] or list(workers)
                    victim = rng.choice(victims)
                    workers[victim].send_signal(signal.SIGKILL)
                    workers[victim].wait(timeout=30)
                    kills += 1
                    restart = f"{victim.split('-')[0]}-{kills}"
                    workers.pop(victim)
                    workers[restart] = start(restart)
                    restarts += 1
                    next_kill += kill_every
                time.sleep(0.2)
        finally:
            for proc in workers.values():
                proc.send_signal(signal.SIGTERM)
            for proc in workers.values():
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        elapsed = time.monotonic() - start_t
        jobs = {j["id"]: j for j in job_store.list_jobs(limit=n_jobs + 10)}
        succeeded = [i for i in ids if jobs[i]["status"] == "succeeded"]
        finished_once = [i for i in succeeded if sum(a["name"] == "noop.json" for a in job_store.job_artifacts(i)) == 1]
        retried = [i for i in ids if jobs[i]["attempts"] > 1]
        started = sum(1 for _ in markers.iterdir()) if markers.exists() else 0
        lost = [i for i in ids if jobs[i]["status"] != "succeeded"]
    return {"queue_jobs": n_jobs, "queue_workers": n_workers, "queue_kills": kills, "queue_seconds": round(elapsed, 1),
            "jobs_run_exactly_once": len(finished_once), "jobs_lost": len(lost),
            "jobs_retried_after_kill": len(retried), "job_attempts_started": started,
            "attempts_recorded": sum(jobs[i]["attempts"] for i in ids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--parts", default="inputs,race,pages,queue")
    parser.add_argument("--mutations", type=int, default=60, help="seeded corruptions per data source")
    parser.add_argument("--race-rounds", type=int, default=10, help="import races per back-end")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    sys.path.insert(0, str(REPO))
    logging_quiet()
    figures: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name, run in (("inputs", lambda: bench_inputs(args.seed, args.mutations)),
                      ("race", lambda: bench_race(args.race_rounds)), ("pages", bench_pages),
                      ("queue", lambda: bench_queue(args.jobs, args.workers, args.kill_every, args.seed))):
        if name in parts:
            t0 = time.perf_counter()
            figures.update(run())
            timings[f"{name}_s"] = round(time.perf_counter() - t0, 1)
    if {"inputs", "race"} <= parts:
        figures["data_loss_events"] = figures["input_data_loss_events"] + figures["race_data_loss_events"]
    figures["timings"] = timings
    width = max(map(len, figures))
    print(f"{'figure':<{width}}  value")
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, default=str))


def logging_quiet() -> None:
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")


if __name__ == "__main__":
    main()
