"""Box plots of the audit, as in the paper: scores per group and network (Figs. 2–3), sub-groups
2a vs 2b (Fig. 4), and per-activity precision/recall by group (Fig. 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from anonaudit.audit.design import group_order
from anonaudit.reporting.plots import plt, to_png


def group_boxes(runs: pd.DataFrame, metric: str, groups: list[str] | None = None, title: str = "") -> bytes:
    """One box per group for every network side by side; points are the individual trainings."""
    groups = groups or sorted(runs["group"].unique(), key=group_order)
    networks = list(dict.fromkeys(runs["network"]))
    width = 0.8 / len(networks)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) * len(networks) + 2), 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, net in enumerate(networks):
        data = [runs.loc[(runs["network"] == net) & (runs["group"] == g), metric].to_numpy(float) for g in groups]
        pos = np.arange(len(groups)) + (j - (len(networks) - 1) / 2) * width
        keep = [i for i, d in enumerate(data) if len(d)]
        box = ax.boxplot([data[i] for i in keep], positions=pos[keep], widths=width * 0.85, patch_artist=True,
                         showfliers=False)
        for patch in box["boxes"]:
            patch.set(facecolor=colours[j % len(colours)], alpha=0.45)
        for i in keep:
            ax.scatter(np.full(len(data[i]), pos[i]), data[i], s=8, color=colours[j % len(colours)], zorder=3)
        ax.plot([], [], color=colours[j % len(colours)], lw=6, alpha=0.45, label=net)
    ax.set_xticks(np.arange(len(groups)), [f"HM {g}" for g in groups])
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title or f"{metric.replace('_', ' ')} per heterogeneity group", fontsize=10)
    ax.legend(fontsize=8)
    return to_png(fig)


def activity_by_group(per_activity: pd.DataFrame, activity: str) -> bytes:
    """Mean precision and recall of one activity per group and network (the paper's 'walking' analysis)."""
    rows = per_activity[per_activity["activity"] == activity]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, measure in zip(axes, ("precision", "recall")):
        table = rows.pivot_table(index="group", columns="network", values=measure, aggfunc="mean")
        table = table.loc[sorted(table.index, key=group_order)]
        table.plot(ax=ax, marker="o")
        ax.set_title(f"{activity}: mean {measure}", fontsize=10)
        ax.set_xlabel("heterogeneity group")
    return to_png(fig)
