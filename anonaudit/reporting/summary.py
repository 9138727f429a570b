"""What a job decided, first and in words: one headline section per stage, for the report and the app.

A release section answers "may this be published?" (the verdict, the threat model and attacker that
decided it, every check against its limit); an evaluation section gives the figures a reader
looks for with their chance level, CI and model; a DP section says ε, δ, the unit of privacy and
what that does and does not protect; an audit its findings and advice; an explanation its cards.
The main job gets one section per stage. Everything is read from the job's result and its
shown artifacts, never from private ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

PASS, REFUSED, WARNING, INFO = "pass", "refused", "warning", "info"
FIGURE_COLUMNS = ["figure", "value", "95 % CI", "chance", "model"]
CHECK_COLUMNS = ["threat model", "attacker", "level", "value", "95 % CI", "chance", "limit", "passes"]


@dataclass
class Section:
    """One stage's answer: a verdict sentence, its tone, the key figures and (releases) every check."""

    title: str
    verdict: str
    tone: str
    figures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FIGURE_COLUMNS))
    checks: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CHECK_COLUMNS))
    notes: list[str] = field(default_factory=list)


def _ci(low: Any, high: Any, percent: bool) -> str:
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return ""
    return f"{low:.1%} – {high:.1%}" if percent else f"{low:.3g} – {high:.3g}"


def _value(value: Any, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.1%}" if percent else f"{value:.3g}"


def _read(files: Mapping[str, Path], name: str) -> Any:
    path = files.get(name)
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text()) if name.endswith(".json") else pd.read_csv(path)


def checks_table(verdict: Mapping[str, Any]) -> pd.DataFrame:
    """Every check of a release verdict against its limit, the one that decided it first."""
    def deciding(c: Mapping[str, Any]) -> bool:
        return (c["threat"], c["attacker"], c["level"]) == (verdict.get("threat_model"), verdict.get("attacker"),
                                                            verdict.get("level"))

    rows = []
    for c in sorted(verdict.get("checks", []), key=lambda c: (not deciding(c), c["passes"])):
        percent = c["threat"] != "memorisation"
        rows.append({"threat model": c["threat"], "attacker": c["attacker"], "level": c["level"],
                     "value": _value(c["value"], percent), "95 % CI": _ci(c["ci_low"], c["ci_high"], percent),
                     "chance": _value(c["chance"], percent), "limit": ("≥ " if not percent else "≤ ")
                     + _value(c["limit"], percent), "passes": "yes" if c["passes"] else "NO"})
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def _release(result: Mapping[str, Any], files: Mapping[str, Path], prefix: str) -> Section | None:
    """An anonymise, release-check or frontier outcome (a frontier's chosen point's checks)."""
    decision = (result.get(f"{prefix}decision") or result.get(f"{prefix}release_check")
                or (result.get(f"{prefix}reason") if f"{prefix}releasable" in result else None))
    if decision is None:
        if result.get(f"{prefix}release_withheld"):
            return Section("Release", "WITHHELD: the release was not judged, so nothing was exported", WARNING)
        return None
    releasable = bool(result.get(f"{prefix}releasable"))
    verdict = _read(files, f"{prefix}release_check.json")
    frontier = _read(files, f"{prefix}frontier.csv")
    section = Section("Release", decision, PASS if releasable else REFUSED)
    if verdict is None and frontier is not None and len(frontier):
        # a frontier: the checks of the point released, or else of the closest (the one the decision names)
        chosen = frontier[frontier["released"] == result.get(f"{prefix}released")]
        row = (chosen if len(chosen) else frontier.loc[[frontier["release_reid_max_recording"].astype(float).idxmin()]]
               ).iloc[0]
        slug = row["method"] if pd.isna(row["value"]) else f"{row['method']}_{float(row['value']):g}"
        verdict = _read(files, f"{prefix}{slug}_release_check.json")
        section.notes.append(f"every point of the frontier: {_points(frontier)}; the checks below are "
                             f"{row['released']}'s")
    if verdict is not None:
        section.checks = checks_table(verdict)
    figures = [("HAR on the release, real-trained (weighted F1)", result.get(f"{prefix}har_wf1_released"), None, False),
               ("HAR trained on the release, on real unseen subjects (TSTR)", result.get(f"{prefix}har_wf1_tstr"),
                None, False),
               ("HAR on the original data", result.get(f"{prefix}har_wf1_real"), None, False),
               ("re-identification, strongest over every threat model (recordings)",
                result.get(f"{prefix}release_reid_max_recording"), result.get(f"{prefix}reid_chance"), True),
               ("re-identification of the original data (recordings)", result.get(f"{prefix}reid_real_recording_acc"),
                result.get(f"{prefix}reid_chance"), True),
               ("gender inferred from the release (balanced accuracy)", result.get(f"{prefix}gender_bacc"),
                0.5 if result.get(f"{prefix}gender_bacc") is not None else None, True)]
    section.figures = pd.DataFrame([{"figure": f, "value": _value(v, pct), "95 % CI": "",
                                     "chance": _value(c, pct), "model": ""} for f, v, c, pct in figures
                                    if v is not None], columns=FIGURE_COLUMNS)
    if result.get(f"{prefix}overridden_by"):
        section.notes.append(f"exported although its check refused it: overridden by {result[f'{prefix}overridden_by']} "
                             f"at {result.get(f'{prefix}overridden_at')} — {result.get(f'{prefix}override_reason')}")
    if result.get(f"{prefix}epsilon") is not None:
        section.notes.append(f"the model behind it is ({result[f'{prefix}epsilon']:.3g}, {result[f'{prefix}delta']:.2g})"
                             f"-DP per {result.get(f'{prefix}privacy_unit', 'subject')} (RDP accountant)")
    return section


def _points(frontier: pd.DataFrame) -> str:
    """Each frontier point in a few words: what it is and what decided it."""
    out = []
    for _, r in frontier.iterrows():
        name = r["method"] + ("" if pd.isna(r["value"]) else f" {r['knob']}={r['value']:g}")
        passed = str(r["releasable"]) == "True"  # read back from CSV: a numpy bool, or text beside empty cells
        out.append(f"{name} " + ("passed" if passed else f"refused by {r['release_threat_model']}"))
    return "; ".join(out)


# the evaluation figures a reader looks for: (label, protocol, metric, train_data, test_data, level, percent)
_EVALUATION = [
    ("HAR on the original data (weighted F1)", "utility", "weighted_f1", "real", "real", "window", False),
    ("HAR on released data, real-trained", "utility", "weighted_f1", "real", "released", "window", False),
    ("HAR trained on released, on real data (TSTR)", "utility", "weighted_f1", "released", "real", "window", False),
    ("re-identification of original recordings", "privacy", "accuracy", "real", "real", "recording", True),
    ("re-identification of released windows, frozen network", "privacy", "accuracy", "real", "released", "window", True),
]


def _evaluation(result: Mapping[str, Any], files: Mapping[str, Path], prefix: str) -> Section | None:
    scores = _read(files, f"{prefix}scores.csv")
    if scores is None or scores.empty:
        return None
    rows = []
    for label, protocol, metric, train, test, level, percent in _EVALUATION:
        hit = scores[(scores["protocol"] == protocol) & (scores["metric"] == metric) & (scores["train_data"] == train)
                     & (scores["test_data"] == test) & (scores["level"] == level)]
        for _, r in hit.sort_values("value", ascending=False).head(1).iterrows():
            rows.append({"figure": label, "value": _value(r["value"], percent),
                         "95 % CI": _ci(r.get("ci_low"), r.get("ci_high"), percent),
                         "chance": _value(r.get("chance"), percent), "model": r["model"]})
    retrained = scores[(scores["protocol"] == "privacy") & (scores["metric"] == "accuracy")
                       & scores["train_data"].astype(str).str.endswith("(retrained)")]
    for _, r in retrained.sort_values("value", ascending=False).head(1).iterrows():
        rows.append({"figure": f"re-identification by the strongest retrained attacker ({r['level']}s)",
                     "value": _value(r["value"], True), "95 % CI": _ci(r.get("ci_low"), r.get("ci_high"), True),
                     "chance": _value(r.get("chance"), True), "model": r["model"]})
    bio = scores[(scores["protocol"] == "soft_biometrics") & (scores["metric"] == "balanced_accuracy")]
    for _, r in bio.iterrows():
        rows.append({"figure": f"{r['target']} inferred (balanced accuracy)", "value": _value(r["value"], True),
                     "95 % CI": _ci(r.get("ci_low"), r.get("ci_high"), True), "chance": _value(r.get("chance"), True),
                     "model": r["model"]})
    if not rows:
        return None
    figures = pd.DataFrame(rows, columns=FIGURE_COLUMNS)
    first = figures.iloc[0]
    verdict = f"{first['figure']}: {first['value']}" + (f" (95 % CI {first['95 % CI']})" if first["95 % CI"] else "")
    return Section("Evaluation", verdict, INFO, figures)


def _private(result: Mapping[str, Any], files: Mapping[str, Path], prefix: str) -> Section | None:
    epsilon = result.get(f"{prefix}epsilon")
    if f"{prefix}epsilon" not in result or f"{prefix}recon_mse" not in result:
        return None
    unit = "subject" if result.get(f"{prefix}subject_level") else "example (window or image)"
    if epsilon is None:
        verdict = "trained WITHOUT differential privacy (ε = ∞): nothing is promised for the training data"
        tone = WARNING
    else:
        verdict = (f"(ε = {epsilon:.3g}, δ = {result.get(f'{prefix}delta', float('nan')):.2g})-DP per {unit}, "
                   f"from the RDP accountant for the noise used")
        tone = INFO
    notes = ["it protects each person with all their windows: one person's presence changes what the model can "
             "output by at most this (ε, δ)"] if unit == "subject" else [
        "window-level DP protects single windows, not people: a person with many windows is protected only by "
        "group privacy" + (f", here ε = {result[f'{prefix}subject_epsilon_group']:.3g} per subject"
                           if result.get(f"{prefix}subject_epsilon_group") is not None else "")
        + ", which is quickly vacuous"]
    figures = [("membership attack AUC", result.get(f"{prefix}mia_auc"), 0.5),
               ("membership attack TPR at 1 % FPR", result.get(f"{prefix}mia_tpr_at_1fpr"), 0.01),
               ("reconstruction MSE", result.get(f"{prefix}recon_mse"), None)]
    frame = pd.DataFrame([{"figure": f, "value": _value(v, False), "95 % CI": "", "chance": _value(c, False),
                           "model": result.get(f"{prefix}model") or ""} for f, v, c in figures if v is not None],
                         columns=FIGURE_COLUMNS)
    return Section("DP model", verdict, tone, frame, notes=notes)


def _audit(result: Mapping[str, Any], files: Mapping[str, Path], prefix: str) -> Section | None:
    found = _read(files, f"{prefix}findings.json")
    if found is None:
        return None
    findings = found.get("findings") or []
    verdict = findings[0] if findings else "no significant disparity found"
    notes = [*findings[1:], *(f"advice: {a}" for a in found.get("advice") or []),
             *(f"warning: {w}" for w in dict.fromkeys(found.get("warnings") or []))]
    return Section("Bias audit", verdict, WARNING if findings else INFO, notes=notes)


def _explanation(result: Mapping[str, Any], files: Mapping[str, Path], prefix: str) -> Section | None:
    exps = _read(files, f"{prefix}explanations.json")
    if exps is None or "rlime" not in exps:
        return None
    r = exps["rlime"]
    rule = " AND ".join(r["rule"]) or "anywhere"
    verdict = (f"'{r['predicted_class']}' because {rule} — there R-LIME's surrogate agrees with the black box "
               f"{r['accuracy']:.0%} of the time, on {r['coverage']:.0%} of the input distribution")
    notes = [f"{m}: its surrogate does not predict '{r['predicted_class']}' at the instance itself"
             for m, e in exps.items() if isinstance(e, dict) and e.get("faithful") is False]
    rows = [{"figure": f"{m} rule" if e.get("rule") else f"{m} (no rule)", "value": " AND ".join(e.get("rule") or []),
             "95 % CI": "", "chance": "", "model": f"coverage {e['coverage']:.1%}"}
            for m, e in exps.items() if isinstance(e, dict) and "coverage" in e]
    return Section("Explanation", verdict, INFO if not notes else WARNING, pd.DataFrame(rows, columns=FIGURE_COLUMNS),
                   notes=notes)


Reader = Callable[[Mapping[str, Any], Mapping[str, Path], str], Section | None]
# each stage's reader and the prefix its artifacts and result keys carry in the main job
_STAGES: list[tuple[str, Reader]] = [("anon_", _release), ("", _evaluation), ("explain_", _explanation),
                                     ("dp_", _private), ("audit_", _audit)]


def summarise(job: Mapping[str, Any], files: Mapping[str, Path]) -> list[Section]:
    """The headline sections of a finished job (``files``: its shown artifacts by name)."""
    result = job.get("result") or {}
    files = {k: v for k, v in files.items() if not k.startswith("private/")}
    pipeline = job.get("kind") == "pipeline"
    sections = [reader(result, files, prefix if pipeline else "") for prefix, reader in _STAGES]
    return [s for s in sections if s is not None]


def badge(sections: list[Section]) -> tuple[str, str]:
    """The job's outcome in two words, apart from its status: a job can succeed and refuse its release."""
    release = next((s for s in sections if s.title == "Release"), None)
    if release is None:
        return "", ""
    return ("release passed", PASS) if release.tone == PASS else ("release refused", REFUSED)
