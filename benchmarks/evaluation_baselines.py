"""Real-data baselines of the evaluation harness: ``python benchmarks/evaluation_baselines.py [--json out.json]``.

What runs is the platform's own ``anonaudit.evaluate.protocols.evaluate`` (the code path of
``anonaudit evaluate``) on real data, no released version, with these splits:

* HAR: split by subject (60/20/20 % of subjects, seeded); scored on the unseen test subjects.
* Re-identification (every subject on both sides, no window shared or overlapping across sides):
  HAPT — each subject's first recording session trains, the other sessions test;
  SisFall ADLs (resampled 200 → 50 Hz) — split by trial: the last trial of every (subject,
  activity) with two or more trials tests, the others train (single-trial activities train only).
  Window level and recording level (probabilities averaged over all windows of a recording).
* Soft biometrics (SisFall gender): 3-fold cross-validation over subjects stratified by gender,
  balanced accuracy on unseen subjects.

Windows: HAPT 2.56 s with 1.28 s stride (the dataset's customary window); SisFall 4 s with 1 s stride
(the bias paper's code cuts 200 samples at 50 Hz: several ADLs — walking slowly vs quickly, sitting on a
low vs a high chair — differ over seconds, and 2.56 s windows cost 0.10 weighted F1). Windows whose majority is unlabelled (HAPT transitions) are
left out. Attackers: the frozen deep network (``--reid-model``) and the retrained ones
(``--attackers``); the ``*_reid_*`` figures in the JSON are those of the strongest attacker, which
is named beside them — taking the maximum over a fixed list of attackers is the defender's
worst case. Chance levels are printed beside every figure. ``epoch_s`` is the mean training time
per epoch of the deep models on this machine (all its cores; other load on it inflates it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from anonaudit.data.dataset import SensorDataset
from anonaudit.data.loaders import load_dataset
from anonaudit.data.resample import resample
from anonaudit.evaluate.protocols import EvalConfig, evaluate
from anonaudit.models.training import TrainConfig

REPO = Path(__file__).resolve().parents[1]


def hapt(root: Path) -> tuple[SensorDataset, dict[str, str]]:
    ds = load_dataset(root / "hapt" / "HAPT_raw_50Hz_converted.csv.gz", "hapt")
    recs = ds.recordings.sort_values(["subject", "session"])
    first = recs.groupby("subject").cumcount() == 0
    return ds, dict(zip(recs["recording"], np.where(first, "train", "test")))


def sisfall(root: Path) -> tuple[SensorDataset, dict[str, str]]:
    ds = resample(load_dataset(root / "sisfall", "sisfall", activities="adl"), 50.0)
    recs = ds.recordings
    last = recs.groupby(["subject", "activity"])["trial"].transform("max")
    test = (recs["trial"] == last) & (last > 1)
    return ds, dict(zip(recs["recording"], np.where(test, "test", "train")))


DATASETS = {"hapt": hapt, "sisfall": sisfall}
WINDOWS = {"hapt": (2.56, 1.28), "sisfall": (4.0, 1.0)}  # (window_s, stride_s)


def pick(table: pd.DataFrame, **where: str) -> pd.DataFrame:
    mask = np.ones(len(table), bool)
    for key, value in where.items():
        mask &= (table[key] == value).to_numpy()
    return table[mask]


def run(name: str, root: Path, cfg: EvalConfig) -> tuple[dict[str, float | str], pd.DataFrame]:
    started = time.perf_counter()
    ds, assignment = DATASETS[name](root)
    loaded = time.perf_counter()
    result = evaluate(ds, None, cfg, reid_assignment=assignment,
                      progress=lambda f, m="": print(f"  [{name}] {f:4.0%} {m}", flush=True))
    elapsed = time.perf_counter() - loaded
    t = result.table()
    har = pick(t, protocol="utility", level="window", metric="weighted_f1").iloc[0]
    reid = pick(t, protocol="privacy", metric="accuracy")
    win, rec = reid[reid["level"] == "window"], reid[reid["level"] == "recording"]
    best_w, best_r = win.loc[win["value"].idxmax()], rec.loc[rec["value"].idxmax()]
    figures: dict[str, float | str] = {
        f"{name}_har_wf1": round(float(har["value"]), 4),
        f"{name}_har_chance": round(float(har["chance"]), 4),
        f"{name}_reid_window_acc": round(float(best_w["value"]), 4),
        f"{name}_reid_window_attacker": best_w["model"],
        f"{name}_reid_recording_acc": round(float(best_r["value"]), 4),
        f"{name}_reid_recording_attacker": best_r["model"],
        f"{name}_reid_chance": round(float(best_w["chance"]), 4),
        f"{name}_load_s": round(loaded - started, 1),
        f"{name}_evaluate_s": round(elapsed, 1),
    }
    gender = pick(t, protocol="soft_biometrics", target="gender", metric="balanced_accuracy")
    if len(gender):
        figures[f"{name}_gender_bacc"] = round(float(gender["value"].iloc[0]), 4)
    for model, seconds in result.epoch_seconds.items():
        if seconds > 0:
            figures[f"{name}_epoch_s_{model}"] = round(seconds, 2)
    rows = t[t["metric"].isin(["accuracy", "weighted_f1", "macro_f1", "top5_accuracy", "balanced_accuracy"])]
    rows = rows.assign(dataset=name)[["dataset", "protocol", "model", "target", "level", "metric", "value",
                                      "ci_low", "ci_high", "chance"]]
    for note in result.notes:
        print(f"  [{name}] note: {note}")
    return figures, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--har-model", default="logreg")
    parser.add_argument("--reid-model", default="tcnn", help="the frozen network of the papers' protocol")
    parser.add_argument("--attackers", nargs="+", default=["knn", "logreg_act", "lda"])
    parser.add_argument("--biometric-model", default="logreg")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    cfg = EvalConfig(har_model=args.har_model, reid_model=args.reid_model, attackers=tuple(args.attackers),
                     biometric_model=args.biometric_model, train=TrainConfig(epochs=args.epochs, seed=args.seed),
                     n_boot=args.n_boot, seed=args.seed)
    figures: dict[str, float | str] = {}
    tables = []
    for name in args.datasets:
        attributes = ("gender",) if name == "sisfall" else ()  # HAPT has no demographics
        window_s, stride_s = WINDOWS[name]
        f, rows = run(name, args.datasets_dir, replace(cfg, attributes=attributes, window_s=window_s, stride_s=stride_s))
        figures.update(f)
        tables.append(rows)
    epochs = [v for k, v in figures.items() if "_epoch_s_" in k]
    figures["epoch_s"] = round(float(np.mean(epochs)), 2) if epochs else float("nan")
    table = pd.concat(tables, ignore_index=True)

    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.3f}".format):
        print(f"\nEvaluation baselines on {platform.node()} ({os.cpu_count()} CPUs), seed {args.seed}")
        print(table.to_string(index=False))
    print("\nHeadline figures (re-identification: strongest attacker):")
    for key, value in figures.items():
        print(f"  {key:38s} {value}")
    if args.json:
        args.json.write_text(json.dumps({**figures, "config": {k: str(v) for k, v in vars(args).items()}}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
