"""The controller against the simulated site over real Modbus TCP on loopback.

Every device of the reference site is a pymodbus server of `firmware_sim` bound to
a free port on 127.0.0.1; the controller is the real one (`service.start`: drivers,
buses, store, control loop). The safety rules are checked on what the *plant*
recorded (its violations, breaker and relay history), not on what the controller
believes. The return-to-service delay is shortened so a whole outage runs in seconds.

Tests wait on the controller's per-cycle status (an asyncio.Event set by a listener)
with a deadline, never on bare sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_sim.plant import Plant, PlantInit
from firmware_sim.server import SimSite
from resilience.config import SiteConfig, load_site
from resilience.cycle import SiteStatus
from resilience.model import BreakerPosition, Mode, Tier
from resilience.service import Running, quiet_pymodbus, start, stop_running
from tests.sites import modbus_only, without_endurance_policy

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
RETURN_TO_SERVICE_S = 2.0

pytestmark = pytest.mark.integration


def site_config(**grid: float) -> SiteConfig:
    """The reference site with its slow timers shortened so an outage fits in seconds, and
    the endurance policy off: these are the island's mechanics, with every load it can
    carry (the policy is tested in tests/policies, tests/drills and tests/test_keep_on.py)."""
    config = without_endurance_policy(modbus_only(load_site(SITE)))
    loads = [
        load.model_copy(update={"min_off_s": min(load.min_off_s, 1.0)}) for load in config.loads
    ]
    return config.model_copy(
        update={
            "grid": config.grid.model_copy(
                update={"return_to_service_s": RETURN_TO_SERVICE_S, **grid}
            ),
            "loads": loads,
        }
    )


@dataclass
class Site:
    sim: SimSite
    running: Running
    config: SiteConfig
    changed: asyncio.Event

    @property
    def plant(self) -> Plant:
        return self.sim.plant

    @property
    def status(self) -> SiteStatus:
        status = self.running.controller.status
        assert status is not None
        return status

    async def until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait, cycle by cycle, until `predicate` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                mode = self.running.controller.status
                raise AssertionError(
                    f"timed out after {timeout_s} s waiting for {what};"
                    f" mode {mode.mode if mode else None}; violations {self.plant.violations};"
                    f" {self.silent_devices()}"
                )
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=remaining)
            except TimeoutError:
                continue

    def silent_devices(self) -> str:
        """What the controller holds about each unavailable device (for a timed-out wait)."""
        controller = self.running.controller
        now = controller.clock()
        rows = [
            f"{s.device_id}: {s.error!r}, {s.failures} failures, fast {s.fast},"
            f" last ok {None if s.last_ok_s is None else round(now - s.last_ok_s, 2)} s ago,"
            f" in flight {s.inflight is not None and not s.inflight.done()}"
            f" (asked {round(now - s.asked_s, 2)} s ago),"
            f" next due in {round(s.next_due_s - now, 2)} s, transport {bus!r}"
            f" connected {getattr(bus, 'connected', None)}, retry {getattr(bus, 'retry_at', None)}"
            for s in controller.slots.values()
            if not s.available
            for bus in [getattr(s.driver, "transport", None)]
        ]
        return "unavailable: " + ("; ".join(rows) or "none")

    async def mode(self, mode: Mode, timeout_s: float) -> None:
        await self.until(
            lambda: (
                self.running.controller.status is not None
                and self.running.controller.status.mode is mode
            ),
            timeout_s,
            f"mode {mode.value}",
        )

    def assert_safe(self) -> None:
        """The six safety rules, as far as the plant can referee them."""
        assert self.plant.violations == [], self.plant.violations


@pytest.fixture
async def site(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    quiet_pymodbus()
    marker = request.node.get_closest_marker("plant")
    init = marker.kwargs.get("init") if marker else None
    ratings: dict[str, float] = marker.kwargs.get("ratings", {}) if marker else {}
    config = site_config()
    if ratings:
        loads = [
            load.model_copy(update={"rated_power_w": ratings.get(load.id, load.rated_power_w)})
            for load in config.loads
        ]
        config = config.model_copy(update={"loads": loads})
    async with SimSite(config, bind_free_ports=True, init=init) as sim:
        running = await start(sim.controller_config(), store_path=str(tmp_path / "site.sqlite"))
        changed = asyncio.Event()
        running.controller.on_status(lambda _status: changed.set())
        state = Site(sim, running, config, changed)
        try:
            yield state
        finally:
            await stop_running(state.running)  # a test may have replaced it (restart)


def bus_loads_on(site: Site, tier: Tier) -> list[str]:
    return [
        load.id
        for load in site.config.loads
        if load.supply == "bus" and load.tier is tier and site.plant.load_on(load.id)
    ]


async def test_full_outage_cycle_island_and_reconnect(site: Site) -> None:
    await site.mode(Mode.GRID_CONNECTED, 5)
    await site.until(
        lambda: all(
            site.plant.load_on(load.id) for load in site.config.loads if load.supply == "bus"
        ),
        5,
        "every load on while grid-connected",
    )
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 5)
    assert site.plant.breaker_position is BreakerPosition.OPEN
    assert site.plant.bus_live
    await site.until(
        lambda: (
            len(bus_loads_on(site, Tier.LIFE_SAFETY)) == 4
            and len(bus_loads_on(site, Tier.CRITICAL)) == 4
        ),
        5,
        "life-safety and critical loads restored in island",
    )
    site.plant.grid_return()
    returned = asyncio.get_running_loop().time()
    await site.mode(Mode.RESYNCHRONISING, RETURN_TO_SERVICE_S + 3)
    assert asyncio.get_running_loop().time() - returned >= RETURN_TO_SERVICE_S - 0.05
    await site.mode(Mode.GRID_CONNECTED, 20)
    assert site.plant.breaker_position is BreakerPosition.CLOSED
    await site.until(
        lambda: all(
            site.plant.load_on(load.id) for load in site.config.loads if load.supply == "bus"
        ),
        15,
        "every load restored after reconnection",
    )
    site.assert_safe()
    assert await asyncio.to_thread(site.running.store.flush, 5.0)
    events = site.running.store.events(kinds=["transition"], limit=50)
    path = [e.mode_to for e in reversed(events)]
    assert path[:4] == ["grid_connected", "islanding", "black_start", "islanded"]
    assert path[-2:] == ["resynchronising", "grid_connected"]


@pytest.mark.plant(
    init=PlantInit(
        soc_pct={"fleet_1": 80.0, "fleet_2": 80.0, "fleet_3": 25.2, "fleet_4": 40.2},
        pv_available_fraction=0.0,
    ),
    ratings={"water_pump": 4000.0},  # life-safety + critical = 11.4 kW: more than one car
)
async def test_shortfall_ends_in_emergency_with_life_safety_only(site: Site) -> None:
    await site.mode(Mode.GRID_CONNECTED, 5)
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 5)
    assert site.plant.former_ids == ("charger_1",)
    # two cars: the island restores up to its N-1 capacity (one car), life-safety first
    await site.until(
        lambda: (
            len(bus_loads_on(site, Tier.LIFE_SAFETY)) == 4
            and len(bus_loads_on(site, Tier.CRITICAL)) >= 2
        ),
        5,
        "life-safety and most of the critical tier served",
    )
    # the follower with the only other energy fails: one 11 kW car cannot carry 11.4 kW
    site.plant.fault("charger_2")
    await site.mode(Mode.EMERGENCY, 5)
    assert site.plant.bus_live  # the island survives on life-safety
    await site.until(
        lambda: (
            not bus_loads_on(site, Tier.CRITICAL)
            and not bus_loads_on(site, Tier.ESSENTIAL)
            and not bus_loads_on(site, Tier.COMFORT)
        ),
        5,
        "everything but life-safety shed",
    )
    assert "emergency" in site.status.alarms
    assert await asyncio.to_thread(site.running.store.flush, 5.0)
    alarms = site.running.store.alarms(active_only=True)
    assert any(a.code == "emergency" for a in alarms)
    site.assert_safe()


async def test_losing_the_grid_former_black_starts_on_another(site: Site) -> None:
    await site.mode(Mode.GRID_CONNECTED, 5)
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 5)
    first = site.plant.former_ids
    assert len(first) == 1
    site.plant.fault(first[0])
    await site.mode(Mode.BLACK_START, 5)
    await site.mode(Mode.ISLANDED, 10)
    second = site.plant.former_ids
    assert second and second[0] != first[0]
    await site.until(
        lambda: len(bus_loads_on(site, Tier.LIFE_SAFETY)) == 4, 5, "life-safety back on"
    )
    site.assert_safe()


async def test_breaker_that_fails_to_open_never_lets_a_vehicle_energise(site: Site) -> None:
    await site.mode(Mode.GRID_CONNECTED, 5)
    site.plant.fail_to_operate(True)
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDING, 5)
    await site.until(lambda: "pcc_fail_to_open" in site.status.alarms, 5, "fail-to-open alarm")
    assert site.plant.former_ids == ()
    assert not site.plant.bus_live
    site.plant.fail_to_operate(False)
    await site.mode(Mode.ISLANDED, 10)
    site.assert_safe()


async def test_restart_mid_island_resumes_without_acting_on_stale_beliefs(
    site: Site, tmp_path: Path
) -> None:
    await site.mode(Mode.GRID_CONNECTED, 5)
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 5)
    await stop_running(site.running)
    # a new controller process: empty memory, the same store
    running = await start(site.sim.controller_config(), store_path=str(tmp_path / "site.sqlite"))
    site.running = running
    running.controller.on_status(lambda _status: site.changed.set())
    await site.mode(Mode.ISLANDED, 5)
    assert await asyncio.to_thread(running.store.flush, 5.0)
    transitions = [e for e in running.store.events(kinds=["transition"], limit=5)]
    assert transitions[0].trigger == "field_islanded"
    assert site.plant.bus_live
    site.assert_safe()


async def test_operator_command_is_audited_before_it_is_answered(site: Site) -> None:
    await site.mode(Mode.GRID_CONNECTED, 5)
    controller = site.running.controller
    result = await controller.submit(
        "shed_load", {"load_id": "lift"}, actor="ayse", role="operator"
    )
    assert result.outcome == "accepted"
    commands = site.running.store.commands(limit=5)
    assert commands[0].command == "shed_load" and commands[0].actor == "ayse"
    site.plant.excuse_load("lift")
    await site.until(lambda: not site.plant.load_on("lift"), 5, "lift shed")
    refused = await controller.submit("reconnect", {}, actor="ayse", role="operator")
    assert refused.outcome == "refused"
    site.assert_safe()


async def test_planned_island_holds_then_reconnects_on_request(site: Site) -> None:
    await site.mode(Mode.GRID_CONNECTED, 5)
    controller = site.running.controller
    result = await controller.submit("planned_island", {}, actor="ayse", role="operator")
    assert result.outcome == "accepted", result.detail
    await site.mode(Mode.ISLANDED, 40)
    assert site.plant.breaker_position is BreakerPosition.OPEN
    # the grid is healthy all along, yet a planned island stays until asked
    loop = asyncio.get_running_loop()
    held_until = loop.time() + RETURN_TO_SERVICE_S + 1.0
    await site.until(lambda: loop.time() > held_until, RETURN_TO_SERVICE_S + 3, "hold")
    assert site.status.mode is Mode.ISLANDED
    result = await controller.submit("reconnect", {}, actor="ayse", role="operator")
    assert result.outcome == "accepted", result.detail
    await site.mode(Mode.GRID_CONNECTED, 20)
    site.assert_safe()
