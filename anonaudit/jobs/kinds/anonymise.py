"""Job kinds ``anonymise`` and ``release_check``.

``anonymise`` trains (or loads) an anonymiser, releases the whole dataset under pseudonyms —
registered in the store in the canonical format and exported as CSV and Parquet under the
job's ``release/`` folder — and judges it with the evaluation harness. The linkage back to the
original ids and the trained model name the original subjects: they are stored as private
artifacts (``private/…``) of the job, never inside the release.

``release_check`` re-runs the adaptive attackers on a release and marks it releasable only if
the strongest recording-level re-identification stays at or below a threshold (default: twice
chance), recording the verdict and its reasons on the dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any


from anonaudit.anonymise import workflow
from anonaudit.anonymise.anonymiser import GAN_METHODS, METHODS, Anonymiser, AnonymiserConfig
from anonaudit.anonymise.release import Release, anonymise_dataset, check_no_identifiers, export_release
from anonaudit.data.dataset import SensorDataset
from anonaudit.data.resample import resample
from anonaudit.errors import DataError, ParameterError
from anonaudit.evaluate.protocols import EvalResult, align_released, evaluate
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.datasets import check_name, open_dataset, register_derived
from anonaudit.jobs.kinds.evaluate import eval_config, record_evaluation
from anonaudit.jobs.params import parse_params
from anonaudit.jobs.registry import job_kind
from anonaudit.progress import ProgressFn, scaled
from anonaudit.store import artifacts as artifact_store
from anonaudit.store import datasets as dataset_store
from anonaudit.store import jobs as job_store

_ANON_FIELDS = {f.name for f in fields(AnonymiserConfig)} - {"seed", "epochs", "method"}
LINKAGE = "private/linkage.json"
MODEL = "private/anonymiser.pt"


@dataclass
class AnonymiseParams:
    dataset: str
    method: str = "anon_acg"
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


def _publish_release(ctx: JobContext, release: Release, original: Any, replace: bool) -> dict[str, Any]:
    files = export_release(release.dataset, ctx.artifact_path("release/samples.csv.gz").parent)
    check_no_identifiers(release.dataset, original, files)
    record = register_derived(ctx, release.dataset, format="release", replace=replace)
    ctx.write_json(LINKAGE, {"warning": "links pseudonyms to real identities: never distribute",
                             "original_dataset": original.name, "recordings": release.recording_linkage,
                             "subjects": release.subject_linkage, "dfi_targets": release.targets})
    return record


def _record_transfer(ctx: JobContext, table: Any) -> dict[str, float]:
    ctx.write_dataframe("dfi_transfer_per_target", table)
    overall = table[table["target"] == "all"].iloc[0]
    for row in table.to_dict("records"):
        for key in ("transfer_frozen", "transfer_independent", "har_wf1"):
            ctx.metric(f"dfi_{key}", row[key], target=row["target"])
    return {"dfi_transfer_frozen": round(float(overall["transfer_frozen"]), 4),
            "dfi_transfer_retrained": round(float(overall["transfer_independent"]), 4)}


def anonymise_and_judge(ctx: JobContext, p: AnonymiseParams, real: SensorDataset, progress: ProgressFn,
                        prefix: str = "", setup: workflow.Setup | None = None) -> tuple[dict[str, Any], EvalResult | None]:
    """Train (or load) the anonymiser, publish the release, judge it; the ``anonymise`` job and the pipeline share this.

    ``setup`` (windows, recording split, frozen ReID) is passed by the main job, whose evaluation
    stage already trained the frozen network on the same split.
    """
    if p.target is not None and p.target not in real.subject_ids:
        raise ParameterError("target", f"subject {p.target!r} does not exist in {real.name!r}")
    name = p.name or f"{real.name}-{p.method.replace('_', '-')}"
    check_name(name)
    if dataset_store.find_dataset(name) is not None and not p.replace:
        raise ParameterError("name", f"a dataset named {name!r} exists; choose another name or pass replace")
    cfg = eval_config(p, ctx.seed)
    loaded = Anonymiser.load(p.model) if p.model else None
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
        anonymiser.save(ctx.artifact_path(MODEL))
        history = anonymiser.history_
        ctx.write_json("training_history.json", {"autoencoder": history.ae, "main": history.main, "seconds": history.seconds})
        ctx.metric("train_seconds", history.seconds)
        for row in history.main:
            for key, value in row.items():
                if key != "epoch":
                    ctx.metric(f"train_{key}", value, step=int(row["epoch"]))
    else:
        anonymiser = loaded
    progress(0.6, "anonymising the dataset")
    release = anonymise_dataset(real, anonymiser, name=name, target=p.target, seed=ctx.seed,
                                progress=scaled(progress, 0.6, 0.7))
    ctx.metric("throughput_windows_per_s", release.windows_per_s)
    record = _publish_release(ctx, release, real, p.replace)
    out: dict[str, Any] = {"released": record["name"], "method": p.method, "windows": release.windows,
                           "throughput_windows_per_s": round(release.windows_per_s, 1)}
    result = None
    if p.evaluate:
        result = workflow.judge(real, release, setup, cfg, scaled(progress, 0.7, 0.95))
        out.update(record_evaluation(ctx, result, prefix=prefix))
        if p.method == "anon_dfi":
            out.update(_record_transfer(ctx, workflow.dfi_transfer(real, release, setup, cfg)))
    progress(1.0, "released")
    return {f"{prefix}{k}": v for k, v in out.items()}, result


@job_kind("anonymise", params=AnonymiseParams, releases=True, paths=("model",))
def run_anonymise(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(AnonymiseParams, ctx.params)
    real = open_dataset(p.dataset)
    if p.resample_hz:
        real = resample(real, p.resample_hz)
    out, _ = anonymise_and_judge(ctx, p, real, ctx.progress)
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


def _origin(released_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The anonymise job that produced a release, and its private linkage."""
    record = dataset_store.get_dataset(released_name)
    job_id = record.get("import_job_id")
    job = job_store.job_dict(job_id) if job_id is not None else None
    if job is None or job["kind"] != "anonymise":
        raise DataError(f"dataset {released_name!r} was not produced by an anonymise job here; "
                        "only releases made by anonaudit can be checked (their linkage is private to this store)")
    path = artifact_store.job_dir(job_id) / LINKAGE
    if not path.is_file():
        raise DataError(f"the linkage of release {released_name!r} is missing", file=path)
    return job, json.loads(path.read_text())


def check_verdict(result: EvalResult, threshold: float | None) -> dict[str, Any]:
    """Strongest retrained recording-level attacker against the threshold (default 2 × chance)."""
    t = result.table()
    rows = t[(t["protocol"] == "privacy") & (t["level"] == "recording") & (t["metric"] == "accuracy")
             & t["train_data"].str.endswith("(retrained)")]
    if rows.empty:
        raise DataError("no recording-level re-identification could be measured on this release")
    best = rows.loc[rows["value"].idxmax()]
    chance = float(best["chance"])
    limit = threshold if threshold is not None else min(1.0, 2 * chance)
    acc = float(best["value"])
    ok = acc <= limit
    reason = (f"the strongest retrained attacker ({best['model']}) re-identifies {acc:.1%} of held-out recordings "
              f"(95 % CI {best['ci_low']:.1%}–{best['ci_high']:.1%}; chance {chance:.1%}); "
              f"the limit is {limit:.1%}" + ("" if threshold is not None else " (twice chance)"))
    return {"releasable": ok, "reid_recording_acc": round(acc, 4), "attacker": best["model"], "chance": round(chance, 4),
            "threshold": round(limit, 4), "reason": ("releasable: " if ok else "NOT releasable: ") + reason,
            "attackers": {r["model"]: round(float(r["value"]), 4) for r in rows.to_dict("records")}}


@job_kind("release_check", params=ReleaseCheckParams, releases=True)
def run_release_check(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(ReleaseCheckParams, ctx.params)
    job, linkage = _origin(p.dataset)
    origin = parse_params(AnonymiseParams, job["params"])
    real = open_dataset(origin.dataset)
    if origin.resample_hz:
        real = resample(real, origin.resample_hz)
    released = align_released(real, open_dataset(p.dataset), linkage["recordings"])
    cfg = eval_config(origin, ctx.seed)
    attackers = tuple(p.attackers) if p.attackers else cfg.attackers
    cfg = replace(cfg, attackers=attackers, reid_model=attackers[0], protocols=("privacy",), n_boot=p.n_boot)
    cfg.check()
    result = evaluate(real, released, cfg, progress=ctx.progress)
    record_evaluation(ctx, result)
    verdict = check_verdict(result, p.threshold)
    ctx.write_json("release_check.json", verdict)
    dataset_store.set_release_verdict(p.dataset, verdict["releasable"], {**verdict, "job_id": ctx.job_id})
    ctx.log(verdict["reason"], "info" if verdict["releasable"] else "warning")
    return {k: v for k, v in verdict.items() if k != "attackers"}
