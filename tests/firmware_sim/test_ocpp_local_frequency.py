"""The simulated station's LocalFrequency mode (`firmware_sim.ocpp_model`) on the plant.

The model alone on a virtual clock (no protocol): a drooping Modbus-style former forms the
island of the reference site, the OCPP station `ocpp_1` follows its curve on the bus
frequency the plant gives. Judged on the plant's powers, frequency and violations.
"""

from __future__ import annotations

import pytest

from firmware_sim.ocpp_model import ChargingProfile, StationModel
from firmware_sim.plant import Plant
from resilience.config import SiteConfig
from resilience.model import ChargerMode
from resilience.ocpp import profiles
from resilience.ocpp.local_frequency import (
    IslandDroop,
    LocalFrequencyShare,
    local_frequency_profile,
)
from tests.firmware_sim.test_plant import black_start, open_breaker
from tests.firmware_sim.test_plant_droop import ISLAND_W, drooping

DROOP = IslandDroop(50.0, 1.0)
RATING_W = 11000.0


def lf_profile(share_w: float, max_offline_s: int = 60) -> ChargingProfile:
    return ChargingProfile.from_ocpp(
        local_frequency_profile(
            DROOP, LocalFrequencyShare(share_w), max_offline_duration_s=max_offline_s
        )
    )


def run(plant: Plant, model: StationModel, seconds: float, dt: float = 0.01) -> None:
    end = plant.time_s + seconds
    while plant.time_s < end - 1e-9:
        plant.step(dt)
        model.tick(plant.time_s)


def island(site_config: SiteConfig) -> tuple[Plant, StationModel]:
    plant = drooping(site_config, charger_1=DROOP.droop_hz)
    black_start(plant)  # 10.4 kW on charger_1 alone
    model = StationModel(plant, "ocpp_1")
    model.tick(plant.time_s)
    return plant, model


def test_a_station_on_its_curve_shares_the_island_with_the_drooping_former(
    site_config: SiteConfig,
) -> None:
    plant, model = island(site_config)
    assert plant.bus_frequency_hz == pytest.approx(50.0 - ISLAND_W / RATING_W)
    assert model.set_profile(lf_profile(RATING_W), plant.time_s) is None
    run(plant, model, 8.0)
    # Equal shares (11 kW each at 49 Hz): half the island each, at 50 - 0.5 x 10.4 / 11 Hz.
    p_station = plant.charger_power_w("ocpp_1")
    p_former = plant.charger_power_w("charger_1")
    assert p_station == pytest.approx(ISLAND_W / 2, rel=0.01)
    assert p_former == pytest.approx(ISLAND_W / 2, rel=0.01)
    assert plant.bus_frequency_hz == pytest.approx(50.0 - p_former / RATING_W)
    # It follows the frequency: a load step lands on the former, the frequency falls and
    # the station takes half of it.
    plant.set_load_factor("network", 3.0)
    step_w = plant.load_power_w("network") * 2 / 3
    run(plant, model, 8.0)
    assert plant.charger_power_w("ocpp_1") == pytest.approx((ISLAND_W + step_w) / 2, rel=0.01)
    assert plant.chargers["ocpp_1"].mode_command is ChargerMode.FOLLOW
    assert plant.violations == []


def test_the_share_and_the_car_bound_what_the_curve_gives(site_config: SiteConfig) -> None:
    plant, model = island(site_config)
    assert model.set_profile(lf_profile(3000.0), plant.time_s) is None
    run(plant, model, 8.0)
    # a 3 kW share at 49 Hz: P = 3 kW x P_former / 11 kW with P_former = 10.4 kW - P
    expected = 3000.0 * ISLAND_W / (RATING_W + 3000.0)
    assert plant.charger_power_w("ocpp_1") == pytest.approx(expected, rel=0.01)
    vehicle = plant.chargers["ocpp_1"].vehicle
    assert vehicle is not None
    vehicle.max_discharge_w = 1000.0  # the car's own limit
    run(plant, model, 4.0)
    assert plant.charger_power_w("ocpp_1") == pytest.approx(1000.0)
    assert plant.violations == []


def test_the_dead_man_falls_to_local_frequency_then_to_idle(site_config: SiteConfig) -> None:
    plant, model = island(site_config)
    schedule = profiles.Schedule(-3000.0, RATING_W, -RATING_W)
    central = profiles.dynamic_profile(
        schedule, max_offline_duration_s=2, dyn_update_interval_s=2, stack_level=2
    )
    for profile in (profiles.idle_profile(), central):
        assert model.set_profile(ChargingProfile.from_ocpp(profile), plant.time_s) is None
    assert model.set_profile(lf_profile(RATING_W, max_offline_s=6), plant.time_s) is None
    model.set_link(True, plant.time_s)
    run(plant, model, 2.0)
    assert plant.charger_power_w("ocpp_1") == pytest.approx(3000.0)  # CentralSetpoint rules
    model.set_link(False, plant.time_s)
    cut = plant.time_s
    run(plant, model, 1.9)
    assert plant.charger_power_w("ocpp_1") == pytest.approx(3000.0)
    run(plant, model, 3.5)
    assert model.local_frequency_since_s == pytest.approx(cut + 2.0, abs=0.02)
    assert plant.charger_power_w("ocpp_1") == pytest.approx(ISLAND_W / 2, rel=0.02)
    run(plant, model, 1.0)  # 6.4 s offline: LocalFrequency has lapsed too
    assert sorted(model.profiles) == [profiles.IDLE_PROFILE_ID]
    run(plant, model, 1.0)
    assert plant.charger_power_w("ocpp_1") == 0.0
    assert plant.charger_power_w("charger_1") == pytest.approx(ISLAND_W)
    assert plant.violations == []


def test_on_a_dead_bus_a_station_in_local_frequency_gives_nothing(
    site_config: SiteConfig,
) -> None:
    """No frequency to follow: the curve's flat end below the full-load point must not
    read 0 Hz as full discharge; and the plant never lets a follower energise a bus."""
    plant = drooping(site_config, charger_1=DROOP.droop_hz)
    plant.grid_loss()
    open_breaker(plant)
    model = StationModel(plant, "ocpp_1")
    model.tick(plant.time_s)
    assert model.set_profile(lf_profile(RATING_W), plant.time_s) is None
    run(plant, model, 2.0)
    assert not plant.bus_live and plant.charger_power_w("ocpp_1") == 0.0
    assert model.profile_target_w() == 0.0
    # the plant's side: a follower told to give 5 kW on the dead bus gives nothing
    plant.set_charger_setpoints("ocpp_2", power_w=5000)
    plant.set_charger_mode("ocpp_2", ChargerMode.FOLLOW)
    plant.step(1.0)
    assert not plant.bus_live and plant.charger_power_w("ocpp_2") == 0.0
    assert plant.violations == []


def test_a_station_without_the_mode_rejects_the_profile(site_config: SiteConfig) -> None:
    plant, _ = island(site_config)
    model = StationModel(plant, "ocpp_2", local_frequency=False)
    model.tick(plant.time_s)
    reason = model.set_profile(lf_profile(RATING_W), plant.time_s)
    assert reason is not None and "does not support" in reason
    assert model.profiles == {} and model.rejections
