"""Figures of the DP-VAE jobs as PNG bytes: samples / reconstructions and privacy–utility curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from anonaudit.reporting.plots import plt, to_png


def examples(batch: np.ndarray, title: str, rows: int = 2) -> bytes:
    """Images as a grid, or sensor windows (channels first) as line plots."""
    n = len(batch)
    cols = -(-n // rows)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, x in zip(axes.flat, batch):
        if x.ndim == 3:
            ax.imshow(x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1) * 0.5 + 0.5, cmap="gray", vmin=-1, vmax=1)
        else:
            ax.plot(x.T, lw=0.6)
            ax.set_ylim(-1.05, 1.05)
    fig.suptitle(title, fontsize=9)
    return to_png(fig)


def reconstructions(pair: np.ndarray, title: str) -> bytes:
    """Originals (top row) above their reconstructions (bottom row)."""
    return examples(np.concatenate([pair[0], pair[1]]), title, rows=2)


def privacy_utility(table: pd.DataFrame, title: str) -> bytes:
    """Utility and membership-inference AUC against the accountant's ε; ε = ∞ (no DP) at the right."""
    metrics = [m for m in ("recon_mse", "fd_classifier", "mia_auc", "mia_calibrated_auc") if m in table]
    finite = table["epsilon"][np.isfinite(table["epsilon"])]
    inf_x = (finite.max() * 3 if len(finite) else 1.0)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for (dataset, model), g in table.groupby(["dataset", "model"]):
            x = np.where(np.isfinite(g["epsilon"]), g["epsilon"], inf_x)
            order = np.argsort(x)
            ax.plot(x[order], g[metric].to_numpy()[order], marker="o", label=f"{dataset} {model}")
        ax.set_xscale("log")
        ax.minorticks_off()
        ticks = sorted(set(np.round(finite, 2))) + [inf_x]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks[:-1]] + ["∞"], fontsize=7)
        ax.set_xlabel("ε (RDP accountant)")
        ax.set_title(metric, fontsize=9)
        if metric.startswith("mia"):
            ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10, y=1.04)
    return to_png(fig)


def epsilon_label(epsilon: float) -> str:
    return "∞" if not math.isfinite(epsilon) else f"{epsilon:.3g}"
