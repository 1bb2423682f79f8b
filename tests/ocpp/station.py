"""Test tooling for the central system: a small OCPP station over a real WebSocket, and
site files with OCPP stations.

The station is the `ocpp` library's own ChargePoint (2.1, 2.0.1 or 1.6) on a
`websockets` client: it sends what a test tells it to and answers the central system's
calls with `answer` ("Accepted" / "Rejected"), holding each answer while `gate` is not
set. Every call it gets is kept (`received`, and the `got` queue to await), and every raw
frame it is sent (`raw`). The full simulated station with a plant is `firmware_sim`'s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import json
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocpp.charge_point import ChargePoint
from ocpp.routing import on
from ocpp.v16 import call as call_16
from ocpp.v16 import call_result as result_16
from ocpp.v21 import call as call_21
from ocpp.v21 import call_result as result_21
from ocpp.v201 import call as call_201
from ocpp.v201 import call_result as result_201
from websockets.asyncio.client import ClientConnection, connect

from resilience.config import OCPP_SUBPROTOCOLS, SiteConfig, parse_site
from resilience.ocpp import CentralSystem, hash_password

REFERENCE_SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
PASSWORD = "correct-horse-battery-staple"


@functools.cache
def password_hash(password: str = PASSWORD) -> str:
    return hash_password(password)


def ocpp_site(stations: dict[str, dict[str, Any]], **ocpp: Any) -> SiteConfig:
    """The reference site plus OCPP stations: `stations` maps a device name to its
    `[devices.<name>]` table (its `ocpp` sub-table gets the test password's hash unless it
    says `password_hash` itself, None for none); `ocpp` is the `[ocpp]` section."""
    with REFERENCE_SITE.open("rb") as file:
        document = tomllib.load(file)
    document = copy.deepcopy(document)
    document["ocpp"] = {"port": 0, **ocpp}
    for name, table in stations.items():
        table = copy.deepcopy(table)
        station = table.setdefault("ocpp", {})
        station.setdefault("identity", name.upper())
        if "password_hash" not in station:
            station["password_hash"] = password_hash()
        elif station["password_hash"] is None:
            del station["password_hash"]
        table.setdefault("driver", "ocpp")
        table.setdefault("rating_w", 11000.0)
        document["devices"][name] = table
    return parse_site(document)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class _Station(ChargePoint):  # type: ignore[misc]
    def __init__(self, identity: str, connection: Any) -> None:
        super().__init__(identity, connection, response_timeout=5)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.got: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.raw: asyncio.Queue[str] = asyncio.Queue()
        self.answer = "Accepted"
        self.gate: asyncio.Event | None = None
        self.seq = 0

    async def route_message(self, raw_msg: str) -> None:
        self.raw.put_nowait(raw_msg)
        await super().route_message(raw_msg)

    async def _answer(self, action: str, kwargs: dict[str, Any]) -> Any:
        self.received.append((action, kwargs))
        self.got.put_nowait((action, kwargs))
        if self.gate is not None:
            await self.gate.wait()
        return getattr(self._call_result, action)(status=self.answer)

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, **kwargs: Any) -> Any:
        return await self._answer("SetChargingProfile", kwargs)

    @on("UpdateDynamicSchedule")
    async def on_update_dynamic_schedule(self, **kwargs: Any) -> Any:
        return await self._answer("UpdateDynamicSchedule", kwargs)

    @on("NotifyAllowedEnergyTransfer")
    async def on_notify_allowed_energy_transfer(self, **kwargs: Any) -> Any:
        return await self._answer("NotifyAllowedEnergyTransfer", kwargs)

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, **kwargs: Any) -> Any:
        return await self._answer("ClearChargingProfile", kwargs)

    async def next_call(self, action: str | None = None, timeout: float = 2.0) -> dict[str, Any]:
        """The next call the central system sent (of `action`, skipping others)."""
        async with asyncio.timeout(timeout):
            while True:
                got, kwargs = await self.got.get()
                if action is None or got == action:
                    return kwargs

    async def raw_reply(self, frame: str, timeout: float = 2.0) -> list[Any]:
        """Send a raw frame and return the next frame that answers it (parsed)."""
        while not self.raw.empty():
            self.raw.get_nowait()
        await self._connection.send(frame)
        async with asyncio.timeout(timeout):
            while True:
                reply = json.loads(await self.raw.get())
                if reply[0] in (3, 4):
                    return list(reply)


class Station21(_Station):
    _call = call_21
    _call_result = result_21
    _ocpp_version = "2.1"

    async def boot(self) -> Any:
        return await self.call(
            call_21.BootNotification(
                charging_station={"model": "test", "vendor_name": "resilience"}, reason="PowerUp"
            )
        )

    async def status(self, status: str) -> None:
        await self.call(
            self._call.StatusNotification(
                timestamp=now_iso(), connector_status=status, evse_id=1, connector_id=1
            )
        )

    async def meter(
        self,
        *,
        import_w: float = 0.0,
        export_w: float = 0.0,
        soc: float = 50.0,
        voltage: float = 400.0,
        frequency: float = 50.0,
    ) -> None:
        def value(v: float, measurand: str, unit: str) -> dict[str, Any]:
            return {"value": v, "measurand": measurand, "unit_of_measure": {"unit": unit}}

        await self.call(
            self._call.MeterValues(
                evse_id=1,
                meter_value=[
                    {
                        "timestamp": now_iso(),
                        "sampled_value": [
                            value(import_w, "Power.Active.Import", "W"),
                            value(export_w, "Power.Active.Export", "W"),
                            value(soc, "SoC", "Percent"),
                            value(voltage, "Voltage", "V"),
                            value(frequency, "Frequency", "Hz"),
                        ],
                    }
                ],
            )
        )

    async def transaction(self, event_type: str, transaction_id: str = "T1") -> None:
        self.seq += 1
        await self.call(
            self._call.TransactionEvent(
                event_type=event_type,
                timestamp=now_iso(),
                trigger_reason="CablePluggedIn" if event_type == "Started" else "EVDeparted",
                seq_no=self.seq,
                transaction_info={"transaction_id": transaction_id},
                evse={"id": 1, "connector_id": 1},
            )
        )

    async def needs(self, charging_needs: dict[str, Any]) -> Any:
        return await self.call(
            call_21.NotifyEVChargingNeeds(evse_id=1, charging_needs=charging_needs)
        )


class Station201(Station21):
    _call = call_201
    _call_result = result_201
    _ocpp_version = "2.0.1"

    async def boot(self) -> Any:
        return await self.call(
            call_201.BootNotification(
                charging_station={"model": "test", "vendor_name": "resilience"}, reason="PowerUp"
            )
        )


class Station16(_Station):
    _call = call_16
    _call_result = result_16
    _ocpp_version = "1.6"

    async def boot(self) -> Any:
        return await self.call(
            call_16.BootNotification(charge_point_model="test", charge_point_vendor="resilience")
        )

    async def status(self, status: str) -> None:
        await self.call(
            call_16.StatusNotification(connector_id=1, error_code="NoError", status=status)
        )

    async def meter(
        self, *, import_w: float = 0.0, export_w: float = 0.0, soc: float = 50.0,
        voltage: float = 400.0, frequency: float = 50.0,
    ) -> None:
        def value(v: float, measurand: str, unit: str | None) -> dict[str, Any]:
            sample = {"value": str(v), "measurand": measurand}
            return sample if unit is None else {**sample, "unit": unit}

        await self.call(
            call_16.MeterValues(
                connector_id=1,
                meter_value=[
                    {
                        "timestamp": now_iso(),
                        "sampled_value": [
                            value(import_w, "Power.Active.Import", "W"),
                            value(export_w, "Power.Active.Export", "W"),
                            value(soc, "SoC", "Percent"),
                            value(voltage, "Voltage", "V"),
                            value(frequency, "Frequency", None),
                        ],
                    }
                ],
            )
        )

    async def start_transaction(self) -> int:
        result = await self.call(
            call_16.StartTransaction(
                connector_id=1, id_tag="TAG", meter_start=0, timestamp=now_iso()
            )
        )
        return int(result.transaction_id)


STATIONS: dict[str, type[_Station]] = {"2.1": Station21, "2.0.1": Station201, "1.6": Station16}


async def open_socket(
    csms: CentralSystem,
    identity: str,
    *,
    password: str | None = PASSWORD,
    user: str | None = None,
    subprotocol: str | None = "ocpp2.1",
) -> ClientConnection:
    headers = {}
    if password is not None:
        headers["Authorization"] = basic_auth(user or identity, password)
    return await connect(
        f"{csms.url}/{identity}",
        subprotocols=[subprotocol] if subprotocol else None,  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=5,
        compression=None,
    )


@dataclass
class Running:
    """A started station and the task routing its frames."""

    station: Any
    socket: ClientConnection
    task: asyncio.Task[None]

    async def close(self) -> None:
        await self.socket.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


async def start_station(
    csms: CentralSystem, identity: str, version: str = "2.1", *, boot: bool = True
) -> Running:
    """A test station of `version` connected (authenticated) to `csms`, booted."""
    socket = await open_socket(csms, identity, subprotocol=OCPP_SUBPROTOCOLS[version])
    station = STATIONS[version](identity, socket)
    task = asyncio.create_task(station.start())
    running = Running(station, socket, task)
    if boot:
        await station.boot()
    return running


@dataclass
class Recorder:
    """What the central system recorded: events and alarm changes."""

    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    alarms: list[tuple[str, bool, str, str]] = field(default_factory=list)

    def event(self, kind: str, message: str, data: dict[str, Any]) -> None:
        self.events.append((kind, message, data))

    def alarm(self, code: str, raised: bool, severity: str, message: str) -> None:
        self.alarms.append((code, raised, severity, message))

    def messages(self, containing: str) -> list[str]:
        return [m for _, m, _ in self.events if containing in m]


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait until `predicate()` holds (checked every few ms), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running_csms(
    config: SiteConfig, *, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[tuple[CentralSystem, Recorder]]:
    recorder = Recorder()
    csms = CentralSystem(config, clock=clock, events=recorder.event, alarms=recorder.alarm)
    await csms.start()
    try:
        yield csms, recorder
    finally:
        await csms.stop()
