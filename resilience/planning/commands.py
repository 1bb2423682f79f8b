"""The `resilience plan` subcommand: argument definitions and the handler.

``plan PLAN [--out DIR] [--scheduler tcp://HOST:PORT] [--workers N] [--store FILE]
[--quiet]``: validates the plan file (exit 2 with ``file: key: reason`` lines), runs
the sweep on Dask distributed (`engine`), keeps every result in one SQLite file
(default DIR/plan.sqlite) that a rerun resumes from, checks each frontier combination
with real drills (`checks`), and writes DIR/plan.json and DIR/plan.html (`report`). The
summary (combinations, computed this run, the frontier) is printed as JSON on stdout.
Dask distributed and tomli-w are the `plan` extra (``pip install 'resilience[plan]'``):
without them the command says so and exits 3.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any


def plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", metavar="PLAN", help="plan file (TOML, docs/planning.md)")
    parser.add_argument("--out", metavar="DIR", default="var/plan", help="report directory")
    parser.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="an existing Dask scheduler (dask scheduler / dask worker); default: a local cluster",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local cluster's worker processes (default: every core)",
    )
    parser.add_argument(
        "--store",
        metavar="FILE",
        help="results file a rerun resumes from (default DIR/plan.sqlite)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


PLAN_MODULES = {"distributed": "dask[distributed]", "tomli_w": "tomli-w"}
"""What `resilience plan` needs beyond the controller (the `plan` extra): module -> package."""


def missing_packages() -> list[str]:
    """The `plan` extra's packages that are not installed."""
    return [pkg for module, pkg in PLAN_MODULES.items() if importlib.util.find_spec(module) is None]


def plan(args: argparse.Namespace, extra: list[str]) -> int:
    missing = missing_packages()
    if missing:
        print(
            f"resilience plan needs {' and '.join(missing)}, not installed here: install the"
            " plan extra, pip install 'resilience[plan]' (from a checkout:"
            " .venv/bin/pip install -e '.[plan]'; make venv-test installs it)",
            file=sys.stderr,
        )
        return 3
    from resilience.drills.survival import ProfileError, load_profile
    from resilience.planning.engine import (
        Progress,
        ResultStore,
        open_client,
        run_checks,
        run_sweep,
    )
    from resilience.planning.plan_file import PlanError, PlanProblem, load_plan
    from resilience.planning.report import write_plan_report
    from resilience.planning.sweep import frontier

    try:
        loaded = load_plan(args.plan)
        try:
            profile = load_profile(loaded.profile_path)
        except ProfileError as exc:
            raise PlanError([PlanProblem(str(args.plan), "plan.profile", str(exc))]) from None
    except PlanError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"--workers: {args.workers} is not a number of workers >= 1", file=sys.stderr)
        return 2
    if loaded.plan.plan.hours > len(profile.hour):
        print(
            f"{args.plan}: plan.hours: {loaded.plan.plan.hours} is beyond the profile's"
            f" {len(profile.hour)} hours",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(Path(args.store) if args.store else out / "plan.sqlite")
    try:
        with open_client(args.scheduler, args.workers) as client:
            progress = None if args.quiet else (lambda total: Progress("sweep", total))
            sweep = run_sweep(loaded, profile, client, store, progress)
            best = frontier(sweep.results)
            drill_progress = None if args.quiet else (lambda total: Progress("drills", total))
            checks, drilled = run_checks(loaded, profile, client, store, best, drill_progress)
    finally:
        store.close()
    for result in best:
        result["check"] = checks[result["key"]]
    answer: dict[str, Any] = {
        "plan": loaded.plan.plan.name,
        "site": str(loaded.site_path),
        "profile": str(loaded.profile_path),
        "targets": [t.model_dump() for t in loaded.plan.targets],
        "donors": loaded.plan.donors.model_dump() if loaded.plan.donors else None,
        "seed": loaded.plan.plan.seed,
        "currency": loaded.plan.costs.currency if loaded.plan.costs else None,
        "combinations": len(sweep.results),
        "computed": sweep.computed,
        "drills": sum(len(c["starts"]) for c in checks.values()),
        "drills_run": drilled,
        "frontier": [r["key"] for r in best],
        "results": sweep.results,
    }
    (out / "plan.json").write_text(json.dumps(answer, indent=1), encoding="utf-8")
    html = write_plan_report(answer, out)
    summary = {k: v for k, v in answer.items() if k != "results"}
    summary["frontier"] = [
        {
            "label": r["label"],
            "cost": r["cost"],
            "targets": r["targets"],
            "drills": {k: r["check"][k] for k in ("targets", "max_diff_pct")},
            "disagreements": len(r["check"]["disagreements"]),
        }
        for r in best
    ]
    print(json.dumps(summary))
    print(f"plan: {out / 'plan.json'} {html}", file=sys.stderr)
    return 0
