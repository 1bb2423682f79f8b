"""The site's mode machine: states, triggers, guards and the outputs of each mode.

`SiteModes.step(snapshot)` is the whole decision of one control cycle, with no
I/O: it updates the controller's memory (timers, who forms the grid, when each
relay was switched), tries the current state's triggers in priority order (the
first whose guard holds fires), then asks the new state for its outputs.

Guards are pure functions of a `GuardContext` (snapshot + clock + config +
memory); each returns the reason it holds, or None. The machine is the
`transitions` library's; every transition is reported with time, source,
destination, trigger and the guard's reason.

Safety rules enforced here (numbered as in the README):
1. A grid-forming source is commanded only in modes whose entry required the PCC
   confirmed open (black_start, islanded, emergency, resynchronising) or, in
   planned islanding, while the grid is healthy and in the same cycle as the
   open command; any state that sees the PCC not open falls back to islanding.
2. CLOSE is commanded only in resynchronising, only while the grid has been
   healthy for the return-to-service delay and the synchronisation check passes.
3. Vehicle setpoints come from `policies.vehicles`, which never go below reserve
   or past a rating; every charger is also told the owner's reserve (MIN_SOC).
4. Loads are switched by `policies.shedding.plan_loads` only.
5. `starting` reads the field before acting and issues no command until it knows
   the breaker position.
Units: seconds, watts, percent, as in `resilience.model`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from transitions import EventData, Machine

from resilience.config import SiteConfig, trip_points
from resilience.devices import ChargerCommand
from resilience.model import (
    BreakerCommand,
    BreakerPosition,
    ChargerMode,
    ChargerState,
    GridReading,
    LoadState,
    Mode,
    Snapshot,
    Tier,
    VehicleState,
)
from resilience.outputs import AlarmChange, Decision, Outputs, Transition
from resilience.policies.endurance import energy_above_reserve_wh, tier_power_w
from resilience.policies.energy import (
    EnergyCap,
    Thresholds,
    allowed_tier,
    kept_tier,
    staircase_h,
    thresholds,
    tiers_w,
)
from resilience.policies.grid import (
    TripState,
    enter_service_reason,
    evaluate_trip,
    grid_healthy,
    healthy_since,
    ready_for_return,
    within_trip_limits,
)
from resilience.policies.shedding import UNMEASURED_AFTER_ON_S, LoadPlan, LoadTimes, plan_loads
from resilience.policies.sync import (
    close_check_section,
    droop_setpoint_hz,
    island_frequency_target_hz,
    sync_check,
)
from resilience.policies.vehicles import (
    allocate_power,
    can_discharge,
    choose_former,
    discharge_floor_pct,
    discharge_limit_w,
    outlet_enabled,
    secure_shares,
    supply_capacity_w,
)

RUNBOOKS: dict[Mode, str] = {
    Mode.STARTING: "runbooks/starting.md",
    Mode.GRID_CONNECTED: "runbooks/grid_connected.md",
    Mode.PLANNED_ISLANDING: "runbooks/planned_islanding.md",
    Mode.ISLANDING: "runbooks/islanding.md",
    Mode.BLACK_START: "runbooks/black_start.md",
    Mode.ISLANDED: "runbooks/islanded.md",
    Mode.EMERGENCY: "runbooks/emergency.md",
    Mode.RESYNCHRONISING: "runbooks/resynchronising.md",
}

HANDOVER_SOC_PCT = 0.5  # [%] a former this close above its discharge floor hands over
ISLAND_MODES = frozenset({Mode.ISLANDED, Mode.EMERGENCY, Mode.RESYNCHRONISING})
BLACK_START_TIMEOUT_S = 5.0  # a former that has not energised the bus by then is given up
FORMER_RETRY_S = 60.0  # a former that failed is not chosen again for this long
RESYNC_RETRY_S = 60.0  # after a failed resynchronisation, wait this long before the next
RAMP_DOWN_S = 5.0  # after reconnecting, local sources ramp to zero over this time
# Grid-connected: how long a grid-former with a PCC interlock may read told FORM (its FOLLOW
# not landed yet) before the bus is kept to what it can carry alone.
FOLLOW_CONFIRM_S = 2.0
# Break-before-make: how long after the probe (an OPEN to the open breaker) a refusal or a
# silence would have been alarmed (refused at once, unanswered after the cycle's 0.5 s
# WRITE_TIMEOUT_GRACE_S) before the island's former is stopped for the close.
BREAKER_PROBE_S = 1.0
BUS_LIVE_PU = 0.9  # site bus counts as energised above this fraction of nominal voltage
LOAD_RESTORE_PER_CYCLE = 1
RESTORE_SPACING_S = 0.5  # in island, at least this long between two restores
GRID_BACK_CONFIRM_S = 0.2  # islanding with the PCC stuck closed: the grid back inside the
# enter-service window this long returns the site to grid_connected
WAITING_ALARM = "grid_outside_enter_service"  # islanded, grid back but outside the window
ENERGY_PERIOD_S = 60.0  # the endurance policy (hours) is worked out again at least this
# often, and at once when a circuit's loads switch or its cars come, go or fall silent
SILENT_ENERGY_GRACE_S = 300.0  # a silent charger's car counts its last energy this long
ZERO_CONFIRM_WAIT_S = 1.0  # black start: at most this long waiting for the chargers told
# OFF to confirm it before forming onto what they still hold (counted as cold load then)


def write_failed_alarm(device_id: str) -> str:
    """The alarm the cycle raises while a device does not take its commands: the mode
    machine reads it to block what would rest on that device obeying (a break-before-make
    close)."""
    return f"write_failed:{device_id}"


@dataclass
class Memory:
    """The controller's own beliefs across cycles (never field state, which is re-read)."""

    mode_since_s: float = 0.0
    grid_healthy_since_s: float | None = None
    load_times: dict[str, LoadTimes] = field(default_factory=dict)
    last_shed_s: dict[str, float] = field(default_factory=dict)  # by supply circuit
    former_id: str | None = None
    failed_formers: dict[str, float] = field(default_factory=dict)
    pcc_command: BreakerCommand = BreakerCommand.NONE
    pcc_command_s: float | None = None
    planned_island_requested: bool = False
    planned_requested_s: float = 0.0
    planned_open_sent: bool = False
    planned_open_s: float | None = None
    form_sent_s: float | None = None  # black start: when the chosen former was told FORM
    hold_island: bool = False  # an operator islanded on purpose: stay until asked to reconnect
    # Resynchronising break before make: the island was stopped so that the PCC closes onto
    # a dead bus (its grid-former has no PCC interlock and must not be closed onto the grid).
    resync_dark: bool = False
    # When this resynchronisation probed the breaker's command path (None: not yet).
    breaker_probe_s: float | None = None
    # Must-trip timers (policies.grid.evaluate_trip) and, once one has cleared, why.
    trip_state: TripState = field(default_factory=TripState)
    trip_reason: str = ""
    last_restore_s: float | None = None
    reconnect_requested: bool = False
    resync_blocked_until_s: float = 0.0
    supply_ok_since_s: float | None = None
    ramp_down_from_s: float | None = None
    ramp_start_w: dict[str, float] = field(default_factory=dict)
    locked_off: set[str] = field(default_factory=set)
    # Loads an operator keeps on against the endurance policy (not against the power
    # balance): shared with the overrides, undone on reconnecting to the grid.
    kept_on: set[str] = field(default_factory=set)
    # The endurance policy's last answer per supply circuit (its hysteresis needs it).
    energy_tier: dict[str, Tier] = field(default_factory=dict)
    # What each load drew when last measured on [W]: a shed load's cost to restore.
    last_draw_w: dict[str, float] = field(default_factory=dict)
    # When the site bus was last energised after being dark (black start formed it, or
    # the PCC closed onto a dark bus): the panels' readings until then are of a dark bus.
    bus_energised_s: float | None = None
    # The mode each charger was last read told (`VehicleState.told_mode`), kept while it is
    # silent: a grid-former last told FORM may form the instant the PCC opens.
    told: dict[str, ChargerMode] = field(default_factory=dict)
    # Chargers read at least once since this controller started: one never heard may be
    # told anything by the controller that ran before it (a restart after a kill).
    heard: set[str] = field(default_factory=set)
    active_alarms: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GuardContext:
    snap: Snapshot
    now_s: float
    config: SiteConfig
    memory: Memory


Guard = Callable[[GuardContext], str | None]


# --------------------------------------------------------------------------- field facts
def nominal_v(ctx: GuardContext) -> float:
    return ctx.config.grid.nominal_voltage_v


def grid_reading(snap: Snapshot) -> GridReading | None:
    """The grid as measured: the meter, or the breaker's grid-side sensing when the meter
    is silent. None when both are silent: nothing can tell (an alarm, not an outage)."""
    if snap.grid is not None:
        return snap.grid
    pcc = snap.pcc
    if pcc is None:
        return None
    return GridReading(pcc.grid_voltage_v, pcc.grid_frequency_hz, 0.0)


def grid_state(ctx: GuardContext) -> bool | None:
    """Whether the grid is inside the enter-service window (see `grid_reading`): the site may
    go back to it. None when meter and breaker are both silent. Not the trip setting: a
    connected site rides through anything short of a must-trip point (`g_grid_lost`)."""
    reading = grid_reading(ctx.snap)
    return None if reading is None else grid_healthy(reading, ctx.config.grid)


def grid_connectable(ctx: GuardContext) -> bool:
    """At a restart with the PCC closed: the grid is known, not dead and past no must-trip
    point, so the site stays on it (the trip timers run from now)."""
    reading = grid_reading(ctx.snap)
    return (
        reading is not None
        and not grid_dead(ctx)
        and within_trip_limits(reading, trip_points(ctx.config.grid), nominal_v(ctx))
    )


def grid_ok(ctx: GuardContext) -> bool:
    """The grid is known healthy (see `grid_state`)."""
    return grid_state(ctx) is True


def grid_riding(ctx: GuardContext) -> bool:
    """A connected site may stay on this grid: seen, not dead, no must-trip point cleared
    (inside the trip table, whether or not inside the enter-service window)."""
    return grid_reading(ctx.snap) is not None and not grid_dead(ctx) and not ctx.memory.trip_reason


def pcc_position(ctx: GuardContext) -> BreakerPosition | None:
    return None if ctx.snap.pcc is None else ctx.snap.pcc.position


def bus_state(ctx: GuardContext) -> bool | None:
    """Whether the site bus is live, as far as a device that answered can tell.

    The breaker's bus-side sensing first; when it is silent, the AC side of every
    charger that answers (each sits on the site bus). None when nothing that answered
    can tell: unknown is not dead, and never the reason for a black start.
    """
    limit = BUS_LIVE_PU * nominal_v(ctx)
    if ctx.snap.pcc is not None:
        return ctx.snap.pcc.bus_voltage_v >= limit
    answering = [v for v in ctx.snap.vehicles if v.available]
    if not answering:
        return None
    return any(v.bus_voltage_v >= limit for v in answering)


def bus_live(ctx: GuardContext) -> bool:
    """The site bus is known live (see `bus_state`)."""
    return bus_state(ctx) is True


def bus_dead(ctx: GuardContext) -> bool:
    """The site bus is known dead: a device that answered says so."""
    return bus_state(ctx) is False


def forming_vehicle(ctx: GuardContext) -> VehicleState | None:
    for v in ctx.snap.vehicles:
        if v.available and v.state is ChargerState.FORMING:
            return v
    return None


def former_state(ctx: GuardContext) -> VehicleState | None:
    if ctx.memory.former_id is None:
        return None
    try:
        return ctx.snap.vehicle(ctx.memory.former_id)
    except KeyError:
        return None


def usable_vehicles(ctx: GuardContext) -> list[VehicleState]:
    return [v for v in ctx.snap.vehicles if can_discharge(v, ctx.config.dispatch)]


def running_vehicles(ctx: GuardContext) -> list[VehicleState]:
    """Vehicles actually part of the island now: the former and followers that are running."""
    out = []
    for v in ctx.snap.vehicles:
        if not v.available or not v.plugged:
            continue
        if v.state is ChargerState.FORMING or (
            v.mode is ChargerMode.FOLLOW
            and v.state in (ChargerState.IDLE, ChargerState.DISCHARGING, ChargerState.CHARGING)
        ):
            out.append(v)
    return out


def bus_loads(snap: Snapshot) -> list[LoadState]:
    return [load for load in snap.loads if load.supply == "bus"]


class Circuits:
    """A snapshot's loads by supply circuit ("bus" or a V2L outlet's id).

    `rated` is a circuit as a dead supply will see it: every load that is on drawing
    its rating (nothing measures while the circuit is dark). Both are worked out once
    per load tuple; the controller hands over the same tuple while the loads are steady.
    """

    def __init__(self, loads: tuple[LoadState, ...]) -> None:
        self.loads = loads
        self._by_supply: dict[str, tuple[LoadState, ...]] = {}
        for load in loads:
            self._by_supply[load.supply] = (*self._by_supply.get(load.supply, ()), load)
        self._rated: dict[str, tuple[LoadState, ...]] = {}

    def of(self, supply: str) -> tuple[LoadState, ...]:
        return self._by_supply.get(supply, ())

    def rated(self, supply: str) -> tuple[LoadState, ...]:
        rated = self._rated.get(supply)
        if rated is None:
            rated = tuple(
                [
                    replace(load, power_w=load.rated_power_w if load.relay_on else 0.0)
                    for load in self.of(supply)
                ]
            )
            self._rated[supply] = rated
        return rated


def mode_tier_cap(mode: Mode) -> Tier:
    """The lowest tier a mode lets stay on, whatever the energy: emergency carries
    life-safety only (the island cannot carry the critical tier), every other mode all."""
    return Tier.LIFE_SAFETY if mode is Mode.EMERGENCY else Tier.COMFORT


def island_tier_cap(mode: Mode, energy_cap: Tier) -> Tier:
    """The island's tier limit: the stricter of the mode's and the endurance policy's."""
    return min(mode_tier_cap(mode), energy_cap)


@dataclass(frozen=True)
class CircuitEnergy:
    """The endurance policy's view of one supply circuit this cycle, as published.

    `applied` is the tier limit the loads were planned against (the energy cap raised by
    the loads kept on, and for the bus capped by the mode), None when the circuit does
    not run on its cars' energy now (the bus on the grid; a V2L circuit whose outlet is
    off): the figures are then what it would be.
    """

    cap: EnergyCap
    applied: Tier | None


def critical_need_w(ctx: GuardContext) -> float:
    wanted = [load for load in bus_loads(ctx.snap) if load.load_id not in ctx.memory.locked_off]
    return tier_power_w(wanted, (Tier.LIFE_SAFETY, Tier.CRITICAL))


def potential_supply_w(ctx: GuardContext) -> float:
    """What the island could carry with every usable vehicle running (followers included)."""
    return supply_capacity_w(usable_vehicles(ctx), ctx.snap.pv, ctx.config.dispatch)


def available_former(ctx: GuardContext) -> str | None:
    exclude = frozenset(
        cid for cid, t in ctx.memory.failed_formers.items() if ctx.now_s - t < FORMER_RETRY_S
    )
    local = local_former_id(ctx.config)
    if local is not None:
        # It forms by itself once the PCC is open and the bus dead, whatever we choose: while
        # it is able, it is the former, and no other is ever told to form beside it.
        mine = [v for v in ctx.snap.vehicles if v.charger_id == local]
        chosen = choose_former(mine, ctx.config.dispatch, exclude)
        if chosen is not None:
            return chosen
        exclude = exclude | {local}
    return choose_former(ctx.snap.vehicles, ctx.config.dispatch, exclude)


def local_former_id(config: SiteConfig) -> str | None:
    """The OCPP station that forms by its own local configuration, if the site has one
    (check-config allows one at most)."""
    for name, device in config.devices.items():
        if device.local_former:
            return name
    return None


_NEVER_SWITCHED = LoadTimes(None, None)
_MODE_OF: dict[str, Mode] = {mode.value: mode for mode in Mode}
"""A state name of the machine -> its Mode (`SiteModes.mode`)."""


def formers_told_form(
    ctx: GuardContext, *, just_closed: bool
) -> tuple[tuple[str, ...], float, bool]:
    """Grid-formers with a PCC interlock that may still be told FORM on the grid, what
    those read told FORM can carry [W] (their ratings), and whether one of them is silent
    (it cannot be told anything, so no write can order the restores behind its FOLLOW).

    The interlock holds such a former to following while the PCC is closed and lets it
    form the instant it opens, under whatever the bus then carries: before its FOLLOW has
    landed (or when it refuses it), a grid loss, with a controller too slow or gone to shed
    in time, is an island of the whole bus on one car. A silent one counts as it was last
    read; one not heard since this controller started counts too (unknown is unsafe: the
    controller before a restart may have told it FORM and been killed before its FOLLOW);
    one whose station does not say counts only `just_closed` (it was the island's former
    moments ago)."""
    ids: list[str] = []
    capacity = 0.0
    unheard = False
    for v in ctx.snap.vehicles:
        if v.available:
            if not v.pcc_interlock:
                continue
            told = v.told_mode
        else:
            device = ctx.config.devices.get(v.charger_id)
            if device is None or not (device.can_form and device.pcc_interlock):
                continue
            told = ctx.memory.told.get(v.charger_id)
            if told is None and v.charger_id not in ctx.memory.heard:
                told = ChargerMode.FORM  # never heard since the start: may be told anything
        if told is ChargerMode.FORM or (told is None and just_closed):
            ids.append(v.charger_id)
            unheard = unheard or not v.available
            if v.available and told is ChargerMode.FORM:
                capacity += v.max_discharge_w
    return tuple(ids), capacity, unheard


def with_bus_loads_estimated(snap: Snapshot, last_draw_w: Mapping[str, float]) -> Snapshot:
    """The snapshot with every on bus load drawing at least what it drew when last seen
    on (its rating if never seen), for cycles whose panel readings are of a dark bus (pure).

    While the bus is dark and for a moment after it is energised again, an on load's
    panel reads 0 W (or a reading asked before the bus came back, which a slow RS-485
    panel answers late): that is not its demand. Restoring or keeping tiers for energy on
    it would switch loads on that the next, real, reading sheds again."""
    out = []
    changed = False
    for load in snap.loads:
        if load.supply == "bus" and load.relay_on and load.available:
            seen = last_draw_w.get(load.load_id, load.rated_power_w)
            measured = load.power_w if math.isfinite(load.power_w) else 0.0
            if seen > measured:
                load = replace(load, power_w=seen)
                changed = True
        out.append(load)
    return replace(snap, loads=tuple(out)) if changed else snap


def with_local_former_state(
    snap: Snapshot, local_id: str, nominal_voltage_v: float, margin_pct: float
) -> Snapshot:
    """The snapshot as the decisions must see the local former (pure).

    Its floor is its own: it forms down to the floor its configuration and its car set
    (its reading's, part of its reserve here), not to that plus our margin, and nothing
    can stop it sooner; so its reserve is shown `margin_pct` lower, and every decision
    that adds the margin lands on its real floor (check-config keeps the owner's reserve
    plus the margin at or below it).

    Shown FORMING when it is: OCPP has no word for it, so it is read from the field. Its
    interlock lets it form only with the PCC open, its configuration only on a dead bus;
    so with the breaker confirmed open, the bus live and no other charger forming, it is
    the bus's source."""
    pcc = snap.pcc
    forming = (
        pcc is not None
        and pcc.position is BreakerPosition.OPEN
        and pcc.bus_voltage_v >= BUS_LIVE_PU * nominal_voltage_v
        and not any(
            v.state is ChargerState.FORMING for v in snap.vehicles if v.charger_id != local_id
        )
    )
    out = []
    for v in snap.vehicles:
        if v.charger_id == local_id and v.available:
            v = replace(v, reserve_soc_pct=max(0.0, v.reserve_soc_pct - margin_pct))
            if forming and v.plugged and v.state is not ChargerState.FAULT:
                v = replace(v, state=ChargerState.FORMING, mode=ChargerMode.FORM)
        out.append(v)
    return replace(snap, vehicles=tuple(out))


# --------------------------------------------------------------------------- guards
def g_field_grid_connected(ctx: GuardContext) -> str | None:
    if pcc_position(ctx) is BreakerPosition.CLOSED and grid_connectable(ctx):
        return "restart: PCC closed and grid inside its must-trip settings"
    return None


def g_field_islanding(ctx: GuardContext) -> str | None:
    if pcc_position(ctx) is BreakerPosition.CLOSED and not grid_connectable(ctx):
        return "restart: PCC closed and grid unknown, dead or beyond a must-trip point"
    if pcc_position(ctx) in (BreakerPosition.TRAVELLING, BreakerPosition.FAULT):
        return "restart: PCC position not confirmed open; opening it"
    return None


def g_field_islanded(ctx: GuardContext) -> str | None:
    former = forming_vehicle(ctx)
    if pcc_position(ctx) is BreakerPosition.OPEN and former is not None and bus_live(ctx):
        return f"restart: PCC open and {former.charger_id} forming a live bus"
    return None


def stale_for_close(ctx: GuardContext) -> bool:
    """The PCC breaker's reading (its synchronisation check) is older than one cycle plus
    the breaker's timeout allows: too old to close on (rule 2; a reading with no age, as
    in a hand-built snapshot, is judged by the check alone)."""
    grid = ctx.config.grid
    age = ctx.snap.age_s(grid.pcc_breaker)
    device = ctx.config.devices.get(grid.pcc_breaker)
    timeout = device.timeout_s if device is not None else 0.0
    return age is not None and age > 2 * ctx.config.site.cycle_period_s + timeout


def g_field_dark(ctx: GuardContext) -> str | None:
    if pcc_position(ctx) is BreakerPosition.OPEN and not (
        forming_vehicle(ctx) is not None and bus_live(ctx)
    ):
        return "restart: PCC open and site bus dead"
    return None


def grid_dead(ctx: GuardContext) -> bool:
    """No grid at all (under half voltage), as the meter or the breaker measured it: no
    ride-through for this. With both silent, a PCC last seen closed puts the grid on the
    site bus, so chargers reading a dead bus say the grid is dead too."""
    dead_v = 0.5 * nominal_v(ctx)
    if ctx.snap.grid is not None:
        return ctx.snap.grid.voltage_v < dead_v
    if ctx.snap.pcc is not None:
        return ctx.snap.pcc.grid_voltage_v < dead_v
    return bus_dead(ctx)


def g_grid_lost(ctx: GuardContext) -> str | None:
    """The grid is known lost: dead (at once), or beyond a must-trip point for its clearing
    time (`policies.grid.evaluate_trip`, run in `SiteModes.step`); anything short of that
    is ridden through. Losing sight of it (meter and breaker silent on a live bus) is an
    alarm, not an outage: opening a healthy connection would cut the site."""
    state = grid_state(ctx)
    if state is True:
        return None
    grid = ctx.snap.grid
    if grid_dead(ctx):
        if state is None:
            return "grid lost: meter and breaker silent, chargers read a dead site bus"
        volts = grid.voltage_v if grid is not None else 0.0
        return f"grid lost: {volts:.0f} V"
    if state is None:
        return None
    return ctx.memory.trip_reason or None


def g_grid_back_pcc_closed(ctx: GuardContext) -> str | None:
    """Islanding, but the PCC never opened (it failed to) and the grid is healthy again:
    the site is still on the grid, so go back to it. Only once the open command has had
    its operate time, so that a breaker about to open is not mistaken for a stuck one."""
    if pcc_position(ctx) is not BreakerPosition.CLOSED or not grid_ok(ctx):
        return None
    memory = ctx.memory
    grid = ctx.config.grid
    if memory.pcc_command_s is not None and (
        ctx.now_s - memory.pcc_command_s < grid.breaker_operate_timeout_s
    ):
        return None
    since = memory.grid_healthy_since_s
    if since is None or ctx.now_s - since < GRID_BACK_CONFIRM_S:
        return None
    return (
        f"grid inside the enter-service window again for {GRID_BACK_CONFIRM_S:.2f} s and"
        " the PCC never opened: back on the grid"
    )


def g_pcc_opened_unexpectedly(ctx: GuardContext) -> str | None:
    if pcc_position(ctx) is BreakerPosition.OPEN:
        return "PCC found open while grid-connected (opened by hand or tripped)"
    return None


PLANNED_REQUEST_TTL_S = 5.0  # a planned-island request that cannot start by then is dropped


def g_planned_island(ctx: GuardContext) -> str | None:
    memory = ctx.memory
    if not memory.planned_island_requested:
        return None
    if ctx.now_s - memory.planned_requested_s > PLANNED_REQUEST_TTL_S:
        memory.planned_island_requested = False
        return None
    if available_former(ctx) is not None:
        return "operator requested planned islanding"
    return None


def g_planned_open_failed(ctx: GuardContext) -> str | None:
    """The PCC would not open for a planned island: give up and stay on the grid."""
    memory = ctx.memory
    first_open = memory.planned_open_s
    if first_open is None or pcc_position(ctx) is BreakerPosition.OPEN or not grid_riding(ctx):
        return None
    limit = 3 * ctx.config.grid.breaker_operate_timeout_s
    if ctx.now_s - first_open > limit:
        return f"PCC did not open within {limit:.1f} s; planned islanding abandoned"
    return None


def g_pcc_confirmed_open(ctx: GuardContext) -> str | None:
    if pcc_position(ctx) is BreakerPosition.OPEN:
        return "PCC confirmed open"
    return None


def g_abort_planned(ctx: GuardContext) -> str | None:
    if (
        not ctx.memory.planned_island_requested
        and pcc_position(ctx) is BreakerPosition.CLOSED
        and not ctx.memory.planned_open_sent
    ):
        return "planned islanding cancelled by operator"
    return None


def g_bus_formed(ctx: GuardContext) -> str | None:
    """The island is up. With the breaker silent, our own former forming a live bus (as
    its own and the other chargers' AC sensing says) is enough: the breaker was confirmed
    open to start the black start and nothing has commanded it since."""
    former = former_state(ctx) or forming_vehicle(ctx)
    position = pcc_position(ctx)
    ours = former is not None and former.charger_id == ctx.memory.former_id
    if (
        former is not None
        and former.state is ChargerState.FORMING
        and (position is BreakerPosition.OPEN or (position is None and ours))
        and bus_live(ctx)
    ):
        return f"bus energised by {former.charger_id}"
    if (
        ctx.memory.form_sent_s is not None
        and former_silent(ctx)
        and position is BreakerPosition.OPEN
        and bus_live(ctx)
    ):
        # told to form, now silent, and the breaker sees the bus live: the island is up
        # (islanded then holds it as it is until the former answers)
        return f"bus energised, {ctx.memory.former_id} not answering"
    return None


def g_pcc_not_open(ctx: GuardContext) -> str | None:
    """The breaker reports itself not open. A silent breaker is not a reason to tear down a
    working island (it was confirmed open and nobody closed it); it is alarmed instead."""
    position = pcc_position(ctx)
    if position is not None and position is not BreakerPosition.OPEN:
        return f"PCC not open: {position.name.lower()}"
    return None


def g_no_former(ctx: GuardContext) -> str | None:
    if ctx.memory.former_id is None and available_former(ctx) is None:
        return "no vehicle able to form the grid above its reserve"
    return None


def g_former_lost(ctx: GuardContext) -> str | None:
    """The island lost its voltage source. A former that merely stops answering while the
    bus stays live is still forming: starting another one would put two sources on one bus."""
    former = former_state(ctx)
    if ctx.memory.former_id is None:
        return None
    if former is None or not former.available:
        # Silent: only a device that answered and says the bus is dead makes it lost.
        if bus_dead(ctx):
            return f"grid-former {ctx.memory.former_id} not answering and site bus dead"
        return None
    if former.state is not ChargerState.FORMING:
        return f"grid-former {former.charger_id} stopped forming ({former.state.name.lower()})"
    if bus_dead(ctx):
        return "site bus dead"
    # Hand over before the former reaches the SoC at which its charger stops it (its
    # MIN_SOC, reserve plus margin): there it would drop the island with every load on.
    # Not a local former: nothing can stop it, so it hands over by stopping itself at its
    # own configured floor (never below any reserve at it: check-config), and the dark bus
    # starts the next former.
    floor = discharge_floor_pct(former, ctx.config.dispatch) + HANDOVER_SOC_PCT
    if former.soc_pct <= floor and former.charger_id != local_former_id(ctx.config):
        other = choose_former(
            ctx.snap.vehicles, ctx.config.dispatch, frozenset({former.charger_id})
        )
        if other is not None:
            return (
                f"grid-former {former.charger_id} at its reserve ({former.soc_pct:.1f} %);"
                f" black start on {other}"
            )
    return None


def g_former_leaving(ctx: GuardContext) -> str | None:
    """The grid-former's driver leaves within `dispatch.leave_notice_s`: black start on
    another former now, while it still forms (a brief dark interval), so that it can be
    wound down and unplugged giving nothing. Fired as `former_lost`: the leaving car is
    then not retried as a former, and is not chosen again while it is due to leave
    (`policies.leaving.may_start_forming`). With no other former it keeps forming (the
    supervisor raises `former_leaving`)."""
    former = former_state(ctx)
    if former is None or not former.available or former.state is not ChargerState.FORMING:
        return None
    if former.charger_id == local_former_id(ctx.config):
        return None  # it cannot be stopped: its car leaves when it has stopped it itself
    leave_in = former.leave_in_s
    if leave_in is None or leave_in > ctx.config.dispatch.leave_notice_s:
        return None
    other = choose_former(ctx.snap.vehicles, ctx.config.dispatch, frozenset({former.charger_id}))
    if other is None:
        return None
    return (
        f"grid-former {former.charger_id} ({former.vehicle_id}) leaves in {max(leave_in, 0):.0f} s;"
        f" black start on {other} before it does"
    )


def former_silent(ctx: GuardContext) -> bool:
    """The island has a grid-former that is not answering (its state is unknown)."""
    if ctx.memory.former_id is None:
        return False
    former = former_state(ctx)
    return former is None or not former.available


def g_shortfall(ctx: GuardContext) -> str | None:
    """The island cannot carry life-safety plus critical loads (operator-locked ones aside).

    Not while the former is silent: what it can still give is unknown, and emergency
    would shed every load it may well be carrying."""
    if former_silent(ctx):
        return None
    need = critical_need_w(ctx) + ctx.config.dispatch.shed_margin_w
    supply = potential_supply_w(ctx)
    if supply < need:
        return f"supply {supply / 1000:.1f} kW cannot carry the critical tier {need / 1000:.1f} kW"
    return None


def g_supply_recovered(ctx: GuardContext) -> str | None:
    since = ctx.memory.supply_ok_since_s
    if since is not None and ctx.now_s - since >= ctx.config.dispatch.emergency_exit_delay_s:
        return (
            f"supply {potential_supply_w(ctx) / 1000:.1f} kW has carried the critical tier"
            f" for {ctx.config.dispatch.emergency_exit_delay_s:.0f} s"
        )
    return None


def g_dark_and_former_available(ctx: GuardContext) -> str | None:
    if ctx.memory.former_id is None and not bus_live(ctx):
        former = available_former(ctx)
        if former is not None and pcc_position(ctx) is BreakerPosition.OPEN:
            return f"site dark and {former} can form the grid"
    return None


def g_grid_returned(ctx: GuardContext) -> str | None:
    if ctx.now_s < ctx.memory.resync_blocked_until_s:
        return None
    if ctx.memory.hold_island and not ctx.memory.reconnect_requested:
        return None
    if ready_for_return(ctx.memory.grid_healthy_since_s, ctx.now_s, ctx.config.grid):
        return (
            f"grid healthy for {ctx.config.grid.return_to_service_s:.0f} s"
            " (return-to-service delay)"
        )
    return None


def g_resync_former_lost(ctx: GuardContext) -> str | None:
    """While resynchronising a live island, losing its former is a black start, not a close."""
    if ctx.memory.pcc_command is BreakerCommand.CLOSE:
        position = pcc_position(ctx)
        if position in (BreakerPosition.TRAVELLING, BreakerPosition.CLOSED):
            return None
        if position is None and not bus_dead(ctx):
            # Silent right after the close: it may have closed, and an interlocked former
            # then follows the grid. Unknown is not lost (safety rule 5): only a bus known
            # dead is.
            return None
    return g_former_lost(ctx)


def resync_blocked(ctx: GuardContext) -> str | None:
    """Why the island may not take a step towards the grid this cycle (None: it may).

    Every step of a reconnection acts on what the breaker says: a break-before-make close
    stops the island's only grid-former because the close that follows re-energises the
    bus from the grid. A silent breaker's position is unknown (safety rule 5), and
    nothing is written to it (`SiteModes._pcc`), so that close can never come: stopping
    the former would only black out the site (the OCPP site fuzzer found it, with a
    breaker silenced and stuck before a resync). While it is silent the island keeps
    forming and waits; the resynchronisation times out into islanded and retries.
    """
    if pcc_position(ctx) is None:
        return (
            "not reconnecting while the PCC breaker is silent: its position is unknown"
            " and it cannot be commanded to close"
        )
    silent = [v.charger_id for v in ctx.snap.vehicles if v.can_form and not v.available]
    if silent:
        # Once closed, every grid-former must be told to follow the grid; one that is not
        # answering could keep forming in parallel with the grid and back-feed it when
        # the grid next fails. Close only when every one of them can be commanded.
        return f"not reconnecting while {', '.join(silent)} cannot be commanded"
    return None


def g_pcc_closed(ctx: GuardContext) -> str | None:
    if pcc_position(ctx) is BreakerPosition.CLOSED:
        return "PCC confirmed closed onto a healthy grid"
    return None


def g_abort_resync(ctx: GuardContext) -> str | None:
    if pcc_position(ctx) is BreakerPosition.CLOSED:
        return None
    if grid_state(ctx) is False:
        # Known unhealthy. Unknown (meter and breaker both silent for a moment) holds:
        # it restarts the return-to-service clock, so nothing closes on it, and the
        # synchronisation timeout ends a silence that lasts (safety rule 5).
        return "grid unhealthy again during resynchronisation"
    if ctx.now_s - ctx.memory.mode_since_s > ctx.config.sync.timeout_s:
        return f"no synchronism within {ctx.config.sync.timeout_s:.0f} s"
    return None


def g_abort_dark_resync(ctx: GuardContext) -> str | None:
    """A break-before-make reconnection that fails leaves the site dark: black start."""
    if not ctx.memory.resync_dark:
        return None
    return g_abort_resync(ctx)


# (trigger, source, dest, guard), tried in this order for the current state
TRANSITIONS: tuple[tuple[str, Mode, Mode, Guard], ...] = (
    ("field_islanding", Mode.STARTING, Mode.ISLANDING, g_field_islanding),
    ("field_grid_connected", Mode.STARTING, Mode.GRID_CONNECTED, g_field_grid_connected),
    ("field_islanded", Mode.STARTING, Mode.ISLANDED, g_field_islanded),
    ("field_dark", Mode.STARTING, Mode.BLACK_START, g_field_dark),
    ("grid_lost", Mode.GRID_CONNECTED, Mode.ISLANDING, g_grid_lost),
    ("pcc_opened", Mode.GRID_CONNECTED, Mode.BLACK_START, g_pcc_opened_unexpectedly),
    ("planned_island", Mode.GRID_CONNECTED, Mode.PLANNED_ISLANDING, g_planned_island),
    ("grid_lost", Mode.PLANNED_ISLANDING, Mode.ISLANDING, g_grid_lost),
    ("pcc_open", Mode.PLANNED_ISLANDING, Mode.BLACK_START, g_pcc_confirmed_open),
    ("cancel", Mode.PLANNED_ISLANDING, Mode.GRID_CONNECTED, g_abort_planned),
    ("open_failed", Mode.PLANNED_ISLANDING, Mode.GRID_CONNECTED, g_planned_open_failed),
    ("pcc_open", Mode.ISLANDING, Mode.BLACK_START, g_pcc_confirmed_open),
    ("grid_back", Mode.ISLANDING, Mode.GRID_CONNECTED, g_grid_back_pcc_closed),
    ("pcc_not_open", Mode.BLACK_START, Mode.ISLANDING, g_pcc_not_open),
    ("bus_formed", Mode.BLACK_START, Mode.ISLANDED, g_bus_formed),
    ("no_former", Mode.BLACK_START, Mode.EMERGENCY, g_no_former),
    ("pcc_not_open", Mode.ISLANDED, Mode.ISLANDING, g_pcc_not_open),
    ("former_lost", Mode.ISLANDED, Mode.BLACK_START, g_former_lost),
    ("former_lost", Mode.ISLANDED, Mode.BLACK_START, g_former_leaving),
    ("shortfall", Mode.ISLANDED, Mode.EMERGENCY, g_shortfall),
    ("grid_returned", Mode.ISLANDED, Mode.RESYNCHRONISING, g_grid_returned),
    ("pcc_not_open", Mode.EMERGENCY, Mode.ISLANDING, g_pcc_not_open),
    ("former_lost", Mode.EMERGENCY, Mode.BLACK_START, g_former_lost),
    ("former_lost", Mode.EMERGENCY, Mode.BLACK_START, g_former_leaving),
    ("black_start", Mode.EMERGENCY, Mode.BLACK_START, g_dark_and_former_available),
    ("supply_recovered", Mode.EMERGENCY, Mode.ISLANDED, g_supply_recovered),
    ("grid_returned", Mode.EMERGENCY, Mode.RESYNCHRONISING, g_grid_returned),
    ("pcc_closed", Mode.RESYNCHRONISING, Mode.GRID_CONNECTED, g_pcc_closed),
    ("former_lost", Mode.RESYNCHRONISING, Mode.BLACK_START, g_resync_former_lost),
    ("abort_resync", Mode.RESYNCHRONISING, Mode.BLACK_START, g_abort_dark_resync),
    ("abort_resync", Mode.RESYNCHRONISING, Mode.ISLANDED, g_abort_resync),
)


_BY_SOURCE: dict[Mode, tuple[tuple[str, Guard], ...]] = {
    mode: tuple((trigger, guard) for trigger, source, _, guard in TRANSITIONS if source is mode)
    for mode in Mode
}


def _load_shape(loads: tuple[LoadState, ...]) -> tuple[tuple[str, bool, bool], ...]:
    """What of a circuit's loads the endurance policy's memo watches: which are on, which
    answer (not what they draw this cycle)."""
    return tuple([(load.load_id, load.relay_on, load.available) for load in loads])


@dataclass(frozen=True)
class _EnergyMemo:
    """One circuit's last endurance answer and what it was worked out from."""

    at_s: float
    apply: bool
    mode: Mode
    sources: object
    locked_off: frozenset[str]
    kept_on: frozenset[str]
    loads: tuple[LoadState, ...]
    shape: tuple[tuple[str, bool, bool], ...]
    energy: CircuitEnergy
    tier: Tier
    estimated: bool  # worked out on estimated bus draws (`with_bus_loads_estimated`)


class SiteModes:
    """The decision core: one `step` per control cycle; no I/O, clock passed in."""

    state: str  # set by transitions.Machine
    trigger: Callable[..., bool]  # set by transitions.Machine

    def __init__(self, config: SiteConfig, *, now_s: float, memory: Memory | None = None) -> None:
        self.config = config
        self.memory = memory or Memory(mode_since_s=now_s)
        self._local_former = local_former_id(config)
        # We close well inside the synchronism window: the reading is up to a cycle old
        # and the command takes up to another cycle to reach the breaker, so the angle
        # is predicted that much further ahead and only half the phase window is used.
        self._min_off_s = {load.id: load.min_off_s for load in config.loads}
        self.trip_points = trip_points(config.grid)
        self._close_check = close_check_section(config.sync, config.site.cycle_period_s)
        self._ctx: GuardContext | None = None
        self._circuits_cache: Circuits | None = None
        self._reason = ""
        self._transitions: list[Transition] = []
        self._alarms: list[AlarmChange] = []
        self._notes: list[str] = []
        self._energy: dict[str, CircuitEnergy] = {}
        self._targets_h = config.dispatch.tier_targets_h()
        self._stairs_h = staircase_h(self._targets_h, config.dispatch.endurance_hysteresis_h)
        self._demand_cache: dict[str, tuple[tuple[LoadState, ...], frozenset[str], Any]] = {}
        self._limits_cache: dict[str, tuple[tuple[float, Tier | None], Thresholds]] = {}
        self._draws_seen: tuple[LoadState, ...] | None = None
        self._energy_memo: dict[str, _EnergyMemo] = {}
        self._source_signatures: (
            tuple[Snapshot, tuple[object, ...], dict[str, tuple[object, ...]]] | None
        ) = None
        self._bus_energy: tuple[tuple[VehicleState, ...], float, float] | None = None
        # A load tuple and the relays wished for it that agreed (`_remember_switching`).
        self._switches_agreed: tuple[tuple[LoadState, ...], dict[str, bool]] | None = None
        # The last inputs of `secure_shares` and its answer (`_secure_shares`).
        self._shares_memo: tuple[tuple[Any, ...], dict[str, float]] | None = None
        self._commands: dict[str, ChargerCommand] = {}  # see `_command`
        # Per circuit: the load tuple, limits and plan of a steady circuit (`_plan_holds`).
        self._plan_memo: dict[
            str, tuple[Sequence[LoadState], tuple[object, ...], LoadPlan]
        ] = {}
        self._estimating = False  # this cycle sees the bus loads' draws estimated
        self._vehicle_energy: dict[str, float] = {}  # last reported, by charger
        self._silent_since: dict[str, float] = {}
        self._draws_settling = False
        self.machine = Machine(
            model=self,
            states=[m.value for m in Mode],
            initial=Mode.STARTING.value,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=True,
            after_state_change="_after_transition",
        )
        for trigger, source, dest, guard in TRANSITIONS:
            self.machine.add_transition(
                trigger, source.value, dest.value, conditions=[self._wrap(guard)]
            )
        for mode in Mode:
            self.machine.get_state(mode.value).add_callback("enter", "_on_enter")

    # -------------------------------------------------------------- machinery
    @property
    def mode(self) -> Mode:
        # A dict lookup, not Mode(...): the enum's call costs as much as a guard, and
        # the mode is asked for many times per cycle.
        return _MODE_OF[self.state]

    def _wrap(self, guard: Guard) -> Callable[[EventData], bool]:
        def condition(_event: EventData) -> bool:
            assert self._ctx is not None
            reason = guard(self._ctx)
            if reason is None:
                return False
            self._reason = reason
            return True

        return condition

    def _after_transition(self, event: EventData) -> None:
        assert self._ctx is not None and event.transition is not None
        self._transitions.append(
            Transition(
                time_s=self._ctx.now_s,
                source=str(event.transition.source),
                dest=str(event.transition.dest),
                trigger=event.event.name,
                reason=self._reason,
            )
        )

    def _on_enter(self, event: EventData) -> None:
        assert self._ctx is not None
        memory = self.memory
        now = self._ctx.now_s
        memory.mode_since_s = now
        closed_dark = memory.resync_dark
        memory.resync_dark = False
        dest = Mode(self.state)
        source_mode = source_name(event)
        if (dest is Mode.ISLANDED and source_mode == Mode.BLACK_START.value) or (
            dest is Mode.GRID_CONNECTED and event.event.name == "pcc_closed" and closed_dark
        ):
            memory.bus_energised_s = now
        if dest is Mode.ISLANDING:
            memory.former_id = None
            memory.hold_island = False
            self._reset_planned()
        elif dest is Mode.BLACK_START:
            memory.form_sent_s = None
            if event.event.name in ("pcc_opened", "pcc_open") and source_name(event) in (
                Mode.GRID_CONNECTED.value,
                Mode.PLANNED_ISLANDING.value,
            ):
                # Islanded on purpose (planned, or the PCC opened by hand): stay islanded
                # until an operator asks to reconnect.
                memory.hold_island = True
            self._reset_planned()
            lost = memory.former_id
            if lost is not None and event.event.name == "former_lost":
                memory.failed_formers[lost] = now
                self._alarm(
                    "former_lost", True, "warning", f"grid-former {lost} lost: {self._reason}"
                )
            memory.former_id = None
        elif dest is Mode.ISLANDED:
            if memory.former_id is None:
                former = forming_vehicle(self._ctx)
                memory.former_id = None if former is None else former.charger_id
            self._reset_planned()
        elif dest is Mode.EMERGENCY:
            memory.supply_ok_since_s = None
            self._alarm("emergency", True, "critical", f"emergency mode: {self._reason}")
        elif dest is Mode.RESYNCHRONISING:
            memory.reconnect_requested = False
            memory.breaker_probe_s = None
        elif dest is Mode.GRID_CONNECTED:
            memory.former_id = None
            memory.hold_island = False
            # An old command is never carried into grid-connected: a breaker freed later
            # must not open a healthy grid connection on a retry of it.
            memory.pcc_command, memory.pcc_command_s = BreakerCommand.NONE, None
            memory.reconnect_requested = False
            if event.event.name == "open_failed":
                self._alarm("pcc_fail_to_open", True, "critical", self._reason)
            self._reset_planned()
            if event.event.name == "pcc_closed":
                memory.ramp_down_from_s = now
                memory.ramp_start_w = {
                    v.charger_id: max(0.0, v.power_w) for v in self._ctx.snap.vehicles
                }
            self._alarm("former_lost", False)
        position = pcc_position(self._ctx)
        if position is BreakerPosition.OPEN:
            self._alarm("pcc_fail_to_open", False)  # it did open in the end
        elif position is BreakerPosition.CLOSED:
            self._alarm("pcc_fail_to_close", False)
        if dest is not Mode.BLACK_START:
            self._alarm("bus_live_unknown_source", False)
            self._alarm("black_start_blocked", False)
        source = Mode(str(event.transition.source)) if event.transition else None
        if source is Mode.EMERGENCY and dest is not Mode.EMERGENCY:
            self._alarm("emergency", False)
        if source is Mode.RESYNCHRONISING and event.event.name == "abort_resync":
            memory.resync_blocked_until_s = now + RESYNC_RETRY_S
            self._alarm(
                "resync_failed", True, "warning", f"resynchronisation abandoned: {self._reason}"
            )
        if dest is Mode.GRID_CONNECTED:
            self._alarm("resync_failed", False)
        if dest is not Mode.RESYNCHRONISING:
            self._alarm("resync_blocked", False)
        if dest is not Mode.GRID_CONNECTED:
            self._alarm("former_not_following", False)  # forming is its job now
        if dest is not Mode.ISLANDING:
            self._alarm("pcc_open_held", False)

    def _reset_planned(self) -> None:
        self.memory.planned_island_requested = False
        self.memory.planned_open_sent = False
        self.memory.planned_open_s = None

    def _alarm(self, code: str, raised: bool, severity: str = "warning", message: str = "") -> None:
        active = code in self.memory.active_alarms
        if raised and not active:
            self.memory.active_alarms[code] = message
            self._alarms.append(AlarmChange(code, True, severity, message))
        elif not raised and active:
            del self.memory.active_alarms[code]
            self._alarms.append(AlarmChange(code, False))

    # -------------------------------------------------------------- operator commands
    def request_planned_island(self) -> str:
        if self.mode is not Mode.GRID_CONNECTED:
            return f"refused: planned islanding starts from grid_connected, not {self.mode}"
        if self._ctx is None or available_former(self._ctx) is None:
            return "refused: no vehicle able to form the grid above its reserve"
        self.memory.planned_island_requested = True
        self.memory.planned_requested_s = self._ctx.now_s
        return "accepted"

    def request_reconnect(self) -> str:
        if self.mode is Mode.PLANNED_ISLANDING and not self.memory.planned_open_sent:
            self.memory.planned_island_requested = False
            return "accepted: planned islanding cancelled"
        if self.mode in (Mode.ISLANDED, Mode.EMERGENCY):
            self.memory.reconnect_requested = True
            self.memory.hold_island = False
            self.memory.resync_blocked_until_s = 0.0
            return "accepted: reconnects after the grid is healthy for the return-to-service delay"
        return f"refused: nothing to reconnect in {self.mode}"

    def shed_load(self, load_id: str) -> str:
        if load_id not in {load.id for load in self.config.loads}:
            return f"refused: unknown load {load_id!r}"
        self.memory.locked_off.add(load_id)
        self.memory.kept_on.discard(load_id)
        return "accepted"

    def keep_load_on(self, load_id: str) -> str:
        """Keep a load on against the endurance policy (never against the power balance,
        which still sheds it to keep the island up), until the grid returns. Every load
        of a higher tier on its circuit then stays on too (safety rule 4)."""
        if load_id not in {load.id for load in self.config.loads}:
            return f"refused: unknown load {load_id!r}"
        if load_id in self.memory.locked_off:
            return f"refused: {load_id} is locked off by an operator; restore it first"
        self.memory.kept_on.add(load_id)
        return (
            "accepted: kept on against the endurance policy until the grid returns (higher"
            " tiers on its circuit stay on with it; an overload still sheds it)"
        )

    def follow_policy(self, load_id: str) -> str:
        """Undo `keep_load_on`: the load follows the endurance policy again."""
        if load_id not in {load.id for load in self.config.loads}:
            return f"refused: unknown load {load_id!r}"
        if load_id not in self.memory.kept_on:
            return f"refused: {load_id} is not kept on"
        self.memory.kept_on.discard(load_id)
        return "accepted: follows the endurance policy again"

    def restore_load(self, load_id: str) -> str:
        if load_id not in {load.id for load in self.config.loads}:
            return f"refused: unknown load {load_id!r}"
        self.memory.locked_off.discard(load_id)
        return "accepted: restored when supply allows"

    # -------------------------------------------------------------- the cycle
    def step(self, snap: Snapshot) -> Decision:
        if self._local_former is not None:
            snap = with_local_former_state(
                snap,
                self._local_former,
                self.config.grid.nominal_voltage_v,
                self.config.dispatch.reserve_margin_pct,
            )
        now = snap.time_s
        memory = self.memory
        raw = snap
        for v in snap.vehicles:
            if v.available:
                memory.heard.add(v.charger_id)
                if v.told_mode is not None:
                    memory.told[v.charger_id] = v.told_mode
        energised = memory.bus_energised_s
        self._estimating = self.mode in (Mode.ISLANDING, Mode.BLACK_START) or (
            energised is not None and now - energised < UNMEASURED_AFTER_ON_S
        )
        if self._estimating:
            snap = with_bus_loads_estimated(snap, memory.last_draw_w)
        self._ctx = GuardContext(snap, now, self.config, memory)
        self._transitions, self._alarms, self._notes = [], [], []
        self._energy = {}
        reading = grid_reading(snap)
        health = None if reading is None else grid_healthy(reading, self.config.grid)
        # Unknown restarts the return-to-service clock (the grid must be seen healthy for
        # the whole delay) but neither starts nor resets a must-trip timer (nothing was
        # seen, good or bad).
        memory.grid_healthy_since_s = healthy_since(
            memory.grid_healthy_since_s, health is True, now
        )
        verdict = evaluate_trip(
            reading, self.trip_points, self.config.grid.nominal_voltage_v, memory.trip_state, now
        )
        memory.trip_state, memory.trip_reason = verdict.state, verdict.reason
        self._alarm(
            "grid_unknown",
            health is None,
            "warning",
            "grid state unknown: grid meter and PCC breaker both silent (no action taken"
            " on it; check their communications)",
        )
        self._track_supply(self._ctx)
        self._evaluate(self._ctx)
        # A transition changes what the next guards see (e.g. former chosen); one per cycle.
        ctx = GuardContext(snap, now, self.config, memory)
        self._waiting_alarm(ctx, reading)
        outputs = self._outputs(ctx)
        silent = former_silent(ctx) and self.mode in ISLAND_MODES
        self._alarm(
            "former_silent",
            silent,
            "warning",
            f"grid-former {memory.former_id} not answering; the island is held as it is"
            " (no restores) until it answers",
        )
        if "bus" not in self._energy:
            self._energy_cap(ctx, "bus", apply=False)  # the figures, for the status
        self._remember_switching(raw, outputs, now)
        return Decision(
            outputs,
            tuple(self._transitions),
            tuple(self._alarms),
            tuple(self._notes),
            energy=dict(self._energy),
        )

    def _waiting_alarm(self, ctx: GuardContext, reading: GridReading | None) -> None:
        """Islanded with the grid back (live, seen) but outside the enter-service window: say
        once why the site waits, not every cycle; cleared when the grid enters the window,
        goes again, or the site leaves the island. Not while an operator holds the island
        (then the site waits for the operator, not for the grid)."""
        waiting = (
            self.mode in (Mode.ISLANDED, Mode.EMERGENCY)
            and not (self.memory.hold_island and not self.memory.reconnect_requested)
            and reading is not None
            and not grid_dead(ctx)
        )
        why = enter_service_reason(reading, ctx.config.grid) if waiting else None
        if why is None:
            self._alarm(WAITING_ALARM, False)
            return
        if WAITING_ALARM in self.memory.active_alarms:
            return  # said once; /status shows the reason as it is now
        self._alarm(
            WAITING_ALARM,
            True,
            "warning",
            f"grid back but not reconnecting: {why}; the site reconnects once the grid has"
            f" been inside the enter-service window for {ctx.config.grid.return_to_service_s:g} s",
        )

    def _evaluate(self, ctx: GuardContext) -> None:
        # The guards are pure, so they are tried here first and the machine is asked to
        # fire (re-checking the same guard as its condition) only when one holds: a cycle
        # with no transition costs a few function calls, not a pass through transitions.
        for trigger, guard in _BY_SOURCE[self.mode]:
            if guard(ctx) is not None and self.trigger(trigger):
                return

    def _track_supply(self, ctx: GuardContext) -> None:
        if self.mode is not Mode.EMERGENCY:
            self.memory.supply_ok_since_s = None
            return
        need = critical_need_w(ctx) + ctx.config.dispatch.shed_margin_w
        need *= 1 + ctx.config.dispatch.restore_hysteresis_pct / 100
        ok = potential_supply_w(ctx) >= need and (
            bus_live(ctx) or available_former(ctx) is not None
        )
        if not ok:
            self.memory.supply_ok_since_s = None
        elif self.memory.supply_ok_since_s is None:
            self.memory.supply_ok_since_s = ctx.now_s

    def _remember_switching(self, snap: Snapshot, outputs: Outputs, now: float) -> None:
        # What each load draws once settled on (the endurance policy's cost of restoring it
        # when shed); a steady load tuple was seen last cycle, unless a load just went on.
        if snap.loads is not self._draws_seen or self._draws_settling:
            self._remember_draws(snap, now)
        agreed = self._switches_agreed
        if agreed is not None and agreed[0] is snap.loads and agreed[1] == outputs.loads:
            return  # the same loads and wishes as a cycle in which no relay was to switch
        switching = False
        for load in snap.loads:
            want = outputs.loads.get(load.load_id)
            if want is None or want == load.relay_on:
                continue
            switching = True
            times = self.memory.load_times.get(load.load_id, LoadTimes(None, None))
            self.memory.load_times[load.load_id] = (
                replace(times, last_on_s=now) if want else replace(times, last_off_s=now)
            )
        self._switches_agreed = None if switching else (snap.loads, dict(outputs.loads))

    def _remember_draws(self, snap: Snapshot, now: float) -> None:
        draws = self.memory.last_draw_w
        settling = False
        for load in snap.loads:
            if load.available and load.relay_on and math.isfinite(load.power_w):
                times = self.memory.load_times.get(load.load_id)
                if (
                    times is not None
                    and times.last_on_s is not None
                    and now - times.last_on_s < UNMEASURED_AFTER_ON_S
                ):
                    settling = True  # its metering may still read low: look again
                elif load.power_w > 0:
                    draws[load.load_id] = load.power_w
        self._draws_seen = snap.loads
        self._draws_settling = settling

    # -------------------------------------------------------------- outputs per mode
    def _outputs(self, ctx: GuardContext) -> Outputs:
        mode = self.mode
        if mode is Mode.STARTING:
            return Outputs()  # nothing is commanded until the field is known
        outlets, outlet_loads = self._outlets(ctx)
        if mode is Mode.GRID_CONNECTED:
            return self._grid_connected(ctx, outlets, outlet_loads)
        if mode is Mode.PLANNED_ISLANDING:
            return self._planned_islanding(ctx, outlets, outlet_loads)
        if mode is Mode.ISLANDING:
            return self._islanding(ctx, outlets, outlet_loads)
        if mode is Mode.BLACK_START:
            return self._black_start(ctx, outlets, outlet_loads)
        return self._island(ctx, outlets, outlet_loads)

    def _pcc(self, ctx: GuardContext, want: BreakerCommand) -> BreakerCommand:
        """Command the breaker once, and again only after the operate timeout (with an alarm)."""
        memory = self.memory
        position = pcc_position(ctx)
        if position is None:
            return BreakerCommand.NONE  # nothing is written to a silent breaker; its alarm says so
        done = (want is BreakerCommand.OPEN and position is BreakerPosition.OPEN) or (
            want is BreakerCommand.CLOSE and position is BreakerPosition.CLOSED
        )
        code = "pcc_fail_to_open" if want is BreakerCommand.OPEN else "pcc_fail_to_close"
        if done:
            memory.pcc_command, memory.pcc_command_s = BreakerCommand.NONE, None
            self._alarm(code, False)
            return BreakerCommand.NONE
        timeout = ctx.config.grid.breaker_operate_timeout_s
        if memory.pcc_command is want and memory.pcc_command_s is not None:
            if ctx.now_s - memory.pcc_command_s < timeout:
                return BreakerCommand.NONE
            self._alarm(
                code,
                True,
                "critical",
                f"PCC breaker did not {want.name.lower()} within {timeout:.1f} s; retrying",
            )
        memory.pcc_command, memory.pcc_command_s = want, ctx.now_s
        return want

    def _charger_off(self, v: VehicleState) -> ChargerCommand:
        return self._command(v.charger_id, ChargerMode.OFF, min_soc_pct=self._reserve_floor(v))

    def _command(
        self,
        charger_id: str,
        mode: ChargerMode,
        power_setpoint_w: float = 0.0,
        frequency_setpoint_hz: float = 0.0,
        voltage_setpoint_v: float = 0.0,
        min_soc_pct: float = 100.0,
    ) -> ChargerCommand:
        """The command for one charger: last cycle's object when every field is the same.

        A steady site tells each charger the same thing cycle after cycle; handing back the
        same (immutable) object spares building it again, and the write plan recognises it
        by identity."""
        last = self._commands.get(charger_id)
        if (
            last is not None
            and last.mode is mode
            and last.power_setpoint_w == power_setpoint_w
            and last.min_soc_pct == min_soc_pct
            and last.frequency_setpoint_hz == frequency_setpoint_hz
            and last.voltage_setpoint_v == voltage_setpoint_v
        ):
            return last
        command = ChargerCommand(
            mode, power_setpoint_w, frequency_setpoint_hz, voltage_setpoint_v, min_soc_pct
        )
        self._commands[charger_id] = command
        return command

    def _reserve_floor(self, v: VehicleState) -> float:
        return min(100.0, v.reserve_soc_pct + self.config.dispatch.reserve_margin_pct)

    def _plan(
        self,
        ctx: GuardContext,
        loads: Sequence[LoadState],
        supply_w: float,
        circuit: str,
        *,
        max_tier: Tier = Tier.COMFORT,
        max_restores: int = LOAD_RESTORE_PER_CYCLE,
        use_restore_delay: bool = True,
    ) -> LoadPlan:
        locked_off = frozenset(self.memory.locked_off)
        key = (supply_w, max_tier, locked_off, max_restores, use_restore_delay)
        held = self._plan_memo.get(circuit)
        if held is not None and held[0] is loads and held[1] == key:
            return held[2]
        plan = plan_loads(
            loads,
            supply_w,
            self.memory.load_times,
            ctx.now_s,
            ctx.config.dispatch,
            last_shed_s=self.memory.last_shed_s.get(circuit) if use_restore_delay else None,
            max_tier=max_tier,
            locked_off=locked_off,
            max_restores=max_restores,
            min_off_s=self._min_off_s,
        )
        if self._plan_holds(plan, loads, ctx.now_s, locked_off, max_tier):
            self._plan_memo[circuit] = (loads, key, plan)
        else:
            self._plan_memo.pop(circuit, None)
        if plan.shed:
            if use_restore_delay:
                self.memory.last_shed_s[circuit] = ctx.now_s
            self._notes.append(plan.reason)
        elif plan.restored:
            self._notes.append(plan.reason)
        return plan

    def _plan_holds(
        self,
        plan: LoadPlan,
        loads: Sequence[LoadState],
        now: float,
        locked_off: frozenset[str],
        max_tier: Tier,
    ) -> bool:
        """Whether `plan` is the plan of every later cycle that hands over the same load
        tuple and limits: it changes nothing, no load it keeps off is one `plan_loads`
        could restore (every off load is locked off by an operator, above the mode's tier
        or unavailable, all fixed by the tuple and the limits: so no restore delay or
        minimum off time can come due), and no load is inside its just-switched-on window
        (the only other use of the clock in `plan_loads`). A steady circuit is then
        planned once, not every cycle, also while operators keep loads locked off (an
        earthquake's comfort loads: issue 14). `tests/test_plan_memo.py` checks
        the claim against `plan_loads` at later times."""
        if plan.shed or plan.restored:
            return False
        times = self.memory.load_times
        on = plan.on
        for load in loads:
            if (
                not on.get(load.load_id, True)
                and load.available
                and load.load_id not in locked_off
                and load.tier <= max_tier
            ):
                return False  # a restore candidate: its delays run with the clock
            on_s = times.get(load.load_id, _NEVER_SWITCHED).last_on_s
            if on_s is not None and not now - on_s >= UNMEASURED_AFTER_ON_S:
                return False
        return True

    def _energy_cap(self, ctx: GuardContext, circuit: str, *, apply: bool) -> Tier:
        """The endurance policy's tier limit for one supply circuit (`policies.energy`).

        The bus counts the cars on the chargers and the firm share of the PV; a V2L
        circuit counts its own car only. Loads an operator keeps on raise the limit to
        their tier (nothing above a load that stays on is shed for energy). With `apply`
        false (the bus on the grid, an outlet that is off) the figures are worked out
        for the status only: the policy's memory and alarm are left alone and
        COMFORT is returned.
        """
        memory = self.memory
        snap = ctx.snap
        loads = self._circuits(snap).of(circuit)
        # The policy works in hours: its answer is kept for ENERGY_PERIOD_S (a minute's
        # drain is far inside its hysteresis), unless the circuit's loads switch or fall
        # silent, its cars come, go or fall silent, the operators' sheds and keeps, the
        # mode or `apply` change. Draws that drift within a minute do not count.
        signatures = self._source_signatures
        if signatures is None or signatures[0] is not snap:
            signatures = (
                snap,
                tuple(
                    [(v.charger_id, v.vehicle_id, v.plugged, v.available) for v in snap.vehicles]
                ),
                {o.outlet_id: (o.state, o.enabled, o.available) for o in snap.outlets},
            )
            self._source_signatures = signatures
        sources = signatures[1] if circuit == "bus" else signatures[2].get(circuit)
        memo = self._energy_memo.get(circuit)
        if (
            memo is not None
            and ctx.now_s - memo.at_s < ENERGY_PERIOD_S
            and memo.apply == apply
            and memo.mode is self.mode
            and memo.estimated == self._estimating
            and memo.sources == sources
            and memo.locked_off == memory.locked_off
            and memo.kept_on == memory.kept_on
            and (memo.loads is loads or memo.shape == _load_shape(loads))
        ):
            self._energy[circuit] = memo.energy
            return memo.tier
        tier = self._energy_cap_now(ctx, circuit, loads, apply=apply)
        self._energy_memo[circuit] = _EnergyMemo(
            at_s=ctx.now_s,
            apply=apply,
            mode=self.mode,
            sources=sources,
            locked_off=frozenset(memory.locked_off),
            kept_on=frozenset(memory.kept_on),
            loads=loads,
            shape=_load_shape(loads),
            energy=self._energy[circuit],
            tier=tier,
            estimated=self._estimating,
        )
        return tier

    def _energy_cap_now(
        self, ctx: GuardContext, circuit: str, loads: tuple[LoadState, ...], *, apply: bool
    ) -> Tier:
        """`_energy_cap` worked out now."""
        memory = self.memory
        dispatch = ctx.config.dispatch
        snap = ctx.snap
        if circuit == "bus":
            energy = self._bus_energy_wh(snap, ctx.now_s)
            pv = snap.pv
            counted = dispatch.endurance_counts_pv and pv is not None and pv.available
            pv_w = pv.power_w * dispatch.pv_firm_fraction if counted and pv else 0.0
        else:
            outlet = next((o for o in snap.outlets if o.outlet_id == circuit), None)
            energy = energy_above_reserve_wh((), (outlet,)) if outlet is not None else 0.0
            pv_w = 0.0
        previous = memory.energy_tier.get(circuit) if apply else None
        # The demand per tier is worked out once per distinct load tuple: the controller
        # hands over the same tuple while the loads are steady (and a shed load's last
        # draw can only change in a cycle in which it is on, which is another tuple).
        # So are the thresholds, while the firm PV and the last answer stay the same: each
        # cycle then only compares the energy with them.
        pv_w = max(0.0, pv_w)
        cached = self._demand_cache.get(circuit)
        if cached is not None and cached[0] is loads and cached[1] == memory.locked_off:
            demand = cached[2]
        else:
            locked = frozenset(memory.locked_off)
            demand = tiers_w(loads, locked, memory.last_draw_w)
            self._demand_cache[circuit] = (loads, locked, demand)
            self._limits_cache.pop(circuit, None)
        key = (pv_w, previous)
        held = self._limits_cache.get(circuit)
        if held is not None and held[0] == key:
            limits = held[1]
        else:
            hysteresis = dispatch.endurance_hysteresis_h
            limits = thresholds(demand, self._stairs_h, self._targets_h, hysteresis, previous, pv_w)
            self._limits_cache[circuit] = (key, limits)
        cap = allowed_tier(
            energy,
            loads,
            self._targets_h,
            dispatch.endurance_hysteresis_h,
            previous,
            pv_w=pv_w,
            demand_w=demand,
            stairs_h=self._stairs_h,
            limits=limits,
        )
        code = f"endurance_short:{circuit}"
        if not apply:
            if circuit != "bus" or self.mode is Mode.GRID_CONNECTED:
                memory.energy_tier.pop(circuit, None)
                self._alarm(code, False)
            self._energy[circuit] = CircuitEnergy(cap, None)
            return Tier.COMFORT
        if previous is not None and cap.tier != previous:
            if cap.tier < previous:
                going = ", ".join(t.label for t in Tier if cap.tier < t <= previous)
                self._notes.append(
                    f"{circuit}: shed {going} for energy; {cap.reason(Tier(cap.tier + 1))}"
                )
            else:
                self._notes.append(
                    f"{circuit}: energy allows {cap.tier.label} and above again"
                    f" ({_projection_words(cap)})"
                )
        memory.energy_tier[circuit] = cap.tier
        if cap.short is not None and code not in memory.active_alarms:
            carried = math.floor(cap.short_h * 10) / 10
            self._alarm(
                code,
                True,
                "critical",
                f"{circuit}: {cap.short.label} can be carried {carried:.1f} h,"
                f" target {cap.short_target_h:g} h, with every lower tier shed",
            )
        elif cap.short is None and code in memory.active_alarms:
            top = cap.top_tier
            hours = cap.projection_h[top] if top is not None else math.inf
            if top is None or hours >= cap.targets_h[top] + dispatch.endurance_hysteresis_h:
                self._alarm(code, False)
        kept = (
            [
                load
                for load in loads
                if load.load_id in memory.kept_on and load.load_id not in memory.locked_off
            ]
            if memory.kept_on
            else []
        )
        applied = kept_tier(cap.tier, kept)
        if circuit == "bus":
            applied = island_tier_cap(self.mode, applied)
        self._energy[circuit] = CircuitEnergy(cap, applied)
        return kept_tier(cap.tier, kept)

    def _bus_energy_wh(self, snap: Snapshot, now: float) -> float:
        """The energy [Wh] above the reserves of the cars on the chargers, for the policy.

        Unknown is not gone (safety rule 5): a charger that stops answering still counts
        with the energy it last reported for SILENT_ENERGY_GRACE_S, so that a comms hiccup
        does not shed loads for energy (a car that is unplugged, faulted or at its reserve
        counts nothing at once). Worked out once per vehicle tuple and grace expiry.
        """
        seen = self._bus_energy
        if seen is not None and seen[0] is snap.vehicles and now < seen[2]:
            return seen[1]
        known = self._vehicle_energy
        silent = self._silent_since
        total = 0.0
        expires = math.inf
        for v in snap.vehicles:
            if v.available:
                own = energy_above_reserve_wh((v,))
                known[v.charger_id] = own
                silent.pop(v.charger_id, None)
                total += own
                continue
            since = silent.setdefault(v.charger_id, now)
            until = since + SILENT_ENERGY_GRACE_S
            if now < until:
                total += known.get(v.charger_id, 0.0)
                expires = min(expires, until)
        self._bus_energy = (snap.vehicles, total, expires)
        return total

    def _circuits(self, snap: Snapshot) -> Circuits:
        """The snapshot's loads by supply circuit, worked out once per distinct load tuple."""
        if self._circuits_cache is None or self._circuits_cache.loads is not snap.loads:
            self._circuits_cache = Circuits(snap.loads)
        return self._circuits_cache

    def _outlets(self, ctx: GuardContext) -> tuple[dict[str, bool], dict[str, bool]]:
        """V2L circuits are small islands of their own, run the same way in every mode."""
        outlets: dict[str, bool] = {}
        loads: dict[str, bool] = {}
        for outlet in ctx.snap.outlets:
            if not outlet.available:
                # Status quo on a circuit whose outlet cannot be read, but a shed is always
                # safe: an operator's lock-out is still carried out.
                for load in self._circuits(ctx.snap).of(outlet.outlet_id):
                    if load.load_id in self.memory.locked_off and load.available:
                        loads[load.load_id] = False
                continue
            enabled = outlet_enabled(outlet, ctx.config.dispatch)
            outlets[outlet.outlet_id] = enabled
            circuits = self._circuits(ctx.snap)
            supply = outlet.rating_w if enabled else 0.0
            if not enabled or outlet.power_w <= 0:
                circuit = circuits.rated(outlet.outlet_id)
            else:
                circuit = circuits.of(outlet.outlet_id)
            # The circuit lives on its own car: the endurance policy with that car's energy.
            max_tier = self._energy_cap(ctx, outlet.outlet_id, apply=enabled)
            plan = self._plan(ctx, circuit, supply, outlet.outlet_id, max_tier=max_tier)
            loads.update(plan.on)
        return outlets, loads

    def _ramping(self, ctx: GuardContext) -> bool:
        """Within RAMP_DOWN_S of a close onto the grid (the local sources ramping down)."""
        since = self.memory.ramp_down_from_s
        return since is not None and ctx.now_s - since < RAMP_DOWN_S

    def _grid_connected(
        self, ctx: GuardContext, outlets: dict[str, bool], outlet_loads: dict[str, bool]
    ) -> Outputs:
        capacity = ctx.config.grid.connection_kva * 1000
        bus = self._circuits(ctx.snap).of("bus")
        memory = self.memory
        ramping = self._ramping(ctx)
        restores = len(ctx.snap.loads)
        forming, form_w, unheard = formers_told_form(ctx, just_closed=ramping)
        confirming = bool(forming) and ctx.now_s - memory.mode_since_s < FOLLOW_CONFIRM_S
        # While its FOLLOW is on its way (FOLLOW_CONFIRM_S), restores are written only after
        # it has been taken (`write_plan`: a stop of a former that fails or waits cancels
        # the cycle's later phases), so nothing is restored onto it before it follows.
        # A silent one (`unheard`) cannot be told anything: nothing is restored at once.
        if forming and not confirming and form_w > 0:
            # Still told FORM (its FOLLOW refused or unanswered): the bus is kept to what it
            # can carry alone, as if islanding were one grid fault away (it is).
            capacity = min(capacity, form_w)
        if unheard or (forming and not confirming and form_w <= 0):
            restores = 0  # silent, last read told FORM: nothing more on it until it answers
        self._alarm(
            "former_not_following",
            bool(forming) and not confirming,
            "critical",
            f"grid-former {', '.join(forming)} may still be told to form on the grid (its"
            " command to follow not taken, or not heard since the controller started): it"
            " would form under the whole bus the instant the PCC opens;"
            + (
                f" the bus is kept to {form_w / 1000:.1f} kW until it follows"
                if form_w > 0
                else " nothing is restored until it answers"
            ),
        )
        loads = self._plan(ctx, bus, capacity, "bus", max_restores=restores).on
        served = sum(
            (load.power_w if load.relay_on else load.rated_power_w)
            for load in bus
            if loads.get(load.load_id, load.relay_on)
        )
        pv = ctx.snap.pv.power_w if ctx.snap.pv and ctx.snap.pv.available else 0.0
        headroom = max(0.0, capacity - ctx.config.dispatch.shed_margin_w - served + pv)
        chargers: dict[str, ChargerCommand] = {}
        if not ramping:
            memory.ramp_down_from_s = None
        plugged = [
            v
            for v in ctx.snap.vehicles
            if v.available and v.plugged and v.state is not ChargerState.FAULT
        ]
        charging = allocate_power(plugged, -headroom, ctx.config.dispatch) if plugged else {}
        for v in ctx.snap.vehicles:
            if not v.available:
                continue
            if not v.plugged or v.state is ChargerState.FAULT:
                chargers[v.charger_id] = self._charger_off(v)
                continue
            if ramping and memory.ramp_down_from_s is not None:
                left = 1 - (ctx.now_s - memory.ramp_down_from_s) / RAMP_DOWN_S
                start = min(
                    memory.ramp_start_w.get(v.charger_id, 0.0),
                    discharge_limit_w(v, ctx.config.dispatch),
                )
                setpoint = max(0.0, start * left)
            else:
                setpoint = min(0.0, charging.get(v.charger_id, 0.0))
            chargers[v.charger_id] = self._command(
                v.charger_id,
                ChargerMode.FOLLOW,
                power_setpoint_w=setpoint,
                min_soc_pct=self._reserve_floor(v),
            )
        return Outputs(
            pcc=BreakerCommand.NONE,
            chargers=chargers,
            loads={**loads, **outlet_loads},
            outlets=outlets,
            pv_limit_pct=100.0,
        )

    def _planned_islanding(
        self, ctx: GuardContext, outlets: dict[str, bool], outlet_loads: dict[str, bool]
    ) -> Outputs:
        """Ramp grid import to near zero with grid-following vehicles, then open the PCC.

        No vehicle forms the grid while the PCC is closed (safety rule 1): the bus goes
        dead for the moment between the PCC opening and the black start, which restores
        life-safety loads first. Ramping first means the breaker opens almost no current.
        """
        memory = self.memory
        vehicles = usable_vehicles(ctx)
        supply = supply_capacity_w(vehicles, ctx.snap.pv, ctx.config.dispatch)
        bus = self._circuits(ctx.snap).of("bus")
        loads = self._plan(ctx, bus, supply, "bus", max_restores=0).on
        served = sum(load.power_w for load in bus if loads.get(load.load_id, load.relay_on))
        pv = ctx.snap.pv.power_w if ctx.snap.pv and ctx.snap.pv.available else 0.0
        demand = max(0.0, served - pv)
        shares = allocate_power(vehicles, demand, ctx.config.dispatch) if vehicles else {}
        grid = ctx.snap.grid
        import_w = abs(grid.power_w) if grid is not None else float("inf")
        elapsed = ctx.now_s - memory.mode_since_s
        ready = import_w <= ctx.config.grid.planned_island_max_import_w or (
            elapsed >= ctx.config.grid.planned_island_timeout_s
        )
        open_now = memory.planned_open_sent or (ready and grid_riding(ctx))
        chargers: dict[str, ChargerCommand] = {}
        for v in ctx.snap.vehicles:
            if not v.available:
                continue
            share = shares.get(v.charger_id, 0.0)
            if v in vehicles:
                chargers[v.charger_id] = self._command(
                    v.charger_id,
                    ChargerMode.FOLLOW,
                    power_setpoint_w=share,
                    min_soc_pct=self._reserve_floor(v),
                )
            else:
                chargers[v.charger_id] = self._charger_off(v)
        pcc = BreakerCommand.NONE
        if open_now:
            memory.planned_open_sent = True
            if memory.planned_open_s is None:
                memory.planned_open_s = ctx.now_s
            pcc = self._pcc(ctx, BreakerCommand.OPEN)
        return Outputs(pcc=pcc, chargers=chargers, loads={**loads, **outlet_loads}, outlets=outlets)

    def _preshed(self, ctx: GuardContext, supply_w: float) -> dict[str, bool]:
        """Shed, on a dead bus, to what the first source alone can carry.

        Nothing is measured on a dead bus, and loads energised together draw more than
        their rating (cold load pickup): each load that is on counts at its rating times
        `cold_load_factor`; the island restores the rest on measured draw afterwards.
        """
        factor = ctx.config.dispatch.cold_load_factor
        rated = self._circuits(ctx.snap).rated("bus")
        if factor != 1.0:
            rated = tuple([replace(load, power_w=load.power_w * factor) for load in rated])
        return self._plan(ctx, rated, supply_w, "bus", max_restores=0, use_restore_delay=False).on

    def _former_capacity(self, ctx: GuardContext, former_id: str | None) -> float:
        if former_id is None:
            return 0.0
        try:
            return discharge_limit_w(ctx.snap.vehicle(former_id), ctx.config.dispatch)
        except KeyError:
            return 0.0

    def _islanding(
        self, ctx: GuardContext, outlets: dict[str, bool], outlet_loads: dict[str, bool]
    ) -> Outputs:
        capacity = self._former_capacity(ctx, available_former(ctx))
        forming, form_w, _ = formers_told_form(ctx, just_closed=self._ramping(ctx))
        if forming:
            # A grid-former with a PCC interlock still told FORM (its FOLLOW not landed after
            # a close, or refused) forms the instant the PCC opens, under whatever the bus
            # carries then, while the followers are stopped: the bus is shed to what it
            # carries alone first, and the PCC opened only once the panels read that done.
            # Opening first left the island to a shed that a refusing board, or a controller
            # killed between the two writes, never made (42.9 kW on 11 kW in the crash test).
            capacity = min(capacity, form_w)
        loads = self._preshed(ctx, capacity - silent_draw_w(ctx))
        # Held until the shed is done as read: every load it wants off reads off (one on a
        # silent panel cannot be shed, nor read: not done). Worked out only with such a
        # former: this is the grid-loss cycle, whose PCC command is timed.
        held = bool(forming) and any(
            not load.available or (load.relay_on and not loads.get(load.load_id, True))
            for load in self._circuits(ctx.snap).of("bus")
        )
        self._alarm(
            "pcc_open_held",
            held,
            "critical",
            f"grid lost, PCC held closed: grid-former {', '.join(forming)} may still be told to"
            " form and would form under the whole bus the instant the PCC opens; shedding to"
            " what it carries alone first"
            if held
            else "",
        )
        pcc = BreakerCommand.NONE if held else self._pcc(ctx, BreakerCommand.OPEN)
        chargers = {v.charger_id: self._charger_off(v) for v in ctx.snap.vehicles if v.available}
        return Outputs(pcc=pcc, chargers=chargers, loads={**loads, **outlet_loads}, outlets=outlets)

    def _black_start(
        self, ctx: GuardContext, outlets: dict[str, bool], outlet_loads: dict[str, bool]
    ) -> Outputs:
        memory = self.memory
        # Told to form, then silent, on a bus that is not known dead: most likely forming
        # unseen. It is neither given up nor stopped (that would drop the loads it carries).
        unseen = (
            memory.former_id is not None
            and memory.form_sent_s is not None
            and former_silent(ctx)
            and not bus_dead(ctx)
        )
        if memory.former_id is not None and not unseen:
            former = former_state(ctx)
            stuck = ctx.now_s - memory.mode_since_s > BLACK_START_TIMEOUT_S
            if former is None or not can_discharge(former, ctx.config.dispatch) or stuck:
                memory.failed_formers[memory.former_id] = ctx.now_s
                self._notes.append(f"black start: {memory.former_id} did not energise the bus")
                memory.former_id = None
                memory.form_sent_s = None
                memory.mode_since_s = ctx.now_s
        if memory.former_id is None:
            memory.former_id = available_former(ctx)
            memory.form_sent_s = None
        capacity = self._former_capacity(ctx, memory.former_id)
        if unseen and memory.former_id is not None:
            capacity = ctx.config.devices[memory.former_id].rating_w or 0.0
        # Chargers that answer but have not confirmed a zero (or discharge) setpoint take up
        # what they hold once the bus is live: for up to ZERO_CONFIRM_WAIT_S the former
        # waits for their OFF to land (nothing forms, so the pre-shed need not count them
        # yet); past it they count like loads that cannot be shed (`held_draw_w`).
        held_w = held_draw_w(ctx, memory.former_id)
        waiting = held_w > 0 and ctx.now_s - memory.mode_since_s < ZERO_CONFIRM_WAIT_S
        counted_w = 0.0 if waiting else held_w
        loads = self._preshed(ctx, capacity - silent_draw_w(ctx) - counted_w)
        chargers: dict[str, ChargerCommand] = {}
        # Loads on silent panels and silent chargers cannot be switched off: never form
        # onto more than the former can carry (it would collapse at once).
        fixed_w = silent_draw_w(ctx) + counted_w + sum(
            load.rated_power_w for load in self._circuits(ctx.snap).of("bus") if not load.available
        )
        fits = fixed_w <= capacity and not waiting
        self._alarm(
            "black_start_blocked",
            memory.former_id is not None and not fits and not waiting,
            "critical",
            f"cannot black start: {fixed_w / 1000:.1f} kW on silent devices and on chargers"
            " that have not confirmed a zero setpoint cannot be shed and exceeds the"
            f" grid-former's {capacity / 1000:.1f} kW",
        )
        pcc = ctx.snap.pcc
        dead_v = ctx.config.sync.dead_bus_max_pu * nominal_v(ctx)
        dead = pcc is not None and pcc.bus_voltage_v < dead_v
        ours = memory.former_id is not None and any(
            v.charger_id == memory.former_id and v.state is ChargerState.FORMING
            for v in ctx.snap.vehicles
        )
        # The PCC was confirmed open to come here; if it falls silent while our former
        # already forms, keep it forming (stopping it would drop every load on the bus).
        # Nothing new is started without a reading.
        position = pcc_position(ctx)
        open_confirmed = fits and (position is BreakerPosition.OPEN or (position is None and ours))
        # Only one voltage source on a bus: form on a dead bus, or keep our own former going.
        may_form = open_confirmed and (dead or ours)
        # A live bus from a former we just stopped (it still reads forming) is a known
        # source on its way down; only a bus with no answering former is a mystery.
        self._alarm(
            "bus_live_unknown_source",
            open_confirmed
            and not dead
            and not ours
            and forming_vehicle(ctx) is None
            and memory.form_sent_s is None,
            "critical",
            "site bus energised with no known grid-former (a silent charger may still be"
            " forming); not starting another",
        )
        for v in ctx.snap.vehicles:
            if not v.available:
                continue
            if v.charger_id == memory.former_id and v.charger_id == self._local_former:
                # It forms by itself (PCC open, dead bus): there is nothing to tell it, and
                # nothing we could. It counts as told once we would have told it.
                if may_form and memory.form_sent_s is None:
                    memory.form_sent_s = ctx.now_s
                continue
            if v.charger_id == memory.former_id and may_form:
                chargers[v.charger_id] = self._command(
                    v.charger_id,
                    ChargerMode.FORM,
                    frequency_setpoint_hz=ctx.config.grid.nominal_frequency_hz,
                    voltage_setpoint_v=ctx.config.grid.nominal_voltage_v,
                    min_soc_pct=self._reserve_floor(v),
                )
                if memory.form_sent_s is None:
                    memory.form_sent_s = ctx.now_s
            elif v.charger_id == memory.former_id and memory.form_sent_s is not None and not dead:
                # Told to form and the bus is live: its reading may lag the command (a
                # reply from before it, or readings kept through a few missed ones). Leave
                # it be; only a dead bus or a known fault makes it give up.
                continue
            else:
                chargers[v.charger_id] = self._charger_off(v)
        return Outputs(chargers=chargers, loads={**loads, **outlet_loads}, outlets=outlets)

    def _island(
        self, ctx: GuardContext, outlets: dict[str, bool], outlet_loads: dict[str, bool]
    ) -> Outputs:
        """Islanded, emergency and resynchronising: balance the island every cycle."""
        mode = self.mode
        memory = self.memory
        config = ctx.config
        position = pcc_position(ctx)
        former = former_state(ctx)
        max_tier = island_tier_cap(mode, self._energy_cap(ctx, "bus", apply=True))
        if former_silent(ctx) and not bus_dead(ctx) and not memory.resync_dark:
            return self._hold_island(ctx, outlets, outlet_loads, max_tier)
        # Keep forming with the PCC open, while our own synchronised close is in flight, or
        # when a breaker confirmed open earlier falls silent (stopping the former would black
        # out life-safety loads; nothing here ever commands a close without a reading).
        closing = (
            mode is Mode.RESYNCHRONISING
            and memory.pcc_command is BreakerCommand.CLOSE
            and position in (BreakerPosition.TRAVELLING, BreakerPosition.CLOSED)
            and grid_ok(ctx)
        )
        open_confirmed = (
            position is BreakerPosition.OPEN
            or closing
            or (position is None and former is not None and former.state is ChargerState.FORMING)
        )
        # A close in flight counts as live: an interlocked former stops forming the instant
        # the contacts touch, which a reading taken a moment apart may show first.
        live = (
            bus_live(ctx)
            and former is not None
            and (former.state is ChargerState.FORMING or (closing and former.pcc_interlock))
        )
        running = running_vehicles(ctx) if live else []
        supply = supply_capacity_w(running, ctx.snap.pv, config.dispatch) - silent_draw_w(ctx)
        if live and former is not None:
            loads = self._balance(ctx, former, running, supply, max_tier)
        else:
            loads = self._preshed(ctx, 0.0)
        # Setpoints follow the loads still on in the field: a load being shed counts until
        # its relay confirms off, so supply never comes down ahead of the load behind it.
        served = sum(
            load.power_w
            for load in self._circuits(ctx.snap).of("bus")
            if load.relay_on or loads.get(load.load_id, False)
        )
        pv = ctx.snap.pv.power_w if ctx.snap.pv and ctx.snap.pv.available else 0.0
        served += silent_draw_w(ctx)
        shares = self._secure_shares(running, former, served, pv) if former is not None else {}
        frequency = config.grid.nominal_frequency_hz
        voltage = config.grid.nominal_voltage_v
        pcc = BreakerCommand.NONE
        if mode is Mode.RESYNCHRONISING:
            frequency, voltage, pcc = self._resync(ctx, frequency, voltage, live)
        chargers: dict[str, ChargerCommand] = {}
        if mode is Mode.RESYNCHRONISING and memory.resync_dark:
            # Break before make: every source stays off until the PCC closes onto the dead
            # bus; the load relays stay as they are and the grid picks them up.
            chargers = {
                v.charger_id: self._charger_off(v) for v in ctx.snap.vehicles if v.available
            }
            return Outputs(pcc=pcc, chargers=chargers, loads=outlet_loads, outlets=outlets)
        for v in ctx.snap.vehicles:
            if not v.available:
                continue
            floor = self._reserve_floor(v)
            if v.charger_id == memory.former_id and v.charger_id == self._local_former:
                continue  # it forms by its own configuration: nothing to tell it
            if v.charger_id == memory.former_id and open_confirmed and can_form_now(v):
                chargers[v.charger_id] = self._command(
                    v.charger_id,
                    ChargerMode.FORM,
                    power_setpoint_w=shares.get(v.charger_id, 0.0),
                    frequency_setpoint_hz=frequency,
                    voltage_setpoint_v=voltage,
                    min_soc_pct=floor,
                )
            elif live and v.plugged and v.state is not ChargerState.FAULT:
                chargers[v.charger_id] = self._command(
                    v.charger_id,
                    ChargerMode.FOLLOW,
                    power_setpoint_w=shares.get(v.charger_id, 0.0),
                    min_soc_pct=floor,
                )
            else:
                chargers[v.charger_id] = self._charger_off(v)
        return Outputs(
            pcc=pcc,
            chargers=chargers,
            loads={**loads, **outlet_loads},
            outlets=outlets,
            pv_limit_pct=100.0,
        )

    def _secure_shares(
        self, running: list[VehicleState], former: VehicleState, served_w: float, pv_w: float
    ) -> dict[str, float]:
        """`secure_shares`, or last cycle's answer when its inputs are the same: it is pure,
        and a steady island hands it the very same vehicle states (the snapshot reuses
        them while their readings do not change), so the common case is one tuple
        comparison instead of the allocation again."""
        if not running:
            return {}
        key = (tuple(running), former, served_w, pv_w)
        held = self._shares_memo
        if held is not None and held[0] == key:
            return held[1]
        shares = secure_shares(running, former, served_w, pv_w, self.config.dispatch)
        self._shares_memo = (key, shares)
        return shares

    def _hold_island(
        self,
        ctx: GuardContext,
        outlets: dict[str, bool],
        outlet_loads: dict[str, bool],
        max_tier: Tier,
    ) -> Outputs:
        """The grid-former is silent but nothing says the bus is dead: hold the island.

        Unknown is not gone: the former most likely still forms, and treating it as lost
        would shed every load, life-safety included, and stop the followers. So the
        followers keep their last commands (none is written) and nothing is restored; a
        load is shed only if the bus carries more than the followers plus the former's
        rating could (the one thing that would collapse it for sure).
        """
        former_id = self.memory.former_id
        assert former_id is not None
        dispatch = ctx.config.dispatch
        followers = [v for v in running_vehicles(ctx) if v.charger_id != former_id]
        rating = ctx.config.devices[former_id].rating_w or 0.0
        silent_w = sum(
            v.max_charge_w
            for v in ctx.snap.vehicles
            if not v.available and v.charger_id != former_id
        )
        supply = supply_capacity_w(followers, ctx.snap.pv, dispatch) + rating - silent_w
        bus = self._circuits(ctx.snap).of("bus")
        loads = self._plan(ctx, bus, supply, "bus", max_tier=max_tier, max_restores=0).on
        return Outputs(loads={**loads, **outlet_loads}, outlets=outlets)

    def _balance(
        self,
        ctx: GuardContext,
        former: VehicleState,
        running: list[VehicleState],
        supply_w: float,
        max_tier: Tier,
    ) -> dict[str, bool]:
        """Shed against the island's capacity; restore only into the former's headroom now.

        The grid-former picks up every load step at once, before the followers' new
        setpoints arrive, so a restore must fit in what it has spare this cycle, not
        merely in the island's total capacity. Restores also stop at the island's N-1
        capacity: what is left if its largest single source (a follower at its limit,
        or the PV's present output) drops out, so that losing one source never leaves
        the former alone with more than it can carry before the next cycle sheds.
        """
        loads = self._circuits(ctx.snap).of("bus")
        held = self._plan(ctx, loads, supply_w, "bus", max_tier=max_tier, max_restores=0)
        plan = held.on
        if any(plan.get(load.load_id, load.relay_on) != load.relay_on for load in loads):
            return plan
        pv = ctx.snap.pv.power_w if ctx.snap.pv and ctx.snap.pv.available else 0.0
        largest_w = max(
            [pv]
            + [
                discharge_limit_w(v, ctx.config.dispatch)
                for v in running  # `running_vehicles`, as the caller worked it out
                if v.charger_id != former.charger_id
            ]
        )
        secured = self._secure(ctx, loads, held, supply_w - largest_w, largest_w, max_tier)
        if secured is not None:
            return secured
        last = self.memory.last_restore_s
        if last is not None and ctx.now_s - last < RESTORE_SPACING_S:
            return plan  # one load at a time: pumps and compressors do not start together
        # What `plan_loads` could restore: loads off that are neither locked off by an
        # operator nor above the mode's tier (an earthquake's comfort loads, locked off for
        # days, are not worth a restore plan every cycle: issue 14).
        locked = self.memory.locked_off
        off_w = [
            load.rated_power_w
            for load in loads
            if load.available
            and not load.relay_on
            and load.load_id not in locked
            and load.tier <= max_tier
        ]
        if not off_w:
            return plan  # nothing that could be restored
        served = sum(load.power_w for load in loads if load.relay_on)
        headroom = discharge_limit_w(former, ctx.config.dispatch) - former.power_w
        restore_supply = min(supply_w - largest_w, served + max(0.0, headroom))
        dispatch = ctx.config.dispatch
        smallest_need_w = min(off_w) * (1 + dispatch.restore_hysteresis_pct / 100)
        if not held.demand_w + smallest_need_w + dispatch.shed_margin_w <= restore_supply:
            # Not even the smallest off load would fit: the plan below could restore nothing.
            # (Nothing was shed above, so its demand is this plan's.)
            return plan
        restore = plan_loads(
            loads,
            restore_supply,
            self.memory.load_times,
            ctx.now_s,
            ctx.config.dispatch,
            last_shed_s=self.memory.last_shed_s.get("bus"),
            max_tier=max_tier,
            locked_off=frozenset(self.memory.locked_off),
            max_restores=LOAD_RESTORE_PER_CYCLE,
            min_off_s=self._min_off_s,
        )
        if restore.shed or not restore.restored:
            return plan
        self.memory.last_restore_s = ctx.now_s
        self._notes.append(restore.reason)
        return restore.on

    def _secure(
        self,
        ctx: GuardContext,
        loads: Sequence[LoadState],
        held: LoadPlan,
        secure_w: float,
        largest_w: float,
        max_tier: Tier,
    ) -> dict[str, bool] | None:
        """Shed essential and comfort loads that the island could not carry if its largest
        source dropped out (N-1), or None when nothing needs to go.

        Restores already stop at the N-1 capacity; this is for the island whose sources
        shrank under it (followers unplugged, reaching their reserve, PV fading): without
        it the next loss lands on the former with more than it can carry, and the collapse
        drops life-safety too. Life-safety and critical loads are never shed for N-1
        alone, only when the island cannot carry them at all.
        """
        dispatch = ctx.config.dispatch
        if held.demand_w + dispatch.shed_margin_w <= secure_w:
            return None
        flexible = [load for load in loads if load.tier >= Tier.ESSENTIAL]
        if not any(held.on.get(load.load_id, load.relay_on) for load in flexible):
            return None
        times, now = self.memory.load_times, ctx.now_s
        locked = frozenset(self.memory.locked_off)
        as_is = plan_loads(
            flexible,
            math.inf,
            times,
            now,
            dispatch,
            last_shed_s=None,
            max_tier=max_tier,
            locked_off=locked,
            max_restores=0,
            min_off_s=self._min_off_s,
        )
        firm_w = held.demand_w - as_is.demand_w
        plan = self._plan(
            ctx, flexible, secure_w - firm_w, "bus", max_tier=max_tier, max_restores=0
        )
        if not plan.shed:
            return None
        self._notes.append(
            f"N-1: the island could not carry its loads without its largest source"
            f" ({largest_w / 1000:.1f} kW)"
        )
        return {**held.on, **plan.on}

    def _probe_breaker(self, ctx: GuardContext) -> tuple[BreakerCommand | None, str | None]:
        """(None, None) once the breaker is known to take commands; else what to send it now,
        or why the reconnection is blocked.

        A break-before-make close stops the island's only former first: a breaker that
        reads but refuses or drops commands (left in local control, write-protected) never
        closes, and the site goes dark with its loads on until a black start (the sites
        fuzzer found it). Nothing tells that apart by reading, so the resynchronisation
        sends the open breaker an OPEN (it changes nothing) and stops the former only if
        no refusal or silence of it was alarmed within BREAKER_PROBE_S; else it waits, with
        `resync_blocked`, times out into islanded and probes again on its next attempt."""
        memory = self.memory
        if memory.breaker_probe_s is None:
            memory.breaker_probe_s = ctx.now_s
            return BreakerCommand.OPEN, None
        if write_failed_alarm(ctx.config.grid.pcc_breaker) in memory.active_alarms:
            return None, (
                "not reconnecting break before make: the PCC breaker does not take commands"
                " (stopping the island's former for a close that cannot come would black out"
                " the site)"
            )
        if ctx.now_s - memory.breaker_probe_s < BREAKER_PROBE_S:
            return BreakerCommand.NONE, None
        return None, None

    def _droop_compensated(self, ctx: GuardContext, target_hz: float) -> float:
        """The former's setpoint that puts its drooping island at target_hz (sync.py)."""
        former = former_state(ctx)
        device = ctx.config.devices.get(former.charger_id) if former is not None else None
        if former is None or device is None or not former.available:
            return target_hz
        return droop_setpoint_hz(
            target_hz, device.droop_hz, former.power_w, device.rating_w or 0.0
        )

    def _resync(
        self, ctx: GuardContext, frequency: float, voltage: float, live: bool
    ) -> tuple[float, float, BreakerCommand]:
        """Slip the island towards the grid's angle and close once synchronism is confirmed."""
        pcc = ctx.snap.pcc
        if pcc is not None and pcc.grid_frequency_hz > 0:
            frequency = island_frequency_target_hz(
                pcc.grid_frequency_hz, ctx.config.sync, ctx.config.site.cycle_period_s
            )
            frequency = self._droop_compensated(ctx, frequency)
            voltage = pcc.grid_voltage_v or voltage
        if not ready_for_return(self.memory.grid_healthy_since_s, ctx.now_s, ctx.config.grid):
            return frequency, voltage, BreakerCommand.NONE
        blocked = resync_blocked(ctx)
        former = former_state(ctx)
        # Closing onto the grid while a former without a PCC interlock forms would leave it
        # forming in parallel until the next cycle tells it to follow: a grid failing in that
        # moment would be back-fed. So such a former's island is stopped and the PCC closed
        # onto the dead bus, once the breaker is known to take commands, and only if the
        # former takes them too (stopping the followers while it refuses its OFF would
        # leave the island to it alone, and it would never go dark for the close).
        dark = former if live and former is not None and not former.pcc_interlock else None
        probe: BreakerCommand | None = None
        if blocked is None and dark is not None:
            if write_failed_alarm(dark.charger_id) in self.memory.active_alarms:
                blocked = (
                    f"not reconnecting break before make: grid-former {dark.charger_id}"
                    " does not take commands (it could not be stopped for the close)"
                )
            else:
                probe, blocked = self._probe_breaker(ctx)
        if blocked is not None:  # raised once, not cleared and raised again every cycle
            self._alarm("resync_blocked", True, "warning", blocked)
            return frequency, voltage, BreakerCommand.NONE
        self._alarm("resync_blocked", False)
        if dark is not None:
            if probe is not None:
                return frequency, voltage, probe
            self.memory.resync_dark = True
            self.memory.former_id = None
            self._notes.append(
                f"{dark.charger_id} has no PCC interlock: reconnecting break before make"
                " (the site bus is dark until the PCC closes)"
            )
            return frequency, voltage, BreakerCommand.NONE
        if stale_for_close(ctx):
            # Its reply came late (a read in flight across cycles): the angle it measured
            # has moved since; wait for a fresh one rather than close on an old check.
            return frequency, voltage, BreakerCommand.NONE
        check = sync_check(pcc, self._close_check, ctx.config.grid.nominal_voltage_v)
        if not check.ok:
            return frequency, voltage, BreakerCommand.NONE
        if self.memory.resync_dark and (live or not check.dead_bus):
            # Break before make closes onto the dead bus only. Still live, the former has not
            # taken its OFF (it refuses or drops commands): a close in sync would leave it
            # forming in parallel with the grid, and the next grid loss would be back-fed
            # through the PCC (the modes fuzzer found it). The synchronisation timeout ends
            # the wait.
            return frequency, voltage, BreakerCommand.NONE
        if check.dead_bus and (
            live or self.memory.former_id is not None or forming_vehicle(ctx) is not None
        ):
            # A dead-bus close is only for a site with no local source at all; a former
            # that is (re)starting could energise the bus out of phase as the contacts close.
            return frequency, voltage, BreakerCommand.NONE
        command = self._pcc(ctx, BreakerCommand.CLOSE)
        if command is BreakerCommand.CLOSE:
            self._notes.append(f"synchronisation check passed, closing the PCC: {check.reason}")
        return frequency, voltage, command


def _projection_words(cap: EnergyCap) -> str:
    """The projection per tier in words: "life_safety 80.0 h, critical 50.1 h"."""
    parts = []
    for tier in Tier:
        if cap.demand_w[tier] > 0:
            hours = cap.projection_h[tier]
            parts.append(
                f"{tier.label} {'no limit' if not math.isfinite(hours) else f'{hours:.1f} h'}"
            )
    return ", ".join(parts)


def silent_draw_w(ctx: GuardContext) -> float:
    """What silent chargers may draw when the bus is live again: up to what their last
    command lets them draw (they cannot be told). Answering ones are `held_draw_w`'s."""
    return sum(v.max_charge_w for v in ctx.snap.vehicles if not v.available)


def held_charge_w(v: VehicleState, bus_dead: bool = False) -> float:
    """[W] What an answering charger may draw the moment its AC side is live again: the
    charging setpoint it holds; with that unknown, its charging limit (rule 5). On a dead
    bus, where nothing draws, a reading that shows a draw is from before the charger went
    quiet (still believed within its grace): it may resume that draw once a former
    energises the bus (an OCPP station keeps its last setpoint until its dead-man runs
    out), so it counts at least at that draw (found by the OCPP site fuzzer: a station cut
    off while charging overloaded the black-start former)."""
    if not v.available or not v.plugged:
        return 0.0
    stale_w = max(0.0, -v.power_w) if bus_dead else 0.0
    if v.held_setpoint_w is None:
        return max(v.max_charge_w, stale_w)
    return max(0.0, -v.held_setpoint_w, stale_w)


def held_draw_w(ctx: GuardContext, former_id: str | None) -> float:
    """[W] What the answering chargers other than the former would draw at once on a bus
    that comes up now (silent ones are `silent_draw_w`'s)."""
    dead = bus_dead(ctx)
    return sum(
        held_charge_w(v, dead) for v in ctx.snap.vehicles if v.charger_id != former_id
    )


def can_form_now(v: VehicleState) -> bool:
    return v.can_form and v.plugged and v.state is not ChargerState.FAULT


def source_name(event: EventData) -> str:
    return str(event.transition.source) if event.transition is not None else ""
