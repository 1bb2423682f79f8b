"""Run a drill scenario: the unchanged controller against the simulated plant.

`python -m firmware_sim.drill SCENARIO [--out DIR] [--speed max|N]` (what
`resilience drill` starts). The controller is the real one: `Controller` with
the mode machine, the policies, the drivers and a SQLite store in DIR. Only
what it talks to is simulated.

Speeds:

- ``max``: a virtual clock. The drivers read and write the simulated register
  banks in process (`inprocess.InProcessTransport`: the Modbus framing is the
  one thing skipped). The runner calls `controller.cycle_once()` at chosen
  instants and `plant.step(dt)` between them; the plant integrates exactly
  between its own events. The controller runs a full cycle at least every
  `SLOW_STEP_S` (10 s) and at its own period (`site.cycle_period_s`) for
  `FAST_WINDOW_S` (5 s) after anything changes: a timeline event, a
  transition, a dispatch note (shed, restore), an alarm raised or cleared, or
  an event inside the plant (a breaker landing, a battery reaching a limit);
  and at its own period for as long as it times something
  (`timed_action_pending`): any mode but grid_connected, islanded and
  emergency (a synchronised close waiting for the angle, a black start,
  islanding), the ramp-down after reconnecting, a breaker command awaiting
  its feedback.
  The step also stops exactly at each timeline event, each plant event (a step of
  a grid frequency or voltage ramp is one) and when a must-trip clearing time of a
  connected site runs out (`trip_deadline`). A scenario's commands reach the
  controller between two cycles, and the runner waits for their answers (their
  audit records committed) after the cycle that takes them in (`_answered`).
- ``N`` (a number other than 1): the same virtual-clock run, paced to N times
  real time.
- ``1``: real time over Modbus TCP (`server.SimSite`) with the controller run
  by `resilience.service`, and the API and tablet UI when the project has
  them, for live training drills where operators act on the tablet.

Outputs in DIR: ``report.json`` and ``report.html`` (`resilience.drills.report`)
and ``drill.sqlite`` (the controller's own store, events at simulated times).
Exit status: 0 when every pass criterion holds, 1 when one does not, 2 for a
bad scenario or arguments. A progress bar goes to stderr.

Units: seconds of drill time (t = 0 at the scenario's `start`), W, Wh, %.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_sim.inprocess import build_inprocess_drivers
from firmware_sim.ocpp_faults import clear_station_faults, inject_station_fault
from firmware_sim.ocpp_inprocess import InProcessStations, inline_validation
from firmware_sim.plant import Plant, PlantInit, VehicleSim, outage_json
from resilience import steady
from resilience.config import SiteConfig
from resilience.cycle import Controller, SiteStatus
from resilience.drills.report import write_reports
from resilience.drills.scenario import (
    RELEASE_WALK_S,
    BreakerFailToOperate,
    CapAlertEvent,
    Command,
    DeviceException,
    DeviceFault,
    DeviceGarbage,
    DeviceRecovers,
    DeviceSilent,
    Endurance,
    Flicker,
    GridBlips,
    GridFrequency,
    GridLoss,
    GridReturn,
    GridVoltage,
    LoadChange,
    LoadedScenario,
    RelayCheck,
    Sag,
    ScenarioError,
    SetPv,
    StationFault,
    StationRecovers,
    Unplug,
    VehicleArrives,
    VehicleLeaves,
    format_span,
    load_scenario,
    parse_span,
    registers_vehicle,
)
from resilience.model import Mode, Tier
from resilience.modes import SiteModes
from resilience.ocpp import CentralSystem
from resilience.outputs import Decision
from resilience.policies.grid import next_trip_s
from resilience.policies.storm import storm_watch
from resilience.store import Store

log = logging.getLogger("firmware_sim.drill")

SLOW_STEP_S = 10.0
"""[s] longest the controller goes without a full cycle (the default of `run_max`)."""
FAST_WINDOW_S = 5.0
"""[s] after a change the controller cycles at its own period for this long."""
DRILL_TELEMETRY_PERIOD_S = 300.0
"""[s] store telemetry period in a virtual-clock drill (the report samples the plant itself).
Every sample is a row per load, charger and outlet value: at 60 s they were a fifth of a
72 h drill's cost on a 24-charger, 80-load site (the writer thread shares the drill's
core). 300 s still gives 864 points per series over 72 h."""
MAX_SAMPLES = 1500
COMMAND_ANSWER_WAIT_S = 10.0
"""[s] of wall time a drill waits for its commands' answers (`_answered`)."""


# --------------------------------------------------------------------------- asyncio
def _resume(coro: Coroutine[Any, Any, Any], first: Any) -> Generator[Any, Any, Any]:
    """Carry on driving a coroutine that already ran to its first suspension."""
    to_yield = first
    while True:
        try:
            sent = yield to_yield
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in by the task (cancellation): pass it on
            try:
                to_yield = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            to_yield = coro.send(sent)
        except StopIteration as stop:
            return stop.value


class _Resumed:
    """An awaitable that resumes a partly run coroutine (so a Task can own the rest)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._gen = _resume(coro, first)

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield from self._gen)


async def _await(awaitable: _Resumed) -> Any:
    return await awaitable


def eager_task_factory(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
) -> asyncio.Future[Any]:
    """Python 3.12's `asyncio.eager_task_factory` for 3.11: run a new task's coroutine at once.

    In a virtual-clock drill every device read completes without waiting, so the
    cycle's `gather` over the devices needs no scheduling round trip per device;
    a coroutine that does suspend is handed to an ordinary Task from there on.
    """
    try:
        first = coro.send(None)
    except StopIteration as stop:
        done: asyncio.Future[Any] = loop.create_future()
        done.set_result(stop.value)
        return done
    except BaseException as exc:
        failed: asyncio.Future[Any] = loop.create_future()
        failed.set_exception(exc)
        return failed
    kwargs.pop("eager_start", None)
    return asyncio.Task(_await(_Resumed(coro, first)), loop=loop, **kwargs)


def install_eager_tasks(loop: asyncio.AbstractEventLoop) -> None:
    factory: Any = getattr(asyncio, "eager_task_factory", None) or eager_task_factory
    loop.set_task_factory(factory)


# --------------------------------------------------------------------------- recording
@dataclass
class VehicleStats:
    vehicle_id: str
    connector: str
    reserve_soc_pct: float
    capacity_wh: float
    start_soc_pct: float
    min_soc_pct: float
    end_soc_pct: float
    given_wh: float = 0.0
    received_wh: float = 0.0
    present: bool = True
    arrived_s: float = 0.0
    left_s: float | None = None


@dataclass
class Recorder:
    """What happened in a drill, in drill time."""

    transitions: list[dict[str, Any]] = field(default_factory=list)
    alarms: dict[str, dict[str, Any]] = field(default_factory=dict)  # by code, latest episode
    alarm_log: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    applied: list[dict[str, Any]] = field(default_factory=list)
    storm: list[dict[str, Any]] = field(default_factory=list)
    probes: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    vehicles: dict[str, VehicleStats] = field(default_factory=dict)
    notes: int = 0
    control_steps: int = 0
    fast_steps: int = 0
    last_alarms: dict[str, str] = field(default_factory=dict)
    severity: dict[str, str] = field(default_factory=dict)

    def alarm_changes(self, t: float, alarms: dict[str, str], decision: Decision | None) -> bool:
        if decision is not None:
            for change in decision.alarms:
                if change.raised:
                    self.severity[change.code] = change.severity
        if alarms == self.last_alarms:
            return False
        for code, message in alarms.items():
            if code not in self.last_alarms:
                entry = {
                    "code": code,
                    "severity": self.severity.get(code, "warning"),
                    "message": message,
                    "raised_s": t,
                    "cleared_s": None,
                }
                self.alarm_log.append(entry)
                self.alarms[code] = entry
        for code in self.last_alarms:
            if code not in alarms and code in self.alarms:
                self.alarms[code]["cleared_s"] = t
        self.last_alarms = dict(alarms)
        return True


def _tier_label(tier: Tier) -> str:
    return tier.label


def circuit_stored_wh(plant: Plant) -> dict[str, float]:
    """[Wh] energy above its owner's reserve in the cars feeding each circuit: the bus (the
    cars on bidirectional chargers) and each V2L circuit (its outlet's car)."""
    stored = {"bus": 0.0} | dict.fromkeys(plant.outlets, 0.0)
    for charger in plant.chargers.values():
        if charger.vehicle is not None:
            stored["bus"] += _above_reserve_wh(charger.vehicle)
    for oid, outlet in plant.outlets.items():
        if outlet.vehicle is not None:
            stored[oid] += _above_reserve_wh(outlet.vehicle)
    return stored


def _above_reserve_wh(vehicle: VehicleSim) -> float:
    return max(0.0, vehicle.soc_pct - vehicle.reserve_soc_pct) / 100.0 * vehicle.capacity_wh


def plant_endurance(plant: Plant) -> dict[str, dict[str, float | None]]:
    """[h] per circuit and tier: how long the energy above reserve on that circuit
    (`circuit_stored_wh`, no PV) carries the tier and every tier above it at their present
    demand (rated power x load factor, shed or not); None when they draw nothing.

    What the plant alone can tell. The controller's own projection (with a firm share of PV)
    has the same shape, {circuit: {tier: hours}}, and can replace it in the report.
    """
    stored = circuit_stored_wh(plant)
    demand: dict[str, dict[Tier, float]] = {c: {} for c in stored}
    for load in plant.loads.values():
        spec = load.spec
        tiers = demand.setdefault(spec.supply, {})
        tiers[spec.tier] = tiers.get(spec.tier, 0.0) + spec.rated_power_w * load.factor
    out: dict[str, dict[str, float | None]] = {}
    for circuit, tiers in demand.items():
        row: dict[str, float | None] = {}
        carried = 0.0
        for tier in sorted(tiers, key=int):
            carried += tiers[tier]
            energy = stored.get(circuit, 0.0)
            row[tier.label] = round(energy / carried, 3) if carried > _NO_DRAW_W else None
        out[circuit] = row
    return out


_NO_DRAW_W = 1e-6


def controller_projection(status: SiteStatus | None) -> dict[str, dict[str, Any]]:
    """The controller's own endurance projection per circuit, as its policy saw it this
    cycle: hours per tier (each tier with every tier above it, null when unlimited), the
    lowest tier its energy allows, and the limit the loads were planned against (null
    when the circuit does not run on its cars' energy now). Beside `plant_endurance`
    (the referee's figure) so a report shows both."""
    if status is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for circuit, energy in status.energy.items():
        cap = energy.cap
        out[circuit] = {
            "allowed_tier": cap.tier.label,
            "applied_tier": None if energy.applied is None else energy.applied.label,
            "energy_wh": round(cap.energy_wh, 1),
            "projection_h": {
                tier.label: (None if math.isinf(h) else round(h, 3))
                for tier, h in cap.projection_h.items()
            },
        }
    return out


def sample(
    plant: Plant, t: float, mode: Mode, status: SiteStatus | None = None
) -> dict[str, Any]:
    """One row of the report's time series, from the plant (the referee's truth) and the
    controller's endurance projection (`projection`)."""
    served = dict.fromkeys(Tier, 0.0)
    demand = dict.fromkeys(Tier, 0.0)
    for load in plant.loads.values():
        served[load.spec.tier] += load.power_w
        demand[load.spec.tier] += load.spec.rated_power_w * load.factor
    discharge = charge = 0.0
    for charger in plant.chargers.values():
        if charger.power_w > 0:
            discharge += charger.power_w
        else:
            charge += charger.power_w
    discharge += sum(o.power_w for o in plant.outlets.values())
    soc: dict[str, float] = {}
    for charger in plant.chargers.values():
        if charger.vehicle is not None:
            soc[charger.vehicle.vehicle_id] = round(charger.vehicle.soc_pct, 3)
    for outlet in plant.outlets.values():
        if outlet.vehicle is not None:
            soc[outlet.vehicle.vehicle_id] = round(outlet.vehicle.soc_pct, 3)
    return {
        "t": round(t, 3),
        "mode": mode.value,
        "served_w": {tier.label: round(w, 1) for tier, w in served.items()},
        "demand_w": {tier.label: round(w, 1) for tier, w in demand.items()},
        "grid_w": round(max(0.0, plant.meter_power_w), 1),
        "vehicles_w": round(discharge, 1),
        "charging_w": round(charge, 1),
        "pv_w": round(plant.pv_power_w, 1),
        "soc_pct": soc,
        "bus_live": plant.bus_live,
        "grid_v": round(plant.grid.voltage_v, 1),
        "grid_hz": round(plant.grid.measured_frequency_hz, 3),
        "bus_v": round(plant.bus_voltage_v, 1),
        "bus_hz": round(plant.bus_frequency_hz, 3),
        # + discharging into the bus, - charging from it
        "charger_w": {cid: round(c.power_w, 1) for cid, c in plant.chargers.items()},
        "v2l_w": {oid: round(o.power_w, 1) for oid, o in plant.outlets.items()},
        "stored_wh": {c: round(wh, 1) for c, wh in circuit_stored_wh(plant).items()},
        "endurance_h": plant_endurance(plant),
        "projection": controller_projection(status),
    }


# --------------------------------------------------------------------------- timeline
@dataclass(order=True)
class Item:
    """One thing to do at drill time `t` (`quiet`: no fast window unless the site reacts)."""

    t: float
    seq: int
    label: str = field(compare=False)
    action: Callable[[], None] = field(compare=False)
    quiet: bool = field(default=False, compare=False)


class VirtualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Drill:
    """The assembled drill: scenario, plant, controller, timeline, recorder."""

    loaded: LoadedScenario
    out: Path
    config: SiteConfig
    plant: Plant
    controller: Controller
    store: Store
    clock: VirtualClock
    duration_s: float
    recorder: Recorder = field(default_factory=Recorder)
    timeline: list[Item] = field(default_factory=list)
    pending: set[asyncio.Future[Any]] = field(default_factory=set)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    registered: dict[str, str] = field(default_factory=dict)  # connector -> donor id
    seq: int = 0
    truncated: list[str] = field(default_factory=list)
    controller_wall0: float | None = None  # the controller's wall time at t = 0 (live drills)
    stations: InProcessStations | None = None  # the site's OCPP stations, in memory

    @property
    def start_wall(self) -> float:
        return self.loaded.start_wall

    def wall(self) -> float:
        """The scenario's wall time now (CAP alerts are judged against it)."""
        return self.start_wall + self.clock.t

    def controller_wall(self, t: float) -> float:
        """What the controller's wall clock reads at drill time t (for leaving times)."""
        origin = self.start_wall if self.controller_wall0 is None else self.controller_wall0
        return origin + t

    def add(self, t: float, label: str, action: Callable[[], None], quiet: bool = False) -> None:
        self.seq += 1
        self.timeline.append(Item(t, self.seq, label, action, quiet))
        self.timeline.sort()

    # ------------------------------------------------------------------ commands
    def submit(self, command: str, args: dict[str, Any], why: str) -> None:
        t = self.clock.t
        entry: dict[str, Any] = {
            "time_s": t,
            "command": command,
            "args": args,
            "why": why,
            "outcome": "pending",
            "detail": "",
            "answered_s": None,
        }
        self.recorder.commands.append(entry)
        self.outbox.append(entry)

    def flush_outbox(self) -> None:
        """Hand queued commands to the controller, as a tablet would between two cycles."""
        for entry in self.outbox:
            task = asyncio.ensure_future(self._submit(entry))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        self.outbox.clear()

    async def _submit(self, entry: dict[str, Any]) -> None:
        result = await self.controller.submit(
            entry["command"], entry["args"], actor="drill", role="operator"
        )
        entry["outcome"] = result.outcome
        entry["detail"] = result.detail
        entry["answered_s"] = self.clock.t  # drill time: the operator has the answer then


def connector_vehicle(plant: Plant, connector: str) -> VehicleSim | None:
    """The vehicle parked at a charger or V2L outlet, if any."""
    holder = plant.chargers.get(connector) or plant.outlets.get(connector)
    return None if holder is None else holder.vehicle


def arrival_soc(drill: Drill, event: VehicleArrives) -> float:
    """The arriving car's state of charge: the event's, else what it left with earlier in
    the drill, else its initial one (its energy is frozen while away)."""
    if event.soc_pct is not None:
        return event.soc_pct
    stats = drill.recorder.vehicles.get(event.vehicle)
    if stats is not None and not stats.present:
        return stats.end_soc_pct
    initial = drill.loaded.scenario.initial
    return initial.soc_pct.get(event.vehicle, initial.default_soc_pct)


def _vehicle_stats(drill: Drill, connector: str, t: float) -> None:
    vehicle = connector_vehicle(drill.plant, connector)
    if vehicle is None:
        return
    stats = drill.recorder.vehicles.get(vehicle.vehicle_id)
    if stats is None:
        drill.recorder.vehicles[vehicle.vehicle_id] = VehicleStats(
            vehicle.vehicle_id,
            connector,
            vehicle.reserve_soc_pct,
            vehicle.capacity_wh,
            vehicle.soc_pct,
            vehicle.soc_pct,
            vehicle.soc_pct,
            arrived_s=t,
        )
    else:
        stats.present = True
        stats.connector = connector
        stats.end_soc_pct = vehicle.soc_pct
        stats.min_soc_pct = min(stats.min_soc_pct, vehicle.soc_pct)


def _pv_profile(loaded: LoadedScenario, duration_s: float) -> list[tuple[float, float]]:
    """(drill time, available W) steps of the scenario's [pv] day shape."""
    pv = loaded.scenario.pv
    if pv is None:
        return []
    start = loaded.scenario.scenario.start
    start_h = start.hour + start.minute / 60 + start.second / 3600
    steps = []
    t = 0.0
    while t <= duration_s:
        mid = t + pv.step / 2
        local_h = start_h + mid / 3600
        day = int(local_h // 24)
        hour = local_h % 24
        factor = pv.daily_factor[day % len(pv.daily_factor)] if pv.daily_factor else 1.0
        if pv.sunrise_h < hour < pv.sunset_h:
            shape = math.sin(math.pi * (hour - pv.sunrise_h) / (pv.sunset_h - pv.sunrise_h))
        else:
            shape = 0.0
        steps.append((t, round(pv.peak_w * shape * factor, 1)))
        t += pv.step
    return steps


def _station_event(drill: Drill, event: StationFault | StationRecovers) -> str:
    """A station fault or recovery on the drill's in-process station (what was done)."""
    station = None if drill.stations is None else drill.stations.stations.get(event.device)
    if station is None:  # checked when the scenario was loaded
        raise ValueError(f"{event.device}: no simulated OCPP station")
    if isinstance(event, StationRecovers):
        return clear_station_faults(station)
    return inject_station_fault(station, event.fault, delay_s=event.delay_s)


def _apply(drill: Drill, index: int, event: Any) -> Callable[[], None]:
    """The action of one timeline event."""
    plant = drill.plant
    site = drill.config

    def record(what: str) -> None:
        status = drill.controller.status
        drill.recorder.applied.append(
            {
                "mode": status.mode.value if status is not None else "starting",
                "time_s": drill.clock.t,
                "index": index,
                "kind": event.kind,
                "what": what,
                "note": event.note,
            }
        )

    def act() -> None:
        t = drill.clock.t
        if isinstance(event, GridLoss):
            plant.grid_loss()
            record("grid lost")
        elif isinstance(event, StationFault | StationRecovers):
            record(_station_event(drill, event))
        elif isinstance(event, GridReturn):
            plant.grid_return()
            record("grid returned")
        elif isinstance(event, Sag):
            plant.sag(event.pu, event.duration_s)
            record(f"voltage sag to {event.pu:g} pu for {event.duration_s:g} s")
        elif isinstance(event, Flicker):
            plant.flicker(event.period_s, event.count)
            record(f"grid flicker: {event.count} x {event.period_s:g} s")
        elif isinstance(event, GridFrequency):
            plant.ramp_grid_frequency(event.hz, event.ramp)
            how = f"over {format_span(event.ramp)}" if event.ramp > 0 else "(step)"
            record(f"grid frequency to {event.hz:g} Hz {how}")
        elif isinstance(event, GridVoltage):
            plant.ramp_grid_voltage(event.pu * site.grid.nominal_voltage_v, event.ramp)
            how = f"over {format_span(event.ramp)}" if event.ramp > 0 else "(step)"
            record(f"grid voltage to {event.pu:g} pu {how}")
        elif isinstance(event, VehicleArrives):
            known = next((v for v in site.vehicles if v.id == event.vehicle), None)
            capacity = event.capacity_wh or (known.capacity_wh if known else 0.0)
            reserve = event.reserve_soc_pct
            if reserve is None:
                reserve = known.reserve_soc_pct if known is not None else 50.0
            soc = arrival_soc(drill, event)
            plant.plug(
                event.connector,
                event.vehicle,
                soc,
                capacity,
                reserve,
                event.max_discharge_w
                if event.max_discharge_w is not None
                else (known.max_discharge_w if known is not None else None),
            )
            if registers_vehicle(event, site):
                args: dict[str, Any] = {
                    "vehicle_id": event.vehicle,
                    "connector": event.connector,
                    "reserve_soc_pct": reserve,
                    "capacity_wh": capacity,
                    "soc_pct": soc,
                }
                if event.leaving is not None:
                    args["leaving_at"] = drill.controller_wall(event.leaving)
                drill.registered[event.connector] = event.vehicle
                drill.submit("register_vehicle", args, f"{event.vehicle} arrived")
            _vehicle_stats(drill, event.connector, t)
            record(
                f"{event.vehicle} plugged into {event.connector} at {soc:g} %,"
                f" keeps {reserve:g} %"
            )
        elif isinstance(event, VehicleLeaves | Unplug):
            vehicle = connector_vehicle(plant, event.connector)
            if vehicle is None:
                record(f"nothing to unplug at {event.connector}")
                return
            donor = drill.registered.get(event.connector)

            def unplug() -> None:
                if connector_vehicle(plant, event.connector) is vehicle:
                    stats = drill.recorder.vehicles.get(vehicle.vehicle_id)
                    if stats is not None:
                        stats.present = False
                        stats.left_s = drill.clock.t
                        stats.end_soc_pct = vehicle.soc_pct
                    plant.unplug(event.connector)

            if isinstance(event, VehicleLeaves) and donor is not None:
                drill.submit("release_vehicle", {"vehicle_id": donor}, f"{donor} leaving")
                del drill.registered[event.connector]
                drill.add(t + RELEASE_WALK_S, f"{donor} unplugged from {event.connector}", unplug)
                record(f"{donor} released; unplugged {RELEASE_WALK_S:g} s later")
            else:
                unplug()
                record(
                    f"{vehicle.vehicle_id} unplugged from {event.connector} without warning"
                    if isinstance(event, Unplug)
                    else f"{vehicle.vehicle_id} left {event.connector}"
                )
        elif isinstance(event, LoadChange):
            ids = (
                [event.load]
                if event.load is not None
                else [ld.id for ld in site.loads if ld.tier.label == event.tier]
            )
            for load_id in ids:
                plant.set_load_factor(str(load_id), event.factor)
            record(f"load factor {event.factor:g} on {', '.join(str(i) for i in ids)}")
        elif isinstance(event, SetPv):
            plant.set_pv_available(event.available_w)
            record(f"PV available {event.available_w:g} W")
        elif isinstance(event, DeviceSilent):
            plant.silence(event.device)
            record(f"{event.device} stops answering")
        elif isinstance(event, DeviceGarbage):
            plant.garbage(event.device)
            record(f"{event.device} answers garbage")
        elif isinstance(event, DeviceException):
            plant.exception(event.device, event.code)
            record(f"{event.device} answers Modbus exception {event.code}")
        elif isinstance(event, DeviceFault):
            plant.fault(event.device)
            record(f"{event.device} hardware fault")
        elif isinstance(event, DeviceRecovers):
            plant.clear_fault(event.device)
            record(f"{event.device} recovered")
        elif isinstance(event, BreakerFailToOperate):
            plant.fail_to_operate(event.failed)
            record(f"PCC breaker fail-to-operate {'on' if event.failed else 'off'}")
        elif isinstance(event, CapAlertEvent):
            alert = drill.loaded.alerts[index]
            watch = storm_watch(
                alert, drill.wall(), exercise=drill.loaded.scenario.scenario.exercise
            )
            entry: dict[str, Any] = {
                "time_s": t,
                "file": event.file,
                "status": alert.status,
                "msg_type": alert.msg_type,
                "active": watch.active,
                "reason": watch.reason,
                "island_at_s": None,
                "onset_s": None,
            }
            drill.store.record_event(
                "storm_watch",
                ("storm watch: " if watch.active else "alert not acted on: ") + watch.reason,
                data={"identifier": alert.identifier, "status": alert.status},
                ts=drill.wall(),
            )
            if watch.active and watch.island_at_wall is not None:
                island_t = max(t, watch.island_at_wall - drill.start_wall)
                entry["island_at_s"] = island_t
                if watch.onset_wall is not None:
                    entry["onset_s"] = watch.onset_wall - drill.start_wall
                if island_t <= drill.duration_s:
                    drill.add(
                        island_t,
                        "storm watch: planned island before onset",
                        lambda: drill.submit(
                            "planned_island", {}, "storm watch: onset approaching"
                        ),
                    )
            drill.recorder.storm.append(entry)
            record(f"CAP alert {alert.status}/{alert.msg_type}: {watch.reason}")
        elif isinstance(event, Command):
            drill.submit(event.command, dict(event.args), event.note or "scenario command")
            record(f"operator command {event.command} {dict(event.args) or ''}".strip())

    return act


def _add_blips(drill: Drill, index: int, event: GridBlips, duration: float) -> None:
    """Each blip is two timeline items: the grid lost at its start, back `down` later. Only
    the losses go into the report's events (a loss is what the site must react to)."""
    plant = drill.plant
    starts = [t for t in event.starts() if t <= duration]

    def lose(n: int) -> Callable[[], None]:
        def act() -> None:
            status = drill.controller.status
            plant.grid_loss()
            drill.recorder.applied.append(
                {
                    "mode": status.mode.value if status is not None else "starting",
                    "time_s": drill.clock.t,
                    "index": index,
                    "kind": event.kind,
                    "what": f"grid blip {n + 1}/{len(starts)}: grid lost for"
                    f" {format_span(event.down)}",
                    "note": event.note,
                }
            )

        return act

    items = []
    for n, t in enumerate(starts):
        items.append((t, lose(n)))
        if t + event.down <= duration:
            items.append((t + event.down, plant.grid_return))
    for t, action in items:  # sorted once, not per item: there may be thousands
        drill.seq += 1
        drill.timeline.append(Item(t, drill.seq, event.kind, action))
    drill.timeline.sort()


# --------------------------------------------------------------------------- building
def _central_system(
    config: SiteConfig, store: Store, clock: VirtualClock, start_wall: float
) -> tuple[CentralSystem | None, list[Controller]]:
    """The controller's OCPP central system on the virtual clock, for a site with stations
    (their alarms go to the controller, built after it: the list it is appended to)."""
    controllers: list[Controller] = []
    if not config.ocpp_stations:
        return None, controllers

    def alarm(code: str, raised: bool, severity: str, message: str) -> None:
        for controller in controllers:
            controller.raise_or_clear_alarm(code, raised, severity, message)

    def event(kind: str, message: str, data: dict[str, Any]) -> None:
        store.record_event(kind, message, data=data)

    csms = CentralSystem(
        config, clock=clock, wall=lambda: start_wall + clock.t, events=event, alarms=alarm
    )
    return csms, controllers


def csms_busy(csms: CentralSystem) -> Callable[[], bool]:
    """Whether a station's driver has a command waiting or in flight."""
    drivers = list(csms.drivers.values())
    return lambda: any(driver.busy for driver in drivers)


def _set_pv(plant: Plant, watts: float) -> Callable[[], None]:
    return lambda: plant.set_pv_available(watts)


def build(loaded: LoadedScenario, out: Path, duration_s: float | None = None) -> Drill:
    scenario = loaded.scenario
    initial = scenario.initial
    config = loaded.site
    site = config.site.model_copy(
        update={
            "telemetry_period_s": max(config.site.telemetry_period_s, DRILL_TELEMETRY_PERIOD_S),
            "store_path": str(out / "drill.sqlite"),
        }
    )
    config = config.model_copy(update={"site": site})
    duration = loaded.duration_s if duration_s is None else min(duration_s, loaded.duration_s)
    pv_steps = _pv_profile(loaded, duration)
    pv0 = initial.pv_available_w
    if pv0 is None:
        pv0 = pv_steps[0][1] if pv_steps else 0.0
    rating = sum(d.rating_w or 0.0 for d in config.pv_inverters.values()) or 1.0
    init = PlantInit(
        soc_pct=dict(initial.soc_pct),
        default_soc_pct=initial.default_soc_pct,
        pv_available_fraction=pv0 / rating,
        grid_present=initial.grid_present,
        breaker_closed=True,
        load_factor=initial.load_factor,
    )
    plant = Plant(config, init)
    for vid, limit in initial.max_discharge_w.items():
        plant.vehicles[vid].max_discharge_w = limit
    for vid in initial.absent:
        vehicle = next(v for v in config.vehicles if v.id == vid)
        plant.unplug(vehicle.charger or vehicle.outlet or "")
    clock = VirtualClock()
    start_wall = loaded.start_wall
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("drill.sqlite", "drill.sqlite-wal", "drill.sqlite-shm"):
        (out / stale).unlink(missing_ok=True)
    store = Store(out / "drill.sqlite", clock=lambda: start_wall + clock.t)
    store.start()
    drivers = build_inprocess_drivers(plant)
    csms, controllers = _central_system(config, store, clock, start_wall)
    if csms is not None:
        drivers.update(
            {name: csms.driver(name, device) for name, device in config.ocpp_stations.items()}
        )
    controller = Controller(config, drivers, store, clock=clock, wall=lambda: start_wall + clock.t)
    controllers.append(controller)
    drill = Drill(loaded, out, config, plant, controller, store, clock, duration)
    if csms is not None:
        drill.stations = InProcessStations(
            config, plant, csms.serve_connection, clock, epoch_s=start_wall, busy=csms_busy(csms)
        )
    for connector in [*config.chargers, *config.outlets]:
        _vehicle_stats(drill, connector, 0.0)
    for i, event in enumerate(scenario.events):
        if event.at > duration:
            drill.truncated.append(f"events[{i}] ({event.kind} at {format_span(event.at)})")
            continue
        if isinstance(event, GridBlips):
            _add_blips(drill, i, event, duration)
            continue
        drill.add(event.at, f"{event.kind}", _apply(drill, i, event))
    for t, watts in pv_steps[1:]:
        drill.add(t, "pv", _set_pv(plant, watts), quiet=True)
    cb = scenario.criteria.charged_by
    if cb is not None and cb.at <= duration:

        def probe() -> None:
            wanted = cb.vehicles or [
                c.vehicle.vehicle_id for c in plant.chargers.values() if c.vehicle is not None
            ]
            socs = {vid: plant.vehicles[vid].soc_pct for vid in wanted if vid in plant.vehicles}
            drill.recorder.probes["charged_by"] = socs

        drill.add(cb.at, "probe", probe, quiet=True)
    return drill


# --------------------------------------------------------------------------- the loop
def timed_action_pending(modes: SiteModes, now_s: float) -> bool:
    """The controller is waiting on something it times at its own period, so a drill must
    cycle it at that period (not every slow step) until it is over
    (`resilience.steady.timed_action_pending`, on the mode machine's public state)."""
    return steady.timed_action_pending(modes.mode, modes.memory, modes.config.grid, now_s)


def trip_deadline(modes: SiteModes) -> float | None:
    """When a must-trip timer of a connected site runs out (`policies.grid.next_trip_s`): the
    runner cycles the controller exactly then, not at the next slow step (OF1's 300 s would
    otherwise trip up to `SLOW_STEP_S` late). None when nothing is timing or the site is
    not on the grid. Reads only the public state of the mode machine."""
    if modes.mode not in (Mode.GRID_CONNECTED, Mode.PLANNED_ISLANDING):
        return None
    return next_trip_s(modes.trip_points, modes.memory.trip_state)


class Progress:
    """A one-line progress bar on stderr (stdlib only); plain lines when not a terminal."""

    def __init__(self, total_s: float, name: str, enabled: bool = True) -> None:
        self.total_s = total_s
        self.name = name
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.last = -1.0
        self.last_decile = -1

    def update(self, t: float, mode: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        frac = min(1.0, t / self.total_s) if self.total_s > 0 else 1.0
        if self.tty:
            if not force and now - self.last < 0.2:
                return
            self.last = now
            width = 30
            filled = int(frac * width)
            bar = "#" * filled + "." * (width - filled)
            sys.stderr.write(
                f"\r{self.name} [{bar}] {frac * 100:5.1f}% {format_span(t):>10}"
                f" {mode:<17} {now - self.started:6.1f} s"
            )
            sys.stderr.flush()
        else:
            decile = int(frac * 10)
            if decile > self.last_decile or force:
                self.last_decile = decile
                sys.stderr.write(
                    f"{self.name}: {frac * 100:3.0f}% {format_span(t)} {mode}"
                    f" ({now - self.started:.1f} s)\n"
                )

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


async def run_virtual(
    drill: Drill, *, speed: float | None, progress: Progress, slow_step_s: float = SLOW_STEP_S
) -> None:
    """Cycle the controller and step the plant on the virtual clock (see the module doc).

    The controller cycles at its own period within FAST_WINDOW_S of a change and while a
    timed action is pending (`timed_action_pending`), otherwise every `slow_step_s`.
    """
    if not (math.isfinite(slow_step_s) and slow_step_s > 0):
        raise ValueError(f"slow_step_s must be a finite number > 0, not {slow_step_s!r}")
    stations = drill.stations
    if stations is None:
        await _run_virtual(drill, speed=speed, progress=progress, slow_step_s=slow_step_s)
        return
    with inline_validation():
        await stations.start()
        try:
            await _run_virtual(drill, speed=speed, progress=progress, slow_step_s=slow_step_s)
        finally:
            await stations.stop()


async def _run_virtual(
    drill: Drill, *, speed: float | None, progress: Progress, slow_step_s: float
) -> None:
    plant, controller, clock, rec = drill.plant, drill.controller, drill.clock, drill.recorder
    stations = drill.stations
    period = drill.config.site.cycle_period_s
    end = drill.duration_s
    sample_every = max(end / MAX_SAMPLES, 1.0)
    next_sample = 0.0
    fast_until = FAST_WINDOW_S
    wall0 = time.perf_counter()
    t = 0.0
    socs: dict[int, float] = {}
    flushed = False  # commands handed over after the last cycle: the next one takes them in
    while True:
        applied_loud = False
        while drill.timeline and drill.timeline[0].t <= t + 1e-9:
            item = drill.timeline.pop(0)
            item.action()
            if not item.quiet:
                applied_loud = True
        if applied_loud:
            fast_until = t + FAST_WINDOW_S
            next_sample = t
        if stations is not None:
            await stations.step()  # what the OCPP stations pushed by now has arrived
        decision = await controller.cycle_once()
        if flushed:
            await _answered(drill)
        flushed = False
        if stations is not None:
            await stations.settle()  # and the commands of this cycle have landed
        rec.control_steps += 1
        status = controller.status
        mode = status.mode if status is not None else Mode.STARTING
        changed = bool(decision.transitions or decision.notes)
        for tr in decision.transitions:
            rec.transitions.append(
                {
                    "time_s": tr.time_s,
                    "from": tr.source,
                    "to": tr.dest,
                    "trigger": tr.trigger,
                    "reason": tr.reason,
                }
            )
        rec.notes += len(decision.notes)
        if rec.alarm_changes(t, dict(status.alarms) if status else {}, decision):
            changed = True
        if drill.outbox:
            # Commands reach the controller between two cycles, one period apart, as
            # from the tablet: the next cycle applies them.
            drill.flush_outbox()
            flushed = changed = True
        if changed:
            fast_until = t + FAST_WINDOW_S
        if t >= next_sample or changed:
            rec.samples.append(sample(plant, t, mode, drill.controller.status))
            next_sample = t + sample_every
        progress.update(t, mode.value)
        if t >= end - 1e-9:
            break
        fast = t < fast_until or timed_action_pending(controller.modes, t)
        if fast:
            rec.fast_steps += 1
        step = period if fast else slow_step_s
        target = t + step
        if drill.timeline:
            target = min(target, drill.timeline[0].t)
        deadline = trip_deadline(controller.modes)
        if deadline is not None and deadline > t + 1e-9:
            target = min(target, deadline)  # a must-trip clearing time runs out then
        target = min(target, end, max(plant.next_event_s(), t + 1e-6))
        if speed is not None:
            lag = (target / speed) - (time.perf_counter() - wall0)
            if lag > 0:
                await asyncio.sleep(lag)
        log_len, violations = len(plant.log), len(plant.violations)
        socs = _socs_before(plant, socs)
        plant.step(target - t)
        _account(drill, socs)
        t = target
        clock.t = t
        if len(plant.log) != log_len or len(plant.violations) != violations:
            fast_until = t + FAST_WINDOW_S
    # let outstanding command answers land
    for _ in range(100):
        if not drill.pending:
            break
        await asyncio.sleep(0.01)
    progress.update(end, mode.value, force=True)


async def _answered(drill: Drill) -> None:
    """Wait (in wall time) for the answers to the commands the last cycle took in.

    A command is answered once its audit record is committed to SQLite, by the store's
    writer thread. On the virtual clock a drill runs thousands of cycles for each second
    of wall time, while that thread waits for the drill's own to let go of the CPU: left
    alone, an answer came hours of drill time late (the whole drill, at --speed max). The
    tablet has its answer within the cycle; so has the drill, at a few milliseconds of
    wall time per batch of commands. One that takes longer than `COMMAND_ANSWER_WAIT_S`
    lands when it lands (the drill's end waits for the stragglers).
    """
    if drill.pending:
        await asyncio.wait(set(drill.pending), timeout=COMMAND_ANSWER_WAIT_S)


def _socs_before(plant: Plant, into: dict[int, float]) -> dict[int, float]:
    into.clear()
    for charger in plant.chargers.values():
        if charger.vehicle is not None:
            into[id(charger.vehicle)] = charger.vehicle.soc_pct
    for outlet in plant.outlets.values():
        if outlet.vehicle is not None:
            into[id(outlet.vehicle)] = outlet.vehicle.soc_pct
    return into


def _account(drill: Drill, before: dict[int, float]) -> None:
    stats = drill.recorder.vehicles
    plant = drill.plant
    vehicles = [c.vehicle for c in plant.chargers.values()]
    vehicles += [o.vehicle for o in plant.outlets.values()]
    for vehicle in vehicles:
        if vehicle is None:
            continue
        s = stats.get(vehicle.vehicle_id)
        if s is None:
            continue
        old = before.get(id(vehicle), vehicle.soc_pct)
        delta_wh = (old - vehicle.soc_pct) / 100.0 * vehicle.capacity_wh
        if delta_wh > 0:
            s.given_wh += delta_wh
        else:
            s.received_wh -= delta_wh
        s.end_soc_pct = vehicle.soc_pct
        s.min_soc_pct = min(s.min_soc_pct, vehicle.min_soc_seen_pct)


# --------------------------------------------------------------------------- criteria
def evaluate(drill: Drill) -> list[dict[str, Any]]:
    """Each criterion of the scenario with its limit, measured value and verdict."""
    crit = drill.loaded.scenario.criteria
    plant, rec = drill.plant, drill.recorder
    out: list[dict[str, Any]] = []

    def add(name: str, limit: Any, measured: Any, passed: bool, detail: str = "") -> None:
        out.append(
            {"name": name, "limit": limit, "measured": measured, "passed": passed, "detail": detail}
        )

    limits, default = crit.unserved_limits()
    for label, limit in limits.items():
        tier = Tier.from_label(label)
        if crit.unserved_scope == "bus":
            measured = (
                sum(
                    wh
                    for lid, wh in plant.unserved_load_wh.items()
                    if plant.loads[lid].spec.tier is tier and plant.loads[lid].spec.supply == "bus"
                )
                / 1000.0
            )
        else:
            measured = plant.unserved_energy_wh[tier] / 1000.0
        add(
            f"unserved {label} energy, {crit.unserved_scope} [kWh]"
            + (" (default)" if default else ""),
            f"<= {limit:g}",
            round(measured, 4),
            measured <= limit + 1e-9,
            "max_unserved_kwh not given: the default limit (docs/scenarios.md)" if default else "",
        )
    if crit.max_safety_violations is not None:
        count = len(plant.violations)
        kinds = sorted({v.kind for v in plant.violations})
        # Island collapses the world caused (an unplugged or faulted grid-former) are counted
        # and listed in the report, but they are not the controller's violations.
        world = sum(1 for o in plant.outages if o.by == "world")
        notes = [", ".join(kinds)] if kinds else []
        if world:
            notes.append(f"island collapses caused by the world (not violations): {world}")
        add(
            "safety violations",
            f"<= {crit.max_safety_violations}",
            count,
            count <= crit.max_safety_violations,
            "; ".join(notes),
        )
    if crit.island_within_ms is not None:
        # every time the site left the grid because of the grid: from the grid event that
        # caused it (loss, flicker, sag) to the island being formed
        causes = [
            a for a in rec.applied if a["kind"] in ("grid_loss", "flicker", "sag", "grid_blips")
        ]
        worst: float | None = None
        detail = "the site never left the grid because of it"
        for tr in rec.transitions:
            if tr["from"] != "grid_connected" or tr["to"] != "islanding":
                continue
            before = [a["time_s"] for a in causes if a["time_s"] <= tr["time_s"] + 1e-9]
            if not before:
                continue
            cause = before[-1]
            formed = [
                x["time_s"]
                for x in rec.transitions
                if x["to"] == "islanded" and x["time_s"] >= tr["time_s"]
            ]
            if not formed:
                worst, detail = math.inf, f"no island after the grid event at {format_span(cause)}"
                break
            took = (formed[0] - cause) * 1000.0
            if worst is None or took > worst:
                worst = took
                detail = f"worst after the grid event at {format_span(cause)}"
        took_ms = None if worst is None or math.isinf(worst) else round(worst, 1)
        add(
            "island formed after the grid went [ms]",
            f"<= {crit.island_within_ms:g}",
            took_ms,
            took_ms is not None and took_ms <= crit.island_within_ms,
            detail,
        )
    if crit.islanded_by is not None:
        first = next((tr["time_s"] for tr in rec.transitions if tr["to"] == "islanded"), None)
        add(
            "islanded by [s]",
            f"<= {crit.islanded_by:g}",
            None if first is None else round(first, 3),
            first is not None and first <= crit.islanded_by,
        )
    status = drill.controller.status
    final = status.mode.value if status is not None else "starting"
    if crit.final_mode is not None:
        add("final mode", crit.final_mode.value, final, final == crit.final_mode.value)
    entered = {tr["to"] for tr in rec.transitions}
    for mode in crit.must_enter:
        add(
            f"entered {mode.value}",
            "yes",
            "yes" if mode.value in entered else "no",
            mode.value in entered,
        )
    for mode in crit.must_not_enter:
        add(
            f"never entered {mode.value}",
            "no",
            "yes" if mode.value in entered else "no",
            mode.value not in entered,
        )
    for code in crit.alarms_raised:
        raised = any(a["code"] == code for a in rec.alarm_log)
        add(f"alarm {code} raised", "yes", "yes" if raised else "no", raised)
    if crit.charged_by is not None:
        socs = rec.probes.get("charged_by")
        lowest = min(socs.values()) if socs else None
        add(
            f"charged by {format_span(crit.charged_by.at)} [% SoC, lowest]",
            f">= {crit.charged_by.min_soc_pct:g}",
            None if lowest is None else round(lowest, 2),
            lowest is not None and lowest >= crit.charged_by.min_soc_pct - 1e-9,
            ", ".join(f"{k} {v:.1f} %" for k, v in (socs or {}).items()),
        )
    if crit.max_relay_operations is not None:
        ops = {lid: plant.relay_operations(lid) for lid in plant.loads}
        worst_id = max(ops, key=lambda k: ops[k])
        add(
            "relay operations per load (most)",
            f"<= {crit.max_relay_operations}",
            ops[worst_id],
            ops[worst_id] <= crit.max_relay_operations,
            worst_id,
        )
    if crit.no_pcc_close_before is not None:
        early = [t for t in plant.pcc_closes if t < crit.no_pcc_close_before]
        first = plant.pcc_closes[0] if plant.pcc_closes else None
        add(
            "first PCC close [s]",
            f">= {crit.no_pcc_close_before:g}",
            None if first is None else round(first, 3),
            not early,
            f"{len(early)} close(s) before {format_span(crit.no_pcc_close_before)}"
            if early
            else ("the PCC never closed" if first is None else ""),
        )
    for e in crit.endurance:
        out.extend(_endurance_rows(drill, e))
    for r in crit.relay:
        out.extend(_relay_rows(drill, r))
    return out


def _window(between: tuple[float, float] | None, end: float) -> tuple[float, float]:
    return (0.0, end) if between is None else between


def _window_text(between: tuple[float, float] | None) -> str:
    if between is None:
        return ""
    return f", {format_span(between[0])} to {format_span(between[1])}"


def _endurance_rows(drill: Drill, e: Endurance) -> list[dict[str, Any]]:
    """One row per circuit: the hours every `e.tier` load on it was energised (plant record)."""
    plant = drill.plant
    tier = Tier.from_label(e.tier)
    start, until = _window(e.between, drill.clock.t)
    circuits = [e.circuit] if e.circuit is not None else ["bus", *plant.outlets]
    rows = []
    for circuit in circuits:
        if (circuit, tier) not in plant.served_intervals:
            continue
        hours = plant.served_s(circuit, tier, start, until) / 3600.0
        dark = [
            (a, b)
            for a, b in _gaps(plant.served_intervals[(circuit, tier)], start, until)
            if b - a > 1.0
        ]
        detail = (
            f"dark from {format_span(dark[0][0])} for {format_span(dark[0][1] - dark[0][0])}"
            + (f" (and {len(dark) - 1} more)" if len(dark) > 1 else "")
            if dark
            else ""
        )
        rows.append(
            {
                "name": f"{e.tier} served on {circuit}{_window_text(e.between)} [h]",
                "limit": f">= {e.at_least / 3600:g}",
                "measured": round(hours, 3),
                "passed": hours * 3600.0 >= e.at_least - 1e-6,
                "detail": detail,
            }
        )
    return rows


def _gaps(intervals: list[list[float]], start: float, until: float) -> list[tuple[float, float]]:
    """The dark stretches between served intervals, within [start, until]."""
    gaps = []
    t = start
    for a, b in intervals:
        if b <= t:
            continue
        if a > until:
            break
        if a > t:
            gaps.append((t, a))
        t = max(t, b)
    if t < until:
        gaps.append((t, until))
    return gaps


def _relay_rows(drill: Drill, r: RelayCheck) -> list[dict[str, Any]]:
    """One row per check (opens, closes, max_operations), judged over the selected loads."""
    plant = drill.plant
    if r.load is not None:
        ids = [r.load]
    else:
        ids = [
            lid for lid, ld in plant.loads.items() if r.tier is None or ld.spec.tier.label == r.tier
        ]
    who = r.load or (f"every {r.tier} load" if r.tier else "every load")
    start, until = _window(r.between, drill.clock.t)
    changes = {lid: plant.relay_changes(lid, start, until) for lid in ids}
    rows = []

    def row(what: str, limit: str, measured: Any, passed: bool, detail: str) -> None:
        rows.append(
            {
                "name": f"relay of {who} {what}{_window_text(r.between)}",
                "limit": limit,
                "measured": measured,
                "passed": passed,
                "detail": detail,
            }
        )

    for check, state in (("opens", False), ("closes", True)):
        wanted = getattr(r, check)
        if wanted is None:
            continue
        did = [lid for lid in ids if any(on == state for _, on in changes[lid])]
        if wanted:
            missing = [lid for lid in ids if lid not in did]
            firsts = [
                f"{lid} at {format_span(next(t for t, on in changes[lid] if on == state))}"
                for lid in did
            ]
            row(
                check[:-1] + "ed",
                "yes",
                "yes" if not missing else "no",
                not missing,
                ("did not: " + ", ".join(missing)) if missing else "; ".join(firsts),
            )
        else:
            row(
                "never " + check[:-1] + "ed",
                "no",
                "yes" if did else "no",
                not did,
                ("it did: " + ", ".join(did)) if did else "",
            )
    if r.max_operations is not None:
        worst = max(ids, key=lambda lid: len(changes[lid]))
        count = len(changes[worst])
        row(
            "operations (most)",
            f"<= {r.max_operations}",
            count,
            count <= r.max_operations,
            worst,
        )
    return rows


def report(drill: Drill, wall_seconds: float, speed: str) -> dict[str, Any]:
    plant, rec = drill.plant, drill.recorder
    criteria = evaluate(drill)
    status = drill.controller.status
    loaded = drill.loaded
    sim = drill.clock.t
    vehicles = []
    for s in rec.vehicles.values():
        vehicles.append(
            {
                "id": s.vehicle_id,
                "connector": s.connector,
                "capacity_kwh": round(s.capacity_wh / 1000, 2),
                "reserve_soc_pct": s.reserve_soc_pct,
                "start_soc_pct": round(s.start_soc_pct, 2),
                "min_soc_pct": round(s.min_soc_pct, 2),
                "end_soc_pct": round(s.end_soc_pct, 2),
                "energy_given_kwh": round(s.given_wh / 1000, 3),
                "energy_received_kwh": round(s.received_wh / 1000, 3),
                "arrived_s": s.arrived_s,
                "left_s": s.left_s,
                "present_at_end": s.present,
            }
        )
    bus_unserved: dict[str, float] = dict.fromkeys((t.label for t in Tier), 0.0)
    for lid, wh in plant.unserved_load_wh.items():
        spec = plant.loads[lid].spec
        if spec.supply == "bus":
            bus_unserved[spec.tier.label] += wh / 1000
    return {
        "scenario": {
            "name": loaded.scenario.scenario.name,
            "description": loaded.scenario.scenario.description,
            "file": str(loaded.path),
            "site": str(loaded.site_path),
            "site_name": loaded.site.site.name,
            "start": loaded.scenario.scenario.start.isoformat(),
            "duration_s": loaded.duration_s,
            "events_dropped": drill.truncated,
        },
        "passed": all(c["passed"] for c in criteria),
        "criteria": criteria,
        "speed": speed,
        "sim_seconds": round(sim, 3),
        "wall_seconds": round(wall_seconds, 3),
        "speedup": round(sim / wall_seconds, 1) if wall_seconds > 0 else None,
        "control_steps": rec.control_steps,
        "control_steps_fast": rec.fast_steps,
        "final_mode": status.mode.value if status is not None else None,
        "transitions": rec.transitions,
        "served_kwh": {t.label: round(wh / 1000, 4) for t, wh in plant.served_energy_wh.items()},
        "unserved_kwh": {
            t.label: round(wh / 1000, 4) for t, wh in plant.unserved_energy_wh.items()
        },
        "unserved_kwh_bus": {k: round(v, 4) for k, v in bus_unserved.items()},
        "vehicles": vehicles,
        "safety_violations": [
            {"time_s": v.time_s, "kind": v.kind, "detail": v.detail} for v in plant.violations
        ],
        "island_collapses": [outage_json(o) for o in plant.outages],
        "alarms": rec.alarm_log,
        "commands": rec.commands,
        "events": rec.applied,
        "storm_watch": rec.storm,
        "dispatch_notes": rec.notes,
        "plant": {
            "collapses": plant.collapses,
            "collapses_by_controller": sum(1 for o in plant.outages if o.by == "controller"),
            "collapses_by_world": sum(1 for o in plant.outages if o.by == "world"),
            "breaker_operations": plant.breaker.operations,
            "import_kwh": round(plant.import_wh / 1000, 3),
            "export_kwh": round(plant.export_wh / 1000, 3),
            "pv_kwh": round(sum(i.energy_wh for i in plant.inverters.values()) / 1000, 3),
        },
        "series": rec.samples,
        "relays": {
            lid: [[0.0, plant.relay_initial[lid]]]
            + [[round(t, 3), on] for t, on in plant.relay_log[lid]]
            for lid in plant.loads
        },
        "served_h": {
            circuit: {
                tier.label: round(plant.served_s(circuit, tier, 0.0, sim) / 3600.0, 4)
                for (c, tier) in plant.served_intervals
                if c == circuit
            }
            for circuit in dict.fromkeys(c for c, _ in plant.served_intervals)
        },
        "endurance": plant_endurance(plant),
        "endurance_source": "plant: energy above reserve on the circuit / demand of the tier"
        " and the tiers above it (no PV)",
        "endurance_projection": controller_projection(status),
        "pcc_closes_s": [round(t, 3) for t in plant.pcc_closes],
    }


async def run_max(
    loaded: LoadedScenario,
    out: Path,
    *,
    speed: float | None = None,
    duration_s: float | None = None,
    progress: bool = True,
    slow_step_s: float = SLOW_STEP_S,
) -> dict[str, Any]:
    """Run on the virtual clock (paced to `speed` x real time when given); the report dict.

    `slow_step_s`: the longest the controller goes without a cycle when nothing is going on.
    """
    install_eager_tasks(asyncio.get_running_loop())
    logging.getLogger("resilience").setLevel(logging.ERROR)
    drill = build(loaded, out, duration_s)
    bar = Progress(drill.duration_s, loaded.path.stem, progress)
    started = time.perf_counter()
    try:
        await run_virtual(drill, speed=speed, progress=bar, slow_step_s=slow_step_s)
    finally:
        bar.done()
        wall = time.perf_counter() - started
        await asyncio.to_thread(drill.store.close)
    return report(drill, wall, "max" if speed is None else f"{speed:g}")


# --------------------------------------------------------------------------- real time
async def run_live(
    loaded: LoadedScenario, out: Path, *, duration_s: float | None, progress: bool = True
) -> dict[str, Any]:
    """Real time over Modbus TCP with the controller service (and the API, when present)."""
    from firmware_sim.server import SimSite
    from resilience import service

    service.quiet_pymodbus()
    logging.getLogger("resilience").setLevel(logging.WARNING)
    # Build everything as for a virtual drill, then swap the plant into a live SimSite.
    drill = build(loaded, out, duration_s)
    await asyncio.to_thread(drill.store.close)
    site = SimSite(drill.config, bind_free_ports=True, tick_s=0.01)
    site.plant = drill.plant
    from firmware_sim.devices import build_devices

    site.devices = build_devices(drill.plant)
    bar = Progress(drill.duration_s, loaded.path.stem, progress)
    started = time.monotonic()
    drill.controller_wall0 = time.time()
    async with site:
        running = await service.start(
            site.controller_config(), store_path=str(out / "drill.sqlite")
        )
        drill.controller = running.controller
        drill.store = running.store
        api = await _start_api(running, drill.config)
        rec = drill.recorder
        last_mode: Mode | None = None

        def listen(status: Any) -> None:
            nonlocal last_mode
            t = time.monotonic() - started
            drill.clock.t = t
            rec.control_steps += 1
            if status.mode != last_mode:
                last_mode = status.mode
            rec.alarm_changes(t, dict(status.alarms), None)

        running.controller.on_status(listen)
        sample_every = max(drill.duration_s / MAX_SAMPLES, 1.0)
        next_sample = 0.0
        try:
            while True:
                t = time.monotonic() - started
                drill.clock.t = t
                while drill.timeline and drill.timeline[0].t <= t:
                    drill.timeline.pop(0).action()
                drill.flush_outbox()
                if t >= next_sample:
                    mode = (
                        running.controller.status.mode
                        if running.controller.status
                        else Mode.STARTING
                    )
                    rec.samples.append(
                        sample(drill.plant, t, mode, running.controller.status)
                    )
                    next_sample = t + sample_every
                    bar.update(t, mode.value)
                if t >= drill.duration_s:
                    break
                await asyncio.sleep(0.05)
        finally:
            bar.done()
            if api is not None:
                await api()
            await service.stop_running(running)
    wall = time.monotonic() - started
    drill.clock.t = min(wall, drill.duration_s)
    # transitions come from the store (time, from, to, trigger) at simulated wall times
    reader = Store(out / "drill.sqlite")
    try:
        events = reader.events(kinds=["transition"], limit=10000)
    finally:
        reader.close()
    origin = drill.controller_wall0
    drill.recorder.transitions = [
        {
            "time_s": round(e.ts - origin, 3),
            "from": e.mode_from,
            "to": e.mode_to,
            "trigger": e.trigger,
            "reason": e.reason,
        }
        for e in reversed(events)
    ]
    return report(drill, wall, "1")


async def _start_api(
    running: Any, config: SiteConfig
) -> Callable[[], Coroutine[Any, Any, None]] | None:
    """Serve the project's API and tablet UI next to the controller, when the project has them."""
    try:
        from resilience.api.server import start_api
    except ImportError:
        print("drill: no API module yet: the controller runs alone", file=sys.stderr)
        return None
    try:
        server = await start_api(
            running.controller, config.api.host, config.api.port, config.api
        )
    except Exception as exc:  # the drill goes on without a tablet
        print(f"drill: the API did not start ({exc}); the controller runs alone", file=sys.stderr)
        return None
    print(f"drill: tablet UI and API at {server.url}", file=sys.stderr)
    return server.stop


# --------------------------------------------------------------------------- command line
def parse_speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not 'max' or a number") from None
    if not math.isfinite(speed) or speed <= 0:
        raise argparse.ArgumentTypeError("speed must be 'max' or a number > 0")
    return speed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilience drill",
        description="Run a drill scenario against the simulated site; exit 0 when it passes.",
    )
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (TOML)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="where report.json, report.html and drill.sqlite go (default var/drills/NAME)",
    )
    parser.add_argument(
        "--speed",
        type=parse_speed,
        default=None,
        metavar="max|N",
        help="max: virtual clock, as fast as possible (default); 1: real time over Modbus TCP"
        " with the API and UI; N: virtual clock paced to N x real time",
    )
    parser.add_argument(
        "--duration",
        default=None,
        metavar="SPAN",
        help="stop early (e.g. 6h): a shortened run of the same scenario",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    duration: float | None = None
    if args.duration is not None:
        try:
            duration = float(parse_span(args.duration))
        except ValueError as exc:
            print(f"resilience drill: --duration: {exc}", file=sys.stderr)
            return 2
        if duration <= 0:
            print("resilience drill: --duration must be > 0", file=sys.stderr)
            return 2
    try:
        loaded = load_scenario(args.scenario)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("var") / "drills" / Path(args.scenario).stem
    speed: float | None = args.speed
    if speed == 1.0:
        result = asyncio.run(run_live(loaded, out, duration_s=duration, progress=not args.quiet))
    else:
        result = asyncio.run(
            run_max(loaded, out, speed=speed, duration_s=duration, progress=not args.quiet)
        )
    paths = write_reports(result, out)
    verdict = "PASSED" if result["passed"] else "FAILED"
    print(
        f"{loaded.scenario.scenario.name}: {verdict}"
        f" ({format_span(result['sim_seconds'])} in {result['wall_seconds']:.1f} s,"
        f" {result['control_steps']} control steps)"
    )
    for c in result["criteria"]:
        mark = "ok  " if c["passed"] else "FAIL"
        print(f"  {mark} {c['name']}: {c['measured']} (limit {c['limit']})")
    print(f"  report: {paths[0]}  {paths[1]}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
