"""How much each parked vehicle may and should supply: reserve, grid-former, setpoints.

Owns the vehicle side of island dispatch: the discharge floor that protects
each owner's reserve, which vehicle forms the grid, the island's firm supply
capacity, and the split of the demand across vehicles. Units: power [W] (the
model's sign: + discharging to the bus, - charging from it), energy [Wh],
state of charge [%].

Safety rules enforced here: a vehicle is never asked to discharge at or below
`reserve_soc_pct + reserve_margin_pct` (the margin absorbs SoC reporting lag
and steps so the reserve itself is never crossed), and no setpoint exceeds the
charger's rating as reported in `max_discharge_w` / `max_charge_w`. Anything we
cannot read (unavailable, NaN) is treated as unable to supply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from resilience.config import DispatchSection
from resilience.model import ChargerState, OutletState, PVState, V2LState, VehicleState

_OUT_OF_ISLAND = frozenset({ChargerState.FAULT, ChargerState.UNPLUGGED})


def discharge_floor_pct(v: VehicleState | OutletState, cfg: DispatchSection) -> float:
    """The SoC [%] at which discharging stops: the owner's reserve plus our margin."""
    return v.reserve_soc_pct + cfg.reserve_margin_pct


def _connected(v: VehicleState) -> bool:
    """Answering, plugged in and not faulted: a charger we can command."""
    return v.available and v.plugged and v.state not in _OUT_OF_ISLAND


def can_discharge(v: VehicleState, cfg: DispatchSection) -> bool:
    """Whether this vehicle may supply the bus now: connected and above its floor."""
    return _connected(v) and v.soc_pct > discharge_floor_pct(v, cfg)


def discharge_limit_w(v: VehicleState, cfg: DispatchSection) -> float:
    """The most [W] this vehicle may discharge now: its rating, or 0 when it may not."""
    if not can_discharge(v, cfg) or not v.max_discharge_w > 0:
        return 0.0
    return v.max_discharge_w


def _charge_limit_w(v: VehicleState) -> float:
    """The most [W] (positive) this vehicle may charge now; 0 when full or not connected."""
    if not _connected(v) or not v.soc_pct < 100.0 or not v.max_charge_w > 0:
        return 0.0
    return v.max_charge_w


def supply_capacity_w(
    vehicles: Sequence[VehicleState], pv: PVState | None, cfg: DispatchSection
) -> float:
    """The load [W] the island can carry now: vehicle discharge limits plus firm PV.

    Vehicles out of the island (faulted, unplugged, silent) or at their floor add
    nothing. Only `pv_firm_fraction` of the present PV output counts, because a
    cloud can take the rest away faster than loads can be shed.
    """
    vehicles_w = sum(discharge_limit_w(v, cfg) for v in vehicles)
    pv_w = 0.0
    if pv is not None and pv.available and pv.power_w > 0:
        pv_w = pv.power_w * cfg.pv_firm_fraction
    return vehicles_w + pv_w


def choose_former(
    vehicles: Sequence[VehicleState],
    cfg: DispatchSection,
    exclude: frozenset[str] = frozenset(),
) -> str | None:
    """The charger_id that should form the island, or None when no vehicle can.

    A former must be able to form and to discharge; among those the one with the
    most energy above its reserve wins (it will carry the island longest); ties
    go to the lowest charger_id so the choice is repeatable. `exclude` holds
    formers that already failed in this attempt.
    """
    candidates = [
        v for v in vehicles if v.can_form and v.charger_id not in exclude and can_discharge(v, cfg)
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda v: (-v.energy_above_reserve_wh, v.charger_id))
    return best.charger_id


def _water_fill(
    demand_w: float, weights: dict[str, float], limits: dict[str, float]
) -> dict[str, float]:
    """Split `demand_w` >= 0 proportionally to `weights`, none above its limit.

    Whoever would exceed its limit is pinned at it and the rest is split again
    among the others. When the demand exceeds the sum of limits, all are pinned.
    Zero total weight among the unpinned falls back to an equal split.
    """
    shares = dict.fromkeys(weights, 0.0)
    open_ids = [k for k in weights if limits[k] > 0]
    remaining_w = demand_w
    while open_ids and remaining_w > 0:
        total_weight = sum(weights[k] for k in open_ids)
        if total_weight > 0:
            trial = {k: remaining_w * weights[k] / total_weight for k in open_ids}
        else:
            trial = {k: remaining_w / len(open_ids) for k in open_ids}
        pinned = [k for k in open_ids if trial[k] >= limits[k]]
        if not pinned:
            shares.update(trial)
            break
        for k in pinned:
            shares[k] = limits[k]
            remaining_w -= limits[k]
        open_ids = [k for k in open_ids if k not in pinned]
    return shares


def allocate_power(
    vehicles: Sequence[VehicleState], demand_w: float, cfg: DispatchSection
) -> dict[str, float]:
    """Setpoints [W] per charger_id that together cover `demand_w`.

    `demand_w` is what the vehicles must supply after PV: positive means
    discharge, negative means a surplus to absorb by charging. Discharge goes
    only to vehicles that `can_discharge`, in proportion to their energy above
    reserve, so all reach their reserve together and the fleet stays level
    (no car is drained first and lost to the island early). Charging goes to
    connected vehicles below 100 % in proportion to their empty room [Wh].
    Nobody exceeds its rating; what one cannot take spills to the others, and
    when the whole fleet is at its limits the shortfall is the caller's to shed
    (or, for a surplus, to curtail PV). Every vehicle given gets a setpoint,
    0 for those not used; the setpoints sum to `demand_w` whenever it is
    feasible. The grid-former takes whatever imbalance remains, so the caller
    may leave it out or include it.

    Raises ValueError on a NaN demand: no setpoint is better than a wrong one.
    """
    if math.isnan(demand_w):
        raise ValueError("demand_w is NaN")
    setpoints = {v.charger_id: 0.0 for v in vehicles}
    if demand_w > 0:
        limits = {v.charger_id: discharge_limit_w(v, cfg) for v in vehicles}
        weights = {v.charger_id: v.energy_above_reserve_wh for v in vehicles}
        setpoints.update(_water_fill(demand_w, weights, limits))
    elif demand_w < 0:
        limits = {v.charger_id: _charge_limit_w(v) for v in vehicles}
        weights = {
            v.charger_id: max(0.0, (100.0 - v.soc_pct) / 100.0 * v.capacity_wh) for v in vehicles
        }
        shares = _water_fill(-demand_w, weights, limits)
        setpoints.update({k: -w if w else 0.0 for k, w in shares.items()})
    return setpoints


def outlet_enabled(o: OutletState, cfg: DispatchSection) -> bool:
    """Whether a V2L outlet should be switched on: answering, plugged, above its floor.

    A TRIPPED outlet gets False, so the controller opens its contactor and only
    a later cycle (after the trip clears and the outlet reads OFF) re-enables it;
    we never hold a tripped outlet on.
    """
    if not o.available or o.state in (V2LState.UNPLUGGED, V2LState.TRIPPED):
        return False
    return o.soc_pct > discharge_floor_pct(o, cfg)


def outlet_supply_w(o: OutletState, cfg: DispatchSection) -> float:
    """The load [W] a V2L circuit may carry: the outlet's rating when enabled, else 0.

    Pass this as `supply_w` to `shedding.plan_loads` for the loads of that
    circuit, so the outlet is never loaded past its rating.
    """
    if not outlet_enabled(o, cfg) or not o.rating_w > 0:
        return 0.0
    return o.rating_w


def secure_shares(
    running: Sequence[VehicleState],
    former: VehicleState,
    served_w: float,
    pv_w: float,
    cfg: DispatchSection,
) -> dict[str, float]:
    """Setpoints that keep the island alive through the loss of any one source (N-1).

    The grid-former takes every sudden change at once, before the next cycle can
    re-dispatch: if the PV trips or a follower drops out, its share lands on the former.
    So the former's own share is kept small enough that it can still carry the largest
    single source's share within its rating, and followers never charge from the island
    more than the former could supply if the PV vanished. The rest is split by
    `allocate_power` (levelling the energy above reserve). When the served load is more
    than the former alone can carry, the followers always give at least the difference
    (plus the shed margin), so that losing the PV leaves the former within its rating.
    Last, whatever the followers can still take is moved off the former, which keeps its
    rating free as the island's spinning reserve for load steps (the followers level
    their energy among themselves; the former, the last to go, keeps its own).
    """
    limit = discharge_limit_w(former, cfg)
    demand = served_w - pv_w
    if demand < 0:
        # PV surplus: charge followers only as far as the former could carry it without PV.
        demand = max(demand, -max(0.0, limit - served_w))
    shares = allocate_power(running, demand, cfg)
    for _ in range(4):
        followers = [s for cid, s in shares.items() if cid != former.charger_id]
        contingency = max([pv_w, *followers, 0.0])
        cap = max(0.0, limit - contingency)
        if shares.get(former.charger_id, 0.0) <= cap + 1.0:
            break
        capped = [
            replace(v, max_discharge_w=min(v.max_discharge_w, cap))
            if v.charger_id == former.charger_id
            else v
            for v in running
        ]
        shares = allocate_power(capped, demand, cfg)
    others = [v for v in running if v.charger_id != former.charger_id]
    floor = served_w + cfg.shed_margin_w - limit
    given = sum(shares.get(v.charger_id, 0.0) for v in others)
    if pv_w > 0 and others and floor > given + 1.0:
        # The PV's loss also lands on the former at once: the followers must already give
        # what the former could not carry alone. In a PV surplus that means followers
        # discharging while the former absorbs the surplus (the PV droops back if it
        # cannot): conversion losses, rather than a collapse when the PV trips.
        raised = allocate_power(others, floor, cfg)
        shares = {**shares, **raised}
        # What the former is left with, as a setpoint within its rating both ways (more
        # than its limit means an overload the shedding answers, not a bigger setpoint).
        rest = served_w - pv_w - sum(raised.values())
        shares[former.charger_id] = max(-former.max_charge_w, min(limit, rest))
    own = shares.get(former.charger_id, 0.0)
    given = sum(shares.get(v.charger_id, 0.0) for v in others)
    spare = sum(discharge_limit_w(v, cfg) for v in others) - given
    if own > 1.0 and spare > 1.0:
        # Spinning reserve: every step of load (a dozen heaters switching on together)
        # lands on the former before the next cycle can re-dispatch, so what the followers
        # can carry is theirs and the former keeps its rating free for the step.
        raised = allocate_power(others, given + min(own, spare), cfg)
        shares = {**shares, **raised}
        shares[former.charger_id] = own - (sum(raised.values()) - given)
    return shares
