"""The release verdict: the maximum over every threat model and attacker, against uniform chance.

Re-identification is judged against uniform chance, 1/N subjects, never against the majority
subject's share: on a dataset where one subject holds a quarter of the recordings, a limit of
twice the majority share lets an attacker at 3× uniform chance pass. Each attack counts with the
larger of its accuracy and its balanced accuracy (a skewed test set cannot hide a strong attacker
behind either), at window and at recording level, and the verdict names the threat model,
attacker and level that decided it. Other checks (metadata linkage, memorisation, membership
inference) are added as :class:`Check` rows and can refuse a release on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from anonaudit.errors import DataError, ParameterError

THREAT_BY_TRAIN_DATA = {"real": "frozen", "released (retrained)": "linkage", "informed": "informed"}
NOT_REIDENTIFICATION = ("memorisation", "membership")  # checks whose figure is not a re-identification rate


def threat_model(train_data: str) -> str:
    """The threat model a privacy row of the evaluation table belongs to."""
    return THREAT_BY_TRAIN_DATA.get(train_data, train_data)


def normalised_risk(value: float, chance: float) -> float:
    """Anonymeter's (attack − baseline) / (1 − baseline): 0 at chance, 1 for a perfect attacker."""
    return (value - chance) / (1.0 - chance) if chance < 1 else 0.0


@dataclass(frozen=True)
class Check:
    """One attack (or one other test) on the release, with its figure against the limit."""

    threat: str  # frozen | linkage | informed | metadata | memorisation | membership
    attacker: str
    level: str  # window | recording | —
    metric: str
    value: float
    ci_low: float
    ci_high: float
    chance: float
    limit: float
    passes: bool

    @property
    def risk(self) -> float:
        return normalised_risk(self.value, self.chance)

    def describe(self) -> str:
        if self.threat == "memorisation":
            return (f"memorisation: released windows lie {self.value:.2f}× as far from the training windows as "
                    f"held-out real windows do (95 % CI {self.ci_low:.2f}–{self.ci_high:.2f}; the limit is "
                    f"≥ {self.limit:.2f})")
        if self.threat == "membership":
            return (f"membership inference on the generator: {self.attacker} calls {self.value:.1%} of its training "
                    f"windows members (95 % CI {self.ci_low:.1%}–{self.ci_high:.1%}) at a {self.chance:.0%} false "
                    f"positive rate, which is chance; the limit is {self.limit:.0%}")
        return (f"{self.threat} threat model, {self.attacker} at {self.level} level: {self.metric.replace('_', ' ')} "
                f"{self.value:.1%} (95 % CI {self.ci_low:.1%}–{self.ci_high:.1%}; uniform chance {self.chance:.1%}, "
                f"risk {self.risk:+.2f}); the limit is {self.limit:.1%}")


@dataclass
class Verdict:
    releasable: bool
    decided_by: Check
    checks: list[Check] = field(default_factory=list)

    @property
    def reason(self) -> str:
        head = "releasable: the strongest attack stays within the limit — " if self.releasable else "NOT releasable: "
        return head + self.decided_by.describe()

    def strongest(self, level: str | None = None, threat: str | None = None) -> float:
        """The largest re-identification over every threat model and attacker (optionally one level or threat
        model): the release's privacy figure. NaN where nothing of the kind was measured."""
        values = [c.value for c in self.checks if c.threat not in NOT_REIDENTIFICATION
                  and level in (None, c.level) and threat in (None, c.threat)]
        return max(values) if values else float("nan")

    def to_dict(self) -> dict[str, Any]:
        best = self.decided_by
        threats = sorted({c.threat for c in self.checks if c.threat not in NOT_REIDENTIFICATION})
        memorised = [c.value for c in self.checks if c.threat == "memorisation"]
        members = [c.value for c in self.checks if c.threat == "membership"]
        return {"releasable": self.releasable, "reason": self.reason, "threat_model": best.threat,
                "attacker": best.attacker, "level": best.level, "metric": best.metric,
                "reid_value": round(best.value, 4), "chance": round(best.chance, 4), "threshold": round(best.limit, 4),
                "risk": round(best.risk, 4), "reid_max_recording": round(self.strongest("recording"), 4),
                "reid_max_window": round(self.strongest("window"), 4),
                "reid_by_threat": {t: round(self.strongest(threat=t), 4) for t in threats},
                "memorisation_ratio": round(memorised[0], 4) if memorised else None,
                "membership_tpr": round(members[0], 4) if members else None,
                "checks": [asdict(c) | {"risk": round(c.risk, 4)} for c in self.checks]}


def reidentification_checks(table: pd.DataFrame, n_subjects: int, threshold: float | None = None) -> list[Check]:
    """Every privacy attack on the release in an evaluation table, against ``threshold`` (default 2/N)."""
    if n_subjects < 2:
        raise DataError(f"re-identification needs at least 2 subjects, the dataset has {n_subjects}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ParameterError("threshold", f"is an accuracy and must lie in [0, 1], got {threshold}")
    chance = 1.0 / n_subjects
    limit = threshold if threshold is not None else min(1.0, 2 * chance)
    rows = table[(table["protocol"] == "privacy") & (table["test_data"] == "released")
                 & table["metric"].isin(["accuracy", "balanced_accuracy"])]
    checks = []
    for (train, model, level), group in rows.groupby(["train_data", "model", "level"], sort=True):
        best = group.loc[group["value"].idxmax()]
        checks.append(Check(threat_model(str(train)), str(model), str(level), str(best["metric"]),
                            float(best["value"]), float(best["ci_low"]), float(best["ci_high"]), chance, limit,
                            float(best["value"]) <= limit))
    return checks


def release_verdict(checks: Sequence[Check]) -> Verdict:
    """Refused if any check fails; decided by the failing (or, if none fails, the strongest) attack."""
    if not checks:
        raise DataError("no attack could be measured on this release, so nothing says it is safe to release")
    failing = [c for c in checks if not c.passes]
    reid = [c for c in checks if c.threat not in NOT_REIDENTIFICATION] or list(checks)
    decided = max(failing or reid, key=lambda c: (c.risk if c.threat != "memorisation" else 1.0 - c.value / c.limit))
    return Verdict(not failing, decided, list(checks))
