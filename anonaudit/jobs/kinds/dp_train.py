"""Job kinds ``dp_train`` (one differentially private VAE, audited) and ``dp_sweep`` (ε × model ×
dataset fanned out on the executor, giving the privacy–utility table and curves).

The ε stored and shown is always the RDP accountant's ε for the noise actually used (PRV beside
it). Every check on user input runs before any training. Membership inference compares members
with held-out data; the calibrated attack uses a non-private shadow model trained on a disjoint
population split.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anonaudit.compute import get_executor
from anonaudit.errors import ParameterError
from anonaudit.files import atomic_write
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.params import parse_params
from anonaudit.jobs.registry import job_kind
from anonaudit.progress import ProgressFn
from anonaudit.store import artifacts as artifact_store
from anonaudit.private import experiment, figures
from anonaudit.private.experiment import MODELS, ExperimentConfig

HEADLINE = ("epsilon", "epsilon_prv", "noise_multiplier", "recon_mse", "fd_classifier", "fd_autoencoder",
            "inception_score", "tstr_f1", "mia_auc", "mia_tpr_at_1fpr", "mia_calibrated_auc",
            "mia_calibrated_tpr_at_1fpr", "epoch_s", "subject_epsilon_group", "subject_delta_group")


@dataclass
class DPTrainParams(ExperimentConfig):
    calibrated: bool = True  # also train the shadow model of the calibrated membership attack


def _label(row: dict[str, Any]) -> str:
    eps = row["epsilon"]
    return f"{row['dataset']}_{row['model']}_eps{'inf' if not math.isfinite(eps) else f'{eps:.3g}'}"


def _record_row(ctx: JobContext, row: dict[str, Any], prefix: str = "") -> None:
    tags = {"dataset": row["dataset"], "model": row["model"], "epsilon": figures.epsilon_label(row["epsilon"])}
    for key in HEADLINE:
        value = row.get(key)
        if isinstance(value, (int, float)) and value is not None and math.isfinite(value):
            ctx.metric(prefix + key, float(value), **tags)


def _record_images(ctx: JobContext, out: dict[str, Any], name: str) -> None:
    if "samples" in out:
        ctx.write_bytes(f"{name}_samples.png", figures.examples(out["samples"], f"{name}: generated"))
    ctx.write_bytes(f"{name}_reconstructions.png", figures.reconstructions(out["reconstructions"], f"{name}: held-out originals (top), reconstructions"))


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    """Headline figures, with the membership attack's chance levels beside them (AUC ½, TPR = FPR)."""
    out = {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else (None if isinstance(v, float) else v))
           for k, v in row.items() if k in HEADLINE or k in ("dataset", "model", "delta", "subject_level")}
    return out | {"mia_auc_chance": 0.5, "mia_tpr_at_1fpr_chance": 0.01}


def train_and_record(ctx: JobContext, params: dict[str, Any], progress: ProgressFn, prefix: str = "") -> dict[str, Any]:
    """Check, train and audit one DP VAE and store it all; the ``dp_train`` job and the main job share this.

    Artifacts, metrics and result keys carry ``prefix`` so the main job can hold this beside other stages.
    """
    p = parse_params(DPTrainParams, params)
    cfg = {k: v for k, v in params.items() if k != "calibrated"}
    progress(0.0, "checking data, model and privacy budget")
    experiment.preflight(p, ctx.seed)
    progress(0.05, "fitting the utility classifier and autoencoder on population data")
    reference = experiment.fit_reference(p, ctx.seed)
    progress(0.15, f"training the {p.model} VAE")
    out = experiment.run_task(cfg, ctx.seed, reference=reference)
    row = out["row"]
    if p.calibrated:
        progress(0.75, "training the shadow model of the calibrated attack")
        shadow = experiment.run_task(cfg, ctx.seed, role="shadow")
        row = experiment.calibrate(row, out["losses"], shadow["losses"])
    progress(0.95, "writing results")
    ctx.write_bytes(f"private/{prefix}model.pt", out["state"])
    ctx.write_json(f"{prefix}privacy.json",
                   out["privacy"] | {"note": "ε from Opacus' RDP accountant for the noise used; PRV cross-check"})
    ctx.write_json(f"{prefix}results.json", row)
    ctx.write_dataframe(f"{prefix}results", pd.DataFrame([row]))
    members, holdout = out["losses"]["members"], out["losses"]["holdout"]
    ctx.write_dataframe(f"{prefix}membership_losses", pd.DataFrame({
        "split": ["member"] * len(members) + ["holdout"] * len(holdout), "loss": np.r_[members, holdout]}))
    _record_images(ctx, out, prefix + _label(row))
    for epoch, loss in enumerate(out["history"]):
        ctx.metric(f"{prefix}train_loss", loss, step=epoch + 1)
    _record_row(ctx, row, prefix)
    if row.get("subject_vacuous"):
        ctx.log(f"Window-level DP protects single windows, not people: a subject with {int(row['subject_k'])} windows "
                f"is protected only at ε = {row['subject_epsilon_group']:.3g}, δ = {row['subject_delta_group']:.3g} "
                "(group privacy), which promises nothing. Train with subject-level DP to protect subjects.",
                level="warning")
    progress(1.0, "DP model trained and audited")
    return {f"{prefix}{k}": v for k, v in _summary(row).items()}


@job_kind("dp_train", params=DPTrainParams, paths=("path",))
def run_dp_train(ctx: JobContext) -> dict[str, Any]:
    return train_and_record(ctx, ctx.params, ctx.progress)


@dataclass
class DPSweepParams:
    datasets: list[str] = field(default_factory=lambda: ["digits"])
    models: list[str] = field(default_factory=lambda: list(MODELS))
    epsilons: list[float | None] = field(default_factory=lambda: [1.0, 5.0, 10.0, None])  # None: no DP (ε = ∞)
    settings: dict[str, Any] = field(default_factory=dict)  # any dp_train parameter, shared by all runs
    calibrated: bool = True
    n_workers: int | None = None

    def check(self) -> None:
        fixed = {"data", "model", "epsilon", "noise_multiplier"} & set(self.settings)
        if fixed:
            raise ParameterError("settings", f"{sorted(fixed)} are swept; use datasets / models / epsilons")
        if not (self.datasets and self.models and self.epsilons):
            raise ParameterError("epsilons", "datasets, models and epsilons must not be empty")
        for m in self.models:
            if m not in MODELS:
                raise ParameterError("models", f"unknown model {m!r}; choose from {MODELS}")

    def runs(self) -> list[dict[str, Any]]:
        return [{**self.settings, "data": d, "model": m, "epsilon": e}
                for d in self.datasets for m in self.models for e in self.epsilons]


@job_kind("dp_sweep", params=DPSweepParams)
def run_dp_sweep(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(DPSweepParams, ctx.params)
    runs = p.runs()
    ctx.progress(0.0, f"checking {len(runs)} configurations")
    for run in runs:  # bad input fails here, before anything trains
        experiment.preflight(parse_params(ExperimentConfig, run), ctx.seed)
    references = {}
    for i, d in enumerate(p.datasets):
        ctx.progress(0.02 + 0.08 * i / len(p.datasets), f"utility classifier and autoencoder for {d}")
        references[d] = experiment.fit_reference(parse_params(ExperimentConfig, {**p.settings, "data": d}), ctx.seed)
    tasks = [{"cfg": r, "seed": ctx.seed, "reference": references[r["data"]]} for r in runs]
    if p.calibrated:
        tasks += [{"cfg": {**p.settings, "data": d, "model": m, "epsilon": None}, "seed": ctx.seed, "role": "shadow"}
                  for d in p.datasets for m in p.models]
    finished = _finished_tasks(ctx.job_id, tasks)
    if finished:
        ctx.log(f"resuming: {len(finished)} of {len(tasks)} trainings were finished by an earlier attempt")
    rows: dict[int, dict[str, Any]] = {}
    losses: dict[int, dict[str, np.ndarray]] = {}
    shadows: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    executor = get_executor(n_workers=p.n_workers)
    try:
        for done, (i, out) in enumerate(_run_or_resume(ctx.job_id, tasks, finished, executor), start=1):
            cfg = tasks[i]["cfg"]
            if out["role"] == "shadow":
                shadows[(cfg["data"], cfg["model"])] = out["losses"]
            else:
                rows[i], losses[i] = out["row"], out["losses"]
                _record_images(ctx, out, _label(out["row"]))
                ctx.write_bytes(f"private/{_label(out['row'])}.pt", out["state"])
            for j in list(rows):  # calibrate whatever has its shadow now
                key = (rows[j]["dataset"], rows[j]["model"])
                if key in shadows and "mia_calibrated_auc" not in rows[j]:
                    rows[j] = experiment.calibrate(rows[j], losses[j], shadows[key])
            table = pd.DataFrame([rows[j] for j in sorted(rows)])
            ctx.write_dataframe("privacy_utility", table)  # stored as results arrive
            ctx.progress(0.1 + 0.88 * done / len(tasks), f"{done}/{len(tasks)} trainings finished")
    finally:
        executor.close()
    for row in rows.values():
        _record_row(ctx, row)
    table = pd.DataFrame([rows[j] for j in sorted(rows)])
    ctx.write_bytes("privacy_utility.png", figures.privacy_utility(table, "Privacy–utility trade-off (ε from the RDP accountant)"))
    ctx.progress(1.0, "done")
    best = table.loc[table["recon_mse"].idxmin()]
    return {"runs": len(rows), "best_recon_mse": round(float(best["recon_mse"]), 4), "best": _label(best.to_dict()),
            "max_mia_auc_private": round(float(table.loc[np.isfinite(table["epsilon"]), "mia_auc"].max()), 4)
            if np.isfinite(table["epsilon"]).any() else None, "resumed_trainings": len(finished)}


def _task_file(job_id: int, task: dict[str, Any]) -> Path:
    """A finished task's output in the job's resume folder, named by what the task is."""
    key = json.dumps({k: v for k, v in task.items() if k != "reference"}, sort_keys=True, default=str)
    return artifact_store.resume_dir(job_id) / f"sweep-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def _finished_tasks(job_id: int, tasks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Outputs an earlier attempt of this job stored (our own files, so unpickling them is safe)."""
    import torch

    return {i: torch.load(f, weights_only=False) for i, t in enumerate(tasks) if (f := _task_file(job_id, t)).exists()}


def _run_or_resume(job_id: int, tasks: list[dict[str, Any]], finished: dict[int, dict[str, Any]],
                   executor: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stored outputs first, then the missing tasks as they finish, each saved before it is yielded,
    so fresh and resumed results take the same path and an interruption loses no finished training."""
    import torch

    yield from finished.items()
    todo = [i for i in range(len(tasks)) if i not in finished]
    for j, out in executor.map_unordered(experiment.run_task, [tasks[i] for i in todo]):
        atomic_write(_task_file(job_id, tasks[todo[j]]), lambda tmp, o=out: torch.save(o, tmp))
        yield todo[j], out
