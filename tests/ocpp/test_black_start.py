"""A black start with an OCPP station still told to charge, judged on the plant's record.

A station that was charging when the grid went takes up the setpoint it last accepted
as soon as the island's bus is live, unless it has taken the controller's zero first.
The simulated station here is the unkind case: it answers every command of the central
system 0.6 s late (`SimStation.answer_delay_s`) and its converter resumes its old
setpoint at once after a dead bus (`StationModel.resume_after_dead_bus`). It charges at
its full 11 kW on the reference site, whose 11 kW grid-former cannot carry that on top
of the life-safety and critical loads its pre-shed keeps: the black start must wait for
the station's zero (or count what it holds as cold load), never form onto it.

Before the guard (the pre-shed counted an answering station at nothing) the former
collapsed, overloaded, 0.2 s after it formed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware_sim.plant import PlantInit
from firmware_sim.server import SimSite
from resilience.model import Mode
from tests.ocpp.test_island import STATIONS, Site, island_site, running_site

pytestmark = pytest.mark.integration

STATION = "ocpp_1"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    config = island_site()
    # The former's car full and every other car away: the grid's headroom all goes to the
    # station's car, and the former carries the island alone.
    full = {v.id: 100.0 for v in config.vehicles if v.charger != STATION}
    init = PlantInit(soc_pct={**full, "fleet_5": 50.0}, pv_available_fraction=0.0)

    def others_away(sim: SimSite) -> None:
        for charger_id in ("charger_2", "charger_3", "charger_4", "ocpp_2"):
            sim.plant.unplug(charger_id)

    async with running_site(config, tmp_path, init, others_away) as state:
        yield state


async def test_black_start_never_forms_onto_a_station_still_told_to_charge(site: Site) -> None:
    plant = site.plant
    assert next(v for v in site.config.vehicles if v.id == "fleet_5").charger == STATION
    await site.until(
        lambda: site.mode() is Mode.GRID_CONNECTED
        and all(getattr(site.vehicle(s), "available", False) for s in STATIONS),
        15,
        "grid_connected with both OCPP stations read",
    )
    assert plant.chargers[STATION].vehicle is not None
    await site.until(
        lambda: plant.charger_power_w(STATION) <= -10_000.0, 15, f"{STATION} charging at 10 kW+"
    )
    station = site.sim.stations[STATION]
    station.answer_delay_s = 0.6
    station.model.resume_after_dead_bus = True
    plant.grid_loss()
    await site.until(lambda: site.mode() is Mode.ISLANDED, 15, "islanded")
    await site.until(
        lambda: station.model.target_w == 0.0, 5, f"{STATION} has taken its zero"
    )
    await site.until(lambda: plant.charger_power_w(STATION) >= 0.0, 5, f"{STATION} not charging")
    assert plant.violations == [], plant.violations
    assert plant.collapses == 0
    assert plant.bus_live
    life_safety = [load.id for load in site.config.loads if load.tier == 0 and load.supply == "bus"]
    await site.until(
        lambda: all(plant.load_on(load_id) for load_id in life_safety), 10, "life-safety on"
    )
    assert plant.violations == []
