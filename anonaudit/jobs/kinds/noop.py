"""Job kind ``noop``: a diagnostic job for the queue, the workers and cancellation.

It sleeps in ``steps`` chunks reporting progress after each, writes ``noop.json``, and fails on
request. With ``marker_dir`` it first creates a uniquely named file ``<job_id>-<uuid>`` there, so
tests can count how often a job really ran, independently of the database.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonaudit.errors import AnonauditError, ParameterError
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.params import parse_params
from anonaudit.jobs.registry import job_kind


@dataclass
class NoopParams:
    sleep_s: float = 0.0
    fail: bool = False
    steps: int = 1
    marker_dir: str | None = None

    def check(self) -> None:
        if self.sleep_s < 0:
            raise ParameterError("sleep_s", f"must be >= 0, got {self.sleep_s}")
        if self.steps < 1:
            raise ParameterError("steps", f"must be >= 1, got {self.steps}")


@job_kind("noop", params=NoopParams, paths=("marker_dir",))
def run_noop(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(NoopParams, ctx.params)
    if p.marker_dir is not None:
        marker_dir = Path(p.marker_dir)
        marker_dir.mkdir(parents=True, exist_ok=True)
        (marker_dir / f"{ctx.job_id}-{uuid.uuid4().hex}").touch()
    for step in range(p.steps):
        time.sleep(p.sleep_s / p.steps)
        ctx.progress((step + 1) / p.steps, f"step {step + 1} of {p.steps}")
    ctx.metric("steps", p.steps)
    ctx.write_json("noop.json", {"job_id": ctx.job_id, "params": ctx.params, "seed": ctx.seed})
    if p.fail:
        raise AnonauditError(f"noop job {ctx.job_id} failed on purpose (fail=true)")
    return {"steps": p.steps, "slept_s": p.sleep_s}
