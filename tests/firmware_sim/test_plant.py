"""The plant model as pure physics: step it with explicit dt, inject, read the referee."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from firmware_sim.plant import Plant, PlantTiming
from resilience.config import SiteConfig
from resilience.drivers.registers import BidirectionalCharger as ChargerMap
from resilience.drivers.registers import SunSpecInverter
from resilience.model import BreakerCommand, BreakerPosition, ChargerMode, ChargerState, Tier

LIFE_SAFETY_W = 800 + 1200 + 600 + 1800  # bus loads of the reference site
CRITICAL_W = 3000 + 1500 + 1000 + 500


def relay(plant: Plant, load_id: str, on: bool) -> None:
    spec = plant.loads[load_id].spec
    plant.set_relay(spec.panel, spec.channel, on)


def shed_above(plant: Plant, keep: Tier) -> None:
    """Switch off every bus load of a lower priority than `keep`, lowest priority first."""
    for tier in sorted(Tier, reverse=True):
        if tier > keep:
            for load_id, load in plant.loads.items():
                if load.spec.supply == "bus" and load.spec.tier == tier:
                    relay(plant, load_id, False)


def open_breaker(plant: Plant) -> None:
    plant.command_breaker(BreakerCommand.OPEN)
    plant.step(plant.breaker_operate_s)
    assert plant.breaker_position == BreakerPosition.OPEN


def close_breaker(plant: Plant) -> None:
    plant.command_breaker(BreakerCommand.CLOSE)
    plant.step(plant.breaker_operate_s)


def form(plant: Plant, charger_id: str = "charger_1", **setpoints: float) -> None:
    if setpoints:
        plant.set_charger_setpoints(charger_id, **setpoints)  # type: ignore[arg-type]
    plant.set_charger_mode(charger_id, ChargerMode.FORM)
    plant.step(plant.timing.form_soft_start_s)


def black_start(plant: Plant, keep: Tier = Tier.CRITICAL) -> None:
    """Grid lost, PCC opened, shed to `keep`, charger_1 forms an island (PV off)."""
    plant.set_pv_available(0)
    plant.grid_loss()
    open_breaker(plant)
    shed_above(plant, keep)
    form(plant)


def kinds(plant: Plant) -> list[str]:
    return [v.kind for v in plant.violations]


# --------------------------------------------------------------------------- grid connected
def test_starts_grid_connected_with_every_load_served(plant: Plant) -> None:
    assert plant.bus_live and plant.bus_source == "grid"
    assert plant.breaker_position == BreakerPosition.CLOSED
    assert plant.load_power_w("hvac") == 12000
    bus_loads = sum(ld.spec.rated_power_w for ld in plant.loads.values() if ld.spec.supply == "bus")
    assert plant.pv_power_w == pytest.approx(12000)  # 60 % of 20 kW
    assert plant.meter_power_w == pytest.approx(bus_loads - 12000)
    assert plant.violations == []


def test_meter_shows_export_when_sources_exceed_load(plant: Plant) -> None:
    shed_above(plant, Tier.LIFE_SAFETY)
    assert plant.meter_power_w == pytest.approx(LIFE_SAFETY_W - 12000)


def test_grid_loss_without_former_kills_the_bus_without_violation(plant: Plant) -> None:
    plant.grid_loss()
    plant.step(1.0)
    assert not plant.bus_live
    assert plant.load_power_w("medical_fridge") == 0
    assert plant.pv_power_w == 0
    assert plant.inverters["pv"].operating_state == SunSpecInverter.ST_SLEEPING
    assert plant.violations == []


# --------------------------------------------------------------------------- back-feed
def test_grid_loss_with_closed_breaker_and_former_is_back_feed(
    plant_without_interlock: Plant,
) -> None:
    plant = plant_without_interlock
    shed_above(plant, Tier.CRITICAL)
    form(plant)
    assert plant.former_ids == ("charger_1",)
    plant.grid_loss()
    assert plant.bus_live and plant.bus_source == "island"
    assert kinds(plant) == ["back_feed"]
    assert "charger_1" in plant.violations[0].detail


def test_back_feed_is_one_episode_however_long(plant_without_interlock: Plant) -> None:
    plant = plant_without_interlock
    shed_above(plant, Tier.CRITICAL)
    form(plant)
    plant.grid_loss()
    for _ in range(50):
        plant.step(0.02)
    assert kinds(plant) == ["back_feed"]


def test_back_feed_ends_when_breaker_opens_and_a_new_one_is_a_new_episode(
    plant_without_interlock: Plant,
) -> None:
    plant = plant_without_interlock
    shed_above(plant, Tier.CRITICAL)
    form(plant)
    plant.grid_loss()
    open_breaker(plant)
    plant.step(1.0)
    close_breaker(plant)  # closing a live bus onto the dead grid
    assert kinds(plant) == ["back_feed", "back_feed"]


def test_follower_on_closed_breaker_with_dead_grid_trips(plant_without_interlock: Plant) -> None:
    plant = plant_without_interlock
    shed_above(plant, Tier.CRITICAL)
    plant.set_charger_setpoints("charger_3", power_w=3000)
    plant.set_charger_mode("charger_3", ChargerMode.FOLLOW)
    form(plant)
    assert plant.charger_power_w("charger_3") == 3000
    plant.grid_loss()
    plant.step(1.0)
    assert plant.bus_live  # charger_1 back-feeds ...
    assert plant.charger_power_w("charger_3") == 0  # ... but the follower does not


def test_an_interlocked_former_follows_while_the_pcc_is_closed(plant: Plant) -> None:
    """charger_1's grid-parallel input is wired to the PCC: FORM runs as FOLLOW while closed."""
    shed_above(plant, Tier.CRITICAL)
    form(plant, power_w=2000)
    charger = plant.chargers["charger_1"]
    assert plant.former_ids == () and plant.bus_source == "grid"
    assert charger.mode_active is ChargerMode.FOLLOW and charger.mode_command is ChargerMode.FORM
    assert plant.charger_power_w("charger_1") == 2000
    plant.grid_loss()  # the grid fails with the PCC closed: nothing of ours holds the bus up
    plant.step(1.0)
    assert not plant.bus_live and plant.violations == []


def test_an_interlocked_former_forms_again_once_the_pcc_opens(plant: Plant) -> None:
    shed_above(plant, Tier.CRITICAL)
    form(plant)
    plant.grid_loss()
    open_breaker(plant)
    plant.step(plant.timing.form_soft_start_s)
    assert plant.former_ids == ("charger_1",) and plant.bus_source == "island"
    assert plant.violations == []


def test_an_interlocked_former_stops_forming_as_the_contacts_close(plant: Plant) -> None:
    black_start(plant)
    plant.grid_return()
    plant.step(10.0)  # same frequency: the angle stays where it was; bring it round
    plant.grid.phase_deg = plant.bus_phase_deg
    close_breaker(plant)
    assert plant.bus_source == "grid" and plant.former_ids == ()
    assert plant.chargers["charger_1"].mode_active is ChargerMode.FOLLOW
    plant.grid_loss()
    assert not plant.bus_live and kinds(plant) == []


# --------------------------------------------------------------------------- the island
def test_form_after_opening_gives_a_live_island_serving_loads(plant: Plant) -> None:
    plant.set_pv_available(0)
    plant.grid_loss()
    open_breaker(plant)
    shed_above(plant, Tier.CRITICAL)
    plant.set_charger_mode("charger_1", ChargerMode.FORM)
    plant.step(0.05)
    assert not plant.bus_live  # soft start
    plant.step(0.05)
    assert plant.bus_live and plant.former_ids == ("charger_1",)
    assert plant.load_power_w("medical_fridge") == 600
    assert plant.charger_power_w("charger_1") == pytest.approx(LIFE_SAFETY_W + CRITICAL_W)
    assert plant.chargers["charger_1"].state == ChargerState.FORMING
    assert plant.violations == []


def test_island_runs_at_the_former_setpoints(plant: Plant) -> None:
    plant.grid_loss()
    open_breaker(plant)
    shed_above(plant, Tier.CRITICAL)
    form(plant, frequency_hz=50.2, voltage_v=405.0)
    assert plant.bus_frequency_hz == pytest.approx(50.2)
    assert plant.bus_voltage_v == pytest.approx(405.0)


def test_island_defaults_to_nominal_when_setpoints_are_zero(plant: Plant) -> None:
    black_start(plant)
    assert plant.bus_frequency_hz == 50.0
    assert plant.bus_voltage_v == 400.0


def test_two_formers_share_the_load_equally(plant: Plant) -> None:
    black_start(plant)
    form(plant, "charger_2")
    assert plant.former_ids == ("charger_1", "charger_2")
    half = (LIFE_SAFETY_W + CRITICAL_W) / 2
    assert plant.charger_power_w("charger_1") == pytest.approx(half)
    assert plant.charger_power_w("charger_2") == pytest.approx(half)


def test_followers_relieve_the_former(plant: Plant) -> None:
    black_start(plant)
    plant.set_charger_setpoints("charger_3", power_w=4000)
    plant.set_charger_mode("charger_3", ChargerMode.FOLLOW)
    plant.step(plant.timing.follower_reconnect_s)
    assert plant.charger_power_w("charger_3") == 4000
    assert plant.charger_power_w("charger_1") == pytest.approx(LIFE_SAFETY_W + CRITICAL_W - 4000)


def test_overload_collapses_the_island(plant: Plant) -> None:
    plant.set_pv_available(0)
    plant.grid_loss()
    open_breaker(plant)
    form(plant)  # every load still on: 54.9 kW onto an 11 kW former
    assert not plant.bus_live
    assert kinds(plant) == ["island_collapse"]
    assert plant.chargers["charger_1"].fault_code == ChargerMap.FAULT_OVERLOAD
    assert plant.chargers["charger_1"].state == ChargerState.FAULT
    assert plant.load_power_w("medical_fridge") == 0
    assert plant.collapses == 1


def test_load_step_within_short_term_overload_survives_two_seconds(plant: Plant) -> None:
    black_start(plant)  # 10.4 kW on an 11 kW former
    plant.set_load_factor("network", 2.6)  # +800 W: 11.2 kW, within 110 %
    plant.step(1.9)
    assert plant.bus_live
    relay(plant, "network", False)  # the controller sheds in time
    plant.step(5.0)
    assert plant.bus_live
    assert plant.violations == []


def test_overload_lasting_two_seconds_collapses_and_counts_over_rating(plant: Plant) -> None:
    black_start(plant)
    plant.set_load_factor("network", 2.6)
    plant.step(2.5)
    assert not plant.bus_live
    assert kinds(plant) == ["over_rating", "island_collapse"]
    assert plant.violations[0].time_s == pytest.approx(plant.violations[1].time_s)


def test_pv_surplus_is_curtailed_not_collapsed(plant: Plant) -> None:
    black_start(plant, keep=Tier.LIFE_SAFETY)
    plant.set_charger_setpoints("charger_1", min_soc_pct=0)
    plant.vehicles["fleet_1"].soc_pct = 100.0  # a full former cannot absorb anything
    plant.set_pv_available(15000)
    plant.step(1.0)
    assert plant.bus_live
    assert plant.pv_power_w == pytest.approx(LIFE_SAFETY_W)
    assert plant.inverters["pv"].operating_state == SunSpecInverter.ST_THROTTLED
    assert plant.violations == []


def test_pv_surplus_charges_the_former_up_to_its_rating(plant: Plant) -> None:
    black_start(plant, keep=Tier.LIFE_SAFETY)
    plant.set_pv_available(18000)
    plant.step(1.0)
    assert plant.charger_power_w("charger_1") == pytest.approx(-11000)
    assert plant.pv_power_w == pytest.approx(LIFE_SAFETY_W + 11000)
    assert plant.violations == []


def test_pv_limit_register_caps_output(plant: Plant) -> None:
    plant.set_pv_controls("pv", limit_pct=25, limit_enabled=True)
    assert plant.pv_power_w == pytest.approx(5000)
    plant.set_pv_controls("pv", connected=False)
    assert plant.pv_power_w == 0
    assert plant.inverters["pv"].operating_state == SunSpecInverter.ST_STANDBY


def test_fault_of_the_only_former_drops_the_bus_without_violation(plant: Plant) -> None:
    black_start(plant)
    plant.fault("charger_1")
    assert not plant.bus_live
    assert plant.chargers["charger_1"].fault_code == ChargerMap.FAULT_INTERNAL
    assert plant.violations == []
    plant.set_charger_mode("charger_1", ChargerMode.OFF)  # an injected fault survives OFF
    assert plant.chargers["charger_1"].state == ChargerState.FAULT
    plant.clear_fault("charger_1")
    assert plant.chargers["charger_1"].state.name == "IDLE"


def test_off_resets_an_overload_trip(plant: Plant) -> None:
    plant.grid_loss()
    open_breaker(plant)
    form(plant)
    assert plant.chargers["charger_1"].state == ChargerState.FAULT
    plant.set_charger_mode("charger_1", ChargerMode.OFF)
    shed_above(plant, Tier.CRITICAL)
    form(plant)
    assert plant.bus_live


def test_form_is_refused_by_a_charger_that_cannot_form(plant: Plant) -> None:
    with pytest.raises(ValueError, match="cannot form"):
        plant.set_charger_mode("charger_3", ChargerMode.FORM)


def test_unplugging_a_former_faults_it_and_drops_the_bus(plant: Plant) -> None:
    black_start(plant)
    plant.unplug("charger_1")
    assert not plant.bus_live
    charger = plant.chargers["charger_1"]
    assert charger.state == ChargerState.UNPLUGGED
    assert charger.fault_code == ChargerMap.FAULT_UNPLUGGED_WHILE_ACTIVE


# --------------------------------------------------------------------------- collapses and outages
def test_unplugging_the_forming_car_mid_island_is_a_collapse_the_world_caused(
    plant: Plant,
) -> None:
    black_start(plant)
    plant.step(10.0)
    plant.unplug("charger_1")
    assert plant.collapses == 1
    assert plant.violations == []  # the world did it, not the controller
    (outage,) = plant.outages
    assert (outage.by, outage.cause) == ("world", "unplugged")
    assert outage.time_s == pytest.approx(plant.time_s)
    assert "charger_1" in outage.detail
    assert outage.loads_w == pytest.approx(LIFE_SAFETY_W + CRITICAL_W)
    assert "medical_fridge" in outage.loads and "hvac" not in outage.loads
    assert outage.ended_s is None  # still dark
    plant.step(3.0)
    form(plant, "charger_2")  # the controller's black start on the other former
    assert plant.bus_live
    assert plant.outages[0].ended_s == pytest.approx(plant.time_s)
    assert plant.collapses == 1 and plant.violations == []


def test_two_unplugs_in_one_dark_episode_count_once(plant: Plant) -> None:
    black_start(plant)
    plant.unplug("charger_1")
    plant.step(1.0)
    plant.plug("charger_1", "fleet_1", soc_pct=80.0, capacity_wh=77400)  # still told to FORM
    plant.step(plant.timing.form_soft_start_s / 2)
    plant.unplug("charger_1")  # gone again before its soft start ended: the bus stayed dark
    plant.unplug("charger_3")
    assert not plant.bus_live
    assert plant.collapses == 1 and len(plant.outages) == 1
    form(plant, "charger_2")  # live again: the episode is over; a new loss is a new one
    plant.unplug("charger_2")
    assert plant.collapses == 2
    assert [o.cause for o in plant.outages] == ["unplugged", "unplugged"]
    assert plant.violations == []


def test_fault_of_the_forming_charger_is_a_collapse_the_world_caused(plant: Plant) -> None:
    black_start(plant)
    plant.fault("charger_1")
    assert plant.collapses == 1 and plant.violations == []
    assert [(o.by, o.cause) for o in plant.outages] == [("world", "fault")]


def test_overload_collapse_is_a_violation_and_an_outage_the_controller_caused(
    plant: Plant,
) -> None:
    black_start(plant)
    relay(plant, "hvac", True)  # 12 kW more onto an 11 kW former
    assert not plant.bus_live
    assert kinds(plant) == ["island_collapse"]
    assert plant.collapses == 1
    (outage,) = plant.outages
    assert (outage.by, outage.cause) == ("controller", "overload")
    assert "hvac" in outage.loads
    assert plant.violations[0].time_s == outage.time_s


def test_the_dark_bus_before_the_first_black_start_is_not_a_collapse(plant: Plant) -> None:
    plant.grid_loss()  # the grid died: the bus was never an island
    open_breaker(plant)
    plant.step(30.0)
    shed_above(plant, Tier.CRITICAL)
    form(plant)
    assert plant.bus_live
    assert plant.collapses == 0 and plant.outages == []


def test_planned_islanding_dark_interval_is_not_a_collapse(plant: Plant) -> None:
    shed_above(plant, Tier.CRITICAL)
    open_breaker(plant)  # the grid is healthy: PCC open, bus dark until the former is up
    assert not plant.bus_live
    form(plant)
    assert plant.bus_live and plant.bus_source == "island"
    assert plant.collapses == 0 and plant.violations == []


def test_an_island_shut_down_with_every_load_off_is_not_a_collapse(plant: Plant) -> None:
    black_start(plant)
    for load_id in plant.loads:
        relay(plant, load_id, False)
    plant.set_charger_mode("charger_1", ChargerMode.OFF)
    plant.step(5.0)
    assert not plant.bus_live
    assert plant.collapses == 0 and plant.violations == []


def test_the_controller_stopping_its_last_former_with_loads_on_is_a_collapse(
    plant: Plant,
) -> None:
    black_start(plant)
    plant.step(10.0)
    stopped_s = plant.time_s
    plant.set_charger_mode("charger_1", ChargerMode.OFF)
    assert not plant.bus_live
    plant.step(plant.break_before_make_s / 2)
    assert plant.collapses == 0  # it might still be a break-before-make reconnection
    plant.step(plant.break_before_make_s)
    assert kinds(plant) == ["island_collapse"]
    (outage,) = plant.outages
    assert (outage.by, outage.cause) == ("controller", "stopped")
    assert outage.time_s == pytest.approx(stopped_s)
    assert plant.violations[0].time_s == pytest.approx(stopped_s)
    assert "charger_1 OFF" in outage.detail
    assert outage.ended_s is None


def test_the_allowance_follows_the_site_file(plant: Plant, site_config: SiteConfig) -> None:
    cycle = site_config.site.cycle_period_s
    assert plant.break_before_make_s == pytest.approx(
        2 * cycle + site_config.grid.breaker_operate_timeout_s
    )


def test_stopping_a_live_former_and_restarting_it_is_a_collapse(plant: Plant) -> None:
    black_start(plant)
    plant.set_charger_mode("charger_1", ChargerMode.OFF)
    plant.step(0.02)
    form(plant, "charger_1")  # back as an island on the same former: a blackout
    assert plant.bus_live
    assert kinds(plant) == ["island_collapse"]
    (outage,) = plant.outages
    assert (outage.by, outage.cause) == ("controller", "stopped")
    assert outage.ended_s == pytest.approx(plant.time_s)
    assert "came back as an island" in outage.detail


def test_a_handover_at_the_reserve_is_planned_not_a_collapse(plant: Plant) -> None:
    """The former stopped at its MIN_SOC floor and another forming within the allowance is
    the controller's planned handover (its charger would stop it anyway, loads on)."""
    black_start(plant)
    plant.set_charger_setpoints("charger_1", min_soc_pct=30.5)
    vehicle = plant.chargers["charger_1"].vehicle
    assert vehicle is not None
    vehicle.soc_pct = 31.0
    plant.set_charger_mode("charger_1", ChargerMode.OFF)
    form(plant, "charger_2")
    assert plant.bus_live
    assert plant.collapses == 0 and kinds(plant) == []
    (handover,) = plant.handovers
    assert (handover.from_formers, handover.to_formers) == (("charger_1",), ("charger_2",))
    assert handover.dark_s == pytest.approx(plant.timing.form_soft_start_s)
    assert any("handover at its reserve" in e.detail for e in plant.log)


def test_a_handover_that_does_not_form_in_time_is_a_collapse(plant: Plant) -> None:
    black_start(plant)
    plant.set_charger_setpoints("charger_1", min_soc_pct=30.5)
    vehicle = plant.chargers["charger_1"].vehicle
    assert vehicle is not None
    vehicle.soc_pct = 31.0
    plant.set_charger_mode("charger_1", ChargerMode.OFF)
    plant.step(plant.break_before_make_s + 0.5)
    form(plant, "charger_2")
    (outage,) = plant.outages
    assert (outage.by, outage.cause) == ("controller", "stopped")


def islanded_with_the_grid_back(plant: Plant) -> None:
    """Islanded on charger_1, the grid back and healthy for the return-to-service delay."""
    shed_above(plant, Tier.CRITICAL)
    plant.set_pv_available(0)
    plant.grid_loss()
    open_breaker(plant)
    form(plant)
    plant.step(60.0)
    plant.grid_return()
    plant.step(300.0)


def reconnect_break_before_make(plant: Plant) -> None:
    """A former without PCC interlock must not be closed onto the grid: the controller stops
    the island first (the bus goes dark), then closes the PCC onto the dead bus."""
    islanded_with_the_grid_back(plant)
    plant.set_charger_mode("charger_1", ChargerMode.OFF)


def test_break_before_make_reconnection_is_not_a_collapse(plant_without_interlock: Plant) -> None:
    plant = plant_without_interlock
    reconnect_break_before_make(plant)
    assert not plant.bus_live
    plant.step(0.04)  # two control cycles later the controller closes onto the dead bus
    close_breaker(plant)
    assert plant.bus_source == "grid"
    plant.step(5.0)
    assert plant.collapses == 0 and plant.violations == []
    assert any("break-before-make" in e.detail for e in plant.log)


def test_a_break_before_make_that_never_closes_is_the_controllers_collapse(
    plant_without_interlock: Plant,
) -> None:
    plant = plant_without_interlock
    reconnect_break_before_make(plant)
    plant.step(plant.break_before_make_s + 0.01)
    close_breaker(plant)  # too late: the loads were dark for longer than the design allows
    assert kinds(plant) == ["island_collapse"]
    assert [(o.by, o.cause) for o in plant.outages] == [("controller", "stopped")]
    assert plant.outages[0].ended_s == pytest.approx(plant.time_s)


def test_a_grid_loss_during_break_before_make_is_the_worlds_collapse(
    plant_without_interlock: Plant,
) -> None:
    plant = plant_without_interlock
    reconnect_break_before_make(plant)
    plant.step(0.02)
    plant.grid_loss()  # nothing to close onto: the controller black starts instead
    plant.step(1.0)
    form(plant)
    assert plant.collapses == 1 and plant.violations == []
    (outage,) = plant.outages
    assert (outage.by, outage.cause) == ("world", "interrupted")
    assert "grid lost" in outage.detail


def test_a_break_before_make_through_a_failed_breaker_is_the_worlds_collapse(
    plant_without_interlock: Plant,
) -> None:
    plant = plant_without_interlock
    islanded_with_the_grid_back(plant)
    plant.fail_to_operate()  # nobody can tell until it is commanded
    plant.step(60.0)
    plant.set_charger_mode("charger_1", ChargerMode.OFF)
    plant.step(0.04)
    plant.command_breaker(BreakerCommand.CLOSE)  # ... and it does not move
    plant.step(plant.break_before_make_s)
    assert plant.collapses == 1 and plant.violations == []
    (outage,) = plant.outages
    assert (outage.by, outage.cause) == ("world", "interrupted")
    assert "failed to operate" in outage.detail


def test_closing_onto_a_dead_grid_stops_an_interlocked_island(plant: Plant) -> None:
    black_start(plant)
    plant.step(10.0)
    close_breaker(plant)  # the grid is still dead
    assert not plant.bus_live
    assert kinds(plant) == ["island_collapse"]
    assert [(o.by, o.cause) for o in plant.outages] == [("controller", "pcc_closed")]


def test_the_grid_failing_while_the_pcc_closes_is_the_worlds_collapse(plant: Plant) -> None:
    black_start(plant)
    plant.grid_return()
    plant.step(300.0)
    plant.command_breaker(BreakerCommand.CLOSE)
    plant.step(plant.breaker_operate_s / 2)
    plant.grid_loss()
    plant.step(plant.breaker_operate_s)
    assert not plant.bus_live
    assert plant.collapses == 1 and plant.violations == []
    assert [(o.by, o.cause) for o in plant.outages] == [("world", "interrupted")]


def test_state_lists_outages(plant: Plant) -> None:
    black_start(plant)
    plant.unplug("charger_1")
    state = plant.state()
    assert state["collapses"] == 1
    assert state["outages"][0]["by"] == "world"
    assert state["outages"][0]["cause"] == "unplugged"


# --------------------------------------------------------------------------- followers
def test_follower_stops_without_voltage_reference_and_resumes_after_delay(plant: Plant) -> None:
    plant.set_charger_setpoints("charger_3", power_w=5000)
    plant.set_charger_mode("charger_3", ChargerMode.FOLLOW)
    assert plant.charger_power_w("charger_3") == 5000
    plant.grid_loss()
    assert plant.charger_power_w("charger_3") == 0
    assert plant.chargers["charger_3"].state == ChargerState.IDLE
    assert plant.chargers["charger_3"].fault_code == ChargerMap.FAULT_NONE
    plant.grid_return()
    plant.step(plant.timing.follower_reconnect_s / 2)
    assert plant.charger_power_w("charger_3") == 0
    plant.step(plant.timing.follower_reconnect_s / 2)
    assert plant.charger_power_w("charger_3") == 5000


def test_follower_setpoint_is_clamped_to_ratings(plant: Plant) -> None:
    plant.set_charger_setpoints("charger_3", power_w=20000)
    plant.set_charger_mode("charger_3", ChargerMode.FOLLOW)
    assert plant.charger_power_w("charger_3") == 11000
    plant.set_charger_setpoints("charger_3", power_w=-20000)
    assert plant.charger_power_w("charger_3") == -11000
    assert plant.chargers["charger_3"].state == ChargerState.CHARGING


# --------------------------------------------------------------------------- state of charge
def test_soc_falls_by_11_kw_for_an_hour_from_77_4_kwh(plant: Plant) -> None:
    plant.set_charger_setpoints("charger_3", power_w=11000)
    plant.set_charger_mode("charger_3", ChargerMode.FOLLOW)
    plant.step(3600)
    assert plant.vehicle_soc("fleet_3") == pytest.approx(80 - 11000 / 77400 * 100)


def test_soc_result_does_not_depend_on_step_size(make_plant: Callable[..., Plant]) -> None:
    coarse, fine = make_plant(), make_plant()
    for p in (coarse, fine):
        p.set_charger_setpoints("charger_3", power_w=7000)
        p.set_charger_mode("charger_3", ChargerMode.FOLLOW)
    coarse.step(600)
    for _ in range(600):
        fine.step(1.0)
    assert coarse.vehicle_soc("fleet_3") == pytest.approx(fine.vehicle_soc("fleet_3"))
    assert coarse.import_wh == pytest.approx(fine.import_wh)


def test_charging_stops_at_100_pct(make_plant: Callable[..., Plant]) -> None:
    plant = make_plant(soc_pct={"fleet_3": 99.0})
    plant.set_charger_setpoints("charger_3", power_w=-11000)
    plant.set_charger_mode("charger_3", ChargerMode.FOLLOW)
    plant.step(3600)
    assert plant.vehicle_soc("fleet_3") == pytest.approx(100.0)
    assert plant.charger_power_w("charger_3") == 0


def test_min_soc_register_stops_discharge_exactly(plant: Plant) -> None:
    plant.set_charger_setpoints("charger_3", power_w=11000, min_soc_pct=50.0)
    plant.set_charger_mode("charger_3", ChargerMode.FOLLOW)
    plant.step(10 * 3600)
    assert plant.vehicle_soc("fleet_3") == pytest.approx(50.0)
    assert plant.vehicle_min_soc("fleet_3") == pytest.approx(50.0)
    assert plant.charger_power_w("charger_3") == 0
    assert plant.violations == []


def test_below_reserve_recorded_once(plant: Plant) -> None:
    plant.set_charger_setpoints("charger_3", power_w=11000)  # MIN_SOC left at 0
    plant.set_charger_mode("charger_3", ChargerMode.FOLLOW)
    plant.step(4 * 3600)
    plant.step(3600)
    assert kinds(plant) == ["below_reserve"]
    v = plant.violations[0]
    assert "fleet_3" in v.detail
    # crossing 25 % - 0.1 from 80 % at 11 kW on 77.4 kWh
    expected_s = (80 - 24.9) / 100 * 77400 / 11000 * 3600
    assert v.time_s == pytest.approx(expected_s, abs=0.01)


def test_former_reaching_min_soc_collapses_the_island(make_plant: Callable[..., Plant]) -> None:
    plant = make_plant(soc_pct={"fleet_1": 31.0})
    plant.set_charger_setpoints("charger_1", min_soc_pct=30.5)
    black_start(plant)
    plant.step(3600)
    assert not plant.bus_live
    assert kinds(plant) == ["island_collapse"]
    assert plant.vehicle_soc("fleet_1") == pytest.approx(30.5)


# --------------------------------------------------------------------------- closing the PCC
def test_closing_out_of_sync_is_recorded(plant: Plant) -> None:
    black_start(plant)
    plant.set_charger_setpoints("charger_1", frequency_hz=50.5)
    plant.grid_return()
    close_breaker(plant)
    assert kinds(plant) == ["close_without_sync"]
    assert "df=0.500 Hz" in plant.violations[0].detail
    assert plant.bus_source == "grid"


def test_closing_in_phase_after_a_seamless_island_is_fine(plant_without_interlock: Plant) -> None:
    plant = plant_without_interlock
    shed_above(plant, Tier.CRITICAL)
    form(plant)  # former paralleled with the grid, then planned island
    open_breaker(plant)
    assert plant.bus_source == "island"
    plant.step(10.0)
    assert abs(plant.phase_diff_deg) < 1e-6
    close_breaker(plant)
    assert plant.violations == []
    assert plant.breaker.operations == 2


def test_phase_slips_at_the_frequency_difference(plant: Plant) -> None:
    black_start(plant)
    plant.set_charger_setpoints("charger_1", frequency_hz=50.1)
    plant.grid_return()
    before = plant.phase_diff_deg
    plant.step(1.0)
    slipped = (before - plant.phase_diff_deg) % 360  # the bus runs ahead: grid-bus falls
    assert slipped == pytest.approx(36.0, abs=1e-6)


def test_closing_when_the_angle_comes_round_is_fine(plant: Plant) -> None:
    black_start(plant)
    plant.set_charger_setpoints("charger_1", frequency_hz=50.1)
    plant.grid_return()
    # wait until the angle at contact (after the operate time) will be 0
    lead = plant.breaker_operate_s * 0.1 * 360  # degrees slipped while the contacts travel
    wait = ((plant.phase_diff_deg - lead) % 360) / 36.0
    plant.step(wait)
    close_breaker(plant)
    assert plant.violations == []


def test_dead_bus_close_onto_live_grid_is_fine(plant: Plant) -> None:
    plant.grid_loss()
    open_breaker(plant)
    plant.grid_return()
    plant.step(5.0)
    close_breaker(plant)
    assert plant.bus_source == "grid"
    assert plant.violations == []


def test_breaker_travels_for_its_operate_time_and_counts(plant: Plant) -> None:
    plant.command_breaker(BreakerCommand.OPEN)
    assert plant.breaker_position == BreakerPosition.TRAVELLING
    assert plant.bus_live  # contacts still closed while travelling
    plant.step(plant.breaker_operate_s / 2)
    assert plant.breaker_position == BreakerPosition.TRAVELLING
    plant.step(plant.breaker_operate_s / 2)
    assert plant.breaker_position.name == "OPEN"
    assert plant.breaker.operations == 1
    assert not plant.bus_live


def test_breaker_operate_time_defaults_to_the_site_file(plant: Plant) -> None:
    assert plant.breaker_operate_s == plant.config.sync.breaker_close_time_s


def test_fail_to_operate_breaker_ignores_commands_and_says_so(plant: Plant) -> None:
    plant.fail_to_operate(True)
    plant.command_breaker(BreakerCommand.OPEN)
    plant.step(1.0)
    assert plant.breaker_position == BreakerPosition.CLOSED
    assert plant.breaker.failed_last_command
    assert plant.breaker.operations == 0
    plant.clear_fault("pcc_breaker")
    plant.command_breaker(BreakerCommand.OPEN)
    plant.step(1.0)
    assert plant.breaker_position.name == "OPEN"
    assert not plant.breaker.failed_last_command


def test_breaker_timing_is_configurable(make_plant: Callable[..., Plant]) -> None:
    plant = make_plant(timing=PlantTiming(breaker_operate_s=0.0))
    plant.command_breaker(BreakerCommand.OPEN)
    assert plant.breaker_position == BreakerPosition.OPEN


# --------------------------------------------------------------------------- V2L
def test_v2l_supplies_its_circuit_and_drains_the_vehicle(plant: Plant) -> None:
    plant.set_outlet_enable("v2l_1", True)
    assert plant.outlets["v2l_1"].power_w == 300 + 500 + 2000
    assert plant.load_power_w("tea_urn") == 2000
    plant.step(3600)
    assert plant.vehicle_soc("donor_v2l_1") == pytest.approx(80 - 2800 / 77400 * 100)


def test_v2l_overload_trips_and_needs_enable_reset(plant: Plant) -> None:
    plant.set_outlet_enable("v2l_1", True)
    plant.set_load_factor("tea_urn", 1.5)  # 3800 W > 3600 W
    outlet = plant.outlets["v2l_1"]
    assert outlet.state.name == "TRIPPED"
    assert plant.load_power_w("field_clinic_fridge") == 0
    assert kinds(plant) == ["over_rating"]
    relay(plant, "tea_urn", False)
    plant.step(1.0)
    assert outlet.state.name == "TRIPPED"  # shedding alone does not reset it
    plant.set_outlet_enable("v2l_1", False)
    plant.set_outlet_enable("v2l_1", True)
    assert outlet.state.name == "SUPPLYING"


def test_v2l_stops_at_the_vehicle_cutoff(make_plant: Callable[..., Plant]) -> None:
    plant = make_plant(soc_pct={"donor_v2l_2": 10.5})
    relay(plant, "tent_heater", False)
    plant.set_outlet_enable("v2l_2", True)
    plant.step(10 * 3600)
    assert plant.vehicle_soc("donor_v2l_2") == pytest.approx(10.0)
    assert plant.outlets["v2l_2"].state.name == "OFF"
    assert kinds(plant) == ["below_reserve"]  # 10.5 % was already below the 35 % reserve


# --------------------------------------------------------------------------- shed order
def test_wrong_shed_order_recorded_after_relays_settle(plant: Plant) -> None:
    relay(plant, "medical_fridge", False)  # life-safety off while comfort loads are on
    plant.step(0.5)
    assert plant.violations == []
    plant.step(0.6)
    assert kinds(plant) == ["wrong_shed_order"]
    assert "medical_fridge (life_safety) off" in plant.violations[0].detail


def test_wrong_shed_order_ignores_switching_transients(plant: Plant) -> None:
    for load_id in ("hvac", "hot_water", "lift", "ev_charging_non_donor", "kitchen"):
        relay(plant, load_id, False)
        plant.step(0.02)
    plant.step(5.0)
    assert plant.violations == []


def test_wrong_shed_order_excused_for_operator_shed(plant: Plant) -> None:
    plant.excuse_load("water_pump")
    relay(plant, "water_pump", False)
    plant.step(2.0)
    assert plant.violations == []


def test_wrong_shed_order_only_judged_on_a_live_circuit(plant: Plant) -> None:
    plant.grid_loss()
    relay(plant, "medical_fridge", False)
    plant.step(5.0)
    assert plant.violations == []


def test_wrong_shed_order_needs_a_lower_priority_load_on(plant: Plant) -> None:
    relay(plant, "hvac", False)  # comfort off while other comfort loads stay on: same tier
    plant.step(2.0)
    assert plant.violations == []
    for load_id in ("hot_water", "lift", "ev_charging_non_donor", "kitchen"):
        relay(plant, load_id, False)  # from the bottom up: never wrong
    plant.step(2.0)
    assert plant.violations == []
    relay(plant, "hvac", True)  # comfort back on while kitchen (essential) is off
    plant.step(2.0)
    assert kinds(plant) == ["wrong_shed_order"]
    assert plant.violations[0].detail == "bus: kitchen (essential) off while hvac (comfort) on"


def test_wrong_shed_order_detail_names_the_first_four_pairs_in_site_order(plant: Plant) -> None:
    relay(plant, "water_pump", False)
    relay(plant, "medical_fridge", False)
    plant.step(2.0)
    pairs = [
        "medical_fridge (life_safety) off while heating_circulation (critical) on",
        "medical_fridge (life_safety) off while phone_charging (critical) on",
        "medical_fridge (life_safety) off while network (critical) on",
        "medical_fridge (life_safety) off while kitchen (essential) on",
    ]
    assert [v.detail for v in plant.violations] == ["bus: " + "; ".join(pairs)]


def test_an_excused_load_left_on_still_counts_as_on(plant: Plant) -> None:
    for load_id in ("hot_water", "lift", "ev_charging_non_donor"):
        relay(plant, load_id, False)
    plant.excuse_load("hvac")  # excused, but its relay stays on
    relay(plant, "kitchen", False)
    plant.step(2.0)
    assert kinds(plant) == ["wrong_shed_order"]
    assert "kitchen (essential) off while hvac (comfort) on" in plant.violations[0].detail


def test_wrong_shed_order_is_one_episode_until_the_order_is_right(plant: Plant) -> None:
    relay(plant, "medical_fridge", False)
    plant.step(2.0)
    plant.step(60.0)
    assert kinds(plant) == ["wrong_shed_order"]
    relay(plant, "medical_fridge", True)
    plant.step(2.0)
    relay(plant, "medical_fridge", False)
    plant.step(2.0)
    assert kinds(plant) == ["wrong_shed_order", "wrong_shed_order"]


def test_wrong_shed_order_is_judged_per_v2l_circuit(plant: Plant) -> None:
    plant.set_outlet_enable("v2l_1", True)
    relay(plant, "tent_lighting", False)  # critical off while the tea urn (comfort) is on
    relay(plant, "radio_charging_tent", False)  # v2l_2 is not live: not judged
    plant.step(2.0)
    assert [v.detail for v in plant.violations] == [
        "v2l_1: tent_lighting (critical) off while tea_urn (comfort) on"
    ]


# --------------------------------------------------------------------------- injections and books
def test_relay_operations_are_counted_per_load(plant: Plant) -> None:
    for _ in range(3):
        relay(plant, "lift", False)
        relay(plant, "lift", True)
    relay(plant, "lift", True)  # no change, no operation
    assert plant.relay_operations("lift") == 6
    assert plant.panels["panel_main"].operations == 6


def test_flicker_toggles_the_grid(plant: Plant) -> None:
    plant.flicker(period_s=1.0, count=3)
    assert not plant.grid_present
    plant.step(0.5)
    assert plant.grid_present
    plant.step(0.5)
    assert not plant.grid_present
    plant.step(2.0)
    assert plant.grid_present
    assert sum(1 for e in plant.log if e.detail == "grid lost") == 3


def test_sag_recovers_after_its_duration(plant: Plant) -> None:
    plant.sag(0.5, 0.2)
    assert plant.grid.voltage_v == pytest.approx(200.0)
    assert plant.bus_voltage_v == pytest.approx(200.0)
    plant.step(0.2)
    assert plant.grid.voltage_v == pytest.approx(400.0)


def test_served_and_unserved_energy_by_tier(plant: Plant) -> None:
    relay(plant, "hvac", False)
    plant.step(3600)
    assert plant.served_energy_wh[Tier.LIFE_SAFETY] == pytest.approx(LIFE_SAFETY_W)
    # hvac is off; the V2L circuits are dead (outlets disabled), so their loads are unserved too
    assert plant.unserved_energy_wh[Tier.COMFORT] == pytest.approx(12000 + 2000 + 2000)
    assert plant.unserved_energy_wh[Tier.LIFE_SAFETY] == pytest.approx(300)


def test_plug_and_unplug_a_vehicle(plant: Plant) -> None:
    plant.unplug("charger_4")
    assert plant.chargers["charger_4"].state == ChargerState.UNPLUGGED
    plant.plug("charger_4", "visitor", soc_pct=55.0, capacity_wh=40000, reserve_soc_pct=20)
    assert plant.vehicle_soc("visitor") == 55.0
    assert plant.chargers["charger_4"].max_discharge_w == 11000
    with pytest.raises(ValueError, match="already holds"):
        plant.plug("charger_4", "another", soc_pct=50, capacity_wh=40000)


def test_step_rejects_negative_time(plant: Plant) -> None:
    with pytest.raises(ValueError):
        plant.step(-1.0)


def test_state_is_json_ready(plant: Plant) -> None:
    import json

    plant.grid_loss()
    state = json.loads(json.dumps(plant.state()))
    assert state["grid"]["present"] is False
    assert state["breaker"]["position"] == "CLOSED"
    assert state["loads"]["hvac"]["tier"] == "comfort"


# --------------------------------------------------------------------------- what drills judge
def test_the_plant_records_when_each_tier_was_served_per_circuit(plant: Plant) -> None:
    """Every load of the tier on the circuit energised (relay closed, circuit live): the
    record the drills' endurance criteria are judged on (issue 11)."""
    plant.step(600)
    relay(plant, "kitchen", False)  # one essential load off: the essential tier is not served
    plant.step(300)
    black_start(plant)  # the bus is dark while the PCC opens, then carried by charger_1
    plant.step(1200)
    dark = plant.breaker_operate_s + plant.timing.form_soft_start_s  # PCC opens, car forms
    assert plant.time_s == pytest.approx(2100 + dark)
    assert plant.served_s("bus", Tier.LIFE_SAFETY) == pytest.approx(2100)
    assert len(plant.served_intervals[("bus", Tier.LIFE_SAFETY)]) == 2
    assert plant.served_s("bus", Tier.ESSENTIAL) == pytest.approx(600)
    assert plant.served_s("bus", Tier.ESSENTIAL, 0, 300) == pytest.approx(300)
    assert plant.served_s("bus", Tier.LIFE_SAFETY, 900, 2100) == pytest.approx(1200 - dark)
    # the V2L circuit has its car and outlet off at the start: never energised
    assert plant.served_s("v2l_1", Tier.LIFE_SAFETY) == 0.0
    assert plant.served_s("v2l_2", Tier.LIFE_SAFETY) == 0.0  # no such load there
    assert ("v2l_2", Tier.LIFE_SAFETY) not in plant.served_intervals


def test_the_plant_records_every_relay_change_and_pcc_close(plant: Plant) -> None:
    assert plant.relay_initial["kitchen"] is True
    plant.step(10)
    relay(plant, "kitchen", False)
    relay(plant, "kitchen", False)  # no change: not an operation
    plant.step(5)
    relay(plant, "kitchen", True)
    assert plant.relay_log["kitchen"] == [(10.0, False), (15.0, True)]
    assert plant.relay_changes("kitchen", 12, 20) == [(15.0, True)]
    assert plant.relay_changes("kitchen", 10, 10) == [(10.0, False)]  # both ends included
    assert plant.pcc_closes == []  # closed at time 0 is not a close
    open_breaker(plant)
    close_breaker(plant)
    assert plant.pcc_closes == [pytest.approx(15 + 2 * plant.breaker_operate_s)]
