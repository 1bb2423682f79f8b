"""The physical site that firmware_sim pretends to be, and the referee that judges the controller.

Owns the grid, the PCC breaker, the site bus, the loads and their relays, the
vehicles at bidirectional chargers and V2L outlets, the PV inverter, and the
record of what went wrong (`violations`) and what happened (`log`).

Pure and steppable: no I/O and no clock. Time moves only through
`Plant.step(dt_s)`, which integrates piecewise-constant power flows and stops
at every discrete event inside the step (breaker contacts touching, a former's
soft start ending, a state of charge crossing a threshold, an overload running
out of time, a scheduled injection), so results do not depend on the step
size: one `step(3600)` gives the same answer as 360 000 steps of 10 ms.

Why a referee lives here: the controller can lie to itself, the plant cannot.
A back-feed, an out-of-sync close or a vehicle drained below its owner's
reserve is judged from the physics, not from what the controller believed.

Collapses of an island (`collapses`, `outages`). An island is the site bus
energised by its own grid-formers, not by the grid (`bus_source == "island"`,
normally behind an open PCC). It collapses when the bus goes dead while loads
are on it (a relay closed on a load that draws); the episode lasts until the
bus is live again and counts once, however many things happen while it is
dark. Every collapse is counted in `collapses` and described by an `Outage`
(when, what dropped, why, and whose doing it was, `by`):

- ``by="controller"``, also an ``island_collapse`` violation: a former
  overloaded (beyond `overload_pu`, or past its rating for `overload_max_s`)
  or at its MIN_SOC floor with loads to carry (cause ``overload``, ``floor``);
  the controller stopping the island's last former (mode OFF or FOLLOW) with
  loads on (``stopped``), unless the PCC then closes onto the live grid within
  `break_before_make_s` (a planned break-before-make reconnection: logged, not
  counted), or another former forms the island within that allowance (a planned
  handover, at a former's reserve or before its car leaves: in `handovers`, not
  counted);
  the PCC closing onto a dead grid, which stops an interlocked former
  (``pcc_closed``).
- ``by="world"``, counted and reported, not a violation: the forming vehicle
  unplugged (``unplugged``), an injected hardware fault of the former
  (``fault``), or the world cutting across one of the controller's own
  operations above (``interrupted``): a grid event, a breaker failure or trip,
  a device fault or its recovery, a comms fault, a vehicle plugged or
  unplugged, from two control cycles (the age of the readings it acted on)
  before that operation until it ends (for a stop, its `break_before_make_s`
  allowance), e.g. the grid failing again while the bus is dark for a
  break-before-make reconnection. (Load and PV changes are the world too, but
  they cannot excuse a collapse: keeping the island within its sources is the
  controller's job.)

Dark buses that are not collapses: the bus going dead from the grid (the grid
fails, or the PCC opens, before any island is formed: the dark interval before
the first black start, or of a planned island), a break-before-make
reconnection that closes in time, and an island shut down with every load off.
The V2L circuits are not the bus: an outlet reaching its vehicle's cut-off is
not a collapse.

The island's frequency: the grid-formers' frequency setpoint (nominal when 0) while they
are isochronous (`droop_hz` 0, the default); a drooping former runs the island at setpoint
- droop_hz x P / rating, several sharing in proportion to rating / droop
(`droop_shares`, exact). Followers (the Modbus ones and the OCPP stations' model) read it
from the plant; a follower never energises a dead bus, whatever it is told.

Units: W, Wh, V, Hz, degrees, %, seconds of plant time. The site bus voltage is
line-to-line (nominal from the site file); V2L circuits are 230 V single-phase.
Sign conventions: a source's power is + when it supplies its bus (a vehicle
discharging), - when it draws from it; the grid meter is + on import.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

from resilience.config import Device, Load, SiteConfig
from resilience.drivers.registers import BidirectionalCharger as ChargerMap
from resilience.drivers.registers import SunSpecInverter as InverterMap
from resilience.model import (
    BreakerCommand,
    BreakerPosition,
    ChargerMode,
    ChargerState,
    Tier,
    V2LState,
)

ViolationKind = Literal[
    "back_feed",
    "close_without_sync",
    "below_reserve",
    "over_rating",
    "wrong_shed_order",
    "island_collapse",
]
OutageBy = Literal["controller", "world"]
OutageCause = Literal[
    "overload", "floor", "stopped", "pcc_closed", "unplugged", "fault", "interrupted"
]
CommFaultKind = Literal["silence", "exception", "garbage", "corrupt", "truncate", "refuse_writes"]
"""silence: no answer; exception: a Modbus exception code; garbage: physically impossible
values in a sound frame; corrupt: a frame with a bad CRC (RTU) or checksum (line protocol),
a short frame on TCP; truncate: a frame cut short (a short frame on TCP); refuse_writes:
reads answered as usual, every write answered with a Modbus exception code (a board left
in local control, a write-protected unit)."""

V2L_VOLTAGE_V = 230.0  # [V] a vehicle's V2L socket is single-phase
DELIVERING_W = 50.0  # [W] above this a vehicle counts as delivering power (below_reserve)
RESERVE_TOLERANCE_PCT = 0.1  # [%] SoC slack before below_reserve is called
OVER_RATING_TOLERANCE = 0.02  # [-] fraction above rating before over_rating is called
HANDOVER_SOC_TOLERANCE_PCT = 1.0  # [%] a former stopped this close to its floor hands over
DEFAULT_CUTOFF_SOC_PCT = 10.0  # [%] a vehicle's own V2L cut-off
MODBUS_EXCEPTION_CODES = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 10, 11})

RAMP_HZ_STEP = 0.01  # [Hz] a frequency ramp moves in steps no larger than this
RAMP_PU_STEP = 0.001  # [pu] and a voltage ramp in steps no larger than this of nominal
MAX_RAMP_STEPS = 20_000  # a steep long ramp takes coarser steps rather than more

_SOC_EPS = 1e-7  # [%] a SoC this close to a limit is at the limit
_T_EPS = 1e-9  # [s] events this close together happen together
_P_EPS = 1e-6  # [W]


@dataclass(frozen=True)
class Violation:
    """One episode of unsafe or wrong operation, recorded when it starts."""

    time_s: float
    kind: ViolationKind
    detail: str


@dataclass(frozen=True)
class Outage:
    """One collapse of an island: its bus went dead with loads on (see the module doc).

    `by` says whose doing it was: "controller" (also recorded as an island_collapse
    violation) or "world" (an unplug, an injected fault: counted, not a violation).
    """

    time_s: float  # when the bus went dead
    by: OutageBy
    cause: OutageCause
    detail: str
    loads: tuple[str, ...]  # bus loads on (relay closed, drawing) when it went dead
    loads_w: float  # their demand [W]
    ended_s: float | None = None  # when the bus was live again; None while it is still dead


@dataclass(frozen=True)
class LogEntry:
    """A notable event: breaker operation, bus change, collapse, injection."""

    time_s: float
    kind: str
    detail: str


@dataclass(frozen=True)
class CommFault:
    """How a device misbehaves on the wire; the servers act it out, the plant only remembers it."""

    kind: CommFaultKind
    code: int = 0  # Modbus exception code, for kind "exception"
    # for kind "garbage": these (offset in the device's map, raw value) instead of the
    # device's own choice of impossible values
    registers: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class PlantTiming:
    """Time constants of the simulated hardware [s] (and the overload limit [pu])."""

    breaker_operate_s: float | None = None  # None: the site file's sync.breaker_close_time_s
    form_soft_start_s: float = 0.1  # FORM command (or plug-in) to live bus
    follower_reconnect_s: float = 0.2  # voltage reference back to a follower injecting again
    overload_pu: float = 1.1  # a former may carry this much over MAX_DISCHARGE ...
    overload_max_s: float = 2.0  # ... for this long
    shed_order_settle_s: float = 1.0  # relays of a circuit must be still this long to be judged
    # From the controller stopping its island's last former with loads on to the PCC closing
    # onto the grid, for a planned break-before-make reconnection; None: two control cycles
    # (to see the dead bus and command the close) plus the site file's
    # grid.breaker_operate_timeout_s (for the contacts to close).
    break_before_make_s: float | None = None


@dataclass(frozen=True)
class PlantInit:
    """Initial conditions; everything not named here comes from the site file."""

    soc_pct: Mapping[str, float] = field(default_factory=dict)  # vehicle id -> SoC [%]
    default_soc_pct: float = 80.0
    pv_available_fraction: float = 0.6  # of the inverter rating
    grid_present: bool = True
    breaker_closed: bool = True
    relays_on: bool = True
    load_factor: float = 1.0  # of rated_power_w, for every load
    timing: PlantTiming = field(default_factory=PlantTiming)


# --------------------------------------------------------------------------- components
@dataclass
class GridSupply:
    """The utility side of the PCC."""

    present: bool
    nominal_voltage_v: float
    level_v: float  # utility voltage before any sag [V]
    frequency_hz: float
    phase_deg: float = 0.0
    sag_pu: float = 1.0

    @property
    def voltage_v(self) -> float:
        return self.level_v * self.sag_pu if self.present else 0.0

    @property
    def measured_frequency_hz(self) -> float:
        return self.frequency_hz if self.present else 0.0


@dataclass
class Breaker:
    """The PCC breaker; contacts move only when an operation completes."""

    device_id: str
    position: BreakerPosition
    contacts_closed: bool
    operations: int = 0
    fail_to_operate: bool = False
    failed_last_command: bool = False
    last_command: BreakerCommand = BreakerCommand.NONE
    travel_target: BreakerPosition | None = None
    travel_started_s: float = -math.inf  # when the present (or last) operation was commanded


@dataclass
class Panel:
    device_id: str
    channels: int
    relays: list[bool]
    operations: int = 0


@dataclass
class LoadSim:
    spec: Load
    factor: float
    operations: int = 0
    power_w: float = 0.0
    supply_live: bool = False
    excused: bool = False


class WiredLoad(NamedTuple):
    """A load with the panel and channel of its relay, resolved once: the wiring never changes,
    and the per-step loops should not look it up by id again."""

    load: LoadSim
    panel: Panel
    channel: int
    tier: int  # Tier value: lower is higher priority


@dataclass
class VehicleSim:
    """A vehicle battery; SoC moves only through the power its connector delivers."""

    vehicle_id: str
    capacity_wh: float
    soc_pct: float
    reserve_soc_pct: float
    max_discharge_w: float | None = None
    cutoff_soc_pct: float = DEFAULT_CUTOFF_SOC_PCT
    min_soc_seen_pct: float = field(init=False)

    def __post_init__(self) -> None:
        self.min_soc_seen_pct = self.soc_pct


@dataclass
class ChargerSim:
    """A bidirectional DC charger and the vehicle on it."""

    device_id: str
    rating_w: float
    can_form: bool
    # Grid-parallel input wired to the PCC breaker's auxiliary contact: while the contacts
    # are closed (`pcc_closed`, set by the plant) the unit never forms; FORM runs as FOLLOW.
    pcc_interlock: bool = False
    pcc_closed: bool = False
    # P-f droop while it forms [Hz at full rating]: the bus runs at setpoint - droop x P /
    # rating (`droop_shares`); 0: isochronous, the bus at its setpoint.
    droop_hz: float = 0.0
    vehicle: VehicleSim | None = None
    mode_command: ChargerMode = ChargerMode.OFF
    power_setpoint_w: int = 0
    frequency_setpoint_hz: float = 0.0  # 0: nominal
    voltage_setpoint_v: float = 0.0  # 0: nominal
    min_soc_pct: float = 0.0
    fault_code: int = ChargerMap.FAULT_NONE
    internal_fault: bool = False  # injected; survives a mode write, cleared by clear_fault
    form_started_s: float | None = None
    forming_live: bool = False
    power_w: float = 0.0

    @property
    def max_discharge_w(self) -> float:
        if self.vehicle is None:
            return 0.0
        limit = self.vehicle.max_discharge_w
        return self.rating_w if limit is None else min(self.rating_w, limit)

    @property
    def max_charge_w(self) -> float:
        return 0.0 if self.vehicle is None else self.rating_w

    @property
    def soc_floor_pct(self) -> float:
        return max(self.min_soc_pct, 0.0)

    @property
    def discharge_cap_w(self) -> float:
        """What it can deliver right now: nothing at or below MIN_SOC."""
        v = self.vehicle
        if v is None or v.soc_pct <= self.soc_floor_pct + _SOC_EPS:
            return 0.0
        return self.max_discharge_w

    @property
    def charge_cap_w(self) -> float:
        v = self.vehicle
        if v is None or v.soc_pct >= 100.0 - _SOC_EPS:
            return 0.0
        return self.max_charge_w

    @property
    def form_eligible(self) -> bool:
        return (
            self.vehicle is not None
            and self.can_form
            and self.mode_command == ChargerMode.FORM
            and self.fault_code == ChargerMap.FAULT_NONE
            and not self.interlocked
        )

    @property
    def interlocked(self) -> bool:
        """Held off forming by the PCC interlock (the PCC is closed)."""
        return self.pcc_interlock and self.pcc_closed

    @property
    def follows(self) -> bool:
        """Runs as a grid follower: commanded FOLLOW, or FORM held by the interlock."""
        return self.mode_command == ChargerMode.FOLLOW or (
            self.mode_command == ChargerMode.FORM and self.can_form and self.interlocked
        )

    def clamped_setpoint_w(self) -> float:
        return max(-self.charge_cap_w, min(float(self.power_setpoint_w), self.discharge_cap_w))

    @property
    def state(self) -> ChargerState:
        if self.vehicle is None:
            return ChargerState.UNPLUGGED
        if self.fault_code != ChargerMap.FAULT_NONE:
            return ChargerState.FAULT
        if self.form_started_s is not None:
            return ChargerState.FORMING
        if self.power_w > 0.5:
            return ChargerState.DISCHARGING
        if self.power_w < -0.5:
            return ChargerState.CHARGING
        return ChargerState.IDLE

    @property
    def mode_active(self) -> ChargerMode:
        if self.vehicle is None or self.fault_code != ChargerMap.FAULT_NONE:
            return ChargerMode.OFF
        if self.mode_command == ChargerMode.FORM and not self.can_form:
            return ChargerMode.OFF
        if self.mode_command == ChargerMode.FORM and self.interlocked:
            return ChargerMode.FOLLOW
        return self.mode_command


@dataclass
class OutletSim:
    """A V2L outlet adapter: a contactor between a vehicle's socket and one small circuit."""

    device_id: str
    rating_w: float
    vehicle: VehicleSim | None = None
    enabled: bool = False
    tripped: bool = False
    live: bool = False
    power_w: float = 0.0

    @property
    def voltage_v(self) -> float:
        return V2L_VOLTAGE_V if self.live else 0.0

    @property
    def state(self) -> V2LState:
        if self.vehicle is None:
            return V2LState.UNPLUGGED
        if self.tripped:
            return V2LState.TRIPPED
        if self.live:
            return V2LState.SUPPLYING
        return V2LState.OFF


@dataclass
class InverterSim:
    """A PV inverter (SunSpec 103/120/123)."""

    device_id: str
    rating_w: float
    available_w: float
    connected: bool = True  # Conn
    limit_pct: float = 100.0  # WMaxLimPct
    limit_enabled: bool = False  # WMaxLim_Ena
    faulted: bool = False
    power_w: float = 0.0
    operating_state: int = InverterMap.ST_SLEEPING
    energy_wh: float = 0.0

    def potential_w(self, bus_live: bool) -> float:
        if not bus_live or not self.connected or self.faulted:
            return 0.0
        ceiling = self.rating_w
        if self.limit_enabled:
            ceiling = min(ceiling, self.rating_w * self.limit_pct / 100.0)
        return max(0.0, min(self.available_w, ceiling))


@dataclass
class _Stopped:
    """The controller stopped its island with loads on: a collapse unless the PCC closes onto
    the grid in time (a break-before-make reconnection)."""

    time_s: float
    detail: str
    loads: tuple[str, ...]
    loads_w: float
    until_s: float
    formers: tuple[str, ...] = ()  # the formers it stopped
    at_floor: bool = False  # every one of them was at its MIN_SOC floor


@dataclass(frozen=True)
class Handover:
    """The controller moved the island to another grid-former: stopped its last former(s)
    and another formed the bus within the break-before-make allowance (planned, the dark
    interval is the price of one voltage source at a time; not a collapse)."""

    time_s: float
    from_formers: tuple[str, ...]
    to_formers: tuple[str, ...]
    dark_s: float


@dataclass(order=True)
class _Scheduled:
    time_s: float
    seq: int
    label: str = field(compare=False)
    action: Callable[[], None] = field(compare=False)


BusSource = Literal["grid", "island", "dead"]


# --------------------------------------------------------------------------- the plant
class Plant:
    """The whole site as physics: build from a SiteConfig, inject, step, then read the referee."""

    def __init__(self, config: SiteConfig, init: PlantInit | None = None) -> None:
        init = init or PlantInit()
        self.config = config
        self.timing = init.timing
        self.breaker_operate_s = (
            init.timing.breaker_operate_s
            if init.timing.breaker_operate_s is not None
            else config.sync.breaker_close_time_s
        )
        self.nominal_voltage_v = config.grid.nominal_voltage_v
        self.nominal_frequency_hz = config.grid.nominal_frequency_hz
        self.time_s = 0.0

        self.grid = GridSupply(
            present=init.grid_present,
            nominal_voltage_v=self.nominal_voltage_v,
            level_v=self.nominal_voltage_v,
            frequency_hz=self.nominal_frequency_hz,
        )
        closed = init.breaker_closed
        self.breaker = Breaker(
            device_id=config.grid.pcc_breaker,
            position=BreakerPosition.CLOSED if closed else BreakerPosition.OPEN,
            contacts_closed=closed,
        )
        self.panels: dict[str, Panel] = {
            pid: Panel(pid, dev.channels, [False] * dev.channels)
            for pid, dev in config.panels.items()
        }
        self.loads: dict[str, LoadSim] = {}
        for spec in config.loads:
            self.loads[spec.id] = LoadSim(spec=spec, factor=init.load_factor)
            self.panels[spec.panel].relays[spec.channel] = init.relays_on
        self.chargers: dict[str, ChargerSim] = {
            cid: ChargerSim(
                cid,
                _rating(dev),
                dev.can_form,
                pcc_interlock=dev.pcc_interlock,
                droop_hz=dev.droop_hz,
            )
            for cid, dev in config.chargers.items()
        }
        self.outlets: dict[str, OutletSim] = {
            oid: OutletSim(oid, _rating(dev)) for oid, dev in config.outlets.items()
        }
        self.inverters: dict[str, InverterSim] = {
            iid: InverterSim(iid, _rating(dev), _rating(dev) * init.pv_available_fraction)
            for iid, dev in config.pv_inverters.items()
        }
        self.vehicles: dict[str, VehicleSim] = {}
        for vcfg in config.vehicles:
            vehicle = VehicleSim(
                vehicle_id=vcfg.id,
                capacity_wh=vcfg.capacity_wh,
                soc_pct=_check_soc(init.soc_pct.get(vcfg.id, init.default_soc_pct)),
                reserve_soc_pct=vcfg.reserve_soc_pct,
                max_discharge_w=vcfg.max_discharge_w,
            )
            self.vehicles[vcfg.id] = vehicle
            if vcfg.charger is not None:
                self.chargers[vcfg.charger].vehicle = vehicle
            elif vcfg.outlet is not None:
                self.outlets[vcfg.outlet].vehicle = vehicle

        # The wiring, resolved once for the per-step loops, in site-file order (sums and
        # records keep that order): every load, the circuits ("bus", then each outlet's own),
        # and the loads each circuit feeds. A supply naming no circuit keeps its entry so
        # that it still fails loudly in circuit_live.
        self._wired: tuple[WiredLoad, ...] = tuple(
            WiredLoad(load, self.panels[load.spec.panel], load.spec.channel, int(load.spec.tier))
            for load in self.loads.values()
        )
        self._circuits: tuple[str, ...] = ("bus", *self.outlets)
        self._circuit_loads: dict[str, tuple[WiredLoad, ...]] = {
            supply: tuple(w for w in self._wired if w.load.spec.supply == supply)
            for supply in (*self._circuits, *(w.load.spec.supply for w in self._wired))
        }
        self._wired_keys: tuple[tuple[str, Tier], ...] = tuple(
            (w.load.spec.supply, w.load.spec.tier) for w in self._wired
        )
        # What `_advance` accounts each load by, unpacked once: it runs every plant step.
        self._accounted = tuple(
            (
                w.load,
                w.panel,
                w.channel,
                w.load.spec.tier,
                w.load.spec.rated_power_w,
                w.load.spec.id,
                key,
            )
            for w, key in zip(self._wired, self._wired_keys, strict=True)
        )

        # bus
        self.bus_source: BusSource = "dead"
        self.bus_voltage_v = 0.0
        self.bus_frequency_hz = 0.0
        self.bus_phase_deg = 0.0
        self.meter_power_w = 0.0
        self.import_wh = 0.0
        self.export_wh = 0.0

        # referee and statistics
        self.violations: list[Violation] = []
        self.log: list[LogEntry] = []
        self.served_energy_wh: dict[Tier, float] = {tier: 0.0 for tier in Tier}
        self.unserved_energy_wh: dict[Tier, float] = {tier: 0.0 for tier in Tier}
        self.unserved_load_wh: dict[str, float] = dict.fromkeys(self.loads, 0.0)  # per load id
        # When each tier was served on each circuit: (circuit, tier) -> [start, end] intervals
        # [s] in which every load of that tier on that circuit was energised (relay closed on
        # a live circuit). The drill's endurance criteria are judged on it.
        self.served_intervals: dict[tuple[str, Tier], list[list[float]]] = {
            key: [] for key in dict.fromkeys(self._wired_keys)
        }
        # Every relay change of every load: load id -> [(time [s], closed)], after its state
        # at time 0 (`relay_initial`).
        self.relay_initial: dict[str, bool] = {lid: self.load_on(lid) for lid in self.loads}
        self.relay_log: dict[str, list[tuple[float, bool]]] = {lid: [] for lid in self.loads}
        self.pcc_closes: list[float] = []  # [s] each time the PCC contacts closed
        self.collapses = 0  # every collapse of an island, whoever caused it (= len(outages))
        self.outages: list[Outage] = []
        self._open_outage: int | None = None  # index in outages while its bus is still dead
        self._stopped: _Stopped | None = None  # a controller stop waiting for its PCC close
        self.handovers: list[Handover] = []  # planned moves of the island to another former
        cycle_s = config.site.cycle_period_s
        self.break_before_make_s = (
            init.timing.break_before_make_s
            if init.timing.break_before_make_s is not None
            else 2 * cycle_s + config.grid.breaker_operate_timeout_s
        )
        # A controller's decision may rest on readings up to two control cycles old: the world
        # acting this long before one of its operations still cuts across it.
        self._decision_lag_s = 2 * cycle_s
        self._world_s = -math.inf  # the last thing the world did to the site, and when
        self._world_detail = ""
        self._episodes: set[str] = set()
        self._circuit_changed_s: dict[str, float] = {}
        self._reference_since_s: float | None = -math.inf
        self._overload_since_s: float | None = None
        self._schedule: list[_Scheduled] = []
        self._seq = 0
        self._sag_token = 0
        self._ramp_tokens: dict[str, int] = {}
        self._comm_faults: dict[str, CommFault] = {}
        self._settle()

    # ------------------------------------------------------------------ time
    def step(self, dt_s: float) -> None:
        """Advance plant time by dt_s [s], stopping at every discrete event inside it."""
        if not math.isfinite(dt_s) or dt_s < 0:
            raise ValueError(f"dt_s must be a finite number >= 0, not {dt_s!r}")
        end = self.time_s + dt_s
        for _ in range(1_000_000):
            target = min(self._next_event_s(), end)
            if target > self.time_s:
                self._advance(target - self.time_s)
                self.time_s = target
            self._run_due()
            self._settle()
            if self.time_s >= end and not self._due():
                return
        raise RuntimeError("plant did not reach the end of the step (event storm)")

    def schedule(
        self, delay_s: float, action: Callable[[], None], label: str = "scheduled"
    ) -> None:
        """Run `action` after delay_s [s] of plant time (injections, drills)."""
        if delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        self._seq += 1
        heapq.heappush(self._schedule, _Scheduled(self.time_s + delay_s, self._seq, label, action))

    # ------------------------------------------------------------------ grid injections
    def grid_loss(self) -> None:
        if self.grid.present:
            self.grid.present = False
            self._world_event("grid", "grid lost")
        self._settle()

    def grid_return(self) -> None:
        if not self.grid.present:
            self.grid.present = True
            self._world_event("grid", "grid returned")
        self._settle()

    def sag(self, pu: float, duration_s: float) -> None:
        """Utility voltage drops to pu of its level for duration_s, then recovers."""
        if not 0.0 <= pu <= 1.5 or duration_s <= 0:
            raise ValueError("sag needs 0 <= pu <= 1.5 and duration_s > 0")
        self._sag_token += 1
        token = self._sag_token
        self.grid.sag_pu = pu
        self._world_event("grid", f"voltage sag to {pu:.2f} pu for {duration_s:g} s")

        def recover() -> None:
            if self._sag_token == token:
                self.grid.sag_pu = 1.0
                self._world_event("grid", "voltage sag over")

        self.schedule(duration_s, recover, "sag end")
        self._settle()

    def flicker(self, period_s: float, count: int) -> None:
        """`count` times: grid lost for half a period, back for the other half."""
        if period_s <= 0 or count < 1:
            raise ValueError("flicker needs period_s > 0 and count >= 1")
        self._world_event("grid", f"flicker: {count} x {period_s:g} s")
        for i in range(count):
            self.schedule(i * period_s, self.grid_loss, "flicker loss")
            self.schedule(i * period_s + period_s / 2, self.grid_return, "flicker return")
        self._run_due()
        self._settle()

    def set_grid_frequency(self, hz: float) -> None:
        """A step of the utility's frequency (cancels a ramp of it in progress)."""
        self.ramp_grid_frequency(hz, 0.0)

    def set_grid_voltage(self, volts: float) -> None:
        """A step of the utility's voltage level (a sag still applies on top of it; cancels a
        ramp of it in progress)."""
        self.ramp_grid_voltage(volts, 0.0)

    def ramp_grid_frequency(self, hz: float, duration_s: float) -> None:
        """The utility's frequency moves linearly to hz over duration_s (0: a step), in steps
        of at most `RAMP_HZ_STEP` Hz, each a plant event (see `_ramp`)."""
        if not 40.0 <= hz <= 70.0:
            raise ValueError("grid frequency must be within 40..70 Hz")
        self._ramp("frequency", self.grid.frequency_hz, hz, duration_s, RAMP_HZ_STEP)

    def ramp_grid_voltage(self, volts: float, duration_s: float) -> None:
        """The utility's voltage level moves linearly to volts over duration_s (0: a step), in
        steps of at most `RAMP_PU_STEP` of nominal, each a plant event (see `_ramp`)."""
        if not 0.0 < volts <= 2.0 * self.nominal_voltage_v:
            raise ValueError("grid voltage must be within 0..2x nominal")
        step = RAMP_PU_STEP * self.nominal_voltage_v
        self._ramp("voltage", self.grid.level_v, volts, duration_s, step)

    def _ramp(
        self, quantity: str, start: float, end: float, duration_s: float, step: float
    ) -> None:
        """Move the grid's frequency or voltage level from start to end over duration_s.

        The plant stays piecewise constant (phase and energy integrate exactly): the ramp
        is a staircase of scheduled steps no larger than `step`, evenly spaced, the last
        landing on `end` at duration_s. A drill runner stops at each (they are plant
        events), so a controller sees every threshold within one step of its crossing. A
        new step or ramp of the same quantity cancels the rest of one in progress.
        """
        if not math.isfinite(duration_s) or duration_s < 0:
            raise ValueError("a ramp needs a duration >= 0")
        token = self._ramp_tokens.get(quantity, 0) + 1
        self._ramp_tokens[quantity] = token
        unit = "Hz" if quantity == "frequency" else "V"

        def apply(value: float) -> None:
            if quantity == "frequency":
                self.grid.frequency_hz = value
            else:
                self.grid.level_v = value

        if duration_s <= 0 or start == end:
            apply(end)
            self._world_event("grid", f"grid {quantity} {end:.3f} {unit}")
            self._settle()
            return
        n = min(MAX_RAMP_STEPS, max(1, math.ceil(abs(end - start) / step - 1e-9)))
        self._world_event(
            "grid", f"grid {quantity} ramp {start:.3f} -> {end:.3f} {unit} over {duration_s:g} s"
        )

        def stair(i: int) -> Callable[[], None]:
            def act() -> None:
                if self._ramp_tokens.get(quantity) != token:
                    return  # a later step or ramp took over
                apply(end if i == n else start + (end - start) * i / n)
                self._world_s = self.time_s  # the world acting, quietly (one log line a ramp)
                if i == n:
                    self._world_event("grid", f"grid {quantity} {end:.3f} {unit} (ramp done)")

            return act

        for i in range(1, n + 1):
            self.schedule(duration_s * i / n, stair(i), f"grid {quantity} ramp")
        self._settle()

    # ------------------------------------------------------------------ breaker
    def command_breaker(self, command: BreakerCommand) -> None:
        """What the breaker does with a write to its COMMAND register."""
        br = self.breaker
        br.last_command = command
        if command == BreakerCommand.NONE:
            return
        if br.fail_to_operate:
            br.failed_last_command = True
            self._world_event("breaker", f"failed to operate on {command.name}")
            return
        br.failed_last_command = False
        if br.travel_target is not None:
            self._log("breaker", f"{command.name} ignored while travelling")
            return
        target = BreakerPosition.CLOSED if command == BreakerCommand.CLOSE else BreakerPosition.OPEN
        if br.position == target:
            return
        br.position = BreakerPosition.TRAVELLING
        br.travel_target = target
        br.travel_started_s = self.time_s
        self._log("breaker", f"{command.name.lower()} command, travelling")
        if self.breaker_operate_s <= 0:
            self._complete_breaker()
        else:
            self.schedule(self.breaker_operate_s, self._complete_breaker, "breaker operates")
        self._settle()

    def fail_to_operate(self, failed: bool = True) -> None:
        self.breaker.fail_to_operate = failed
        self._world_event("injection", f"breaker fail_to_operate={failed}")

    def trip_breaker(self) -> None:
        """Protection trip: contacts open now, whatever the command."""
        br = self.breaker
        br.travel_target = None
        if br.contacts_closed or br.position != BreakerPosition.OPEN:
            br.contacts_closed = False
            br.position = BreakerPosition.OPEN
            br.operations += 1
        self._world_event("breaker", "tripped open")
        self._settle()

    # ------------------------------------------------------------------ loads
    def set_relay(self, panel_id: str, channel: int, on: bool) -> None:
        panel = self.panels[panel_id]
        if not 0 <= channel < panel.channels:
            raise ValueError(f"{panel_id} has no channel {channel}")
        if panel.relays[channel] == on:
            return
        panel.relays[channel] = on
        panel.operations += 1
        load = self._load_at(panel_id, channel)
        if load is not None:
            load.operations += 1
            self.relay_log[load.spec.id].append((self.time_s, bool(on)))
            self._circuit_changed_s[load.spec.supply] = self.time_s
        self._settle()

    def set_load_factor(self, load_id: str, factor: float) -> None:
        if not 0.0 <= factor <= 10.0:
            raise ValueError("factor must be within 0..10")
        self.loads[load_id].factor = factor
        self._log("injection", f"load {load_id} factor {factor:g}")
        self._settle()

    def excuse_load(self, load_id: str, excused: bool = True) -> None:
        """An operator shed this load by hand: it does not count for wrong_shed_order."""
        self.loads[load_id].excused = excused
        self._settle()

    # ------------------------------------------------------------------ chargers and vehicles
    def set_charger_mode(self, charger_id: str, mode: ChargerMode) -> None:
        """A write to MODE_COMMAND; OFF also resets a latched (non-injected) fault."""
        charger = self.chargers[charger_id]
        if mode == ChargerMode.FORM and not charger.can_form:
            raise ValueError(f"{charger_id} cannot form the grid")
        if mode == ChargerMode.OFF and not charger.internal_fault:
            charger.fault_code = ChargerMap.FAULT_NONE
        if charger.mode_command != mode:
            self._log("charger", f"{charger_id} mode {mode.name}")
        charger.mode_command = mode
        self._settle()

    def set_charger_setpoints(
        self,
        charger_id: str,
        *,
        power_w: int | None = None,
        frequency_hz: float | None = None,
        voltage_v: float | None = None,
        min_soc_pct: float | None = None,
    ) -> None:
        charger = self.chargers[charger_id]
        if power_w is not None:
            charger.power_setpoint_w = power_w
        if frequency_hz is not None:
            charger.frequency_setpoint_hz = frequency_hz
        if voltage_v is not None:
            charger.voltage_setpoint_v = voltage_v
        if min_soc_pct is not None:
            charger.min_soc_pct = min_soc_pct
        self._settle()

    def plug(
        self,
        connector: str,
        vehicle_id: str,
        soc_pct: float,
        capacity_wh: float,
        reserve_soc_pct: float | None = None,
        max_discharge_w: float | None = None,
    ) -> None:
        """Park a vehicle at a charger or V2L outlet; reserve defaults to the site file's."""
        _check_soc(soc_pct)
        if capacity_wh <= 0:
            raise ValueError("capacity_wh must be > 0")
        if self._connector_vehicle(connector) is not None:
            raise ValueError(f"{connector} already holds a vehicle")
        for cid, other in self._connected_vehicles():
            if other.vehicle_id == vehicle_id:
                raise ValueError(f"vehicle {vehicle_id} is already at {cid}")
        known = next((v for v in self.config.vehicles if v.id == vehicle_id), None)
        if reserve_soc_pct is None:
            reserve_soc_pct = known.reserve_soc_pct if known is not None else 0.0
        if max_discharge_w is None and known is not None:
            max_discharge_w = known.max_discharge_w
        vehicle = VehicleSim(vehicle_id, capacity_wh, soc_pct, reserve_soc_pct, max_discharge_w)
        if connector in self.chargers:
            charger = self.chargers[connector]
            charger.vehicle = vehicle
            if charger.fault_code == ChargerMap.FAULT_UNPLUGGED_WHILE_ACTIVE:
                charger.fault_code = ChargerMap.FAULT_NONE
        elif connector in self.outlets:
            self.outlets[connector].vehicle = vehicle
            self.outlets[connector].tripped = False
        else:
            raise KeyError(connector)
        self.vehicles[vehicle_id] = vehicle
        self._world_event("injection", f"{vehicle_id} plugged into {connector} at {soc_pct:.1f} %")
        self._settle()

    def unplug(self, connector: str) -> None:
        if connector in self.chargers:
            charger = self.chargers[connector]
            if charger.vehicle is None:
                raise ValueError(f"{connector} holds no vehicle")
            active = charger.form_started_s is not None or abs(charger.power_w) > 0.5
            if active and charger.fault_code == ChargerMap.FAULT_NONE:
                charger.fault_code = ChargerMap.FAULT_UNPLUGGED_WHILE_ACTIVE
            charger.vehicle = None
        elif connector in self.outlets:
            outlet = self.outlets[connector]
            if outlet.vehicle is None:
                raise ValueError(f"{connector} holds no vehicle")
            outlet.vehicle = None
            # The contactor is interlocked with the plug: unplugging opens it, and the next
            # vehicle supplies only once the controller, having read it, enables it again.
            outlet.enabled = False
        else:
            raise KeyError(connector)
        self._world_event("injection", f"vehicle unplugged from {connector}")
        self._settle()

    # ------------------------------------------------------------------ V2L and PV
    def set_outlet_enable(self, outlet_id: str, enabled: bool) -> None:
        """A write to ENABLE; writing 0 resets a trip."""
        outlet = self.outlets[outlet_id]
        if not enabled and outlet.tripped:
            outlet.tripped = False
            self._log("outlet", f"{outlet_id} trip reset")
        outlet.enabled = enabled
        self._settle()

    def set_pv_available(self, available_w: float, inverter_id: str | None = None) -> None:
        """Irradiance: what the array could give right now [W]."""
        if available_w < 0:
            raise ValueError("available_w must be >= 0")
        for inv in self._inverters(inverter_id):
            inv.available_w = available_w
        self._settle()

    def set_pv_controls(
        self,
        inverter_id: str,
        *,
        connected: bool | None = None,
        limit_pct: float | None = None,
        limit_enabled: bool | None = None,
    ) -> None:
        inv = self.inverters[inverter_id]
        if connected is not None:
            inv.connected = connected
        if limit_pct is not None:
            inv.limit_pct = limit_pct
        if limit_enabled is not None:
            inv.limit_enabled = limit_enabled
        self._settle()

    # ------------------------------------------------------------------ hardware faults
    def fault(self, device_id: str) -> None:
        """An internal hardware fault: chargers trip (FAULT_INTERNAL), outlets trip, PV faults,
        the breaker trips open."""
        if device_id in self.chargers:
            charger = self.chargers[device_id]
            charger.internal_fault = True
            charger.fault_code = ChargerMap.FAULT_INTERNAL
        elif device_id in self.outlets:
            self.outlets[device_id].tripped = True
        elif device_id in self.inverters:
            self.inverters[device_id].faulted = True
        elif device_id == self.breaker.device_id:
            self.trip_breaker()
        else:
            raise ValueError(
                f"device {device_id!r} cannot fault (not a charger, outlet, PV or breaker)"
            )
        self._world_event("injection", f"{device_id} fault")
        self._settle()

    # ------------------------------------------------------------------ communication faults
    def silence(self, device_id: str) -> None:
        self._set_comm_fault(device_id, CommFault("silence"))

    def exception(self, device_id: str, code: int) -> None:
        if code not in MODBUS_EXCEPTION_CODES:
            codes = sorted(MODBUS_EXCEPTION_CODES)
            raise ValueError(f"{code} is not a Modbus exception code {codes}")
        self._set_comm_fault(device_id, CommFault("exception", code))

    def refuse_writes(self, device_id: str, code: int = 4) -> None:
        """The device still answers reads but refuses every write with exception `code`."""
        if code not in MODBUS_EXCEPTION_CODES:
            codes = sorted(MODBUS_EXCEPTION_CODES)
            raise ValueError(f"{code} is not a Modbus exception code {codes}")
        self._set_comm_fault(device_id, CommFault("refuse_writes", code))

    def garbage(self, device_id: str, registers: Mapping[int, int] | None = None) -> None:
        """Impossible values in sound frames: the device's own choice, or exactly `registers`
        (offset from the start of its map -> raw value), e.g. a SoC of 250 %."""
        overrides = tuple(sorted((registers or {}).items()))
        self._set_comm_fault(device_id, CommFault("garbage", registers=overrides))

    def corrupt(self, device_id: str) -> None:
        """Frames from this device arrive garbled: bad CRC on RTU, bad checksum on a serial
        line, a short frame on TCP (which has no CRC)."""
        self._set_comm_fault(device_id, CommFault("corrupt"))

    def truncate(self, device_id: str) -> None:
        """Frames from this device arrive cut short (RTU, serial line, TCP)."""
        self._set_comm_fault(device_id, CommFault("truncate"))

    def clear_fault(self, device_id: str) -> None:
        """Undo every injection on a device: comms faults and hardware faults."""
        self._require_device(device_id)
        self._comm_faults.pop(device_id, None)
        if device_id in self.chargers:
            charger = self.chargers[device_id]
            if charger.internal_fault:
                charger.internal_fault = False
                charger.fault_code = ChargerMap.FAULT_NONE
        if device_id in self.outlets:
            self.outlets[device_id].tripped = False
        if device_id in self.inverters:
            self.inverters[device_id].faulted = False
        if device_id == self.breaker.device_id:
            self.breaker.fail_to_operate = False
        self._world_event("injection", f"{device_id} faults cleared")
        self._settle()

    def comm_fault(self, device_id: str) -> CommFault | None:
        return self._comm_faults.get(device_id)

    # ------------------------------------------------------------------ read-only views
    @property
    def bus_live(self) -> bool:
        return self.bus_source != "dead"

    @property
    def grid_present(self) -> bool:
        return self.grid.present

    @property
    def breaker_position(self) -> BreakerPosition:
        return self.breaker.position

    @property
    def former_ids(self) -> tuple[str, ...]:
        """Chargers whose voltage source is up (soft start over)."""
        return tuple([cid for cid, c in self.chargers.items() if c.forming_live])

    @property
    def phase_diff_deg(self) -> float:
        """Grid angle minus bus angle, -180..180; 0 when either side is dead."""
        if not self.grid.present or not self.bus_live:
            return 0.0
        return _wrap(self.grid.phase_deg - self.bus_phase_deg)

    @property
    def pv_power_w(self) -> float:
        return sum(inv.power_w for inv in self.inverters.values())

    def load_on(self, load_id: str) -> bool:
        spec = self.loads[load_id].spec
        return self.panels[spec.panel].relays[spec.channel]

    def load_power_w(self, load_id: str) -> float:
        return self.loads[load_id].power_w

    def relay_operations(self, load_id: str) -> int:
        return self.loads[load_id].operations

    def relay_changes(
        self, load_id: str, start_s: float = 0.0, until_s: float = math.inf
    ) -> list[tuple[float, bool]]:
        """The relay changes of a load from start_s to until_s [s] (both included)."""
        return [
            (t, on)
            for t, on in self.relay_log[load_id]
            if start_s - _T_EPS <= t <= until_s + _T_EPS
        ]

    def served_s(
        self, supply: str, tier: Tier, start_s: float = 0.0, until_s: float = math.inf
    ) -> float:
        """[s] from start_s to until_s in which every `tier` load on circuit `supply` was
        energised (0 when the circuit has no such load)."""
        total = 0.0
        for a, b in self.served_intervals.get((supply, tier), ()):
            total += max(0.0, min(b, until_s) - max(a, start_s))
        return total

    def vehicle_soc(self, vehicle_id: str) -> float:
        return self.vehicles[vehicle_id].soc_pct

    def vehicle_min_soc(self, vehicle_id: str) -> float:
        return self.vehicles[vehicle_id].min_soc_seen_pct

    def charger_power_w(self, charger_id: str) -> float:
        return self.chargers[charger_id].power_w

    def circuit_live(self, supply: str) -> bool:
        return self.bus_live if supply == "bus" else self.outlets[supply].live

    def circuit_voltage_v(self, supply: str) -> float:
        return self.bus_voltage_v if supply == "bus" else self.outlets[supply].voltage_v

    def violations_of(self, kind: ViolationKind) -> list[Violation]:
        return [v for v in self.violations if v.kind == kind]

    def state(self, log_tail: int = 200) -> dict[str, Any]:
        """Everything, as JSON-ready data (the control interface's GET /state)."""
        br = self.breaker
        return {
            "time_s": self.time_s,
            "grid": {
                "present": self.grid.present,
                "voltage_v": self.grid.voltage_v,
                "frequency_hz": self.grid.measured_frequency_hz,
                "phase_deg": self.grid.phase_deg,
            },
            "breaker": {
                "device_id": br.device_id,
                "position": br.position.name,
                "contacts_closed": br.contacts_closed,
                "operations": br.operations,
                "fail_to_operate": br.fail_to_operate,
                "failed_last_command": br.failed_last_command,
            },
            "bus": {
                "live": self.bus_live,
                "source": self.bus_source,
                "voltage_v": self.bus_voltage_v,
                "frequency_hz": self.bus_frequency_hz,
                "phase_diff_deg": self.phase_diff_deg,
                "formers": list(self.former_ids),
            },
            "meter": {
                "power_w": self.meter_power_w,
                "import_wh": self.import_wh,
                "export_wh": self.export_wh,
            },
            "loads": {
                lid: {
                    "tier": load.spec.tier.label,
                    "supply": load.spec.supply,
                    "relay_on": self.load_on(lid),
                    "power_w": load.power_w,
                    "factor": load.factor,
                    "operations": load.operations,
                    "excused": load.excused,
                }
                for lid, load in self.loads.items()
            },
            "chargers": {
                cid: {
                    "vehicle_id": c.vehicle.vehicle_id if c.vehicle else None,
                    "soc_pct": c.vehicle.soc_pct if c.vehicle else None,
                    "state": c.state.name,
                    "mode": c.mode_active.name,
                    "power_w": c.power_w,
                    "fault_code": c.fault_code,
                    "min_soc_pct": c.min_soc_pct,
                }
                for cid, c in self.chargers.items()
            },
            "outlets": {
                oid: {
                    "vehicle_id": o.vehicle.vehicle_id if o.vehicle else None,
                    "soc_pct": o.vehicle.soc_pct if o.vehicle else None,
                    "state": o.state.name,
                    "enabled": o.enabled,
                    "power_w": o.power_w,
                }
                for oid, o in self.outlets.items()
            },
            "pv": {
                iid: {
                    "available_w": inv.available_w,
                    "power_w": inv.power_w,
                    "st": inv.operating_state,
                    "limit_pct": inv.limit_pct if inv.limit_enabled else None,
                }
                for iid, inv in self.inverters.items()
            },
            "vehicles": {
                vid: {"soc_pct": v.soc_pct, "min_soc_seen_pct": v.min_soc_seen_pct}
                for vid, v in self.vehicles.items()
            },
            "energy_wh": {
                "served": {t.label: e for t, e in self.served_energy_wh.items()},
                "unserved": {t.label: e for t, e in self.unserved_energy_wh.items()},
            },
            "comm_faults": {d: f.kind for d, f in self._comm_faults.items()},
            "violations": [
                {"time_s": v.time_s, "kind": v.kind, "detail": v.detail} for v in self.violations
            ],
            "collapses": self.collapses,
            "outages": [outage_json(o) for o in self.outages],
            "log": [
                {"time_s": e.time_s, "kind": e.kind, "detail": e.detail}
                for e in self.log[-log_tail:]
            ],
        }

    # ------------------------------------------------------------------ internals: bookkeeping
    def device(self, device_id: str) -> Device:
        return self._require_device(device_id)

    def _require_device(self, device_id: str) -> Device:
        try:
            return self.config.devices[device_id]
        except KeyError:
            raise KeyError(f"unknown device {device_id!r}") from None

    def _set_comm_fault(self, device_id: str, fault: CommFault) -> None:
        self._require_device(device_id)
        self._comm_faults[device_id] = fault
        code = f" {fault.code}" if fault.code else ""
        self._world_event("injection", f"{device_id} {fault.kind}{code}")

    def _log(self, kind: str, detail: str) -> None:
        self.log.append(LogEntry(self.time_s, kind, detail))

    def _world_event(self, kind: str, detail: str) -> None:
        """Log something the world did to the site (not the controller): it may excuse a
        collapse that cuts across one of the controller's operations."""
        self._log(kind, detail)
        self._world_s = self.time_s
        self._world_detail = detail

    def _world_since(self, t_s: float) -> str | None:
        """What the world last did, if it did anything from a decision lag before t_s on."""
        if math.isfinite(self._world_s) and self._world_s >= t_s - self._decision_lag_s - _T_EPS:
            return f"{self._world_detail} at {self._world_s:.3f} s"
        return None

    def _record(self, kind: ViolationKind, detail: str, time_s: float | None = None) -> None:
        self.violations.append(Violation(self.time_s if time_s is None else time_s, kind, detail))
        self._log("violation", f"{kind}: {detail}")

    def _episode_starts(self, key: str, active: bool) -> bool:
        """Track the episode `key`; True only when it starts now, so that the caller records
        its violation once (and builds the text only then)."""
        if not active:
            self._episodes.discard(key)
            return False
        if key in self._episodes:
            return False
        self._episodes.add(key)
        return True

    def _load_at(self, panel_id: str, channel: int) -> LoadSim | None:
        for load in self.loads.values():
            if load.spec.panel == panel_id and load.spec.channel == channel:
                return load
        return None

    def _connector_vehicle(self, connector: str) -> VehicleSim | None:
        if connector in self.chargers:
            return self.chargers[connector].vehicle
        if connector in self.outlets:
            return self.outlets[connector].vehicle
        raise KeyError(f"unknown connector {connector!r} (not a charger or V2L outlet)")

    def _connected_vehicles(self) -> Iterable[tuple[str, VehicleSim]]:
        for cid, c in self.chargers.items():
            if c.vehicle is not None:
                yield cid, c.vehicle
        for oid, o in self.outlets.items():
            if o.vehicle is not None:
                yield oid, o.vehicle

    def _inverters(self, inverter_id: str | None) -> list[InverterSim]:
        if inverter_id is None:
            return list(self.inverters.values())
        return [self.inverters[inverter_id]]

    # ------------------------------------------------------------------ internals: events
    def _due(self) -> bool:
        return bool(self._schedule) and self._schedule[0].time_s <= self.time_s + _T_EPS

    def _run_due(self) -> None:
        while self._due():
            item = heapq.heappop(self._schedule)
            item.action()
            self._settle()

    def _complete_breaker(self) -> None:
        br = self.breaker
        target = br.travel_target
        if target is None:
            return
        br.travel_target = None
        br.operations += 1
        if target == BreakerPosition.CLOSED:
            self._check_sync_at_close()
            br.contacts_closed = True
            self.pcc_closes.append(self.time_s)
        else:
            br.contacts_closed = False
        br.position = target
        self._log("breaker", f"contacts {target.name.lower()}")

    def _check_sync_at_close(self) -> None:
        """Judge the instant the contacts touch: both sides live must be in synchronism."""
        grid, sync = self.grid, self.config.sync
        if not (grid.present and self.bus_live):
            return  # dead-bus close is fine; closing onto a dead grid is caught as back_feed
        df = abs(grid.frequency_hz - self.bus_frequency_hz)
        dv = abs(grid.voltage_v - self.bus_voltage_v)
        dphi = abs(_wrap(grid.phase_deg - self.bus_phase_deg))
        dv_limit = sync.max_voltage_diff_pct / 100.0 * self.nominal_voltage_v
        if df > sync.max_frequency_diff_hz or dv > dv_limit or dphi > sync.max_phase_diff_deg:
            self._record(
                "close_without_sync",
                f"PCC closed with df={df:.3f} Hz, dV={dv:.1f} V, dphase={dphi:.1f} deg"
                f" (limits {sync.max_frequency_diff_hz} Hz, {dv_limit:.1f} V,"
                f" {sync.max_phase_diff_deg} deg)",
            )

    def next_event_s(self) -> float:
        """Plant time [s] of the next discrete event (inf: none); a drill runner stops there."""
        return self._next_event_s()

    def _next_event_s(self) -> float:
        """The earliest event time later than now (+ _T_EPS). It runs twice per drill cycle, so
        the SoC crossings of every vehicle go into a running minimum, not into lists."""
        t = self.time_s
        timing = self.timing
        candidates: list[float] = []
        if self._schedule:
            candidates.append(self._schedule[0].time_s)
        for charger in self.chargers.values():
            if charger.form_started_s is not None:
                candidates.append(charger.form_started_s + timing.form_soft_start_s)
        if self._reference_since_s is not None:
            candidates.append(self._reference_since_s + timing.follower_reconnect_s)
        if self._overload_since_s is not None:
            candidates.append(self._overload_since_s + timing.overload_max_s)
        settle = timing.shed_order_settle_s
        for changed in self._circuit_changed_s.values():
            candidates.append(changed + settle)
        horizon = t + _T_EPS
        earliest = math.inf
        for candidate in candidates:
            if horizon < candidate < earliest:
                earliest = candidate
        for charger in self.chargers.values():
            if charger.vehicle is not None:
                earliest = _soc_crossing_s(
                    charger.vehicle, charger.power_w, t, earliest, charger.soc_floor_pct, 0.0
                )
        for outlet in self.outlets.values():
            if outlet.vehicle is not None:
                earliest = _soc_crossing_s(
                    outlet.vehicle, outlet.power_w, t, earliest, outlet.vehicle.cutoff_soc_pct
                )
        return earliest

    # ------------------------------------------------------------------ internals: physics
    def _advance(self, h: float) -> None:
        """Integrate the present operating point over h seconds."""
        grid = self.grid
        grid.phase_deg = (grid.phase_deg + 360.0 * grid.frequency_hz * h) % 360.0
        if self.bus_source == "grid":
            self.bus_phase_deg = grid.phase_deg
        elif self.bus_source == "island":
            self.bus_phase_deg = (self.bus_phase_deg + 360.0 * self.bus_frequency_hz * h) % 360.0
        hours = h / 3600.0
        for charger in self.chargers.values():
            if charger.vehicle is not None:
                _drain(charger.vehicle, charger.power_w, hours)
        for outlet in self.outlets.values():
            if outlet.vehicle is not None:
                _drain(outlet.vehicle, outlet.power_w, hours)
        served, unserved = self.served_energy_wh, self.unserved_energy_wh
        per_load = self.unserved_load_wh
        dark: set[tuple[str, Tier]] = set()
        for load, panel, channel, tier, rated_w, load_id, key in self._accounted:
            served[tier] += load.power_w * hours
            if not (load.supply_live and panel.relays[channel]):
                unserved_wh = rated_w * hours
                unserved[tier] += unserved_wh
                per_load[load_id] += unserved_wh
                dark.add(key)
        start, end = self.time_s, self.time_s + h
        for key, intervals in self.served_intervals.items():
            if key in dark:
                continue
            if intervals and intervals[-1][1] >= start - _T_EPS:
                intervals[-1][1] = end
            else:
                intervals.append([start, end])
        if self.meter_power_w >= 0:
            self.import_wh += self.meter_power_w * hours
        else:
            self.export_wh -= self.meter_power_w * hours
        for inv in self.inverters.values():
            inv.energy_wh += inv.power_w * hours

    def _settle(self) -> None:
        """Find the operating point for the present discrete state, then judge it."""
        before = (self.bus_source, self.former_ids)
        collapses = self.collapses
        for _ in range(10):
            if not self._solve_once():
                break
        after = (self.bus_source, self.former_ids)
        if after[0] != before[0]:
            if self.bus_source == "dead":
                self._log("bus", "site bus dead")
                if before[0] == "island" and self.collapses == collapses:
                    self._island_died(before[1])
            else:
                if self.bus_source == "grid":
                    self._log("bus", "site bus live from the grid")
                else:
                    self._log("bus", f"site bus live, island formed by {_names(after[1])}")
                if before[0] == "dead":
                    self._bus_back()
        elif after[1] != before[1]:
            self._log("bus", f"grid formers now: {_names(after[1])}")
        self._judge()

    def _solve_once(self) -> bool:
        """One pass of the power flow; True when a trip or collapse changed the topology."""
        t = self.time_s
        timing = self.timing
        grid, br = self.grid, self.breaker

        for charger in self.chargers.values():
            charger.pcc_closed = br.contacts_closed  # the auxiliary contact, wired to it
            if charger.form_eligible:
                if charger.form_started_s is None:
                    charger.form_started_s = t
            else:
                charger.form_started_s = None
            charger.forming_live = (
                charger.form_started_s is not None
                and t >= charger.form_started_s + timing.form_soft_start_s - _T_EPS
            )
        formers = [c for c in self.chargers.values() if c.forming_live]

        grid_fed = br.contacts_closed and grid.present
        if grid_fed:
            self.bus_source = "grid"
            self.bus_voltage_v = grid.voltage_v
            self.bus_frequency_hz = grid.frequency_hz
            self.bus_phase_deg = grid.phase_deg
        elif formers:
            self.bus_source = "island"
            self.bus_voltage_v = _mean(
                c.voltage_setpoint_v or self.nominal_voltage_v for c in formers
            )
            self.bus_frequency_hz = _mean(
                c.frequency_setpoint_hz or self.nominal_frequency_hz for c in formers
            )
        else:
            self.bus_source = "dead"
            self.bus_voltage_v = 0.0
            self.bus_frequency_hz = 0.0
        bus_live = self.bus_source != "dead"

        # A follower needs a voltage reference it may legally follow: the grid, or an island
        # behind an open PCC. Behind a closed PCC on a dead grid it trips (anti-islanding).
        reference = grid_fed or (bus_live and not br.contacts_closed)
        if not reference:
            self._reference_since_s = None
        elif self._reference_since_s is None:
            self._reference_since_s = t
        followers_on = (
            self._reference_since_s is not None
            and t >= self._reference_since_s + timing.follower_reconnect_s - _T_EPS
        )

        changed = False
        for outlet in self.outlets.values():
            vehicle = outlet.vehicle
            live = (
                vehicle is not None
                and outlet.enabled
                and not outlet.tripped
                and vehicle.soc_pct > vehicle.cutoff_soc_pct + _SOC_EPS
            )
            draw = self._circuit_draw_w(outlet.device_id) if live else 0.0
            if live and draw > outlet.rating_w + _P_EPS:
                outlet.tripped = True
                self._record(
                    "over_rating",
                    f"{outlet.device_id} circuit drew {draw:.0f} W > rating"
                    f" {outlet.rating_w:.0f} W; outlet tripped",
                )
                live, draw, changed = False, 0.0, True
            outlet.live = live
            outlet.power_w = draw

        for supply, wired in self._circuit_loads.items():
            supply_live = self.circuit_live(supply)
            for load, panel, channel, _ in wired:
                load.supply_live = supply_live
                on = panel.relays[channel]
                load.power_w = load.spec.rated_power_w * load.factor if on and supply_live else 0.0

        for inv in self.inverters.values():
            inv.power_w = inv.potential_w(bus_live)

        for charger in self.chargers.values():
            power = 0.0
            if charger.vehicle is not None and charger.fault_code == ChargerMap.FAULT_NONE:
                if charger.follows and followers_on:
                    power = charger.clamped_setpoint_w()
                elif charger.forming_live and grid_fed:
                    power = charger.clamped_setpoint_w()  # a former paralleled with the grid
            charger.power_w = power

        loads_w = sum(w.load.power_w for w in self._circuit_loads["bus"])
        if self.bus_source == "island":
            if self._balance_island(formers, loads_w):
                changed = True
        else:
            self._overload_since_s = None

        sources_w = sum(c.power_w for c in self.chargers.values()) + self.pv_power_w
        self.meter_power_w = loads_w - sources_w if grid_fed else 0.0

        for inv in self.inverters.values():
            inv.operating_state = self._inverter_state(inv, bus_live)
        return changed

    def _balance_island(self, formers: list[ChargerSim], loads_w: float) -> bool:
        """Formers take up the balance; True when the island collapsed."""
        t, timing = self.time_s, self.timing
        followers = [c for c in self.chargers.values() if not c.forming_live]
        pv_w = self.pv_power_w
        need = loads_w - sum(c.power_w for c in followers) - pv_w
        n = len(formers)
        drooping = any(c.droop_hz > 0 for c in formers)
        if drooping:
            absorb_cap = self._droop_absorb_cap_w(formers, need)
        else:
            absorb_cap = n * min(c.charge_cap_w for c in formers)
        if need < -absorb_cap:
            # Surplus the formers cannot absorb: over-frequency droop curtails PV, then followers.
            surplus = -absorb_cap - need
            if pv_w > 0:
                cut = min(surplus, pv_w)
                scale = (pv_w - cut) / pv_w
                for inv in self.inverters.values():
                    inv.power_w *= scale
                surplus -= cut
            discharging = [c for c in followers if c.power_w > 0]
            total = sum(c.power_w for c in discharging)
            if surplus > 0 and total > 0:
                scale = max(0.0, (total - surplus) / total)
                for c in discharging:
                    c.power_w *= scale
            need = loads_w - sum(c.power_w for c in followers) - self.pv_power_w
        if drooping:
            self.bus_frequency_hz, shares = droop_shares(
                [self._droop_unit(c) for c in formers], need
            )
        else:
            shares = [need / n] * n
        for c, share in zip(formers, shares, strict=True):
            c.power_w = share
        if max(shares) <= _P_EPS:
            self._overload_since_s = None
            return False

        overload_limit = timing.overload_pu
        for c in formers:
            cap = c.discharge_cap_w
            each = c.power_w
            if cap <= 0.0 and each > _P_EPS:
                assert c.vehicle is not None
                self._collapse(
                    "floor",
                    f"former {c.device_id} cannot discharge: SoC {c.vehicle.soc_pct:.1f} %"
                    f" at its floor {c.soc_floor_pct:.1f} % (MIN_SOC)",
                )
                return True
            if each > cap * overload_limit + _P_EPS:
                self._collapse(
                    "overload",
                    f"former {c.device_id} overloaded: {each:.0f} W > {overload_limit:.2f} x"
                    f" {cap:.0f} W",
                )
                return True
        if any(c.power_w > c.discharge_cap_w + _P_EPS for c in formers):
            if self._overload_since_s is None:
                self._overload_since_s = t
            elif t >= self._overload_since_s + timing.overload_max_s - _T_EPS:
                for c in formers:
                    if c.power_w <= c.discharge_cap_w + _P_EPS:
                        continue
                    self._record(
                        "over_rating",
                        f"former {c.device_id} delivered {c.power_w:.0f} W >"
                        f" {c.discharge_cap_w:.0f} W for {timing.overload_max_s:g} s",
                    )
                self._collapse("overload", f"formers overloaded for {timing.overload_max_s:g} s")
                return True
        else:
            self._overload_since_s = None
        return False

    def _droop_unit(self, c: ChargerSim) -> DroopUnit:
        return DroopUnit(
            c.frequency_setpoint_hz or self.nominal_frequency_hz, c.droop_hz, c.rating_w
        )

    def _droop_absorb_cap_w(self, formers: list[ChargerSim], need_w: float) -> float:
        """The surplus [W] drooping formers absorb before the first reaches its charge limit:
        -(the least `need` at which every share stays within its former's charge cap)."""
        units = [self._droop_unit(c) for c in formers]
        _, shares = droop_shares(units, need_w)
        _, shifted = droop_shares(units, need_w + 1.0)
        least = need_w
        for c, share, moved in zip(formers, shares, shifted, strict=True):
            slope = moved - share  # [W per W of need]
            if share < -c.charge_cap_w - _P_EPS and slope > 0:
                least = max(least, need_w + (-c.charge_cap_w - share) / slope)
        return -least  # no share beyond its cap: -need_w, so nothing is curtailed

    def _collapse(self, cause: OutageCause, reason: str) -> None:
        """The formers trip on what the controller left them to carry: a collapse it caused."""
        self._bus_back()  # the island was live, if only for this instant
        for charger in self.chargers.values():
            if charger.forming_live:
                charger.fault_code = ChargerMap.FAULT_OVERLOAD
                charger.form_started_s = None
                charger.forming_live = False
                charger.power_w = 0.0
        self._overload_since_s = None
        loads, loads_w = self._bus_loads_on()
        self._add_outage("controller", cause, reason, loads, loads_w, self.time_s)

    # ------------------------------------------------------------------ internals: outages
    def _bus_loads_on(self) -> tuple[tuple[str, ...], float]:
        """The bus loads on (relay closed, drawing), and their demand [W]."""
        on = [
            w.load
            for w in self._circuit_loads["bus"]
            if w.panel.relays[w.channel] and w.load.factor * w.load.spec.rated_power_w > _P_EPS
        ]
        return tuple(ld.spec.id for ld in on), sum(ld.spec.rated_power_w * ld.factor for ld in on)

    def _add_outage(
        self,
        by: OutageBy,
        cause: OutageCause,
        detail: str,
        loads: tuple[str, ...],
        loads_w: float,
        time_s: float,
        ended_s: float | None = None,
    ) -> None:
        self.collapses += 1
        self.outages.append(Outage(time_s, by, cause, detail, loads, loads_w, ended_s))
        if ended_s is None:
            self._open_outage = len(self.outages) - 1
        what = f"{detail}; {loads_w / 1000:.1f} kW of loads dropped ({', '.join(loads) or 'none'})"
        if by == "controller":
            self._record("island_collapse", what, time_s)
        else:
            self._log("collapse", f"island collapse (world): {what}")

    def _bus_back(self) -> None:
        """The bus is live again: the dark episode (if any) ends."""
        if self._stopped is not None:
            self._resolve_stop(onto_grid=self.bus_source == "grid")
        if self._open_outage is not None:
            i, self._open_outage = self._open_outage, None
            self.outages[i] = replace(self.outages[i], ended_s=self.time_s)

    def _island_died(self, formers: tuple[str, ...]) -> None:
        """The island's bus went dead without a trip: find out why its formers stopped."""
        loads, loads_w = self._bus_loads_on()
        if not loads:
            return  # shut down with nothing on it: nothing dropped
        lost = [self.chargers[cid] for cid in formers]
        for c in lost:
            if c.vehicle is None:
                detail = f"vehicle unplugged from {c.device_id} while it formed the island"
                self._add_outage("world", "unplugged", detail, loads, loads_w, self.time_s)
                return
            if c.internal_fault:
                detail = f"{c.device_id} hardware fault while it formed the island"
                self._add_outage("world", "fault", detail, loads, loads_w, self.time_s)
                return
        if any(c.interlocked for c in lost):
            started = self.breaker.travel_started_s
            world = self._world_since(started)
            if world is not None:
                detail = (
                    f"the PCC closed onto a dead grid, stopping {_names(formers)} (PCC interlock);"
                    f" the world cut across the close commanded at {started:.3f} s: {world}"
                )
                self._add_outage("world", "interrupted", detail, loads, loads_w, self.time_s)
            else:
                detail = (
                    f"the PCC closed onto a dead grid (commanded at {started:.3f} s), stopping"
                    f" {_names(formers)} (PCC interlock)"
                )
                self._add_outage("controller", "pcc_closed", detail, loads, loads_w, self.time_s)
            return
        # The controller told its last former(s) to stop (OFF or FOLLOW). Planned only as a
        # break-before-make reconnection: judged when the bus is live again or the time is up.
        commanded = ", ".join(f"{c.device_id} {c.mode_command.name}" for c in lost)
        stop = _Stopped(
            self.time_s,
            f"the controller stopped the island's last grid-former ({commanded})",
            loads,
            loads_w,
            self.time_s + self.break_before_make_s,
            formers=tuple(c.device_id for c in lost),
            at_floor=all(
                c.vehicle is not None
                and c.vehicle.soc_pct <= c.soc_floor_pct + HANDOVER_SOC_TOLERANCE_PCT
                for c in lost
            ),
        )
        self._stopped = stop

        def deadline() -> None:
            if self._stopped is stop:
                self._resolve_stop(onto_grid=False)

        self.schedule(self.break_before_make_s, deadline, "break-before-make allowance")

    def _resolve_stop(self, onto_grid: bool) -> None:
        """A controller stop ends: planned if the PCC closed onto the grid in time, otherwise a
        collapse (the world's, if it cut across the stop)."""
        stop = self._stopped
        assert stop is not None
        self._stopped = None
        now = self.time_s
        in_time = now <= stop.until_s + _T_EPS
        if onto_grid and in_time:
            self._log(
                "bus",
                f"site bus dark {now - stop.time_s:.3f} s for a break-before-make reconnection",
            )
            return
        if in_time and self.bus_source == "island" and not set(self.former_ids) & set(stop.formers):
            why = "at its reserve" if stop.at_floor else "(its car about to leave, or planned)"
            handover = Handover(stop.time_s, stop.formers, self.former_ids, now - stop.time_s)
            self.handovers.append(handover)
            self._log(
                "bus",
                f"site bus dark {handover.dark_s:.3f} s for a grid-former handover"
                f" {why}: {_names(stop.formers)} -> {_names(self.former_ids)}",
            )
            return
        ended = now if self.bus_live else None
        how = "the bus came back as an island" if self.bus_live else "the PCC did not close"
        detail = (
            f"{stop.detail} with loads on; not a break-before-make reconnection ({how}"
            f" within {self.break_before_make_s:g} s)"
        )
        world = self._world_since(stop.time_s)
        if world is not None:
            detail = f"{detail}; the world cut across it: {world}"
            by: OutageBy = "world"
            cause: OutageCause = "interrupted"
        else:
            by, cause = "controller", "stopped"
        self._add_outage(by, cause, detail, stop.loads, stop.loads_w, stop.time_s, ended)

    def _circuit_draw_w(self, supply: str) -> float:
        return sum(
            load.spec.rated_power_w * load.factor
            for load, panel, channel, _ in self._circuit_loads.get(supply, ())
            if panel.relays[channel]
        )

    def _inverter_state(self, inv: InverterSim, bus_live: bool) -> int:
        if inv.faulted:
            return InverterMap.ST_FAULT
        if not inv.connected:
            return InverterMap.ST_STANDBY
        if not bus_live or inv.available_w <= 0:
            return InverterMap.ST_SLEEPING
        if inv.power_w < min(inv.available_w, inv.rating_w) - 1.0:
            return InverterMap.ST_THROTTLED
        return InverterMap.ST_MPPT

    # ------------------------------------------------------------------ internals: the referee
    # Every judge runs after every settle and decides from the present state; only the text of
    # a violation is built lazily, when its episode starts (formatting it every step cost more
    # than judging).
    def _judge(self) -> None:
        br = self.breaker
        if self._episode_starts(
            "back_feed", br.contacts_closed and not self.grid.present and self.bus_live
        ):
            self._record(
                "back_feed",
                f"site bus energised by {', '.join(self.former_ids) or 'local sources'}"
                " through a closed PCC onto a dead grid",
            )
        for cid, charger in self.chargers.items():
            self._judge_reserve(cid, charger.vehicle, charger.power_w)
            if not charger.forming_live:
                self._judge_rating(cid, abs(charger.power_w), charger.rating_w)
        for oid, outlet in self.outlets.items():
            self._judge_reserve(oid, outlet.vehicle, outlet.power_w)
        for iid, inv in self.inverters.items():
            self._judge_rating(iid, inv.power_w, inv.rating_w)
        self._judge_shed_order()

    def _judge_reserve(self, connector: str, vehicle: VehicleSim | None, power_w: float) -> None:
        key = f"below_reserve:{connector}"
        if vehicle is None:
            self._episodes.discard(key)
            return
        limit = vehicle.reserve_soc_pct - RESERVE_TOLERANCE_PCT
        if self._episode_starts(key, power_w > DELIVERING_W and vehicle.soc_pct < limit):
            self._record(
                "below_reserve",
                f"{vehicle.vehicle_id} at {connector} delivering {power_w:.0f} W at SoC"
                f" {vehicle.soc_pct:.2f} % < reserve {vehicle.reserve_soc_pct:.1f} %",
            )

    def _judge_rating(self, device_id: str, power_w: float, rating_w: float) -> None:
        if self._episode_starts(
            f"over_rating:{device_id}", power_w > rating_w * (1.0 + OVER_RATING_TOLERANCE)
        ):
            self._record(
                "over_rating", f"{device_id} delivering {power_w:.0f} W > rating {rating_w:.0f} W"
            )

    def _judge_shed_order(self) -> None:
        for supply in self._circuits:
            key = f"wrong_shed_order:{supply}"
            changed = self._circuit_changed_s.get(supply, -math.inf)
            if not self.circuit_live(supply):
                self._episodes.discard(key)
                continue
            if self.time_s < changed + self.timing.shed_order_settle_s - _T_EPS:
                continue  # relays still moving: judge the result, not the transient
            loads = self._circuit_loads[supply]
            if self._episode_starts(key, _shed_out_of_order(loads)):
                self._record("wrong_shed_order", f"{supply}: {_shed_order_detail(loads)}")


# --------------------------------------------------------------------------- droop
class DroopUnit(NamedTuple):
    """A grid-former as its droop sees it: frequency setpoint [Hz] (its no-load frequency),
    droop [Hz at full rating] (0: isochronous) and rating [W]."""

    setpoint_hz: float
    droop_hz: float
    rating_w: float


def droop_shares(units: list[DroopUnit], need_w: float) -> tuple[float, list[float]]:
    """The island's frequency [Hz] and each former's power [W] when they carry `need_w`
    between them.

    A drooping former gives P = rating x (setpoint - f) / droop; f is where the sum meets
    the need. An isochronous former (droop 0) holds the frequency at its setpoint (several:
    at the mean of theirs) and they share equally what the drooping ones leave. Linear, so
    exact: no iteration.
    """
    if not units:
        raise ValueError("droop_shares needs at least one grid-former")
    iso = [u for u in units if u.droop_hz <= 0]
    if iso:
        f = _mean(u.setpoint_hz for u in iso)
        given = {
            i: u.rating_w * (u.setpoint_hz - f) / u.droop_hz
            for i, u in enumerate(units)
            if u.droop_hz > 0
        }
        each = (need_w - sum(given.values())) / len(iso)
        return f, [given.get(i, each) for i in range(len(units))]
    stiffness = [u.rating_w / u.droop_hz for u in units]  # [W/Hz]
    f = (sum(k * u.setpoint_hz for k, u in zip(stiffness, units, strict=True)) - need_w) / sum(
        stiffness
    )
    return f, [k * (u.setpoint_hz - f) for k, u in zip(stiffness, units, strict=True)]


# --------------------------------------------------------------------------- helpers
def outage_json(outage: Outage) -> dict[str, Any]:
    """An outage as JSON-ready data (GET /state, a drill's report.json)."""
    return {
        "time_s": outage.time_s,
        "ended_s": outage.ended_s,
        "by": outage.by,
        "cause": outage.cause,
        "detail": outage.detail,
        "loads": list(outage.loads),
        "loads_w": round(outage.loads_w, 1),
    }


def _rating(device: Device) -> float:
    if device.rating_w is None:
        raise ValueError(f"a {device.driver} needs rating_w")
    return device.rating_w


def _check_soc(soc_pct: float) -> float:
    if not 0.0 <= soc_pct <= 100.0:
        raise ValueError(f"soc_pct must be within 0..100, not {soc_pct}")
    return soc_pct


def _wrap(deg: float) -> float:
    """An angle folded into -180..180 degrees."""
    wrapped = (deg + 180.0) % 360.0 - 180.0
    return 180.0 if wrapped == -180.0 else wrapped


def _shed_out_of_order(loads: tuple[WiredLoad, ...]) -> bool:
    """A load is off (and not excused) while one of a lower priority is on.

    The same question as "is any (off, on) pair in the wrong tier order", asked in one pass:
    the highest-priority load off against the lowest-priority load on.
    """
    best_off = math.inf  # smallest tier value among loads off
    worst_on = -math.inf  # largest tier value among loads on
    for load, panel, channel, tier in loads:
        if panel.relays[channel]:
            if tier > worst_on:
                worst_on = tier
        elif not load.excused and tier < best_off:
            best_off = tier
    return best_off < worst_on


def _shed_order_detail(loads: tuple[WiredLoad, ...]) -> str:
    """The first four (off, on) pairs in the wrong order, in site-file order."""
    off = [w.load.spec for w in loads if not w.panel.relays[w.channel] and not w.load.excused]
    on = [w.load.spec for w in loads if w.panel.relays[w.channel]]
    wrong = [(a, b) for a in off for b in on if a.tier < b.tier]
    return "; ".join(
        f"{a.id} ({a.tier.label}) off while {b.id} ({b.tier.label}) on" for a, b in wrong[:4]
    )


def _names(ids: tuple[str, ...]) -> str:
    return ", ".join(ids) or "none"


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)


def _drain(vehicle: VehicleSim, power_w: float, hours: float) -> None:
    """SoC moves by the energy delivered (+) or taken (-); it never leaves 0..100 %."""
    soc = vehicle.soc_pct - power_w * hours / vehicle.capacity_wh * 100.0
    vehicle.soc_pct = min(100.0, max(0.0, soc))
    vehicle.min_soc_seen_pct = min(vehicle.min_soc_seen_pct, vehicle.soc_pct)


def _soc_crossing_s(
    vehicle: VehicleSim, power_w: float, now_s: float, earliest_s: float, *floors: float
) -> float:
    """The earlier of earliest_s and the first time [s] SoC reaches a threshold it is heading
    for: 100 % when charging; each floor [%] and just below the reserve when discharging.

    A crossing no later than now_s + _T_EPS is not an event (it is happening now).
    """
    if abs(power_w) <= _P_EPS:
        return earliest_s
    rate = power_w / vehicle.capacity_wh * 100.0 / 3600.0  # [%/s], + when discharging
    soc = vehicle.soc_pct
    horizon = now_s + _T_EPS
    if rate < 0:
        if soc < 100.0 - _SOC_EPS:
            crossing = now_s + (soc - 100.0) / rate
            if horizon < crossing < earliest_s:
                return crossing
        return earliest_s
    for threshold in (*floors, vehicle.reserve_soc_pct - RESERVE_TOLERANCE_PCT - 1e-6):
        if threshold < soc - _SOC_EPS:
            crossing = now_s + (soc - threshold) / rate
            if horizon < crossing < earliest_s:
                earliest_s = crossing
    return earliest_s
