"""The controller's snapshot: parts reused while the field is steady, rebuilt when it is not.

`Controller.build_snapshot` keeps last cycle's immutable states when their inputs
(the driver's reading, a tier override, the vehicle registered at a connector) are
unchanged. These tests check that every kind of change still reaches the snapshot
the cycle it happens, against the simulated plant through the real drivers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_sim.inprocess import build_inprocess_drivers
from firmware_sim.plant import Plant, PlantInit
from resilience.config import SiteConfig, load_site
from resilience.cycle import Controller
from resilience.model import Snapshot, Tier
from resilience.store import Store

SITE = Path(__file__).resolve().parents[1] / "config" / "site.toml"
WALL0 = 1.7e9


@dataclass
class Rig:
    config: SiteConfig
    plant: Plant
    controller: Controller
    now: list[float]

    async def cycle(self, dt: float = 0.02) -> Snapshot:
        self.plant.step(dt)
        self.now[0] += dt
        await self.controller.cycle_once()
        assert self.controller.status is not None
        return self.controller.status.snapshot


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    config = load_site(SITE)
    # Every cycle decides, so every cycle publishes the snapshot it built: these tests are
    # about the snapshot (tests/test_steady.py about the cycles that keep a decision).
    config = config.model_copy(
        update={"site": config.site.model_copy(update={"steady_decision_max_s": 0.0})}
    )
    plant = Plant(config, PlantInit(pv_available_fraction=0.0))
    now = [100.0]
    store = Store(tmp_path / "s.sqlite", clock=lambda: WALL0 + now[0])
    store.start()
    controller = Controller(
        config,
        build_inprocess_drivers(plant),
        store,
        clock=lambda: now[0],
        wall=lambda: WALL0 + now[0],
    )
    rig = Rig(config, plant, controller, now)
    for _ in range(5):
        await rig.cycle()
    try:
        yield rig
    finally:
        store.close()


async def test_a_steady_field_gives_the_same_parts(rig: Rig) -> None:
    first = await rig.cycle()
    second = await rig.cycle()
    assert second.loads is first.loads
    assert second.vehicles is first.vehicles
    assert second.outlets is first.outlets
    assert second.health is first.health
    assert second.time_s > first.time_s


async def test_a_load_change_reaches_the_snapshot_at_the_panels_next_read(rig: Rig) -> None:
    """On the grid a panel is read at its own period (1 s by default): a change shows at
    its next read, and the snapshot says how old each value is."""
    before = (await rig.cycle()).load("kitchen")
    assert before.power_w > 0
    rig.plant.set_load_factor("kitchen", 0.5)
    snap = await rig.cycle(1.0)
    assert snap.load("kitchen").power_w == pytest.approx(before.power_w * 0.5, abs=1.0)
    assert snap.age_s("panel_main") == pytest.approx(0.0)
    later = await rig.cycle()
    assert later.loads is snap.loads  # not read again yet: the same parts
    assert later.age_s("panel_main") == pytest.approx(0.02)
    assert later.age_s("grid_meter") == pytest.approx(0.0)  # read every cycle
    radio = (await rig.cycle()).load("radio_comms")
    assert (await rig.cycle()).load("radio_comms") is radio


async def test_a_tier_override_is_seen_at_once(rig: Rig) -> None:
    assert (await rig.cycle()).load("kitchen").tier is Tier.ESSENTIAL
    rig.controller.overrides.set_tier(rig.config, "kitchen", "comfort")
    assert (await rig.cycle()).load("kitchen").tier is Tier.COMFORT


async def test_a_silent_panel_makes_its_loads_unknown_and_on_at_rating(rig: Rig) -> None:
    """A panel read once a second is unknown after two missed reads and twice its period
    without an answer, not after a single lost reply (rule 5)."""
    rig.plant.silence("panel_main")
    snap = await rig.cycle(1.0)  # one missed read
    assert snap.load("kitchen").available
    # two missed reads, past 2 x 1 s + its 0.08 s timeout since the last answer
    snap = await rig.cycle(1.1)
    kitchen = snap.load("kitchen")
    assert not kitchen.available and kitchen.relay_on
    assert kitchen.power_w == kitchen.rated_power_w
    assert snap.age_s("panel_main") is None
    rig.plant.clear_fault("panel_main")
    assert (await rig.cycle(1.0)).load("kitchen").available


async def test_a_donor_is_wound_down_before_its_leaving_time(rig: Rig) -> None:
    """A leaving time reaches the snapshot: steady until the notice, capped while it ramps
    (once a second, so the state is reused in between), keeping everything after."""
    overrides = rig.controller.overrides
    notice = rig.config.dispatch.leave_notice_s
    overrides.register(
        rig.config,
        vehicle_id="fleet_1",  # its own car, now with a leaving time
        connector="charger_1",
        reserve_soc_pct=40.0,
        leaving_at=WALL0 + rig.now[0] + notice + 2.5,
        now_wall=WALL0 + rig.now[0],
        by="test",
    )
    staying = (await rig.cycle()).vehicle("charger_1")
    assert (staying.vehicle_id, staying.reserve_soc_pct) == ("fleet_1", 40.0)
    assert staying.max_discharge_w == 11000.0 and staying.leave_in_s == notice + 2
    assert (await rig.cycle()).vehicle("charger_1") is staying
    ramping = (await rig.cycle(notice / 4 + 2.0)).vehicle("charger_1")
    assert ramping.reserve_soc_pct == 40.0
    assert 0.0 < ramping.max_discharge_w < 11000.0 and 0.0 < ramping.max_charge_w < 11000.0
    assert not ramping.can_form  # not started as a grid-former this close to leaving
    leaving = (await rig.cycle(notice / 4 + 1.0)).vehicle("charger_1")
    assert leaving.reserve_soc_pct == 100.0
    assert leaving.max_discharge_w == 0.0 and leaving.max_charge_w == 0.0
