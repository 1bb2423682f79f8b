"""What the OCPP site fuzzer (test_ocpp_sites_fuzz.py) found, replayed on the site it drew.

Each test starts `OcppSitesMachine` on the drawn site (the real controller and central
system, simulated stations in process, the plant as referee) and replays the steps. The
verdict is the plant's.
"""

from __future__ import annotations

from typing import Any

from tests.fuzz.test_ocpp_sites_fuzz import OcppSitesMachine

# A random run (RESILIENCE_FUZZ_RANDOM=1, 1000 examples x 50 steps) drew this site: a 7.4 kW
# Modbus former and an OCPP 2.1 station (11 kW) whose car charges at 11 kW on the grid.
FORMER_OVERLOADED_BY_A_CUT_STATION: dict[str, Any] = {
    "site": {
        "name": "Shelter (4 chargers, 12 loads)",
        "cycle_period_s": 0.2,
        "store_path": "var/site.sqlite",
    },
    "grid": {
        "nominal_voltage_v": 400.0,
        "nominal_frequency_hz": 50.0,
        "connection_kva": 25.0,
        "meter": "grid_meter",
        "pcc_breaker": "pcc_breaker",
        "voltage_window_pu": [0.917, 1.05],
        "frequency_window_hz": [49.5, 50.5],
        "return_to_service_s": 300.0,
    },
    "dispatch": {"shed_margin_w": 300.0, "cold_load_factor": 1.2, "restore_delay_s": 2.0},
    "devices": {
        "grid_meter": {
            "driver": "sunspec_meter",
            "host": "192.168.1.10",
            "port": 502,
        },
        "pcc_breaker": {
            "driver": "pcc_breaker",
            "host": "192.168.1.11",
            "port": 502,
        },
        "panel_1": {
            "driver": "load_panel",
            "channels": 16,
            "host": "192.168.1.12",
            "port": 502,
        },
        "panel_v2l_1": {
            "driver": "load_panel",
            "channels": 8,
            "host": "192.168.1.13",
            "port": 502,
        },
        "charger_1": {
            "driver": "bidirectional_charger",
            "rating_w": 7400.0,
            "can_form": True,
            "host": "192.168.1.14",
            "port": 502,
        },
        "charger_2": {
            "driver": "bidirectional_charger",
            "rating_w": 11000.0,
            "can_form": True,
            "host": "192.168.1.15",
            "port": 502,
        },
        "charger_3": {
            "driver": "bidirectional_charger",
            "rating_w": 11000.0,
            "host": "192.168.1.16",
            "port": 502,
        },
        "charger_4": {
            "driver": "bidirectional_charger",
            "rating_w": 11000.0,
            "host": "192.168.1.17",
            "port": 502,
        },
        "v2l_1": {
            "driver": "v2l_outlet",
            "rating_w": 3600.0,
            "host": "192.168.1.18",
            "port": 502,
        },
        "pv_1": {
            "driver": "sunspec_inverter",
            "rating_w": 20000.0,
            "host": "192.168.1.19",
            "port": 502,
        },
        "pv_2": {
            "driver": "sunspec_inverter",
            "rating_w": 20000.0,
            "host": "192.168.1.20",
            "port": 502,
        },
        "ocpp_1": {
            "driver": "ocpp",
            "rating_w": 11000.0,
            "role": "follower",
            "ocpp": {"identity": "SIM-01", "version": "2.1"},
        },
    },
    "loads": [
        {
            "id": "emergency_lighting",
            "name": "Emergency lighting",
            "tier": "life_safety",
            "rated_power_w": 50.0,
            "panel": "panel_1",
            "channel": 0,
        },
        {
            "id": "water_pressure_pump",
            "name": "Water pressure pump",
            "tier": "critical",
            "rated_power_w": 100.0,
            "panel": "panel_1",
            "channel": 1,
        },
        {
            "id": "kitchen",
            "name": "Kitchen",
            "tier": "essential",
            "rated_power_w": 200.0,
            "panel": "panel_1",
            "channel": 2,
        },
        {
            "id": "hvac",
            "name": "HVAC",
            "tier": "comfort",
            "rated_power_w": 500.0,
            "panel": "panel_1",
            "channel": 3,
        },
        {
            "id": "kitchen_2",
            "name": "Kitchen 2",
            "tier": "essential",
            "rated_power_w": 200.0,
            "panel": "panel_1",
            "channel": 4,
        },
        {
            "id": "kitchen_3",
            "name": "Kitchen 3",
            "tier": "essential",
            "rated_power_w": 200.0,
            "panel": "panel_1",
            "channel": 5,
        },
        {
            "id": "kitchen_4",
            "name": "Kitchen 4",
            "tier": "essential",
            "rated_power_w": 200.0,
            "panel": "panel_1",
            "channel": 6,
        },
        {
            "id": "kitchen_5",
            "name": "Kitchen 5",
            "tier": "essential",
            "rated_power_w": 200.0,
            "panel": "panel_1",
            "channel": 7,
        },
        {
            "id": "kitchen_6",
            "name": "Kitchen 6",
            "tier": "essential",
            "rated_power_w": 200.0,
            "panel": "panel_1",
            "channel": 8,
        },
        {
            "id": "kitchen_7",
            "name": "Kitchen 7",
            "tier": "essential",
            "rated_power_w": 200.0,
            "panel": "panel_1",
            "channel": 9,
        },
        {
            "id": "kitchen_8",
            "name": "Kitchen 8",
            "tier": "essential",
            "rated_power_w": 200.0,
            "panel": "panel_1",
            "channel": 10,
        },
        {
            "id": "kitchen_9",
            "name": "Kitchen 9",
            "tier": "essential",
            "rated_power_w": 200.0,
            "panel": "panel_1",
            "channel": 11,
        },
        {
            "id": "water_pressure_pump_v2l_tent_1",
            "name": "Water pressure pump (V2L tent 1)",
            "tier": "critical",
            "rated_power_w": 100.0,
            "supply": "v2l_1",
            "panel": "panel_v2l_1",
            "channel": 0,
        },
        {
            "id": "emergency_lighting_v2l_tent_1",
            "name": "Emergency lighting (V2L tent 1)",
            "tier": "life_safety",
            "rated_power_w": 50.0,
            "supply": "v2l_1",
            "panel": "panel_v2l_1",
            "channel": 1,
        },
        {
            "id": "emergency_lighting_v2l_tent_1_2",
            "name": "Emergency lighting (V2L tent 1) 2",
            "tier": "life_safety",
            "rated_power_w": 50.0,
            "supply": "v2l_1",
            "panel": "panel_v2l_1",
            "channel": 2,
        },
    ],
    "vehicles": [
        {
            "id": "fleet_1",
            "name": "Fleet car 1",
            "charger": "charger_1",
            "capacity_wh": 77400.0,
            "reserve_soc_pct": 20.0,
        },
        {
            "id": "fleet_2",
            "name": "Fleet car 2",
            "charger": "charger_2",
            "capacity_wh": 77400.0,
            "reserve_soc_pct": 20.0,
        },
        {
            "id": "fleet_3",
            "name": "Fleet car 3",
            "charger": "charger_3",
            "capacity_wh": 77400.0,
            "reserve_soc_pct": 20.0,
        },
        {
            "id": "station_car_1",
            "name": "Car at ocpp_1",
            "charger": "ocpp_1",
            "capacity_wh": 77400.0,
            "reserve_soc_pct": 30.0,
        },
    ],
    "ocpp": {"port": 0, "max_offline_duration_s": 2, "call_timeout_s": 0.05},
}


def test_a_station_cut_off_while_charging_does_not_overload_the_black_start_former() -> None:
    """The station's link is cut while it charges at 11 kW on the grid; the grid goes
    0.2 s later. The controller still believed the station (its grace had not run out),
    read it as drawing nothing on the dead bus and black-started on the 7.4 kW former;
    the station, still under its last setpoint (its dead-man had 2 s to run), resumed
    charging and collapsed the island (island_collapse: 8950 W > 1.1 x 7400 W). A charger
    that reads a draw on a dead bus is showing a stale reading and now counts as a draw
    that cannot be shed (`modes.held_charge_w`): the black start waits (alarm
    black_start_blocked) instead of forming onto it."""
    state = OcppSitesMachine()
    try:
        state.site(
            doc=FORMER_OVERLOADED_BY_A_CUT_STATION,
            night_island=True,
            cars="below the reserve, own floor lower",
        )
        state.car_figures(active=False, departure=None, floor_offset=None, which=194)
        state.wait(seconds=1.0)
        state.grid_return()
        state.breaker_fail_to_operate(failed=False)
        state.donor_arrives(capacity=77400.0, leaving=5.0, reserve=20.0, soc=10.0, which=0)
        state.wait(seconds=8.0)
        state.wait(seconds=3.0)  # the break-before-make close probes the breaker first (1 s)
        assert state.plant.charger_power_w("ocpp_1") < -10000.0  # charging on the grid
        state.clear(which=0)
        state.sag(duration=0.1, pu=0.0)
        state.link_cut_stays(which=0)
        for _ in range(4):
            state.grid_loss()
            state.check()
        state.wait(seconds=8.0)
        state.check()
        state.store.flush(5.0)
        assert "black_start_blocked" in {alarm.code for alarm in state.store.alarms()}
    finally:
        state.teardown()


def test_a_station_back_within_its_offline_duration_is_given_a_new_dynamic_profile() -> None:
    """Found by the next random run, after the fix above, with these steps (replayed on the
    site above: it shows the same failure). The station's link comes back 1.8 s after the
    cut, within its maxOfflineDuration (2 s): it still holds the Dynamic profile of the
    last link, charging at 11 kW. The central system took the station for a fresh one
    (no Dynamic profile) and, for a 0 W command, sent nothing ("Idle beneath is 0 W
    already"); the station, reading 0 W on the dead bus, let the black start go ahead and
    resumed charging once the bus was live (island_collapse: 8850 W > 1.1 x 7400 W). After a
    (re)connect what a station holds is unknown (`held_setpoint_w` None): a 0 W command
    clears a Dynamic profile left over from the last link first, and until a zero is
    taken the black start counts the station at its charging limit (`modes.held_charge_w`)."""
    state = OcppSitesMachine()
    try:
        state.site(
            doc=FORMER_OVERLOADED_BY_A_CUT_STATION,
            night_island=True,
            cars="below the reserve, own floor lower",
        )
        state.grid_loss()
        state.grid_loss()
        state.grid_return()
        state.breaker_fail_to_operate(failed=False)
        state.donor_arrives(capacity=77400.0, leaving=5.0, reserve=20.0, soc=10.0, which=0)
        state.wait(seconds=8.0)
        state.clear(which=0)
        state.sag(duration=0.1, pu=0.0)
        state.link_cut_stays(which=0)
        state.grid_loss()
        state.grid_loss()
        state.unplug(which=316283)
        for _ in range(3):
            state.grid_loss()
        state.plug(soc=5.0, which=0)
        state.grid_loss()
        state.breaker_fail_to_operate(failed=False)
        state.grid_loss()
        state.check()
        state.station_recovers(which=0)
        state.slow(n=2, which=0)
        state.check()
        state.wait(seconds=8.0)
        state.check()
    finally:
        state.teardown()


# Found by a random run after the two fixes above (RESILIENCE_FUZZ_RANDOM=1, 800 x 50,
# --hypothesis-seed=273831636886011784866003525086442259397), not fixed yet: with the PCC
# breaker silent and failing to operate, a resynchronisation stops the island's last
# grid-former for a break-before-make close that never happens (island_collapse: "the
# controller stopped the island's last grid-former (charger_1 OFF) with loads on").
# The OCPP station is incidental; the Modbus breaker's failure is what matters.
BREAKER_STUCK_DURING_RESYNC: dict[str, Any] = {
    "site": {
        "name": "Shelter (4 chargers, 12 loads)",
        "cycle_period_s": 0.02,
        "store_path": "var/site.sqlite",
    },
    "grid": {
        "nominal_voltage_v": 400.0,
        "nominal_frequency_hz": 50.0,
        "connection_kva": 25.0,
        "meter": "grid_meter",
        "pcc_breaker": "pcc_breaker",
        "voltage_window_pu": [0.917, 1.05],
        "frequency_window_hz": [49.5, 50.5],
        "return_to_service_s": 300.0,
    },
    "sync": {"max_frequency_diff_hz": 0.2, "max_phase_diff_deg": 15.0, "slip_frequency_hz": 0.1},
    "dispatch": {"shed_margin_w": 300.0, "cold_load_factor": 1.2, "restore_delay_s": 2.0},
    "devices": {
        "grid_meter": {
            "driver": "sunspec_meter",
            "host": "192.168.1.10",
            "port": 502,
        },
        "pcc_breaker": {
            "driver": "pcc_breaker",
            "host": "192.168.1.11",
            "port": 502,
        },
        "panel_1": {
            "driver": "load_panel",
            "channels": 16,
            "host": "192.168.1.12",
            "port": 502,
        },
        "panel_2": {
            "driver": "load_panel",
            "channels": 16,
            "host": "192.168.1.13",
            "port": 502,
        },
        "panel_v2l_1": {
            "driver": "load_panel",
            "channels": 8,
            "host": "192.168.1.14",
            "port": 502,
        },
        "charger_1": {
            "driver": "bidirectional_charger",
            "rating_w": 11000.0,
            "can_form": True,
            "host": "192.168.1.15",
            "port": 502,
        },
        "charger_2": {
            "driver": "bidirectional_charger",
            "rating_w": 11000.0,
            "host": "192.168.1.16",
            "port": 502,
        },
        "charger_3": {
            "driver": "bidirectional_charger",
            "rating_w": 11000.0,
            "can_form": True,
            "pcc_interlock": True,
            "host": "192.168.1.17",
            "port": 502,
        },
        "charger_4": {
            "driver": "bidirectional_charger",
            "rating_w": 11000.0,
            "host": "192.168.1.18",
            "port": 502,
        },
        "v2l_1": {
            "driver": "v2l_outlet",
            "rating_w": 3600.0,
            "host": "192.168.1.19",
            "port": 502,
        },
        "pv_1": {
            "driver": "sunspec_inverter",
            "rating_w": 20000.0,
            "host": "192.168.1.20",
            "port": 502,
        },
        "pv_2": {
            "driver": "sunspec_inverter",
            "rating_w": 20000.0,
            "host": "192.168.1.21",
            "port": 502,
        },
        "ocpp_1": {
            "driver": "ocpp",
            "rating_w": 11000.0,
            "role": "follower",
            "ocpp": {"identity": "SIM-01", "version": "2.1"},
        },
    },
    "loads": [
        {
            "id": "emergency_lighting",
            "name": "Emergency lighting",
            "tier": "life_safety",
            "rated_power_w": 960.0,
            "panel": "panel_1",
            "channel": 0,
        },
        {
            "id": "hvac",
            "name": "HVAC",
            "tier": "comfort",
            "rated_power_w": 8220.0,
            "panel": "panel_1",
            "channel": 1,
        },
        {
            "id": "kitchen",
            "name": "Kitchen",
            "tier": "essential",
            "rated_power_w": 3770.0,
            "panel": "panel_1",
            "channel": 2,
        },
        {
            "id": "water_pressure_pump",
            "name": "Water pressure pump",
            "tier": "critical",
            "rated_power_w": 100.0,
            "panel": "panel_1",
            "channel": 3,
        },
        {
            "id": "kitchen_2",
            "name": "Kitchen 2",
            "tier": "essential",
            "rated_power_w": 2660.0,
            "panel": "panel_1",
            "channel": 4,
        },
        {
            "id": "kitchen_3",
            "name": "Kitchen 3",
            "tier": "essential",
            "rated_power_w": 4860.0,
            "panel": "panel_1",
            "channel": 5,
        },
        {
            "id": "kitchen_4",
            "name": "Kitchen 4",
            "tier": "essential",
            "rated_power_w": 200.0,
            "panel": "panel_2",
            "channel": 0,
        },
        {
            "id": "kitchen_5",
            "name": "Kitchen 5",
            "tier": "essential",
            "rated_power_w": 770.0,
            "panel": "panel_2",
            "channel": 1,
        },
        {
            "id": "kitchen_6",
            "name": "Kitchen 6",
            "tier": "essential",
            "rated_power_w": 2740.0,
            "panel": "panel_2",
            "channel": 2,
        },
        {
            "id": "kitchen_7",
            "name": "Kitchen 7",
            "tier": "essential",
            "rated_power_w": 1620.0,
            "panel": "panel_2",
            "channel": 3,
        },
        {
            "id": "kitchen_8",
            "name": "Kitchen 8",
            "tier": "essential",
            "rated_power_w": 1940.0,
            "panel": "panel_2",
            "channel": 4,
        },
        {
            "id": "kitchen_9",
            "name": "Kitchen 9",
            "tier": "essential",
            "rated_power_w": 1680.0,
            "panel": "panel_2",
            "channel": 5,
        },
        {
            "id": "water_pressure_pump_v2l_tent_1",
            "name": "Water pressure pump (V2L tent 1)",
            "tier": "critical",
            "rated_power_w": 360.0,
            "supply": "v2l_1",
            "panel": "panel_v2l_1",
            "channel": 0,
        },
        {
            "id": "emergency_lighting_v2l_tent_1",
            "name": "Emergency lighting (V2L tent 1)",
            "tier": "life_safety",
            "rated_power_w": 430.0,
            "supply": "v2l_1",
            "panel": "panel_v2l_1",
            "channel": 1,
        },
        {
            "id": "medical_fridge_v2l_tent_1",
            "name": "Medical fridge (V2L tent 1)",
            "tier": "life_safety",
            "rated_power_w": 440.0,
            "supply": "v2l_1",
            "panel": "panel_v2l_1",
            "channel": 2,
        },
    ],
    "vehicles": [
        {
            "id": "fleet_1",
            "name": "Fleet car 1",
            "charger": "charger_1",
            "capacity_wh": 77400.0,
            "reserve_soc_pct": 40.0,
        },
        {
            "id": "fleet_2",
            "name": "Fleet car 2",
            "charger": "charger_2",
            "capacity_wh": 77400.0,
            "reserve_soc_pct": 25.0,
        },
        {
            "id": "fleet_3",
            "name": "Fleet car 3",
            "charger": "charger_3",
            "capacity_wh": 77400.0,
            "reserve_soc_pct": 50.0,
            "max_discharge_w": 6000.0,
        },
    ],
    "ocpp": {"port": 0, "max_offline_duration_s": 2, "call_timeout_s": 0.05},
}


def test_a_stuck_silent_breaker_does_not_make_the_resync_drop_the_island() -> None:
    """The breaker falls silent (and stuck) before a resync: the break-before-make close
    stopped charger_1, the island's only former, for a close that a silent breaker can
    never be sent; the site stayed dark until the resync timed out. Fixed by
    `modes.resync_blocked`: no step towards the grid while the breaker's position is
    unknown."""
    state = OcppSitesMachine()
    try:
        state.site(doc=BREAKER_STUCK_DURING_RESYNC, night_island=False, cars=None)
        state.grid_loss()
        state.check()
        state.car_figures(active=False, departure=None, floor_offset=None, which=194)
        state.check()
        state.wait(seconds=1.0)
        state.check()
        state.grid_return()
        state.check()
        state.breaker_fail_to_operate(failed=False)
        state.check()
        state.donor_arrives(
            capacity=98000.0, leaving=5.0, reserve=40.0, soc=84.18227766748534, which=14617
        )
        state.check()
        state.wait(seconds=8.0)
        state.check()
        state.clear(which=312)
        state.check()
        state.sag(duration=0.1, pu=1.1)
        state.check()
        state.link_cut_stays(which=371)
        state.check()
        state.sag(duration=0.1, pu=1.1)
        state.check()
        state.unplug(which=316283)
        state.check()
        state.flicker(count=4, period=3.0)
        state.check()
        state.clear(which=312)
        state.check()
        state.plug(soc=84.18227766748534, which=655)
        state.check()
        state.grid_loss()
        state.check()
        state.breaker_fail_to_operate(failed=False)
        state.check()
        state.reconnect()
        state.check()
        state.station_recovers(which=924)
        state.check()
        state.slow(n=2, which=767)
        state.check()
        state.plug(soc=19.251815677281648, which=1)
        state.check()
        state.run(n=1, times=2.5)
        state.check()
        state.grid_loss()
        state.check()
        state.pv(fraction=0.0)
        state.check()
        state.reconnect()
        state.check()
        state.grid_loss()
        state.check()
        state.grid_loss()
        state.check()
        state.donor_arrives(
            capacity=98000.0, leaving=None, reserve=60.0, soc=75.49454431473723, which=87
        )
        state.check()
        state.load_factor(factor=1.0, which=120)
        state.check()
        state.shed(which=1102)
        state.check()
        state.load_factor(factor=0.5, which=883652)
        state.check()
        state.clear(which=262143)
        state.check()
        state.stall(n=4)
        state.check()
        state.comm_fault(code=4, kind="silence", which=22564)
        state.check()
        state.planned_island()
        state.check()
        state.bulk_shed(
            picks=[
                10559,
                690057,
                14258,
                2588,
                999999,
                2529,
                702,
                191,
                644,
                125265,
                163225,
                1871,
                11620,
                113,
                115704,
            ]
        )
        state.check()
        state.hardware_fault(which=38)
        state.check()
        state.shed(which=16245)
        state.check()
        state.breaker_fail_to_operate(failed=True)
        state.check()
        state.restore(which=347)
        state.check()
        state.long_run(seconds=300.0)
        state.check()
    finally:
        state.teardown()
