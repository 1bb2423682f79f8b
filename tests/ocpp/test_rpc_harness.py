"""The ocpp-rpc station harness works, shown against a minimal CSMS of the `ocpp` library.

Before the station drives our own CSMS, these tests show it does what the CSMS tests will
rely on: it boots, sends its V2X charging needs, follows the setpoint of a Dynamic profile
and of UpdateDynamicSchedule in the power it meters, heartbeats at the interval it is
given, is refused without the right password, and, in strict mode, refuses to send
out-of-schema calls which a CSMS answers with a CALLERROR when they get through.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ocpp.exceptions
import pytest
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result
from ocpp.v21.enums import Action
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from tests.ocpp_rpc import Event, run_station

PASSWORD = "s3cret-station-password"
HEARTBEAT_INTERVAL_S = 1


def _now() -> str:
    return datetime.now(UTC).isoformat()


class MinimalCsms(ChargePoint):  # type: ignore[misc]  # ocpp ships no type hints
    """Answers the station's calls and keeps what it received, in order."""

    def __init__(self, identity: str, connection: ServerConnection) -> None:
        super().__init__(identity, connection, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.arrived = asyncio.Condition()

    async def _record(self, action: str, payload: dict[str, Any]) -> None:
        async with self.arrived:
            self.received.append((action, payload))
            self.arrived.notify_all()

    async def wait_for(
        self, action: str, test: Any, timeout_s: float, *, after: int = 0
    ) -> dict[str, Any]:
        """The first payload of ACTION received (from index AFTER on) that TEST accepts."""

        async def first() -> dict[str, Any]:
            async with self.arrived:
                while True:
                    for name, payload in self.received[after:]:
                        if name == action and test(payload):
                            return payload
                    await self.arrived.wait()

        try:
            return await asyncio.wait_for(first(), timeout_s)
        except TimeoutError:
            last = self.received[-5:]
            raise TimeoutError(f"no such {action} within {timeout_s} s; last: {last}") from None

    @on(Action.boot_notification)
    async def on_boot(self, **payload: Any) -> call_result.BootNotification:
        await self._record("BootNotification", payload)
        return call_result.BootNotification(
            current_time=_now(), interval=HEARTBEAT_INTERVAL_S, status="Accepted"
        )

    @on(Action.heartbeat)
    async def on_heartbeat(self, **payload: Any) -> call_result.Heartbeat:
        await self._record("Heartbeat", payload)
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    async def on_status(self, **payload: Any) -> call_result.StatusNotification:
        await self._record("StatusNotification", payload)
        return call_result.StatusNotification()

    @on(Action.transaction_event)
    async def on_transaction(self, **payload: Any) -> call_result.TransactionEvent:
        await self._record("TransactionEvent", payload)
        return call_result.TransactionEvent()

    @on(Action.notify_ev_charging_needs)
    async def on_needs(self, **payload: Any) -> call_result.NotifyEVChargingNeeds:
        await self._record("NotifyEVChargingNeeds", payload)
        return call_result.NotifyEVChargingNeeds(status="Accepted")

    @on(Action.meter_values)
    async def on_meter_values(self, **payload: Any) -> call_result.MeterValues:
        await self._record("MeterValues", payload)
        return call_result.MeterValues()


@dataclass
class Server:
    url: str
    stations: dict[str, MinimalCsms] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)


def _basic_auth_ok(request: Request) -> bool:
    """Basic Auth as OCPP security profile 1: user = the station identity from the path."""
    identity = request.path.rsplit("/", 1)[-1]
    expected = base64.b64encode(f"{identity}:{PASSWORD}".encode()).decode()
    return request.headers.get("Authorization") == f"Basic {expected}"


@contextlib.asynccontextmanager
async def minimal_csms() -> AsyncIterator[Server]:
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if not _basic_auth_ok(request):
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "wrong credentials\n")
        return None

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        identity = connection.request.path.rsplit("/", 1)[-1]
        csms = MinimalCsms(identity, connection)
        server.stations[identity] = csms
        server.connected.set()
        with contextlib.suppress(Exception):  # the station going away ends start()
            await csms.start()

    async with serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol("ocpp2.1")],
        process_request=process_request,
    ) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        server = Server(url=f"ws://127.0.0.1:{port}/ocpp")
        yield server


def _sampled(meter_payload: dict[str, Any], measurand: str) -> float:
    """The value of MEASURAND in a MeterValues payload as the ocpp library hands it over."""
    for meter_value in meter_payload["meter_value"]:
        for sampled in meter_value["sampled_value"]:
            if sampled.get("measurand") == measurand:
                return float(sampled["value"])
    raise AssertionError(f"no {measurand} in {meter_payload}")


def _exports(watts: float) -> Any:
    return lambda payload: abs(_sampled(payload, "Power.Active.Export") - watts) < 1


def _imports(watts: float) -> Any:
    return lambda payload: abs(_sampled(payload, "Power.Active.Import") - watts) < 1


def _event(name: str, **fields: Any) -> Any:
    def matches(event: Event) -> bool:
        return event.get("event") == name and all(event.get(k) == v for k, v in fields.items())

    return matches


async def test_station_follows_a_dynamic_setpoint_in_what_it_meters() -> None:
    async with minimal_csms() as server, run_station(server.url, "EVSE-1", PASSWORD) as station:
        boot = await station.wait_for(_event("call_result", method="BootNotification"), 15)
        assert boot["payload"]["status"] == "Accepted"
        await asyncio.wait_for(server.connected.wait(), 5)
        csms = server.stations["EVSE-1"]
        needs = await csms.wait_for("NotifyEVChargingNeeds", lambda _: True, 10)
        charging_needs = needs["charging_needs"]
        assert charging_needs["requested_energy_transfer"] == "DC_BPT"
        assert charging_needs["control_mode"] == "DynamicControl"
        assert charging_needs["dc_charging_parameters"]["ev_energy_capacity"] == 77400
        await csms.wait_for("MeterValues", _exports(0), 10)

        profile = {
            "id": 1,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Dynamic",
            "charging_schedule": [
                {
                    "id": 1,
                    "charging_rate_unit": "W",
                    "charging_schedule_period": [
                        {"start_period": 0, "setpoint": -5000, "operation_mode": "CentralSetpoint"}
                    ],
                }
            ],
        }
        result = await csms.call(call.SetChargingProfile(evse_id=1, charging_profile=profile))
        assert result.status == "Accepted"
        await csms.wait_for("MeterValues", _exports(5000), 5)

        update = call.UpdateDynamicSchedule(
            charging_profile_id=1, schedule_update={"setpoint": -7000}
        )
        result = await csms.call(update)
        assert result.status == "Accepted"
        meter = await csms.wait_for("MeterValues", _exports(7000), 5)
        assert _sampled(meter, "Power.Active.Import") == 0
        assert 0 < _sampled(meter, "SoC") <= 80

        # what the station said it did matches what the CSMS saw
        assert [e["watts"] for e in station.of("setpoint")] == [-5000, -7000]
        answered = [(e["method"], e["result"]["status"]) for e in station.of("answered")]
        assert answered == [
            ("SetChargingProfile", "Accepted"),
            ("UpdateDynamicSchedule", "Accepted"),
        ]
        await csms.wait_for("Heartbeat", lambda _: True, HEARTBEAT_INTERVAL_S + 5)
        assert not station.of("strict_validation_failure"), station.describe()


async def test_a_station_with_the_wrong_password_is_refused() -> None:
    async with minimal_csms() as server, run_station(server.url, "EVSE-2", "wrong") as station:
        error = await station.wait_for(_event("error", where="connect"), 15)
        assert error["status"] == 401
        assert "EVSE-2" not in server.stations


# What the `ocpp` library (2.1.0) answers, as CSMS, to each out-of-schema call the "bad"
# scenario sends, and what ocpp-rpc's strict mode says before refusing to send it.
EXPECTED_BAD_CALLS = {
    "wrong_type": ("TypeConstraintViolation", "TypeConstraintViolation"),
    "missing_required": ("OccurenceConstraintViolation", "ProtocolError"),
    "bad_enum": ("FormatViolation", "FormatViolation"),
    "unknown_property": ("PropertyConstraintViolation", "FormatViolation"),
    "below_minimum": ("FormatViolation", "FormatViolation"),
}


async def test_out_of_schema_calls_are_refused_by_strict_mode_and_by_the_csms() -> None:
    async with (
        minimal_csms() as server,
        run_station(server.url, "EVSE-3", PASSWORD, "bad") as station,
    ):
        await station.wait_for(_event("scenario_done"), 60)
        outcomes = {
            e["case"]: (e["local"] and e["local"]["code"], e["remote"].get("code"))
            for e in station.of("bad_call")
        }
        assert outcomes == EXPECTED_BAD_CALLS, station.describe()
        # the CSMS's handlers never saw the bad payloads (only the boot and the heartbeats)
        received = server.stations["EVSE-3"].received
        assert {name for name, _ in received} <= {"BootNotification", "Heartbeat"}, received
        assert all(payload == {} for name, payload in received if name == "Heartbeat"), received


async def test_the_ocpp_library_leaves_unhandled_2_1_calls_unanswered() -> None:
    """ocpp 2.1.0 answers no CALLERROR (NotImplemented/NotSupported) to an OCPP 2.1 call
    without a handler: `_raise_key_error` knows only 1.6 and 2.0.1. A CSMS on it must answer
    those itself. When this fails, the library has been fixed."""
    async with minimal_csms() as server:
        auth = base64.b64encode(f"EVSE-4:{PASSWORD}".encode()).decode()
        async with connect(
            f"{server.url}/EVSE-4",
            subprotocols=[Subprotocol("ocpp2.1")],
            additional_headers={"Authorization": f"Basic {auth}"},
        ) as websocket:
            await websocket.send(json.dumps([2, "1", "DataTransfer", {"vendorId": "x"}]))
            await websocket.send(json.dumps([2, "2", "Heartbeat", {}]))
            # the heartbeat, sent after it, is answered; DataTransfer never is
            assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[:2] == [3, "2"]
            with contextlib.suppress(TimeoutError):
                frame = await asyncio.wait_for(websocket.recv(), 1)
                raise AssertionError(f"DataTransfer answered: {frame!r}")


async def test_station_answers_the_device_model_clears_profiles_and_refuses_the_rest() -> None:
    """Its answers pass ocpp-rpc's own strict check (else it sends InternalError)."""
    async with minimal_csms() as server, run_station(server.url, "EVSE-5", PASSWORD) as station:
        await station.wait_for(_event("call_result", method="NotifyEVChargingNeeds"), 15)
        csms = server.stations["EVSE-5"]
        heartbeat = {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
        }
        unknown = {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "Enabled"}}
        got = await csms.call(call.GetVariables(get_variable_data=[heartbeat, unknown]))
        assert [r["attribute_status"] for r in got.get_variable_result] == [
            "Accepted",
            "UnknownComponent",
        ]
        assert got.get_variable_result[0]["attribute_value"] == str(HEARTBEAT_INTERVAL_S)
        set_data = [{**heartbeat, "attribute_value": "30"}, {**unknown, "attribute_value": "x"}]
        done = await csms.call(call.SetVariables(set_variable_data=set_data))
        assert [r["attribute_status"] for r in done.set_variable_result] == [
            "Accepted",
            "UnknownComponent",
        ]

        profile = {
            "id": 7,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Dynamic",
            "charging_schedule": [
                {
                    "id": 7,
                    "charging_rate_unit": "W",
                    "charging_schedule_period": [{"start_period": 0, "setpoint": 3000}],
                }
            ],
        }
        await csms.call(call.SetChargingProfile(evse_id=1, charging_profile=profile))
        meter = await csms.wait_for("MeterValues", _imports(3000), 5)
        assert _sampled(meter, "Power.Active.Export") == 0
        cleared = await csms.call(call.ClearChargingProfile(charging_profile_id=7))
        assert cleared.status == "Accepted"
        seen = len(csms.received)
        await csms.wait_for("MeterValues", _imports(0), 5, after=seen)
        again = await csms.call(call.ClearChargingProfile(charging_profile_id=7))
        assert again.status == "Unknown"
        stale = call.UpdateDynamicSchedule(charging_profile_id=7, schedule_update={"setpoint": 1})
        assert (await csms.call(stale)).status == "Rejected"

        with pytest.raises(ocpp.exceptions.NotImplementedError):
            await csms.call(call.Reset(type="Immediate"), suppress=False)
        refused = await station.wait_for(_event("answered", method="Reset"), 5)
        assert refused["error"]["code"] == "NotImplemented"
        errors = [e["error"]["code"] for e in station.of("answered") if "error" in e]
        assert errors == ["NotImplemented"], station.describe()  # no InternalError: valid answers
