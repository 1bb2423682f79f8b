"""How fast a drill runs, on three sizes of site: the 72 h earthquake at --speed max.

    taskset -c 0 .venv/bin/python bench/drill_speed.py [--runs N] [--sizes reference,large,24]
                                                       [--duration-h H] [--hours H]

Runs `config/drills/earthquake_72h.toml` on the virtual clock (the real controller,
drivers over the in-process transport, the OCPP stations over in-memory OCPP-J, the
plant stepped between cycles; a full cycle at least every 10 simulated seconds and at
the site's period for 5 s after any change) on three sites:

- ``reference``: config/site.toml as the scenario names it (11 Modbus devices, 2 OCPP
  2.1 stations, 19 loads);
- ``large``: config/sites/large_site.toml (12 chargers, 40 loads), the scenario mapped
  onto it by role as the drill matrix does (tests/drills/test_matrix.py `variant`);
- ``modbus`` (not run by default): the reference site without its two OCPP stations
  (and their cars), as every figure before issue 12 was measured;
- ``24``: the large site scaled to 24 chargers and 80 loads (`bench/sites.py`), mapped
  the same way (any other number N: N chargers, proportional loads).

Each size runs `--runs` times (3 by default; machines here are noisy) and reports the
median run: `wall_seconds`, `speedup` (simulated / wall seconds), `control_steps` (and
the fast ones, at the site's period) and `cycle_ms` (wall time per control cycle, plant
steps included: the cost of one cycle of the drill). `violations` is the plant's count
(the referee: 0 on every run); `passed` is the scenario's own criteria, written for the
reference site (the mapped ones are judged by the plant only). Then the survival
analysis of the sample year for outages up to `--hours`.

Goals (issue 14): reference >= x40 000 and large >= x20 000 on one core
(`taskset -c 0`); the cost of a cycle should grow less than the site does.

Prints a table, then, last, one line of JSON: {"sizes": {name: figures}, ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from sites import loads_for, write_scaled_site  # noqa: E402

from firmware_sim.drill import run_max  # noqa: E402
from resilience.config import load_site  # noqa: E402
from resilience.drills.scenario import LoadedScenario, load_scenario  # noqa: E402
from resilience.drills.survival import analyse, load_profile  # noqa: E402

SCENARIO = REPO / "config" / "drills" / "earthquake_72h.toml"
LARGE = REPO / "config" / "sites" / "large_site.toml"


def scenario_for(size: str, scenario: Path, tmp: Path) -> LoadedScenario:
    """The scenario on the site of `size` (module doc)."""
    if size == "reference":
        return load_scenario(scenario)
    if size == "modbus":
        from tests.sites import modbus_only  # the site without its OCPP stations

        loaded = load_scenario(scenario)
        return dataclasses.replace(loaded, site=modbus_only(loaded.site))
    from tests.drills.test_matrix import load_variant  # the matrix's mapping by role

    if size == "large":
        site = LARGE
    else:
        site = write_scaled_site(int(size), tmp / f"scaled_{int(size)}.toml")
    loaded, _ = load_variant(scenario, site)
    return loaded


def describe(loaded: LoadedScenario) -> str:
    site = loaded.site
    return (
        f"{len(site.chargers)} chargers"
        f" ({len(site.ocpp_stations)} OCPP), {len(site.loads)} loads, {len(site.devices)} devices"
    )


def run_size(loaded: LoadedScenario, runs: int, duration_s: float | None) -> dict[str, Any]:
    reports = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out:
            reports.append(
                asyncio.run(run_max(loaded, Path(out), progress=False, duration_s=duration_s))
            )
    walls = [r["wall_seconds"] for r in reports]
    report = next(r for r in reports if r["wall_seconds"] == statistics.median_low(walls))
    return {
        "site": describe(loaded),
        "passed": report["passed"],
        "violations": max(len(r["safety_violations"]) for r in reports),
        "sim_seconds": report["sim_seconds"],
        "wall_seconds": report["wall_seconds"],
        "speedup": report["speedup"],
        "control_steps": report["control_steps"],
        "control_steps_fast": report["control_steps_fast"],
        "cycle_ms": round(1000 * report["wall_seconds"] / report["control_steps"], 4),
        "runs_wall_seconds": walls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(SCENARIO))
    parser.add_argument(
        "--sizes", default="reference,large,24", help="reference, modbus, large or N"
    )
    parser.add_argument("--runs", type=int, default=3, help="drill runs per size (median)")
    parser.add_argument("--duration-h", type=float, default=None, help="cut the drill short")
    parser.add_argument("--hours", type=int, default=72, help="survival analysis horizon")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for size in sizes:
        if size not in ("reference", "modbus", "large") and not (size.isdigit() and int(size) >= 1):
            parser.error(f"--sizes: {size!r}: reference, modbus, large or a charger count")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    duration_s = args.duration_h * 3600 if args.duration_h is not None else None
    results: dict[str, Any] = {}
    name = ""
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            loaded = scenario_for(size, Path(args.scenario), Path(tmp))
            name = loaded.scenario.scenario.name
            label = size if not size.isdigit() else f"{size}/{loads_for(int(size))}"
            results[label] = run_size(loaded, args.runs, duration_s)
            r = results[label]
            print(
                f"{label:>10}: {r['site']}: {r['sim_seconds'] / 3600:.0f} h in"
                f" {r['wall_seconds']:.2f} s (x{r['speedup']:.0f}), {r['control_steps']} cycles"
                f" ({r['control_steps_fast']} fast), {r['cycle_ms']:.3f} ms per cycle,"
                f" {r['violations']} violations, criteria passed={r['passed']}",
                flush=True,
            )
    site = load_site(REPO / "config/site.toml")
    profile = load_profile(REPO / "config/profile_moda_year.csv")
    started = time.perf_counter()
    survival = analyse(site, profile, args.hours)
    survival_s = time.perf_counter() - started
    print(f"drill: {name}, median of {args.runs} runs per size")
    print(
        f"survival: {survival['starts']} starts x {args.hours} h in {survival_s * 1000:.0f} ms;"
        f" every start survives {survival['survives_all_starts_h']}"
    )
    print(
        json.dumps(
            {
                "scenario": Path(args.scenario).name,
                "runs": args.runs,
                "sizes": results,
                "survival_hours": args.hours,
                "survival_starts": survival["starts"],
                "survival_seconds": round(survival_s, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
