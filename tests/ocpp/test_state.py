"""The pure parts of the central system: decoding into StationState, the reading built
from it, the schedules sent, and the password hashes."""

from __future__ import annotations

import io
from typing import Any

import pytest

from resilience.cli import main
from resilience.devices import ChargerCommand
from resilience.model import ChargerMode, ChargerState
from resilience.ocpp import hash_password, verify_password
from resilience.ocpp.driver import may_discharge, reading_from_state
from resilience.ocpp.passwords import PasswordError
from resilience.ocpp.profiles import Schedule, schedule_for
from resilience.ocpp.state import (
    Refused,
    StationState,
    charging_needs_update,
    meter_values_update,
    status_update,
    transaction_update,
)
from tests.ocpp.station import ocpp_site


def _state(version: str = "2.1") -> StationState:
    return StationState("ST1", version, 11000.0)


def _meter(**values: Any) -> list[dict[str, Any]]:
    names = {
        "import_w": "Power.Active.Import",
        "export_w": "Power.Active.Export",
        "soc": "SoC",
        "voltage": "Voltage",
        "frequency": "Frequency",
    }
    return [
        {
            "timestamp": "2030-01-01T00:00:00Z",
            "sampled_value": [{"value": v, "measurand": names[k]} for k, v in values.items()],
        }
    ]


def test_meter_values_sign_power_as_export_minus_import() -> None:
    state = _state()
    meter_values_update(state, _meter(import_w=0.0, export_w=4000.0, soc=55, voltage=400.0,
                                      frequency=50.0))
    assert (state.power_w, state.soc_pct, state.trusted) == (4000.0, 55.0, True)
    meter_values_update(state, _meter(import_w=2500.0, export_w=0.0))
    assert state.power_w == -2500.0


def test_meter_values_in_kw_with_multiplier_and_per_phase_totals() -> None:
    state = _state()
    meter_values_update(
        state,
        [
            {
                "timestamp": "2030-01-01T00:00:00Z",
                "sampled_value": [
                    {"value": 3.0, "measurand": "Power.Active.Import",
                     "unit_of_measure": {"unit": "kW"}},
                    {"value": 1.0, "measurand": "Power.Active.Export", "phase": "L1",
                     "unit_of_measure": {"unit": "W", "multiplier": 3}},
                    {"value": 1.0, "measurand": "Power.Active.Export", "phase": "L2",
                     "unit_of_measure": {"unit": "W", "multiplier": 3}},
                ],
            }
        ],
    )
    assert state.power_w == -1000.0


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"soc": 101.0}, "SoC: 101 %"),
        ({"export_w": 30000.0}, "Power.Active.Export: 30000 W"),
        ({"voltage": 1200.0}, "Voltage: 1200 V"),
        ({"voltage": 400.0, "frequency": 0.0}, "Frequency: 0 Hz"),
        ({"frequency": float("nan")}, "not a finite number"),
        ({"soc": "lots"}, "not a number"),
    ],
)
def test_an_impossible_meter_value_changes_nothing(values: dict[str, Any], problem: str) -> None:
    state = _state()
    meter_values_update(state, _meter(import_w=100.0, soc=50.0, voltage=400.0, frequency=50.0))
    before = (state.power_w, state.soc_pct, state.voltage_v, state.frequency_hz)
    with pytest.raises(Refused, match=problem):
        meter_values_update(state, _meter(import_w=0.0, **values))
    assert (state.power_w, state.soc_pct, state.voltage_v, state.frequency_hz) == before


def test_a_dead_bus_reads_zero_volts_and_zero_hertz() -> None:
    state = _state()
    meter_values_update(state, _meter(voltage=0.0, frequency=0.0))
    assert (state.voltage_v, state.frequency_hz) == (0.0, 0.0)


def _needs(**dc_v2x: Any) -> dict[str, Any]:
    return {
        "requested_energy_transfer": "DC_BPT",
        "available_energy_transfer": ["DC", "DC_BPT"],
        "dc_charging_parameters": {
            "ev_max_current": 100,
            "ev_max_voltage": 500,
            "ev_energy_capacity": dc_v2x.get("capacity", 60000),
            "state_of_charge": dc_v2x.get("soc", 80),
        },
        "v2x_charging_parameters": {
            "max_discharge_power": 6000,
            "ev_min_v2x_energy_request": dc_v2x.get("min_v2x", -30000),
        },
        "der_charging_parameters": {
            "ev_islanding_detection_method": dc_v2x.get("islanding", ["RoCoF"])
        },
    }


def test_charging_needs_give_the_car_floor_from_its_own_minimum_energy() -> None:
    state = _state()
    charging_needs_update(state, _needs())
    assert state.car_floor_soc_pct == pytest.approx(30.0)  # 80 % - 30 kWh of 60 kWh
    charging_needs_update(state, _needs(min_v2x=12000))  # below its minimum: needs 12 kWh
    assert state.car_floor_soc_pct == pytest.approx(100.0)  # 80 % + 20 %, clamped
    charging_needs_update(state, _needs(soc=10, min_v2x=-30000))
    assert state.car_floor_soc_pct == 0.0  # clamped at 0


def test_charging_needs_out_of_range_change_nothing() -> None:
    state = _state()
    charging_needs_update(state, _needs())
    with pytest.raises(Refused, match="ev_min_v2x_energy_request"):
        charging_needs_update(state, _needs(min_v2x=-90000))  # more than the battery holds
    with pytest.raises(Refused, match="not a known method"):
        charging_needs_update(state, _needs(islanding=["Astrology"]))
    assert state.car_floor_soc_pct == pytest.approx(30.0)
    assert state.car_max_discharge_w == 6000.0


def test_active_anti_islanding_blocks_discharge_passive_does_not() -> None:
    device = ocpp_site({"st1": {}}).devices["st1"]
    state = _state()
    state.idle_installed = True
    charging_needs_update(state, _needs(islanding=["UVP_OVP", "FrequencyJump"]))
    allowed, why = may_discharge(state, device)
    assert not allowed and "FrequencyJump" in why
    assert reading_from_state(state, device).max_discharge_w == 0.0
    charging_needs_update(state, _needs(islanding=["UVP_OVP", "RoCoF"]))
    assert reading_from_state(state, device).max_discharge_w == 6000.0


def test_no_discharge_before_the_idle_fallback_is_installed() -> None:
    device = ocpp_site({"st1": {}}).devices["st1"]
    state = _state()
    charging_needs_update(state, _needs())
    assert reading_from_state(state, device).max_discharge_w == 0.0
    state.idle_installed = True
    assert reading_from_state(state, device).max_discharge_w == 6000.0


def test_the_car_leaving_forgets_its_figures() -> None:
    device = ocpp_site({"st1": {}}).devices["st1"]
    state = _state()
    state.idle_installed = True
    transaction_update(state, "Started", "T9")
    charging_needs_update(state, _needs())
    status_update(state, "Available")
    reading = reading_from_state(state, device)
    assert reading.state is ChargerState.UNPLUGGED
    assert (reading.capacity_wh, reading.vehicle_floor_soc_pct, reading.max_discharge_w) == (
        0.0,
        0.0,
        0.0,
    )
    with pytest.raises(Refused):
        status_update(state, "Dancing")


def test_schedules_keep_d_le_s_le_l_and_hold_the_setpoint_within_bounds() -> None:
    command = ChargerCommand(ChargerMode.FOLLOW, 5000.0, min_soc_pct=20.0)
    schedule = schedule_for(command, max_charge_w=11000.0, max_discharge_w=7000.0, soc_pct=50.0)
    assert schedule == Schedule(-5000.0, 11000.0, -7000.0)
    shrunk = schedule_for(command, max_charge_w=11000.0, max_discharge_w=3000.0, soc_pct=50.0)
    assert shrunk.setpoint_w == -3000.0  # bounds that shrank lower the power
    floor = schedule_for(command, max_charge_w=11000.0, max_discharge_w=7000.0, soc_pct=20.0)
    assert (floor.setpoint_w, floor.discharge_limit_w) == (0.0, 0.0)
    off = schedule_for(ChargerCommand(ChargerMode.OFF, 5000.0), max_charge_w=0.0,
                       max_discharge_w=0.0, soc_pct=50.0)
    assert off == Schedule(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="D <= S <= L"):
        Schedule(5000.0, 1000.0, -1000.0)
    with pytest.raises(ValueError, match="D <= 0 <= L"):
        Schedule(2000.0, 3000.0, 1000.0)


# ---------------------------------------------------------------- passwords


def test_password_hashes_are_salted_and_verify_only_the_password() -> None:
    first = hash_password("sixteen-chars-ok")
    second = hash_password("sixteen-chars-ok")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert verify_password("sixteen-chars-ok", first)
    assert not verify_password("sixteen-chars-no", first)
    assert not verify_password("sixteen-chars-ok", "scrypt$garbage")
    assert not verify_password("sixteen-chars-ok", "")


@pytest.mark.parametrize("password", ["short", "x" * 15, "y" * 41])
def test_passwords_outside_ocpp_lengths_are_refused(password: str) -> None:
    with pytest.raises(PasswordError, match="characters"):
        hash_password(password)


def test_cli_prints_the_hash_line_to_paste(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a-station-password-1\n"))
    assert main(["ocpp-password", "--password-stdin"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith('password_hash = "scrypt$') and line.endswith('"')
    assert verify_password("a-station-password-1", line.split('"')[1])
    monkeypatch.setattr("sys.stdin", io.StringIO("too-short\n"))
    assert main(["ocpp-password", "--password-stdin"]) == 1
    assert "at least 16" in capsys.readouterr().err


async def test_a_station_read_again_is_the_same_reading_until_anything_changes() -> None:
    """The cycle reads a station fifty times a second; its driver hands back the very
    reading object while nothing came (the steady cycle then sees no change), and never a
    stale one: every field the reading rests on, set by anything, makes a new one."""
    from resilience.ocpp import CentralSystem

    config = ocpp_site({"lf": {"role": "follower"}})
    driver = CentralSystem(config).drivers["lf"]
    state = driver.state
    state.connect(driver.clock())
    meter_values_update(
        state, _meter(import_w=0.0, export_w=4000.0, soc=55, voltage=400.0, frequency=50.0)
    )
    first = await driver.read()
    assert await driver.read() is first
    changes: list[tuple[str, Any]] = [
        ("status", "Faulted"),
        ("status", "Charging"),
        ("plugged", True),
        ("power_w", -2500.0),
        ("soc_pct", 54.0),
        ("voltage_v", 231.0),
        ("frequency_hz", 49.9),
        ("capacity_wh", 60000.0),
        ("car_max_charge_w", 7000.0),
        ("car_max_discharge_w", 6000.0),
        ("car_floor_soc_pct", 35.0),
        ("departure_wall", 1.9e9),
        ("requested_transfer", "DC_BPT"),
        ("idle_installed", True),
        ("active_islanding", ("Passive",)),
        ("active_islanding", ()),
        ("accepted_mode", ChargerMode.FOLLOW),
        ("held_setpoint_w", 3000.0),
        ("rating_w", 7400.0),
    ]
    last = first
    for name, value in changes:
        setattr(state, name, value)
        reading = await driver.read()
        assert reading == reading_from_state(state, config.devices["lf"]), name
        assert reading is not last, name
        assert await driver.read() is reading, name
        last = reading
