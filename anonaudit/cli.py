"""The ``anonaudit`` command line (Typer).

Commands only parse arguments, call the Python API or the job store, and print. Any
:class:`AnonauditError` becomes one ``error: …`` line and exit code 2 — never a traceback
(``ANONAUDIT_DEBUG=1`` shows tracebacks of unexpected errors).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from anonaudit.errors import AnonauditError, ParameterError
from anonaudit.progress import ProgressFn

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Anonymise, audit and explain human-movement sensor data.")
data_app = typer.Typer(no_args_is_help=True, help="Import, list and inspect datasets.")
jobs_app = typer.Typer(no_args_is_help=True, help="Queue, inspect, cancel and re-run jobs.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema migrations.")
app.add_typer(data_app, name="data")
app.add_typer(jobs_app, name="jobs")
app.add_typer(db_app, name="db")

_NO_STORE = {"hash-password", "db", "ui"}  # commands that must not open (or create) the store first


@app.callback()
def _global_options(
    ctx: typer.Context,
    scheduler: Annotated[Optional[str], typer.Option(
        "--scheduler", help="Dask scheduler (tcp://HOST:8786) for fan-out inside jobs; default: local processes.",
        envvar="ANONAUDIT_DASK_SCHEDULER")] = None,
) -> None:
    """Options that apply to every command."""
    if scheduler:
        os.environ["ANONAUDIT_DASK_SCHEDULER"] = scheduler  # read by compute.get_executor in this process and its workers
    if ctx.invoked_subcommand not in _NO_STORE and not ctx.resilient_parsing:
        from anonaudit.store import jobs

        jobs.requeue_expired()  # jobs whose worker or inline command died, even where no worker runs


QueueOpt = Annotated[bool, typer.Option("--queue", help="Only queue the job for `anonaudit worker`.")]
SeedOpt = Annotated[Optional[int], typer.Option(help="Random seed (recorded with the job).")]


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressFn]:
    """A tqdm bar driven by a job's progress(fraction, message) callback."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=description, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}",
               file=sys.stderr, disable=None)

    def update(fraction: float, message: str = "") -> None:
        bar.n = round(100 * min(max(fraction, 0.0), 1.0))
        bar.set_postfix_str(message[:40], refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _run_or_queue(kind: str, params: dict[str, Any], seed: int | None, queue: bool) -> dict[str, Any]:
    from anonaudit import api

    if queue:
        job_id = api.submit(kind, params, seed=seed)
        typer.echo(f"queued job {job_id} ({kind}); run `anonaudit worker` to process it")
        return {"id": job_id, "status": "queued"}
    with progress_bar(kind) as bar:
        job = api.run(kind, params, seed=seed, progress=bar)
    _print_finished(job)
    return job


def _print_finished(job: dict[str, Any]) -> None:
    typer.echo(f"job {job['id']} ({job['kind']}) {job['status']}")
    for key, value in (job.get("result") or {}).items():
        typer.echo(f"  {key}: {value}")
    if job.get("report_path"):
        typer.echo(f"  report: {job['report_path']}")
    if job.get("artifact_dir"):
        typer.echo(f"  artifacts: {job['artifact_dir']}")


# ---------------------------------------------------------------------------- main job
@app.command()
def pipeline(
    path: Annotated[Path, typer.Argument(help="Dataset to run on (folder, file or mapping.toml).")] = Path("sample_data"),
    name: Annotated[Optional[str], typer.Option(help="Dataset name (default: from the data).")] = None,
    format: Annotated[str, typer.Option(help="auto, sisfall, hapt, utd_mhad, tabular or anonaudit.")] = "auto",
    window_s: Annotated[float, typer.Option(help="Window length in seconds.")] = 2.56,
    stride_s: Annotated[float, typer.Option(help="Window stride in seconds.")] = 1.28,
    anonymise: Annotated[Optional[list[str]], typer.Option(help="Anonymisers of the release stage's frontier (repeat; default synth and donor; also anon_acg, anon_ag, anon_dfi, aae, ae, noise) or 'off'.")] = None,
    knob_value: Annotated[Optional[list[float]], typer.Option(help="With one anonymiser: values of its privacy knob to sweep (repeat; donor: k, default 4 and 8 where the data has that many subjects per activity); the best passing point is released.")] = None,
    seed: SeedOpt = 0,
    queue: QueueOpt = False,
) -> None:
    """Run the main job end to end on a dataset and write its report."""
    params = {"path": str(path), "format": format, "name": name, "window_s": window_s, "stride_s": stride_s,
              **({"anonymise": None if anonymise == ["off"] else anonymise} if anonymise else {}), "knob_values": knob_value}
    _run_or_queue("pipeline", params, seed, queue)


@app.command("evaluate")
def evaluate_cmd(
    dataset: Annotated[str, typer.Argument(help="Registered dataset (name or id).")],
    released: Annotated[Optional[str], typer.Option(help="Registered released version to judge against the original.")] = None,
    har_model: Annotated[str, typer.Option(help="HAR model: tcnn, tcnn_imu, lstm, transformer, knn, forest, logreg, lda.")] = "tcnn",
    reid_model: Annotated[str, typer.Option(help="Frozen re-identification model.")] = "tcnn",
    attacker: Annotated[Optional[list[str]], typer.Option(help="Retrained attackers (repeat the option); a feature model with _act (e.g. logreg_act) conditions on the activity.")] = None,
    attribute: Annotated[Optional[list[str]], typer.Option(help="Subject attributes to infer (default: all).")] = None,
    resample_hz: Annotated[Optional[float], typer.Option(help="Resample to this rate first.")] = None,
    window_s: Annotated[float, typer.Option(help="Window length in seconds.")] = 2.56,
    stride_s: Annotated[float, typer.Option(help="Window stride in seconds.")] = 1.28,
    epochs: Annotated[int, typer.Option(help="Training epochs (early stopping on validation).")] = 15,
    loss: Annotated[str, typer.Option(help="ce, or asl (asymmetric loss for imbalanced classes).")] = "ce",
    sampling: Annotated[str, typer.Option(help="Training windows: all, random, uniform, equidistant.")] = "all",
    seed: SeedOpt = 0,
    queue: QueueOpt = False,
) -> None:
    """Utility, re-identification (frozen and retrained attackers), soft biometrics and fidelity."""
    params = {"dataset": dataset, "released": released, "har_model": har_model, "reid_model": reid_model,
              "attackers": attacker, "attributes": attribute, "resample_hz": resample_hz, "window_s": window_s,
              "stride_s": stride_s, "epochs": epochs, "loss": loss, "training_sampling": sampling}
    _run_or_queue("evaluate", params, seed, queue)


@app.command("anonymise")
def anonymise_cmd(
    dataset: Annotated[str, typer.Argument(help="Registered dataset (name or id) to anonymise.")],
    method: Annotated[str, typer.Option(help="synth (activity-conditioned synthesis), dp_synth (the same with subject-level DP), donor (same-activity donor mixing), none, ae, noise, aae, anon_ag, anon_acg, anon_dfi.")] = "synth",
    name: Annotated[Optional[str], typer.Option(help="Name of the released dataset (default DATASET-METHOD).")] = None,
    target: Annotated[Optional[str], typer.Option(help="anon_dfi: subject id every recording is transferred to (default: a random other subject per recording).")] = None,
    model: Annotated[Optional[Path], typer.Option(help="A trained anonymiser (private/anonymiser.pt of an earlier job) instead of training one.")] = None,
    gan_epochs: Annotated[int, typer.Option(help="Epochs of the GAN / AAE phase.")] = 8,
    ae_epochs: Annotated[int, typer.Option(help="Epochs of autoencoder pretraining.")] = 15,
    m: Annotated[float, typer.Option(help="Eq. 1 weight m of the ReID term (b = 1 − m).")] = 0.9,
    noise_sigma: Annotated[float, typer.Option(help="method noise: standard deviations of added noise.")] = 0.5,
    k: Annotated[int, typer.Option(help="method donor: other subjects (same activity) blended into every window, >= 2.")] = 4,
    epsilon: Annotated[float, typer.Option(help="method dp_synth: subject-level ε of the fitted model (δ = 1/(10·subjects)).")] = 10.0,
    metadata_quantum_s: Annotated[Optional[float], typer.Option(help="Round published recording lengths up to a multiple of this many seconds (and jitter change points); default: only where exact lengths would link recordings to the original, to the smallest quantum (1–120 s) that stops the linkage attacker; 0: never.")] = None,
    window_s: Annotated[float, typer.Option(help="Window length in seconds.")] = 2.56,
    stride_s: Annotated[float, typer.Option(help="Window stride in seconds (training and evaluation).")] = 1.28,
    resample_hz: Annotated[Optional[float], typer.Option(help="Resample to this rate first.")] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help="Judge the release with the evaluation harness.")] = True,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a dataset of the same name.")] = False,
    seed: SeedOpt = 0,
    queue: QueueOpt = False,
) -> None:
    """Train an anonymiser, release the dataset under pseudonyms (Parquet + CSV), and judge the release."""
    params = {"dataset": dataset, "method": method, "name": name, "target": target,
              "model": str(model) if model else None, "gan_epochs": gan_epochs, "ae_epochs": ae_epochs, "m": m,
              "noise_sigma": noise_sigma, "k": k, "epsilon": epsilon, "metadata_quantum_s": metadata_quantum_s, "window_s": window_s, "stride_s": stride_s, "resample_hz": resample_hz,
              "evaluate": evaluate, "replace": replace}
    job = _run_or_queue("anonymise", params, seed, queue)
    if job.get("status") == "succeeded":
        _say_release(job["id"], job["result"]["released"], job["result"].get("release_withheld", True))


def _say_release(job_id: int, name: str, withheld: bool) -> None:
    from anonaudit.store.artifacts import job_dir

    if withheld:
        typer.echo(f"release {name!r} is WITHHELD: its check refused it (or it was not judged), so no release files "
                   f"were exported; `anonaudit release-override {name} --reason TEXT` exports it on the record")
    else:
        typer.echo(f"released dataset {name!r}; files in {job_dir(job_id) / 'release'}")


@app.command("frontier")
def frontier_cmd(
    dataset: Annotated[str, typer.Argument(help="Registered dataset (name or id) to anonymise.")],
    method: Annotated[Optional[list[str]], typer.Option(help="Method to sweep (repeat; default synth and donor): synth, dp_synth, donor, noise, none, ae, aae, anon_ag, anon_acg, anon_dfi.")] = None,
    knob_value: Annotated[Optional[list[float]], typer.Option(help="Values of the knob (repeat; one method only; default: the method's own grid, donor k = 4, 8 (those the data allows); noise σ = 0.25, 0.5, 1; dp_synth ε = 10, 100, 1000).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Stem of the released datasets' names (default DATASET).")] = None,
    window_s: Annotated[float, typer.Option(help="Window length in seconds.")] = 2.56,
    stride_s: Annotated[float, typer.Option(help="Window stride in seconds (training and evaluation).")] = 1.28,
    resample_hz: Annotated[Optional[float], typer.Option(help="Resample to this rate first.")] = None,
    gan_epochs: Annotated[int, typer.Option(help="Epochs of the GAN / AAE phase.")] = 8,
    seed: SeedOpt = 0,
    queue: QueueOpt = False,
) -> None:
    """Sweep each method's privacy knob, judge every point under every threat model, release the best that passes."""
    params = {"dataset": dataset, **({"methods": method} if method else {}), "knob_values": knob_value, "name": name,
              "window_s": window_s, "stride_s": stride_s, "resample_hz": resample_hz, "gan_epochs": gan_epochs}
    job = _run_or_queue("frontier", params, seed, queue)
    result = job.get("result") or {}
    if job.get("status") == "succeeded":
        typer.echo(result["decision"])
        if result.get("released"):
            _say_release(job["id"], result["released"], False)


@app.command("release-check")
def release_check_cmd(
    dataset: Annotated[str, typer.Argument(help="A released dataset made by `anonaudit anonymise`.")],
    threshold: Annotated[Optional[float], typer.Option(help="Highest acceptable re-identification accuracy in [0, 1], any threat model and level (default: twice uniform chance, 2/N subjects).")] = None,
    attacker: Annotated[Optional[list[str]], typer.Option(help="Attackers retrained on the release (repeat; default knn, logreg_act).")] = None,
    seed: SeedOpt = 0,
) -> None:
    """Judge a release under every threat model; export its files only if it passes (exit 1 otherwise)."""
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ParameterError("threshold", f"is an accuracy and must lie in [0, 1], got {threshold}")
    job = _run_or_queue("release_check", {"dataset": dataset, "threshold": threshold, "attackers": attacker}, seed, False)
    result = job.get("result") or {}
    if "reason" in result:
        typer.echo(result["reason"])
    _say_release(job["id"], dataset, not result.get("releasable", False))
    if not result.get("releasable", False):
        raise typer.Exit(1)


@app.command("release-override")
def release_override_cmd(
    dataset: Annotated[str, typer.Argument(help="A release its check refused.")],
    reason: Annotated[str, typer.Option(help="Why it may go out anyway (recorded with who and when, shown in the report).")],
) -> None:
    """Export a refused release on a data steward's recorded decision."""
    from anonaudit import api

    job = api.override_release(dataset, reason)
    _print_finished(job)


# ---------------------------------------------------------------------------- data
@data_app.command("import")
def data_import(
    path: Annotated[Path, typer.Argument(help="SisFall folder/.tar.xz, HAPT csv, UTD-MHAD folder, or mapping.toml.")],
    format: Annotated[str, typer.Option(help="auto, sisfall, hapt, utd_mhad, tabular or anonaudit.")] = "auto",
    name: Annotated[Optional[str], typer.Option(help="Name to register the dataset under.")] = None,
    replace: Annotated[bool, typer.Option(help="Replace a different dataset of the same name.")] = False,
    queue: QueueOpt = False,
) -> None:
    """Import a dataset into the store (Parquet) and print its summary."""
    job = _run_or_queue("import", {"path": str(path), "format": format, "name": name, "replace": replace}, None, queue)
    if job["status"] == "succeeded":
        data_show(job["result"]["name"])


@data_app.command("list")
def data_list() -> None:
    """List registered datasets."""
    from anonaudit.store import datasets

    rows = datasets.list_datasets()
    if not rows:
        typer.echo("no datasets; import one with `anonaudit data import PATH`")
    for d in rows:
        typer.echo(f"{d['id']:>4}  {d['name']:<20} {d['format']:<10} {d['n_subjects']:>4} subjects "
                   f"{d['n_recordings']:>6} recordings {d['n_samples']:>10} samples @ {d['sampling_rate']:g} Hz")


@data_app.command("show")
def data_show(name: Annotated[str, typer.Argument(help="Dataset name or id.")]) -> None:
    """Show a dataset's summary."""
    from anonaudit.store import datasets

    d = datasets.get_dataset(name)
    s = d["summary"]
    typer.echo(f"{d['name']} (id {d['id']}, {d['format']}) stored at {d['storage_path']}")
    typer.echo(f"  {s['n_subjects']} subjects, {s['n_recordings']} recordings, {s['n_samples']} samples, "
               f"{s['n_channels']} channels @ {s['sampling_rate']:g} Hz ({s['duration_s'] / 3600:.2f} h)")
    typer.echo(f"  activities: {', '.join(s['activities'])}")
    typer.echo(f"  subject attributes: {', '.join(s['subject_attributes']) or 'none'}")
    typer.echo(f"  channel groups: {', '.join(s['channel_groups']) or 'none'}")


@data_app.command("delete")
def data_delete(name: Annotated[str, typer.Argument(help="Dataset name or id.")]) -> None:
    """Unregister a dataset and delete its Parquet files."""
    from anonaudit.store import datasets

    path = datasets.delete_dataset(name)
    typer.echo(f"deleted dataset {name} ({path})")


@data_app.command("sample")
def data_sample(
    out: Annotated[Path, typer.Option(help="Folder to write the synthetic sample dataset to.")] = Path("sample_data"),
    seed: Annotated[int, typer.Option(help="Generator seed (the committed sample data uses the default).")] = 7,
) -> None:
    """(Re)generate the deterministic synthetic sample dataset, byte for byte."""
    from anonaudit.data.synthetic import SampleSpec, write_sample_data

    for name, digest in write_sample_data(out, SampleSpec(seed=seed)).items():
        typer.echo(f"{out / name}  sha256 {digest[:16]}…")


# ---------------------------------------------------------------------------- jobs
def _parse_param(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ParameterError("--param", f"expected KEY=VALUE, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw  # plain strings need no quotes


@jobs_app.command("submit")
def jobs_submit(
    kind: Annotated[str, typer.Argument(help="Job kind, e.g. pipeline, import, noop.")],
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="KEY=VALUE (JSON values).")] = None,
    seed: SeedOpt = None,
    queue: QueueOpt = True,
) -> None:
    """Submit a job of any kind (queued for workers unless --no-queue)."""
    params = dict(_parse_param(p) for p in param or [])
    _run_or_queue(kind, params, seed, queue)


@jobs_app.command("list")
def jobs_list(
    status: Annotated[Optional[str], typer.Option(help="queued, running, succeeded, failed or cancelled.")] = None,
    kind: Annotated[Optional[str], typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """List jobs, newest first."""
    from anonaudit.store import jobs

    for j in jobs.list_jobs(status=status, kind=kind, limit=limit):
        typer.echo(f"{j['id']:>5}  {j['kind']:<12} {j['status']:<10} {100 * (j['progress'] or 0):5.1f}%  "
                   f"{str(j['created_at'])[:19]}  {(j['error'] or j['progress_message'] or '')[:60]}")


@jobs_app.command("show")
def jobs_show(job_id: int) -> None:
    """Show one job: parameters, status, metrics, artifacts."""
    from anonaudit.store import jobs

    job = jobs.job_dict(job_id)
    typer.echo(json.dumps({k: v for k, v in job.items() if k not in ("metrics", "artifacts")}, indent=2, default=str))
    for m in job.get("metrics", []):
        tags = " ".join(f"{k}={v}" for k, v in (m["tags"] or {}).items())
        typer.echo(f"  metric {m['name']} = {m['value']:.6g} {tags}")
    for a in job.get("artifacts", []):
        typer.echo(f"  artifact {a['name']} ({a['size_bytes']} bytes) {a['path']}")


@jobs_app.command("logs")
def jobs_logs(job_id: int) -> None:
    """Print a job's log."""
    from anonaudit.store import jobs

    for log in jobs.job_logs(job_id):
        typer.echo(f"{str(log['ts'])[:19]} {log['level']:<7} {log['message']}")


@jobs_app.command("cancel")
def jobs_cancel(job_id: int) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    from anonaudit import api

    typer.echo(f"job {job_id}: {api.cancel(job_id)}")


@jobs_app.command("rerun")
def jobs_rerun(job_id: int) -> None:
    """Queue a job again with the same kind, parameters and seed (linked to the original)."""
    from anonaudit import api

    new_id = api.rerun(job_id)
    typer.echo(f"queued job {new_id} as a re-run of job {job_id}; run `anonaudit worker` to process it")


@app.command()
def report(
    job_id: int,
    out: Annotated[Optional[Path], typer.Option(help="Output HTML file (default: reports/job-ID-KIND.html).")] = None,
) -> None:
    """Render a job's standalone HTML report (and, for a job that judged a release, its Markdown datasheet)."""
    from anonaudit.jobs.reports import write_datasheet, write_report

    typer.echo(str(write_report(job_id, out)))
    sheet = write_datasheet(job_id)
    if sheet is not None:
        typer.echo(str(sheet))


@app.command()
def worker(
    worker_id: Annotated[Optional[str], typer.Option("--id", help="Worker name (default host:pid).")] = None,
    lease: Annotated[float, typer.Option(help="Lease seconds; a job whose worker stops heart-beating is re-queued after it.")] = 30.0,
    poll: Annotated[float, typer.Option(help="Seconds between queue polls when idle.")] = 1.0,
    max_jobs: Annotated[Optional[int], typer.Option(help="Exit after this many jobs.")] = None,
    idle_exit: Annotated[Optional[float], typer.Option(help="Exit after this many idle seconds.")] = None,
    kind: Annotated[Optional[list[str]], typer.Option(help="Only run these job kinds.")] = None,
) -> None:
    """Process queued jobs (several workers may share one PostgreSQL database)."""
    import logging

    from anonaudit.jobs.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    n = run_worker(worker_id=worker_id, lease_seconds=lease, poll_seconds=poll, max_jobs=max_jobs,
                   idle_exit_seconds=idle_exit, kinds=kind)
    typer.echo(f"worker stopped after {n} job(s)")


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve the app on.")] = 8501,
    address: Annotated[str, typer.Option(help="Bind address (localhost by default).")] = "127.0.0.1",
    with_worker: Annotated[bool, typer.Option(help="Also start a local worker for submitted jobs.")] = True,
) -> None:
    """Start the Streamlit app (and a local worker) on localhost."""
    import subprocess

    from anonaudit import access
    from anonaudit.store.uploads import MAX_UPLOAD_BYTES

    app_file = Path(__file__).resolve().parent.parent / "app" / "server.py"
    if not app_file.is_file():
        raise ParameterError("app", f"Streamlit app not found at {app_file}; run from a source checkout")
    passwords = access.configured_passwords()
    if address not in ("127.0.0.1", "localhost", "::1") and not passwords:
        typer.echo(f"warning: serving on {address} without sign-in; set {access.ENV_PREFIX}STEWARD (and AUDITOR, "
                   "ENGINEER) or [auth.passwords] in .streamlit/secrets.toml", err=True)
    for warning in access.weak_passwords(passwords):  # loud: a plain-text or cheap hash is a leak waiting to happen
        typer.secho(f"WARNING: {warning}", err=True, fg="red", bold=True)
    procs = [subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app_file), "--server.headless", "true",
                               "--server.address", address, "--server.port", str(port),
                               "--server.maxUploadSize", str(MAX_UPLOAD_BYTES // 2**20),
                               "--client.toolbarMode", "minimal", "--browser.gatherUsageStats", "false"])]
    if with_worker:  # the worker never needs the app's sign-in passwords
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith(access.ENV_PREFIX)}
        procs.append(subprocess.Popen([sys.executable, "-m", "anonaudit", "worker"], env=worker_env))
    typer.echo(f"anonaudit app on http://{address}:{port} (Ctrl-C stops it)")
    try:
        procs[0].wait()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


@app.command("hash-password")
def hash_password_cmd() -> None:
    """Print a salted hash of a password for the app's sign-in (ANONAUDIT_UI_PASSWORD_<ROLE> or secrets)."""
    from anonaudit import access

    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    typer.echo(access.hash_password(password))


# ---------------------------------------------------------------------------- db
@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default head)."""
    from anonaudit.store import db

    db.upgrade(revision=revision)
    typer.echo(f"database at {db.current_revision()}")


# ignore_unknown_options: Click would otherwise read the documented "-1" as an option.
@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. base or -1.")]) -> None:
    """Revert migrations down to REVISION."""
    from anonaudit.store import db

    db.downgrade(revision=revision)
    typer.echo(f"database at {db.current_revision()}")


@db_app.command("current")
def db_current() -> None:
    """Print the database URL (without password) and its schema revision."""
    from anonaudit.store import db

    typer.echo(f"{db.safe_url()} at revision {db.current_revision()}")


# ---------------------------------------------------------------------------- explain (R-LIME, issue 7)
@app.command("explain")
def explain_cmd(
    data: Annotated[str, typer.Argument(help="CSV with a target column, the recidivism CSV / Adult folder, or an "
                                             "imported sensor dataset's name (with --format windows).")],
    target: Annotated[Optional[str], typer.Option(help="Target column of the CSV; activity or subject for windows.")] = None,
    format: Annotated[str, typer.Option(help="csv, recidivism, adult or windows.")] = "csv",
    model: Annotated[str, typer.Option(help="forest, logreg, lda or knn (trained here), a joblib/pickle model file, "
                                            "or job:ID.")] = "forest",
    index: Annotated[int, typer.Option(help="Data row (0-based) of the instance to explain.")] = 0,
    tau: Annotated[float, typer.Option(help="Accuracy threshold τ of the surrogate inside the rule.")] = 0.8,
    imbalance: Annotated[str, typer.Option(help="none, weighted (loss) or balance (constraint), paper §5.1.")] = "none",
    baselines: Annotated[bool, typer.Option(help="Also run LIME and Anchor on the same instance.")] = True,
    n_trees: Annotated[int, typer.Option(help="Trees of the forest trained with --model forest.")] = 50,
    seed: SeedOpt = 0,
    queue: QueueOpt = False,
) -> None:
    """Explain one prediction with R-LIME (rule + linear surrogate), beside LIME and Anchor."""
    params = {"data": data, "target": target, "format": format, "model": model, "index": index, "tau": tau,
              "imbalance": imbalance, "baselines": baselines, "n_trees": n_trees}
    _run_or_queue("explain", params, seed, queue)


@app.command("explain-eval")
def explain_eval_cmd(
    dataset: Annotated[str, typer.Option(help="recidivism or adult.")] = "recidivism",
    path: Annotated[Optional[Path], typer.Option(help="Data file/folder (default: ../shared/datasets beside the repo).")] = None,
    instances: Annotated[int, typer.Option(help="Random test instances to explain.")] = 100,
    n_trees: Annotated[int, typer.Option(help="Trees of the random-forest black box.")] = 50,
    balance: Annotated[bool, typer.Option(help="Down-sample to balanced classes first (the reference code's default).")] = False,
    seed: SeedOpt = 0,
    queue: QueueOpt = False,
) -> None:
    """The R-LIME paper's experiments: local accuracy vs LIME, coverage vs Anchor, accuracy deviation."""
    params = {"dataset": dataset, "path": str(path) if path else None, "n_instances": instances, "n_trees": n_trees,
              "balance": balance}
    _run_or_queue("explain_eval", params, seed, queue)


# ---------------------------------------------------------------------------- DP VAEs (issue 5)
@app.command("dp-train")
def dp_train_cmd(
    data: Annotated[str, typer.Argument(help="digits, mnist (folder with --path) or an imported sensor dataset's name.")],
    model: Annotated[str, typer.Option(help="ann or spiking (FSVAE-style).")] = "ann",
    epsilon: Annotated[Optional[float], typer.Option(help="Target ε; the noise multiplier is computed for it. Omit with --no-dp.")] = 10.0,
    delta: Annotated[Optional[float], typer.Option(help="δ (must be < 1/N; default 1/(10·N)).")] = None,
    noise_multiplier: Annotated[Optional[float], typer.Option(help="Use this noise instead of a target ε; the ε it spends is reported.")] = None,
    no_dp: Annotated[bool, typer.Option("--no-dp", help="Train without differential privacy (ε = ∞ baseline).")] = False,
    subject_level: Annotated[bool, typer.Option("--subject-level", help="Sensor data: one privacy unit per subject, not per window.")] = False,
    max_grad_norm: Annotated[float, typer.Option(help="Clipping bound C of each unit's gradient.")] = 1.0,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Expected units per step (Poisson sampling).")] = 250,
    n_train: Annotated[Optional[int], typer.Option(help="Training images (default: a third of the data; the rest are audit and reference data).")] = None,
    n_steps: Annotated[int, typer.Option(help="Spiking: time steps T.")] = 16,
    path: Annotated[Optional[Path], typer.Option(help="MNIST folder (default ../shared/datasets/mnist).")] = None,
    attacks: Annotated[bool, typer.Option(help="Run FGSM, C&W and Square attacks on reconstruction.")] = True,
    seed: SeedOpt = 0,
    queue: QueueOpt = False,
) -> None:
    """Train a differentially private ANN or spiking VAE and audit it (utility, attacks, membership inference)."""
    if noise_multiplier is not None or no_dp:
        epsilon = None
    if no_dp and noise_multiplier is not None:
        raise ParameterError("noise_multiplier", "--no-dp trains without noise; drop one of the two")
    params = {"data": data, "model": model, "epsilon": epsilon, "delta": delta, "noise_multiplier": noise_multiplier,
              "subject_level": subject_level, "max_grad_norm": max_grad_norm, "epochs": epochs, "batch_size": batch_size,
              "n_train": n_train, "n_steps": n_steps, "path": str(path) if path else None, "attacks": attacks}
    _run_or_queue("dp_train", params, seed, queue)


@app.command("dp-sweep")
def dp_sweep_cmd(
    data: Annotated[list[str], typer.Argument(help="Datasets: digits, mnist or imported sensor datasets.")],
    model: Annotated[Optional[list[str]], typer.Option(help="Models (repeat; default ann and spiking).")] = None,
    epsilon: Annotated[Optional[list[str]], typer.Option(help="Target ε values (repeat; 'inf' = no DP; default 1 5 10 inf).")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs of every run.")] = 10,
    n_train: Annotated[Optional[int], typer.Option(help="Training images per run.")] = None,
    n_steps: Annotated[int, typer.Option(help="Spiking: time steps T.")] = 16,
    workers: Annotated[Optional[int], typer.Option(help="Parallel trainings (default: all cores, or the Dask cluster).")] = None,
    seed: SeedOpt = 0,
    queue: QueueOpt = False,
) -> None:
    """Privacy–utility sweep: ε × model × dataset, fanned out on the executor."""
    eps: list[float | None] = []
    for e in epsilon or ["1", "5", "10", "inf"]:
        try:
            value = float(e)
        except ValueError:
            raise ParameterError("epsilon", f"expected a number or inf, got {e!r}") from None
        eps.append(None if math.isinf(value) else value)
    params = {"datasets": data, "models": model or ["ann", "spiking"], "epsilons": eps, "n_workers": workers,
              "settings": {"epochs": epochs, "n_train": n_train, "n_steps": n_steps}}
    _run_or_queue("dp_sweep", params, seed, queue)


# ---------------------------------------------------------------------------- representation-bias audit (issue 6)
def _split_values(values: Optional[list[str]]) -> list[str]:
    """Repeated options, each possibly comma-separated: --characteristics age_group,gender."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _parse_cuts(items: list[str]) -> dict[str, float]:
    cuts = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            cuts[name.strip()] = float(value)
        except ValueError:
            raise ParameterError("cut", f"expected NAME=NUMBER such as height_cm=170, got {item!r}") from None
        if not sep or not name.strip():
            raise ParameterError("cut", f"expected NAME=NUMBER such as height_cm=170, got {item!r}")
    return cuts


@app.command("audit")
def audit_cmd(
    dataset: Annotated[str, typer.Argument(help="Registered dataset (name or id) with subject attributes.")],
    characteristics: Annotated[Optional[list[str]], typer.Option(help="Subject attributes defining the groups (repeat or comma-separate; default age_group,gender).")] = None,
    cut: Annotated[Optional[list[str]], typer.Option(help="Cut point of a numeric attribute, NAME=VALUE (default: its median).")] = None,
    networks: Annotated[Optional[list[str]], typer.Option(help="tcnn, lstm, transformer (repeat or comma-separate; default tcnn).")] = None,
    draws: Annotated[int, typer.Option(help="Distinct random training sets per heterogeneity group.")] = 6,
    repeats: Annotated[int, typer.Option(help="Trainings per training set.")] = 3,
    train_subjects: Annotated[int, typer.Option(help="Subjects in every training set (the rest are test subjects).")] = 8,
    epochs: Annotated[int, typer.Option(help="Training epochs (early stopping on the training subjects' validation part).")] = 15,
    window_s: Annotated[float, typer.Option(help="Window length in seconds.")] = 2.56,
    stride_s: Annotated[float, typer.Option(help="Window stride in seconds (training windows).")] = 1.28,
    resample_hz: Annotated[Optional[float], typer.Option(help="Resample to this rate first.")] = None,
    max_windows: Annotated[Optional[int], typer.Option(help="At most this many windows per subject and split.")] = None,
    activity: Annotated[Optional[str], typer.Option(help="Activity of the precision/recall figure (default: walking).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel trainings (default: all cores, or the Dask cluster).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler tcp://HOST:8786 for the trainings.")] = None,
    seed: SeedOpt = 0,
    queue: QueueOpt = False,
) -> None:
    """Representation-bias audit: train on training sets of rising heterogeneity, test, compare, advise."""
    if scheduler:
        os.environ["ANONAUDIT_DASK_SCHEDULER"] = scheduler
    params = {"dataset": dataset, "characteristics": _split_values(characteristics) or ["age_group", "gender"],
              "cuts": _parse_cuts(_split_values(cut)), "networks": _split_values(networks) or ["tcnn"], "draws": draws,
              "repeats": repeats, "train_subjects": train_subjects, "epochs": epochs, "window_s": window_s,
              "stride_s": stride_s, "resample_hz": resample_hz, "max_windows_per_subject": max_windows,
              "activity": activity, "n_workers": workers}
    _run_or_queue("bias_audit", params, seed, queue)


def main() -> None:
    """Console-script entry point: one clear line for any error."""
    try:
        app()
    except AnonauditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except Exception as exc:
        if os.environ.get("ANONAUDIT_DEBUG"):
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (set ANONAUDIT_DEBUG=1 for the traceback)", err=True)
        raise SystemExit(1) from None
