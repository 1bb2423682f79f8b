"""The sweep: every combination of a plan, its site, its survival, its cost; the frontier.

Pure functions (no I/O but reading nothing: the caller passes the site document and
the profile), so that a Dask worker can run `evaluate` on one combination and the
answer depends only on its inputs:

- `combinations(plan)`: every combination of the varied items, in a fixed order;
- `derive_site(doc, combo)`: the site document as a user would edit it for that
  combination (chargers copied from the site's first bidirectional charger, the first
  `grid_forming` of them able to form the grid and interlocked with the PCC, each with a
  fleet car copied from the site's fleet cars in turn; V2L outlets kept in file order
  with their loads and donors; the PV inverter's rating; every car's reserve and
  parked hours), validated by `parse_site` exactly as `check-config` would;
- `evaluate(...)`: the fast outage survival model (`resilience.drills.survival`) over
  every start hour of the profile, per tier set, on the bus and every V2L circuit, with
  the PV scaled to the kWp tried and the plan's donors;
  the targets met or not; the cost;
- `frontier(results)`: among the combinations meeting every target, the cheapest, and
  each dearer one only when it survives more at the first target (a Pareto frontier);
- `sample_starts(seed, ...)`: the seeded outage starts the drills check;
- `donor_draws(donors, seed, ...)`: the plan's donor arrivals, drawn per start from its
  own seeded generator, for the fast model and the drills alike (`donor_arrivals`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import random
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from resilience.config import ConfigError, SiteConfig, parse_site
from resilience.drills.survival import (
    FIRST_WEEKDAY_2025,
    Arrivals,
    FloatArray,
    Profile,
    fleet_of,
    island_rules,
    policy_runs,
    v2l_circuits,
)
from resilience.planning.plan_file import Donors, Plan

__all__ = [
    "Combination",
    "combinations",
    "cost_of",
    "derive_site",
    "donor_arrivals",
    "donor_draws",
    "evaluate",
    "evaluate_many",
    "frontier",
    "result_key",
    "runs",
    "sample_starts",
    "site_kwp",
    "tier_load",
]

TIER_SETS = ("life_safety", "critical", "essential")
"""A tier's survival: it and every tier above it carried (life-safety, +critical, +essential)."""
CHARGER_PORT_BASE = 16000
"""Ports of the plan's chargers (the reference site's devices use 150xx)."""
DONOR_PORT_BASE = 16100
"""Ports of the chargers kept for donors (`[donors] chargers`)."""


@dataclass(frozen=True)
class Combination:
    chargers: int
    grid_forming: int
    v2l_outlets: int
    pv_kwp: float
    reserve_soc_pct: float | None  # None: every car keeps the site file's reserve
    fleet_hours: tuple[tuple[float, float], ...] | None  # None: the site file's hours
    # tier -> endurance target [h] replacing the site file's; None: the site file's
    endurance_targets_h: tuple[tuple[str, float], ...] | None = None

    def label(self) -> str:
        parts = [
            f"{self.chargers} chargers ({self.grid_forming} grid-forming)",
            f"{self.v2l_outlets} V2L",
            f"{self.pv_kwp:g} kWp",
        ]
        if self.reserve_soc_pct is not None:
            parts.append(f"reserve {self.reserve_soc_pct:g} %")
        if self.fleet_hours is not None:
            parts.append("cars " + ",".join(f"{a:g}-{b:g}h" for a, b in self.fleet_hours))
        if self.endurance_targets_h is not None:
            parts.append(
                "endurance " + ",".join(f"{t} {h:g}h" for t, h in self.endurance_targets_h)
            )
        return ", ".join(parts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Combination:
        hours = data.get("fleet_hours")
        targets = data.get("endurance_targets_h")
        return cls(
            int(data["chargers"]),
            int(data["grid_forming"]),
            int(data["v2l_outlets"]),
            float(data["pv_kwp"]),
            None if data.get("reserve_soc_pct") is None else float(data["reserve_soc_pct"]),
            tuple((float(a), float(b)) for a, b in hours) if hours else None,
            tuple((str(t), float(h)) for t, h in targets) if targets else None,
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fleet_hours"] = [list(s) for s in self.fleet_hours] if self.fleet_hours else None
        data["endurance_targets_h"] = (
            [list(t) for t in self.endurance_targets_h] if self.endurance_targets_h else None
        )
        return data


def site_kwp(site: SiteConfig) -> float:
    """The site file's PV [kWp]: its inverters' ratings (the profile's PV is for these)."""
    return sum(d.rating_w or 0.0 for d in site.pv_inverters.values()) / 1000.0


def combinations(plan: Plan, site: SiteConfig) -> list[Combination]:
    """Every combination of the varied items (grid-forming ones never more than chargers)."""
    vary = plan.vary
    outlets = vary.v2l_outlets or [len(site.devices_of("v2l_outlet"))]
    pv = vary.pv_kwp or [site_kwp(site)]
    reserves: list[float | None] = list(vary.reserve_soc_pct) or [None]
    hours: list[tuple[tuple[float, float], ...] | None] = [
        tuple((float(a), float(b)) for a, b in spans) for spans in vary.fleet_hours
    ] or [None]
    endurance: list[tuple[tuple[str, float], ...] | None] = [
        tuple((k, float(v)) for k, v in t.model_dump().items() if v is not None)
        for t in vary.endurance_targets_h
    ] or [None]
    return [
        Combination(n, g, o, float(p), r, h, e)
        for n, g, o, p, r, h, e in itertools.product(
            vary.chargers, vary.grid_forming, outlets, pv, reserves, hours, endurance
        )
        if g <= n
    ]


def derive_site(doc: dict[str, Any], combo: Combination, donor_chargers: int = 0) -> dict[str, Any]:
    """The site document for a combination (module doc), with `donor_chargers` more
    grid-following chargers and no car on them (`donor_charger_1` ..., for the plan's
    `[donors]`); the input is not changed."""
    doc = copy.deepcopy(doc)
    devices: dict[str, Any] = doc["devices"]
    chargers = [n for n, d in devices.items() if d.get("driver") == "bidirectional_charger"]
    template = {k: v for k, v in devices[chargers[0]].items() if k != "serial_port"}
    cars = [v for v in doc.get("vehicles", []) if v.get("charger") in chargers]
    others = [v for v in doc.get("vehicles", []) if v.get("charger") not in chargers]
    for name in chargers:
        del devices[name]
    new_cars = []
    for i in range(1, combo.chargers + 1):
        name = f"charger_{i}"
        devices[name] = {
            **template,
            "port": CHARGER_PORT_BASE + i,
            "can_form": i <= combo.grid_forming,
            "pcc_interlock": i <= combo.grid_forming,
        }
        car = dict(cars[(i - 1) % len(cars)]) if cars else {}
        car.update({"id": f"fleet_car_{i}", "name": f"Fleet car {i}", "charger": name})
        new_cars.append(car)
    for j in range(1, donor_chargers + 1):
        devices[f"donor_charger_{j}"] = {
            **template,
            "port": DONOR_PORT_BASE + j,
            "can_form": False,
            "pcc_interlock": False,
        }
    outlets = [n for n, d in devices.items() if d.get("driver") == "v2l_outlet"]
    dropped = set(outlets[combo.v2l_outlets :])
    for name in dropped:
        del devices[name]
    doc["loads"] = [ld for ld in doc.get("loads", []) if ld.get("supply") not in dropped]
    vehicles = new_cars + [v for v in others if v.get("outlet") not in dropped]
    for car in vehicles:
        if car.get("charger") is None:
            continue
        if combo.reserve_soc_pct is not None:
            car["reserve_soc_pct"] = combo.reserve_soc_pct
        if combo.fleet_hours is not None:
            car["available_hours"] = [list(s) for s in combo.fleet_hours]
    doc["vehicles"] = vehicles
    if combo.endurance_targets_h is not None:
        dispatch = doc.setdefault("dispatch", {})
        targets = dict(dispatch.get("endurance_targets_h", {}))
        targets.update(dict(combo.endurance_targets_h))
        dispatch["endurance_targets_h"] = targets
    inverters = [n for n, d in devices.items() if d.get("driver") == "sunspec_inverter"]
    if inverters:
        if combo.pv_kwp > 0:
            devices[inverters[0]]["rating_w"] = combo.pv_kwp * 1000.0 / len(inverters)
            for name in inverters[1:]:
                devices[name]["rating_w"] = combo.pv_kwp * 1000.0 / len(inverters)
        else:
            for name in inverters:
                del devices[name]
    return doc


def tier_load(profile: Profile, tier: str) -> FloatArray:
    """The load of a tier set [W] per hour: the tier and every tier above it."""
    load = profile.life_safety_w.copy()
    if tier in ("critical", "essential"):
        load = load + profile.critical_w
    if tier == "essential":
        load = load + profile.essential_w
    return load


def cost_of(plan: Plan, combo: Combination) -> float | None:
    costs = plan.costs
    if costs is None:
        return None
    return round(
        combo.chargers * costs.charger
        + combo.grid_forming * costs.grid_forming_extra
        + combo.v2l_outlets * costs.v2l_outlet
        + combo.pv_kwp * costs.pv_per_kwp
        + (plan.donors.chargers * costs.charger if plan.donors else 0.0),
        2,
    )


def result_key(plan: Plan, site_doc: dict[str, Any], profile: Profile, combo: Combination) -> str:
    """What a stored result was computed from: the combination, the site document, the
    profile's values and the plan's model settings (a change to any computes it again)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(combo.as_dict(), sort_keys=True).encode())
    digest.update(json.dumps(site_doc, sort_keys=True, default=str).encode())
    for series in (profile.life_safety_w, profile.critical_w, profile.essential_w, profile.pv_w):
        digest.update(np.ascontiguousarray(series).tobytes())
    settings = {
        "hours": plan.plan.hours,
        "start_soc_pct": plan.plan.start_soc_pct,
        "targets": [t.model_dump() for t in plan.targets],
        "costs": plan.costs.model_dump() if plan.costs else None,
        "donors": plan.donors.model_dump() if plan.donors else None,
        "seed": plan.plan.seed if plan.donors else None,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:24]


def evaluate(
    plan: Plan,
    site_doc: dict[str, Any],
    profile: Profile,
    base_kwp: float,
    combo: Combination,
    *,
    first_weekday: int = FIRST_WEEKDAY_2025,
) -> dict[str, Any]:
    """One combination: its site (valid or why not), survival curves, targets, cost."""
    doc = derive_site(site_doc, combo, plan.donors.chargers if plan.donors else 0)
    result: dict[str, Any] = {
        "combination": combo.as_dict(),
        "label": combo.label(),
        "cost": cost_of(plan, combo),
    }
    try:
        site = parse_site(doc, f"{site_doc.get('site', {}).get('name', 'site')} ({combo.label()})")
    except ConfigError as exc:
        result.update(
            valid=False, problems=[f"{p.key}: {p.reason}" for p in exc.problems], meets=False
        )
        return result
    pv_scale = combo.pv_kwp / base_kwp if base_kwp > 0 else 0.0
    arrivals = donor_arrivals(plan, site, len(profile.hour))
    carried, _ = runs(
        site, profile, pv_scale, plan.plan.hours, plan.plan.start_soc_pct, arrivals=arrivals
    )
    tiers = sorted(
        {t.tier for t in plan.targets} | {"life_safety", "critical"}, key=TIER_SETS.index
    )
    steps = np.arange(plan.plan.hours)[:, None]
    curves = {
        tier: (carried[TIER_SETS.index(tier)][None, :] > steps).mean(axis=1) for tier in tiers
    }
    targets = []
    for target in plan.targets:
        achieved = float(curves[target.tier][target.hours - 1]) * 100.0
        targets.append(
            {
                "tier": target.tier,
                "hours": target.hours,
                "share_pct": target.share_pct,
                "achieved_pct": round(achieved, 3),
                "met": achieved + 1e-9 >= target.share_pct,
            }
        )
    result.update(
        valid=True,
        problems=[],
        survival_pct={t: [round(float(x) * 100.0, 3) for x in c] for t, c in curves.items()},
        targets=targets,
        meets=all(t["met"] for t in targets),
    )
    return result


def evaluate_many(
    plan: Plan,
    site_doc: dict[str, Any],
    profile: Profile,
    base_kwp: float,
    combos: list[Combination],
) -> list[dict[str, Any]]:
    """`evaluate` for each of `combos`, in order: one Dask task's share of the sweep."""
    return [evaluate(plan, site_doc, profile, base_kwp, c) for c in combos]


def runs(
    site: SiteConfig,
    profile: Profile,
    pv_scale: float,
    hours: int,
    start_soc_pct: float,
    first_weekday: int = FIRST_WEEKDAY_2025,
    *,
    arrivals: Arrivals | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The fast model with the site's endurance policy: per tier (life-safety first) and
    start hour, the whole hours carried and why lost (`survival.policy_runs`), on every
    circuit the tier set has loads on: the bus (the cars on chargers and the PV) and each
    V2L outlet's own circuit (its donor car); a tier set is carried while every one of
    them carries it. `arrivals`: donors on the chargers kept for them (`donor_arrivals`)."""
    fleet = fleet_of(site, len(profile.hour), first_weekday)
    tier_w = np.vstack(
        [profile.life_safety_w, profile.critical_w, profile.essential_w, profile.comfort_w]
    )
    carried, cause = policy_runs(
        tier_w, profile.pv_w * pv_scale, fleet, hours, start_soc_pct, island_rules(site), arrivals
    )
    zeros = np.zeros(len(profile.hour))
    for circuit in v2l_circuits(site, profile, first_weekday):
        own, why = policy_runs(
            circuit.tier_w, zeros, circuit.fleet, hours, start_soc_pct, circuit.rules
        )
        for t, has in enumerate(circuit.has_tier):
            sooner = has & (own[t] < carried[t])
            carried[t] = np.where(sooner, own[t], carried[t])
            cause[t] = np.where(sooner, why[t], cause[t])
    return carried, cause


@functools.lru_cache(maxsize=8)
def donor_draws(
    donors: Donors, seed: int, n_starts: int, hours: int
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Per donor charger (rows) and start hour (columns): the outage hour its donor arrives
    (`hours`: none does) and the energy [Wh] it brings above its reserve. Each start draws
    from its own generator seeded with (`seed`, start): the same for the same seed, and a
    start's donors do not depend on which other starts are looked at. Each hour a Poisson
    number arrive; the first `chargers` take a charger each and stay, the rest are turned
    away; energies are normal, cut to what the car can hold above its reserve."""
    slots = donors.chargers
    arrive = np.full((slots, n_starts), hours, dtype=np.int64)
    energy = np.zeros((slots, n_starts))
    room_wh = donors.capacity_kwh * (1.0 - donors.reserve_soc_pct / 100.0) * 1000.0
    for start in range(n_starts):
        rng = np.random.default_rng([seed, start])
        counts = rng.poisson(donors.rate_per_h, hours)
        when = np.repeat(np.arange(hours), counts)[:slots]
        kwh = rng.normal(donors.energy_kwh, donors.energy_spread_kwh, len(when))
        arrive[: len(when), start] = when
        energy[: len(when), start] = np.clip(kwh * 1000.0, 0.0, room_wh)
    return arrive, energy


def donor_arrivals(plan: Plan, site: SiteConfig, n_starts: int) -> Arrivals | None:
    """The plan's `[donors]` as `survival.Arrivals` on the derived site's donor chargers."""
    donors = plan.donors
    if donors is None:
        return None
    arrive, energy = donor_draws(donors, plan.plan.seed, n_starts, plan.plan.hours)
    slots = donors.chargers
    capacity = donors.capacity_kwh * 1000.0
    reserve = donors.reserve_soc_pct / 100.0 * capacity
    margin = site.dispatch.reserve_margin_pct / 100.0 * capacity
    rating = [site.devices[f"donor_charger_{j}"].rating_w or 0.0 for j in range(1, slots + 1)]
    return Arrivals(
        capacity_wh=np.full(slots, capacity),
        reserve_wh=np.full(slots, reserve),
        floor_wh=np.full(slots, min(capacity, reserve + margin)),
        limit_w=np.asarray(rating, dtype=float),
        arrive_h=arrive,
        energy_wh=energy,
    )


def _size(result: dict[str, Any]) -> tuple[float, ...]:
    c = result["combination"]
    return (c["chargers"], c["grid_forming"], c["v2l_outlets"], c["pv_kwp"])


def frontier(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cheapest combinations meeting every target (module doc). Without costs, the
    smallest (fewest chargers, then grid-forming ones, outlets, kWp) stand for cheapest."""
    meeting = [r for r in results if r.get("meets")]
    meeting.sort(
        key=lambda r: (
            r["cost"] if r["cost"] is not None else 0.0,
            _size(r),
            -r["targets"][0]["achieved_pct"],
            r["label"],
        )
    )
    kept: list[dict[str, Any]] = []
    best = -1.0
    for r in meeting:
        share = r["targets"][0]["achieved_pct"]
        if not kept or share > best + 1e-9:
            kept.append(r)
            best = share
    return kept


def sample_starts(seed: int, n_hours: int, count: int) -> list[int]:
    """`count` distinct outage start hours of the profile, the same for the same seed."""
    return sorted(random.Random(seed).sample(range(n_hours), min(count, n_hours)))
