"""The site's status as the API, the UI and the EDXL-HAVE export see it.

`status_document` turns one published `SiteStatus` (plus the site file and the
operators' overrides) into a plain JSON-able dict; it is pure and cheap. The
`StatusCache` serialises the latest status at most once per control cycle, and
only when someone asks, so the control loop pays nothing for readers: its
`on_status` listener is never used here, `controller.status` is read instead.

Units are in the keys: `_w` watts, `_wh` watt-hours, `_v` volts, `_hz` hertz,
`_pct` percent, `_h` hours, `_ts` Unix seconds. Definitions:

    grid         present (live), healthy (inside the enter-service window: the site may
                 reconnect to it), riding_through (connected outside that window but
                 inside the must-trip settings), waiting_reason (islanded, grid back
                 outside the window: why the site does not reconnect, else null)
    supply_w     what the site bus can be given now: the grid connection (when the grid
                 is healthy and the PCC closed) or the discharge limits of the cars on the
                 chargers above their reserves, plus firm PV ("the cars can give"). The
                 V2L outlets feed only their own circuits and are not in it
    delivered_w  what the bus is given now: the cars on the chargers discharging, PV and
                 grid import ("the cars deliver")
    load_w       the power the loads that are on draw now, as their panels measure it
    endurance_h  the site bus's figure: hours its life-safety and critical loads can still
                 run at their present draw on the energy above the reserves of the cars on
                 the chargers; null when unbounded. PV counts only where forecast: the
                 controller has no forecast yet, so none is counted (the estimate is
                 pessimistic on a sunny day). A V2L circuit lives on its own car: its
                 figure is in `circuits`, never added to the bus
    circuits     per supply circuit ("bus", then each V2L outlet): its own energy, its
                 endurance_h (as above, from its own sources and loads), and the endurance
                 policy: `allowed_tier` (lowest tier its energy lets stay on), `applied_tier`
                 (the limit its loads follow; null when it does not run on stored energy
                 now), `targets_h`, `projection_h` (per tier: hours the energy carries it
                 and the tiers above it, null = no limit), `demand_w`, and `short` (the top
                 tier cannot reach its target: hours against target), or null
    shortfall    in emergency: the tier the island cannot carry, what it needs and what the
                 cars can give and deliver (the emergency guard's own figures); else null
    headcount    the people sheltering here as an operator last recorded them: {people,
                 recorded_ts, by}, or null when never counted (`resilience.shelter`)
Each load says why it is off, in words (`off_reason`), and whether an operator keeps it
on against the endurance policy (`kept_on`).

Each connector in `vehicles.list` says who is there, from its occupancy
(`resilience.occupancy`): `occupancy` (unknown, empty, unidentified, fleet, donor,
released), `identified_by` (site_file, operator, vehicle, or null), `donor` (and
`awaiting_car`: registered before it was plugged in), `released`,
`keeps_everything` (it gives nothing: unidentified, released or no car), `leaving_at`
[Unix s] and `leaving` (released, or within `dispatch.leave_notice_s` of leaving_at).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from resilience.config import SiteConfig
from resilience.cycle import Controller, SiteStatus
from resilience.model import BreakerPosition, ChargerState, Mode, Tier, V2LState
from resilience.modes import RUNBOOKS, WAITING_ALARM, CircuitEnergy
from resilience.occupancy import Kind, Occupancy, Source
from resilience.overrides import Overrides
from resilience.policies.endurance import endurance_h, energy_above_reserve_wh
from resilience.policies.grid import enter_service_reason, grid_healthy
from resilience.policies.vehicles import can_discharge, discharge_floor_pct, supply_capacity_w
from resilience.shelter import Headcount

LIVE_BUS_PU = 0.5  # the site bus counts as energised above this fraction of nominal voltage


def runbook_url(mode: Mode) -> str:
    """Where the UI links the mode's runbook (served read-only by the app)."""
    return "/" + RUNBOOKS.get(mode, "runbooks/README.md")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _finite(value: float, digits: int = 1) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def status_document(
    status: SiteStatus,
    config: SiteConfig,
    overrides: Overrides,
    now_wall: float,
    headcount: Headcount | None = None,
) -> dict[str, Any]:
    """Everything the status screen shows, from one cycle's published status."""
    snap = status.snapshot
    nominal_v = config.grid.nominal_voltage_v
    names = {load.id: load.name for load in config.loads}

    grid = snap.grid
    healthy = grid_healthy(grid, config.grid) if grid is not None else False
    pcc = snap.pcc
    pcc_closed = pcc is not None and pcc.position is BreakerPosition.CLOSED
    energised = (pcc is not None and pcc.bus_voltage_v >= LIVE_BUS_PU * nominal_v) or any(
        v.available and v.state is ChargerState.FORMING for v in snap.vehicles
    )

    energy: dict[str, CircuitEnergy] = dict(status.energy)
    # In emergency the island carries life-safety only: the endurance figure is then its
    # alone (a figure for the critical tier would contradict the mode).
    protected = Tier.LIFE_SAFETY if status.mode is Mode.EMERGENCY else Tier.CRITICAL
    tiers: dict[str, dict[str, float | int]] = {
        t.label: {"served": 0, "shed": 0, "unknown": 0, "served_w": 0.0, "shed_w": 0.0}
        for t in Tier
    }
    loads = []
    load_w = 0.0
    protect_draw_w = 0.0
    protect_rated_w = 0.0
    for load in snap.loads:
        entry = tiers[load.tier.label]
        if not load.available:
            state = "unknown"
            entry["unknown"] += 1
        elif load.relay_on:
            state = "on"
            entry["served"] += 1
            entry["served_w"] += load.power_w
            load_w += load.power_w
        else:
            state = "off"
            entry["shed"] += 1
            entry["shed_w"] += load.rated_power_w
        if load.tier <= protected and load.supply == "bus":
            protect_rated_w += load.rated_power_w
            if state == "on":
                protect_draw_w += load.power_w
        loads.append(
            {
                "id": load.load_id,
                "name": names.get(load.load_id, load.load_id),
                "tier": load.tier.label,
                "state": state,
                "power_w": round(load.power_w, 1),
                "rated_power_w": load.rated_power_w,
                "supply": load.supply,
                "locked_off": load.load_id in overrides.locked_off,
                "kept_on": load.load_id in overrides.kept_on,
                **_why_off(load, state, status.mode, energy, overrides),
            }
        )
    for entry in tiers.values():
        entry["served_w"] = round(float(entry["served_w"]), 1)
        entry["shed_w"] = round(float(entry["shed_w"]), 1)

    pv_w = snap.pv.power_w if snap.pv is not None and snap.pv.available else 0.0
    cars_w = sum(max(0.0, v.power_w) for v in snap.vehicles if v.available)
    import_w = max(0.0, grid.power_w) if grid is not None and pcc_closed else 0.0
    delivered_w = cars_w + max(0.0, pv_w) + import_w
    # Connected on a grid outside the enter-service window but inside the must-trip table
    # (riding through, e.g. 60.2 Hz on a 60 Hz site): the grid still supplies the site.
    on_grid = pcc_closed and (healthy or status.mode is Mode.GRID_CONNECTED)
    if on_grid:
        supply_w = config.grid.connection_kva * 1000.0 + pv_w
    else:
        supply_w = supply_capacity_w(snap.vehicles, snap.pv, config.dispatch)

    # The bus's figure from the bus's own sources: the cars on V2L outlets feed only their
    # own circuits (issue 11: adding them made 2.2 h read 16.1 h).
    energy_wh = energy_above_reserve_wh(snap.vehicles)
    draw_w = protect_draw_w if protect_draw_w > 0 else protect_rated_w
    hours = endurance_h(energy_wh, draw_w) if draw_w > 0 else math.inf
    all_energy_wh = energy_above_reserve_wh(snap.vehicles, snap.outlets)
    circuits = [_circuit("bus", energy_wh, hours, draw_w, energy.get("bus"))]
    for o in snap.outlets:
        own = [load for load in snap.loads if load.supply == o.outlet_id]
        own_wh = energy_above_reserve_wh((), (o,))
        on_w = sum(
            load.power_w
            for load in own
            if load.available and load.relay_on and load.tier <= Tier.CRITICAL
        )
        rated_w = sum(load.rated_power_w for load in own if load.tier <= Tier.CRITICAL)
        own_draw = on_w if on_w > 0 else rated_w
        own_h = endurance_h(own_wh, own_draw) if own_draw > 0 else math.inf
        circuits.append(_circuit(o.outlet_id, own_wh, own_h, own_draw, energy.get(o.outlet_id)))

    dispatch = config.dispatch
    fleet_names = {v.id: v.name or v.id for v in config.vehicles}
    vehicles = []
    connected = 0
    for v in snap.vehicles:
        is_connected = v.available and v.plugged and v.state is not ChargerState.FAULT
        connected += is_connected
        occupancy = overrides.at(v.charger_id)
        vehicles.append(
            {
                "connector": v.charger_id,
                "kind": "charger",
                "vehicle_id": v.vehicle_id,
                "name": fleet_names.get(v.vehicle_id or "", v.vehicle_id),
                "available": v.available,
                "at_reserve": is_connected and v.soc_pct <= discharge_floor_pct(v, dispatch),
                "leaving": _leaving(occupancy, now_wall, dispatch.leave_notice_s),
                "connected": is_connected,
                "state": v.state.name.lower(),
                "forming": v.state is ChargerState.FORMING,
                "soc_pct": round(v.soc_pct, 1),
                "reserve_soc_pct": v.reserve_soc_pct,
                "energy_above_reserve_wh": round(v.energy_above_reserve_wh),
                "power_w": round(v.power_w, 1),
                **_occupancy(occupancy),
            }
        )
    for o in snap.outlets:
        is_connected = o.available and o.state is not V2LState.UNPLUGGED
        connected += is_connected
        occupancy = overrides.at(o.outlet_id)
        vehicles.append(
            {
                "connector": o.outlet_id,
                "kind": "outlet",
                "vehicle_id": o.vehicle_id,
                "name": fleet_names.get(o.vehicle_id or "", o.vehicle_id),
                "available": o.available,
                "at_reserve": is_connected and o.soc_pct <= discharge_floor_pct(o, dispatch),
                "leaving": _leaving(occupancy, now_wall, dispatch.leave_notice_s),
                "connected": is_connected,
                "state": o.state.name.lower(),
                "forming": False,
                "soc_pct": round(o.soc_pct, 1),
                "reserve_soc_pct": o.reserve_soc_pct,
                "energy_above_reserve_wh": round(o.energy_above_reserve_wh),
                "power_w": round(o.power_w, 1),
                **_occupancy(occupancy),
            }
        )

    return {
        "site": config.site.name,
        "mode": status.mode.value,
        "mode_since": iso(status.mode_since_wall),
        "mode_since_ts": status.mode_since_wall,
        "runbook": runbook_url(status.mode),
        "grid": {
            "present": grid is not None and grid.voltage_v >= LIVE_BUS_PU * nominal_v,
            "healthy": healthy,  # inside the enter-service window (may reconnect to it)
            # connected outside the window but inside the must-trip settings
            "riding_through": pcc_closed and not healthy and status.mode is Mode.GRID_CONNECTED,
            # islanded, grid back outside the window: why the site does not reconnect
            "waiting_reason": (
                enter_service_reason(grid, config.grid) if WAITING_ALARM in status.alarms else None
            ),
            "voltage_v": round(grid.voltage_v, 1) if grid is not None else None,
            "frequency_hz": round(grid.frequency_hz, 3) if grid is not None else None,
            "power_w": round(grid.power_w, 1) if grid is not None else None,
        },
        "pcc": pcc.position.name.lower() if pcc is not None else "unknown",
        "return_to_service_s": config.grid.return_to_service_s,
        "energised": energised,
        "supply_w": round(supply_w, 1),
        "delivered_w": round(delivered_w, 1),
        "load_w": round(load_w, 1),
        "pv_w": round(pv_w, 1),
        "tiers": tiers,
        "endurance_h": _finite(hours, 2),
        "endurance_basis": {
            "energy_above_reserve_wh": round(energy_wh),
            "draw_w": round(draw_w, 1),
            "pv_counted_w": 0.0,
            "tiers": [t.label for t in Tier if t <= protected],
        },
        "circuits": circuits,
        "shortfall": _shortfall(status.mode, snap, config, overrides, cars_w),
        "vehicles": {
            "connected": connected,
            "energy_above_reserve_wh": round(all_energy_wh),
            "list": vehicles,
        },
        "loads": loads,
        "alarms": [{"code": code, "message": msg} for code, msg in sorted(status.alarms.items())],
        "headcount": None if headcount is None else headcount.as_dict(),
        "cycle": status.cycle,
        "updated_ts": round(now_wall, 3),
    }


def _hours_or_none(hours: float) -> float | None:
    return _finite(hours, 1)


def _circuit(
    circuit: str, energy_wh: float, hours: float, draw_w: float, view: CircuitEnergy | None
) -> dict[str, Any]:
    """One supply circuit's energy, endurance and endurance policy, for the status."""
    entry: dict[str, Any] = {
        "id": circuit,
        "energy_above_reserve_wh": round(energy_wh),
        "endurance_h": _finite(hours, 2),
        "draw_w": round(draw_w, 1),
        "policy": None,
    }
    if view is not None:
        cap = view.cap
        entry["policy"] = {
            "allowed_tier": cap.tier.label,
            "applied_tier": None if view.applied is None else view.applied.label,
            "pv_counted_w": round(cap.pv_w, 1),
            "targets_h": {t.label: cap.targets_h[t] for t in Tier},
            "projection_h": {t.label: _hours_or_none(cap.projection_h[t]) for t in Tier},
            "demand_w": {t.label: round(cap.demand_w[t], 1) for t in Tier},
            "short": None
            if cap.short is None
            else {
                "tier": cap.short.label,
                "hours": round(cap.short_h, 1),
                "target_h": cap.short_target_h,
            },
        }
    return entry


def _why_off(
    load: Any, state: str, mode: Mode, energy: dict[str, CircuitEnergy], overrides: Overrides
) -> dict[str, Any]:
    """Why a load is off: `off_reason` in words, `off_why` for the tablet to word in its
    language (`code`: locked, energy, emergency, outlet_off or power, with the figures)."""
    if state != "off":
        return {"off_reason": None, "off_why": None}
    why: dict[str, Any]
    view = energy.get(load.supply)
    if load.load_id in overrides.locked_off:
        why, words = {"code": "locked"}, "locked off by an operator"
    elif (
        view is not None
        and view.applied is not None
        and load.tier > view.applied
        and load.tier > view.cap.tier
    ):
        cap = view.cap
        top = cap.top_tier or Tier.LIFE_SAFETY
        hours = cap.hours_with(load.tier)
        why = {
            "code": "energy",
            "tier": top.label,
            "hours": _finite(hours, 1),
            "target_h": cap.targets_h[top],
            "with": load.tier.label,
        }
        words = cap.reason(load.tier)
    elif mode is Mode.EMERGENCY and load.supply == "bus" and load.tier > Tier.LIFE_SAFETY:
        why, words = {"code": "emergency"}, "emergency: the island can carry life-safety only"
    elif load.supply != "bus" and (view is None or view.applied is None):
        why, words = {"code": "outlet_off"}, "its V2L outlet is off (no car above its reserve)"
    else:
        why, words = {"code": "power"}, "not enough power now: restored when the supply allows"
    return {"off_reason": words, "off_why": why}


def _shortfall(
    mode: Mode, snap: Any, config: SiteConfig, overrides: Overrides, delivered_w: float
) -> dict[str, Any] | None:
    """In emergency, what is missing: the emergency guard's own figures (modes.g_shortfall),
    so that the banner never contradicts the mode."""
    if mode is not Mode.EMERGENCY:
        return None
    dispatch = config.dispatch
    wanted = [
        load
        for load in snap.loads
        if load.supply == "bus"
        and load.load_id not in overrides.locked_off
        and load.tier <= Tier.CRITICAL
    ]
    need_w = sum(load.rated_power_w for load in wanted) + dispatch.shed_margin_w
    usable = [v for v in snap.vehicles if can_discharge(v, dispatch)]
    can_give_w = supply_capacity_w(usable, snap.pv, dispatch)
    return {
        "tier": Tier.CRITICAL.label,
        "need_w": round(need_w, 1),
        "can_give_w": round(can_give_w, 1),
        "delivered_w": round(delivered_w, 1),
        "missing_w": round(max(0.0, need_w - can_give_w), 1),
    }


def _leaving(occupancy: Occupancy, now_wall: float, notice_s: float) -> bool:
    """Its driver is leaving: released, or being wound down before the leaving time."""
    if occupancy.kind is Kind.RELEASED:
        return True
    leaving_at = occupancy.leaving_at
    return (
        occupancy.kind is Kind.DONOR
        and leaving_at is not None
        and (now_wall >= leaving_at - notice_s)
    )


def _occupancy(occupancy: Occupancy) -> dict[str, Any]:
    """Who is at the connector and who says so (`resilience.occupancy`)."""
    asserted = occupancy.asserted_by
    return {
        "occupancy": occupancy.kind.value,
        "identified_by": None if asserted is Source.NONE else asserted.value,
        "donor": occupancy.kind is Kind.DONOR,
        "awaiting_car": occupancy.kind is Kind.DONOR and not occupancy.car_seen,
        "released": occupancy.kind is Kind.RELEASED,
        "keeps_everything": occupancy.keeps_everything,
        "leaving_at": occupancy.leaving_at,
    }


class StatusCache:
    """The latest status as JSON bytes, rebuilt at most once per cycle, when asked."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._key: tuple[int, int, int] | None = None
        self._doc: dict[str, Any] | None = None
        self._bytes: bytes = b""

    def _refresh(self) -> bool:
        status = self.controller.status
        if status is None:
            return False
        headcount = self.controller.headcount  # recorded between cycles: shown at once
        key = (id(status), status.cycle, id(headcount))
        if key != self._key:
            self._doc = status_document(
                status,
                self.controller.config,
                self.controller.overrides,
                self.controller.wall(),
                headcount,
            )
            self._bytes = json.dumps(self._doc, separators=(",", ":"), allow_nan=False).encode()
            self._key = key
        return True

    def document(self) -> dict[str, Any] | None:
        """The latest status document, or None before the first cycle published one."""
        return self._doc if self._refresh() else None

    def body(self) -> bytes | None:
        """The latest status document as JSON bytes, or None before the first cycle."""
        return self._bytes if self._refresh() else None
