"""Job kind ``evaluate``: utility, privacy, soft-biometric and fidelity protocols on a dataset.

``record_evaluation`` stores an :class:`EvalResult` as metrics, tables and figures; the
pipeline and the anonymisers reuse it so every job reports evaluations the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from anonaudit.data.resample import resample
from anonaudit.evaluate.protocols import EvalConfig, EvalResult, align_released, evaluate
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.datasets import open_dataset
from anonaudit.jobs.params import parse_params
from anonaudit.jobs.registry import job_kind
from anonaudit.models.training import TrainConfig
from anonaudit.progress import ProgressFn
from anonaudit.reporting import plots

_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)} - {"seed"}
_EVAL_FIELDS = {f.name for f in fields(EvalConfig)} - {"train", "seed"}


@dataclass
class EvaluateParams:
    dataset: str
    released: str | None = None
    linkage: dict[str, str] | None = None
    resample_hz: float | None = None
    window_s: float = 2.56
    stride_s: float = 1.28
    har_model: str = "tcnn"
    reid_model: str = "tcnn"
    attackers: list[str] | None = None
    biometric_model: str = "forest"
    attributes: list[str] | None = None
    recording_order: str | None = None
    training_sampling: str = "all"
    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    loss: str = "ce"
    patience: int = 5
    n_boot: int = 1000

    def check(self) -> None:
        eval_config(self, 0)


def eval_config(params: Any, seed: int) -> EvalConfig:
    """EvalConfig from any params dataclass carrying the evaluation fields (pipeline, evaluate …)."""
    values = {k: getattr(params, k) for k in _EVAL_FIELDS if hasattr(params, k) and getattr(params, k) is not None}
    for key in ("attackers", "attributes"):
        if key in values:
            values[key] = tuple(values[key])
    train = TrainConfig(**{k: getattr(params, k) for k in _TRAIN_FIELDS if hasattr(params, k)}, seed=seed)
    cfg = EvalConfig(**values, train=train, seed=seed)
    cfg.check()
    return cfg


def min_recall_ratios(result: EvalResult) -> dict[str, float]:
    """The worst activity's window-level HAR recall on released data as a share of its real recall.

    ``har_min_recall_ratio_released``: a real-trained model on released windows; ``..._tstr``: a
    model trained on the release, on real windows. A class the release collapses shows here even
    when the weighted F1 of the others hides it (the issue's floor: no class below half its real value).
    """
    recall = {(s.train_data, s.test_data): s.report.per_class["recall"] for s in result.scores
              if s.protocol == "utility" and s.level == "window"}
    real = recall.get(("real", "real"))
    out = {}
    for key, pair in (("released", ("real", "released")), ("tstr", ("released", "real"))):
        if real is not None and pair in recall:
            present = real > 0
            out[f"har_min_recall_ratio_{key}"] = float((recall[pair][present] / real[present]).min()) if present.any() else float("nan")
    return out


def headline(result: EvalResult) -> dict[str, float]:
    """The figures a reader looks for first (max over retrained attackers: the strongest one counts)."""
    t = result.table()

    def pick(mask: pd.Series, metric: str) -> float:
        v = t.loc[mask & (t["metric"] == metric), "value"]
        return float(v.max()) if len(v) else float("nan")

    util, priv, bio = (t["protocol"] == p for p in ("utility", "privacy", "soft_biometrics"))
    window, rec = t["level"] == "window", t["level"] == "recording"
    retrained = t["train_data"].str.endswith("(retrained)")
    out = {
        "har_wf1_real": pick(util & window & (t["train_data"] == "real") & (t["test_data"] == "real"), "weighted_f1"),
        "har_wf1_released": pick(util & window & (t["train_data"] == "real") & (t["test_data"] == "released"), "weighted_f1"),
        "har_wf1_tstr": pick(util & window & (t["train_data"] == "released"), "weighted_f1"),
        "reid_real_window_acc": pick(priv & window & (t["train_data"] == "real") & (t["test_data"] == "real"), "accuracy"),
        "reid_real_recording_acc": pick(priv & rec & (t["train_data"] == "real") & (t["test_data"] == "real"), "accuracy"),
        "reid_frozen_acc": pick(priv & window & (t["train_data"] == "real") & (t["test_data"] == "released"), "accuracy"),
        "reid_retrained_window_acc": pick(priv & window & retrained, "accuracy"),
        "reid_retrained_recording_acc": pick(priv & rec & retrained, "accuracy"),
    }
    out.update(min_recall_ratios(result))
    chance = t.loc[priv & window & (t["metric"] == "accuracy"), "chance"]
    out["reid_chance"] = float(chance.max()) if len(chance) else float("nan")
    for target in t.loc[bio, "target"].unique():
        out[f"{target}_bacc"] = pick(bio & (t["target"] == target), "balanced_accuracy")
    out.update(result.fidelity)
    return {k: round(v, 4) for k, v in out.items() if not np.isnan(v)}


def record_evaluation(ctx: JobContext, result: EvalResult, prefix: str = "") -> dict[str, float]:
    """Store metrics (chance and 95 % CI in the tags), tables and figures; return the headline."""
    table = result.table()
    for row in table.to_dict("records"):
        tags = {k: row[k] for k in ("protocol", "model", "target", "train_data", "test_data", "level")}
        extra = {k: round(float(row[k]), 6) for k in ("chance", "ci_low", "ci_high") if not pd.isna(row[k])}
        ctx.metric(f"{prefix}{row['metric']}", row["value"], **tags, **extra)
    for name, seconds in result.epoch_seconds.items():
        ctx.metric(f"{prefix}epoch_s", seconds, model=name)
    ctx.write_dataframe(f"{prefix}scores", table)
    per_class = []
    for score in result.scores:
        labels = result.activities if score.target == "activity" else None
        if labels is None:
            continue
        title = f"HAR {score.model}: train {score.train_data} → test {score.test_data} ({score.level})"
        slug = f"{prefix}har_{score.train_data}_to_{score.test_data}_{score.level}".replace(" ", "_")
        pc = score.report.per_class
        per_class.append(pd.DataFrame({"activity": labels, "precision": pc["precision"], "recall": pc["recall"],
                                       "support": pc["support"], "train_data": score.train_data,
                                       "test_data": score.test_data, "level": score.level}))
        if score.level == "window":
            ctx.write_bytes(f"{slug}_confusion.png", plots.confusion_matrix(score.report.confusion, labels, title))
            ctx.write_bytes(f"{slug}_per_class.png", plots.per_class_bars(pc["precision"], pc["recall"], labels, title))
    if per_class:
        ctx.write_dataframe(f"{prefix}har_per_class", pd.concat(per_class, ignore_index=True))
    if not result.channel_distances.empty:
        ctx.write_dataframe(f"{prefix}channel_distances", result.channel_distances)
    head = headline(result)
    priv = table[(table["protocol"] == "privacy") & (table["metric"] == "accuracy")]
    har = head.get("har_wf1_released", head.get("har_wf1_real", float("nan")))
    points = priv.assign(label=priv["model"] + " " + priv["train_data"] + "→" + priv["test_data"] + " (" + priv["level"] + ")")
    points = points.set_index("label")[["value"]].rename(columns={"value": "re-identification accuracy"})
    points["HAR weighted F1"] = har
    ctx.write_bytes(f"{prefix}privacy_utility.png", plots.privacy_utility(
        points, float(priv["chance"].max()), float(table.loc[table["protocol"] == "utility", "chance"].max()),
        "re-identification accuracy", "HAR weighted F1", "Privacy vs utility (lower re-id, higher F1 is better)"))
    for note in result.notes:
        ctx.log(note, "warning")
    return head


def run_evaluation(ctx: JobContext, p: EvaluateParams, progress: ProgressFn) -> dict[str, float]:
    real = open_dataset(p.dataset)
    released = open_dataset(p.released) if p.released else None
    if p.resample_hz:
        real = resample(real, p.resample_hz)
        released = resample(released, p.resample_hz) if released is not None else None
    if released is not None:
        released = align_released(real, released, p.linkage)
    result = evaluate(real, released, eval_config(p, ctx.seed), progress=progress)
    return record_evaluation(ctx, result)


@job_kind("evaluate", params=EvaluateParams)
def run_evaluate(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(EvaluateParams, ctx.params)
    head = run_evaluation(ctx, p, ctx.progress)
    return {"dataset": p.dataset, "released": p.released or "", **head}
