"""R-LIME speed and quality beside the reference implementation and the paper's figures.

``python benchmarks/rlime.py --reference-python /work/rlime-ref-venv/bin/python --json out.json``

The reference venv: ``python -m venv rlime-ref-venv && rlime-ref-venv/bin/pip install rlime==0.1.1
river==0.23.0`` (river 0.26's narwhals-based scaler breaks rlime 0.1.1: "cannot unpack non-iterable int").

1. The paper's setup (§4.1): recidivism (``../shared/datasets`` relative to the repository, or
   ``--datasets-dir``), the paper's discretisation, 80/10/10 split, a 50-tree random forest on the
   training codes. ``--instances`` random test instances are explained by LIME, by Anchor and by
   R-LIME at every τ of §4.2/§4.3 (``anonaudit.explain.evaluation.run_paper_experiments``).
2. Time and black-box calls per R-LIME explanation at ``--tau`` (median and 90th percentile).
3. The reference (PyPI ``rlime==0.1.1``, installed in a separate venv and only ever run through
   ``--reference-python`` in a subprocess, one per instance, killed after ``--reference-timeout``
   seconds) on the first ``--reference-instances`` of the same instances at the same τ. It gets
   the same training codes and labels and trains its own 50-tree forest with the same settings
   (its scikit-learn cannot read ours), and the same Gaussian (fitted on the training codes).
   Both run BLAS single-threaded (see ``SINGLE_THREADED_BLAS``).
   Coverage of both rules is measured on the same 10,000 unconditional samples.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anonaudit.explain.evaluation import (  # noqa: E402
    ACCURACY_TAUS,
    COVERAGE_TAUS,
    Setup,
    prepare,
    rule_coverage,
    run_paper_experiments,
)
from anonaudit.explain.tabular import load_adult, load_recidivism  # noqa: E402

# Run by the reference venv's python: explain one instance with rlime 0.1.1, print one JSON line.
REFERENCE_SCRIPT = r"""
import json, sys, time
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from rlime.rlime import HyperParam, explain_instance
from rlime.rlime_types import Dataset

arrays = np.load(sys.argv[1])
meta = json.loads(open(sys.argv[2]).read())
train, labels, x = arrays["train"], arrays["labels"], arrays["instance"]
model = RandomForestClassifier(meta["n_trees"], random_state=meta["model_seed"], n_jobs=1).fit(train, labels)
calls = [0, 0]
def classifier(z):
    calls[0] += len(z); calls[1] += 1
    return model.predict(z)
names = {j: [str(v) for v in range(k)] for j, k in enumerate(meta["n_values"])}
m = len(meta["n_values"])
empty = np.empty(0)
dataset = Dataset(train, labels, empty, train, labels, empty, empty, empty, empty, empty, empty,
                  meta["names"], list(range(m)), names, [], "target", ["0", "1"])
hp = HyperParam()
hp.tau = meta["tau"]
start = time.perf_counter()
out = explain_instance(x, dataset, classifier, hp)
seconds = time.perf_counter() - start
res = {"seconds": seconds, "calls": calls[0], "batches": calls[1], "found": out is not None}
if out is not None:
    arm = out[1]
    res.update(rule=[int(f) for f in arm.rule], accuracy=arm.n_rewards / arm.n_samples, coverage=arm.coverage)
print(json.dumps(res))
"""


# Ours runs BLAS single-threaded inside explain(); the reference gets the same (it factorises a
# covariance on every draw, which a threaded BLAS on this shared 2-core machine slows down badly).
SINGLE_THREADED_BLAS = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_reference(python: str, setup: Setup, row: int, tau: float, timeout: float, n_trees: int,
                  model_seed: int) -> dict[str, Any]:
    """One reference explanation in a subprocess; ``{"timeout": True}`` when it takes too long."""
    codes = setup.codes
    with tempfile.TemporaryDirectory() as tmp:
        arrays, meta = Path(tmp) / "data.npz", Path(tmp) / "meta.json"
        labels = (setup.data.y[setup.train] == setup.model.classes_[1]).astype(int)
        np.savez(arrays, train=codes[setup.train].astype(float), labels=labels, instance=codes[row].astype(float))
        meta.write_text(json.dumps({"n_trees": n_trees, "model_seed": model_seed, "tau": tau,
                                    "n_values": setup.discretiser.n_values.tolist(),
                                    "names": setup.discretiser.names}))
        started = time.perf_counter()
        try:
            proc = subprocess.run([python, "-c", REFERENCE_SCRIPT, str(arrays), str(meta)], capture_output=True,
                                  text=True, timeout=timeout, env=SINGLE_THREADED_BLAS)
        except subprocess.TimeoutExpired:
            return {"timeout": True, "seconds": time.perf_counter() - started}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("recidivism", "adult"), default="recidivism")
    ap.add_argument("--datasets-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--instances", type=int, default=20, help="random test instances (paper: 100 and 704)")
    ap.add_argument("--tau", type=float, default=0.8, help="τ of the timing comparison")
    ap.add_argument("--n-trees", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--balance", action="store_true",
                    help="down-sample to balanced classes first, as the reference's data loader does by default")
    ap.add_argument("--reference-python", help="python of a venv with rlime==0.1.1 (omit to skip the reference)")
    ap.add_argument("--reference-instances", type=int, default=5)
    ap.add_argument("--reference-timeout", type=float, default=900.0, help="seconds per reference explanation")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    path = args.datasets_dir / ("recidivism/Data_1980.csv" if args.dataset == "recidivism" else "adult")
    data = load_recidivism(path) if args.dataset == "recidivism" else load_adult(path)
    setup = prepare(data, n_trees=args.n_trees, seed=args.seed, balance=args.balance)
    print(f"{args.dataset}{' (balanced)' if args.balance else ''}: {len(data.y)} rows, {len(setup.train)} train / "
          f"{len(setup.test)} test, "
          f"{args.n_trees}-tree forest, test accuracy {setup.test_accuracy:.3f}")
    taus = sorted(set(ACCURACY_TAUS) | set(COVERAGE_TAUS) | {args.tau})
    print(f"explaining {args.instances} random test instances: LIME once, R-LIME and Anchor at τ ∈ {taus} …",
          flush=True)
    started = time.perf_counter()
    res = run_paper_experiments(setup, n_instances=args.instances, seed=args.seed,
                                coverage_taus=sorted(set(COVERAGE_TAUS) | {args.tau}),
                                progress=lambda f, msg: print(f"  {100 * f:5.1f}% {msg}", file=sys.stderr, flush=True))
    print(f"  done in {time.perf_counter() - started:.0f} s")
    summary, deviation = res.summary(), res.deviation()
    at = res.coverage[res.coverage["tau"] == args.tau].reset_index(drop=True)
    secs, calls, batches = at["rlime_seconds"].tolist(), at["rlime_black_box_calls"].tolist(), \
        at["rlime_black_box_batches"].tolist()

    out: dict[str, Any] = {
        "dataset": args.dataset, "balanced": args.balance, "n_instances": args.instances, "n_trees": args.n_trees, "seed": args.seed,
        "tau_timing": args.tau, "black_box_test_accuracy": setup.test_accuracy, "machine": platform.platform(),
        "median_s_per_explanation": pct(secs, 50), "p90_s_per_explanation": pct(secs, 90),
        "median_black_box_calls": pct(calls, 50), "p90_black_box_calls": pct(calls, 90),
        "median_black_box_batches": pct(batches, 50), **deviation, "per_tau": {}}
    for row in summary.to_dict("records"):
        out["per_tau"][f"{row['tau']:.2f}"] = {k: (None if np.isnan(v) else float(v)) for k, v in row.items()
                                               if k != "tau"}
        for key in ("rlime_local_acc", "lime_local_acc", "rlime_coverage", "anchor_coverage"):
            if not np.isnan(row[key]):
                out[f"{key}@{row['tau']:.2f}"] = float(row[key])

    print("\nPaper's quantitative section (mean ± std over instances; coverage on shared Gaussian samples)")
    print(f"{'τ':>5} {'R-LIME acc':>14} {'LIME acc':>14} {'R-LIME cov':>14} {'Anchor cov':>14} {'valid':>6}")
    for row in summary.to_dict("records"):
        def ms(key: str) -> str:
            return "" if np.isnan(row[key]) else f"{row[key]:.3f}±{row[key + '_std']:.3f}"
        print(f"{row['tau']:5.2f} {ms('rlime_local_acc'):>14} {ms('lime_local_acc'):>14} {ms('rlime_coverage'):>14} "
              f"{ms('anchor_coverage'):>14} {row['rlime_valid_share']:6.2f}")
    print(f"§5.2 deviation |true − estimated| accuracy: {deviation['acc_deviation_mean']:.3f} ± "
          f"{deviation['acc_deviation_std']:.3f} (signed {deviation['signed_deviation_mean']:+.3f}; "
          f"estimated {deviation['estimated_mean']:.3f}, true {deviation['true_mean']:.3f}; "
          f"n = {deviation['n']}, true accuracy from 10,000 fresh samples)")

    print(f"\nTime per R-LIME explanation at τ = {args.tau} over {len(secs)} instances: median "
          f"{out['median_s_per_explanation']:.2f} s, p90 {out['p90_s_per_explanation']:.2f} s; black-box rows median "
          f"{out['median_black_box_calls']:.0f} (p90 {out['p90_black_box_calls']:.0f}) in "
          f"{out['median_black_box_batches']:.0f} predict_proba calls")

    if args.reference_python:
        k = min(args.reference_instances, len(at))
        print(f"\nReference rlime==0.1.1 ({args.reference_python}) on the first {k} of these instances at "
              f"τ = {args.tau}, one subprocess each, timeout {args.reference_timeout:.0f} s per instance …", flush=True)
        shared_rng = np.random.default_rng(args.seed)
        ref_rows = []
        expl = setup.explainer(args.tau)
        for i in range(k):
            row = int(at.loc[i, "instance"])
            ref = run_reference(args.reference_python, setup, row, args.tau, args.reference_timeout, args.n_trees,
                                int(setup.model.random_state))
            x = setup.codes[row]
            shared = expl.sampler_.sample([()], x, 10_000, shared_rng)[0]
            ref_cov = rule_coverage(ref["rule"], x, shared) if ref.get("found") else float("nan")
            ref_rows.append({"instance": row, "ours_s": secs[i], "ours_calls": calls[i],
                             "ours_batches": batches[i], "ours_coverage": float(at.loc[i, "rlime_coverage"]),
                             "ours_accuracy": float(at.loc[i, "rlime_est_acc"]),
                             "ref": ref, "ref_coverage": ref_cov})
            status = ("timeout" if ref.get("timeout") else ref.get("error") or
                      f"{ref['seconds']:.1f} s, {ref['calls']} rows in {ref['batches']} calls, "
                      f"rule of {len(ref.get('rule', []))}")
            print(f"  instance {row}: reference {status}; ours {secs[i]:.2f} s, {calls[i]} rows in {batches[i]} "
                  f"calls, rule of {int(at.loc[i, 'rlime_rule_length'])}", flush=True)
        finished = [r for r in ref_rows if "calls" in r["ref"]]
        timed_out = [r for r in ref_rows if r["ref"].get("timeout")]
        done = finished + timed_out  # a timed-out run counts with its timeout: a lower bound of its time
        ref_secs = [r["ref"]["seconds"] for r in done]
        ours_same = [r["ours_s"] for r in done]
        out["reference"] = {
            "instances": [r["instance"] for r in ref_rows], "finished": len(finished), "timed_out": len(timed_out),
            "timeout_s": args.reference_timeout, "rows": ref_rows,
            "median_s": pct(ref_secs, 50), "p90_s": pct(ref_secs, 90),
            "median_black_box_calls": pct([r["ref"]["calls"] for r in finished], 50),
            "median_black_box_batches": pct([r["ref"]["batches"] for r in finished], 50)}
        out["reference_median_s_per_explanation"] = pct(ref_secs, 50)
        out["ours_median_s_same_instances"] = pct(ours_same, 50)
        out["speedup_vs_reference"] = (pct(ref_secs, 50) / pct(ours_same, 50)) if done else None
        out["speedup_total_time"] = (sum(ref_secs) / sum(ours_same)) if done else None
        out["speedup_per_instance"] = [r["ref"]["seconds"] / r["ours_s"] for r in done]
        print(f"\n{'':28}{'ours':>14}{'reference':>14}   (same {len(done)} instances, τ = {args.tau}; "
              f"{len(timed_out)} reference timeouts counted at {args.reference_timeout:.0f} s)")
        print(f"{'median s / explanation':28}{pct(ours_same, 50):14.2f}{pct(ref_secs, 50):14.2f}")
        print(f"{'p90 s / explanation':28}{pct(ours_same, 90):14.2f}{pct(ref_secs, 90):14.2f}")
        print(f"{'median black-box rows':28}{pct([r['ours_calls'] for r in finished], 50):14.0f}"
              f"{out['reference']['median_black_box_calls']:14.0f}")
        print(f"{'median predict calls':28}{pct([r['ours_batches'] for r in finished], 50):14.0f}"
              f"{out['reference']['median_black_box_batches']:14.0f}")
        found = [r for r in finished if r["ref"]["found"]]
        print(f"{'mean coverage (shared)':28}{np.mean([r['ours_coverage'] for r in found]) if found else np.nan:14.3f}"
              f"{np.mean([r['ref_coverage'] for r in found]) if found else np.nan:14.3f}")
        print(f"{'mean estimated accuracy':28}{np.mean([r['ours_accuracy'] for r in found]) if found else np.nan:14.3f}"
              f"{np.mean([r['ref']['accuracy'] for r in found]) if found else np.nan:14.3f}")
        if timed_out:
            print(f"  {len(timed_out)} reference run(s) exceeded {args.reference_timeout:.0f} s and were stopped")
        if done:
            print(f"speed-up: median reference / median ours {out['speedup_vs_reference']:.2f}×, total time "
                  f"{out['speedup_total_time']:.2f}×, per instance "
                  f"{', '.join(f'{x:.1f}×' for x in out['speedup_per_instance'])}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, default=float) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
