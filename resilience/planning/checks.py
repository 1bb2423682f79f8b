"""Checking the fast model against the real controller: outage starts run as drills.

For a frontier combination and a seeded sample of outage start hours, each start becomes
a drill scenario (`drill_scenario`, pure) on the combination's derived site: the grid is
lost `GRID_LOSS_S` into the drill and does not come back for the plan's longest target;
every hour the profile's load per tier (`load_change`, as a factor of the tier's rated bus
load) and the scaled PV (`pv`) are set; the cars on chargers start at the plan's charge,
are absent when their parked hours say so, leave and come back at those hours with the
charge they left with (`vehicle_arrives` without `soc_pct`); so do the donors on the kept
V2L outlets (the fast model runs each outlet's circuit on its donor).

`run_drill` (the thin adapter, run on a Dask worker) writes the site and the scenario to
a scratch directory and runs the unchanged drill runner as a child process
(``python -m firmware_sim.drill``, as `resilience drill` does: resilience never imports
firmware_sim), and keeps what the comparison needs from its report.

`compare` (pure): for every target tier, the fast model's hours carried from that start
against the hours every load of the tier set (bus and V2L circuits) stayed on from the
island settled, as the plant recorded its relays (`carried_hours`); a
disagreement (one says the target's hours are met, the other not) is listed with the
start, both hours and why (the fast model's cause of loss, when the drill shed the tier,
whether it went into emergency, any safety violation).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import tomli_w

from resilience.config import SiteConfig
from resilience.drills.survival import (
    FAILURES,
    FIRST_WEEKDAY_2025,
    Arrivals,
    Profile,
    availability,
)
from resilience.model import Tier
from resilience.planning.sweep import TIER_SETS, Combination

__all__ = ["GRID_LOSS_S", "carried_hours", "compare", "drill_scenario", "run_drill"]

GRID_LOSS_S = 10.0
"""The controller settles on the grid this long before the outage (drill time)."""
SETTLE_S = 600.0
"""The island has settled this long after the outage: a black start restores the loads one
after another (`carried_hours` counts from the outage for a tier that is on by then)."""
SERVED_TOLERANCE_H = 0.02
"""A tier counts as carried through when dark no longer than this (72 s)."""
PROFILE_START = datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=3)))
"""The sample profile's hour 0: 2025-01-01 00:00, Istanbul time."""
TIERS = ("life_safety", "critical", "essential", "comfort")


def drill_hours(targets: list[dict[str, Any]]) -> int:
    return max(int(t["hours"]) for t in targets)


def drill_scenario(
    site: SiteConfig,
    profile: Profile,
    combo: Combination,
    start: int,
    hours: int,
    start_soc_pct: float,
    pv_scale: float,
    first_weekday: int = FIRST_WEEKDAY_2025,
    arrivals: Arrivals | None = None,
) -> dict[str, Any]:
    """The scenario document of one outage start (module doc); its site is "site.toml".
    `arrivals`: the plan's donors, each arriving at its charger (`donor_charger_N`) half a
    minute per charger into the hour the fast model counts it from."""
    n = len(profile.hour)
    rated = {
        tier: sum(
            ld.rated_power_w for ld in site.loads if ld.tier.label == tier and ld.supply == "bus"
        )
        for tier in TIERS
    }
    series = {
        "life_safety": profile.life_safety_w,
        "critical": profile.critical_w,
        "essential": profile.essential_w,
        "comfort": profile.comfort_w,
    }
    events: list[dict[str, Any]] = []
    for k in range(hours):
        at = (start + k) % n
        t = f"{GRID_LOSS_S + k * 3600:g}s" if k else "0s"
        for tier in TIERS:
            if rated[tier] > 0:
                factor = min(10.0, float(series[tier][at]) / rated[tier])
                events.append(
                    {"at": t, "kind": "load_change", "tier": tier, "factor": round(factor, 4)}
                )
        events.append(
            {"at": t, "kind": "pv", "available_w": round(float(profile.pv_w[at]) * pv_scale, 1)}
        )
    events.append({"at": f"{GRID_LOSS_S:g}s", "kind": "grid_loss", "note": "the outage"})
    absent = []
    for vehicle in site.vehicles:
        connector = vehicle.charger or vehicle.outlet
        present = availability(vehicle, n, first_weekday)
        here = [bool(present[(start + k) % n]) for k in range(hours)]
        if not here[0]:
            absent.append(vehicle.id)
        for k in range(1, hours):
            if here[k] == here[k - 1]:
                continue
            when = f"{GRID_LOSS_S + k * 3600:g}s"
            if here[k]:
                events.append(
                    {
                        "at": when,
                        "kind": "vehicle_arrives",
                        "vehicle": vehicle.id,
                        "connector": connector,
                    }
                )
            else:
                events.append({"at": when, "kind": "vehicle_leaves", "connector": connector})
    if arrivals is not None:
        for j, hour in enumerate(arrivals.arrive_h[:, start].tolist()):
            if hour >= hours:
                continue
            capacity = float(arrivals.capacity_wh[j])
            reserve_pct = 100.0 * float(arrivals.reserve_wh[j]) / capacity
            soc = reserve_pct + 100.0 * float(arrivals.energy_wh[j, start]) / capacity
            events.append(
                {
                    "at": f"{GRID_LOSS_S + hour * 3600 + 30 * (j + 1):g}s",
                    "kind": "vehicle_arrives",
                    "vehicle": f"donor_{j + 1}",
                    "connector": f"donor_charger_{j + 1}",
                    "capacity_wh": round(capacity, 1),
                    "reserve_soc_pct": round(reserve_pct, 3),
                    "soc_pct": round(min(100.0, soc), 3),
                }
            )
    begin = PROFILE_START + timedelta(hours=start)
    return {
        "scenario": {
            "name": f"plan check: {combo.label()}, outage at hour {start}",
            "site": "site.toml",
            "start": begin.isoformat(),
            "duration": f"{GRID_LOSS_S + hours * 3600:g}s",
        },
        "initial": {
            "default_soc_pct": start_soc_pct,
            "absent": absent,
            "pv_available_w": round(float(profile.pv_w[start % n]) * pv_scale, 1),
        },
        "events": events,
        "criteria": {"max_unserved_kwh": {}},
    }


def run_drill(site_doc: dict[str, Any], scenario: dict[str, Any]) -> dict[str, Any]:
    """Run one drill as a child process; what `compare` needs from its report."""
    with tempfile.TemporaryDirectory(prefix="plan-drill-") as tmp:
        work = Path(tmp)
        (work / "site.toml").write_text(tomli_w.dumps(site_doc), encoding="utf-8")
        (work / "scenario.toml").write_text(tomli_w.dumps(scenario), encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "firmware_sim.drill",
            str(work / "scenario.toml"),
            "--out",
            str(work / "out"),
            "--quiet",
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        report_path = work / "out" / "report.json"
        if done.returncode not in (0, 1) or not report_path.exists():
            return {"error": f"drill exited {done.returncode}: {done.stderr.strip()[-2000:]}"}
        report = json.loads(report_path.read_text(encoding="utf-8"))
    circuits = report.get("served_h", {}).values()  # per circuit: hours served per tier
    return {
        "served_h": {
            tier: min((float(c[tier]) for c in circuits if tier in c), default=0.0)
            for tier in TIERS
        },
        "carried_h": carried_hours(
            report.get("relays", {}),
            site_doc,
            (report.get("sim_seconds", 0.0) - GRID_LOSS_S) / 3600,
        ),
        "modes": sorted({t["to"] for t in report.get("transitions", [])}),
        "safety_violations": len(report.get("safety_violations", [])),
        "wall_seconds": report.get("wall_seconds"),
        # the drill process's CPU [s] (user + system; a worker runs one drill at a time)
        "cpu_seconds": round(
            after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 3
        ),
    }


def carried_hours(
    relays: dict[str, list[list[Any]]], site_doc: dict[str, Any], duration_h: float
) -> dict[str, float]:
    """Per tier: the hours from the outage that every load of it (on the bus or a V2L
    circuit) stayed on, counted from
    the island settled (`SETTLE_S` after the outage: a black start restores the loads
    one after another) to the first time one of them opened; 0 when one was still off at
    `SETTLE_S` (the policy never let it on). From the plant's relay record."""
    t0 = GRID_LOSS_S
    settled = t0 + SETTLE_S
    carried: dict[str, float] = {}
    for load in site_doc.get("loads", []):
        steps = relays.get(load["id"], [[0.0, True]])
        on = bool(steps[0][1])
        end = duration_h
        for t, closed in steps:
            if t <= settled:
                on = bool(closed)
            elif on and not closed:
                end = (t - t0) / 3600.0
                break
        hours = end if on else 0.0
        tier = load["tier"]
        carried[tier] = min(carried.get(tier, duration_h), hours)
    return {k: round(v, 4) for k, v in carried.items()}


def compare(
    targets: list[dict[str, Any]],
    fast: tuple[Any, Any],
    drills: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    """Per target: the share of the sampled starts each side carries; every disagreement."""
    rows = []
    disagreements = []
    starts = sorted(drills)
    for target in targets:
        tier, hours = target["tier"], int(target["hours"])
        carried, cause = (x[TIER_SETS.index(tier)] for x in fast)
        tier_set = TIER_SETS[: TIER_SETS.index(tier) + 1]
        fast_ok = drill_ok = 0
        for start in starts:
            drill = drills[start]
            if "error" in drill:
                disagreements.append(
                    {"start": start, "tier": tier, "hours": hours, "why": drill["error"]}
                )
                continue
            fast_h = int(carried[start])
            served = min(drill["carried_h"].get(t, float(hours)) for t in tier_set)
            f_ok = fast_h >= hours
            d_ok = served >= hours - SERVED_TOLERANCE_H
            fast_ok += f_ok
            drill_ok += d_ok
            if f_ok != d_ok:
                disagreements.append(
                    {
                        "start": start,
                        "tier": tier,
                        "hours": hours,
                        "fast_hours": fast_h,
                        "drill_hours": round(served, 3),
                        "why": _why(tier_set, fast_h, int(cause[start]), hours, drill),
                    }
                )
        count = len(starts)
        rows.append(
            {
                "tier": tier,
                "hours": hours,
                "starts": count,
                "fast_pct": round(100.0 * fast_ok / count, 2) if count else None,
                "drill_pct": round(100.0 * drill_ok / count, 2) if count else None,
            }
        )
    diffs = [abs(r["fast_pct"] - r["drill_pct"]) for r in rows if r["starts"]]
    return {
        "targets": rows,
        "max_diff_pct": max(diffs) if diffs else None,
        "disagreements": disagreements,
        "safety_violations": sum(d.get("safety_violations", 0) for d in drills.values()),
    }


def _why(
    tier_set: tuple[str, ...], fast_h: int, cause: int, hours: int, drill: dict[str, Any]
) -> str:
    parts = []
    if fast_h < hours:
        parts.append(f"fast model: lost at hour {fast_h} ({FAILURES[cause].replace('_', ' ')})")
    else:
        parts.append(f"fast model: carried {hours} h")
    carried = drill["carried_h"]
    dark = [t for t in tier_set if carried.get(t, float(hours)) < hours - SERVED_TOLERANCE_H]
    if dark:
        tier = dark[0]
        label = Tier.from_label(tier).label
        if carried[tier] == 0.0:
            what = f"{label} not on {SETTLE_S / 60:g} min into the outage"
        else:
            what = f"{label} shed at {carried[tier]:g} h"
        parts.append(f"drill: {what} (served {drill['served_h'].get(tier, 0.0):g} h in all)")
    else:
        parts.append(f"drill: carried {hours} h")
    unusual = [m for m in drill.get("modes", []) if m == "emergency"]
    if unusual:
        parts.append("the drill entered emergency")
    if drill.get("safety_violations"):
        parts.append(f"{drill['safety_violations']} safety violation(s)")
    return "; ".join(parts)
