"""Subject-selection advice: which characteristic levels are missing or scarce, whom to recruit next.

A cell (combination of levels) can only enter homogeneous training sets when it holds all
``n_train`` training subjects plus at least one spare subject for testing; cells below that limit
narrow the audit, and cells with no subject at all leave a part of the population untested.
"""

from __future__ import annotations

import pandas as pd

from anonaudit.audit.design import Design


def selection_advice(design: Design) -> pd.DataFrame:
    """One row per cell: subjects, status (missing / scarce / ok) and how many to recruit, why."""
    need = design.n_train + 1  # a full homogeneous training set plus one tester of the same kind
    rows = []
    for row in design.cells.to_dict("records"):
        n = int(row["n_subjects"])
        status = "missing" if n == 0 else "scarce" if n < need else "ok"
        if status == "missing":
            why = "no subject has this combination: models are never trained or tested on it"
        elif status == "scarce":
            why = (f"fewer than {need} subjects: a homogeneous training set of this kind leaves no tester of the same kind"
                   + ("" if n >= design.n_train else ", or cannot be formed at all"))
        else:
            why = "enough subjects for every group of the design"
        rows.append({"cell": row["cell"], **{c: row[c] for c in design.characteristics}, "n_subjects": n,
                     "status": status, "recruit": max(0, need - n), "reason": why})
    return pd.DataFrame(rows).sort_values(["recruit", "cell"], ascending=[False, True]).reset_index(drop=True)


def advice_text(table: pd.DataFrame, characteristics: list[str], trend_supported: bool | None) -> list[str]:
    """The advice in plain words, most urgent first."""
    lines = []
    for row in table[table["recruit"] > 0].to_dict("records"):
        lines.append(f"Recruit {row['recruit']} more subject(s) who are {row['cell']} ({row['status']}: {row['reason']}).")
    for c in characteristics:
        counts = table.groupby(c)["n_subjects"].sum()
        if counts.min() < 0.5 * counts.max():
            lines.append(f"Level {counts.idxmin()!r} of {c!r} is under-represented ({int(counts.min())} vs "
                         f"{int(counts.max())} subjects for {counts.idxmax()!r}).")
    if trend_supported:
        lines.append("Heterogeneous training sets scored better here: when recruiting, cover all level combinations "
                     "evenly rather than adding more subjects of the commonest kind.")
    elif trend_supported is False:
        lines.append("The draws do not show that heterogeneity helps; still, cover every level combination so that "
                     "every kind of user is tested.")
    if not lines:
        lines.append("Every level combination has enough subjects for this design.")
    return lines
