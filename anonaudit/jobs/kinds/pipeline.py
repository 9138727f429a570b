"""Job kind ``pipeline``: the main job, end to end on one dataset.

Today: import → windows → subject and recording splits → summary figures → evaluation
(activity recognition, re-identification by frozen and retrained attackers, soft biometrics)
→ explanation of one test window's activity prediction (R-LIME beside LIME and Anchor) → a frontier of releases
(activity-conditioned synthesis and same-activity donor mixing by default, donor k swept), each judged under every
threat model → the best passing one released, or none.
Each capability that lands adds its stage here (evaluation, anonymisation, release check …),
so ``./dev demo`` always shows what the platform can do on the sample data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from anonaudit.anonymise import workflow
from anonaudit.anonymise.config import DEFAULT_FRONTIER, METHODS
from anonaudit.data.dataset import SensorDataset
from anonaudit.data.splits import split_by_recording, split_by_subject, split_subjects
from anonaudit.data.windows import Windows, make_windows
from anonaudit.errors import ParameterError
from anonaudit.jobs.context import JobContext
from anonaudit.evaluate.protocols import evaluate
from anonaudit.explain.windows import window_table
from anonaudit.jobs.datasets import import_dataset
from anonaudit.jobs.kinds.frontier import FrontierParams, check_points, sweep
from anonaudit.jobs.kinds.evaluate import eval_config, record_evaluation
from anonaudit.jobs.kinds.bias_audit import BiasAuditParams
from anonaudit.jobs.kinds.dp_train import DPTrainParams, train_and_record
from anonaudit.jobs.kinds.explain import ExplainParams, explain_and_record
from anonaudit.jobs.params import check_exists, parse_params
from anonaudit.jobs.registry import job_kind
from anonaudit.progress import scaled
from anonaudit.reporting import plots


@dataclass
class PipelineParams:
    path: str = "sample_data"
    format: str = "auto"
    name: str | None = None
    window_s: float = 2.56
    stride_s: float = 1.28
    split_seed: int = 0
    evaluate: bool = True
    epochs: int = 6
    batch_size: int = 64
    attackers: list[str] | None = None
    attributes: list[str] | None = None
    n_boot: int = 500
    explain: bool = True
    anonymise: list[str] | None = field(default_factory=lambda: list(DEFAULT_FRONTIER))  # the release frontier's methods
    knob_values: list[float] | None = None  # with one method: its knob's values (default: each method's grid)
    gan_epochs: int = 4
    ae_epochs: int = 8
    dp: bool = True
    dp_epochs: int = 5
    audit: bool = True
    audit_characteristics: list[str] | None = None  # default: age_group and gender where the subjects table has them
    audit_train_subjects: int = 4
    audit_draws: int = 2
    audit_epochs: int = 1
    audit_window_s: float = 1.0  # the audit validates on the next 15 % of each recording: short windows fit short recordings

    def check(self) -> None:
        check_exists("path", self.path)
        if self.window_s <= 0:
            raise ParameterError("window_s", f"must be positive, got {self.window_s}")
        if self.stride_s <= 0:
            raise ParameterError("stride_s", f"must be positive, got {self.stride_s}")
        unknown = [m for m in self.anonymise or [] if m not in METHODS]
        if unknown:
            raise ParameterError("anonymise", f"unknown anonymiser {unknown[0]!r}; choose from {list(METHODS)}")
        # every stage's parameters, checked now rather than after the stages before it have trained
        placeholder = self.name or "dataset"
        if self.evaluate:
            eval_config(self, 0)
        if self.anonymise:
            release_params(self, placeholder)
        if self.dp:
            parse_params(DPTrainParams, _private_params(self, placeholder))
        if self.audit:
            parse_params(BiasAuditParams, _audit_params(self, placeholder, self.audit_characteristics or ["age_group"]))


def release_params(p: PipelineParams, name: str) -> FrontierParams:
    """The release stage as a frontier: each method's knob swept, the best passing point released."""
    params = FrontierParams(dataset=name, methods=list(p.anonymise or DEFAULT_FRONTIER), knob_values=p.knob_values,
                            name=f"{name}-released", replace=True, window_s=p.window_s, stride_s=p.stride_s,
                            gan_epochs=p.gan_epochs, ae_epochs=p.ae_epochs, epochs=p.epochs, evaluate=True,
                            n_boot=p.n_boot, **({"attackers": p.attackers} if p.attackers else {}))
    params.check()
    return params


def _private_params(p: PipelineParams, name: str) -> dict[str, Any]:
    return {"data": name, "model": "ann", "epsilon": 10.0, "epochs": p.dp_epochs, "batch_size": 64,
            "window_s": p.window_s, "stride_s": p.stride_s, "calibrated": False}


def _audit_params(p: PipelineParams, name: str, characteristics: list[str]) -> dict[str, Any]:
    return {"dataset": name, "characteristics": characteristics, "train_subjects": p.audit_train_subjects,
            "draws": p.audit_draws, "repeats": 1, "epochs": p.audit_epochs, "window_s": p.audit_window_s,
            "stride_s": p.audit_window_s / 2, "n_workers": 1}


def _counts(splits: dict[str, Windows], activities: list[str]) -> pd.DataFrame:
    """Windows per activity (rows) and split (columns)."""
    return pd.DataFrame(
        {name: np.bincount(w.y, minlength=len(activities)) for name, w in splits.items()},
        index=pd.Index(activities, name="activity"),
    )


def _explain_stage(ctx: JobContext, p: PipelineParams, ds: SensorDataset, name: str,
                   test_subjects: list[str]) -> dict[str, Any]:
    """Why the platform's activity model (logistic regression on window features) labels a test
    subject's first window as it does: R-LIME's rule and surrogate beside LIME and Anchor."""
    params = ExplainParams(data=name, format="windows", target="activity", model="logreg", window_s=p.window_s,
                           stride_s=p.stride_s, lime_samples=2000, coverage_samples=5000)
    data, origin = window_table(ds, p.window_s, p.stride_s, "activity")
    params.index = int(np.flatnonzero(origin["subject"].isin(test_subjects))[0])
    return explain_and_record(ctx, params, data, origin, scaled(ctx.progress, 0.6, 0.65), prefix="explain_")


def _release_stage(ctx: JobContext, p: PipelineParams, ds: SensorDataset, name: str,
                   setup: workflow.Setup | None) -> dict[str, Any]:
    """Sweep the anonymiser's knob, judge every point under every threat model, release the best that passes."""
    return sweep(ctx, release_params(p, name), ds, scaled(ctx.progress, 0.65, 0.85), setup=setup, prefix="anon_")


def _private_stage(ctx: JobContext, p: PipelineParams, name: str) -> dict[str, Any]:
    """An ANN VAE of the windows trained with DP-SGD at ε = 10 per window, audited by membership
    inference on held-out subjects; the group bound says what ε = 10 per window means per subject."""
    return train_and_record(ctx, _private_params(p, name), scaled(ctx.progress, 0.85, 0.92), prefix="dp_")


def _audit_stage(ctx: JobContext, p: PipelineParams, ds: SensorDataset, name: str) -> dict[str, Any]:
    """The representation-bias audit as a child job (its trainings are stored as metrics of their
    own job, so an interrupted audit resumes); its headline figures, box plot and findings are copied here."""
    from anonaudit.jobs.worker import run_job_now
    from anonaudit.store import jobs as job_store

    wanted = p.audit_characteristics or [c for c in ("age_group", "gender") if c in ds.subjects]
    if not wanted:
        ctx.log("bias audit skipped: the subjects table has no age_group or gender column", "warning")
        return {}
    child = run_job_now("bias_audit", _audit_params(p, name, wanted), seed=ctx.seed, progress=scaled(ctx.progress, 0.92, 0.99))
    files = job_store.artifact_files(child.id)
    for name in ("box_accuracy.png", "findings.json"):  # the figure and the written findings, for the report
        if name in files:
            ctx.write_bytes(f"audit_{name}", files[name].read_bytes())
    summary = {k: v for k, v in (child.result or {}).items() if isinstance(v, (int, float, str)) and k != "dataset"}
    return {"audit_job": child.id, **{f"audit_{k}": v for k, v in summary.items()}}


@job_kind("pipeline", params=PipelineParams, releases=True, paths=("path",))
def run_pipeline(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(PipelineParams, ctx.params)
    ds, record = import_dataset(ctx, p.path, p.format, name=p.name, progress=scaled(ctx.progress, 0.0, 0.4))
    if p.anonymise:
        check_points(release_params(p, record["name"]), ds)  # before the first training

    ctx.progress(0.35, "windowing")
    windows = make_windows(ds, p.window_s, p.stride_s)
    assignment = split_subjects(ds.subject_ids, (0.6, 0.2, 0.2), seed=p.split_seed)
    by_subject = split_by_subject(windows, assignment)
    ctx.progress(0.37, "splitting by recording")
    by_recording = split_by_recording(ds, p.window_s, p.stride_s)

    ctx.progress(0.39, "figures")
    subject_counts = _counts(by_subject, ds.activities)
    recording_counts = _counts(by_recording, ds.activities)
    ctx.write_dataframe("windows_by_subject_split", subject_counts.reset_index(), formats=("csv",))
    ctx.write_dataframe("windows_by_recording_split", recording_counts.reset_index(), formats=("csv",))
    ctx.write_dataframe("private/subjects", ds.subjects, formats=("csv", "parquet"))  # demographics: never in a report
    ctx.write_bytes("signals.png", plots.recording_signals(ds, 0))
    ctx.write_bytes(
        "windows_per_activity.png",
        plots.grouped_bars(subject_counts, "Windows per activity (split by subject)", "windows"),
    )

    for name, part in by_subject.items():
        ctx.metric("windows", len(part), split=name, protocol="by_subject")
        ctx.metric("subjects", len(set(part.subject.tolist())), split=name, protocol="by_subject")
    for name, part in by_recording.items():
        ctx.metric("windows", len(part), split=name, protocol="by_recording")
    head: dict[str, Any] = {}
    setup = None
    if p.evaluate:
        end = 0.6 if p.anonymise or p.explain or p.dp or p.audit else 1.0
        cfg = eval_config(p, ctx.seed)
        # one frozen re-identification network, on one recording split, for the evaluation and the release
        setup = workflow.prepare(ds, cfg, progress=scaled(ctx.progress, 0.4, 0.45))
        result = evaluate(ds, None, cfg, progress=scaled(ctx.progress, 0.45, end), reid_assignment=setup.assignment,
                          frozen_reid=setup.frozen)
        head = record_evaluation(ctx, result)
    if p.explain:
        head.update(_explain_stage(ctx, p, ds, record["name"], assignment["test"]))
    if p.anonymise:
        head.update(_release_stage(ctx, p, ds, record["name"], setup))
    if p.dp:
        head.update(_private_stage(ctx, p, record["name"]))
    if p.audit:
        head.update(_audit_stage(ctx, p, ds, record["name"]))
    ctx.progress(1.0, "done")
    return {
        "dataset": record["name"],
        "n_subjects": len(ds.subjects),
        "n_recordings": len(ds.recordings),
        "n_windows": len(windows),
        "window_samples": windows.length,
        "activities": ", ".join(ds.activities),
        "train_subjects": ", ".join(assignment["train"]),
        "test_subjects": ", ".join(assignment["test"]),
        **head,
    }
