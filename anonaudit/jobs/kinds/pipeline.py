"""Job kind ``pipeline``: the main job, end to end on one dataset.

Today: import → windows → subject and recording splits → summary figures → evaluation
(activity recognition, re-identification by frozen and retrained attackers, soft biometrics).
Each capability that lands adds its stage here (evaluation, anonymisation, release check …),
so ``./dev demo`` always shows what the platform can do on the sample data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from anonaudit.data.splits import split_by_recording, split_by_subject, split_subjects
from anonaudit.data.windows import Windows, make_windows
from anonaudit.errors import ParameterError
from anonaudit.jobs.context import JobContext
from anonaudit.evaluate.protocols import evaluate
from anonaudit.jobs.datasets import import_dataset
from anonaudit.jobs.kinds.evaluate import eval_config, record_evaluation
from anonaudit.jobs.params import parse_params
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

    def check(self) -> None:
        if self.window_s <= 0:
            raise ParameterError("window_s", f"must be positive, got {self.window_s}")
        if self.stride_s <= 0:
            raise ParameterError("stride_s", f"must be positive, got {self.stride_s}")


def _counts(splits: dict[str, Windows], activities: list[str]) -> pd.DataFrame:
    """Windows per activity (rows) and split (columns)."""
    return pd.DataFrame(
        {name: np.bincount(w.y, minlength=len(activities)) for name, w in splits.items()},
        index=pd.Index(activities, name="activity"),
    )


@job_kind("pipeline")
def run_pipeline(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(PipelineParams, ctx.params)
    ds, record = import_dataset(ctx, p.path, p.format, name=p.name, progress=scaled(ctx.progress, 0.0, 0.4))

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
    ctx.write_dataframe("subjects", ds.subjects, formats=("csv", "parquet"))
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
    head = {}
    if p.evaluate:
        result = evaluate(ds, None, eval_config(p, ctx.seed), progress=scaled(ctx.progress, 0.4, 1.0))
        head = record_evaluation(ctx, result)
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
