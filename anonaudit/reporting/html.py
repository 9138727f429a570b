"""Standalone HTML reports: one file, figures embedded, that an auditor can send on.

Decision first: the job's status and, apart from it, its release outcome; then one headline
section per stage (:mod:`anonaudit.reporting.summary`: the verdict in words, the key figures with
CI, chance and model, every release check against its limit); the figures with captions that say
what to read from them; parameters and provenance; and, collapsed, every raw result value,
metric, table, artifact and log line. It opens offline (figures inlined) and prints to PDF.
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

from anonaudit.reporting.captions import caption, rank, readable
from anonaudit.reporting.summary import Section, badge, summarise

MAX_TABLE_ROWS = 200

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}
th{background:#f4f4f4} .status{display:inline-block;padding:.1rem .6rem;border-radius:1rem;color:#fff;font-weight:600}
.succeeded{background:#2e7d32}.failed{background:#c62828}.running{background:#1565c0}.queued{background:#757575}.cancelled{background:#6d4c41}
figure{margin:1rem 0} figcaption{font-size:.8rem;color:#555} img{max-width:100%} pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.8rem}
.muted{color:#666;font-size:.85rem} .pass{background:#2e7d32}.refused{background:#c62828}.warning{background:#ef6c00}.info{background:#1565c0}
section.headline{border-left:.35rem solid #1565c0;padding:.1rem 1rem .5rem;margin:1rem 0;background:#fafafa}
section.headline.pass{border-color:#2e7d32;background:#f1f8f1} section.headline.refused{border-color:#c62828;background:#fdf1f1}
section.headline.warning{border-color:#ef6c00;background:#fff6ec} section.headline h2{border:0;margin-top:.6rem}
p.verdict{font-size:1.05rem;font-weight:600} details{margin:.6rem 0} summary{cursor:pointer;font-weight:600}
@media print{body{margin:0;max-width:none} details{display:block} figure,table,section{page-break-inside:avoid}}
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


def _frame(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, na_rep="", escape=True)


def _headline(section: Section) -> str:
    """One stage's verdict, notes, key figures and checks."""
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in section.notes)
    parts = [f"<section class='headline {section.tone}'><h2>{html.escape(section.title)}</h2>",
             f"<p class='verdict'>{html.escape(section.verdict)}</p>", f"<ul>{notes}</ul>" if notes else ""]
    if not section.figures.empty:
        parts.append(_frame(section.figures))
    if not section.checks.empty:
        parts.append("<p class='muted'>Every threat model and attacker against its limit (the deciding one first):</p>"
                     + _frame(section.checks))
    return "".join(parts) + "</section>"


def _artifact_sections(data: ReportData) -> tuple[str, str, str]:
    figures, tables, listing = [], [], []
    for art in sorted(data.artifacts, key=lambda a: rank(a["name"]) if a["name"].endswith(".png") else 0):
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
            figures.append(f"<figure><img src='data:image/png;base64,{b64}' alt='{name}'><figcaption>"
                           f"{html.escape(caption(art['name']))} <span class='muted'>({name})</span></figcaption></figure>")
        elif path.suffix == ".csv":
            frame = pd.read_csv(path)
            note = f" (first {MAX_TABLE_ROWS} of {len(frame)} rows)" if len(frame) > MAX_TABLE_ROWS else ""
            tables.append(
                f"<h3>{name}{note}</h3>"
                + readable(frame.head(MAX_TABLE_ROWS)).to_html(index=False, border=0)
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
    sections = summarise(job, {a["name"]: data.artifact_root / a["path"] for a in data.artifacts if a.get("shown")})
    outcome, tone = badge(sections)
    logs = "\n".join(f"{log.get('ts', '')} {log.get('level', '')}: {log.get('message', '')}" for log in data.logs)
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><span class='status {html.escape(status)}'>job {html.escape(status)}</span>"
        + (f" <span class='status {tone}'>{html.escape(outcome)}</span>" if outcome else ""),
    ]
    if job.get("error"):
        parts.append(f"<h2>Error</h2><pre>{html.escape(str(job['error']))}</pre>")
    parts += [_headline(s) for s in sections]
    if figures:
        parts.append("<h2>Figures</h2>" + figures)
    parts += [
        "<h2>Parameters</h2>" + f"<pre>{html.escape(json.dumps(job.get('params') or {}, indent=2, default=str))}</pre>",
        "<h2>Provenance</h2>" + _kv_table(provenance),
    ]
    if data.dataset:
        parts.append("<h2>Dataset</h2>" + _kv_table(data.dataset))
    result = job.get("result") or {}
    parts += [
        f"<details><summary>All result values ({len(result)})</summary>{_kv_table(result)}</details>" if result else "",
        f"<details><summary>Metrics ({len(data.metrics)})</summary>{_metrics_table(data.metrics)}</details>",
        f"<details><summary>Tables</summary>{tables}</details>" if tables else "",
        f"<details><summary>Artifacts</summary>{artifact_table}</details>",
        "<details><summary>Log</summary>" + (f"<pre>{html.escape(logs)}</pre>" if logs else "<p class='muted'>Empty.</p>")
        + "</details>",
        "<p class='muted'>Generated by anonaudit. Every figure above is computed from the stored job; re-run it with "
        f"<code>anonaudit jobs rerun {html.escape(str(job.get('id')))}</code>.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
