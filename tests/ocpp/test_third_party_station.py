"""Our central system driven by a station we did not write: `ocpp-rpc` 2.2.1 from npm.

`ocpp-rpc` is an independent OCPP-J implementation (node) with the official 2.1 JSON
schemas and a strict mode that refuses to send, or to accept, anything out of schema.
Its station (`tools/ocpp-rpc-station/station.js`, run by `tests.ocpp_rpc`) boots, plugs a
car in, tells its charging needs and meters what it is told to do. So every message our
central system sends it passes an implementation that is not the `ocpp` library's.
"""

from __future__ import annotations

import pytest

from resilience.devices import ChargerCommand
from resilience.model import ChargerMode
from tests.ocpp.station import PASSWORD, ocpp_site, running_csms, until
from tests.ocpp_rpc import run_station

pytestmark = pytest.mark.timeout(60)

IDENTITY = "RPC-STATION-1"


def site():  # type: ignore[no-untyped-def]
    return ocpp_site({"rpc_1": {"ocpp": {"identity": IDENTITY}}})


def follow(watts: float) -> ChargerCommand:
    return ChargerCommand(mode=ChargerMode.FOLLOW, power_setpoint_w=watts, min_soc_pct=30.0)


async def test_an_independent_station_boots_is_bounded_by_its_car_and_follows_setpoints() -> None:
    async with running_csms(site()) as (csms, recorder):
        driver = csms.driver("rpc_1", csms.config.devices["rpc_1"])
        async with run_station(csms.url, IDENTITY, PASSWORD) as station:
            boot = await station.wait_for(
                lambda e: e.get("event") == "call_result" and e.get("method") == "BootNotification",
                15,
            )
            assert boot["payload"]["status"] == "Accepted"
            # the dead-man's floor first: Idle at stack level 0, accepted by strict ocpp-rpc
            idle = await station.wait_for(
                lambda e: e.get("event") == "received" and e.get("method") == "SetChargingProfile",
                10,
            )
            profile = idle["params"]["chargingProfile"]
            assert profile["stackLevel"] == 0
            period = profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]
            assert period["operationMode"] == "Idle"
            # its car's figures bound what it may give: 11 kW, and its own floor of
            # 80 % - 30 kWh of 77.4 kWh = 41.2 %, stricter than the owner's 30 %
            await until(lambda: driver.state.capacity_wh == 77400.0, 10)
            await until(lambda: driver.state.trusted, 10)  # a MeterValues since it connected
            reading = await driver.read()
            assert reading.max_discharge_w == 11000.0
            assert reading.vehicle_floor_soc_pct == pytest.approx(80 - 30000 / 77400 * 100, abs=0.1)
            assert reading.departure_wall is not None

            await driver.command(follow(5000.0))  # + discharge: OCPP setpoint -5000
            await station.wait_for(
                lambda e: e.get("event") == "setpoint" and e["watts"] == -5000, 10
            )
            await until(lambda: abs((driver.state.power_w or 0.0) - 5000.0) < 1.0, 10)
            assert (await driver.read()).mode is ChargerMode.FOLLOW

            await driver.command(follow(7000.0))
            update = await station.wait_for(
                lambda e: e.get("event") == "received"
                and e.get("method") == "UpdateDynamicSchedule",
                10,
            )
            assert update["params"]["scheduleUpdate"]["setpoint"] == -7000
            await until(lambda: abs((driver.state.power_w or 0.0) - 7000.0) < 1.0, 10)
            # nothing we sent was refused by its strict schema check
            assert not station.of("strict_validation_failure"), station.of(
                "strict_validation_failure"
            )
            answered = [e for e in station.of("answered") if "error" in e]
            assert answered == [], answered
        await until(lambda: not driver.state.connected, 5)
        assert any("connected" in m for m in recorder.messages(IDENTITY))


async def test_an_out_of_schema_message_from_it_gets_a_callerror_and_the_session_goes_on() -> None:
    async with running_csms(site()) as (csms, _recorder):
        driver = csms.driver("rpc_1", csms.config.devices["rpc_1"])
        async with run_station(csms.url, IDENTITY, PASSWORD, scenario="bad") as station:
            await station.wait_for(lambda e: e.get("event") == "scenario_done", 20)
            bad = station.of("bad_call")
            assert bad, station.describe()
            for case in bad:
                remote = case["remote"]
                assert "code" in remote, case  # a CALLERROR, never silence or a result
            assert driver.state.connected  # and the session survived every one
            assert station.of("closed") == []


async def test_it_is_refused_with_the_wrong_password() -> None:
    async with running_csms(site()) as (csms, recorder):
        async with run_station(csms.url, IDENTITY, "not-the-password-at-all") as station:
            refused = await station.wait_for(
                lambda e: e.get("event") in ("error", "closed", "connected"), 15
            )
            assert refused.get("event") == "error" and refused.get("status") == 401, refused
        assert recorder.messages("refused")
