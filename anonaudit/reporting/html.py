"""Standalone HTML reports: one file, figures embedded, that an auditor can send on.

The renderer works for every job kind: it shows provenance (kind, parameters, seed, config
hash, code version), the result summary, metrics, embedded PNG figures, small CSV tables and
the log. Kind-specific content arrives as artifacts, so no per-kind template is needed.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

MAX_TABLE_ROWS = 200

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}
th{background:#f4f4f4} .status{display:inline-block;padding:.1rem .6rem;border-radius:1rem;color:#fff;font-weight:600}
.succeeded{background:#2e7d32}.failed{background:#c62828}.running{background:#1565c0}.queued{background:#757575}.cancelled{background:#6d4c41}
figure{margin:1rem 0} figcaption{font-size:.8rem;color:#555} img{max-width:100%} pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.8rem}
.muted{color:#666;font-size:.85rem}
"""


@dataclass
class ReportData:
    """Everything a report shows, read from the job store by the caller."""

    job: Mapping[str, Any]
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    artifacts: Sequence[Mapping[str, Any]] = ()
    logs: Sequence[Mapping[str, Any]] = ()
    artifact_root: Path = Path(".")
    dataset: Mapping[str, Any] | None = None


def _kv_table(items: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in items.items()
    )
    return f"<table>{rows}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def _metrics_table(metrics: pd.DataFrame) -> str:
    if metrics.empty:
        return "<p class='muted'>No metrics recorded.</p>"
    frame = metrics.copy()
    frame["tags"] = frame["tags"].map(lambda t: ", ".join(f"{k}={v}" for k, v in (t or {}).items()))
    cols = [c for c in ("name", "value", "step", "tags") if c in frame]
    return frame[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0)


def _artifact_sections(data: ReportData) -> tuple[str, str, str]:
    figures, tables, listing = [], [], []
    for art in data.artifacts:
        path = data.artifact_root / art["path"]
        name = html.escape(art["name"])
        private = not art.get("shown", False)  # names real subjects, or is released data: listed, never shown
        where = "kept in the job store only" if private else html.escape(str(art["path"]))
        listing.append(
            f"<tr><td>{name}</td><td>{html.escape(art.get('kind') or '')}</td><td>{art.get('size_bytes', 0):,}</td>"
            f"<td><code>{html.escape((art.get('sha256') or '')[:16])}</code></td><td><code>{where}</code></td></tr>"
        )
        if private or not path.is_file():
            continue
        if path.suffix == ".png":
            b64 = base64.b64encode(path.read_bytes()).decode()
            figures.append(f"<figure><img src='data:image/png;base64,{b64}' alt='{name}'><figcaption>{name}</figcaption></figure>")
        elif path.suffix == ".csv":
            frame = pd.read_csv(path)
            note = f" (first {MAX_TABLE_ROWS} of {len(frame)} rows)" if len(frame) > MAX_TABLE_ROWS else ""
            tables.append(
                f"<h3>{name}{note}</h3>"
                + frame.head(MAX_TABLE_ROWS).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
            )
    table = (
        "<table><tr><th>name</th><th>kind</th><th>bytes</th><th>sha256</th><th>path</th></tr>" + "".join(listing) + "</table>"
        if listing
        else "<p class='muted'>No artifacts.</p>"
    )
    return "".join(figures), "".join(tables), table


def render_html(data: ReportData) -> str:
    """The report as one HTML string."""
    job = data.job
    status = str(job.get("status", ""))
    title = f"anonaudit job {job.get('id')} — {job.get('kind')}"
    provenance = {k: job.get(k) for k in (
        "id", "kind", "status", "seed", "config_hash", "code_version", "worker_id", "attempts",
        "created_at", "started_at", "finished_at",
    )}
    figures, tables, artifact_table = _artifact_sections(data)
    logs = "\n".join(f"{log.get('ts', '')} {log.get('level', '')}: {log.get('message', '')}" for log in data.logs)
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><span class='status {html.escape(status)}'>{html.escape(status)}</span>",
    ]
    if job.get("error"):
        parts.append(f"<h2>Error</h2><pre>{html.escape(str(job['error']))}</pre>")
    if job.get("result"):
        parts.append("<h2>Result</h2>" + _kv_table(job["result"]))
    if figures:
        parts.append("<h2>Figures</h2>" + figures)
    parts.append("<h2>Metrics</h2>" + _metrics_table(data.metrics))
    if tables:
        parts.append("<h2>Tables</h2>" + tables)
    if data.dataset:
        parts.append("<h2>Dataset</h2>" + _kv_table(data.dataset))
    parts += [
        "<h2>Parameters</h2>" + f"<pre>{html.escape(json.dumps(job.get('params') or {}, indent=2, default=str))}</pre>",
        "<h2>Provenance</h2>" + _kv_table(provenance),
        "<h2>Artifacts</h2>" + artifact_table,
        "<h2>Log</h2>" + (f"<pre>{html.escape(logs)}</pre>" if logs else "<p class='muted'>Empty.</p>"),
        "<p class='muted'>Generated by anonaudit. Every figure above is computed from the stored job; re-run it with "
        f"<code>anonaudit jobs rerun {html.escape(str(job.get('id')))}</code>.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
