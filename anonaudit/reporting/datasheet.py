"""A release's datasheet in Markdown: what it protects against, what it does not, and what it is good for.

It travels with the data (it names no person, no source recording and no private artifact) and
is written from the same summary as the report, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anonaudit.reporting.summary import PASS, summarise

# what no check of the platform measures, whatever the verdict
NOT_PROTECTED = [
    "activity labels and their order within each recording are published as they are (coarsened only in length "
    "and change-point timing where the metadata-linkage attacker needed it)",
    "attackers outside the threat models checked: auxiliary data other than raw reference recordings of the same "
    "people, linkage across several releases of the same people, and attacks on the original data",
]


def datasheet(job: Mapping[str, Any], files: Mapping[str, Path]) -> str | None:
    """The datasheet of a job that judged a release, or None if it judged none."""
    release = next((s for s in summarise(job, files) if s.title == "Release"), None)
    if release is None:
        return None
    result = job.get("result") or {}
    prefix = "anon_" if job.get("kind") == "pipeline" else ""
    lines = [f"# Datasheet: {result.get(prefix + 'released') or 'release'} (anonaudit job {job.get('id')})", "",
             f"**Verdict:** {'releasable' if release.tone == PASS else 'NOT releasable'}. {release.verdict}", ""]
    how = [f"method {result[prefix + 'method']}" if result.get(prefix + "method") else "",
           "published as activity runs" if result.get(prefix + "published_runs") else "",
           f"one pseudonym per {result[prefix + 'pseudonyms']}" if result.get(prefix + "pseudonyms") else "",
           f"lengths rounded up to {result[prefix + 'metadata_quantum_s']:g} s"
           if result.get(prefix + "metadata_quantum_s") else ""]
    if any(how):
        lines += ["**How it was made:** " + "; ".join(h for h in how if h) + ".", ""]
    lines += ["## What it protects against", "",
              "Each check is the strongest attack of its threat model on this release, against its limit:", "",
              "| threat model | attacker | level | value | 95 % CI | chance | limit | passes |",
              "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in release.checks.itertuples(index=False)]
    lines += ["", *(f"- {note}" for note in release.notes), "", "## What it does not protect", "",
              *(f"- {item}" for item in NOT_PROTECTED), "", "## What it is good for", ""]
    lines += [f"- {row.figure}: {row.value}" + (f" (chance {row.chance})" if row.chance else "")
              for row in release.figures.itertuples(index=False)]
    if result.get(prefix + "pseudonyms") == "recording":
        lines.append("- not for analyses per person: every recording carries a pseudonym of its own")
    if release.tone != PASS and not result.get(prefix + "overridden_by"):
        lines.append("- nothing: it was not exported, because its check refused it")
    return "\n".join(lines) + "\n"
