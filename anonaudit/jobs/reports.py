"""Render a stored job as a standalone HTML report under the reports folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from anonaudit.files import atomic_write
from anonaudit.reporting.datasheet import datasheet
from anonaudit.reporting.html import ReportData, render_html
from anonaudit.settings import get_settings
from anonaudit.store import artifacts as artifact_store
from anonaudit.store import datasets as dataset_store
from anonaudit.store.db import UrlOrEngine
from anonaudit.store import jobs as job_store


def report_path(job_id: int, kind: str) -> Path:
    return get_settings().reports_dir / f"job-{job_id}-{kind}.html"


def write_report(job_id: int, out: str | Path | None = None, *, url: UrlOrEngine = None) -> Path:
    """Write the job's report (atomically) and return its path."""
    job = job_store.job_dict(job_id, url=url)
    dataset = None
    if job.get("dataset_id") is not None:
        dataset = dataset_store.get_dataset(job["dataset_id"], url=url)
    data = ReportData(
        job=job,
        metrics=pd.DataFrame(job.get("metrics", []), columns=["name", "value", "step", "tags"]),
        artifacts=[{**a, "shown": artifact_store.shown(a["name"])} for a in job.get("artifacts", [])],
        logs=job_store.job_logs(job_id, url=url),
        artifact_root=get_settings().home,
        dataset={k: v for k, v in dataset.items() if k != "summary"} if dataset else None,
    )
    path = Path(out) if out is not None else report_path(job_id, job["kind"])
    html = render_html(data)
    return atomic_write(path, lambda tmp: tmp.write_text(html, encoding="utf-8"))


def release_datasheet(job_id: int, *, url: UrlOrEngine = None) -> str | None:
    """The Markdown datasheet of the release a job judged (None if it judged none), from its shown artifacts."""
    job = job_store.job_dict(job_id, url=url)
    files = {name: path for name, path in job_store.artifact_files(job_id, url=url).items()
             if artifact_store.shown(name)}
    return datasheet(job, files)


def write_datasheet(job_id: int, *, url: UrlOrEngine = None) -> Path | None:
    """Write the datasheet beside the job's report (reports/job-ID-datasheet.md); None if it judged no release."""
    text = release_datasheet(job_id, url=url)
    if text is None:
        return None
    path = get_settings().reports_dir / f"job-{job_id}-datasheet.md"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
