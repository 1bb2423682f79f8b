"""Running a plan's sweep on Dask distributed, with its results kept in one SQLite file.

The thin adapter around the pure `sweep` functions:

- `open_client(scheduler, workers)`: a `distributed.Client` on an existing scheduler
  (``tcp://HOST:8786``, started with ``dask scheduler`` and ``dask worker``) or on a
  `LocalCluster` of `workers` single-threaded worker processes (default: every core);
- `ResultStore`: results by key (`sweep.result_key`: what a result was computed from) in
  one SQLite file; each result is committed as it arrives, so an interrupted run loses
  nothing finished, and a rerun submits only what the file does not hold;
- `run_sweep`: submits the missing combinations (the site document and the profile are
  scattered to every worker once) and reports progress as each one completes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from resilience.drills.survival import Profile
from resilience.planning.plan_file import LoadedPlan
from resilience.planning.sweep import (
    Combination,
    combinations,
    derive_site,
    donor_arrivals,
    evaluate_many,
    result_key,
    runs,
    sample_starts,
    site_kwp,
)

__all__ = ["Progress", "ResultStore", "SweepRun", "open_client", "run_checks", "run_sweep"]


class ResultStore:
    """Results by key in one SQLite file (kind: "sweep" or "drill")."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results ("
            " key TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,"
            " PRIMARY KEY (kind, key))"
        )
        self._db.commit()

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT payload FROM results WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO results (key, kind, payload) VALUES (?, ?, ?)",
            (key, kind, json.dumps(payload, sort_keys=True)),
        )
        self._db.commit()

    def payloads(self, kind: str) -> list[dict[str, Any]]:
        return [
            json.loads(row[0])
            for row in self._db.execute("SELECT payload FROM results WHERE kind = ?", (kind,))
        ]

    def count(self, kind: str) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM results WHERE kind = ?", (kind,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A Dask client: on `scheduler` if given, else on a local cluster of `workers`
    processes (default: every core), one thread each (the model is numpy and Python)."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    n = workers or os.cpu_count() or 1
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # its HTTP server (health, metrics) too
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        yield client


class Progress:
    """A one-line progress bar on a stream (stderr by default)."""

    def __init__(self, what: str, total: int, stream: TextIO | None = None) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr

    def step(self, n: int = 1) -> None:
        self.done += n
        width = 30
        filled = width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (width - filled)
        end = "\n" if self.done >= self.total else ""
        self.stream.write(f"\r{self.what} [{bar}] {self.done}/{self.total}{end}")
        self.stream.flush()


TASKS_PER_WORKER = 4
"""The sweep is cut into about this many tasks per worker: each carries seconds of work
(a combination alone is a few tenths of a second, less than a task's round trip and the
plan shipped with it), and the last tasks still spread over the workers."""


def chunks(indices: list[int], workers: int) -> list[list[int]]:
    """`indices` in consecutive runs, about `TASKS_PER_WORKER` per worker."""
    size = max(1, -(-len(indices) // (TASKS_PER_WORKER * max(1, workers))))
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def _workers(client: Any) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


@dataclass(frozen=True)
class SweepRun:
    results: list[dict[str, Any]]  # in combination order
    computed: int  # how many this run computed (the others came from the store)


def run_sweep(
    loaded: LoadedPlan,
    profile: Profile,
    client: Any,
    store: ResultStore,
    progress: Callable[[int], Progress] | None = None,
) -> SweepRun:
    """Every combination's result: from the store, or computed on the cluster and stored."""
    from distributed import as_completed

    plan = loaded.plan
    combos = combinations(plan, loaded.site)
    keys = [result_key(plan, loaded.site_doc, profile, c) for c in combos]
    results: list[dict[str, Any] | None] = [store.get("sweep", k) for k in keys]
    missing = [i for i, r in enumerate(results) if r is None]
    bar = progress(len(combos)) if progress else None
    if bar:
        bar.step(len(combos) - len(missing))
    if missing:
        site_doc, prof = client.scatter([loaded.site_doc, profile], broadcast=True)
        base_kwp = site_kwp(loaded.site)
        futures = {
            client.submit(
                evaluate_many,
                plan,
                site_doc,
                prof,
                base_kwp,
                [combos[i] for i in chunk],
                key=f"plan-{keys[chunk[0]]}-{len(chunk)}",
            ): chunk
            for chunk in chunks(missing, _workers(client))
        }
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            chunk = futures[future]
            for i, result in zip(chunk, future.result(), strict=True):
                result["key"] = keys[i]
                store.put("sweep", keys[i], result)
                results[i] = result
            if bar:
                bar.step(len(chunk))
    done = [r for r in results if r is not None]
    for r, k in zip(done, keys, strict=True):
        r["key"] = k
    return SweepRun(done, len(missing))


def run_checks(
    loaded: LoadedPlan,
    profile: Profile,
    client: Any,
    store: ResultStore,
    frontier: list[dict[str, Any]],
    progress: Callable[[int], Progress] | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """Each frontier combination checked by real drills (`checks`): the comparison per
    combination key, and how many drills this run ran (the others came from the store)."""
    from distributed import as_completed

    from resilience.config import parse_site
    from resilience.planning.checks import compare, drill_hours, drill_scenario, run_drill

    plan = loaded.plan
    targets = [t.model_dump() for t in plan.targets]
    hours = drill_hours(targets)
    starts = sample_starts(plan.plan.seed, len(profile.hour), plan.plan.drills_per_combination)
    base_kwp = site_kwp(loaded.site)
    jobs: list[tuple[str, int, str, dict[str, Any], dict[str, Any]]] = []
    fast: dict[str, Any] = {}
    for result in frontier:
        combo = Combination.from_dict(result["combination"])
        doc = derive_site(loaded.site_doc, combo, plan.donors.chargers if plan.donors else 0)
        site = parse_site(doc)
        pv_scale = combo.pv_kwp / base_kwp if base_kwp > 0 else 0.0
        arrivals = donor_arrivals(plan, site, len(profile.hour))
        fast[result["key"]] = runs(
            site, profile, pv_scale, hours, plan.plan.start_soc_pct, arrivals=arrivals
        )
        for start in starts:
            scenario = drill_scenario(
                site,
                profile,
                combo,
                start,
                hours,
                plan.plan.start_soc_pct,
                pv_scale,
                arrivals=arrivals,
            )
            jobs.append((result["key"], start, f"{result['key']}-{start}-{hours}", doc, scenario))
    drills: dict[str, dict[int, dict[str, Any]]] = {r["key"]: {} for r in frontier}
    bar = progress(len(jobs)) if progress else None
    missing = []
    for job in jobs:
        stored = store.get("drill", job[2])
        if stored is None:
            missing.append(job)
        else:
            drills[job[0]][job[1]] = stored
    if bar:
        bar.step(len(jobs) - len(missing))
    futures = {
        client.submit(run_drill, doc, scenario, key=f"drill-{key}", pure=False): (combo, start, key)
        for combo, start, key, doc, scenario in missing
    }
    for future in as_completed(futures):  # type: ignore[no-untyped-call]
        combo_key, start, key = futures[future]
        outcome = future.result()
        if "error" not in outcome:
            store.put("drill", key, outcome)
        drills[combo_key][start] = outcome
        if bar:
            bar.step()
    checked = {key: compare(targets, fast[key], drills[key]) for key in drills}
    for check in checked.values():
        check["starts"] = starts
        check["drill_hours"] = hours
    return checked, len(missing)
