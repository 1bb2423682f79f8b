"""An OCPP station that forms the grid by its own local configuration, judged on the plant.

The reference site with `ocpp_1` declared a former (`role = "former"`): its grid-forming
input is wired to the PCC breaker's auxiliary contact (`pcc_interlock = true`), so it
forms by itself once the PCC is open and the bus dead, and follows its OCPP profiles
while the PCC is closed; its local configuration stops it at 40 % SoC. The Modbus
formers (charger_1, charger_2) stay on the site: the controller must count on the
station while it is able, and never tell a Modbus former to form beside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from firmware_sim.ocpp_model import StationModel
from firmware_sim.plant import Plant, PlantInit
from resilience.config import ConfigError, SiteConfig, parse_site
from resilience.model import (
    BreakerCommand,
    BreakerPosition,
    BreakerReading,
    ChargerMode,
    ChargerState,
    Mode,
    Snapshot,
    VehicleState,
)
from resilience.modes import with_local_former_state
from resilience.overrides import OverrideError, Overrides
from tests.inprocess_site import reference_data
from tests.ocpp.test_island import STATIONS, Site, running_site
from tests.sites import without_endurance_policy

pytestmark = pytest.mark.integration

LOCAL = "ocpp_1"


def local_former_data() -> dict[str, object]:
    data = reference_data(ocpp=True)
    devices = data["devices"]
    devices[LOCAL]["role"] = "former"
    devices[LOCAL]["pcc_interlock"] = True
    devices[LOCAL]["ocpp"]["local_min_soc_pct"] = 40.0
    data["grid"]["return_to_service_s"] = 2.0
    data["ocpp"] = {"port": 0, "max_offline_duration_s": 2}
    return data


def local_former_site() -> SiteConfig:
    return without_endurance_policy(parse_site(local_former_data(), "local former"))


def problems(data: dict[str, object]) -> list[tuple[str, str]]:
    """What check-config says of the site file (its problems, none when it loads)."""
    try:
        parse_site(data, "local former")
    except ConfigError as exc:
        return [(p.key, p.reason) for p in exc.problems]
    return []


def test_check_config_allows_a_local_former_only_with_the_interlock() -> None:
    assert problems(local_former_data()) == []
    data = local_former_data()
    del data["devices"][LOCAL]["pcc_interlock"]  # type: ignore[index]
    (problem,) = problems(data)
    assert problem[0] == f"devices.{LOCAL}.role" and "pcc_interlock = true" in problem[1]
    assert "safety rule 1" in problem[1]


def test_check_config_refuses_a_local_former_without_its_floor_or_above_a_reserve() -> None:
    data = local_former_data()
    del data["devices"][LOCAL]["ocpp"]["local_min_soc_pct"]  # type: ignore[index]
    assert [p[0] for p in problems(data)] == [f"devices.{LOCAL}.ocpp.local_min_soc_pct"]
    data = local_former_data()
    data["devices"][LOCAL]["ocpp"]["local_min_soc_pct"] = 20.0  # type: ignore[index]
    ((key, why),) = problems(data)
    assert key.endswith(".reserve_soc_pct") and "safety rule 3" in why  # fleet_5 keeps 30 %


def test_check_config_refuses_two_local_formers() -> None:
    data = local_former_data()
    second = data["devices"]["ocpp_2"]  # type: ignore[index]
    second.update(role="former", pcc_interlock=True)
    second["ocpp"]["local_min_soc_pct"] = 40.0
    ((key, why),) = problems(data)
    assert key == "devices.ocpp_2.role" and "both form the same dead bus" in why


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    init = PlantInit(pv_available_fraction=0.0)
    async with running_site(local_former_site(), tmp_path, init) as state:
        yield state


def formers_seen(site: Site) -> list[str]:
    """Every set of grid-formers the plant logged (its record, not the controller's):
    "island formed by a, b" and "grid formers now: a, b"."""
    sets = []
    for e in site.plant.log:
        for words in ("island formed by ", "grid formers now: "):
            if e.kind == "bus" and words in e.detail:
                sets.append(e.detail.split(words, 1)[1])
    return sets


async def test_it_forms_after_the_pcc_opens_alone_and_resynchronises(site: Site) -> None:
    plant = site.plant
    await site.until(
        lambda: (
            site.mode() is Mode.GRID_CONNECTED
            and all(getattr(site.vehicle(s), "available", False) for s in STATIONS)
        ),
        15,
        "grid_connected with both OCPP stations read",
    )
    mark = len(plant.log)
    plant.grid_loss()
    await site.until(lambda: site.mode() is Mode.ISLANDED, 15, "islanded")
    assert plant.former_ids == (LOCAL,)
    log = [(e.kind, e.detail) for e in plant.log[mark:]]
    opened = log.index(("breaker", "contacts open"))
    formed = next(i for i, (k, d) in enumerate(log) if k == "bus" and "island formed" in d)
    assert opened < formed and LOCAL in log[formed][1]
    # No Modbus former was ever told to form beside it.
    assert not any(d.endswith("mode FORM") and d.startswith("charger_") for _, d in log)
    life_safety = [load.id for load in site.config.loads if load.tier == 0 and load.supply == "bus"]
    await site.until(
        lambda: all(plant.load_on(load_id) for load_id in life_safety), 10, "life-safety served"
    )
    assert plant.violations == []

    # The grid returns a little fast: the island, at nominal, slips into the sync window.
    plant.grid_return()
    plant.set_grid_frequency(50.08)
    await site.until(lambda: site.mode() is Mode.GRID_CONNECTED, 60, "back on the grid")
    assert plant.breaker_position is BreakerPosition.CLOSED
    assert plant.former_ids == ()  # its interlock made it a follower as the contacts touched
    assert plant.violations == [], plant.violations
    seen = formers_seen(site)
    assert seen and all("," not in formers for formers in seen), seen


def test_the_simulated_station_forms_by_its_own_rules() -> None:
    """firmware_sim's model of it: FORM (held back as a follower by the interlock while the
    PCC is closed), forming by itself once the PCC opens onto a dead bus, following a bus
    another source holds, and stopping itself at its local floor."""
    config = local_former_site()
    init = PlantInit(pv_available_fraction=0.0, relays_on=False, soc_pct={"fleet_5": 40.2})
    plant = Plant(config, init)  # every load off: the controller pre-sheds to what it carries
    model = StationModel(plant, LOCAL, forms_locally=True, local_min_soc_pct=40.0)
    charger = plant.chargers[LOCAL]
    model.tick(plant.time_s)
    assert charger.mode_command is ChargerMode.FORM and charger.interlocked
    assert plant.former_ids == ()  # the PCC is closed: it follows
    plant.grid_loss()
    plant.command_breaker(BreakerCommand.OPEN)
    for _ in range(50):
        plant.step(0.01)
        model.tick(plant.time_s)
    assert plant.breaker_position is BreakerPosition.OPEN
    assert plant.former_ids == (LOCAL,)
    vehicle = charger.vehicle
    assert vehicle is not None
    vehicle.soc_pct = 40.0  # its floor: its configuration stops it
    plant.step(0.01)
    model.tick(plant.time_s)
    assert charger.mode_command is not ChargerMode.FORM and plant.former_ids == ()
    # The controller black-starts charger_1 on the dark bus; the station, at its floor,
    # stays out, and above it again on a bus another former holds, it follows.
    plant.set_charger_mode("charger_1", ChargerMode.FORM)
    for _ in range(30):
        plant.step(0.01)
        model.tick(plant.time_s)
    assert plant.former_ids == ("charger_1",)
    vehicle.soc_pct = 60.0
    for _ in range(30):
        plant.step(0.01)
        model.tick(plant.time_s)
    assert plant.former_ids == ("charger_1",)
    assert charger.mode_command is not ChargerMode.FORM


def test_the_controller_sees_it_forming_and_at_its_own_floor() -> None:
    """`modes.with_local_former_state` (pure): shown FORMING only with the PCC open, the bus
    live and no other charger forming; its reserve shown less our margin, so that every
    decision's floor (reserve + margin) is the floor it stops itself at."""
    config = local_former_site()
    v = VehicleState(
        LOCAL,
        "fleet_5",
        True,
        True,
        ChargerState.IDLE,
        ChargerMode.OFF,
        60.0,
        40.0,
        64800.0,
        0.0,
        11000.0,
        11000.0,
        400.0,
        50.0,
        True,
        pcc_interlock=True,
    )
    other = replace(v, charger_id="charger_1", reserve_soc_pct=30.0, can_form=True)

    def snap(position: BreakerPosition, bus_v: float, *vehicles: VehicleState) -> Snapshot:
        pcc = BreakerReading(position, False, 0, bus_v, 50.0, 0.0, 0.0, 0.0)
        return Snapshot(0.0, None, pcc, (), vehicles, (), None)

    margin = config.dispatch.reserve_margin_pct
    seen = with_local_former_state(
        snap(BreakerPosition.OPEN, 400.0, v, other), LOCAL, 400.0, margin
    )
    local = seen.vehicle(LOCAL)
    assert local.state is ChargerState.FORMING and local.mode is ChargerMode.FORM
    assert local.reserve_soc_pct + margin == pytest.approx(40.0)
    assert seen.vehicle("charger_1") == other
    for position, bus_v in ((BreakerPosition.CLOSED, 400.0), (BreakerPosition.OPEN, 0.0)):
        seen = with_local_former_state(snap(position, bus_v, v), LOCAL, 400.0, margin)
        assert seen.vehicle(LOCAL).state is ChargerState.IDLE
    forming = replace(other, state=ChargerState.FORMING)
    seen = with_local_former_state(
        snap(BreakerPosition.OPEN, 400.0, v, forming), LOCAL, 400.0, margin
    )
    assert seen.vehicle(LOCAL).state is ChargerState.IDLE


def test_a_donor_whose_reserve_is_above_its_floor_is_refused_at_it() -> None:
    """Rule 3: the controller cannot stop a station that forms by itself before its own
    floor, so a donor registered there must keep no more than that floor (less the margin),
    as check-config asks of the site file's cars."""
    config = local_former_site()
    margin = config.dispatch.reserve_margin_pct
    overrides = Overrides()
    with pytest.raises(OverrideError, match=r"reserve_soc_pct: .* stops it forming"):
        overrides.register(
            config, vehicle_id="visitor", connector=LOCAL, reserve_soc_pct=40.0 - margin + 1.0,
            now_wall=T0, by="test",
        )  # fmt: skip
    donor = overrides.register(
        config, vehicle_id="visitor", connector=LOCAL, reserve_soc_pct=40.0 - margin,
        now_wall=T0, by="test",
    )  # fmt: skip
    assert donor.reserve_soc_pct == 40.0 - margin


T0 = 1_700_000_000.0
