"""Job kinds ``anonymise``, ``release_check`` and ``release_override``.

``anonymise`` trains (or loads) an anonymiser, releases the whole dataset under pseudonyms —
registered in the store in the canonical format — and judges it under every threat model: the
frozen network, attackers retrained on the release (linkage), the informed attacker who runs the
published method, metadata linkage and memorisation. The verdict is enforced: only a releasable
release is exported as CSV and Parquet under the job's ``release/`` folder. The linkage back to
the original ids and the trained model name the original subjects: they are stored as private
artifacts (``private/…``) of the job, never inside the release.

``release_check`` re-runs the threat models on a release (the anonymise job's or the main job's)
and exports it if it passes; ``release_override`` exports a refused release on a steward's
recorded decision. Limits are set against uniform chance, 1/N subjects (default: twice that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from collections.abc import Sequence
from pathlib import Path
from typing import Any


from anonaudit.anonymise import workflow
from anonaudit.anonymise import methods
from anonaudit.anonymise.config import DEFAULT_FRONTIER, GAN_METHODS, METHODS, AnonymiserConfig
from anonaudit.anonymise.donor import donor_shortage
from anonaudit.anonymise.release import Release, anonymise_dataset, check_no_identifiers, export_release
from anonaudit.data.dataset import SensorDataset
from anonaudit.data.resample import resample
from anonaudit.errors import DataError, ParameterError
from anonaudit.evaluate.protocols import EvalResult, align_released, evaluate
from anonaudit.evaluate.verdict import Check, release_verdict, reidentification_checks
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.datasets import check_name, open_dataset, register_derived
from anonaudit.jobs.kinds.evaluate import eval_config, record_evaluation
from anonaudit.jobs.params import parse_params, to_params
from anonaudit.jobs.registry import job_kind
from anonaudit.progress import ProgressFn, scaled
from anonaudit.store import artifacts as artifact_store
from anonaudit.store import datasets as dataset_store

_ANON_FIELDS = {f.name for f in fields(AnonymiserConfig)} - {"seed", "epochs", "method"}
LINKAGE = "private/{prefix}linkage.json"  # one per release a job makes (a frontier makes several)
MODEL = "private/{prefix}anonymiser.pt"


@dataclass
class AnonymiseParams:
    dataset: str
    method: str = DEFAULT_FRONTIER[0]
    name: str | None = None
    target: str | None = None
    model: str | None = None
    replace: bool = False
    evaluate: bool = True
    resample_hz: float | None = None
    window_s: float = 2.56
    stride_s: float = 1.28
    recording_order: str | None = None
    # anonymiser training
    gan_epochs: int = 8
    ae_epochs: int = 15
    g_lr: float = 2e-4
    d_lr: float = 1e-4
    m: float = 0.9
    rec_weight: float = 0.0
    noise_sigma: float = 0.5
    k: int = 4  # donor mixing: other subjects blended into each window
    epsilon: float = 10.0  # dp_synth: subject-level ε of the fitted model
    # published metadata: None rounds recording lengths up (smallest quantum that stops the metadata attacker)
    # only where exact ones link; 0 never; > 0 always to this quantum
    metadata_quantum_s: float | None = None
    # frozen ReID and evaluation models
    reid_model: str = "tcnn"
    har_model: str = "logreg"
    attackers: list[str] = field(default_factory=lambda: ["knn", "logreg_act", "lda"])
    biometric_model: str = "logreg"
    epochs: int = 8
    batch_size: int = 64
    n_boot: int = 500

    def check(self) -> None:
        if self.method not in METHODS:
            raise ParameterError("method", f"unknown method {self.method!r}; choose one of {list(METHODS)}")
        if self.target is not None and self.method != "anon_dfi":
            raise ParameterError("target", f"only anon_dfi transfers identities; {self.method} takes no target")
        if self.name is not None:
            check_name(self.name)
        if self.gan_epochs < 1:  # the anonymiser calls it ``epochs``, which here means the judges' epochs
            raise ParameterError("gan_epochs", f"must be >= 1, got {self.gan_epochs}")
        anonymiser_config(self, 0).check()
        if self.evaluate:
            eval_config(self, 0)


def anonymiser_config(p: AnonymiseParams, seed: int) -> AnonymiserConfig:
    values = {k: getattr(p, k) for k in _ANON_FIELDS if hasattr(p, k)}
    return AnonymiserConfig(method=p.method, epochs=p.gan_epochs, seed=seed, **values)


def check_release_data(p: AnonymiseParams, real: SensorDataset) -> None:
    """The checks that need the dataset, run before anything trains: the DFI target exists, the
    activity-conditioned methods have activity labels, subject-level DP has subjects to protect among, and
    donor mixing finds k subjects for every activity."""
    if p.target is not None and p.target not in real.subject_ids:
        raise ParameterError("target", f"subject {p.target!r} does not exist in {real.name!r}")
    if p.metadata_quantum_s and p.metadata_quantum_s * real.sampling_rate < 1:
        raise ParameterError("metadata_quantum_s", f"must be at least one sample ({1 / real.sampling_rate:g} s at "
                                                   f"{real.sampling_rate:g} Hz), or 0 to publish exact lengths")
    if p.method in ("donor", "synth", "dp_synth") and p.model is None and not (real.labels >= 0).any():
        raise ParameterError("method", f"{p.method} draws every released window from windows or a model of its "
                                       f"activity, and {real.name!r} has no activity labels")
    if p.method == "dp_synth" and p.model is None and len(real.subject_ids) < 2:
        raise ParameterError("method", f"dp_synth protects each subject among others, and {real.name!r} has "
                                       f"{len(real.subject_ids)} subject")
    if p.method == "donor" and p.model is None:
        problem = donor_shortage(real, p.k)
        if problem:
            raise ParameterError("k", problem)


def _register_release(ctx: JobContext, release: Release, original: Any, p: AnonymiseParams,
                      prefix: str) -> dict[str, Any]:
    """Store the released dataset (inside the store only) and its private linkage; nothing is exported yet.

    The linkage also says how the release was made (parameters, model file), so a later release
    check or override finds everything from the released dataset's name."""
    check_no_identifiers(release.dataset, original, [])
    record = register_derived(ctx, release.dataset, format="release", replace=p.replace)
    ctx.write_json(LINKAGE.format(prefix=prefix), {
        "warning": "links pseudonyms to real identities: never distribute", "released": record["name"],
        "original_dataset": original.name, "params": to_params(p), "model": p.model or MODEL.format(prefix=prefix),
        "recordings": release.recording_linkage, "subjects": release.subject_linkage, "dfi_targets": release.targets,
        "padding": release.padding, "runs": release.runs, "pseudonyms": release.pseudonyms})
    return record


def export_files(ctx: JobContext, released: SensorDataset, original: SensorDataset) -> list[str]:
    """Write the flat release files (CSV, Parquet) as this job's ``release/`` artifacts.

    Only a release whose check passed, or whose refusal a steward overrode, gets here: these
    are the files the app offers for download."""
    files = export_release(released, ctx.artifact_path("release/samples.csv.gz").parent)
    check_no_identifiers(released, original, files)
    return [f"release/{f.name}" for f in files]


def enforce(ctx: JobContext, verdict: dict[str, Any], released: SensorDataset, original: SensorDataset,
            prefix: str = "", export: bool = True) -> dict[str, Any]:
    """Record the verdict on the released dataset; export the files only if it is releasable (and ``export``:
    a frontier exports only the point it chooses). ``prefix`` names the verdict's artifact; keys are bare."""
    dataset_store.set_release_verdict(released.name, verdict["releasable"], {**verdict, "job_id": ctx.job_id})
    ctx.write_json(f"{prefix}release_check.json", verdict)
    ctx.log(f"{released.name}: {verdict['reason']}", "info" if verdict["releasable"] else "warning")
    if verdict["releasable"] and export:
        export_files(ctx, released, original)
    elif not verdict["releasable"]:
        ctx.log(f"release {released.name!r} withheld: no release files were exported. A data steward may override "
                f"the verdict, on the record: `anonaudit release-override {released.name} --reason TEXT`", "warning")
    return {"releasable": verdict["releasable"], "release_check": verdict["reason"],
            "release_threat_model": verdict["threat_model"], "release_attacker": verdict["attacker"],
            "release_withheld": not (verdict["releasable"] and export),
            **{f"release_{k}": verdict[k] for k in ("reid_max_recording", "reid_max_window", "memorisation_ratio",
                                                       "membership_tpr")},
            **{f"release_reid_{threat}": value for threat, value in verdict["reid_by_threat"].items()}}


def _record_transfer(ctx: JobContext, table: Any, prefix: str) -> dict[str, float]:
    ctx.write_dataframe(f"{prefix}dfi_transfer_per_target", table)
    overall = table[table["target"] == "all"].iloc[0]
    for row in table.to_dict("records"):
        for key in ("transfer_frozen", "transfer_independent", "har_wf1"):
            ctx.metric(f"dfi_{key}", row[key], target=row["target"])
    return {"dfi_transfer_frozen": round(float(overall["transfer_frozen"]), 4),
            "dfi_transfer_retrained": round(float(overall["transfer_independent"]), 4)}


def anonymise_and_judge(ctx: JobContext, p: AnonymiseParams, real: SensorDataset, progress: ProgressFn,
                        prefix: str = "", setup: workflow.Setup | None = None,
                        export: bool = True) -> tuple[dict[str, Any], EvalResult | None]:
    """Train (or load) the anonymiser, publish the release, judge it; the ``anonymise`` job and every frontier
    point share this. Artifacts and result keys carry ``prefix``.

    ``setup`` (windows, recording split, frozen ReID) is passed by a caller that already trained
    the frozen network on the same split (the main job's evaluation stage, a frontier's first point).
    With ``export`` False a passing release is recorded as releasable but its files are not written.
    """
    check_release_data(p, real)
    name = p.name or f"{real.name}-{p.method.replace('_', '-')}"
    check_name(name)
    if dataset_store.find_dataset(name) is not None and not p.replace:
        raise ParameterError("name", f"a dataset named {name!r} exists; choose another name or pass replace")
    cfg = eval_config(p, ctx.seed)
    loaded = methods.load(p.model) if p.model else None
    if loaded is not None and loaded.config.method != p.method:
        raise ParameterError("model", f"{p.model} holds a {loaded.config.method} anonymiser, not {p.method}")
    if loaded is not None:
        loaded.check_channels(real.channels)
    needs_reid = p.evaluate or (loaded is None and p.method in GAN_METHODS)
    # without evaluation nothing is held out: the anonymiser (and its ReID) learn from every recording
    everything = None if p.evaluate else dict.fromkeys(real.recordings["recording"], "train")
    if setup is None or (needs_reid and setup.frozen is None):
        setup = workflow.prepare(real, cfg, assignment=everything, train_reid=needs_reid,
                                 progress=scaled(progress, 0.0, 0.15))
    if loaded is None:
        # outside the attempt's staging folder, so a retried job resumes instead of starting over
        checkpoint = artifact_store.resume_dir(ctx.job_id) / f"{prefix}anonymiser.ckpt"
        anonymiser = workflow.fit_anonymiser(real, setup, anonymiser_config(p, ctx.seed), scaled(progress, 0.15, 0.6),
                                             checkpoint=checkpoint)
        anonymiser.save(ctx.artifact_path(MODEL.format(prefix=prefix)))
        history = anonymiser.history_
        ctx.write_json(f"{prefix}training_history.json",
                       {"autoencoder": history.ae, "main": history.main, "seconds": history.seconds})
        ctx.metric(f"{prefix}train_seconds", history.seconds)
        for row in history.main:
            for key, value in row.items():
                if key != "epoch":
                    ctx.metric(f"{prefix}train_{key}", value, step=int(row["epoch"]))
    else:
        anonymiser = loaded
    progress(0.6, "anonymising the dataset")
    publication = workflow.plan_publication(real, p.metadata_quantum_s, p.window_s / 2, seed=ctx.seed)
    if publication != workflow.Publication(False, "subject", None):
        ctx.log(f"exact metadata would link released recordings to the original ones, so the release is published "
                f"with {publication.describe()} (lengths padded with mirrored samples, change points jittered by up "
                f"to {p.window_s / 2:g} s)", "info")
    source, setup = workflow.source(real, setup, cfg, publication.runs)
    release = anonymise_dataset(source, anonymiser, name=name, target=p.target, seed=ctx.seed,
                                progress=scaled(progress, 0.6, 0.7))
    ctx.metric(f"{prefix}throughput_windows_per_s", release.windows_per_s)
    release = workflow.publish(release, publication, p.window_s / 2)
    record = _register_release(ctx, release, real, p, prefix)
    out: dict[str, Any] = {"released": record["name"], "method": p.method, "windows": release.windows,
                           "throughput_windows_per_s": round(release.windows_per_s, 1),
                           "metadata_quantum_s": release.metadata_quantum_s, "published_runs": release.runs,
                           "pseudonyms": release.pseudonyms}
    if anonymiser.privacy_ is not None:
        spent = anonymiser.privacy_
        out.update({"epsilon": spent.epsilon, "delta": spent.delta, "privacy_unit": spent.unit,
                    "noise_multiplier": spent.noise_multiplier})
        ctx.log(f"the model behind this release is ({spent.epsilon:.3g}, {spent.delta:.2g})-DP per {spent.unit} "
                f"(RDP accountant, noise multiplier {spent.noise_multiplier:.3g}); the per-channel location and "
                f"scale are taken as public calibration and not covered", "info")
    result = None
    if p.evaluate:
        result = workflow.judge(source, release, setup, cfg, scaled(progress, 0.7, 0.88))
        informed, checks = workflow.threats(source, release.dataset, release.recording_linkage, setup.assignment,
                                            anonymiser, cfg, setup.windows, release.padding,
                                            scaled(progress, 0.88, 0.97))
        result.scores.extend(informed)
        out.update(record_evaluation(ctx, result, prefix=prefix))
        if p.method == "anon_dfi":
            out.update(_record_transfer(ctx, workflow.dfi_transfer(source, release, setup, cfg), prefix))
        verdict = check_verdict(result, None, len(real.subjects), checks)
        out.update(enforce(ctx, verdict, release.dataset, real, prefix, export))
    else:
        ctx.log(f"release {record['name']!r} was not judged, so it is withheld: run `anonaudit release-check "
                f"{record['name']}` to export it", "warning")
        out["release_withheld"] = True
    progress(1.0, "released" if not out.get("release_withheld") else "judged and withheld")
    return {f"{prefix}{k}": v for k, v in out.items()}, result


def source_data(p: AnonymiseParams) -> SensorDataset:
    """The dataset a release is made from, resampled as its parameters say."""
    real = open_dataset(p.dataset)
    return resample(real, p.resample_hz) if p.resample_hz else real


@job_kind("anonymise", params=AnonymiseParams, releases=True, paths=("model",))
def run_anonymise(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(AnonymiseParams, ctx.params)
    out, _ = anonymise_and_judge(ctx, p, source_data(p), ctx.progress)
    return out


# ----------------------------------------------------------------------------- release check
@dataclass
class ReleaseCheckParams:
    dataset: str
    threshold: float | None = None
    attackers: list[str] | None = None
    epochs: int = 8
    n_boot: int = 200

    def check(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ParameterError("threshold", f"is an accuracy and must lie in [0, 1], got {self.threshold}")


def _origin(released_name: str) -> tuple[AnonymiseParams, dict[str, Any], Path]:
    """How a release was made (the parameters of the anonymise job or frontier point that made it), its private
    linkage and its model file: the job's linkage that names the release says all three."""
    record = dataset_store.get_dataset(released_name)
    job_id = record.get("import_job_id")
    if job_id is None or record["format"] != "release":
        raise DataError(f"dataset {released_name!r} was not produced by an anonymise job or the main job here, nor "
                        "by a frontier; only releases made by anonaudit can be checked (their linkage is private to "
                        "this store)")
    folder = artifact_store.job_dir(job_id)
    for path in sorted((folder / "private").glob("*linkage.json")):
        linkage = json.loads(path.read_text())
        if linkage.get("released") == released_name:
            model = Path(linkage["model"])
            return parse_params(AnonymiseParams, linkage["params"]), linkage, model if model.is_absolute() else folder / model
    raise DataError(f"the linkage of release {released_name!r} is missing from job {job_id}'s private files (releases "
                    "made before anonaudit 0.1.0+ recorded how they were made: run their job again)", file=folder)


def check_verdict(result: EvalResult, threshold: float | None, n_subjects: int,
                  checks: Sequence[Check] = ()) -> dict[str, Any]:
    """The maximum over every threat model and attacker measured on the release, against uniform chance;
    ``checks`` adds the threat models that are not re-identification tables (metadata, memorisation)."""
    rows = reidentification_checks(result.table(), n_subjects, threshold)
    if threshold is not None:  # a steward's own limit applies to every re-identification figure, metadata included
        checks = [replace(c, limit=threshold, passes=c.value <= threshold) if c.threat == "metadata" else c
                  for c in checks]
    return release_verdict([*rows, *checks]).to_dict()


@job_kind("release_check", params=ReleaseCheckParams, releases=True)
def run_release_check(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(ReleaseCheckParams, ctx.params)
    origin, linkage, model = _origin(p.dataset)
    stored = open_dataset(p.dataset)
    cfg = eval_config(origin, ctx.seed)
    attackers = tuple(p.attackers) if p.attackers else cfg.attackers
    cfg = replace(cfg, attackers=attackers, reid_model=attackers[0], protocols=("privacy",), n_boot=p.n_boot)
    cfg.check()
    real = source_data(origin)
    setup = workflow.prepare(real, cfg, train_reid=False)  # the anonymiser's recording split, recomputed
    real, setup = workflow.source(real, setup, cfg, bool(linkage.get("runs")))
    padding = linkage.get("padding") or {}
    released = align_released(real, stored, linkage["recordings"], padding)
    result = evaluate(real, released, cfg, progress=scaled(ctx.progress, 0.0, 0.7), reid_assignment=setup.assignment)
    if not model.is_file():
        raise DataError(f"the trained anonymiser of release {p.dataset!r} is missing, so the informed attacker "
                        "cannot run it", file=model)
    informed, checks = workflow.threats(real, stored, linkage["recordings"], setup.assignment, methods.load(model),
                                        cfg, setup.windows, padding, scaled(ctx.progress, 0.7, 1.0))
    result.scores.extend(informed)
    record_evaluation(ctx, result)
    verdict = check_verdict(result, p.threshold, len(real.subjects), checks)
    enforce(ctx, verdict, stored, real)
    return {"dataset": p.dataset, **{k: v for k, v in verdict.items() if k != "checks"}}


# ----------------------------------------------------------------------------- override
@dataclass
class OverrideParams:
    dataset: str
    reason: str
    actor: str | None = None  # who decided; the API fills in the signed-in role or the OS user

    def check(self) -> None:
        if len(self.reason.strip()) < 10:
            raise ParameterError("reason", "say why the refused release may go out anyway (at least 10 characters); "
                                           "it is recorded with the override and shown in the report")


@job_kind("release_override", params=OverrideParams, releases=True)
def run_release_override(ctx: JobContext) -> dict[str, Any]:
    """Export a refused release on a steward's recorded decision (who, when, why, which verdict)."""
    p = parse_params(OverrideParams, ctx.params)
    origin, _, _ = _origin(p.dataset)
    override = dataset_store.record_override(p.dataset, actor=p.actor or "unknown", reason=p.reason.strip(),
                                             job_id=ctx.job_id)
    files = export_files(ctx, open_dataset(p.dataset), open_dataset(origin.dataset))
    verdict = override["verdict"]
    ctx.write_json("override.json", {**override, "files": files})
    ctx.log(f"release {p.dataset!r} exported although its check refused it ({verdict.get('reason', 'no verdict')}); "
            f"overridden by {override['actor']} at {override['created_at']:%Y-%m-%d %H:%M} UTC: {override['reason']}",
            "warning")
    return {"dataset": p.dataset, "overridden_by": override["actor"], "override_reason": override["reason"],
            "overridden_at": str(override["created_at"]), "overridden_verdict": verdict.get("reason", ""),
            "release_files": ", ".join(files)}
