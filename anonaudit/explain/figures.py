"""Figures in the style of the R-LIME paper (PNG bytes): explanations side by side (Figs. 6-7),
local accuracy LIME vs R-LIME (Fig. 8a), coverage Anchor vs R-LIME (Fig. 8b), and the estimated
vs true accuracy of R-LIME's surrogates (Table 2 as a scatter)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from anonaudit.explain.explanation import Explanation
from anonaudit.reporting.plots import to_png

_TITLES = {"lime": "LIME", "anchor": "Anchor", "rlime": "R-LIME"}


def _caption(e: Explanation) -> str:
    name = _TITLES.get(e.method, e.method)
    if e.method == "lime":
        return f"{name}\n(no scope)"
    tau = getattr(e, "tau", None)
    head = f"{name} (τ = {tau:.2f})" if tau else name
    rule = " AND ".join(e.rule) or "(whole input space)"
    valid = "" if getattr(e, "valid", True) else "\nno rule reached τ: best candidate shown"
    return (f"{head}\nIF {textwrap.fill(rule, 45)}\naccuracy {100 * e.accuracy:.1f} %, "
            f"coverage {100 * e.coverage:.2f} %{valid}")


def explanations(exps: Sequence[Explanation], title: str, top: int = 5) -> bytes:
    """One panel per explanation: the top weights as bars (green +, red −), the rule as caption."""
    fig, axes = plt.subplots(1, len(exps), figsize=(3.6 * len(exps), 3.6), squeeze=False)
    for ax, e in zip(axes[0], exps):
        w = e.top_weights(top)
        if w:
            names = list(w)[::-1]
            vals = np.array([w[n] for n in names])
            ax.barh(names, vals, color=np.where(vals >= 0, "tab:green", "tab:red"))
            ax.axvline(0, c="grey", lw=0.8)
            ax.tick_params(axis="y", labelsize=7)
        else:
            ax.axis("off")
        ax.set_title(_caption(e), fontsize=7, loc="left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def _boxes(ax: plt.Axes, groups: dict[str, pd.DataFrame], column: dict[str, str], taus: Sequence[float]) -> None:
    width = 0.8 / len(groups)
    for i, (label, frame) in enumerate(groups.items()):
        data = [frame.loc[frame["tau"] == t, column[label]].dropna().to_numpy() for t in taus]
        pos = np.arange(len(taus)) + (i - (len(groups) - 1) / 2) * width
        box = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True, showfliers=False)
        for patch in box["boxes"]:
            patch.set_facecolor(f"C{i}")
            patch.set_alpha(0.6)
        ax.plot([], [], color=f"C{i}", lw=6, alpha=0.6, label=label)
    ax.set_xticks(range(len(taus)), [f"{t:.2f}" for t in taus])
    ax.set_xlabel("τ")
    ax.legend(fontsize=8)


def _compare(frame: pd.DataFrame, columns: dict[str, str], ylabel: str, title: str, width: float) -> bytes:
    """Box plots per τ of one column per method (the paper's Fig. 8 layout)."""
    taus = sorted(frame["tau"].unique())
    fig, ax = plt.subplots(figsize=(width, 3.5))
    _boxes(ax, dict.fromkeys(columns, frame), columns, taus)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return to_png(fig)


def local_accuracy(local: pd.DataFrame, title: str) -> bytes:
    """Fig. 8a: local accuracy inside R-LIME's rectangles, LIME vs R-LIME, per τ."""
    return _compare(local, {"LIME": "lime_local_acc", "R-LIME": "rlime_true_acc"}, "local accuracy", title, 5.5)


def coverage(cov: pd.DataFrame, title: str) -> bytes:
    """Fig. 8b: coverage of the rules, Anchor vs R-LIME, per τ."""
    return _compare(cov, {"Anchor": "anchor_coverage", "R-LIME": "rlime_coverage"}, "coverage", title, 6.5)


def accuracy_deviation(local: pd.DataFrame, title: str) -> bytes:
    """§5.2: R-LIME's estimated accuracy against the accuracy measured on fresh samples."""
    v = local[local["rlime_valid"]]
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for i, (tau, g) in enumerate(v.groupby("tau")):
        ax.scatter(g["rlime_est_acc"], g["rlime_true_acc"], s=12, alpha=0.7, color=f"C{i}", label=f"τ = {tau:.2f}")
    lo = float(min(v["rlime_est_acc"].min(), v["rlime_true_acc"].min(), 1.0)) if len(v) else 0.5
    ax.plot([lo, 1], [lo, 1], ls="--", c="grey", lw=0.8)
    ax.set_xlabel("estimated accuracy")
    ax.set_ylabel("true accuracy (fresh samples)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return to_png(fig)
