"""Privacy–utility table of every anonymiser on real data: ``python benchmarks/anonymisation.py [--json out.json]``.

What runs is the platform's own code path (``anonaudit.anonymise.workflow``, as in
``anonaudit anonymise``): per dataset one frozen re-identification tCNN is trained on the real
training recordings and shared by all methods; each method is trained on those recordings,
releases the *whole* dataset (overlap-add of half-overlapping windows, pseudonyms), and the
release is published as the job publishes it (the least coarse publication that stops both
metadata-linkage attackers, measured on the metadata: whole recordings or activity runs,
``published_runs``; one pseudonym per person or per recording, ``pseudonyms``; lengths rounded up
to ``metadata_quantum_s``) and judged under every threat model, as the release check judges it:

* ``releasable`` and ``release_threat_model`` / ``release_attacker`` / ``release_level``: the verdict
  and what decided it. ``reid_max_recording`` / ``reid_max_window``: the largest re-identification
  (accuracy or balanced accuracy) over every threat model — frozen, linkage (retrained on the
  release), informed (retrained on the published method's own output), metadata linkage — and
  attacker at that level; ``reid_by_threat`` per threat model. ``memorisation_ratio``: released
  windows' median distance to the nearest training window over held-out windows' (limit ≥ 0.95);
  ``membership_tpr``: the share of training windows a membership-inference attack (distance to the
  closest released window) finds at a 5 % false positive rate (chance 0.05, limit 0.10).
* ``seam_score_released`` / ``..._real``: how much the release's window grid shows (the largest over the
  smallest mean squared sample step by position modulo the half-window hop; about 1 without seams).
* ``har_wf1_tstr``: HAR trained on released windows, scored on real windows of unseen subjects;
  ``har_min_recall_ratio_released`` / ``..._tstr``: the worst activity's recall as a share of its
  real recall (real-trained on released; released-trained on real).
* ``epsilon`` / ``delta``: what a method fitted with subject-level differential privacy spent (``dp_synth``:
  the RDP accountant's ε for the noise it used; the knob is its target); empty for the others.
* ``frontier``: one point per swept knob value (``method@value``: noise σ, donor k, dp_synth ε; ``synth`` has no knob).

* ``har_wf1_real`` / ``har_wf1_released``: HAR (``--har-model``) trained on real windows of training
  subjects, scored on unseen subjects' real and released windows (the papers' frozen protocol).
* ``reid_frozen_acc``: the frozen tCNN on released windows of held-out recordings.
* ``reid_retrained_window_acc`` / ``..._recording_acc``: the strongest of the attackers
  (``--attackers``) retrained on released windows of the training recordings and scored on released
  windows of held-out recordings; recording level averages the probabilities of all windows.
* ``chance``: 1 / number of subjects. ``dfi_transfer_frozen`` / ``..._retrained``: share of held-out
  released windows assigned to their (random) target subject by the frozen tCNN and by an
  independently trained logistic-regression ReID.
* ``throughput_windows_per_s``: windows anonymised per second while releasing the whole dataset.
  With ``--throughput`` the script instead times only the releases, on otherwise idle cores: the
  cost of inference depends on the architecture (window length, channels, subjects), not on the
  weights, so each method is fitted for one epoch on 16 training windows per subject, the whole
  dataset is released, and the figures replace those of the same rows in an existing ``--json``.

Splits (every subject on both sides, no window shared or overlapping across sides): HAPT — each
subject's first session trains, the others test; SisFall ADLs (resampled to 25 Hz, 4 s windows
without overlap: every method's judge retrains a tCNN attacker, which at 50 Hz with half-overlapping
windows cost ~15 min per method on 2 cores) — the last trial of each (subject, activity) tests;
UTD-MHAD skeletons (30 Hz, 60 channels) — trials 1–2 train, 3 validates, 4 tests. The goals of the
issue, one ``goal_*`` column each and ``goal`` for all: re-identification ≤ 2 × chance under every
threat model at recording level, ``har_wf1_released`` and ``har_wf1_tstr`` ≥ 0.85 × ``har_wf1_real``,
no class recall below half its real value, gender balanced accuracy in [0.45, 0.55], memorisation
ratio ≥ 0.95 and membership inference within twice chance (throughput: ``--throughput``).
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

from anonaudit.anonymise import workflow
from anonaudit.anonymise.config import KNOBS, AnonymiserConfig
from anonaudit.anonymise.release import anonymise_dataset
from anonaudit.data.dataset import SensorDataset
from anonaudit.data.loaders import load_dataset
from anonaudit.data.resample import resample
from anonaudit.evaluate.protocols import EvalConfig
from anonaudit.jobs.kinds.anonymise import check_verdict
from anonaudit.jobs.kinds.evaluate import headline
from anonaudit.models.training import TrainConfig
from anonaudit.reporting import plots

REPO = Path(__file__).resolve().parents[1]
METHODS = ["none", "ae", "noise@0.25", "noise@0.5", "noise@1.0", "aae", "anon_ag", "anon_acg", "anon_dfi",
           "donor@2", "donor@4", "donor@8", "synth", "dp_synth@10", "dp_synth@100", "dp_synth@1000"]


def hapt(root: Path) -> tuple[SensorDataset, dict[str, str], tuple[float, float]]:
    ds = load_dataset(root / "hapt" / "HAPT_raw_50Hz_converted.csv.gz", "hapt")
    recs = ds.recordings.sort_values(["subject", "session"])
    first = recs.groupby("subject").cumcount() == 0
    return ds, dict(zip(recs["recording"], np.where(first, "train", "test"))), (2.56, 1.28)


def sisfall(root: Path) -> tuple[SensorDataset, dict[str, str], tuple[float, float]]:
    ds = resample(load_dataset(root / "sisfall", "sisfall", activities="adl"), 25.0)
    recs = ds.recordings
    last = recs.groupby(["subject", "activity"])["trial"].transform("max")
    test = (recs["trial"] == last) & (last > 1)
    return ds, dict(zip(recs["recording"], np.where(test, "test", "train"))), (4.0, 4.0)


def utd_skeleton(root: Path) -> tuple[SensorDataset, dict[str, str], tuple[float, float]]:
    ds = load_dataset(root / "utd_mhad", "utd_mhad", modality="skeleton")
    trial = ds.recordings["trial"].astype(int)
    split = np.select([trial <= 2, trial == 3], ["train", "val"], "test")
    return ds, dict(zip(ds.recordings["recording"], split)), (1.0, 0.5)


DATASETS = {"hapt": hapt, "sisfall": sisfall, "utd_skeleton": utd_skeleton}


def method_config(spec: str, args: argparse.Namespace) -> AnonymiserConfig:
    """``method`` or ``method@knob`` (the method's privacy knob, ``config.KNOBS``: noise σ, donor k, dp_synth ε)."""
    method, _, level = spec.partition("@")
    name = KNOBS[method][0]
    knob = {name: type(getattr(AnonymiserConfig(), name))(float(level))} if level and name else {}
    return AnonymiserConfig(method=method, ae_epochs=args.ae_epochs, epochs=args.gan_epochs, seed=args.seed, **knob)


def goal(row: dict) -> dict:
    """Which of the issue's targets the row meets (None where a figure was not measured)."""
    chance = row["chance"]

    def at_least(key: str, ref: str, share: float) -> bool | None:
        return None if row.get(key) is None or row.get(ref) is None else bool(row[key] >= share * row[ref])

    gender = row.get("gender_bacc")
    return {"goal_reid": bool(row["reid_max_recording"] <= 2 * chance),
            "goal_har_released": at_least("har_wf1_released", "har_wf1_real", 0.85),
            "goal_tstr": at_least("har_wf1_tstr", "har_wf1_real", 0.85),
            "goal_class_recall": None if row.get("har_min_recall_ratio_released") is None
            else bool(min(row["har_min_recall_ratio_released"], row.get("har_min_recall_ratio_tstr", 1.0)) >= 0.5),
            "goal_gender": None if gender is None else bool(0.45 <= gender <= 0.55),
            "goal_memorisation": bool(row["memorisation_ratio"] >= workflow.MIN_DISTANCE_RATIO
                                      and row["membership_tpr"] <= 2 * workflow.MEMBERSHIP_FPR)}


def write_json(path: Path | None, rows: list[dict], args: argparse.Namespace) -> None:
    """Written after every method, so an interrupted run keeps what it measured."""
    if path is None:
        return
    table = pd.DataFrame(rows)
    clean = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows]
    dfi = table.dropna(subset=["dfi_transfer_frozen"]) if "dfi_transfer_frozen" in table else table.iloc[:0]
    frontier = [{k: r.get(k) for k in ("dataset", "method", "knob", "knob_value", "epsilon", "reid_max_recording",
                                       "reid_max_window", "release_threat_model", "har_wf1_released", "har_wf1_tstr",
                                       "memorisation_ratio", "membership_tpr", "releasable", "chance")}
                for r in clean]
    payload = {"results": clean, "frontier": frontier,
               "dfi_transfer_frozen": float(dfi["dfi_transfer_frozen"].mean()) if len(dfi) else None,
               "dfi_transfer_retrained": float(dfi["dfi_transfer_retrained"].mean()) if len(dfi) else None,
               "throughput_windows_per_s": float(table["throughput_windows_per_s"].median()),
               "config": {k: str(v) for k, v in vars(args).items()}}
    path.write_text(json.dumps(payload, indent=2))


def run_dataset(name: str, args: argparse.Namespace, done: list[dict]) -> tuple[list[dict], list[pd.DataFrame]]:
    ds, assignment, (window_s, stride_s) = DATASETS[name](args.datasets_dir)
    log = lambda msg: print(f"  [{name}] {msg}", flush=True)  # noqa: E731
    attributes = tuple(a for a in ("gender",) if a in ds.subjects)
    cfg = EvalConfig(window_s=window_s, stride_s=stride_s, har_model=args.har_model, reid_model="tcnn",
                     attackers=tuple(args.attackers), biometric_model="logreg", attributes=attributes,
                     train=TrainConfig(epochs=args.reid_epochs, seed=args.seed), n_boot=args.n_boot, seed=args.seed)
    started = time.perf_counter()
    setup = workflow.prepare(ds, cfg, assignment=assignment, progress=lambda f, m="": None)
    log(f"frozen tCNN trained in {time.perf_counter() - started:.0f} s on {int((setup.split == 'train').sum())} windows")
    publication = workflow.plan_publication(ds, None, window_s / 2, seed=args.seed)  # from the metadata alone
    source, judged = workflow.source(ds, setup, cfg, publication.runs)
    log(f"published with {publication.describe()}")
    rows, tables = [], []
    for spec in args.methods:
        t0 = time.perf_counter()
        anonymiser = workflow.fit_anonymiser(ds, setup, method_config(spec, args))
        train_s = time.perf_counter() - t0
        release = anonymise_dataset(source, anonymiser, name=f"{name}-release", seed=args.seed)
        release = workflow.publish(release, publication, window_s / 2)
        result = workflow.judge(source, release, judged, cfg)
        informed, checks = workflow.threats(source, release.dataset, release.recording_linkage, judged.assignment,
                                            anonymiser, cfg, judged.windows, release.padding)
        result.scores.extend(informed)
        verdict = check_verdict(result, None, len(ds.subjects), checks)
        head = headline(result)
        method, _, level = spec.partition("@")
        row = {"dataset": name, "method": spec, "knob": KNOBS[method][0], "knob_value": float(level) if level else None,
               "epsilon": anonymiser.privacy_.epsilon if anonymiser.privacy_ else None,
               "delta": anonymiser.privacy_.delta if anonymiser.privacy_ else None,
               "releasable": verdict["releasable"], "release_threat_model": verdict["threat_model"],
               "release_attacker": verdict["attacker"], "release_level": verdict["level"],
               **{k: verdict[k] for k in ("reid_max_recording", "reid_max_window", "reid_by_threat",
                                          "memorisation_ratio", "membership_tpr")},
               "metadata_quantum_s": release.metadata_quantum_s, "published_runs": release.runs,
               "pseudonyms": release.pseudonyms,
               "har_min_recall_ratio_released": head.get("har_min_recall_ratio_released"),
               "har_min_recall_ratio_tstr": head.get("har_min_recall_ratio_tstr"),
               "har_wf1_real": head.get("har_wf1_real"),
               "har_wf1_released": head.get("har_wf1_released"), "har_wf1_tstr": head.get("har_wf1_tstr"),
               "reid_frozen_acc": head.get("reid_frozen_acc"),
               "reid_retrained_window_acc": head.get("reid_retrained_window_acc"),
               "reid_retrained_recording_acc": head.get("reid_retrained_recording_acc"),
               "chance": round(1 / len(ds.subjects), 4), "gender_bacc": head.get("gender_bacc"),
               "har_prediction_jsd": head.get("har_prediction_jsd"),
               "seam_score_real": head.get("seam_score_real"), "seam_score_released": head.get("seam_score_released"),
               "dfi_transfer_frozen": None, "dfi_transfer_retrained": None,
               "throughput_windows_per_s": round(release.windows_per_s, 1), "train_s": round(train_s, 1),
               "windows_released": release.windows}
        if anonymiser.config.method == "anon_dfi":
            per_target = workflow.dfi_transfer(source, release, judged, cfg).assign(dataset=name)
            tables.append(per_target)
            overall = per_target[per_target["target"] == "all"].iloc[0]
            row["dfi_transfer_frozen"] = round(float(overall["transfer_frozen"]), 4)
            row["dfi_transfer_retrained"] = round(float(overall["transfer_independent"]), 4)
        row.update(goal(row))
        row["goal"] = all(row[k] is not False for k in row if k.startswith("goal_"))
        rows.append(row)
        write_json(args.json, done + rows, args)
        log(f"{spec:12s} HAR {row['har_wf1_released']:.3f}/{row['har_wf1_real']:.3f} TSTR {row['har_wf1_tstr']:.3f}  "
            f"ReID max over threat models {row['reid_max_window']:.3f}/{row['reid_max_recording']:.3f} "
            f"(chance {row['chance']:.3f}; {verdict['threat_model']} {verdict['attacker']})  memorisation "
            f"{row['memorisation_ratio']:.2f}  membership {row['membership_tpr']:.3f}  {'RELEASABLE' if row['releasable'] else 'refused'}  train {train_s:.0f} s  "
            f"{row['throughput_windows_per_s']:.0f} windows/s  [{time.perf_counter() - t0:.0f} s]"
            + (f"  DFI transfer {row['dfi_transfer_frozen']:.3f} frozen / {row['dfi_transfer_retrained']:.3f} independent"
               if row["dfi_transfer_frozen"] is not None else ""))
    return rows, tables


def throughput(name: str, args: argparse.Namespace) -> list[dict]:
    """Release throughput per method with briefly fitted anonymisers (see the module docstring)."""
    ds, assignment, (window_s, stride_s) = DATASETS[name](args.datasets_dir)
    cfg = EvalConfig(window_s=window_s, stride_s=stride_s, train=TrainConfig(epochs=1, seed=args.seed), seed=args.seed)
    setup = workflow.prepare(ds, cfg, assignment=assignment, train_reid=False)
    rng = np.random.default_rng(args.seed)
    train = pd.Series(np.flatnonzero(setup.split == "train"))
    keep = train.groupby(setup.windows.subject[train.to_numpy()]).sample(n=16, replace=True, random_state=rng)
    setup.split = np.full(len(setup.split), "unused", dtype=object)
    setup.split[keep.to_numpy()] = "train"
    workflow.train_frozen(ds, setup, cfg)
    rows = []
    for spec in args.methods:
        anonymiser = workflow.fit_anonymiser(ds, setup, replace(method_config(spec, args), ae_epochs=1, epochs=1))
        release = anonymise_dataset(ds, anonymiser, name=f"{name}-release", seed=args.seed)
        rows.append({"dataset": name, "method": spec, "throughput_windows_per_s": round(release.windows_per_s, 1),
                     "windows_released": release.windows, "release_s": round(release.seconds, 2)})
        print(f"  [{name}] {spec:12s} {release.windows} windows in {release.seconds:.2f} s: "
              f"{release.windows_per_s:,.0f} windows/s (load average {os.getloadavg()[0]:.2f})", flush=True)
    return rows


def merge_throughput(path: Path | None, rows: list[dict], args: argparse.Namespace) -> None:
    """Replace the throughput of matching rows in an earlier run's JSON (or start one)."""
    if path is None:
        return
    payload = json.loads(path.read_text()) if path.exists() else {"results": []}
    measured = {(r["dataset"], r["method"]): r["throughput_windows_per_s"] for r in rows}
    for r in payload["results"]:
        if (r["dataset"], r["method"]) in measured:
            r["throughput_windows_per_s"] = measured.pop((r["dataset"], r["method"]))
            r["throughput_measured"] = "separate pass on idle cores (--throughput)"
    payload["results"] += [r for r in rows if (r["dataset"], r["method"]) in measured]
    payload["throughput_windows_per_s"] = float(np.median([r["throughput_windows_per_s"] for r in payload["results"]]))
    payload["throughput_config"] = {k: str(v) for k, v in vars(args).items()}
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")


def frontier_plot(table: pd.DataFrame, path: Path) -> None:
    for name, part in table.groupby("dataset"):
        points = part.set_index("method")[["reid_max_recording", "har_wf1_released"]]
        points.columns = ["re-identification (max over threat models, recording)", "HAR weighted F1 (released)"]
        png = plots.privacy_utility(points, float(part["chance"].iloc[0]), 0.0, *points.columns,
                                    f"{name}: privacy vs utility (goal: x ≤ 2·chance, y ≥ 0.85·real)")
        out = path.with_name(f"{path.stem}_{name}{path.suffix}")
        out.write_bytes(png)
        print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--har-model", default="logreg")
    parser.add_argument("--attackers", nargs="+", default=["knn", "logreg_act", "lda"])
    parser.add_argument("--reid-epochs", type=int, default=6)
    parser.add_argument("--ae-epochs", type=int, default=10)
    parser.add_argument("--gan-epochs", type=int, default=4)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=Path("anonymisation_frontier.png"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--throughput", action="store_true",
                        help="only time the releases on idle cores (briefly fitted models); merge into --json")
    args = parser.parse_args()
    if args.throughput:
        merge_throughput(args.json, [r for name in args.datasets for r in throughput(name, args)], args)
        return
    rows, tables = [], []
    for name in args.datasets:
        r, t = run_dataset(name, args, rows)
        rows += r
        tables += t
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(f"\nAnonymisation benchmark on {platform.node()} ({os.cpu_count()} CPUs), seed {args.seed}")
        shown = ["dataset", "method", "releasable", "release_threat_model", "reid_max_window", "reid_max_recording",
                 "chance", "har_wf1_real", "har_wf1_released", "har_wf1_tstr", "har_min_recall_ratio_released",
                 "har_min_recall_ratio_tstr", "gender_bacc", "memorisation_ratio", "membership_tpr", "throughput_windows_per_s",
                 "train_s", "goal"]
        print(table[[c for c in shown if c in table]].to_string(index=False))
        print("\nRe-identification by threat model (max over attackers and levels):")
        print(pd.concat([table[["dataset", "method"]], pd.DataFrame(list(table["reid_by_threat"]))], axis=1)
              .to_string(index=False))
        if tables:
            print("\nDFI transfer per target subject (held-out recordings):")
            print(pd.concat(tables).to_string(index=False))
    frontier_plot(table, args.plot)
    if args.json:
        write_json(args.json, rows, args)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
