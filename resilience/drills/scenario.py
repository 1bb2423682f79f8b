"""Drill scenarios (TOML) as validated, frozen models: the site, a timeline, pass criteria.

A scenario names the site file it runs, how long it lasts, the plant's initial
conditions (with the owners' reserves for this drill), a timeline of events
(grid loss and return, sags, flicker, periodic blips with a duty cycle, grid
frequency and voltage steps and ramps, vehicles of any id arriving at any free
connector and leaving, load changes, devices that fall silent or talk garbage,
a breaker that will not operate, a CAP alert arriving, operator commands) and
the criteria that decide pass or fail (unserved energy, with an explicit
default; endurance per tier and circuit; no PCC close before a time; relay
operations within a window; ...), every one judged on the plant's record. The
format is documented in `docs/scenarios.md`.

Like the site file, a bad scenario never half-runs: every problem becomes one
`ScenarioProblem` naming the file, the event (index, kind and time) or key,
and the reason; `load_scenario` raises them all at once as `ScenarioError`.

Times: `at`, `duration`, `leaving` and the like take seconds as a number or a
string with units ("90s", "5m", "2h", "1d", "1h30m", "250ms"); `start` is an
ISO 8601 time with its offset (the wall time of drill time 0).
"""

from __future__ import annotations

import heapq
import re
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from resilience.cap import CapAlert, CapError, load_cap
from resilience.config import ConfigError, ConfigProblem, SiteConfig, load_site
from resilience.model import Mode, Tier

__all__ = [
    "DEFAULT_MAX_UNSERVED_KWH",
    "RELEASE_WALK_S",
    "Criteria",
    "Endurance",
    "Event",
    "GridBlips",
    "LoadedScenario",
    "RelayCheck",
    "Scenario",
    "ScenarioError",
    "ScenarioProblem",
    "format_span",
    "load_scenario",
    "parse_span",
    "registers_vehicle",
]

RELEASE_WALK_S = 10.0
"""[s] from the operator's release of a donor car (vehicle_leaves) to its owner unplugging it."""

_SPAN_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)\s*")
_UNIT_S = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_span(value: Any) -> Any:
    """Seconds from a number or a string such as "1h30m", "90s", "2.5h", "250ms"."""
    if isinstance(value, bool):
        raise ValueError("expected seconds or a duration like '2h' or '90s'")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _SPAN_PART.match(text, pos)
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration (seconds, or like '90s', '5m', '2h', '1d', '1h30m')"
            )
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    return total


def format_span(seconds: float) -> str:
    """A compact human form: 45 s, 12.5 min, 3.2 h."""
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.4g} min"
    return f"{seconds / 3600:.4g} h"


Span = Annotated[float, BeforeValidator(parse_span), Field(ge=0, allow_inf_nan=False)]
PositiveSpan = Annotated[float, BeforeValidator(parse_span), Field(gt=0, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- sections
class ScenarioSection(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    site: str = Field(min_length=1)  # path, relative to the scenario file
    duration: PositiveSpan
    start: datetime = datetime.fromisoformat("2025-01-15T06:00:00+03:00")
    exercise: bool = True  # CAP alerts with status Exercise are acted on (a drill)

    @field_validator("start")
    @classmethod
    def _aware(cls, start: datetime) -> datetime:
        if start.tzinfo is None:
            raise ValueError("start needs a UTC offset, e.g. 2025-02-06T04:17:00+03:00")
        return start


class InitialSection(_Model):
    """The plant at drill time 0 (everything else comes from the site file)."""

    soc_pct: dict[str, Percent] = {}  # vehicle id -> SoC [%]
    default_soc_pct: Percent = 80.0
    pv_available_w: Annotated[float, Field(ge=0)] | None = None  # None: from [pv] or 0 W
    load_factor: Annotated[float, Field(ge=0, le=10)] = 1.0
    absent: list[str] = []  # site vehicles not parked at the start (they may arrive later)
    # vehicle id -> the owner's reserve [%] for this drill, instead of the site file's (the
    # controller and the plant's referee both keep it)
    reserve_soc_pct: dict[str, Percent] = {}
    max_discharge_w: dict[str, Annotated[float, Field(gt=0)]] = {}  # a car's own V2G limit [W]
    grid_present: bool = True


class PvSection(_Model):
    """A clear-sky day shape repeated each day: a half sine from sunrise to sunset."""

    peak_w: Annotated[float, Field(ge=0)]
    sunrise_h: Annotated[float, Field(ge=0, lt=24)] = 7.5  # local time of day [h]
    sunset_h: Annotated[float, Field(gt=0, le=24)] = 17.0
    step: PositiveSpan = 3600.0  # PV is updated this often (piecewise constant)
    daily_factor: list[Annotated[float, Field(ge=0, le=1.5)]] = []  # per day (clouds), cycled


class ChargedBy(_Model):
    at: Span
    min_soc_pct: Percent
    vehicles: list[str] = []  # default: every vehicle on a bidirectional charger


def _two_times(value: Any) -> Any:
    if isinstance(value, list | tuple) and len(value) != 2:
        raise ValueError(f'{list(value)!r} is not a window: give two times, e.g. ["1h", "2h"]')
    return value


Window = Annotated[tuple[Span, Span], BeforeValidator(_two_times)]
"""[from, until] in drill time, both included."""


class Endurance(_Model):
    """A tier served for at least `at_least`: the time every one of its loads on a circuit was
    energised (relay closed on a live circuit), as the plant recorded it."""

    tier: str
    at_least: Span
    circuit: str | None = None  # "bus" or a V2L outlet id; None: every circuit with such loads
    between: Window | None = None  # counted only within this window (default: the whole drill)

    @field_validator("tier")
    @classmethod
    def _tier(cls, tier: str) -> str:
        Tier.from_label(tier)
        return tier


class RelayCheck(_Model):
    """What a load's relay did within a window, as the plant recorded it (per load)."""

    load: str | None = None
    tier: str | None = None  # every load of this tier; neither: every load of the site
    between: Window | None = None  # default: the whole drill
    opens: bool | None = None  # True: it opened at least once in the window; False: never
    closes: bool | None = None  # likewise for closing
    max_operations: Annotated[int, Field(ge=0)] | None = None  # opens + closes in the window

    @field_validator("tier")
    @classmethod
    def _tier(cls, tier: str | None) -> str | None:
        if tier is not None:
            Tier.from_label(tier)
        return tier


DEFAULT_MAX_UNSERVED_KWH: dict[str, float] = {"life_safety": 0.01}
"""The unserved-energy limit when a scenario gives no `max_unserved_kwh`: life-safety loads dark
no longer than a break-before-make transfer takes (0.01 kWh is 8 s of the reference site's
life-safety load), over `unserved_scope`. Reported as a default, never silently."""


class Criteria(_Model):
    """Pass criteria; each one present is measured and reported."""

    # None: DEFAULT_MAX_UNSERVED_KWH, reported as the default (see `unserved_limits`)
    max_unserved_kwh: dict[str, Annotated[float, Field(ge=0)]] | None = None
    unserved_scope: Literal["site", "bus"] = "site"  # bus: V2L circuits are not counted
    max_safety_violations: Annotated[int, Field(ge=0)] | None = 0
    island_within_ms: Annotated[float, Field(gt=0)] | None = None
    islanded_by: Span | None = None  # the site must be islanded by this drill time
    final_mode: Mode | None = None
    must_enter: list[Mode] = []
    must_not_enter: list[Mode] = []
    alarms_raised: list[str] = []  # alarm codes that must be raised at some time
    charged_by: ChargedBy | None = None
    max_relay_operations: Annotated[int, Field(ge=0)] | None = None  # per load (chatter)
    no_pcc_close_before: Span | None = None  # the PCC contacts must not close before this
    endurance: list[Endurance] = []
    relay: list[RelayCheck] = []

    @field_validator("max_unserved_kwh")
    @classmethod
    def _tiers(cls, limits: dict[str, float] | None) -> dict[str, float] | None:
        for label in limits or {}:
            Tier.from_label(label)
        return limits

    def unserved_limits(self) -> tuple[dict[str, float], bool]:
        """The unserved-energy limits per tier [kWh], and whether they are the default."""
        if self.max_unserved_kwh is None:
            return dict(DEFAULT_MAX_UNSERVED_KWH), True
        return dict(self.max_unserved_kwh), False


# --------------------------------------------------------------------------- events
class _Event(_Model):
    at: Span
    note: str = ""  # shown in the report's timeline


class GridLoss(_Event):
    kind: Literal["grid_loss"]


class GridReturn(_Event):
    kind: Literal["grid_return"]


class Sag(_Event):
    kind: Literal["sag"]
    pu: Annotated[float, Field(ge=0, le=1.5)]
    duration_s: Annotated[float, Field(gt=0, le=3600)]


class Flicker(_Event):
    kind: Literal["flicker"]
    period_s: Annotated[float, Field(gt=0, le=3600)]
    count: Annotated[int, Field(ge=1, le=1000)]


class GridFrequency(_Event):
    """The utility's frequency goes to `hz`: a step, or linearly over `ramp` (a duration).
    It stays there until the next grid_frequency event (grid loss and return keep it)."""

    kind: Literal["grid_frequency"]
    hz: Annotated[float, Field(ge=40, le=70)]
    ramp: Span = 0.0  # 0: a step


class GridVoltage(_Event):
    """The utility's voltage goes to `pu` of the site's nominal: a step, or linearly over
    `ramp`. It stays there until the next grid_voltage event; a sag applies on top of it."""

    kind: Literal["grid_voltage"]
    pu: Annotated[float, Field(gt=0, le=2.0)]
    ramp: Span = 0.0  # 0: a step


GRID_EVENT_MAX_OFFSET_HZ = 6.0
"""[Hz] a grid_frequency event this far from the site's nominal is a mistake (60 Hz on a
50 Hz site); every trip table has tripped long before."""
class GridBlips(_Event):
    """Periodic grid outages with a duty cycle: from `at`, every `period` the grid is lost for
    `down` and then returns; `count` blips, or as many as start before `until`."""

    kind: Literal["grid_blips"]
    period: PositiveSpan
    down: PositiveSpan
    count: Annotated[int, Field(ge=1, le=10000)] | None = None
    until: Span | None = None

    def starts(self) -> list[float]:
        """Drill times at which each blip's grid loss begins."""
        if self.count is not None:
            return [self.at + i * self.period for i in range(self.count)]
        out: list[float] = []
        t = self.at
        while self.until is not None and t < self.until - 1e-9 and len(out) < 10000:
            out.append(t)
            t = self.at + len(out) * self.period
        return out


class VehicleArrives(_Event):
    kind: Literal["vehicle_arrives"]
    vehicle: str = Field(min_length=1)
    connector: str = Field(min_length=1)  # a bidirectional_charger or v2l_outlet id
    # None: the state of charge it left with earlier in the drill, or, if it has not been
    # parked yet, its initial one (initial.soc_pct or default_soc_pct): away, its energy
    # is frozen (as the survival model and `resilience plan` assume)
    soc_pct: Percent | None = None
    capacity_wh: Annotated[float, Field(gt=0)] | None = None  # default: the site file's
    reserve_soc_pct: Percent | None = None  # default: the site file's
    leaving: Span | None = None  # drill time the owner wants to leave
    max_discharge_w: Annotated[float, Field(gt=0)] | None = None  # the car's own limit [W]
    tell_controller: bool | None = None  # operator registers it (default: when needed)


def registers_vehicle(event: VehicleArrives, site: SiteConfig) -> bool:
    """Whether the operator registers an arriving car on the tablet (`register_vehicle`):
    when told so, else when it is not the site file's car for that connector, or its
    owner states a leaving time or another reserve than the site file's."""
    if event.tell_controller is not None:
        return event.tell_controller
    home = site.vehicle_at(event.connector)
    return (
        home is None
        or home.id != event.vehicle
        or event.leaving is not None
        or (event.reserve_soc_pct is not None and event.reserve_soc_pct != home.reserve_soc_pct)
    )


class VehicleLeaves(_Event):
    """The owner leaves: the operator releases a registered donor, then the car is unplugged."""

    kind: Literal["vehicle_leaves"]
    connector: str = Field(min_length=1)


class Unplug(_Event):
    """A car unplugged without telling anyone, possibly mid-discharge."""

    kind: Literal["unplug"]
    connector: str = Field(min_length=1)


class LoadChange(_Event):
    kind: Literal["load_change"]
    factor: Annotated[float, Field(ge=0, le=10)]  # of rated_power_w
    load: str | None = None
    tier: str | None = None  # every load of this tier (when no load is named)

    @field_validator("tier")
    @classmethod
    def _tier(cls, tier: str | None) -> str | None:
        if tier is not None:
            Tier.from_label(tier)
        return tier


class SetPv(_Event):
    kind: Literal["pv"]
    available_w: Annotated[float, Field(ge=0)]


class DeviceSilent(_Event):
    kind: Literal["device_silent"]
    device: str


class DeviceGarbage(_Event):
    kind: Literal["device_garbage"]
    device: str


class DeviceException(_Event):
    kind: Literal["device_exception"]
    device: str
    code: Literal[1, 2, 3, 4, 5, 6, 7, 8, 10, 11] = 4


class DeviceFault(_Event):
    """A hardware fault: a charger trips, an outlet trips, the PV faults, the breaker trips."""

    kind: Literal["device_fault"]
    device: str


class DeviceRecovers(_Event):
    kind: Literal["device_recovers"]
    device: str


class StationFault(_Event):
    """An OCPP station breaks (firmware_sim/ocpp_faults.py): its link cut, faulted,
    rejecting every command, answering `delay_s` (real time) late, or sending one
    out-of-schema message."""

    kind: Literal["station_fault"]
    device: str
    fault: Literal["link_cut", "faulted", "rejecting", "slow", "out_of_schema"]
    delay_s: Annotated[float, Field(gt=0, le=60)] | None = None


class StationRecovers(_Event):
    """Every fault of an OCPP station cleared: link back, fault cleared, answering."""

    kind: Literal["station_recovers"]
    device: str


class BreakerFailToOperate(_Event):
    kind: Literal["breaker_fail_to_operate"]
    failed: bool = True


class CapAlertEvent(_Event):
    kind: Literal["cap_alert"]
    file: str = Field(min_length=1)  # CAP 1.2 XML, relative to the scenario file


class Command(_Event):
    """An operator command, as from the tablet (submitted to the controller)."""

    kind: Literal["command"]
    command: Literal[
        "planned_island",
        "reconnect",
        "shed_load",
        "restore_load",
        "keep_load_on",
        "follow_policy",
        "set_tier",
        "register_vehicle",
        "release_vehicle",
    ]
    args: dict[str, str | float | int | bool] = {}


Event = Annotated[
    GridLoss
    | GridReturn
    | Sag
    | Flicker
    | GridFrequency
    | GridVoltage
    | GridBlips
    | VehicleArrives
    | VehicleLeaves
    | Unplug
    | LoadChange
    | SetPv
    | DeviceSilent
    | DeviceGarbage
    | DeviceException
    | DeviceFault
    | DeviceRecovers
    | StationFault
    | StationRecovers
    | BreakerFailToOperate
    | CapAlertEvent
    | Command,
    Field(discriminator="kind"),
]
EVENT_KINDS = (
    "grid_loss",
    "grid_return",
    "sag",
    "flicker",
    "grid_frequency",
    "grid_voltage",
    "grid_blips",
    "vehicle_arrives",
    "vehicle_leaves",
    "unplug",
    "load_change",
    "pv",
    "device_silent",
    "device_garbage",
    "device_exception",
    "device_fault",
    "device_recovers",
    "station_fault",
    "station_recovers",
    "breaker_fail_to_operate",
    "cap_alert",
    "command",
)


class Scenario(_Model):
    scenario: ScenarioSection
    initial: InitialSection = InitialSection()
    pv: PvSection | None = None
    events: list[Event] = []
    criteria: Criteria = Criteria()


# --------------------------------------------------------------------------- errors
ScenarioProblem = ConfigProblem
"""One problem of a scenario file: the site file's `file: key: reason` record."""


class ScenarioError(Exception):
    """A scenario that cannot run; carries every problem found."""

    def __init__(self, problems: list[ScenarioProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with what it refers to: the site and any CAP alerts."""

    path: Path
    scenario: Scenario
    site_path: Path
    site: SiteConfig
    alerts: dict[int, CapAlert]  # event index -> parsed alert

    @property
    def start_wall(self) -> float:
        return self.scenario.scenario.start.timestamp()

    @property
    def duration_s(self) -> float:
        return self.scenario.scenario.duration


def _event_name(raw: Any, index: int) -> str:
    if isinstance(raw, dict):
        kind = raw.get("kind", "?")
        at = raw.get("at")
        return (
            f"events[{index}] ({kind} at {at})" if at is not None else f"events[{index}] ({kind})"
        )
    return f"events[{index}]"


def _key(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    if len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int):
        events = raw.get("events")
        item = events[loc[1]] if isinstance(events, list) and loc[1] < len(events) else None
        rest = [str(p) for p in loc[2:] if p not in EVENT_KINDS]
        name = _event_name(item, loc[1])
        return f"{name}.{'.'.join(rest)}" if rest else name
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).startswith("function-"):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _reason(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "union_tag_invalid":
        return f"unknown event kind (expected one of: {', '.join(EVENT_KINDS)})"
    if err["type"] == "union_tag_not_found":
        return "event has no kind"
    message = str(err["msg"])
    return message.removeprefix("Value error, ")


@dataclass(eq=False)
class _Parked:
    """A car at a connector, in the occupancy check: how it came, and when it goes."""

    vehicle: str
    came: str  # how it got there, for messages
    from_site: bool = False  # the site file's car, parked from the start
    leaves_s: float | None = None  # unplugged at this drill time (a released donor)
    released_by: str = ""


_Step = tuple[float, int, int, _Parked | None]
"""One step of the occupancy check: drill time, order, event index, and the released car
whose owner unplugs it (None: the event itself)."""


def _occupancy(
    scenario: Scenario, site: SiteConfig, name: Callable[[int], str]
) -> list[tuple[str, str]]:
    """Cars arrive only at free connectors, and a car is at one connector at a time.

    Plays the timeline's arrivals and departures as `firmware_sim.drill` applies them:
    in time order (file order at one time), a registered donor that leaves
    (vehicle_leaves) is unplugged `RELEASE_WALK_S` later, after any event at that
    time, and anything else that leaves is unplugged at once. The plant refuses to
    plug a car into an occupied connector, or a car that is still at another one,
    so such an event would only fail mid-drill.
    """
    problems: list[tuple[str, str]] = []
    connectors = set(site.chargers) | set(site.outlets)
    absent = set(scenario.initial.absent)
    parked: dict[str, _Parked] = {}
    for vehicle in site.vehicles:
        connector = vehicle.charger or vehicle.outlet or ""
        if vehicle.id not in absent:
            parked[connector] = _Parked(
                vehicle.id, "the site file's car, parked from the start", from_site=True
            )
    registered: dict[str, str] = {}  # connector -> donor registered there (as the drill keeps)
    timeline: list[_Step] = [
        (event.at, i, i, None)
        for i, event in enumerate(scenario.events)
        if event.at <= scenario.scenario.duration
        and isinstance(event, VehicleArrives | VehicleLeaves | Unplug)
        and event.connector in connectors
    ]
    heapq.heapify(timeline)
    order = len(scenario.events)
    while timeline:
        at, _, i, walking = heapq.heappop(timeline)
        event = scenario.events[i]
        assert isinstance(event, VehicleArrives | VehicleLeaves | Unplug)
        connector = event.connector
        here = parked.get(connector)
        if walking is not None:  # the released donor's owner unplugs it now
            if here is walking:
                del parked[connector]
            continue
        if isinstance(event, VehicleArrives):
            elsewhere = next(
                (c for c, car in parked.items() if car.vehicle == event.vehicle and c != connector),
                None,
            )
            if here is not None:
                fix = "free it first with a vehicle_leaves or unplug event"
                if here.leaves_s is not None:
                    fix = f"arrive after {format_span(here.leaves_s)}"
                elif here.from_site:
                    fix += f", or list {here.vehicle!r} in initial.absent"
                problems.append(
                    (
                        f"{name(i)}.connector",
                        f"{connector} is not free at {format_span(at)}: it holds"
                        f" {here.vehicle!r} ({_story(here)}); {fix}",
                    )
                )
            elif elsewhere is not None:
                car = parked[elsewhere]
                problems.append(
                    (
                        f"{name(i)}.vehicle",
                        f"{event.vehicle!r} is still at {elsewhere} at {format_span(at)}"
                        f" ({_story(car)}); one car cannot be at two connectors",
                    )
                )
            else:
                parked[connector] = _Parked(event.vehicle, f"plugged in by {name(i)}")
                if registers_vehicle(event, site):
                    registered[connector] = event.vehicle
            continue
        if here is None:
            continue  # the drill notes "nothing to unplug"
        if isinstance(event, VehicleLeaves) and connector in registered:
            del registered[connector]
            here.leaves_s = at + RELEASE_WALK_S
            here.released_by = name(i)
            order += 1
            heapq.heappush(timeline, (here.leaves_s, order, i, here))
        else:
            del parked[connector]
    return problems


def _story(car: _Parked) -> str:
    if car.leaves_s is None:
        return car.came
    return (
        f"{car.came}; released by {car.released_by}, its owner unplugs it"
        f" {RELEASE_WALK_S:g} s later, at {format_span(car.leaves_s)}"
    )


def _cross_check(
    scenario: Scenario, site: SiteConfig, raw: dict[str, Any]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    raw_events = raw.get("events", [])
    duration = scenario.scenario.duration
    vehicles = {v.id for v in site.vehicles}
    connectors = set(site.chargers) | set(site.outlets)
    loads = {load.id for load in site.loads}

    def name(i: int) -> str:
        return _event_name(raw_events[i] if i < len(raw_events) else None, i)

    for vid in scenario.initial.soc_pct:
        if vid not in vehicles:
            problems.append((f"initial.soc_pct.{vid}", f"unknown vehicle {vid!r} in the site"))
    for vid in scenario.initial.max_discharge_w:
        if vid not in vehicles:
            problems.append(
                (f"initial.max_discharge_w.{vid}", f"unknown vehicle {vid!r} in the site")
            )
    for vid in scenario.initial.reserve_soc_pct:
        if vid not in vehicles:
            problems.append(
                (f"initial.reserve_soc_pct.{vid}", f"unknown vehicle {vid!r} in the site")
            )
    for vid in scenario.initial.absent:
        if vid not in vehicles:
            problems.append(("initial.absent", f"unknown vehicle {vid!r} in the site"))
    for vid, count in Counter(scenario.initial.absent).items():
        if count > 1:
            problems.append(("initial.absent", f"vehicle {vid!r} is named {count} times"))
    for i, event in enumerate(scenario.events):
        if event.at > duration:
            problems.append(
                (
                    f"{name(i)}.at",
                    f"{format_span(event.at)} is after the end of the drill"
                    f" ({format_span(duration)})",
                )
            )
        if isinstance(event, GridFrequency | GridVoltage) and event.at + event.ramp > duration:
            problems.append(
                (
                    f"{name(i)}.ramp",
                    f"the ramp ends at {format_span(event.at + event.ramp)}, after the end of"
                    f" the drill ({format_span(duration)})",
                )
            )
        nominal_hz = site.grid.nominal_frequency_hz
        if (
            isinstance(event, GridFrequency)
            and abs(event.hz - nominal_hz) > GRID_EVENT_MAX_OFFSET_HZ
        ):
            problems.append(
                (
                    f"{name(i)}.hz",
                    f"{event.hz:g} Hz is more than {GRID_EVENT_MAX_OFFSET_HZ:g} Hz from the"
                    f" site's nominal {nominal_hz:g} Hz",
                )
            )
        device = getattr(event, "device", None)
        if device is not None and device not in site.devices:
            problems.append((f"{name(i)}.device", f"unknown device {device!r} in the site"))
        if isinstance(event, StationFault | StationRecovers):
            problems.extend(_check_station_event(event, name(i), site))
        connector = getattr(event, "connector", None)
        if connector is not None and connector not in connectors:
            known = ", ".join(sorted(connectors))
            problems.append(
                (f"{name(i)}.connector", f"{connector!r} is not a charger or V2L outlet ({known})")
            )
        if isinstance(event, GridBlips):
            problems.extend(_check_blips(event, name(i), duration))
        if isinstance(event, VehicleArrives):
            problems.extend(_check_donor(event, name(i), site))
            if event.vehicle not in vehicles and event.capacity_wh is None:
                problems.append(
                    (
                        f"{name(i)}.capacity_wh",
                        f"vehicle {event.vehicle!r} is not in the site file: give its capacity_wh",
                    )
                )
        if isinstance(event, LoadChange):
            if event.load is None and event.tier is None:
                problems.append((f"{name(i)}", "load_change needs load or tier"))
            if event.load is not None and event.load not in loads:
                problems.append((f"{name(i)}.load", f"unknown load {event.load!r} in the site"))
        if isinstance(event, Command):
            load_id = event.args.get("load_id")
            if load_id is not None and str(load_id) not in loads:
                problems.append((f"{name(i)}.args.load_id", f"unknown load {load_id!r}"))
    problems.extend(_occupancy(scenario, site, name))
    cb = scenario.criteria.charged_by
    if cb is not None:
        for vid in cb.vehicles:
            if vid not in vehicles:
                problems.append(("criteria.charged_by.vehicles", f"unknown vehicle {vid!r}"))
        if cb.at > duration:
            problems.append(("criteria.charged_by.at", "after the end of the drill"))
    if scenario.criteria.islanded_by is not None and scenario.criteria.islanded_by > duration:
        problems.append(("criteria.islanded_by", "after the end of the drill"))
    problems.extend(_check_criteria(scenario.criteria, site, duration))
    pv = scenario.pv
    if pv is not None and pv.sunset_h <= pv.sunrise_h:
        problems.append(("pv.sunset_h", f"{pv.sunset_h} h is not after sunrise_h {pv.sunrise_h} h"))
    return problems


def _check_station_event(
    event: StationFault | StationRecovers, name: str, site: SiteConfig
) -> list[tuple[str, str]]:
    """A station event names an OCPP station; a slow one is slower than the site's
    `[ocpp] call_timeout_s` (else it is no fault), and only a slow one has a delay."""
    problems: list[tuple[str, str]] = []
    device = site.devices.get(event.device)
    if device is not None and device.driver != "ocpp":
        problems.append(
            (
                f"{name}.device",
                f"{event.device!r} is a {device.driver}, not an OCPP station (driver"
                ' "ocpp"); Modbus devices take device_silent, device_fault, ...',
            )
        )
    if isinstance(event, StationRecovers):
        return problems
    timeout = site.ocpp.call_timeout_s
    if event.fault == "slow":
        if event.delay_s is None:
            problems.append((f"{name}.delay_s", "a slow station needs delay_s [s]"))
        elif event.delay_s <= timeout:
            problems.append(
                (
                    f"{name}.delay_s",
                    f"{event.delay_s:g} s is not slower than [ocpp] call_timeout_s"
                    f" ({timeout:g} s)",
                )
            )
    elif event.delay_s is not None:
        why = f"only a slow station takes delay_s, not {event.fault}"
        problems.append((f"{name}.delay_s", why))
    return problems


def _check_blips(event: GridBlips, name: str, duration: float) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if event.down >= event.period:
        problems.append(
            (
                f"{name}.down",
                f"{format_span(event.down)} is not shorter than the period"
                f" ({format_span(event.period)}): the grid would never come back",
            )
        )
    if (event.count is None) == (event.until is None):
        problems.append((name, "grid_blips needs exactly one of count or until"))
        return problems
    if event.until is not None:
        if event.until <= event.at:
            problems.append((f"{name}.until", f"{format_span(event.until)} is not after at"))
        elif event.until > duration:
            problems.append(
                (
                    f"{name}.until",
                    f"{format_span(event.until)} is after the end of the drill"
                    f" ({format_span(duration)})",
                )
            )
        elif (event.until - event.at) / event.period > 10000:
            problems.append((f"{name}.until", "more than 10000 blips"))
    starts = event.starts()
    if starts and starts[-1] > duration:
        problems.append(
            (
                f"{name}.count",
                f"the last blip starts at {format_span(starts[-1])}, after the end of the"
                f" drill ({format_span(duration)})",
            )
        )
    return problems


DONOR_CAPACITY_WH = (1000.0, 300_000.0)
"""[Wh] the capacities the controller accepts when a donor is registered."""
DONOR_ID_MAX = 64
"""The longest vehicle id the controller accepts when a donor is registered."""


def _check_donor(event: VehicleArrives, name: str, site: SiteConfig) -> list[tuple[str, str]]:
    """What `register_vehicle` would refuse mid-drill is refused here, before the drill."""
    if not registers_vehicle(event, site):
        return []
    problems: list[tuple[str, str]] = []
    if len(event.vehicle.strip()) != len(event.vehicle) or len(event.vehicle) > DONOR_ID_MAX:
        problems.append(
            (
                f"{name}.vehicle",
                f"{event.vehicle!r}: a registered car's id is 1 to {DONOR_ID_MAX} characters"
                " without leading or trailing spaces",
            )
        )
    low, high = DONOR_CAPACITY_WH
    if event.capacity_wh is not None and not low <= event.capacity_wh <= high:
        problems.append(
            (
                f"{name}.capacity_wh",
                f"{event.capacity_wh:g} Wh is outside {low:g}..{high:g} Wh, what the controller"
                " accepts for a registered car",
            )
        )
    return problems


def _check_window(
    window: tuple[float, float] | None, key: str, duration: float
) -> list[tuple[str, str]]:
    if window is None:
        return []
    start, until = window
    if until <= start:
        return [(key, f"{format_span(until)} is not after {format_span(start)}")]
    if until > duration:
        return [
            (
                key,
                f"{format_span(until)} is after the end of the drill ({format_span(duration)})",
            )
        ]
    return []


def _check_criteria(crit: Criteria, site: SiteConfig, duration: float) -> list[tuple[str, str]]:
    """Criteria that could not be measured, or could never fail, are bad input."""
    problems: list[tuple[str, str]] = []
    loads = {load.id: load for load in site.loads}
    circuits = ["bus", *site.outlets]
    if crit.no_pcc_close_before is not None and crit.no_pcc_close_before > duration:
        problems.append(("criteria.no_pcc_close_before", "after the end of the drill"))
    for i, e in enumerate(crit.endurance):
        key = f"criteria.endurance[{i}]"
        if e.circuit is not None and e.circuit not in circuits:
            problems.append(
                (
                    f"{key}.circuit",
                    f"{e.circuit!r} is not a circuit of the site ({', '.join(circuits)})",
                )
            )
            continue
        on = [ld for ld in site.loads if ld.tier.label == e.tier]
        if e.circuit is not None:
            on = [ld for ld in on if ld.supply == e.circuit]
        if not on:
            where = f"on {e.circuit}" if e.circuit is not None else "in the site"
            problems.append((f"{key}.tier", f"no {e.tier} load {where}: nothing to measure"))
        problems.extend(_check_window(e.between, f"{key}.between", duration))
        span = duration if e.between is None else e.between[1] - e.between[0]
        if e.at_least > span + 1e-9:
            problems.append(
                (
                    f"{key}.at_least",
                    f"{format_span(e.at_least)} is longer than the time it is counted in"
                    f" ({format_span(span)}): it can never pass",
                )
            )
    for i, r in enumerate(crit.relay):
        key = f"criteria.relay[{i}]"
        if r.load is not None and r.tier is not None:
            problems.append((key, "give load or tier, not both"))
        if r.load is not None and r.load not in loads:
            problems.append((f"{key}.load", f"unknown load {r.load!r} in the site"))
        if r.tier is not None and not any(ld.tier.label == r.tier for ld in site.loads):
            problems.append((f"{key}.tier", f"no {r.tier} load in the site"))
        if r.opens is None and r.closes is None and r.max_operations is None:
            problems.append((key, "nothing to check: give opens, closes or max_operations"))
        problems.extend(_check_window(r.between, f"{key}.between", duration))
    return problems


def with_reserves(site: SiteConfig, reserves: dict[str, float]) -> SiteConfig:
    """The site with the scenario's reserves for its vehicles (unknown ids are ignored)."""
    if not reserves:
        return site
    vehicles = [
        v.model_copy(update={"reserve_soc_pct": reserves[v.id]}) if v.id in reserves else v
        for v in site.vehicles
    ]
    return site.model_copy(update={"vehicles": vehicles})


def parse_scenario(data: dict[str, Any], path: Path) -> LoadedScenario:
    """Validate a parsed scenario document (site and CAP files are read relative to it)."""
    file = str(path)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            [ScenarioProblem(file, _key(tuple(e["loc"]), data), _reason(e)) for e in exc.errors()]
        ) from None
    site_path = (path.parent / scenario.scenario.site).resolve()
    try:
        site = load_site(site_path)
    except ConfigError as exc:
        raise ScenarioError(
            [ScenarioProblem(file, "scenario.site", str(p)) for p in exc.problems]
        ) from None
    site = with_reserves(site, scenario.initial.reserve_soc_pct)
    problems = [ScenarioProblem(file, k, r) for k, r in _cross_check(scenario, site, data)]
    alerts: dict[int, CapAlert] = {}
    raw_events = data.get("events", [])
    for i, event in enumerate(scenario.events):
        if isinstance(event, CapAlertEvent):
            try:
                alerts[i] = load_cap(path.parent / event.file)
            except CapError as exc:
                problems.append(
                    ScenarioProblem(file, f"{_event_name(raw_events[i], i)}.file", str(exc))
                )
    if problems:
        raise ScenarioError(problems)
    return LoadedScenario(path, scenario, site_path, site, alerts)


def load_scenario(path: str | Path) -> LoadedScenario:
    """Read and validate a scenario file; raises ScenarioError naming file, event/key, reason."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is skipped
    except OSError as exc:
        raise ScenarioError([ScenarioProblem(file, "(file)", exc.strerror or str(exc))]) from None
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start}: {exc.reason})"
        raise ScenarioError([ScenarioProblem(file, "(file)", reason)]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([ScenarioProblem(file, "(syntax)", str(exc))]) from None
    return parse_scenario(data, path)
