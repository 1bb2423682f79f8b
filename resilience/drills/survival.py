"""Outage survival analysis: how often would the shelter ride out an outage of N hours?

Like NREL REopt's outage simulator: an outage starts at every hour of a
year-long hourly profile (load per tier and PV), and for each duration up to
`hours` we report the share of starts in which the life-safety tier (and,
separately, life-safety plus critical) is carried all the way through by the
vehicles parked at the bidirectional chargers and the PV.

The model, per hour of an outage (vectorised with numpy over all start hours):

- only vehicles on bidirectional chargers feed the site bus (V2L cars feed their
  own small circuits); a vehicle is there when its site-file availability
  (`available_hours` on `available_weekdays`) says so; away, its energy is
  frozen, and it comes back with what it left with;
- the island needs a grid-former: a present vehicle on a `can_form` charger
  with energy above its floor (owner's reserve plus the dispatch margin);
- the net load (tier load minus PV) is taken from the present vehicles in
  proportion to their energy above the floor (as `policies.vehicles` does);
  it must fit their summed discharge limit (charger rating or the car's own
  limit) and their energy above the floor;
- surplus PV charges the present vehicles, up to their charger ratings and to
  full; what they cannot take is curtailed;
- every vehicle starts the outage at `start_soc_pct`.

Energy [Wh], power [W], one step = one hour. The profile's hour 0 falls on
`first_weekday` (0 = Monday; the sample year 2025 starts on a Wednesday).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from resilience.config import SiteConfig, Vehicle

__all__ = [
    "FAILURES",
    "Profile",
    "ProfileError",
    "analyse",
    "availability",
    "load_profile",
    "outage_runs",
    "policy_runs",
    "survival",
]

COLUMNS = ("hour", "life_safety_w", "critical_w", "essential_w", "comfort_w", "pv_w")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FIRST_WEEKDAY_2025 = 2  # 2025-01-01 was a Wednesday

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class ProfileError(ValueError):
    """A profile that cannot be used: the message names the file, the line and the column."""


@dataclass(frozen=True)
class Profile:
    """Hourly series [W], one value per hour of the profile."""

    hour: npt.NDArray[np.int64]
    life_safety_w: FloatArray
    critical_w: FloatArray
    essential_w: FloatArray
    comfort_w: FloatArray
    pv_w: FloatArray
    source: str = "<profile>"


def load_profile(path: str | Path) -> Profile:
    """Read a CSV with the columns of `COLUMNS`; hours consecutive from 0, values >= 0."""
    file = str(path)
    try:
        with Path(path).open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ProfileError(f"{file}: line 1: missing column(s) {', '.join(missing)}")
            values: dict[str, list[float]] = {c: [] for c in COLUMNS}
            for line, row in enumerate(reader, start=2):
                for column in COLUMNS:
                    raw = row.get(column)
                    try:
                        value = float(raw) if raw is not None else float("nan")
                    except ValueError:
                        raise ProfileError(
                            f"{file}: line {line}: {column}: {raw!r} is not a number"
                        ) from None
                    if not np.isfinite(value) or value < 0:
                        raise ProfileError(
                            f"{file}: line {line}: {column}: {raw!r} is not a number >= 0"
                        )
                    values[column].append(value)
                if values["hour"][-1] != line - 2:
                    raise ProfileError(
                        f"{file}: line {line}: hour: {raw_hour(row)} where {line - 2} was expected"
                        " (hours must run 0, 1, 2, ...)"
                    )
    except OSError as exc:
        raise ProfileError(f"{file}: {exc.strerror or exc}") from None
    if not values["hour"]:
        raise ProfileError(f"{file}: no rows")
    return Profile(
        hour=np.asarray(values["hour"], dtype=np.int64),
        life_safety_w=np.asarray(values["life_safety_w"]),
        critical_w=np.asarray(values["critical_w"]),
        essential_w=np.asarray(values["essential_w"]),
        comfort_w=np.asarray(values["comfort_w"]),
        pv_w=np.asarray(values["pv_w"]),
        source=file,
    )


def raw_hour(row: dict[str, Any]) -> str:
    return repr(row.get("hour"))


def availability(vehicle: Vehicle, n_hours: int, first_weekday: int) -> BoolArray:
    """Whether the vehicle is parked at the shelter in each hour of the profile."""
    hours = np.arange(n_hours)
    hour_of_day = hours % 24 + 0.5  # the middle of the hour
    weekday = (first_weekday + hours // 24) % 7
    days = {WEEKDAYS.index(d) for d in vehicle.available_weekdays}
    on_day = np.isin(weekday, sorted(days))
    in_hours = np.zeros(n_hours, dtype=bool)
    for start, end in vehicle.available_hours:
        in_hours |= (hour_of_day >= start) & (hour_of_day < end)
    result: BoolArray = on_day & in_hours
    return result


@dataclass(frozen=True)
class Fleet:
    """The vehicles on bidirectional chargers, as arrays (one row per vehicle)."""

    ids: tuple[str, ...]
    capacity_wh: FloatArray
    floor_wh: FloatArray  # energy at the discharge floor (reserve + margin)
    limit_w: FloatArray  # discharge and charge limit
    can_form: BoolArray
    present: BoolArray  # (vehicles, hours)


def fleet_of(config: SiteConfig, n_hours: int, first_weekday: int) -> Fleet:
    vehicles = [v for v in config.vehicles if v.charger is not None]
    margin = config.dispatch.reserve_margin_pct
    capacity = np.array([v.capacity_wh for v in vehicles], dtype=float)
    floor = np.array(
        [min(100.0, v.reserve_soc_pct + margin) / 100.0 * v.capacity_wh for v in vehicles]
    )
    limits = []
    for v in vehicles:
        assert v.charger is not None
        rating = config.devices[v.charger].rating_w or 0.0
        limits.append(min(rating, v.max_discharge_w) if v.max_discharge_w else rating)
    can_form = np.array([config.devices[v.charger or ""].can_form for v in vehicles], dtype=bool)
    present = (
        np.array([availability(v, n_hours, first_weekday) for v in vehicles], dtype=bool)
        if vehicles
        else np.zeros((0, n_hours), dtype=bool)
    )
    return Fleet(
        tuple(v.id for v in vehicles),
        capacity,
        floor,
        np.array(limits, dtype=float),
        can_form,
        present,
    )


FAILURES = ("", "no_grid_former", "power", "energy", "endurance_policy")
"""Why an outage was lost (`outage_runs`' and `policy_runs`' cause codes; 0: it was not;
4: the endurance policy shed the tier to keep the energy for the tiers above)."""


def outage_runs(
    load_w: FloatArray,
    pv_w: FloatArray,
    fleet: Fleet,
    hours: int,
    start_soc_pct: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per start hour: how many whole hours the load is carried (up to `hours`), and why it
    is lost (an index into `FAILURES`: no grid-former above its floor, the net load beyond
    the present cars' discharge limits, or their energy above the floors used up)."""
    n = len(load_w)
    starts = np.arange(n)
    v = len(fleet.ids)
    energy = np.repeat((fleet.capacity_wh * start_soc_pct / 100.0)[:, None], n, axis=1)
    capacity = fleet.capacity_wh[:, None]
    floor = fleet.floor_wh[:, None]
    limit = fleet.limit_w[:, None]
    can_form = fleet.can_form[:, None]
    alive = np.ones(n, dtype=bool)
    carried = np.full(n, hours, dtype=np.int64)
    cause = np.zeros(n, dtype=np.int64)
    eps = 1e-6
    for k in range(hours):
        at = (starts + k) % n
        present = fleet.present[:, at] if v else np.zeros((0, n), dtype=bool)
        usable = np.where(present, np.maximum(energy - floor, 0.0), 0.0)
        running = usable > eps
        former = (running & can_form).any(axis=0)
        net = load_w[at] - pv_w[at]
        need = np.maximum(net, 0.0)
        total = usable.sum(axis=0)
        power = np.where(running, limit, 0.0).sum(axis=0)
        ok = former & (need <= power + eps) & (need <= total + eps)
        taken = np.minimum(need, total)
        with np.errstate(invalid="ignore", divide="ignore"):
            part = np.where(total > 0, usable / np.where(total > 0, total, 1.0), 0.0)
        energy = energy - part * taken
        surplus = np.maximum(-net, 0.0) * former  # PV alone cannot hold the bus
        room = np.where(present, np.maximum(capacity - energy, 0.0), 0.0)
        room_total = room.sum(axis=0)
        charge_power = np.where(room > eps, limit, 0.0).sum(axis=0)
        absorbed = np.minimum(surplus, np.minimum(room_total, charge_power))
        with np.errstate(invalid="ignore", divide="ignore"):
            fill = np.where(room_total > 0, room / np.where(room_total > 0, room_total, 1.0), 0.0)
        energy = energy + fill * absorbed
        lost = alive & ~ok
        carried[lost] = k
        why = np.where(~former, 1, np.where(need > power + eps, 2, 3))
        cause[lost] = why[lost]
        alive &= ok
    return carried, cause


def survival(
    load_w: FloatArray,
    pv_w: FloatArray,
    fleet: Fleet,
    hours: int,
    start_soc_pct: float,
) -> FloatArray:
    """Share [0..1] of start hours that survive 1, 2, ..., `hours` hours of outage."""
    carried, _ = outage_runs(load_w, pv_w, fleet, hours, start_soc_pct)
    shares: FloatArray = (carried[None, :] > np.arange(hours)[:, None]).mean(axis=1)
    return shares


def policy_runs(
    tier_w: FloatArray,
    pv_w: FloatArray,
    fleet: Fleet,
    hours: int,
    start_soc_pct: float,
    targets_h: tuple[float, ...],
    hysteresis_h: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """`outage_runs` with the controller's endurance policy (`policies.energy`), per tier.

    `tier_w`: (tiers, hours) load of each tier, highest first. Every hour the lowest tier
    kept on is the lowest whose staircase (each tier above it and itself times its
    target, `targets_h`) the energy above the present cars' floors covers (a shed tier
    comes back only with `hysteresis_h` hours of its load to spare; when even the top
    tier's staircase is not covered, it alone is kept); then the power balance sheds
    from the bottom what the present cars cannot carry this hour. Tier k is carried
    while both keep it on. Returns, per tier (rows) and start (columns), the whole hours
    carried and why it was lost (`FAILURES`).
    """
    tiers, n = tier_w.shape
    starts = np.arange(n)
    v = len(fleet.ids)
    energy = np.repeat((fleet.capacity_wh * start_soc_pct / 100.0)[:, None], n, axis=1)
    capacity = fleet.capacity_wh[:, None]
    floor = fleet.floor_wh[:, None]
    limit = fleet.limit_w[:, None]
    can_form = fleet.can_form[:, None]
    target = np.asarray(targets_h, dtype=float)[:, None]
    level = np.full(n, -1, dtype=np.int64)  # the lowest tier kept on (-1: none yet)
    alive = np.ones((tiers, n), dtype=bool)
    carried = np.full((tiers, n), hours, dtype=np.int64)
    cause = np.zeros((tiers, n), dtype=np.int64)
    eps = 1e-6
    for k in range(hours):
        at = (starts + k) % n
        present = fleet.present[:, at] if v else np.zeros((0, n), dtype=bool)
        usable = np.where(present, np.maximum(energy - floor, 0.0), 0.0)
        running = usable > eps
        former: BoolArray = np.asarray((running & can_form).any(axis=0), dtype=bool)
        total = usable.sum(axis=0)
        power = np.where(running, limit, 0.0).sum(axis=0)
        draw = tier_w[:, at]  # (tiers, n)
        stair = np.cumsum(draw * target, axis=0)
        kept = np.zeros(n, dtype=np.int64)
        for t in range(1, tiers):
            stays = (t <= level) & (total + eps >= stair[t])
            comes = (t > level) & (total + eps >= stair[t] + hysteresis_h * draw[t])
            kept = np.where((kept == t - 1) & (stays | comes), t, kept)
        pv = pv_w[at]
        cumulative = np.cumsum(draw, axis=0)
        fits = former[None, :] & (
            cumulative - pv[None, :] <= np.minimum(power, total)[None, :] + eps
        )
        fit_level = np.where(fits.any(axis=0), tiers - 1 - np.argmax(fits[::-1], axis=0), -1)
        served = np.minimum(kept, fit_level)
        level = kept
        load = np.where(
            served >= 0, np.take_along_axis(cumulative, np.maximum(served, 0)[None, :], 0)[0], 0.0
        )
        net = load - pv
        need = np.maximum(net, 0.0)
        taken = np.minimum(need, total)
        with np.errstate(invalid="ignore", divide="ignore"):
            part = np.where(total > 0, usable / np.where(total > 0, total, 1.0), 0.0)
        energy = energy - part * taken
        surplus = np.maximum(-net, 0.0) * former
        room = np.where(present, np.maximum(capacity - energy, 0.0), 0.0)
        room_total = room.sum(axis=0)
        charge_power = np.where(room > eps, limit, 0.0).sum(axis=0)
        absorbed = np.minimum(surplus, np.minimum(room_total, charge_power))
        with np.errstate(invalid="ignore", divide="ignore"):
            fill = np.where(room_total > 0, room / np.where(room_total > 0, room_total, 1.0), 0.0)
        energy = energy + fill * absorbed
        for t in range(tiers):
            ok = served >= t
            lost = alive[t] & ~ok
            carried[t, lost] = k
            why = np.where(
                ~former,
                1,
                np.where(kept < t, 4, np.where(cumulative[t] - pv > power + eps, 2, 3)),
            )
            cause[t, lost] = why[lost]
            alive[t] &= ok
    return carried, cause


def analyse(
    config: SiteConfig,
    profile: Profile,
    hours: int,
    *,
    start_soc_pct: float = 80.0,
    first_weekday: int = FIRST_WEEKDAY_2025,
) -> dict[str, Any]:
    """The survival report: shares per duration for both tier sets, with the assumptions."""
    started = time.perf_counter()
    n = len(profile.hour)
    fleet = fleet_of(config, n, first_weekday)
    life = survival(profile.life_safety_w, profile.pv_w, fleet, hours, start_soc_pct)
    crit = survival(
        profile.life_safety_w + profile.critical_w, profile.pv_w, fleet, hours, start_soc_pct
    )
    elapsed = time.perf_counter() - started
    vehicles = []
    for i, vid in enumerate(fleet.ids):
        vehicle = next(v for v in config.vehicles if v.id == vid)
        vehicles.append(
            {
                "id": vid,
                "connector": vehicle.charger,
                "capacity_kwh": round(vehicle.capacity_wh / 1000, 2),
                "reserve_soc_pct": vehicle.reserve_soc_pct,
                "can_form": bool(fleet.can_form[i]),
                "available_hours_per_week": round(
                    float(fleet.present[i].sum()) / max(n, 1) * 168, 1
                ),
            }
        )
    durations = list(range(1, hours + 1))
    return {
        "site_name": config.site.name,
        "profile": profile.source,
        "starts": n,
        "hours": hours,
        "start_soc_pct": start_soc_pct,
        "durations_h": durations,
        "survival_pct": {
            "life_safety": [round(float(x) * 100, 3) for x in life],
            "critical": [round(float(x) * 100, 3) for x in crit],
        },
        "survives_all_starts_h": {
            "life_safety": _full_hours(life),
            "critical": _full_hours(crit),
        },
        "compute_seconds": round(elapsed, 4),
        "vehicles": vehicles,
        "assumptions": [
            "an outage starts at every hour of the profile (wrapping round its end)",
            f"vehicles on bidirectional chargers start at {start_soc_pct:g} % and are never"
            " discharged below their owner's reserve plus the dispatch margin",
            "a vehicle is at the shelter when its available_hours/available_weekdays say so;"
            " away, its energy is frozen",
            "the island needs a vehicle on a grid-forming charger above its reserve",
            "V2L cars feed their own circuits and are not counted for the bus",
            "hourly energy balance: PV first, then the vehicles in proportion to their energy"
            " above reserve, within their summed discharge limits; surplus PV charges them",
        ],
    }


def _full_hours(shares: FloatArray) -> int:
    """The longest duration every start survives."""
    full = np.flatnonzero(shares < 1.0 - 1e-12)
    return int(full[0]) if full.size else len(shares)
