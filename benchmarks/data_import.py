"""Import time and peak memory of each real dataset: ``python benchmarks/data_import.py [--json out.json]``.

Each dataset is imported in a fresh subprocess so its peak RSS is its own (``ru_maxrss`` of the
child, interpreter and imports included). The timed work is what ``anonaudit data import``
does with the data: ``load_dataset(...)`` followed by ``SensorDataset.save()`` (Parquet) to a
temporary directory. Datasets are read from ``../shared/datasets`` relative to the repository
root unless ``--datasets-dir`` says otherwise.
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

REPO = Path(__file__).resolve().parents[1]
# case: (path under the datasets dir, format, loader options)
CASES: dict[str, tuple[str, str, dict[str, str]]] = {
    "sisfall": ("sisfall/SisFall_dataset.tar.xz", "sisfall", {}),
    "hapt": ("hapt/HAPT_raw_50Hz_converted.csv.gz", "hapt", {}),
    "utd_inertial": ("utd_mhad", "utd_mhad", {"modality": "inertial"}),
    "utd_skeleton": ("utd_mhad", "utd_mhad", {"modality": "skeleton"}),
}


def run_child(case: str, datasets_dir: Path) -> dict[str, float]:
    """Import one case in this process and return its measurements."""
    import resource

    from anonaudit.data.loaders import load_dataset

    relative, fmt, options = CASES[case]
    start = time.perf_counter()
    ds = load_dataset(datasets_dir / relative, fmt, **options)
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ds.save(Path(tmp) / case)
        saved = time.perf_counter()
    return {
        "samples": ds.n_samples,
        "channels": ds.n_channels,
        "recordings": len(ds.recordings),
        "subjects": len(ds.subjects),
        "load_s": loaded - start,
        "save_s": saved - loaded,
        "import_s": saved - start,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    }


def measure(case: str, datasets_dir: Path) -> dict[str, float] | str:
    """Run one case in a fresh interpreter; the result, or the error text."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", case, "--datasets-dir", str(datasets_dir)],
        capture_output=True, text=True, cwd=REPO,
    )
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """The flat figures written with ``--json``; UTD-MHAD is inertial + skeleton together."""
    out: dict[str, float] = {}
    for case, r in results.items():
        out[f"{case}_import_s"] = round(r["import_s"], 2)
        out[f"{case}_peak_mb"] = round(r["peak_mb"], 1)
        out[f"{case}_rows_per_s"] = round(r["samples"] / r["import_s"])
    utd = [results[c] for c in ("utd_inertial", "utd_skeleton") if c in results]
    if utd:
        seconds = sum(r["import_s"] for r in utd)
        out["utd_import_s"] = round(seconds, 2)
        out["utd_peak_mb"] = round(max(r["peak_mb"] for r in utd), 1)
        out["utd_rows_per_s"] = round(sum(r["samples"] for r in utd) / seconds)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--child", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    datasets_dir = args.datasets_dir.resolve()
    if args.child:
        print(json.dumps(run_child(args.child, datasets_dir)))
        return 0

    print(f"Each dataset imported in a fresh subprocess: seconds = wall time of load_dataset() + "
          f"SensorDataset.save() to a temp dir; peak MB = ru_maxrss of that subprocess (interpreter "
          f"included). {os.cpu_count()} CPUs, Python {platform.python_version()}, data from {datasets_dir}.")
    header = (f"{'dataset':<14}{'samples':>12}{'recordings':>12}{'subjects':>10}"
              f"{'seconds':>10}{'rows/s':>12}{'peak MB':>10}")
    print(header)
    print("-" * len(header))
    results, failed = {}, False
    for case, (relative, _, _) in CASES.items():
        if not (datasets_dir / relative).exists():
            print(f"{case:<14}  skipped: {datasets_dir / relative} not found")
            continue
        r = measure(case, datasets_dir)
        if isinstance(r, str):
            print(f"{case:<14}  FAILED: {r}")
            failed = True
            continue
        results[case] = r
        print(f"{case:<14}{r['samples']:>12,}{r['recordings']:>12,}{r['subjects']:>10}"
              f"{r['import_s']:>10.2f}{r['samples'] / r['import_s']:>12,.0f}{r['peak_mb']:>10.0f}", flush=True)
    figures = summary(results)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
