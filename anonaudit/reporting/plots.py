"""Matplotlib figures as PNG bytes (headless), so reports can embed them and the app show them."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from anonaudit.data.dataset import SensorDataset  # noqa: E402


def to_png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def recording_signals(ds: SensorDataset, recording: int = 0, max_groups: int = 6) -> bytes:
    """One recording, one panel per channel group (or per channel when there are no groups)."""
    sl = ds.recording_slices()[recording]
    t = np.arange(sl.stop - sl.start) / ds.sampling_rate
    groups = list(ds.channel_groups.items())[:max_groups] or [(c, [c]) for c in ds.channels[:max_groups]]
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 1.6 * len(groups) + 0.6), sharex=True, squeeze=False)
    for ax, (name, members) in zip(axes[:, 0], groups):
        for ch in members:
            ax.plot(t, ds.signals[sl, ds.channels.index(ch)], lw=0.8, label=ch)
        unit = ds.units.get(members[0], "")
        ax.set_ylabel(f"{name}\n[{unit}]" if unit else name, fontsize=8)
        ax.legend(fontsize=6, loc="upper right", ncol=min(len(members), 4))
    axes[-1, 0].set_xlabel("time [s]")
    rec = ds.recordings.iloc[recording]
    fig.suptitle(f"recording {rec['recording']} (subject {rec['subject']})", fontsize=10)
    return to_png(fig)


def grouped_bars(table: pd.DataFrame, title: str, ylabel: str) -> bytes:
    """Bars for a (category × series) table, e.g. windows per activity and split."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(table) + 2), 3.2))
    table.plot.bar(ax=ax, width=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.legend(fontsize=8)
    return to_png(fig)


def histogram(values: Mapping[str, Sequence[float]], title: str, xlabel: str) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, v in values.items():
        ax.hist(np.asarray(v, dtype=float), bins=15, alpha=0.6, label=name)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    return to_png(fig)


def confusion_matrix(cm: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    """Row-normalised confusion matrix (recall on the diagonal), counts in the cells."""
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    if len(labels) <= 20:
        for i, j in np.ndindex(cm.shape):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    return to_png(fig)


def per_class_bars(precision: np.ndarray, recall: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    """Precision and recall per class: a class collapsing to 0 is visible at a glance."""
    return grouped_bars(pd.DataFrame({"precision": precision, "recall": recall}, index=list(labels)), title, "score")


def privacy_utility(points: pd.DataFrame, chance_x: float, chance_y: float, x: str, y: str, title: str) -> bytes:
    """Scatter of (re-identification, utility) per method/attacker with chance lines."""
    fig, ax = plt.subplots(figsize=(8, 4))
    markers = "osD^vP*X"
    for i, (label, row) in enumerate(points.iterrows()):
        ax.scatter(row[x], row[y], s=45, marker=markers[i % len(markers)], label=str(label), alpha=0.8)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    ax.axvline(chance_x, ls="--", c="grey", lw=0.8)
    ax.axhline(chance_y, ls=":", c="grey", lw=0.8)
    ax.text(chance_x, 0.02, " re-id chance", fontsize=7, color="grey")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title, fontsize=10)
    return to_png(fig)


THREATS = ("frozen", "linkage", "informed", "metadata")  # the re-identification threat models, in plot order


def frontier(table: pd.DataFrame, chance: float, min_distance_ratio: float, membership_fpr: float) -> bytes:
    """One panel per threat model: each swept point's re-identification (recording level, strongest attacker)
    against its utility (HAR trained on the release, on real unseen subjects), passing points filled, the raw
    data as a star, uniform chance and the release limit (2× chance) as lines; the last panels put the
    memorisation ratio and the membership attack's hit rate beside their limits, each of which refuses a
    release on its own."""
    panels = [t for t in THREATS if f"release_reid_{t}" in table and table[f"release_reid_{t}"].notna().any()]
    memorised = "release_memorisation_ratio" in table and table["release_memorisation_ratio"].notna().any()
    members = "release_membership_tpr" in table and table["release_membership_tpr"].notna().any()
    n = len(panels) + memorised + members
    fig, axes = plt.subplots(1, max(1, n), figsize=(3.0 * max(1, n), 3.4), sharey=True, squeeze=False)
    labels = [f"{m}" + (f" {k}={v:g}" if isinstance(k, str) and pd.notna(v) else "")
              for m, k, v in zip(table["method"], table["knob"], table["value"])]
    passed = (table["releasable"] == True).to_numpy()  # noqa: E712 - None (not judged) is not a pass
    raw = table["reid_real_recording_acc"].dropna() if "reid_real_recording_acc" in table else pd.Series([])
    reach = [2 * chance if not math.isnan(chance) else 0.0, *raw]
    reach += [table[f"release_reid_{t}"].max() for t in panels]
    right = min(1.02, max(0.25, 1.3 * max(v for v in reach if pd.notna(v))))

    def points(ax: plt.Axes, x: pd.Series) -> None:
        for i, label in enumerate(labels):
            ax.scatter(x.iat[i], table["har_wf1_tstr"].iat[i], s=50, marker="osD^vP*X"[i % 8],
                       facecolors=f"C{i}" if passed[i] else "none", edgecolors=f"C{i}", label=label)

    for ax, threat in zip(axes[0], panels):
        points(ax, table[f"release_reid_{threat}"])
        if len(raw) and table["har_wf1_real"].notna().any():
            ax.scatter(raw.iat[0], table["har_wf1_real"].dropna().iat[0], marker="*", s=120, c="black",
                       label="raw data (frozen network)")
        if not math.isnan(chance):
            ax.axvline(chance, ls="--", c="grey", lw=0.8)
            ax.text(chance, 0.10, " chance", fontsize=7, color="grey")
            ax.axvline(2 * chance, ls="-", c="red", lw=0.8)
            ax.text(2 * chance, 0.03, " limit", fontsize=7, color="red")
        ax.set_xlim(0, right)
        ax.set_title(f"{threat} threat model", fontsize=9)
        ax.set_xlabel("re-identification (recordings)", fontsize=8)
    if memorised:
        ax = axes[0][len(panels)]
        ratio = table["release_memorisation_ratio"]
        points(ax, ratio)
        ax.axvline(min_distance_ratio, ls="-", c="red", lw=0.8)
        ax.text(min_distance_ratio, 0.03, " limit (≥)", fontsize=7, color="red")
        ax.set_xlim(min(0.5, float(ratio.min()) - 0.05), max(1.5, float(ratio.max()) + 0.05))
        ax.set_title("memorisation", fontsize=9)
        ax.set_xlabel("distance to training ÷ held-out's", fontsize=8)
    if members:
        ax = axes[0][len(panels) + memorised]
        hits = table["release_membership_tpr"]
        points(ax, hits)
        ax.axvline(membership_fpr, ls="--", c="grey", lw=0.8)
        ax.text(membership_fpr, 0.10, " chance", fontsize=7, color="grey")
        ax.axvline(2 * membership_fpr, ls="-", c="red", lw=0.8)
        ax.text(2 * membership_fpr, 0.03, " limit", fontsize=7, color="red")
        ax.set_xlim(0, max(0.25, 1.2 * float(hits.max())))
        ax.set_title("membership inference", fontsize=9)
        ax.set_xlabel(f"members found at {membership_fpr:.0%} false positives", fontsize=8)
    axes[0][0].set_ylim(0, 1.02)
    axes[0][0].set_ylabel("HAR F1, trained on release (TSTR)", fontsize=8)
    handles, names = axes[0][0].get_legend_handles_labels()  # the first panel has the raw-data star too
    axes[0][-1].legend(handles, names, fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("Privacy–utility frontier (filled: passed every check; dashed: chance; red: the limit)", fontsize=9)
    return to_png(fig)
