"""Representation-bias audit on SisFall: ``python benchmarks/bias_audit.py [--json out.json]``.

What runs is the platform's own path (``anonaudit audit`` / job ``bias_audit``) on SisFall's daily
activities (D01–D19, resampled to ``--resample-hz``) with age group × gender as characteristics and
8 training subjects per set, as in the paper's code. It reports:

* ``runtime_s``: wall time of the whole audit job with ``--workers`` parallel trainings.
* ``speedup_2_workers``: time of ``--speedup-tasks`` trainings of the audit on one worker divided by
  their time on two (the executor the job uses, same tasks, same windows, one torch thread per
  worker as in the job; worker processes started before timing — ``runtime_s`` includes their
  start). ``speedup_vs_one_process_two_threads`` compares two workers with one process that uses
  every core through torch's own threads instead.
* per network (``networks.<net>``; the first network's also at top level): ``trend_p`` and
  ``trend_effect`` — the audit's primary test (Jonckheere–Terpstra as Kendall τ_b between group
  rank and draw-mean accuracy; τ_b is the effect size), its CI, ANOVA / Kruskal–Wallis /
  Brown–Forsythe p-values, the spread trend and group means and SDs: whether the paper's findings
  (accuracy rises, spread falls with heterogeneity) reproduce.
* ``null_false_positive_rate``: share of 2,000 audits of data without bias — the measured draw
  accuracies with their group labels permuted — whose trend test is significant at α = 0.05
  (should be ≈ 0.05); ``null_false_positive_rate_simulated`` does the same on simulated scores.

The full audit is ``--networks tcnn lstm transformer --draws 6 --repeats 3 --epochs 15`` (the job's
defaults): 2.8 h on 2 cores. Measured per network (90 trainings, 2 workers, partly shared
cores): tCNN 2,261 s (median 41 s per training), Transformer 3,283 s (79 s), LSTM 4,412 s (99 s).
The statistics are per network, so it can run one ``--networks`` at a time. The default here is a
reduced configuration that fits a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _figures(tests: pd.DataFrame, trainings: pd.DataFrame, net: str) -> dict[str, object]:
    t = tests[(tests["network"] == net) & (tests["metric"] == "accuracy")].set_index("test")
    pick = lambda prefix: t.loc[t.index.str.startswith(prefix)].iloc[0] if t.index.str.startswith(prefix).any() else None  # noqa: E731
    trend, spread = pick("trend"), pick("spread")
    out: dict[str, object] = {"trend_p": float(trend["p_value"]), "trend_effect": float(trend["effect"]),
                              "trend_effect_ci": [float(trend["ci_low"]), float(trend["ci_high"])]}
    for name, key in (("one-way ANOVA", "anova_p"), ("Kruskal–Wallis", "kruskal_p"), ("Brown–Forsythe", "brown_forsythe_p")):
        if name in t.index:
            out[key] = float(t.loc[name, "p_value"])
    if spread is not None:
        out["spread_trend_tau"], out["spread_trend_p"] = float(spread["effect"]), float(spread["p_value"])
    mixed = pick("mixed")
    if mixed is not None:
        out["mixed_slope_per_step"], out["mixed_p"] = float(mixed["effect"]), float(mixed["p_value"])
    runs = trainings[trainings["network"] == net]
    draw_means = runs.groupby(["key", "group"])["accuracy"].mean().reset_index()
    out["accuracy_by_group"] = {g: {"mean": round(float(v.mean()), 4), "sd": round(float(v.std()), 4), "draws": int(len(v))}
                                for g, v in draw_means.groupby("group")["accuracy"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--networks", nargs="+", default=["tcnn"])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subjects", type=int, default=8)
    parser.add_argument("--resample-hz", type=float, default=20.0)
    parser.add_argument("--window-s", type=float, default=2.56)
    parser.add_argument("--stride-s", type=float, default=1.28)
    parser.add_argument("--max-windows", type=int, default=150, help="windows per subject and split (0: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--speedup-tasks", type=int, default=4)
    parser.add_argument("--part", choices=["both", "speedup", "audit"], default="both",
                        help="measure the speed-up, run the audit, or both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bias-bench-"))
    os.environ.update({"ANONAUDIT_HOME": str(home), "ANONAUDIT_DATABASE_URL": f"sqlite:///{home / 'bench.db'}",
                       "ANONAUDIT_REPORTS": str(home / "reports")})
    from anonaudit import api
    from anonaudit.data.loaders import load_dataset
    from anonaudit.data.resample import resample

    started = time.perf_counter()
    ds = resample(load_dataset(args.datasets_dir / "sisfall", "sisfall", activities="adl"), args.resample_hz)
    ds.name = "sisfall_adl"
    ds.save(home / "sisfall_adl")
    api.import_dataset(home / "sisfall_adl", "anonaudit", name="sisfall_adl")
    load_s = time.perf_counter() - started
    print(f"SisFall ADL at {args.resample_hz:g} Hz: {len(ds.subjects)} subjects, {ds.n_samples} samples, "
          f"{len(ds.activities)} activities (loaded and imported in {load_s:.0f} s)")
    params = {"dataset": "sisfall_adl", "characteristics": ["age_group", "gender"], "networks": args.networks,
              "draws": args.draws, "repeats": args.repeats, "train_subjects": args.train_subjects, "epochs": args.epochs,
              "window_s": args.window_s, "stride_s": args.stride_s, "max_windows_per_subject": args.max_windows or None,
              "n_workers": args.workers}

    figures: dict[str, object] = {"load_and_import_s": round(load_s, 1)}
    if args.part in ("speedup", "both"):
        figures |= measure_speedup(ds, params, args, home)
    del ds
    if args.part in ("audit", "both"):
        figures |= run_audit(params, args)
    if args.json:
        args.json.write_text(json.dumps({**figures, "config": {k: str(v) for k, v in vars(args).items()}}, indent=2,
                                        default=float))
        print(f"wrote {args.json}")


def measure_speedup(ds, params: dict, args: argparse.Namespace, home: Path) -> dict[str, object]:
    """The same first trainings of the audit on 1 and on 2 single-threaded workers (and on one
    process with every torch thread)."""
    import torch

    from anonaudit.audit.design import build_design
    from anonaudit.audit.trainings import prepare_windows, train_one
    from anonaudit.compute import LocalExecutor
    from anonaudit.jobs.kinds.bias_audit import BiasAuditParams, training_tasks

    p = BiasAuditParams(**params)
    design = build_design(ds.subjects, p.characteristics, n_train=p.train_subjects, n_draws=p.draws, seed=args.seed)
    cache = home / "speedup_windows"
    prepare_windows(ds, cache, window_s=p.window_s, stride_s=p.stride_s, max_windows_per_subject=p.max_windows_per_subject,
                    seed=args.seed)
    tasks = training_tasks(p, design, args.seed, str(cache))[: args.speedup_tasks]
    load_before = os.getloadavg()[0]
    seconds, threads = {}, torch.get_num_threads()
    for label, n, torch_threads in (("1", 1, 1), ("2", 2, 1), ("1x2threads", 1, threads)):
        torch.set_num_threads(torch_threads)  # n = 1 runs in-process; pool workers always take one thread
        executor = LocalExecutor(n)
        if n > 1:  # start the worker processes (and their torch import) before timing, as a running job has
            list(executor.map_unordered(os.getpid, [{}] * 2 * n))
        t0 = time.perf_counter()
        for _ in executor.map_unordered(train_one, tasks):
            pass
        seconds[label] = time.perf_counter() - t0
        executor.close()
        print(f"{len(tasks)} trainings on {n} worker(s) × {torch_threads} torch thread(s): {seconds[label]:.1f} s")
    torch.set_num_threads(threads)
    speedup = seconds["1"] / seconds["2"]
    print(f"speed-up from 1 to 2 single-threaded workers: {speedup:.2f}× ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {load_before:.2f} before timing); against one process using "
          f"{threads} torch threads: {seconds['1x2threads'] / seconds['2']:.2f}×")
    return {"speedup_2_workers": round(speedup, 3),
            "speedup_seconds": {k: round(v, 1) for k, v in seconds.items()} | {"tasks": len(tasks)},
            "speedup_vs_one_process_two_threads": round(seconds["1x2threads"] / seconds["2"], 3),
            "load_average_before_speedup": round(load_before, 2)}


def run_audit(params: dict, args: argparse.Namespace) -> dict[str, object]:
    """The whole audit job, its tests per network and the trend test's false-positive rate without bias."""
    from anonaudit import api
    from anonaudit.audit.statistics import draw_scores, null_false_positive_rate

    t0 = time.perf_counter()
    job = api.run("bias_audit", params, seed=args.seed)
    runtime = time.perf_counter() - t0
    folder = Path(job["artifact_dir"])
    tests, trainings = pd.read_csv(folder / "test_table.csv"), pd.read_csv(folder / "trainings.csv")
    print(f"audit: {job['result']['trainings']} trainings in groups {job['result']['groups']} "
          f"(infeasible: {job['result']['infeasible_groups'] or 'none'}) in {runtime:.0f} s; artifacts in {folder}")
    networks = {net: _figures(tests, trainings, net) for net in args.networks}
    first = trainings[trainings["network"] == args.networks[0]]
    draws = draw_scores(first, "accuracy")
    fpr = null_false_positive_rate(draws["rank"].to_numpy(), draws["value"].to_numpy(), n_sim=2000, seed=args.seed)
    fpr_sim = null_false_positive_rate(draws["rank"].to_numpy(), n_sim=2000, seed=args.seed)
    for net, f in networks.items():
        print(f"{net}: trend τ = {f['trend_effect']:+.3f} (95 % CI {f['trend_effect_ci'][0]:+.2f}…{f['trend_effect_ci'][1]:+.2f}), "
              f"p = {f['trend_p']:.4f}; Brown–Forsythe p = {f.get('brown_forsythe_p', float('nan')):.3f}; "
              f"spread trend τ = {f.get('spread_trend_tau', float('nan')):+.3f}; by group {f['accuracy_by_group']}")
    print(f"null false-positive rate of the trend test (permuted labels, 2000 runs): {fpr:.3f}; simulated: {fpr_sim:.3f}")
    return {"runtime_s": round(runtime, 1), **{k: networks[args.networks[0]][k] for k in ("trend_p", "trend_effect")},
            "networks": networks, "null_false_positive_rate": fpr, "null_false_positive_rate_simulated": fpr_sim,
            "findings": json.loads((folder / "findings.json").read_text())}


if __name__ == "__main__":
    main()
