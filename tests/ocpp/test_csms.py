"""The central system over real WebSockets on loopback, against the test station.

Each test starts the central system on a free port, connects `tests.ocpp.station`
stations (the `ocpp` library's own ChargePoint) and judges what went over the wire and
what the station's driver hands the control cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.exceptions import PropertyConstraintViolationError
from websockets.exceptions import InvalidStatus

from resilience.config import SiteConfig
from resilience.cycle import _vehicle_state
from resilience.devices import ChargerCommand
from resilience.drivers import registers
from resilience.model import ChargerMode, ChargerState
from resilience.ocpp import CentralSystem, CommandNotTaken, OcppStationDriver, StationSilent
from resilience.ocpp.csms import REFUSAL_REPEAT_S
from resilience.overrides import VehicleView
from resilience.transport.errors import BadReply
from tests.ocpp.station import (
    PASSWORD,
    Recorder,
    Running,
    ocpp_site,
    open_socket,
    running_csms,
    start_station,
    until,
)

pytestmark = pytest.mark.timeout(30)

RATING_W = 11000.0
CAPACITY_WH = 80000.0


def needs(
    *,
    requested: str = "DC_BPT",
    available: tuple[str, ...] = ("DC", "DC_BPT"),
    soc: float = 60.0,
    max_discharge_w: float = 7000.0,
    max_charge_w: float = 9000.0,
    min_v2x_wh: float | None = -20000.0,
    departure: str | None = None,
    islanding: tuple[str, ...] = ("RoCoF", "UFP_OFP"),
) -> dict[str, Any]:
    """NotifyEVChargingNeeds' charging_needs as the contract has a car send it."""
    v2x: dict[str, Any] = {"max_charge_power": max_charge_w, "max_discharge_power": max_discharge_w}
    if min_v2x_wh is not None:
        v2x["ev_min_v2x_energy_request"] = min_v2x_wh
    body: dict[str, Any] = {
        "requested_energy_transfer": requested,
        "available_energy_transfer": list(available),
        "control_mode": "DynamicControl",
        "dc_charging_parameters": {
            "ev_max_current": 125,
            "ev_max_voltage": 500,
            "ev_max_power": 50000,
            "ev_energy_capacity": CAPACITY_WH,
            "state_of_charge": round(soc),
        },
        "v2x_charging_parameters": v2x,
        "der_charging_parameters": {"ev_islanding_detection_method": list(islanding)},
    }
    if departure is not None:
        body["departure_time"] = departure
    return body


async def plugged(run: Running, **figures: Any) -> None:
    """The contract's arrival: Occupied, transaction Started, charging needs, a meter."""
    await run.station.status("Occupied")
    await run.station.transaction("Started", "T1")
    await run.station.needs(needs(**figures))
    await run.station.meter(soc=figures.get("soc", 60.0))


SITE = {"st1": {"rating_w": RATING_W}}


@contextlib.asynccontextmanager
async def booted_with_car(
    site: SiteConfig, **figures: Any
) -> AsyncIterator[tuple[CentralSystem, Recorder, OcppStationDriver, Running]]:
    """The central system with station ST1 (`st1`) connected, booted, its Idle profile
    received, and a car plugged in with `figures`."""
    async with running_csms(site) as (csms, recorder):
        driver = csms.driver("st1", site.devices["st1"])
        run = await start_station(csms, "ST1")
        await run.station.next_call("SetChargingProfile")
        await plugged(run, **figures)
        try:
            yield csms, recorder, driver, run
        finally:
            await run.close()


def follow(watts: float) -> ChargerCommand:
    """Follow `watts` (+ = discharge) keeping 20 % (as the cycle's commands carry a floor)."""
    return ChargerCommand(ChargerMode.FOLLOW, watts, min_soc_pct=20.0)


# ---------------------------------------------------------------- connection and auth


async def test_boot_installs_idle_then_dynamic_with_dead_man_when_power_is_first_asked() -> None:
    site = ocpp_site(SITE, max_offline_duration_s=7)
    async with running_csms(site) as (csms, recorder):
        run = await start_station(csms, "ST1")
        idle = await run.station.next_call("SetChargingProfile")
        profile = idle["charging_profile"]
        assert idle["evse_id"] == 1
        assert profile["id"] == 1 and profile["stack_level"] == 0
        assert profile["charging_profile_purpose"] == "TxDefaultProfile"
        period = profile["charging_schedule"][0]["charging_schedule_period"][0]
        assert period["operation_mode"] == "Idle" and period["limit"] == 0
        driver = csms.driver("st1", site.devices["st1"])
        await plugged(run)
        await driver.read()
        await driver.command(ChargerCommand(ChargerMode.OFF))  # nothing to send yet
        await driver.command(ChargerCommand(ChargerMode.FOLLOW, 4000.0, min_soc_pct=20.0))
        dynamic = (await run.station.next_call("SetChargingProfile"))["charging_profile"]
        assert dynamic["id"] == 2 and dynamic["stack_level"] == 1
        assert dynamic["charging_profile_kind"] == "Dynamic"
        assert dynamic["max_offline_duration"] == 7
        period = dynamic["charging_schedule"][0]["charging_schedule_period"][0]
        assert period["operation_mode"] == "CentralSetpoint"
        assert (period["setpoint"], period["discharge_limit"]) == (-4000.0, -7000.0)
        assert [a for a, _ in run.station.received] == ["SetChargingProfile"] * 2
        assert recorder.messages("ST1 (devices.st1) connected")
        await run.close()


async def test_reconnect_reinstalls_and_distrusts_the_first_reading() -> None:
    site = ocpp_site(SITE)
    async with booted_with_car(site) as (csms, recorder, driver, run):
        await driver.read()
        await driver.command(follow(2000.0))
        await run.station.next_call("SetChargingProfile")
        await until(lambda: driver.state.dynamic_installed)
        # A new connection of the same identity replaces the old; this station did not
        # reboot, so it sends no BootNotification: its first message counts.
        again = await start_station(csms, "ST1", boot=False)
        await again.station.call(again.station._call.Heartbeat())
        assert (await again.station.next_call("SetChargingProfile"))["charging_profile"]["id"] == 1
        with pytest.raises(StationSilent, match="no MeterValues yet"):
            await driver.read()
        await plugged(again)
        assert (await driver.read()).mode is ChargerMode.OFF  # nothing taken on this link yet
        await driver.command(follow(2000.0))
        assert (await again.station.next_call())["charging_profile"]["id"] == 2  # not an update
        assert recorder.messages("connected again")
        await run.close()
        await again.close()


async def test_a_zero_after_a_reconnect_clears_the_dynamic_profile_the_station_may_still_run(
) -> None:
    """A station keeps its Dynamic profile through a link down shorter than its
    max_offline_duration: after a reconnect what it holds is unknown (a black start counts
    it at its charging limit) until a command is taken, and a zero is not assumed from the
    Idle profile beneath: the old Dynamic profile is cleared first."""
    site = ocpp_site(SITE)
    async with booted_with_car(site) as (csms, _recorder, driver, run):
        await driver.read()
        await driver.command(follow(-6000.0))  # charging 6 kW
        await run.station.next_call("SetChargingProfile")
        await until(lambda: driver.state.held_setpoint_w == -6000.0)
        assert (await driver.read()).held_setpoint_w == -6000.0
        again = await start_station(csms, "ST1", boot=False)
        await again.station.call(again.station._call.Heartbeat())
        await again.station.next_call("SetChargingProfile")  # Idle again
        await plugged(again)
        assert (await driver.read()).held_setpoint_w is None
        await driver.command(ChargerCommand(ChargerMode.OFF, min_soc_pct=20.0))
        cleared = await again.station.next_call()
        assert cleared == {"charging_profile_id": 2}
        await until(lambda: driver.state.held_setpoint_w == 0.0)
        assert (await driver.read()).held_setpoint_w == 0.0
        # known now: the next zero needs nothing sent
        await driver.command(ChargerCommand(ChargerMode.OFF, min_soc_pct=21.0))
        await until(lambda: not driver.busy)
        assert [a for a, _ in again.station.received] == [
            "SetChargingProfile",
            "ClearChargingProfile",
        ]
        await run.close()
        await again.close()


async def test_unknown_identity_is_refused_with_404() -> None:
    async with running_csms(ocpp_site(SITE)) as (csms, recorder):
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(csms, "NOBODY")
        assert refused.value.response.status_code == 404
        assert recorder.messages("no station of that identity")


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [
        (None, "wrong-password-but-long", "wrong password"),
        ("OTHER", PASSWORD, "is not the station's identity"),
        (None, None, "no HTTP Basic Auth"),
    ],
)
async def test_bad_credentials_are_refused_with_401(
    user: str | None, password: str | None, reason: str
) -> None:
    async with running_csms(ocpp_site(SITE)) as (csms, recorder):
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(csms, "ST1", user=user, password=password)
        assert refused.value.response.status_code == 401
        assert len(recorder.messages(reason)) == 1


async def test_a_station_without_password_hash_is_refused_and_recorded_once_a_minute() -> None:
    now = [1000.0]
    site = ocpp_site({"st1": {"ocpp": {"password_hash": None}}})
    async with running_csms(site, clock=lambda: now[0]) as (csms, recorder):
        for _ in range(3):  # a station retrying every second
            with pytest.raises(InvalidStatus) as refused:
                await open_socket(csms, "ST1")
            assert refused.value.response.status_code == 401
            now[0] += 1.0
        assert len(recorder.messages("has no [devices.st1.ocpp] password_hash")) == 1
        now[0] += REFUSAL_REPEAT_S
        with pytest.raises(InvalidStatus):
            await open_socket(csms, "ST1")
        assert len(recorder.messages("password_hash")) == 2


@pytest.mark.parametrize("offered", ["ocpp1.6", None])
async def test_wrong_subprotocol_is_refused(offered: str | None) -> None:
    async with running_csms(ocpp_site(SITE)) as (csms, recorder):
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(csms, "ST1", subprotocol=offered)
        assert refused.value.response.status_code == 400
        assert recorder.messages("the site file says OCPP 2.1 (ocpp2.1)")
        assert not csms.driver("st1", csms.config.devices["st1"]).state.connected


# ---------------------------------------------------------------- readings


async def test_charging_needs_bound_the_reading_and_the_stricter_reserve_wins() -> None:
    site = ocpp_site(SITE)
    departure = "2031-01-01T08:00:00Z"
    async with running_csms(site) as (csms, _):
        driver = csms.driver("st1", site.devices["st1"])
        run = await start_station(csms, "ST1")
        await run.station.next_call("SetChargingProfile")
        await run.station.meter()
        unplugged = await driver.read()
        assert unplugged.state is ChargerState.UNPLUGGED
        assert unplugged.max_discharge_w == 0.0 and unplugged.max_charge_w == 0.0
        await plugged(run, departure=departure, max_discharge_w=7000.0, max_charge_w=9000.0)
        reading = await driver.read()
        assert reading.state is ChargerState.IDLE
        assert reading.max_discharge_w == 7000.0  # the car's, below the 11 kW station
        assert reading.max_charge_w == 9000.0
        assert reading.capacity_wh == CAPACITY_WH
        assert reading.vehicle_floor_soc_pct == pytest.approx(35.0)  # 60 % - 20 kWh / 80 kWh
        assert reading.departure_wall == datetime(2031, 1, 1, 8, tzinfo=UTC).timestamp()
        device = site.devices["st1"]
        owner_low = _vehicle_state("st1", device, reading, VehicleView("car", 20.0), 0.0, 3600.0)
        assert owner_low.reserve_soc_pct == pytest.approx(35.0)  # the car's floor is stricter
        owner_high = _vehicle_state("st1", device, reading, VehicleView("car", 50.0), 0.0, 3600.0)
        assert owner_high.reserve_soc_pct == 50.0
        # Discharging into the site: + = Export - Import.
        await run.station.meter(export_w=3000.0, soc=59.0)
        reading = await driver.read()
        assert reading.power_w == 3000.0 and reading.state is ChargerState.DISCHARGING
        await run.station.meter(import_w=2000.0, soc=59.0)
        assert (await driver.read()).state is ChargerState.CHARGING
        await run.station.status("Faulted")
        faulted = await driver.read()
        assert faulted.state is ChargerState.FAULT
        assert faulted.fault_code == registers.BidirectionalCharger.FAULT_INTERNAL
        assert faulted.max_discharge_w == 0.0
        await run.close()


async def test_a_car_asking_dc_only_is_allowed_bidirectional_transfer() -> None:
    site = ocpp_site(SITE)
    async with booted_with_car(site, requested="DC") as (_csms, _, driver, run):
        allowed = await run.station.next_call("NotifyAllowedEnergyTransfer")
        assert allowed == {"allowed_energy_transfer": ["DC", "DC_BPT"], "transaction_id": "T1"}
        await until(lambda: driver.state.allowed_transfers == ("DC", "DC_BPT"))
        assert (await driver.read()).max_discharge_w == 7000.0
        await run.close()


async def test_a_load_role_station_never_discharges_nor_allows_it() -> None:
    site = ocpp_site({"st1": {"role": "load"}})
    async with booted_with_car(site, requested="DC") as (_csms, _, driver, run):
        reading = await driver.read()
        assert reading.max_discharge_w == 0.0 and reading.max_charge_w == 9000.0
        with pytest.raises(ValueError, match="role load"):
            await driver.command(follow(1000.0))
        assert "NotifyAllowedEnergyTransfer" not in [a for a, _ in run.station.received]
        await run.close()


async def test_staleness_silent_station_and_dropped_connection_raise() -> None:
    now = [100.0]
    site = ocpp_site({"st1": {"ocpp": {"stale_after_s": 3.0}}})
    async with running_csms(site, clock=lambda: now[0]) as (csms, recorder):
        driver = csms.driver("st1", site.devices["st1"])
        with pytest.raises(StationSilent, match="not connected"):
            await driver.read()
        run = await start_station(csms, "ST1")
        await plugged(run)
        await driver.read()
        now[0] += 2.9
        await driver.read()  # still fresh
        now[0] += 0.2
        with pytest.raises(StationSilent, match="silent"):
            await driver.read()
        await run.station.call(run.station._call.Heartbeat())  # any message counts
        await driver.read()
        await run.close()
        await until(lambda: not driver.state.connected)
        with pytest.raises(StationSilent, match="not connected"):
            await driver.read()
        with pytest.raises(StationSilent):
            await driver.command(ChargerCommand(ChargerMode.OFF))
        assert recorder.messages("disconnected")


async def test_an_impossible_meter_value_is_refused_and_not_believed() -> None:
    site = ocpp_site(SITE)
    async with running_csms(site) as (csms, _):
        driver = csms.driver("st1", site.devices["st1"])
        run = await start_station(csms, "ST1")
        await plugged(run)
        await run.station.meter(export_w=1000.0)
        with pytest.raises(PropertyConstraintViolationError, match="Frequency"):
            await run.station.call(
                run.station._call.MeterValues(
                    evse_id=1,
                    meter_value=[
                        {
                            "timestamp": "2030-01-01T00:00:00Z",
                            "sampled_value": [
                                {"value": 99.0, "measurand": "Frequency"},
                            ],
                        }
                    ],
                ),
                suppress=False,
            )
        with pytest.raises(BadReply, match="Frequency: 99 Hz"):
            await driver.read()
        assert driver.state.frequency_hz == 50.0
        await run.station.meter(export_w=1000.0)
        assert (await driver.read()).power_w == 1000.0
        await run.close()


# ---------------------------------------------------------------- commands


async def test_a_command_becomes_a_signed_schedule_update_and_follow_once_accepted() -> None:
    site = ocpp_site(SITE)
    async with booted_with_car(site) as (_csms, _, driver, run):
        assert (await driver.read()).mode is ChargerMode.OFF
        await driver.command(ChargerCommand(ChargerMode.FOLLOW, 5000.0, min_soc_pct=20.0))
        await run.station.next_call("SetChargingProfile")
        await until(lambda: driver.state.dynamic_installed)
        assert (await driver.read()).mode is ChargerMode.FOLLOW
        await driver.command(ChargerCommand(ChargerMode.FOLLOW, -6000.0, min_soc_pct=20.0))
        update = await run.station.next_call("UpdateDynamicSchedule")
        assert update["charging_profile_id"] == 2
        # OCPP: + charges the car; setpoint -(-6000) within D = -7000 and L = 9000.
        assert update["schedule_update"] == {
            "setpoint": 6000.0,
            "limit": 9000.0,
            "discharge_limit": -7000.0,
        }
        await driver.command(ChargerCommand(ChargerMode.OFF, min_soc_pct=20.0))
        off = await run.station.next_call("UpdateDynamicSchedule")
        assert off["schedule_update"]["setpoint"] == 0.0
        await until(lambda: driver.state.accepted_mode is ChargerMode.OFF)
        # At or below the command's own floor, nothing is discharged (D = 0).
        await run.station.meter(soc=20.0)
        await driver.read()
        await driver.command(ChargerCommand(ChargerMode.FOLLOW, 0.0, min_soc_pct=20.0))
        floor = await run.station.next_call("UpdateDynamicSchedule")
        assert floor["schedule_update"]["discharge_limit"] == 0.0
        assert driver.rtts_s and all(0 < rtt < 1 for rtt in driver.rtts_s)
        await run.close()


async def test_unsafe_commands_are_refused_before_anything_is_sent() -> None:
    site = ocpp_site(SITE)
    async with booted_with_car(site) as (_csms, _, driver, run):
        await driver.read()
        refusals = {
            "cannot form": ChargerCommand(ChargerMode.FORM),
            "beyond the station's rating": follow(12000.0),
            "discharge 8000 W asked": follow(8000.0),
            "charge 10000 W asked": follow(-10000.0),
        }
        for reason, command in refusals.items():
            with pytest.raises(ValueError, match=reason):
                await driver.command(command)
        await asyncio.sleep(0.05)
        assert [a for a, _ in run.station.received] == ["SetChargingProfile"]  # the Idle only
        await run.close()


async def test_a_rejected_command_makes_the_next_command_raise_and_is_retried() -> None:
    site = ocpp_site(SITE)
    async with booted_with_car(site) as (_csms, recorder, driver, run):
        await driver.read()
        run.station.answer = "Rejected"
        await driver.command(follow(3000.0))
        await run.station.next_call("SetChargingProfile")
        await until(lambda: not driver.state.last_outcome_ok)
        assert (await driver.read()).mode is ChargerMode.OFF  # it did not take effect
        run.station.answer = "Accepted"
        with pytest.raises(CommandNotTaken, match="SetChargingProfile: Rejected"):
            await driver.command(follow(3000.0))
        await run.station.next_call("SetChargingProfile")  # the new command was still posted
        await until(lambda: driver.state.last_outcome_ok)
        assert (await driver.read()).mode is ChargerMode.FOLLOW
        await driver.command(follow(2000.0))  # no raise now
        assert len(recorder.messages("command not taken")) == 1
        await run.close()


async def test_an_unanswered_command_times_out_and_the_next_command_says_so() -> None:
    site = ocpp_site(SITE, call_timeout_s=0.2)
    async with booted_with_car(site) as (_csms, _, driver, run):
        await driver.read()
        run.station.gate = asyncio.Event()  # the station holds its answers
        await driver.command(follow(3000.0))
        await until(lambda: not driver.state.last_outcome_ok)
        with pytest.raises(CommandNotTaken, match=r"no answer within 0\.2 s"):
            await driver.command(follow(3000.0))
        run.station.gate.set()
        await run.close()


async def test_the_mailbox_sends_the_first_and_the_latest_of_a_burst() -> None:
    site = ocpp_site(SITE)
    async with booted_with_car(site) as (_csms, _, driver, run):
        await driver.read()
        await driver.command(follow(1000.0))
        await run.station.next_call("SetChargingProfile")
        await until(lambda: driver.state.dynamic_installed)
        run.station.gate = asyncio.Event()
        started = time.monotonic()
        for watts in (2000.0, 3000.0, 4000.0, 5000.0, 6000.0):
            await driver.command(follow(watts))
            await asyncio.sleep(0)  # let the sender take what is there
        assert time.monotonic() - started < 0.1  # command() never waited for the station
        first = await run.station.next_call("UpdateDynamicSchedule")
        run.station.gate.set()
        last = await run.station.next_call("UpdateDynamicSchedule")
        await asyncio.sleep(0.05)
        updates = [k for a, k in run.station.received if a == "UpdateDynamicSchedule"]
        assert [u["schedule_update"]["setpoint"] for u in updates] == [-2000.0, -6000.0]
        assert (first, last) == (updates[0], updates[1])
        await run.close()


# ---------------------------------------------------------------- bad frames


async def test_malformed_unknown_and_out_of_schema_frames_get_callerror_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = ocpp_site(SITE)
    caplog.set_level(logging.WARNING, logger="resilience.ocpp")
    async with running_csms(site) as (csms, recorder):
        run = await start_station(csms, "ST1")
        station = run.station
        for _ in range(2):
            reply = await station.raw_reply("this is not json")
            assert reply[:3] == [4, "-1", "RpcFrameworkError"]
            reply = await station.raw_reply('[7,"u0","Heartbeat",{}]')
            assert reply[:3] == [4, "u0", "MessageTypeNotSupported"]
            reply = await station.raw_reply('[2,"u1","FlyToTheMoon",{}]')
            assert reply[:3] == [4, "u1", "NotSupported"]
            reply = await station.raw_reply('[2,"u2","Heartbeat",{"bogus":1}]')
            assert reply[0] == 4 and reply[1] == "u2"
            assert reply[2] == "FormatViolation"
            reply = await station.raw_reply('[2,"u3","MeterValues",{"meterValue":[]}]')
            assert reply[:2] == [4, "u3"]
        # The session survived all of it.
        result = await station.call(station._call.Heartbeat())
        assert result.current_time
        warnings = [r.getMessage() for r in caplog.records if "CALLERROR" in r.getMessage()]
        assert len(warnings) == 5, warnings  # one per (action, error kind), not per frame
        assert any("(frame)" in w for w in warnings)
        assert any("FlyToTheMoon" in w for w in warnings)
        assert len(recorder.messages("CALLERROR")) == 5
        await run.close()


async def test_a_16_station_gets_16_error_codes() -> None:
    site = ocpp_site({"st1": {"ocpp": {"version": "1.6"}}})
    async with running_csms(site) as (csms, _):
        run = await start_station(csms, "ST1", "1.6")
        reply = await run.station.raw_reply('[2,"v1","Heartbeat",{"bogus":1}]')
        assert reply[:3] == [4, "v1", "FormationViolation"]
        reply = await run.station.raw_reply('[2,"v2","FlyToTheMoon",{}]')
        assert reply[:3] == [4, "v2", "NotSupported"]
        frame = '[2,"v3","FirmwareStatusNotification",{"status":"Idle"}]'
        reply = await run.station.raw_reply(frame)
        assert reply[:3] == [4, "v3", "NotImplemented"]
        assert (await run.station.call(run.station._call.Heartbeat())).current_time
        await run.close()


# ---------------------------------------------------------------- anti-islanding


async def test_an_active_anti_islanding_car_never_discharges_and_is_alarmed() -> None:
    site = ocpp_site(SITE)
    islanding = ("RoCoF", "SandiaFrequencyShift")
    async with booted_with_car(site, islanding=islanding) as (_csms, recorder, driver, run):
        reading = await driver.read()
        assert reading.max_discharge_w == 0.0
        assert reading.max_charge_w == 9000.0  # it may still charge
        with pytest.raises(ValueError, match="SandiaFrequencyShift"):
            await driver.command(follow(1000.0))
        assert recorder.alarms == [
            (
                "ocpp_anti_islanding:st1",
                True,
                "warning",
                recorder.alarms[0][3],
            )
        ]
        assert "fight the grid-former" in recorder.alarms[0][3]
        await run.station.transaction("Ended", "T1")
        assert recorder.alarms[-1][:2] == ("ocpp_anti_islanding:st1", False)
        # A passive method only: discharging is fine.
        await plugged(run, islanding=("RoCoF", "UVP_OVP"))
        assert (await driver.read()).max_discharge_w == 7000.0
        assert len(recorder.alarms) == 2
        await run.close()


# ---------------------------------------------------------------- 2.0.1 and 1.6


@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
async def test_older_versions_get_a_charging_limit_only(version: str) -> None:
    site = ocpp_site({"st1": {"ocpp": {"version": version}}})
    async with running_csms(site) as (csms, _):
        driver = csms.driver("st1", site.devices["st1"])
        run = await start_station(csms, "ST1", version)
        await run.station.status("Occupied" if version == "2.0.1" else "Preparing")
        await run.station.meter(soc=50.0)
        reading = await driver.read()
        assert reading.max_discharge_w == 0.0 and reading.max_charge_w == RATING_W
        with pytest.raises(ValueError, match="has no V2X"):
            await driver.command(follow(1000.0))
        await driver.command(follow(-4000.0))
        sent = await run.station.next_call("SetChargingProfile")
        assert _limit(sent, version) == 4000.0
        await until(lambda: driver.state.accepted_mode is ChargerMode.FOLLOW)
        assert [a for a, _ in run.station.received] == ["SetChargingProfile"]  # no Idle/Dynamic
        await run.close()


@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
async def test_negative_limit_stations_discharge_with_a_negative_limit(version: str) -> None:
    site = ocpp_site(
        {"st1": {"ocpp": {"version": version, "discharge_method": "negative_limit"}}}
    )
    async with running_csms(site) as (csms, _):
        driver = csms.driver("st1", site.devices["st1"])
        run = await start_station(csms, "ST1", version)
        await run.station.status("Occupied" if version == "2.0.1" else "Preparing")
        await run.station.meter(soc=50.0)
        assert (await driver.read()).max_discharge_w == RATING_W
        await driver.command(follow(5000.0))
        sent = await run.station.next_call("SetChargingProfile")
        assert _limit(sent, version) == -5000.0
        await run.close()


def _limit(sent: dict[str, Any], version: str) -> float:
    if version == "1.6":
        assert sent["connector_id"] == 1
        profile = sent["cs_charging_profiles"]
        assert profile["charging_profile_purpose"] == "TxDefaultProfile"
        schedule = profile["charging_schedule"]
    else:
        profile = sent["charging_profile"]
        assert profile["charging_profile_purpose"] == "TxDefaultProfile"
        schedule = profile["charging_schedule"][0]
    assert schedule["charging_rate_unit"] == "W"
    return float(schedule["charging_schedule_period"][0]["limit"])


# ---------------------------------------------------------------- in-process and RTT


class _Pipe:
    """One end of an in-memory duplex pipe (what the station simulator uses in drills)."""

    def __init__(self, inbox: asyncio.Queue[str | None], outbox: asyncio.Queue[str | None]):
        self.inbox, self.outbox = inbox, outbox

    async def recv(self) -> str:
        message = await self.inbox.get()
        if message is None:
            raise ConnectionError("pipe closed")
        return message

    async def send(self, message: str) -> None:
        await self.outbox.put(message)

    async def close(self) -> None:
        await self.inbox.put(None)
        await self.outbox.put(None)


async def test_serve_connection_runs_a_session_over_an_in_memory_pipe() -> None:
    from tests.ocpp.station import Station21

    site = ocpp_site(SITE)
    async with running_csms(site) as (csms, _):
        a: asyncio.Queue[str | None] = asyncio.Queue()
        b: asyncio.Queue[str | None] = asyncio.Queue()
        with pytest.raises(ValueError, match="subprotocol"):
            await csms.serve_connection(_Pipe(a, b), "ST1", "ocpp1.6")
        serving = asyncio.create_task(csms.serve_connection(_Pipe(a, b), "ST1", "ocpp2.1"))
        station = Station21("ST1", _Pipe(b, a))
        routing = asyncio.create_task(station.start())
        await station.boot()
        assert (await station.next_call("SetChargingProfile"))["charging_profile"]["id"] == 1
        driver = csms.driver("st1", site.devices["st1"])
        await station.meter(import_w=500.0)
        assert (await driver.read()).power_w == -500.0
        await csms.stop()  # closes the in-process connection too
        await asyncio.wait_for(serving, 2)
        assert not driver.state.connected
        routing.cancel()


async def test_update_dynamic_schedule_round_trip_on_loopback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """~200 UpdateDynamicSchedule calls: CALL sent -> CALLRESULT, as the driver records."""
    site = ocpp_site(SITE)
    async with booted_with_car(site) as (_csms, _, driver, run):
        await driver.read()
        await driver.command(follow(100.0))
        await until(lambda: driver.state.dynamic_installed)
        driver.state.rtts_s.clear()
        for i in range(200):
            await driver.command(follow(1000.0 + i))
            await until(lambda n=i: len(driver.state.rtts_s) == n + 1)
        rtts = sorted(driver.rtts_s)
        median = statistics.median(rtts)
        p99 = rtts[int(0.99 * len(rtts)) - 1]
        with capsys.disabled():
            print(f"\nUpdateDynamicSchedule RTT on loopback: median {median * 1000:.2f} ms,"
                  f" p99 {p99 * 1000:.2f} ms over {len(rtts)} calls")
        assert len(rtts) == 200 and median < 0.05
        await run.close()


async def test_the_driver_registry_builds_stations_on_the_central_system() -> None:
    from resilience.drivers.registry import build_driver
    from resilience.transport.modbus import BusPool

    site = ocpp_site(SITE)
    csms_ = CentralSystem(site)
    device = site.devices["st1"]
    assert build_driver("st1", device, BusPool(), csms_) is csms_.driver("st1", device)
    with pytest.raises(ValueError, match="central system"):
        build_driver("st1", device, BusPool(), None)
