"""Job kind ``frontier``: sweep each method's privacy knob, judge every point, release the best that passes.

Each point is an ``anonymise`` run (same code, same threat models, one frozen ReID and recording
split shared by all points) whose release is registered and judged but not exported. The table
and figure show every point against every threat model; then the point with the best utility
among those whose release check passed — HAR trained on the release and tested on real unseen
subjects (TSTR) first, the papers' real-trained-on-released figure second — is exported, and the
job says which and why. If no point passes, it says so plainly and exports nothing. The main job
runs the same sweep on its sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from anonaudit.anonymise import workflow
from anonaudit.anonymise.config import DEFAULT_FRONTIER, KNOBS, METHODS
from anonaudit.data.dataset import SensorDataset
from anonaudit.errors import ParameterError
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.datasets import check_name, open_dataset
from anonaudit.jobs.kinds.anonymise import (AnonymiseParams, anonymise_and_judge, check_release_data, export_files,
                                            source_data)
from anonaudit.jobs.kinds.evaluate import eval_config
from anonaudit.jobs.params import parse_params
from anonaudit.jobs.registry import job_kind
from anonaudit.progress import ProgressFn, scaled
from anonaudit.reporting import plots

# what a frontier row shows of each point, from the point's anonymise result
ROW_KEYS = ("released", "releasable", "release_threat_model", "release_attacker", "release_reid_max_recording",
            "release_reid_max_window", *(f"release_reid_{t}" for t in plots.THREATS), "release_memorisation_ratio",
            "release_membership_tpr", "metadata_quantum_s", "published_runs", "pseudonyms", "reid_real_recording_acc",
            "har_wf1_real", "har_wf1_released", "har_wf1_tstr",
            "har_min_recall_ratio_released", "har_min_recall_ratio_tstr", "gender_bacc", "reid_chance",
            "epsilon", "throughput_windows_per_s")


@dataclass
class FrontierParams(AnonymiseParams):
    """An anonymisation's parameters (``method`` and the knob are swept) plus what to sweep."""

    methods: list[str] = field(default_factory=lambda: list(DEFAULT_FRONTIER))
    knob_values: list[float] | None = None  # one method's grid; default: each method's own (``config.KNOBS``)

    def check(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ParameterError("methods", f"unknown method {unknown[0]!r}; choose from {list(METHODS)}" if unknown
                                 else "name at least one method to sweep")
        if self.knob_values is not None and (len(self.methods) != 1 or not self.knob_values):
            raise ParameterError("knob_values", "give the values of one method's knob, with exactly one method")
        for point in points(self):
            point.params.check()


@dataclass(frozen=True)
class Point:
    method: str
    knob: str | None
    value: float | None
    params: AnonymiseParams

    @property
    def slug(self) -> str:
        return self.method if self.value is None else f"{self.method}_{self.value:g}"


def points(p: FrontierParams) -> list[Point]:
    """Every (method, knob value) to judge, each as the parameters of an anonymisation."""
    base = {f.name: getattr(p, f.name) for f in fields(AnonymiseParams)}
    stem = p.name or p.dataset
    out = []
    for method in p.methods:
        knob, grid = KNOBS[method]
        for value in (p.knob_values or grid or [None]) if knob else [None]:
            kind = type(getattr(AnonymiseParams(dataset=""), knob)) if knob else float
            if value is not None and kind is int and value != int(value):
                raise ParameterError("knob_values", f"{method}'s knob {knob} takes whole numbers, got {value:g}")
            typed = {} if value is None else {knob: kind(value)}
            slug = method if value is None else f"{method}-{value:g}"
            params = AnonymiseParams(**{**base, "method": method, **typed, "replace": True,
                                        "name": f"{stem}-{slug}".replace("_", "-")})
            out.append(Point(method, knob, value, params))
    return out


def check_points(p: FrontierParams, real: SensorDataset) -> list[Point]:
    """Every point, after the checks that need the dataset (run before anything trains).

    Values the user named must all fit the data; a default grid keeps the values that fit (donor
    mixing's largest k needs that many subjects per activity) and fails only if none does."""
    todo, problems = [], []
    for point in points(p):
        check_name(point.params.name or "")
        try:
            check_release_data(point.params, real)
        except ParameterError as exc:
            if p.knob_values is not None:
                raise
            problems.append(exc)
        else:
            todo.append(point)
    if not todo:
        raise problems[0]
    return todo


def sweep(ctx: JobContext, p: FrontierParams, real: SensorDataset, progress: ProgressFn,
          setup: workflow.Setup | None = None, prefix: str = "") -> dict[str, Any]:
    """Judge every point, record the frontier, export the best passing point; return the decision's figures."""
    todo = check_points(p, real)
    if setup is None:
        setup = workflow.prepare(real, eval_config(todo[0].params, ctx.seed), progress=scaled(progress, 0.0, 0.1))
    rows = []
    for i, point in enumerate(todo):
        part = scaled(progress, 0.1 + 0.85 * i / len(todo), 0.1 + 0.85 * (i + 1) / len(todo))
        out, _ = anonymise_and_judge(ctx, point.params, real, part, prefix=f"{prefix}{point.slug}_", setup=setup,
                                     export=False)
        bare = {k.removeprefix(f"{prefix}{point.slug}_"): v for k, v in out.items()}
        rows.append({"method": point.method, "knob": point.knob, "value": point.value,
                     **{k: bare.get(k) for k in ROW_KEYS}})
    table = pd.DataFrame(rows)
    ctx.write_dataframe(f"{prefix}frontier", table, formats=("csv",))
    chance = float(table["reid_chance"].dropna().min()) if table["reid_chance"].notna().any() else math.nan
    ctx.write_bytes(f"{prefix}frontier.png",
                    plots.frontier(table, chance, workflow.MIN_DISTANCE_RATIO, workflow.MEMBERSHIP_FPR))
    return _decide(ctx, table, real, prefix)


def _utility(row: pd.Series) -> tuple[float, float]:
    return tuple(-1.0 if pd.isna(row[k]) else float(row[k]) for k in ("har_wf1_tstr", "har_wf1_released"))


def _decide(ctx: JobContext, table: pd.DataFrame, real: SensorDataset, prefix: str) -> dict[str, Any]:
    """Export the passing point with the best utility (TSTR, then real-trained on released); say which and why."""
    passing = table[table["releasable"] == True]  # noqa: E712 - None (not judged) is not a pass
    summary: dict[str, Any] = {f"{prefix}frontier_points": len(table), f"{prefix}frontier_passing": len(passing)}
    if passing.empty:
        worst = table.loc[table["release_reid_max_recording"].astype(float).idxmin()] if len(table) else None
        decision = ("NOTHING RELEASED: no point of the frontier passed its release check"
                    + (f"; the closest, {worst['released']}, was refused by the {worst['release_threat_model']} "
                       f"threat model ({worst['release_attacker']})" if worst is not None else ""))
        ctx.log(decision, "warning")
        return {**summary, f"{prefix}released": None, f"{prefix}decision": decision, f"{prefix}release_withheld": True}
    best = passing.loc[max(passing.index, key=lambda i: _utility(passing.loc[i]))]
    best = best.astype(object).where(best.notna(), None)  # a method without a knob, a figure not measured: None
    knob = f" ({best['knob']} = {best['value']:g})" if best["knob"] else ""
    decision = (f"released {best['released']}: {best['method']}{knob}, the most useful of the {len(passing)} of "
                f"{len(table)} points that passed every threat model — HAR trained on it scores "
                f"{best['har_wf1_tstr']:.2f} weighted F1 on real unseen subjects (real data: {best['har_wf1_real']:.2f}); "
                f"the strongest re-identification over every threat model is {best['release_reid_max_recording']:.1%} "
                f"of recordings (uniform chance {best['reid_chance']:.1%})")
    export_files(ctx, open_dataset(best["released"]), real)
    ctx.log(decision, "info")
    return {**summary, f"{prefix}released": best["released"], f"{prefix}decision": decision,
            f"{prefix}method": best["method"], f"{prefix}knob": best["knob"], f"{prefix}knob_value": best["value"],
            f"{prefix}releasable": True, f"{prefix}release_withheld": False,
            **{f"{prefix}{k}": best[k] for k in ROW_KEYS if k not in ("released", "releasable")}}


@job_kind("frontier", params=FrontierParams, releases=True, paths=("model",))
def run_frontier(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(FrontierParams, ctx.params)
    return {"dataset": p.dataset, **sweep(ctx, p, source_data(p), ctx.progress)}
