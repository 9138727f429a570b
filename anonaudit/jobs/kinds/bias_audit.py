"""Job kind ``bias_audit``: the representation-bias audit of a dataset (issue 6).

Every (network, draw, repeat) training is one executor task. Each finished training is stored at
once as metrics tagged with its key (``ctx.flush``), so a re-run attempt of an interrupted job reads
them back and trains only what is missing; all tables are then built from the stored metrics, the
same way for fresh and resumed trainings.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from anonaudit.audit.design import Design, build_design, draws_table, group_order
from anonaudit.audit.trainings import TrainSettings, prepare_windows, train_one
from anonaudit.errors import ParameterError
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.datasets import open_dataset
from anonaudit.jobs.params import parse_params
from anonaudit.jobs.registry import job_kind
from anonaudit.store import artifacts as artifact_store
from anonaudit.store import jobs as job_store

SCORES = ("accuracy", "weighted_f1", "macro_f1", "train_seconds")
FAIR = ("worst_group_acc", "best_group_acc", "gap", "fairness_ratio", "min_class_acc", "eod_max")


@dataclass
class BiasAuditParams:
    dataset: str
    characteristics: list[str] = field(default_factory=lambda: ["age_group", "gender"])
    cuts: dict[str, float] = field(default_factory=dict)  # numeric characteristic → cut point (default: median)
    networks: list[str] = field(default_factory=lambda: ["tcnn"])
    draws: int = 6  # distinct training sets per group (the paper ran ~33 sets over its groups)
    repeats: int = 3  # trainings per draw (the paper's code: 3)
    train_subjects: int = 8  # as the paper's SisFall experiments
    window_s: float = 2.56
    stride_s: float = 1.28
    test_stride_s: float | None = None  # default: the window length (test windows do not overlap)
    max_windows_per_subject: int | None = None  # cap per subject and split, seeded (speed on long recordings)
    resample_hz: float | None = None
    epochs: int = 15
    batch_size: int = 50
    lr: float = 1e-3
    patience: int = 5
    activity: str | None = None  # activity of the precision/recall figure (default: a walking one, else the commonest)
    n_workers: int | None = None

    def check(self) -> None:
        from anonaudit.models.classifiers import ARCHITECTURES  # torch: imported only when validating
        from anonaudit.models.training import TrainConfig

        unknown = sorted(set(self.networks) - set(ARCHITECTURES))
        if unknown or not self.networks:
            raise ParameterError("networks", f"unknown {unknown or 'empty list'}; choose from {list(ARCHITECTURES)}")
        for name in ("draws", "repeats", "train_subjects", "epochs", "batch_size", "max_windows_per_subject"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ParameterError(name, f"must be at least 1, got {getattr(self, name)}")
        TrainConfig(**self.settings()).check()

    def settings(self) -> dict[str, Any]:
        return asdict(TrainSettings(self.epochs, self.batch_size, self.lr, self.patience))


def training_tasks(p: BiasAuditParams, design: Design, seed: int, cache: str) -> list[dict[str, Any]]:
    tasks = []
    for n, net in enumerate(p.networks):
        for d, draw in enumerate(design.draws):
            for r in range(p.repeats):
                task_seed = int(np.random.SeedSequence([seed, n, d, r]).generate_state(1)[0] % (2**31))
                tasks.append({"cache": cache, "train_subjects": list(draw.subjects), "network": net, "seed": task_seed,
                              "settings": p.settings(), "key": f"{net}/{draw.key}/r{r}"})
    return tasks


def _record(ctx: JobContext, out: dict[str, Any], base: dict[str, Any], subjects: list[str], activities: list[str],
            attributes: dict[str, dict[str, str]]) -> None:
    """Store one training's measures as tagged metrics, immediately (they survive an interruption)."""
    from anonaudit.audit.measures import training_measures

    ids = np.asarray(subjects, dtype=object)[out["subject"]]
    m = training_measures(out["y_true"], out["y_pred"], ids, activities, attributes)
    for name, value in {**m.scores, "train_seconds": out["seconds"]}.items():
        ctx.metric(name, value, **base)
    for row in m.per_activity.to_dict("records"):
        ctx.metric("activity_precision", row["precision"], **base, activity=row["activity"], support=int(row["support"]))
        ctx.metric("activity_recall", row["recall"], **base, activity=row["activity"], support=int(row["support"]))
    for row in m.per_subject.to_dict("records"):
        ctx.metric("subject_accuracy", row["accuracy"], **base, subject=row["subject"], windows=int(row["windows"]))
    for row in m.fairness.to_dict("records"):
        for name in FAIR:
            ctx.metric(f"fair_{name}", row[name], **base, attribute=row["attribute"], worst_group=row["worst_group"],
                       n_groups=row["n_groups"])
    ctx.flush()


def _frames(metrics: Iterable[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Per-training, per-activity, per-subject and fairness tables from the job's stored metrics."""
    rows = [{"name": m["name"], "value": m["value"], **m["tags"]} for m in metrics if "training" in (m["tags"] or {})]
    long = pd.DataFrame(rows)
    base = ["training", "network", "group", "rank", "draw", "repeat"]

    def wide(prefix: str, names: Iterable[str], index: list[str]) -> pd.DataFrame:
        part = long[long["name"].isin([prefix + n for n in names])]
        table = part.assign(name=part["name"].str.removeprefix(prefix)).pivot_table(
            index=index, columns="name", values="value")
        return table.reindex(columns=list(names)).reset_index()  # all-NaN measures keep their column

    runs = wide("", SCORES, base).rename(columns={"draw": "key"})
    per_activity = wide("activity_", ("precision", "recall"), [*base, "activity", "support"]).rename(columns={"draw": "key"})
    per_subject = long[long["name"] == "subject_accuracy"][[*base, "subject", "windows", "value"]].rename(
        columns={"value": "accuracy", "draw": "key"}).reset_index(drop=True)
    fairness = wide("fair_", FAIR, [*base, "attribute", "worst_group", "n_groups"])
    return {"runs": runs, "per_activity": per_activity, "per_subject": per_subject, "fairness": fairness}


def _small_levels(design: Design, minimum: int = 3) -> list[str]:
    """Attribute levels with so few subjects that their fairness figures rest on one or two testers."""
    out = []
    for c in [*design.characteristics, "cell"]:
        counts = design.subjects[c].value_counts()
        out += [f"only {n} subject(s) are {level!r}: fairness figures for them rest on at most {n} tester(s)"
                for level, n in counts[counts < minimum].items()]
    return out


def _pick_activity(per_activity: pd.DataFrame, wanted: str | None) -> str | None:
    names = list(dict.fromkeys(per_activity["activity"]))
    if wanted:
        if wanted not in names:
            raise ParameterError("activity", f"{wanted!r} is not among the test activities {names}")
        return wanted
    walking = [a for a in names if "walk" in a.lower()]
    if walking:
        return walking[0]
    return str(per_activity.groupby("activity")["support"].max().idxmax()) if names else None


def _write_outputs(ctx: JobContext, p: BiasAuditParams, design: Design, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    # statistics and plotting libraries load here, not when the app imports the parameters
    from anonaudit.audit import figures
    from anonaudit.audit.advice import advice_text, selection_advice
    from anonaudit.audit.statistics import ALPHA, analyse

    runs, fairness = tables["runs"], tables["fairness"]
    subj = tables["per_subject"].merge(design.subjects[["subject", "cell"]], on="subject", how="left")
    result = analyse(runs, subj)
    ctx.write_dataframe("design_draws", draws_table(design))
    ctx.write_dataframe("design_cells", design.cells)
    ctx.write_dataframe("trainings", runs.sort_values(["network", "rank", "group", "key", "repeat"]))
    ctx.write_dataframe("per_activity", tables["per_activity"])
    ctx.write_dataframe("per_test_subject", subj)
    ctx.write_dataframe("test_table", result.tests)
    ctx.write_dataframe("pairwise", result.pairwise)
    ctx.write_dataframe("group_summary", result.groups)
    ctx.write_dataframe("fairness_trainings", fairness)
    fair_summary = fairness.groupby(["network", "group", "attribute"], as_index=False)[list(FAIR)].mean()
    order = fair_summary["group"].map(lambda g: group_order(g)[0] * 100 + ord((g[1:] or "@")[0]))
    fair_summary = fair_summary.assign(_o=order).sort_values(["network", "attribute", "_o"]).drop(columns="_o")
    ctx.write_dataframe("fairness_table", fair_summary)
    trend = result.tests[result.tests["test"].str.startswith("trend") & (result.tests["metric"] == "accuracy")]
    supported = bool((trend["p_value"] < ALPHA).any() & (trend["effect"] > 0).any()) if len(trend) else None
    advice = selection_advice(design)
    advice_lines = advice_text(advice, design.characteristics, supported)
    ctx.write_dataframe("advice", advice)
    ctx.write_json("findings.json", {"findings": result.findings, "warnings": result.warnings + _small_levels(design),
                                     "infeasible_groups": design.infeasible, "advice": advice_lines})
    notes = result.warnings + [f"group {i['group']}: {i['reason']}" for i in design.infeasible] + _small_levels(design)
    ctx.write_text("findings.md", "\n".join(
        ["# Findings", *[f"- {f}" for f in result.findings], "", "# Warnings", *[f"- {w}" for w in notes or ["none"]],
         "", "# Subject-selection advice", *[f"- {a}" for a in advice_lines]]) + "\n")
    groups = sorted(runs["group"].unique(), key=group_order)
    main = runs.assign(group=runs["group"].str.rstrip("abcdefgh"))
    for metric in ("accuracy", "weighted_f1"):
        ctx.write_bytes(f"box_{metric}.png", figures.group_boxes(main, metric))
    sub = [g for g in groups if g.startswith("2") and len(g) > 1]
    if len(sub) > 1:
        ctx.write_bytes("box_accuracy_subgroups_2.png", figures.group_boxes(
            runs, "accuracy", sub, "accuracy of sub-groups 2a (one characteristic differs) and 2b (both differ)"))
    activity = _pick_activity(tables["per_activity"], p.activity)
    if activity:
        ctx.write_bytes("activity_precision_recall.png", figures.activity_by_group(
            tables["per_activity"].assign(group=tables["per_activity"]["group"].astype(str)), activity))
    for w in result.warnings:
        ctx.log(w, "warning")
    out: dict[str, Any] = {"trainings": int(len(runs)), "groups": " ".join(groups),
                           "infeasible_groups": " ".join(i["group"] for i in design.infeasible)}
    for row in trend.to_dict("records"):
        ctx.metric("trend_p", row["p_value"], network=row["network"], metric="accuracy")
        ctx.metric("trend_effect", row["effect"], network=row["network"], metric="accuracy")
        out[f"{row['network']}_trend_p"] = round(float(row["p_value"]), 5)
        out[f"{row['network']}_trend_tau"] = round(float(row["effect"]), 4)
    for net, acc in runs.groupby("network")["accuracy"].mean().items():
        out[f"{net}_mean_accuracy"] = round(float(acc), 4)
    return out


@job_kind("bias_audit", params=BiasAuditParams)
def run_bias_audit(ctx: JobContext) -> dict[str, Any]:
    from anonaudit.compute import get_executor
    from anonaudit.data.resample import resample

    p = parse_params(BiasAuditParams, ctx.params)
    ds = open_dataset(p.dataset)
    if p.activity is not None and p.activity not in ds.activities:
        raise ParameterError("activity", f"{p.activity!r} is not an activity of {p.dataset!r}: {ds.activities}")
    design = build_design(ds.subjects, p.characteristics, cuts=p.cuts, n_train=p.train_subjects, n_draws=p.draws,
                          seed=ctx.seed)
    for item in design.infeasible:
        ctx.log(f"group {item['group']}: {item['reason']}", "warning")
    folder = artifact_store.job_dir(ctx.job_id) / "audit_cache"  # outside staging: never published
    tasks = training_tasks(p, design, ctx.seed, str(folder))
    done = {m["tags"]["training"] for m in job_store.job_metrics(ctx.job_id)
            if m["name"] == "accuracy" and "training" in (m["tags"] or {})}
    todo = [t for t in tasks if t["key"] not in done]
    draw_of = {d.key: d for d in design.draws}
    if done:
        ctx.log(f"resuming: {len(done)} of {len(tasks)} trainings were stored by an earlier attempt")
    try:
        if todo:
            ctx.progress(0.01, "cutting windows")
            if p.resample_hz:
                ds = resample(ds, p.resample_hz)
            prepare_windows(ds, folder, window_s=p.window_s, stride_s=p.stride_s, test_stride_s=p.test_stride_s,
                            max_windows_per_subject=p.max_windows_per_subject, seed=ctx.seed)
            cells = design.subjects.set_index("subject")
            attributes = {c: cells[c].to_dict() for c in [*design.characteristics, "cell"]}
            ctx.progress(0.05, f"{len(done)}/{len(tasks)} trainings done")
            executor = get_executor(n_workers=p.n_workers)
            try:
                for i, (_, out) in enumerate(executor.map_unordered(train_one, todo), start=1):
                    net, draw_key, rep = out["key"].split("/")
                    d = draw_of[draw_key]
                    base = {"training": out["key"], "network": net, "group": d.group, "rank": d.rank, "draw": d.key,
                            "repeat": int(rep[1:])}
                    _record(ctx, out, base, ds.subject_ids, list(ds.activities), attributes)
                    ctx.progress(0.05 + 0.85 * (len(done) + i) / len(tasks),
                                 f"{len(done) + i}/{len(tasks)} trainings done ({out['key']})")
            finally:
                executor.close()
        ctx.progress(0.92, "statistics, tables and figures")
        summary = _write_outputs(ctx, p, design, _frames(job_store.job_metrics(ctx.job_id)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ctx.progress(1.0, "done")
    return {"dataset": p.dataset, "resumed_trainings": len(done), **summary}
