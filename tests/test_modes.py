"""The mode machine, driven with synthetic snapshots of the reference site (no I/O).

A tiny field model in `Field` stands in for the devices: it applies the decision's
outputs the way hardware would (breaker moves, formers energise the bus), so a
sequence of steps walks the machine through whole scenarios with a fake clock.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from resilience.config import SiteConfig, load_site, parse_site
from resilience.cycle import _vehicle_state
from resilience.model import (
    BreakerCommand,
    BreakerPosition,
    BreakerReading,
    ChargerMode,
    ChargerState,
    DeviceHealth,
    GridReading,
    LoadState,
    Mode,
    OutletState,
    PVState,
    Snapshot,
    Tier,
    V2LState,
    VehicleState,
)
from resilience.modes import RUNBOOKS, WAITING_ALARM, SiteModes
from resilience.outputs import Decision
from resilience.overrides import VehicleView
from resilience.policies.vehicles import secure_shares
from tests.sites import modbus_only

SITE = Path(__file__).resolve().parents[1] / "config" / "site.toml"


@pytest.fixture(scope="module")
def config() -> SiteConfig:
    return modbus_only(load_site(SITE))


@dataclass
class Field:
    """Just enough physics to close the loop: breaker, bus, formers, relays, SoC."""

    config: SiteConfig
    grid_present: bool = True
    grid_frequency_hz: float = 50.0
    grid_voltage_v: float = 400.0
    breaker: BreakerPosition = BreakerPosition.CLOSED
    breaker_stuck: bool = False
    relays: dict[str, bool] = field(default_factory=dict)
    modes: dict[str, ChargerMode] = field(default_factory=dict)
    setpoints: dict[str, float] = field(default_factory=dict)
    soc: dict[str, float] = field(default_factory=dict)
    faulted: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    deaf: set[str] = field(default_factory=set)  # answer, but take no command (refused writes)
    pv_w: float = 0.0
    bus_frequency_hz: float = 50.0
    phase_deg: float = 0.0
    back_feed: bool = False
    closed_out_of_sync: bool = False
    pcc_age_s: float | None = None  # how old the breaker's reading is (None: no ages given)
    # A slow panel: its readings show the bus as it was this long ago (0 W just after the
    # bus is energised again, as a reading asked while it was dark does).
    panel_lag_s: float = 0.0
    live_since_s: float | None = None

    def __post_init__(self) -> None:
        for load in self.config.loads:
            self.relays.setdefault(load.id, True)
        for charger in self.config.chargers:
            self.modes.setdefault(charger, ChargerMode.FOLLOW)
            self.setpoints.setdefault(charger, 0.0)
            self.soc.setdefault(charger, 80.0)

    def former(self) -> str | None:
        for cid, mode in self.modes.items():
            if mode is ChargerMode.FORM and cid not in self.faulted and not self.interlocked(cid):
                return cid
        return None

    def interlocked(self, cid: str) -> bool:
        """A charger with a PCC interlock never forms while the PCC is closed (it follows)."""
        closed = self.breaker is BreakerPosition.CLOSED
        return closed and self.config.devices[cid].pcc_interlock

    @property
    def bus_live(self) -> bool:
        if self.breaker is BreakerPosition.CLOSED:
            return self.grid_present or self.former() is not None
        return self.former() is not None

    def apply(self, decision: Decision, dt: float) -> None:
        out = decision.outputs
        if out.pcc is BreakerCommand.OPEN and not self.breaker_stuck:
            self.breaker = BreakerPosition.OPEN
        if out.pcc is BreakerCommand.CLOSE and not self.breaker_stuck:
            if self.grid_present and self.former() is not None:
                grid_f, bus_f = self.grid_frequency_hz, self.bus_frequency_hz
                if abs(grid_f - bus_f) > 0.3 or abs(self.phase_deg) > 20:
                    self.closed_out_of_sync = True
            self.breaker = BreakerPosition.CLOSED
        for cid, cmd in out.chargers.items():
            if cid in self.deaf:
                continue
            if cmd.mode is ChargerMode.FORM:
                self.bus_frequency_hz = cmd.frequency_setpoint_hz or 50.0
            self.modes[cid] = cmd.mode
            self.setpoints[cid] = cmd.power_setpoint_w
        for load_id, on in out.loads.items():
            self.relays[load_id] = on
        if self.breaker is BreakerPosition.CLOSED and not self.grid_present and self.former():
            self.back_feed = True
        self.phase_deg = (
            self.phase_deg + 360 * (self.grid_frequency_hz - self.bus_frequency_hz) * dt + 180
        ) % 360 - 180

    def snapshot(self, now: float) -> Snapshot:
        cfg = self.config
        v_grid = self.grid_voltage_v if self.grid_present else 0.0
        f_grid = self.grid_frequency_hz if self.grid_present else 0.0
        live = self.bus_live
        if not live:
            self.live_since_s = None
        elif self.live_since_s is None:
            self.live_since_s = now
        panels_see_live = live and now - (self.live_since_s or now) >= self.panel_lag_s
        grid = None if "grid_meter" in self.silent else GridReading(v_grid, f_grid, 0.0)
        pcc = None
        if "pcc_breaker" not in self.silent:
            pcc = BreakerReading(
                self.breaker,
                False,
                0,
                400.0 if live else 0.0,
                (self.bus_frequency_hz if self.breaker is not BreakerPosition.CLOSED else f_grid)
                if live
                else 0.0,
                v_grid,
                f_grid,
                self.phase_deg if live and self.grid_present else 0.0,
            )
        loads = tuple(
            LoadState(
                load.id,
                load.tier,
                load.rated_power_w,
                load.supply,
                self.relays[load.id],
                load.rated_power_w
                if self.relays[load.id] and (panels_see_live or load.supply != "bus")
                else 0.0,
                True,
            )
            for load in cfg.loads
        )
        vehicles = []
        for cid, device in cfg.chargers.items():
            vehicle = cfg.vehicle_at(cid)
            assert vehicle is not None
            if cid in self.silent:
                # exactly as production sees a silent charger: unknown, nothing of it kept
                view = VehicleView(vehicle.id, vehicle.reserve_soc_pct)
                vehicles.append(_vehicle_state(cid, device, None, view, 0.0, 600.0))
                continue
            mode = self.modes[cid]
            if mode is ChargerMode.FORM and self.interlocked(cid):
                mode = ChargerMode.FOLLOW
            if cid in self.faulted:
                state = ChargerState.FAULT
            elif mode is ChargerMode.FORM:
                state = ChargerState.FORMING
            elif mode is ChargerMode.FOLLOW and live:
                sp = self.setpoints[cid]
                state = (
                    ChargerState.DISCHARGING
                    if sp > 0
                    else ChargerState.CHARGING
                    if sp < 0
                    else ChargerState.IDLE
                )
            else:
                state = ChargerState.IDLE
            vehicles.append(
                VehicleState(
                    cid,
                    vehicle.id,
                    True,
                    device.can_form,
                    state,
                    mode if cid not in self.faulted else ChargerMode.OFF,
                    self.soc[cid],
                    vehicle.reserve_soc_pct,
                    vehicle.capacity_wh,
                    self.setpoints[cid] if live else 0.0,
                    11000.0,
                    11000.0,
                    400.0 if live else 0.0,
                    self.bus_frequency_hz if live else 0.0,
                    cid not in self.silent,
                    pcc_interlock=device.pcc_interlock,
                    # as a Modbus unit reads back what it was told: OFF holds nothing
                    held_setpoint_w=0.0
                    if self.modes[cid] is ChargerMode.OFF
                    else self.setpoints[cid],
                )
            )
        outlets = tuple(
            OutletState(
                oid, None, V2LState.SUPPLYING, 80.0, 35.0, 77400.0, 500.0, 3600.0, True, True
            )
            for oid in cfg.outlets
        )
        pv = PVState("pv", self.pv_w if live else 0.0, 20000.0, 100.0, True)
        if self.pcc_age_s is not None:
            health = (DeviceHealth(cfg.grid.pcc_breaker, pcc is not None, 0.0),)
            return Snapshot(
                now, grid, pcc, loads, tuple(vehicles), outlets, pv, health,
                (now - self.pcc_age_s,),
            )  # fmt: skip
        return Snapshot(now, grid, pcc, loads, tuple(vehicles), outlets, pv)


@dataclass
class Run:
    modes: SiteModes
    field: Field
    now: float = 0.0
    dt: float = 0.02
    decisions: list[Decision] = field(default_factory=list)

    def step(self, n: int = 1) -> Decision:
        decision = None
        for _ in range(n):
            decision = self.modes.step(self.field.snapshot(self.now))
            self.decisions.append(decision)
            self.field.apply(decision, self.dt)
            self.now += self.dt
        assert decision is not None
        return decision

    def until(self, mode: Mode, limit_s: float = 30.0) -> None:
        end = self.now + limit_s
        while self.modes.mode is not mode:
            assert self.now < end, f"stuck in {self.modes.mode}, wanted {mode}"
            self.step()

    def advance(self, seconds: float) -> None:
        self.step(int(seconds / self.dt))

    @property
    def transitions(self) -> list[tuple[str, str, str]]:
        return [(t.source, t.dest, t.trigger) for d in self.decisions for t in d.transitions]


def new_run(config: SiteConfig, **field_args: object) -> Run:
    return Run(SiteModes(config, now_s=0.0), Field(config, **field_args))  # type: ignore[arg-type]


def test_every_mode_names_a_runbook() -> None:
    assert set(RUNBOOKS) == set(Mode)


def test_restart_with_breaker_closed_and_grid_healthy_goes_grid_connected(
    config: SiteConfig,
) -> None:
    run = new_run(config)
    run.step()
    assert run.modes.mode is Mode.GRID_CONNECTED
    assert run.transitions == [("starting", "grid_connected", "field_grid_connected")]


def test_starting_waits_for_the_breaker_and_commands_nothing(config: SiteConfig) -> None:
    run = new_run(config)
    run.field.silent.add("pcc_breaker")
    decision = run.step(5)
    assert run.modes.mode is Mode.STARTING
    assert decision.outputs.pcc is BreakerCommand.NONE
    assert decision.outputs.chargers == {}


def test_restart_with_breaker_closed_on_dead_grid_opens_it_first(config: SiteConfig) -> None:
    run = new_run(config, grid_present=False)
    decision = run.step()
    assert run.modes.mode is Mode.ISLANDING
    assert decision.outputs.pcc is BreakerCommand.OPEN
    assert all(c.mode is ChargerMode.OFF for c in decision.outputs.chargers.values())


def test_grid_loss_islands_then_black_starts_then_restores_life_safety_first(
    config: SiteConfig,
) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    decision = run.step()
    assert run.modes.mode is Mode.ISLANDING
    assert decision.outputs.pcc is BreakerCommand.OPEN
    # pre-shed to what one 11 kW former carries: comfort and essential go
    assert decision.outputs.loads["hvac"] is False
    assert decision.outputs.loads["emergency_lighting"] is True
    run.until(Mode.ISLANDED, 2.0)
    assert [t[1] for t in run.transitions] == [
        "grid_connected",
        "islanding",
        "black_start",
        "islanded",
    ]
    assert not run.field.back_feed
    run.advance(2.0)
    on = {lid for lid, v in run.field.relays.items() if v}
    assert {"emergency_lighting", "radio_comms", "medical_fridge", "oxygen_concentrators"} <= on
    # 44 kW of vehicles + PV cannot carry 54.9 kW of bus load: some comfort stays off
    assert not all(run.field.relays[load.id] for load in config.loads if load.supply == "bus")


@pytest.mark.parametrize("lag_s", [0.0, 0.3, 1.0])
def test_panels_read_on_a_dark_bus_restore_nothing_the_energy_then_sheds(
    config: SiteConfig, lag_s: float
) -> None:
    """A slow panel's first readings after black start are of the dark bus (0 W): on
    them the endurance policy saw no demand and let every tier on, a load was restored,
    and the first real reading shed it again with the whole tier (a chatter, found with
    realistic RS-485 latencies in the flickering-grid fault test)."""
    run = new_run(config, panel_lag_s=lag_s)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED, 3.0)
    formed = len(run.decisions)
    run.advance(90.0)
    for load in config.loads:
        wanted = [
            d.outputs.loads[load.id] for d in run.decisions[formed:] if load.id in d.outputs.loads
        ]
        switched_on = [i for i in range(1, len(wanted)) if wanted[i] and not wanted[i - 1]]
        switched_off = [i for i in range(1, len(wanted)) if not wanted[i] and wanted[i - 1]]
        assert not (switched_on and switched_off and switched_off[-1] > switched_on[0]), (
            load.id,
            [n for d in run.decisions for n in d.notes],
        )
    # the energy is short for everything below life-safety: only that tier stays on
    assert {lid for lid, on in run.field.relays.items() if on} >= {"emergency_lighting"}
    assert not run.field.relays["general_lighting"]


def test_island_never_forms_while_breaker_refuses_to_open(config: SiteConfig) -> None:
    run = new_run(config, breaker_stuck=True)
    run.step()
    run.field.grid_present = False
    run.advance(3.0)
    assert run.modes.mode is Mode.ISLANDING
    assert run.field.former() is None
    assert not run.field.back_feed
    assert "pcc_fail_to_open" in run.modes.memory.active_alarms
    # the open command is repeated after the operate timeout, not every cycle
    opens = sum(1 for d in run.decisions if d.outputs.pcc is BreakerCommand.OPEN)
    assert 2 <= opens <= 4


def test_no_reconnect_before_return_to_service_delay(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.grid_present = True
    run.advance(config.grid.return_to_service_s - 1.0)
    assert run.modes.mode is Mode.ISLANDED
    assert all(d.outputs.pcc is not BreakerCommand.CLOSE for d in run.decisions)


def test_a_silent_grid_for_a_moment_holds_a_resynchronisation(config: SiteConfig) -> None:
    """Unknown is not unhealthy (safety rule 5): meter and breaker both silent for a few
    cycles held the resynchronisation; it was abandoned as "grid unhealthy again", and
    the next attempt was blocked for a minute (seen in the SIGKILL crash test under
    load). It restarts the return-to-service clock, so nothing closes on it."""
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.grid_present = True
    run.field.phase_deg = 170.0  # out of phase: the island slips towards the grid's
    run.until(Mode.RESYNCHRONISING, config.grid.return_to_service_s + 1.0)
    run.field.silent |= {"grid_meter", "pcc_breaker"}
    run.step(3)
    assert run.modes.mode is Mode.RESYNCHRONISING
    assert all(d.outputs.pcc is not BreakerCommand.CLOSE for d in run.decisions[-3:])
    run.field.silent -= {"grid_meter", "pcc_breaker"}
    back = len(run.decisions)
    run.until(Mode.GRID_CONNECTED, config.grid.return_to_service_s + 60.0)
    closes = [i for i, d in enumerate(run.decisions) if d.outputs.pcc is BreakerCommand.CLOSE]
    assert closes and (closes[0] - back) * run.dt >= config.grid.return_to_service_s - 1e-6
    assert "resync_failed" not in run.modes.memory.active_alarms
    assert not run.field.back_feed and not run.field.closed_out_of_sync


def test_a_breaker_silent_right_after_the_close_black_starts_nothing(
    config: SiteConfig,
) -> None:
    """The close went out; the breaker closed and then went silent, and the interlocked
    former follows the grid. Unknown is not lost: the site waits for the breaker (the bus
    is live) rather than black-starting with the PCC perhaps closed."""
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.grid_present = True
    run.until(Mode.RESYNCHRONISING, config.grid.return_to_service_s + 1.0)
    while run.field.breaker is not BreakerPosition.CLOSED:
        run.step()
    run.field.silent.add("pcc_breaker")
    run.step(10)
    assert run.modes.mode is Mode.RESYNCHRONISING, run.transitions
    run.field.silent.discard("pcc_breaker")
    run.until(Mode.GRID_CONNECTED, 1.0)
    assert "black_start" not in [t[1] for t in run.transitions[-3:]]
    assert not run.field.back_feed


def test_flicker_restarts_the_return_to_service_timer(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    for _ in range(5):
        run.field.grid_present = True
        run.advance(100.0)
        run.field.grid_present = False
        run.advance(1.0)
    run.field.grid_present = True
    run.advance(250.0)
    assert run.modes.mode is Mode.ISLANDED
    run.until(Mode.RESYNCHRONISING, 60.0)


def test_full_cycle_reconnects_only_in_sync_and_restores_every_load(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.grid_present = True
    run.field.grid_frequency_hz = 49.95
    run.until(Mode.RESYNCHRONISING, config.grid.return_to_service_s + 5)
    run.until(Mode.GRID_CONNECTED, 30.0)
    assert not run.field.closed_out_of_sync
    run.advance(10.0)
    # Every bus load: the grid carries them. The V2L circuits stay on their own cars and
    # follow the endurance policy with those cars' energy (issue 11).
    bus = [load.id for load in config.loads if load.supply == "bus"]
    assert all(run.field.relays[load] for load in bus)
    assert all(m is ChargerMode.FOLLOW for m in run.field.modes.values())
    assert all(sp <= 0 for sp in run.field.setpoints.values())  # charging again


def without_interlocks(config: SiteConfig) -> SiteConfig:
    devices = {
        name: device.model_copy(update={"pcc_interlock": False})
        for name, device in config.devices.items()
    }
    return config.model_copy(update={"devices": devices})


def test_a_former_with_a_pcc_interlock_is_closed_onto_the_grid_while_forming(
    config: SiteConfig,
) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.grid_present = True
    run.until(Mode.GRID_CONNECTED, config.grid.return_to_service_s + 30)
    close = next(d for d in run.decisions if d.outputs.pcc is BreakerCommand.CLOSE)
    assert ChargerMode.FORM in {c.mode for c in close.outputs.chargers.values()}  # seamless
    assert not run.field.back_feed and not run.field.closed_out_of_sync


def test_a_late_breaker_reading_is_never_closed_on(config: SiteConfig) -> None:
    """The synchronisation check of a reading whose reply came cycles late measured an
    angle that has moved since: no close on it (rule 2), until a fresh one passes."""
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.grid_present = True
    run.field.pcc_age_s = 0.1  # every reading five cycles old
    run.until(Mode.RESYNCHRONISING, config.grid.return_to_service_s + 5)
    run.advance(20.0)
    assert all(d.outputs.pcc is not BreakerCommand.CLOSE for d in run.decisions)
    assert run.modes.mode is Mode.RESYNCHRONISING
    run.field.pcc_age_s = 0.0
    run.until(Mode.GRID_CONNECTED, 30.0)
    assert not run.field.back_feed and not run.field.closed_out_of_sync


def test_a_former_without_a_pcc_interlock_reconnects_break_before_make(
    config: SiteConfig,
) -> None:
    run = new_run(without_interlocks(config))
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.advance(5.0)
    relays = dict(run.field.relays)
    run.field.grid_present = True
    run.until(Mode.RESYNCHRONISING, config.grid.return_to_service_s + 5)
    start = len(run.decisions) - 1  # the cycle that entered resynchronising
    run.until(Mode.GRID_CONNECTED, 30.0)
    during = run.decisions[start:-1]
    close = next(d for d in during if d.outputs.pcc is BreakerCommand.CLOSE)
    # every source off before the PCC closes onto the dead bus; no load relay switched
    assert all(c.mode is ChargerMode.OFF for c in close.outputs.chargers.values())
    assert any("break before make" in note for d in during for note in d.notes)
    assert all(relays[k] == on for d in during for k, on in d.outputs.loads.items())
    assert not run.field.back_feed and not run.field.closed_out_of_sync


def test_a_break_before_make_reconnection_that_fails_black_starts(config: SiteConfig) -> None:
    run = new_run(without_interlocks(config), breaker_stuck=True)
    run.step()
    run.field.grid_present = False
    run.field.breaker = BreakerPosition.OPEN  # it opened by hand, then stuck
    run.until(Mode.ISLANDED, 10.0)
    run.field.grid_present = True
    run.until(Mode.RESYNCHRONISING, config.grid.return_to_service_s + 5)
    run.until(Mode.BLACK_START, config.sync.timeout_s + 5)  # the PCC never closes
    assert run.modes.memory.active_alarms.get("resync_failed")
    run.until(Mode.ISLANDED, 10.0)
    assert not run.field.back_feed


def test_a_silent_breaker_never_starts_a_break_before_make_reconnection(
    config: SiteConfig,
) -> None:
    """Stopping the former is only safe for a close that can be sent: not to a silent
    breaker, whose position is unknown (the OCPP site fuzzer's finding)."""
    run = new_run(without_interlocks(config))
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.silent.add("pcc_breaker")
    run.field.grid_present = True
    run.until(Mode.RESYNCHRONISING, config.grid.return_to_service_s + 5)
    start = len(run.decisions) - 1
    run.step()
    assert "PCC breaker is silent" in run.modes.memory.active_alarms.get("resync_blocked", "")
    run.until(Mode.ISLANDED, config.sync.timeout_s + 5)  # times out and keeps the island
    during = run.decisions[start:]
    assert all(d.outputs.pcc is BreakerCommand.NONE for d in during)
    assert all(forms(d) for d in during)  # the former was never stopped
    assert not any("break before make" in note for d in during for note in d.notes)
    assert not run.field.back_feed


def test_losing_the_former_black_starts_on_another(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    first = run.field.former()
    assert first is not None
    run.field.faulted.add(first)
    run.until(Mode.BLACK_START, 1.0)
    run.until(Mode.ISLANDED, 6.0)
    second = run.modes.memory.former_id
    assert second is not None and second != first
    assert "former_lost" in run.modes.memory.active_alarms


def test_shortfall_goes_to_emergency_with_life_safety_only(config: SiteConfig) -> None:
    run = new_run(config)
    for cid in ("charger_2", "charger_3", "charger_4"):
        run.field.soc[cid] = 20.0  # below their reserves: nothing to give
    run.field.soc["charger_1"] = 80.0
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.soc["charger_1"] = 31.0  # former close to its 30 % reserve
    run.field.faulted.add("charger_1")
    run.until(Mode.BLACK_START)
    run.until(Mode.EMERGENCY, 10.0)
    assert "emergency" in run.modes.memory.active_alarms
    assert not run.field.back_feed


def test_emergency_sheds_all_but_life_safety(config: SiteConfig) -> None:
    run = new_run(config)
    for cid in ("charger_2", "charger_3", "charger_4"):
        run.field.soc[cid] = 20.0
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.advance(1.0)
    # the only vehicle left drops to its reserve: its limit goes to zero
    run.field.soc["charger_1"] = 30.2
    run.until(Mode.EMERGENCY, 2.0)
    run.advance(1.0)
    for load in config.loads:
        if load.supply == "bus" and load.tier is not Tier.LIFE_SAFETY:
            assert run.field.relays[load.id] is False, load.id


def test_planned_island_ramps_then_opens(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    assert run.modes.request_planned_island() == "accepted"
    run.until(Mode.ISLANDED, 40.0)
    assert ("grid_connected", "planned_islanding", "planned_island") in run.transitions
    assert not run.field.back_feed


def test_never_two_relay_changes_per_load_while_steady(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.advance(20.0)
    changes: dict[str, int] = {}
    before = dict(run.field.relays)
    for _ in range(1000):
        run.step()
        for lid, on in run.field.relays.items():
            if on != before[lid]:
                changes[lid] = changes.get(lid, 0) + 1
        before = dict(run.field.relays)
    assert changes == {}


def test_operator_shed_holds_a_load_off_until_restored(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    assert run.modes.shed_load("lift") == "accepted"
    run.step(2)
    assert run.field.relays["lift"] is False
    assert run.modes.restore_load("lift").startswith("accepted")
    run.advance(config.loads[12].min_off_s + 1)
    assert run.field.relays["lift"] is True
    assert run.modes.shed_load("no_such_load").startswith("refused")


def test_vehicle_setpoints_stay_within_ratings_and_above_reserve(config: SiteConfig) -> None:
    run = new_run(config)
    run.field.soc["charger_3"] = 25.3  # just above its 25 % reserve
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.advance(2.0)
    for d in run.decisions:
        for cid, cmd in d.outputs.chargers.items():
            assert -11000.0 <= cmd.power_setpoint_w <= 11000.0
            vehicle = config.vehicle_at(cid)
            assert vehicle is not None
            assert cmd.min_soc_pct >= vehicle.reserve_soc_pct
            if cid == "charger_3" and cmd.mode is ChargerMode.FOLLOW:
                assert cmd.power_setpoint_w <= 0.0


def test_unregistered_vehicle_is_never_discharged(config: SiteConfig) -> None:
    snap_vehicle = VehicleState(
        "charger_3",
        None,
        True,
        False,
        ChargerState.IDLE,
        ChargerMode.FOLLOW,
        90.0,
        100.0,
        77400.0,
        0.0,
        11000.0,
        11000.0,
        400.0,
        50.0,
        True,
    )
    assert snap_vehicle.energy_above_reserve_wh == 0.0
    _ = replace(snap_vehicle)


# ----------------------------------------------------------------- regressions from review


def forms(decision: Decision) -> set[str]:
    return {cid for cid, c in decision.outputs.chargers.items() if c.mode is ChargerMode.FORM}


def test_silent_former_on_a_live_bus_is_not_replaced_by_a_second_one(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    former = run.field.former()
    assert former is not None
    run.field.silent.add(former)  # stops answering, but physically keeps forming
    run.advance(2.0)
    assert run.modes.mode is Mode.ISLANDED
    for d in run.decisions[-100:]:
        assert forms(d) <= {former}


def test_black_start_never_forms_onto_a_live_bus_of_unknown_origin(config: SiteConfig) -> None:
    run = new_run(config)
    run.field.breaker = BreakerPosition.OPEN
    run.field.modes["charger_2"] = ChargerMode.FORM  # something already energises the bus
    run.field.silent.add("charger_2")
    decision = run.step()
    assert run.modes.mode is Mode.BLACK_START
    decision = run.step(3)
    assert forms(decision) == set()
    assert "bus_live_unknown_source" in run.modes.memory.active_alarms


def test_planned_islanding_never_forms_while_the_pcc_is_closed(config: SiteConfig) -> None:
    run = new_run(config, breaker_stuck=True)
    run.step()
    assert run.modes.request_planned_island() == "accepted"
    run.advance(config.grid.planned_island_timeout_s + 5 * config.grid.breaker_operate_timeout_s)
    for d in run.decisions:
        assert forms(d) == set()
    # the breaker never opened: planned islanding is abandoned with an alarm, on the grid
    assert run.modes.mode is Mode.GRID_CONNECTED
    assert "pcc_fail_to_open" in run.modes.memory.active_alarms
    assert ("planned_islanding", "grid_connected", "open_failed") in run.transitions


def test_planned_island_holds_until_the_operator_asks_to_reconnect(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    assert run.modes.request_planned_island() == "accepted"
    run.until(Mode.ISLANDED, 60.0)
    run.advance(config.grid.return_to_service_s + 10)
    assert run.modes.mode is Mode.ISLANDED
    assert run.modes.request_reconnect().startswith("accepted")
    run.until(Mode.GRID_CONNECTED, 30.0)
    assert not run.field.closed_out_of_sync


def test_planned_island_is_refused_without_a_grid_former(config: SiteConfig) -> None:
    run = new_run(config)
    for cid in config.chargers:
        run.field.soc[cid] = 10.0
    run.step()
    assert run.modes.request_planned_island().startswith("refused")


def test_lost_former_during_resync_black_starts_and_never_closes(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.grid_present = True
    run.advance(config.grid.return_to_service_s - 1.0)
    run.field.phase_deg = 180.0  # in antiphase: seconds of slip before any close
    run.until(Mode.RESYNCHRONISING, 5.0)
    former = run.field.former()
    assert former is not None
    run.field.faulted.add(former)
    decision = run.step()
    assert run.modes.mode is Mode.BLACK_START
    assert decision.outputs.pcc is not BreakerCommand.CLOSE
    for d in run.decisions[-3:]:
        assert not (forms(d) and d.outputs.pcc is BreakerCommand.CLOSE)


def site_60hz(config: SiteConfig, **grid: object) -> SiteConfig:
    """The reference site on a 60 Hz grid with the IEEE 1547-2018 defaults: the enter-service
    window 59.5-60.1 Hz and (no trip_table given) the Category II must-trip table."""
    text = SITE.read_text(encoding="utf-8")
    lines = [
        line
        for line in text.splitlines()
        if not line.startswith(("trip_table", "ride_through_s", "frequency_window_hz"))
    ]
    text = "\n".join(lines).replace(
        "nominal_frequency_hz = 50.0",
        "nominal_frequency_hz = 60.0\nfrequency_window_hz = [59.5, 60.1]",
    )
    site = parse_site(tomllib.loads(text), "site_60hz.toml")
    return site.model_copy(update={"grid": site.grid.model_copy(update=grid)}) if grid else site


def first_transition(run: Run, dest: str) -> float | None:
    for d in run.decisions:
        for t in d.transitions:
            if t.dest == dest:
                return t.time_s
    return None


def test_a_60_hz_site_rides_through_a_60_2_hz_grid(config: SiteConfig) -> None:
    """Issue 11: the enter-service window (59.5-60.1 Hz) was also the trip setting, so a
    60 Hz site on a 60.2 Hz grid islanded after 0.2 s."""
    site = site_60hz(config)
    run = new_run(site, grid_frequency_hz=60.0, bus_frequency_hz=60.0)
    run.step()
    assert run.modes.mode is Mode.GRID_CONNECTED
    run.field.grid_frequency_hz = 60.2
    run.advance(5.0)
    assert run.modes.mode is Mode.GRID_CONNECTED
    assert run.field.breaker is BreakerPosition.CLOSED
    assert all(d.outputs.pcc is not BreakerCommand.OPEN for d in run.decisions)


def test_a_60_hz_site_trips_on_of2_within_its_clearing_time(config: SiteConfig) -> None:
    site = site_60hz(config)
    run = new_run(site, grid_frequency_hz=60.0, bus_frequency_hz=60.0)
    run.step()
    start = run.now
    run.field.grid_frequency_hz = 62.5
    run.advance(0.5)
    tripped = first_transition(run, "islanding")
    assert tripped is not None
    assert 0.16 - 1e-6 <= tripped - start <= 0.16 + run.dt + 1e-6
    reasons = [t.reason for d in run.decisions for t in d.transitions if t.dest == "islanding"]
    assert "must-trip OF2" in reasons[0]


def test_a_restart_inside_the_trip_table_stays_on_the_grid(config: SiteConfig) -> None:
    site = site_60hz(config)
    run = new_run(site, grid_frequency_hz=60.2, bus_frequency_hz=60.2)
    run.step()
    assert run.modes.mode is Mode.GRID_CONNECTED
    beyond = new_run(site, grid_frequency_hz=61.5, bus_frequency_hz=61.5)
    beyond.step()
    assert beyond.modes.mode is Mode.ISLANDING


def test_frequency_inside_the_trip_table_is_ridden_through(config: SiteConfig) -> None:
    """The reference site (EN 50549 table): 49.4 Hz is outside the enter-service window
    (49.5-50.5 Hz) but inside UF1 (47.5 Hz): stays connected; beyond UF1 for less than its
    0.1 s clearing time is ridden through, for longer it islands."""
    run = new_run(config)
    run.step()
    run.field.grid_frequency_hz = 49.4
    run.advance(30.0)
    assert run.modes.mode is Mode.GRID_CONNECTED
    run.field.grid_frequency_hz = 47.4
    run.advance(0.06)
    run.field.grid_frequency_hz = 50.0
    run.advance(1.0)
    assert run.modes.mode is Mode.GRID_CONNECTED
    start = run.now
    run.field.grid_frequency_hz = 47.4
    run.advance(0.2)
    tripped = first_transition(run, "islanding")
    assert tripped is not None and tripped - start <= 0.1 + run.dt + 1e-6


def test_a_sag_inside_the_trip_table_is_ridden_through(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_voltage_v = 0.88 * 400.0  # below the window's 0.917 pu, above UV1 0.85
    run.advance(30.0)
    assert run.modes.mode is Mode.GRID_CONNECTED
    run.field.grid_voltage_v = 0.80 * 400.0  # beyond UV1 (0.85 pu, 0.3 s) for 0.2 s
    run.advance(0.2)
    run.field.grid_voltage_v = 400.0
    run.advance(1.0)
    assert run.modes.mode is Mode.GRID_CONNECTED
    start = run.now
    run.field.grid_voltage_v = 0.80 * 400.0
    run.advance(0.5)
    tripped = first_transition(run, "islanding")
    assert tripped is not None and 0.3 - 1e-6 <= tripped - start <= 0.3 + run.dt + 1e-6


def test_silence_mid_excursion_trips_nothing(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_frequency_hz = 47.0
    run.field.silent.update({"grid_meter", "pcc_breaker"})
    run.advance(2.0)
    assert run.modes.mode is Mode.GRID_CONNECTED
    assert "grid_unknown" in run.modes.memory.active_alarms


def test_after_a_trip_the_site_waits_for_the_enter_service_window_and_says_why_once(
    config: SiteConfig,
) -> None:
    site = config.model_copy(
        update={"grid": config.grid.model_copy(update={"return_to_service_s": 20.0})}
    )
    run = new_run(site)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.grid_present = True
    run.field.grid_frequency_hz = 50.7  # back, inside the trip table, outside 49.5-50.5 Hz
    run.advance(60.0)
    assert run.modes.mode is Mode.ISLANDED
    assert all(d.outputs.pcc is not BreakerCommand.CLOSE for d in run.decisions)
    raised = [a for d in run.decisions for a in d.alarms if a.code == WAITING_ALARM and a.raised]
    assert len(raised) == 1
    assert "frequency 50.70 Hz above the enter-service limit 50.5 Hz" in raised[0].message
    run.field.grid_frequency_hz = 50.0
    run.step()
    assert WAITING_ALARM not in run.modes.memory.active_alarms
    run.advance(15.0)
    assert run.modes.mode is Mode.ISLANDED  # the whole return-to-service delay, from now
    run.until(Mode.RESYNCHRONISING, 10.0)
    run.until(Mode.GRID_CONNECTED, 30.0)
    assert not run.field.closed_out_of_sync


def test_a_dead_grid_islands_at_once(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    decision = run.step()
    assert run.modes.mode is Mode.ISLANDING
    assert decision.outputs.pcc is BreakerCommand.OPEN


def test_a_silent_breaker_does_not_tear_down_a_working_island(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    run.field.grid_present = False
    run.until(Mode.ISLANDED)
    run.field.silent.add("pcc_breaker")
    run.advance(1.0)
    assert run.modes.mode is Mode.ISLANDED
    assert "pcc_fail_to_open" not in run.modes.memory.active_alarms


def test_medical_fridge_keeps_its_minimum_off_time(config: SiteConfig) -> None:
    run = new_run(config)
    run.step()
    assert run.modes.shed_load("medical_fridge") == "accepted"
    run.step(2)
    assert run.field.relays["medical_fridge"] is False
    run.modes.restore_load("medical_fridge")
    run.advance(30.0)
    assert run.field.relays["medical_fridge"] is False  # 60 s compressor protection
    run.advance(31.0)
    assert run.field.relays["medical_fridge"] is True


def test_starting_commands_nothing_at_all(config: SiteConfig) -> None:
    run = new_run(config)
    run.field.silent.add("pcc_breaker")
    decision = run.step()
    assert decision.outputs.loads == {} and decision.outputs.outlets == {}


def vehicle(
    cid: str, power_w: float = 0.0, state: ChargerState = ChargerState.IDLE
) -> VehicleState:
    return VehicleState(
        cid,
        cid,
        True,
        True,
        state,
        ChargerMode.FOLLOW,
        80.0,
        30.0,
        77000.0,
        power_w,
        11000.0,
        11000.0,
        400.0,
        50.0,
        True,
    )


def test_secure_shares_keep_the_former_able_to_lose_the_pv(config: SiteConfig) -> None:
    former = vehicle("f", state=ChargerState.FORMING)
    running = [former, vehicle("a"), vehicle("b")]
    served, pv = 12_400.0, 15_000.0  # more load than the former's 11 kW, and a PV surplus
    shares = secure_shares(running, former, served, pv, config.dispatch)
    followers = shares["a"] + shares["b"]
    margin = config.dispatch.shed_margin_w
    assert followers >= served + margin - 11_000.0 - 1.0  # the PV may trip: the former copes
    assert shares["f"] == pytest.approx(served - pv - followers)  # and absorbs the rest
    assert shares["f"] + pv <= 11_000.0  # its output the instant the PV is gone


def test_secure_shares_no_circular_flow_when_the_former_carries_all_alone(
    config: SiteConfig,
) -> None:
    former = vehicle("f", state=ChargerState.FORMING)
    shares = secure_shares([former, vehicle("a")], former, 5_000.0, 8_000.0, config.dispatch)
    assert shares["a"] < 0.0  # the follower soaks up PV; nobody discharges into the former
    assert shares["f"] <= 0.0


def test_cold_load_factor_keeps_black_start_headroom(config: SiteConfig) -> None:
    def first_loads(cfg: SiteConfig) -> set[str]:
        run = new_run(cfg)
        run.step()
        run.field.grid_present = False
        decision = run.step()
        assert run.modes.mode is Mode.ISLANDING
        return {load_id for load_id, on in decision.outputs.loads.items() if on}

    rated = first_loads(config)
    dispatch = config.dispatch.model_copy(update={"cold_load_factor": 1.5})
    cold = first_loads(config.model_copy(update={"dispatch": dispatch}))
    life_safety = {load.id for load in config.loads if load.tier is Tier.LIFE_SAFETY}
    assert life_safety <= cold < rated  # fewer loads on the first former, life-safety first
    bus = {load.id: load for load in config.loads if load.supply == "bus"}
    assert sum(bus[i].rated_power_w for i in cold if i in bus) * 1.5 <= 11_000 - 500


# ----------------------------------------------------------------- what a charger holds


def bus_on_at_first_form(run: Run) -> tuple[float, set[str]]:
    """Step until a former is told FORM; the bus loads then on [W rated] and their ids."""
    end = run.now + 10.0
    while True:
        assert run.now < end, f"no FORM in 10 s (mode {run.modes.mode})"
        decision = run.step()
        if forms(decision):
            on = {
                load.id
                for load in run.modes.config.loads
                if load.supply == "bus" and run.field.relays[load.id]
            }
            rated = sum(load.rated_power_w for load in run.modes.config.loads if load.id in on)
            return rated, on


def test_black_start_counts_what_a_charger_still_holds_when_its_off_is_not_taken(
    config: SiteConfig,
) -> None:
    """charger_3 charges at 9 kW and takes no command (its writes are refused): once the bus
    is live it draws 9 kW again. The 11 kW former cannot carry that and the 4.4 kW of
    life-safety loads, so after waiting for the zero it forms onto what still fits."""
    run = new_run(config)
    run.field.modes["charger_3"] = ChargerMode.FOLLOW
    run.field.setpoints["charger_3"] = -9000.0
    run.field.deaf.add("charger_3")
    run.step()
    run.field.grid_present = False
    run.until(Mode.BLACK_START, 2.0)
    entered = run.now
    rated, _ = bus_on_at_first_form(run)
    assert run.now - entered >= 1.0 - 1e-9  # ZERO_CONFIRM_WAIT_S
    capacity = config.chargers["charger_1"].rating_w or 0.0
    assert rated * config.dispatch.cold_load_factor + 9000.0 <= capacity
    run.until(Mode.ISLANDED, 2.0)


def test_black_start_waits_for_a_slow_charger_to_take_its_zero_and_keeps_life_safety(
    config: SiteConfig,
) -> None:
    """The same charger takes its OFF 0.3 s late: the former waits for it rather than
    shedding life-safety loads to make room for a draw that is going away."""
    run = new_run(config)
    run.field.modes["charger_3"] = ChargerMode.FOLLOW
    run.field.setpoints["charger_3"] = -9000.0
    run.field.deaf.add("charger_3")
    run.step()
    run.field.grid_present = False
    run.until(Mode.BLACK_START, 2.0)
    run.advance(0.3)
    assert run.field.former() is None
    run.field.deaf.clear()
    _, on = bus_on_at_first_form(run)
    assert {"emergency_lighting", "radio_comms", "medical_fridge", "oxygen_concentrators"} <= on
    assert run.field.modes["charger_3"] is ChargerMode.OFF


def test_a_charger_with_an_unknown_held_setpoint_counts_at_its_charging_limit(
    config: SiteConfig,
) -> None:
    """Unknown is unsafe (rule 5): an answering charger whose held setpoint is unknown (an
    OCPP station that reconnected and took nothing since) counts at its charging limit."""
    from resilience.modes import held_charge_w

    run = new_run(config)
    v = run.field.snapshot(0.0).vehicle("charger_3")
    assert held_charge_w(replace(v, held_setpoint_w=None)) == v.max_charge_w
    assert held_charge_w(replace(v, held_setpoint_w=-4000.0)) == 4000.0
    assert held_charge_w(replace(v, held_setpoint_w=3000.0)) == 0.0  # discharge: no load
    assert held_charge_w(replace(v, held_setpoint_w=None, plugged=False)) == 0.0
