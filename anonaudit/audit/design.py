"""Heterogeneity-measure (HM) design of the representation-bias audit (Nair, Schmid et al., ICPR 2024 §3.2, §3.4).

Every subject falls into one *cell*: its combination of characteristic levels (e.g. young woman).
A training set of fixed size drawn from ``h`` distinct cells belongs to heterogeneity group ``h``
(1 = homogeneous … number of cells = fully heterogeneous). Group 2 is split as in the paper: ``2a``
when the two cells differ in one characteristic, ``2b`` when they differ in two (``2c`` … with more
characteristics). Groups whose cells hold too few subjects are reported as infeasible, never dropped
silently. All draws come from one seeded generator, so a design is reproducible from its seed.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from anonaudit.errors import DataError, ParameterError

SEP = " · "  # joins the levels of a cell: "young · F"


@dataclass(frozen=True)
class Draw:
    """One training set: its group, draw number and (sorted) training subjects."""

    group: str  # "1", "2a", "2b", "3", …
    rank: int  # number of distinct cells (the ordered heterogeneity measure)
    draw: int
    subjects: tuple[str, ...]
    cells: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"g{self.group}_d{self.draw}"


@dataclass
class Design:
    """Subjects' cells, the drawn training sets, and the groups that could not be formed."""

    characteristics: list[str]
    levels: dict[str, list[str]]  # characteristic → its levels, in order
    subjects: pd.DataFrame  # subject, one column per characteristic (level), cell
    cells: pd.DataFrame  # cell, one column per characteristic, n_subjects (every combination, also empty ones)
    draws: list[Draw]
    infeasible: list[dict[str, str]] = field(default_factory=list)
    n_train: int = 8

    def groups(self) -> list[str]:
        return sorted({d.group for d in self.draws}, key=group_order)


def group_order(group: str) -> tuple[int, str]:
    """Sort key: 1 < 2a < 2b < 3 …"""
    digits = "".join(c for c in group if c.isdigit())
    return int(digits), group[len(digits):]


def level_table(subjects: pd.DataFrame, characteristics: Sequence[str],
                cuts: Mapping[str, float] | None = None) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Each subject's level per characteristic; numeric characteristics are binarised.

    Numeric columns are cut at ``cuts[name]`` or at the median (``< cut`` / ``≥ cut``), as the paper
    does for height and weight; text columns (gender, SisFall's young/elderly) keep their values.
    """
    cuts = dict(cuts or {})
    if not characteristics:
        raise ParameterError("characteristics", "name at least one subject attribute")
    if len(set(characteristics)) != len(characteristics):
        raise ParameterError("characteristics", f"listed twice: {list(characteristics)}")
    unknown_cuts = sorted(set(cuts) - set(characteristics))
    if unknown_cuts:
        raise ParameterError("cuts", f"cut points for {unknown_cuts}, which are not among the characteristics {list(characteristics)}")
    available = [c for c in subjects.columns if c != "subject"]
    out = pd.DataFrame({"subject": subjects["subject"].astype(str)})
    levels: dict[str, list[str]] = {}
    for name in characteristics:
        if name not in subjects:
            raise ParameterError("characteristics", f"subjects have no attribute {name!r}; available: {available}")
        col = subjects[name]
        missing = out["subject"][col.isna().to_numpy()].tolist()
        if missing:
            raise DataError(f"attribute {name!r} is missing for subjects {missing}", column=name)
        if ptypes.is_numeric_dtype(col) and not ptypes.is_bool_dtype(col):
            cut = float(cuts.get(name, col.median()))
            low, high = f"{name}<{cut:g}", f"{name}≥{cut:g}"
            out[name] = np.where(col.to_numpy(float) < cut, low, high)
            levels[name] = [low, high]
        else:
            if name in cuts:
                raise ParameterError("cuts", f"{name!r} is not numeric; its levels are its values {sorted(col.astype(str).unique())}")
            out[name] = col.astype(str).to_numpy()
            levels[name] = sorted(out[name].unique())
        present = sorted(out[name].unique())
        if len(present) < 2:
            raise DataError(f"characteristic {name!r} has a single level {present} among the subjects; "
                            "it cannot make training sets more or less heterogeneous", column=name)
    out["cell"] = out[list(characteristics)].agg(SEP.join, axis=1)
    return out, levels


def _subgroup(cells: Sequence[tuple[str, ...]]) -> str:
    """'a' when two cells differ in one characteristic, 'b' in two, …"""
    differing = sum(len(set(values)) > 1 for values in zip(*cells))
    return string.ascii_lowercase[differing - 1]


def _allocation(n_train: int, h: int) -> list[int]:
    """Subjects per cell: as equal as possible (the paper keeps training-set sizes equal)."""
    base, extra = divmod(n_train, h)
    return [base + 1] * extra + [base] * (h - extra)


def _combinations(level_lists: list[list[str]], h: int) -> dict[str, list[tuple[tuple[str, ...], ...]]]:
    """All sets of ``h`` distinct cells, keyed by group label (2 is split into 2a, 2b …)."""
    all_cells = list(itertools.product(*level_lists))
    out: dict[str, list[tuple[tuple[str, ...], ...]]] = {}
    for combo in itertools.combinations(all_cells, h):
        label = f"{h}{_subgroup(combo)}" if h == 2 and len(level_lists) > 1 else str(h)
        out.setdefault(label, []).append(combo)
    return out


def build_design(subjects: pd.DataFrame, characteristics: Sequence[str], *, cuts: Mapping[str, float] | None = None,
                 n_train: int = 8, n_draws: int = 5, seed: int = 0, max_tries: int = 200) -> Design:
    """Draw ``n_draws`` distinct training sets of ``n_train`` subjects for every feasible group.

    A cell combination is feasible when each cell holds the subjects the allocation asks of it and
    at least one subject is left for testing. When fewer distinct sets exist than asked for, the
    group keeps all it has and says so in ``infeasible``.
    """
    if n_train < 1 or n_draws < 1:
        raise ParameterError("train_subjects" if n_train < 1 else "draws", "must be at least 1")
    table, levels = level_table(subjects, characteristics, cuts)
    if n_train >= len(table):
        raise ParameterError("train_subjects", f"{n_train} training subjects leave none of the {len(table)} subjects for testing")
    members = {cell: sorted(g["subject"]) for cell, g in table.groupby("cell")}
    level_lists = [levels[c] for c in characteristics]
    cell_rows = [dict(zip(characteristics, combo), cell=SEP.join(combo), n_subjects=len(members.get(SEP.join(combo), [])))
                 for combo in itertools.product(*level_lists)]
    cells = pd.DataFrame(cell_rows)[["cell", *characteristics, "n_subjects"]]
    rng = np.random.default_rng(seed)
    draws: list[Draw] = []
    infeasible: list[dict[str, str]] = []
    for h in range(1, min(len(cells), n_train) + 1):
        need = _allocation(n_train, h)
        for label, combos in _combinations(level_lists, h).items():
            feasible = []
            for combo in combos:
                names = [SEP.join(c) for c in combo]
                sizes = sorted((len(members.get(n, [])) for n in names), reverse=True)
                if all(s >= k for s, k in zip(sizes, need)):
                    feasible.append(names)
            if not feasible:
                involved = sorted({SEP.join(c) for c in itertools.chain(*combos)})
                sizes = ", ".join(f"{n}: {len(members.get(n, []))}" for n in involved)
                infeasible.append({"group": label, "reason": f"no {h} cells hold {need} subjects each "
                                                              f"(subjects per cell: {sizes})"})
                continue
            seen: set[tuple[str, ...]] = set()
            for _ in range(max_tries * n_draws):
                if len(seen) == n_draws:
                    break
                names = feasible[len(seen) % len(feasible)] if len(seen) < len(feasible) else feasible[rng.integers(len(feasible))]
                order = sorted(names, key=lambda n: (-len(members[n]), rng.random()))  # largest cells take the extra subject
                chosen = tuple(sorted(itertools.chain.from_iterable(
                    rng.choice(members[n], size=k, replace=False) for n, k in zip(order, need))))
                if chosen in seen:
                    continue
                seen.add(chosen)
                draws.append(Draw(label, h, len(seen) - 1, tuple(str(s) for s in chosen), tuple(sorted(names))))
            if len(seen) < n_draws:
                infeasible.append({"group": label, "reason": f"only {len(seen)} distinct training sets exist; "
                                                              f"{n_draws} draws were asked for"})
    for h in range(n_train + 1, len(cells) + 1):  # more cells than training subjects: one subject per cell is too few
        for label in _combinations(level_lists, h):
            infeasible.append({"group": label, "reason": f"spans {h} cells but training sets have {n_train} subjects"})
    if len({d.rank for d in draws}) < 2:
        formed = sorted({d.group for d in draws}, key=group_order)
        raise DataError(f"with {n_train} training subjects only groups {formed} can be formed; comparing heterogeneity "
                        "needs two levels of it. " + "; ".join(f"group {i['group']}: {i['reason']}" for i in infeasible))
    return Design(list(characteristics), levels, table, cells, draws, infeasible, n_train)


def draws_table(design: Design) -> pd.DataFrame:
    """One row per training set (what the report's design table shows)."""
    return pd.DataFrame([{"key": d.key, "group": d.group, "rank": d.rank, "draw": d.draw,
                          "cells": " | ".join(d.cells), "train_subjects": " ".join(d.subjects)} for d in design.draws])
