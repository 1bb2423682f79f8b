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

`policy_runs` is the same model with the controller's endurance policy and island rules,
per tier, for `resilience plan`: deciding on what the controller decides on (the energy
above the reserves, a shed tier at its last draw, sheds within the hour, loads the
grid-former can never pick up: `IslandRules`, `island_rules`), for the bus and for each
V2L outlet's own circuit on its donor (`v2l_circuits`), with cars that arrive during the
outage (`Arrivals`).

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
from resilience.model import Tier
from resilience.policies.energy import staircase_h

__all__ = [
    "FAILURES",
    "Arrivals",
    "Circuit",
    "IslandRules",
    "Profile",
    "ProfileError",
    "analyse",
    "availability",
    "island_rules",
    "load_profile",
    "outage_runs",
    "policy_runs",
    "survival",
    "v2l_circuits",
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
    # energy at the owner's reserve, which the controller's endurance policy counts from;
    # None: the floor (`policy_runs` only)
    reserve_wh: FloatArray | None = None


def fleet_of(config: SiteConfig, n_hours: int, first_weekday: int) -> Fleet:
    vehicles = [v for v in config.vehicles if v.charger is not None]
    margin = config.dispatch.reserve_margin_pct
    capacity = np.array([v.capacity_wh for v in vehicles], dtype=float)
    floor = np.array(
        [min(100.0, v.reserve_soc_pct + margin) / 100.0 * v.capacity_wh for v in vehicles]
    )
    reserve = np.array([v.reserve_soc_pct / 100.0 * v.capacity_wh for v in vehicles])
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
        reserve,
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


@dataclass(frozen=True)
class IslandRules:
    """What the controller's island does beyond the energy balance, from the site file
    (`island_rules`), for `policy_runs`. Tiers are highest first (life-safety ...).

    - `targets_h`, `hysteresis_h`: the endurance policy's targets and hysteresis;
      the staircase uses `policies.energy.staircase_h` of them, as the controller does;
    - `on_share`: per tier, the share of its draw [0..1] the island can switch on at all:
      a load is restored only into the grid-former's headroom with its rating plus
      `restore_hysteresis_pct` and the shed margin (`modes`' `_balance`), so a load
      bigger than that stays dark for the whole outage, and its tier is never carried;
    - `shed_margin_w`: the headroom kept above the load served [W];
    - `pv_firm_fraction`: the share of the PV counted as supply capacity;
    - `endurance_pv_fraction`: the share of the PV the endurance policy counts as lasting
      (`pv_firm_fraction` with `endurance_counts_pv`, else 0).
    """

    targets_h: tuple[float, ...]
    hysteresis_h: float
    on_share: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    shed_margin_w: float = 0.0
    pv_firm_fraction: float = 0.0
    endurance_pv_fraction: float = 0.0


def island_rules(config: SiteConfig, circuit: str = "bus") -> IslandRules:
    """The site file's `IslandRules` for one supply circuit: the bus (the cars on
    chargers, the largest grid-former's limit) or a V2L outlet's circuit (its own car,
    the outlet's rating; no PV)."""
    dispatch = config.dispatch
    targets = dispatch.tier_targets_h()
    if circuit == "bus":
        formers = [
            v
            for v in config.vehicles
            if v.charger is not None and config.devices[v.charger].can_form
        ]
        former_w = max((_limit_w(config, v) for v in formers), default=0.0)
    else:
        former_w = config.devices[circuit].rating_w or 0.0
    extra = 1.0 + dispatch.restore_hysteresis_pct / 100.0
    shares = []
    for tier in Tier:
        rated = [
            ld.rated_power_w for ld in config.loads if ld.tier is tier and ld.supply == circuit
        ]
        fits = [w for w in rated if w * extra + dispatch.shed_margin_w <= former_w]
        shares.append(sum(fits) / sum(rated) if sum(rated) > 0 else 1.0)
    bus = circuit == "bus"
    return IslandRules(
        targets_h=tuple(targets[t] for t in Tier),
        hysteresis_h=dispatch.endurance_hysteresis_h,
        on_share=tuple(shares),
        shed_margin_w=dispatch.shed_margin_w,
        pv_firm_fraction=dispatch.pv_firm_fraction if bus else 0.0,
        endurance_pv_fraction=(
            dispatch.pv_firm_fraction if bus and dispatch.endurance_counts_pv else 0.0
        ),
    )


@dataclass(frozen=True)
class Circuit:
    """One V2L outlet's circuit for `policy_runs`: its donor car, its rules, the draw of
    its loads per tier (highest first) and hour, and the tiers it has loads of."""

    outlet: str
    fleet: Fleet
    rules: IslandRules
    tier_w: FloatArray  # (tiers, hours)
    has_tier: tuple[bool, ...]


def v2l_circuits(config: SiteConfig, profile: Profile, first_weekday: int) -> list[Circuit]:
    """The site's V2L outlets with a car on them, as circuits of their own (the controller
    runs each on its own car, with the same endurance targets). The profile gives the
    bus's load per tier; a V2L load draws the same share of its rating as its tier's bus
    loads do (as the plan's drills set it: `load_change` per tier), at most 10 times."""
    n = len(profile.hour)
    series = (profile.life_safety_w, profile.critical_w, profile.essential_w, profile.comfort_w)
    bus_rated = [
        sum(ld.rated_power_w for ld in config.loads if ld.tier is t and ld.supply == "bus")
        for t in Tier
    ]
    factor = [
        np.minimum(10.0, s / r) if r > 0 else np.ones(n)
        for s, r in zip(series, bus_rated, strict=True)
    ]
    margin = config.dispatch.reserve_margin_pct
    out = []
    for name, device in config.devices_of("v2l_outlet").items():
        car = next((v for v in config.vehicles if v.outlet == name), None)
        if car is None:
            continue
        rated = [
            sum(ld.rated_power_w for ld in config.loads if ld.tier is t and ld.supply == name)
            for t in Tier
        ]
        limit = device.rating_w or 0.0
        if car.max_discharge_w:
            limit = min(limit, car.max_discharge_w)
        fleet = Fleet(
            (car.id,),
            np.array([car.capacity_wh]),
            np.array([min(100.0, car.reserve_soc_pct + margin) / 100.0 * car.capacity_wh]),
            np.array([limit]),
            np.array([True]),
            availability(car, n, first_weekday)[None, :],
            np.array([car.reserve_soc_pct / 100.0 * car.capacity_wh]),
        )
        tier_w = np.vstack([f * r for f, r in zip(factor, rated, strict=True)])
        has = tuple(any(r > 0 for r in rated[: t + 1]) for t in range(len(rated)))
        out.append(Circuit(name, fleet, island_rules(config, name), tier_w, has))
    return out


def _limit_w(config: SiteConfig, v: Vehicle) -> float:
    """[W] a car's discharge limit on its charger: the charger's rating or the car's own."""
    rating = config.devices[v.charger or ""].rating_w or 0.0
    return min(rating, v.max_discharge_w) if v.max_discharge_w else rating


def _stair_wh(
    draw: FloatArray, stairs: FloatArray, pv_w: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per tier t (rows) and start: the controller's `energy_needed_wh` [Wh] with tiers
    0..t on, each for its staircase target (`policies.energy.thresholds`' one pass), and
    the drain [W] of tiers 0..t net of the PV the policy counts."""
    drain: FloatArray = np.maximum(np.cumsum(draw, axis=0) - pv_w[None, :], 0.0)
    steps = stairs - np.append(stairs[1:], 0.0)
    above = np.cumsum(drain * steps[:, None], axis=0) - drain * steps[:, None]
    need: FloatArray = above + drain * stairs[:, None]
    return need, drain


@dataclass(frozen=True)
class Arrivals:
    """Cars that arrive during an outage, one row per charger kept for them ("slot"): per
    slot and start hour (columns), the outage hour its car arrives (`hours` or more:
    none does) and the energy [Wh] it brings above its reserve; it stays to the end."""

    capacity_wh: FloatArray  # per slot
    reserve_wh: FloatArray
    floor_wh: FloatArray  # reserve plus the dispatch margin
    limit_w: FloatArray  # the slot's charger rating
    arrive_h: npt.NDArray[np.int64]  # (slots, starts)
    energy_wh: FloatArray  # (slots, starts)


def policy_runs(
    tier_w: FloatArray,
    pv_w: FloatArray,
    fleet: Fleet,
    hours: int,
    start_soc_pct: float,
    rules: IslandRules,
    arrivals: Arrivals | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """`outage_runs` with the controller's endurance policy (`policies.energy`), per tier.

    `tier_w`: (tiers, hours) demand of each tier, highest first. The model decides on the
    quantities the controller does: the energy above the present cars' reserves (not
    their discharge floors), each tier's demand on the staircase of `staircase_h`, a shed
    tier back (at the start of an hour) only with `hysteresis_h` hours of the drain of it
    and the tiers above to spare, everything on when the island starts. Within an hour the
    energy falls while the draw stays: a tier whose staircase the energy would cross
    before the hour ends is shed at that moment (the controller works it out every
    second), so it is lost in that hour, and the rest of the hour drains less. The power
    balance keeps the tiers whose load plus the shed margin fits the present cars'
    discharge limits and the firm PV, and whose energy for the hour is there; a tier with
    a load the island can never switch on (`rules.on_share` < 1) is never carried, and
    only its share drains the cars. Tier k is carried while all of this keeps it on.
    Returns, per tier (rows) and start (columns), the whole hours carried and why it was
    lost (`FAILURES`). `arrivals`: cars arriving during the outage (donors), grid-following,
    each there from the start of the hour it arrives in.
    """
    tiers, n = tier_w.shape
    starts = np.arange(n)
    energy = np.repeat((fleet.capacity_wh * start_soc_pct / 100.0)[:, None], n, axis=1)
    capacity = fleet.capacity_wh[:, None]
    floor = fleet.floor_wh[:, None]
    reserve = (fleet.reserve_wh if fleet.reserve_wh is not None else fleet.floor_wh)[:, None]
    limit = fleet.limit_w[:, None]
    can_form = fleet.can_form[:, None]
    if arrivals is not None:
        energy = np.vstack([energy, arrivals.reserve_wh[:, None] + arrivals.energy_wh])
        capacity = np.vstack([capacity, arrivals.capacity_wh[:, None]])
        floor = np.vstack([floor, arrivals.floor_wh[:, None]])
        reserve = np.vstack([reserve, arrivals.reserve_wh[:, None]])
        limit = np.vstack([limit, arrivals.limit_w[:, None]])
        can_form = np.vstack([can_form, np.zeros((len(arrivals.limit_w), 1), dtype=bool)])
    stair_map = staircase_h(dict(zip(Tier, rules.targets_h, strict=True)), rules.hysteresis_h)
    stairs = np.array([stair_map[t] for t in Tier][:tiers], dtype=float)
    share = np.asarray(rules.on_share[:tiers], dtype=float)[:, None]
    never_on = share[:, 0] < 1.0 - 1e-9
    level = np.full(n, tiers - 1, dtype=np.int64)  # the energy policy's lowest tier on
    was_on = np.full(n, tiers - 1, dtype=np.int64)  # the lowest tier on (on the grid: all)
    first = tier_w[:, starts]
    fixed = (1.0 - share) * first  # loads never on again: counted at their draw on the grid
    seen = share * first  # the others: their draw when last on
    alive = np.ones((tiers, n), dtype=bool)
    carried = np.full((tiers, n), hours, dtype=np.int64)
    cause = np.zeros((tiers, n), dtype=np.int64)
    eps = 1e-6
    tier_index = np.arange(tiers)[:, None]
    for k in range(hours):
        at = (starts + k) % n
        present = fleet.present[:, at] if len(fleet.ids) else np.zeros((0, n), dtype=bool)
        if arrivals is not None:
            present = np.vstack([present, arrivals.arrive_h <= k])
        usable = np.where(present, np.maximum(energy - floor, 0.0), 0.0)
        banked = np.where(present, np.maximum(energy - reserve, 0.0), 0.0).sum(axis=0)
        running = usable > eps
        former: BoolArray = np.asarray((running & can_form).any(axis=0), dtype=bool)
        total = usable.sum(axis=0)
        power = np.where(running, limit, 0.0).sum(axis=0)
        current = share * tier_w[:, at]  # (tiers, n) what the loads that can be on draw
        # the demand the policy counts: measured when on, the draw when last on when off
        # (a tier on as the hour starts draws this hour's figure before any shed)
        seen = np.where(tier_index <= was_on[None, :], current, seen)
        draw = seen + fixed
        pv = pv_w[at]
        need, drain = _stair_wh(draw, stairs, pv * rules.endurance_pv_fraction)
        # the energy policy at the start of the hour: a tier on stays while its staircase
        # is covered; a tier off comes back with the hysteresis to spare
        back = need + rules.hysteresis_h * drain
        allowed = (tier_index <= level[None, :]) & (banked[None, :] + eps >= need)
        allowed |= (tier_index > level[None, :]) & (banked[None, :] + eps >= back)
        # the top tier with any demand is always allowed, to the end; a tier that draws
        # nothing holds no tier below it back (the controller skips it)
        top = np.argmax(draw > 0, axis=0)
        allowed |= (tier_index <= top[None, :]) | (draw <= 0)
        kept = np.where(allowed.all(axis=0), tiers - 1, np.argmin(allowed, axis=0) - 1)
        # the power balance: what the present cars and the firm PV can carry this hour
        served_w = np.cumsum(current, axis=0)  # (tiers, n) tiers 0..t on
        fits = former[None, :] & (
            served_w + rules.shed_margin_w <= power[None, :] + pv[None, :] * rules.pv_firm_fraction
        )
        fits &= served_w - pv[None, :] <= total[None, :] + eps
        fit_level = np.where(fits.all(axis=0), tiers - 1, np.argmin(fits, axis=0) - 1)
        seen = np.where(tier_index <= np.minimum(kept, fit_level)[None, :], current, seen)
        # within the hour: the energy falls at the net draw; a tier is shed when it
        # crosses the tier's staircase (never the top tier)
        lvl = kept.copy()
        left_h = np.ones(n)
        used = np.zeros(n)  # [Wh] load served this hour
        for _ in range(tiers - 1):
            on = np.minimum(lvl, fit_level)
            load = np.where(
                on >= 0, np.take_along_axis(served_w, np.maximum(on, 0)[None], 0)[0], 0.0
            )
            rate = np.maximum(load - pv, 0.0)
            threshold = np.take_along_axis(need, np.maximum(lvl, 0)[None], 0)[0]
            now_wh = banked - np.maximum(used - pv * (1.0 - left_h), 0.0)
            crosses = (lvl > top) & (rate > 0) & (now_wh - rate * left_h < threshold - eps)
            tau = np.clip((now_wh - threshold) / np.where(rate > 0, rate, 1.0), 0.0, left_h)
            tau = np.where(crosses, tau, left_h)
            used = used + load * tau
            left_h = left_h - tau
            lvl = np.where(crosses, lvl - 1, lvl)
        on = np.minimum(lvl, fit_level)
        load = np.where(on >= 0, np.take_along_axis(served_w, np.maximum(on, 0)[None], 0)[0], 0.0)
        used = used + load * left_h
        served = on
        level = lvl
        was_on = on
        net = used - pv
        need_wh = np.maximum(net, 0.0)
        taken = np.minimum(need_wh, total)
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
            ok = (served >= t) & ~never_on[t]
            lost = alive[t] & ~ok
            carried[t, lost] = k
            why = np.where(
                ~former,
                1,
                np.where(
                    never_on[t] | (fit_level < t) & (served_w[t] + rules.shed_margin_w > power),
                    2,
                    np.where(fit_level < t, 3, 4),
                ),
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
