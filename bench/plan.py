"""`resilience plan` at scale: a sweep of 60 combinations with real drills, on 1 and 2 workers.

    .venv/bin/python bench/plan.py [--drills 20] [--hours 12] [--workers-max 2]

The plan (written to a scratch directory, on config/site.toml and the sample year):
chargers 2, 4, 6, 8, 10 x grid-forming 1, 2 x PV 0, 20, 40 kWp x cars always there or
out on duty by day = 60 combinations; targets life-safety `--hours` h after 95 % of the
starts and critical 4 h after 90 %; `--drills` real drills (each `--hours` long, on the
virtual clock) per frontier combination. The whole plan runs on a local Dask cluster of
1 worker, then of 2, each time from an empty results file (nothing resumed), and the two
answers must be the same.

Goals (issue 16): `speedup_2_workers` >= 1.7; `fast_vs_drill_max_diff_pct` <= 2
percentage points on the frontier (the largest difference, over the frontier
combinations and targets, between the share of drilled starts the fast model carries
and the share the drills carried).

Prints one line per run, then, last, one line of JSON: combinations, drills,
wall_s_1_worker, wall_s_2_workers, speedup_2_workers, fast_vs_drill_max_diff_pct.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from resilience.drills.survival import load_profile
from resilience.planning.engine import ResultStore, open_client, run_checks, run_sweep
from resilience.planning.plan_file import load_plan
from resilience.planning.sweep import frontier

ROOT = Path(__file__).resolve().parents[1]


def plan_text(drills: int, hours: int) -> str:
    return f"""
[plan]
name = "bench"
site = "{ROOT / "config" / "site.toml"}"
profile = "{ROOT / "config" / "profile_moda_year.csv"}"
hours = {hours}
seed = 16
drills_per_combination = {drills}

[vary]
chargers = [2, 4, 6, 8, 10]
grid_forming = [1, 2]
pv_kwp = [0.0, 20.0, 40.0]
fleet_hours = [[[0, 24]], [[0, 8], [18, 24]]]

[[targets]]
tier = "life_safety"
hours = {hours}
share_pct = 95.0

[[targets]]
tier = "critical"
hours = {min(4, hours)}
share_pct = 90.0

[costs]
charger = 14000.0
grid_forming_extra = 6000.0
pv_per_kwp = 850.0
"""


def run(path: Path, workers: int, scratch: Path) -> tuple[float, dict[str, Any]]:
    loaded = load_plan(path)
    profile = load_profile(loaded.profile_path)
    with open_client(workers=workers) as client:
        store = ResultStore(scratch / f"plan-{workers}.sqlite")
        started = time.perf_counter()
        sweep = run_sweep(loaded, profile, client, store)
        best = frontier(sweep.results)
        checks, drilled = run_checks(loaded, profile, client, store, best)
        wall = time.perf_counter() - started
        drills = store.payloads("drill")
        store.close()
    answer = {
        "combinations": len(sweep.results),
        "frontier": [r["label"] for r in best],
        "drills": drilled,
        "checks": [checks[r["key"]] for r in best],
    }
    cpu = sum(d.get("cpu_seconds") or 0.0 for d in drills)
    print(
        f"{workers} worker(s): drills' CPU {cpu:.1f} s, load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    return wall, answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drills", type=int, default=20, help="drills per frontier combination")
    parser.add_argument("--hours", type=int, default=12, help="life-safety target and drill [h]")
    parser.add_argument("--workers-max", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        scratch = Path(tmp)
        path = scratch / "plan.toml"
        path.write_text(plan_text(args.drills, args.hours), encoding="utf-8")
        loads = [os.getloadavg()[0]]
        walls: dict[int, float] = {}
        answers: dict[int, dict[str, Any]] = {}
        for workers in (1, args.workers_max):
            walls[workers], answers[workers] = run(path, workers, scratch)
            loads.append(os.getloadavg()[0])
            a = answers[workers]
            print(
                f"{workers} worker(s): {walls[workers]:.1f} s, {a['combinations']} combinations,"
                f" frontier {a['frontier']}, {a['drills']} drills",
                file=sys.stderr,
            )
    first, last = answers[1], answers[args.workers_max]
    if first != last:
        print("the answers on 1 and on more workers differ", file=sys.stderr)
        return 1
    diffs = [c["max_diff_pct"] for c in first["checks"] if c["max_diff_pct"] is not None]
    disagreements = [d for c in first["checks"] for d in c["disagreements"]]
    for d in disagreements:
        print(f"disagreement: {d}", file=sys.stderr)
    print(
        json.dumps(
            {
                "combinations": first["combinations"],
                "frontier": len(first["frontier"]),
                "drills": first["drills"],
                "wall_s_1_worker": round(walls[1], 2),
                f"wall_s_{args.workers_max}_workers": round(walls[args.workers_max], 2),
                f"speedup_{args.workers_max}_workers": round(walls[1] / walls[args.workers_max], 3),
                "fast_vs_drill_max_diff_pct": max(diffs) if diffs else None,
                "disagreements": len(disagreements),
                "load_average_1min": [round(x, 2) for x in loads],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
