"""Simulated OCPP 2.1 charging stations: `SimStation`, an OCPP-J client on the plant.

A `SimStation` is the `ocpp` library's `ocpp.v21.ChargePoint` (station side) around a
`StationModel` (`ocpp_model.py`: profiles, setpoint checks, delay, ramp, dead-man, the
car). It connects to the controller's central system like a real station: over a
WebSocket (`websocket_connector`: ``<url>/<identity>``, subprotocol ``ocpp2.1``, Basic
Auth), reconnecting with a short backoff (0.2 s .. 2 s) whenever the link drops; or, for
drills on a virtual clock, over an in-memory pipe (`InMemoryConnector`) whose other end is
handed to the central system's ``serve_connection(connection, identity, subprotocol)``.

What it sends (notes/ocpp_contract.md): BootNotification on every connection, then
StatusNotification and, with a car, NotifyEVChargingNeeds; TransactionEvent Started when
a car plugs and Ended when it leaves (these two are kept while offline and sent, marked
offline, after reconnecting; the rest is only sent live); MeterValues every meter
interval and at once when power has moved >= 5 % of rating; Heartbeat every interval.

Timers run on the clock it is given (the plant's or a drill's) and are evaluated in
`tick()`, which never blocks: messages go to an outbox that a sender task drains. In real
time something calls `tick()` every 10-20 ms (`SimSite` does, after each plant step).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from firmware_sim.ocpp_model import CarProfile, ChargingProfile, StationEvent, StationModel
from firmware_sim.ocpp_pipe import InMemoryPipe, settle

if TYPE_CHECKING:
    from firmware_sim.latency import DeviceLatency

__all__ = [
    "CarProfile",
    "Connection",
    "InMemoryConnector",
    "InMemoryPipe",
    "SimStation",
    "StationModel",
    "basic_auth",
    "cancel_and_wait",
    "settle",
    "websocket_connector",
]

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp2.1"
REJECTING = "this station rejects every command (fault injected)"
METER_MOVE_FRACTION = 0.05  # of rating: a move this big is reported at once
MEASURANDS = "Power.Active.Import,Power.Active.Export,SoC,Voltage,Frequency"


class Connection(Protocol):
    """What the ocpp library's ChargePoint needs of a WebSocket."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...

    async def close(self) -> None: ...


Connector = Callable[[], Awaitable[Connection]]


def basic_auth(identity: str, password: str) -> str:
    token = base64.b64encode(f"{identity}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def websocket_connector(
    url: str,
    identity: str,
    password: str | None,
    subprotocol: str = SUBPROTOCOL,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> Connector:
    """Connect to ``<url>/<identity>`` with the subprotocol and Basic Auth (none without a
    password: the central system refuses it, and the station keeps trying). A ``wss://``
    url is TLS (security profile 2), checked against `ssl_context` (the system's trusted
    certificates without one)."""
    uri = url.rstrip("/") + "/" + identity
    headers = {} if password is None else {"Authorization": basic_auth(identity, password)}

    async def open_link() -> Connection:
        ws = await connect(
            uri,
            subprotocols=[Subprotocol(subprotocol)],
            additional_headers=headers,
            open_timeout=5,
            close_timeout=1,
            ssl=ssl_context if uri.startswith("wss://") else None,
        )
        if ws.subprotocol != subprotocol:
            await ws.close()
            raise ConnectionError(f"{uri}: the central system chose {ws.subprotocol!r}")
        return ws

    return open_link


ServeConnection = Callable[[Any, str, str], Awaitable[None]]


class InMemoryConnector:
    """Each connect makes a pipe pair and runs `serve(csms_end, identity, subprotocol)`
    (the central system's side) as a task; `pipes` lists every end for `settle()`."""

    def __init__(self, serve: ServeConnection, identity: str, subprotocol: str = SUBPROTOCOL):
        self.serve = serve
        self.identity = identity
        self.subprotocol = subprotocol
        self.pipes: list[InMemoryPipe] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(self) -> Connection:
        station_end, csms_end = InMemoryPipe.pair(self.subprotocol)
        self.pipes[:] = [p for p in self.pipes if not p.closed] + [station_end, csms_end]
        task = asyncio.create_task(
            self._serve(csms_end), name=f"csms side of {self.identity} (in memory)"
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return station_end

    async def _serve(self, end: InMemoryPipe) -> None:
        try:
            await self.serve(end, self.identity, self.subprotocol)
        except ConnectionClosed:
            pass
        finally:
            end.close_nowait()

    async def stop(self) -> None:
        for pipe in self.pipes:
            pipe.close_nowait()
        await cancel_and_wait(list(self.tasks))


@dataclass
class _Outgoing:
    payload: Any
    keep_offline: bool = False  # TransactionEvents survive a dropped link
    raw: str | None = None  # a frame sent as it is (the out-of-schema fault), not a call

    @property
    def action(self) -> str:
        return type(self.payload).__name__ if self.raw is None else f"{self.payload} (raw)"


class _StationChargePoint(ChargePoint):  # type: ignore[misc]  # ocpp has no type hints
    """The library's station side; every CSMS command goes to the SimStation."""

    def __init__(self, station: SimStation, connection: Connection, timeout_s: float) -> None:
        super().__init__(station.identity, connection, response_timeout=timeout_s)
        self.station = station

    async def route_message(self, raw_msg: str) -> None:
        self.station._handling += 1  # the station's busy flag, for settle()
        try:
            if self.station.take_reply(raw_msg):
                return
            if raw_msg.lstrip().startswith("[2"):  # a CALL of the central system
                delay = self.station.answer_time_s()
                if delay > 0:
                    await asyncio.sleep(delay)  # its response latency, and the "slow" fault
            await super().route_message(raw_msg)
        finally:
            self.station._handling -= 1

    @on("SetChargingProfile")
    def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> Any:
        return self.station.on_set_charging_profile(evse_id, charging_profile)

    @on("UpdateDynamicSchedule")
    def on_update_dynamic_schedule(
        self, charging_profile_id: int, schedule_update: dict[str, Any], **_: Any
    ) -> Any:
        return self.station.on_update_dynamic_schedule(charging_profile_id, schedule_update)

    @on("ClearChargingProfile")
    def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        return self.station.on_clear_charging_profile(
            charging_profile_id, charging_profile_criteria
        )

    @on("NotifyAllowedEnergyTransfer")
    def on_notify_allowed_energy_transfer(
        self, transaction_id: str, allowed_energy_transfer: list[str], **_: Any
    ) -> Any:
        return self.station.on_notify_allowed_energy_transfer(
            transaction_id, allowed_energy_transfer
        )

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        return call_result.GetVariables(
            get_variable_result=[self.station.get_variable(d) for d in get_variable_data]
        )

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        return call_result.SetVariables(
            set_variable_result=[self.station.set_variable(d) for d in set_variable_data]
        )


def _rejected(cls: Any, reason: str) -> Any:
    return cls(
        status="Rejected",
        status_info={"reason_code": "InvalidValue", "additional_info": reason[:1000]},
    )


class SimStation:
    """A simulated OCPP 2.1 station on the plant's charger `model.charger_id`.

    `clock()` is the station's clock [s] (the plant's time in `SimSite`, a drill's virtual
    time in process); `epoch_s` maps it to Unix time for timestamps (default: now at
    construction). `start()` begins connecting through `connector`; `tick()` runs its
    timers; `cut_link()` / `restore_link()` act out a cut cable; `stop()` ends it.

    Faults (firmware_sim/ocpp_faults.py sets them): `rejecting` (every command of the
    central system Rejected), `answer_delay_s` (every call of the central system answered
    that many seconds of real time late: the central system times its calls in real
    time), `send_out_of_schema()`; a plant fault on its charger (`Plant.fault`) is
    reported as connector status Faulted and stops the converter.
    """

    version = "2.1"
    subprotocol = SUBPROTOCOL

    def __init__(
        self,
        model: StationModel,
        identity: str,
        connector: Connector,
        clock: Callable[[], float],
        *,
        epoch_s: float | None = None,
        meter_interval_s: float = 1.0,
        heartbeat_interval_s: float = 10.0,
        call_timeout_s: float = 10.0,
        backoff_s: tuple[float, float] = (0.2, 2.0),
        answer_delay_s: float = 0.0,
    ) -> None:
        if meter_interval_s <= 0 or heartbeat_interval_s <= 0:
            raise ValueError(f"{identity}: meter and heartbeat intervals must be > 0")
        if answer_delay_s < 0:
            raise ValueError(f"{identity}: answer_delay_s must be >= 0")
        # A slow station (busy firmware, a congested backhaul): each command of the central
        # system is taken, and answered, this long [s, real time] after it arrives, one at a
        # time; its own messages wait meanwhile. Over WebSockets in real time only.
        self.answer_delay_s = answer_delay_s
        # Its response latency in real time (SimSite sets it; none: it answers at once, as
        # in process, where drills run on a virtual clock).
        self.latency: DeviceLatency | None = None
        self.model = model
        self.identity = identity
        self.connector = connector
        self.clock = clock
        self.epoch_s = time.time() - clock() if epoch_s is None else epoch_s
        self.meter_interval_s = meter_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.call_timeout_s = call_timeout_s
        self.backoff_s = backoff_s
        self.booted = False
        self.connections = 0  # links opened so far
        self.boots = 0  # BootNotifications accepted so far
        self.last_error: str | None = None
        self.sent: list[tuple[float, str]] = []  # (clock, action) of every answered call
        self.errors: list[str] = []  # CallErrors and timeouts on our calls
        self._outbox: deque[_Outgoing] = deque()
        self._wake = asyncio.Event()
        self._cut = False
        self._restored = asyncio.Event()
        self._restored.set()
        self._conn: Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._seq_no = 0
        self._next_meter_s = 0.0
        self._next_heartbeat_s = 0.0
        self._reported_w: float | None = None
        self._needs_sent: tuple[Any, ...] | None = None
        self._calling = False
        self._handling = 0
        self.rejecting = False
        self.out_of_schema_replies: list[list[Any]] = []  # what answered our bad frames
        self._raw_seq = 0
        self._raw_reply: asyncio.Future[list[Any]] | None = None
        self._reported_faulted: bool | None = None

    def answer_time_s(self) -> float:
        """[s, real time] how long the station takes to answer the central system's call now
        arriving: its response latency, plus `answer_delay_s` when it is faulted slow."""
        latency = 0.0 if self.latency is None else self.latency.next_s()
        return latency + self.answer_delay_s

    # ------------------------------------------------------------------ lifecycle
    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def busy(self) -> bool:
        """A call of ours not yet answered, a message of the central system's being handled,
        or something queued to send: what `settle()` waits for."""
        if self._conn is None:
            return False
        return self._calling or self._handling > 0 or (self.booted and bool(self._outbox))

    async def settle(self, timeout_s: float = 2.0) -> None:
        """In memory: run the event loop until this station's link is quiet (see
        `ocpp_pipe.settle`); over WebSockets it only waits for `busy` to clear."""
        pipes = self.connector.pipes if isinstance(self.connector, InMemoryConnector) else []
        await settle(pipes, [lambda: self.busy], timeout_s=timeout_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ocpp station {self.identity}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait((task,))
        if isinstance(self.connector, InMemoryConnector):
            await self.connector.stop()

    def cut_link(self) -> None:
        """The cable is cut: the link drops now and stays down until `restore_link()`."""
        self._cut = True
        self._restored.clear()
        self.model.set_link(False, self.clock())
        if isinstance(self._conn, InMemoryPipe):
            self._conn.close_nowait()
        if self._reader is not None:
            self._reader.cancel()

    def restore_link(self) -> None:
        self._cut = False
        self._restored.set()

    # ------------------------------------------------------------------ time
    def tick(self) -> None:
        """Advance the model to the clock and queue what is due (never blocks)."""
        now = self.clock()
        self.model.tick(now)
        for event in self.model.drain_events():
            self._on_event(event)
        if self.model.transaction_id is not None and self.booted:
            self._maybe_send_needs()
        if not self.booted:
            return
        power = self.model.plant.charger_power_w(self.model.charger_id)
        moved = self._reported_w is not None and abs(power - self._reported_w) >= (
            METER_MOVE_FRACTION * self.model.rating_w
        )
        if now >= self._next_meter_s or moved:
            self._queue(self._meter_values(power, "Trigger" if moved else "Sample.Periodic"))
            self._reported_w = power
            self._next_meter_s = now + self.meter_interval_s
        faulted = self.model.faulted
        if faulted != self._reported_faulted:
            self._reported_faulted = faulted
            self._queue(self._status(self._connector_status()))
        if now >= self._next_heartbeat_s and not self._outbox:
            self._queue(self._heartbeat())
        if self._outbox:
            # Any message tells the central system the station is alive: a Heartbeat is
            # only due an interval after the last message, and none goes with another
            # message sent at the same moment (OCPP 1.6 and 2.x: a station may skip its
            # Heartbeat when it sent another message within the interval).
            self._next_heartbeat_s = now + self.heartbeat_interval_s

    def _on_event(self, event: StationEvent) -> None:
        if event.kind == "plugged":
            self._seq_no = 0
            self._needs_sent = None
            self._queue(self._status(self._connector_status()))
            self._queue(self._transaction("Started", "CablePluggedIn", event), keep_offline=True)
        elif event.kind in ("departed", "unplugged"):
            self._queue(self._transaction("Ended", "EVDeparted", event), keep_offline=True)
            self._queue(self._status(self._connector_status()))
        elif event.kind == "needs":
            self._needs_sent = None

    def _maybe_send_needs(self) -> None:
        vehicle = self.model.charger.vehicle
        if vehicle is None:
            return
        car = self.model.car
        signature = (
            round(vehicle.soc_pct),
            self.model.floor_soc_pct,
            car.departure_s,
            car.offers_bpt,
            car.requests_bpt,
            self.model.allowed_energy_transfer,
            tuple(car.islanding_methods),
            self.model.charger.max_discharge_w,
        )
        if signature == self._needs_sent:
            return
        self._needs_sent = signature
        departure = None if car.departure_s is None else self._iso(car.departure_s)
        needs = self.model.charging_needs(departure)
        assert needs is not None
        self._queue(
            call.NotifyEVChargingNeeds(
                charging_needs=needs, evse_id=self.model.evse_id, timestamp=self._iso()
            )
        )

    # ------------------------------------------------------------------ messages
    def _iso(self, at_s: float | None = None) -> str:
        t = self.clock() if at_s is None else at_s
        stamp = datetime.fromtimestamp(self.epoch_s + t, tz=UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _queue(self, payload: Any, keep_offline: bool = False, raw: str | None = None) -> None:
        if not (self.booted or keep_offline):
            return
        self._outbox.append(_Outgoing(payload, keep_offline, raw))
        self._wake.set()

    def _connector_status(self) -> str:
        if self.model.faulted:
            return "Faulted"
        return "Occupied" if self.model.plugged else "Available"

    def _heartbeat(self) -> Any:
        return call.Heartbeat()

    def _boot(self, reason: str) -> Any:
        return call.BootNotification(
            charging_station={"model": "firmware_sim DC V2X", "vendor_name": "resilience"},
            reason=reason,
        )

    def _prepare(self, payload: Any) -> Any:
        """Hook: the payload as it goes out now (None: drop it)."""
        return payload

    def _answered(self, payload: Any, result: Any) -> None:
        """Hook: the central system answered `payload` with `result`."""

    def _status(self, status: str) -> Any:
        return call.StatusNotification(
            timestamp=self._iso(),
            connector_status=status,
            evse_id=self.model.evse_id,
            connector_id=1,
        )

    def _transaction(self, event_type: str, trigger: str, event: StationEvent) -> Any:
        self._seq_no += 1
        info: dict[str, Any] = {"transaction_id": event.transaction_id}
        if event_type == "Ended":
            info.update(charging_state="Idle", stopped_reason="EVDisconnected")
        else:
            info["charging_state"] = "EVConnected"
        return call.TransactionEvent(
            event_type=event_type,
            timestamp=self._iso(event.at_s),
            trigger_reason=trigger,
            seq_no=self._seq_no,
            transaction_info=info,
            evse={"id": self.model.evse_id, "connector_id": 1},
            offline=not self.connected,
        )

    def _meter_values(self, power_w: float, context: str) -> Any:
        plant = self.model.plant
        live = plant.bus_live
        values: list[dict[str, Any]] = [
            _sample(max(-power_w, 0.0), "Power.Active.Import", "W", context),
            _sample(max(power_w, 0.0), "Power.Active.Export", "W", context),
            _sample(plant.bus_voltage_v if live else 0.0, "Voltage", "V", context),
            _sample(plant.bus_frequency_hz if live else 0.0, "Frequency", "Hz", context),
        ]
        vehicle = self.model.charger.vehicle
        if vehicle is not None:
            values.insert(2, _sample(vehicle.soc_pct, "SoC", "Percent", context))
        return call.MeterValues(
            evse_id=self.model.evse_id,
            meter_value=[{"timestamp": self._iso(), "sampled_value": values}],
        )

    # ------------------------------------------------------------------ CSMS commands
    def on_set_charging_profile(self, evse_id: int, profile: dict[str, Any]) -> Any:
        cls = call_result.SetChargingProfile
        if self.rejecting:
            return _rejected(cls, REJECTING)
        if evse_id not in (0, self.model.evse_id):
            return _rejected(cls, f"no EVSE {evse_id} (this station has {self.model.evse_id})")
        try:
            parsed = ChargingProfile.from_ocpp(profile)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return _rejected(cls, f"unreadable charging profile: {exc!r}")
        reason = self.model.set_profile(parsed, self.clock())
        return cls(status="Accepted") if reason is None else _rejected(cls, reason)

    def on_update_dynamic_schedule(self, profile_id: int, update: dict[str, Any]) -> Any:
        cls = call_result.UpdateDynamicSchedule
        if self.rejecting:
            return _rejected(cls, REJECTING)
        reason = self.model.update_dynamic(profile_id, update, self.clock())
        return cls(status="Accepted") if reason is None else _rejected(cls, reason)

    def on_clear_charging_profile(
        self, profile_id: int | None, criteria: dict[str, Any] | None
    ) -> Any:
        if self.rejecting:
            return call_result.ClearChargingProfile(status="Unknown")
        cleared = self.model.clear_profiles(self.clock(), profile_id, criteria)
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    def on_notify_allowed_energy_transfer(self, transaction_id: str, modes: list[str]) -> Any:
        if self.rejecting:
            return call_result.NotifyAllowedEnergyTransfer(status="Rejected")
        ok = self.model.allow_energy_transfer(transaction_id, modes, self.clock())
        return call_result.NotifyAllowedEnergyTransfer(status="Accepted" if ok else "Rejected")

    def _variables(self) -> dict[tuple[str, str], str]:
        return {
            ("SampledDataCtrlr", "TxUpdatedInterval"): f"{self.meter_interval_s:g}",
            ("SampledDataCtrlr", "TxUpdatedMeasurands"): MEASURANDS,
            ("AlignedDataCtrlr", "Measurands"): MEASURANDS,
            ("OCPPCommCtrlr", "HeartbeatInterval"): f"{self.heartbeat_interval_s:g}",
            ("SmartChargingCtrlr", "Enabled"): "true",
            ("SmartChargingCtrlr", "ChargingProfileMaxStackLevel"): "8",
            ("SmartChargingCtrlr", "RateUnit"): "W",
            ("V2XChargingCtrlr", "Enabled"): "true",
        }

    def _lookup(self, data: Mapping[str, Any]) -> tuple[tuple[str, str], str | None]:
        component = str(data["component"]["name"])
        variable = str(data["variable"]["name"])
        key = (component, variable)
        known = self._variables()
        if key in known:
            return key, None
        if any(c == component for c, _ in known):
            return key, "UnknownVariable"
        return key, "UnknownComponent"

    def get_variable(self, data: Mapping[str, Any]) -> dict[str, Any]:
        key, unknown = self._lookup(data)
        result: dict[str, Any] = {
            "attribute_status": unknown or "Accepted",
            "component": data["component"],
            "variable": data["variable"],
        }
        if unknown is None:
            result["attribute_value"] = self._variables()[key]
        return result

    def set_variable(self, data: Mapping[str, Any]) -> dict[str, Any]:
        key, unknown = self._lookup(data)
        status = unknown or "Rejected"
        if unknown is None and key[1] in ("TxUpdatedInterval", "HeartbeatInterval"):
            try:
                value = float(data["attribute_value"])
            except (KeyError, ValueError):
                value = 0.0
            if value > 0:
                status = "Accepted"
                if key[1] == "TxUpdatedInterval":
                    self.meter_interval_s = value
                    self._next_meter_s = min(self._next_meter_s, self.clock() + value)
                else:
                    self.heartbeat_interval_s = value
                    self._next_heartbeat_s = min(self._next_heartbeat_s, self.clock() + value)
        return {
            "attribute_status": status,
            "component": data["component"],
            "variable": data["variable"],
        }

    # ------------------------------------------------------------------ faults
    def _charge_point(self, conn: Connection) -> Any:
        """The library's station side for this version, on `conn`."""
        return _StationChargePoint(self, conn, self.call_timeout_s)

    def send_out_of_schema(self) -> None:
        """Queue one call whose payload breaks the version's JSON schema (sent as a raw
        frame: the library would refuse to send it); the central system must answer it
        with a CALLERROR (kept in `out_of_schema_replies`) and carry on."""
        self._raw_seq += 1
        action, payload = _out_of_schema_action(self.version, self.model.evse_id, self._iso())
        frame = json.dumps([2, f"out-of-schema-{self._raw_seq}", action, payload])
        self._queue(action, raw=frame)

    async def _send_raw(self, cp: Any, frame: str) -> None:
        self._raw_reply = asyncio.get_running_loop().create_future()
        await cp._connection.send(frame)
        try:
            reply = await asyncio.wait_for(self._raw_reply, self.call_timeout_s)
        finally:
            self._raw_reply = None
        self.out_of_schema_replies.append(reply)

    def take_reply(self, raw_msg: str) -> bool:
        """An answer to a raw frame of ours: kept here, not handed to the library (which
        would log it as a response to nothing)."""
        future = self._raw_reply
        if future is None or future.done() or '"out-of-schema-' not in raw_msg[:40]:
            return False
        try:
            future.set_result(json.loads(raw_msg))
        except ValueError:
            return False
        return True

    # ------------------------------------------------------------------ the link
    async def _run(self) -> None:
        low, high = self.backoff_s
        backoff = low
        try:
            while True:
                if self._cut:
                    await self._restored.wait()
                    continue
                try:
                    conn = await self.connector()
                except (OSError, TimeoutError, ConnectionError) as exc:
                    self._note_error(f"connect: {exc}")
                except Exception as exc:  # websockets' InvalidStatus (401, 404) and the like
                    self._note_error(f"connect: {type(exc).__name__}: {exc}")
                else:
                    backoff = low
                    if self._cut:
                        with contextlib.suppress(Exception):
                            await conn.close()
                        continue
                    await self._serve(conn)
                    if self._cut:
                        continue
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, high)
        finally:
            self.model.set_link(False, self.clock())

    def _note_error(self, text: str) -> None:
        if text != self.last_error:
            log.info("%s: %s (retrying)", self.identity, text)
        self.last_error = text

    async def _serve(self, conn: Connection) -> None:
        self._conn = conn
        self.connections += 1
        self.model.set_link(True, self.clock())
        cp = self._charge_point(conn)
        reader = asyncio.create_task(cp.start(), name=f"{self.identity} reader")
        session = asyncio.create_task(self._session(cp), name=f"{self.identity} session")
        self._reader = reader
        try:
            done, _ = await asyncio.wait({reader, session}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():
                    continue
                exc = task.exception()
                if exc is not None and not isinstance(exc, ConnectionClosed):
                    log.error("%s: link ended by %r", self.identity, exc)
        finally:
            # The link's state first: a stop() that cancels this task while it awaits the
            # clean-up below must not leave the station looking connected.
            self._reader = None
            self._conn = None
            self.booted = False
            self.model.set_link(False, self.clock())
            try:
                await cancel_and_wait((reader, session))
            finally:
                # after the session has ended: it takes what it sent off the outbox
                self._outbox = deque(item for item in self._outbox if item.keep_offline)
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _session(self, cp: _StationChargePoint) -> None:
        """Boot, tell the central system where we stand, then drain the outbox."""
        reason = "PowerUp" if self.boots == 0 else "Unknown"
        while True:
            self._calling = True
            try:
                response = await cp.call(self._boot(reason), suppress=False)
            finally:
                self._calling = False
            if response.status == "Accepted":
                break
            await asyncio.sleep(min(max(float(response.interval), 0.2), 2.0))
        self.boots += 1
        if response.interval > 0:
            self.heartbeat_interval_s = float(response.interval)
        now = self.clock()
        self.booted = True
        self._next_heartbeat_s = now + self.heartbeat_interval_s
        self._next_meter_s = now
        self._needs_sent = None
        self._reported_faulted = self.model.faulted
        self._queue(self._status(self._connector_status()))
        while True:
            while not self._outbox:
                self._wake.clear()
                await self._wake.wait()
            item = self._outbox[0]
            payload = item.payload if item.raw is not None else self._prepare(item.payload)
            self._calling = True
            try:
                if item.raw is not None:
                    await self._send_raw(cp, item.raw)
                elif payload is not None:
                    result = await cp.call(payload, suppress=False)
                    self._answered(payload, result)
            except OCPPError as exc:
                self.errors.append(f"{item.action}: {exc}")
            except TimeoutError:
                self.errors.append(f"{item.action}: no answer in {self.call_timeout_s:g} s")
            else:
                if payload is not None:
                    self.sent.append((self.clock(), item.action))
            finally:
                self._calling = False
            if self._outbox and self._outbox[0] is item:
                self._outbox.popleft()


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], retry_s: float = 0.05) -> None:
    """Cancel `tasks` and wait until each has ended, cancelling again any that goes on.

    Once is not always enough: on Python 3.11 `asyncio.wait_for` (which the ocpp library's
    `ChargePoint.call` awaits the answer with) returns the answer and drops the
    cancellation when the answer arrives in the same loop step as the cancel; the session
    then went back to waiting for its outbox, and `SimSite.stop` hung on it for good."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=retry_s)
        for task in pending:
            task.cancel()
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.debug("%s ended with %r", task.get_name(), task.exception())


def _out_of_schema_action(version: str, evse_id: int, timestamp: str) -> tuple[str, Any]:
    """A MeterValues that breaks the version's schema: a property the schema does not
    have, and a sampled value that is no number (2.x: the schema says number; 1.6: a
    string, but not a decimal). The second is also what the central system's own check
    refuses when schema validation is off (drills)."""
    sample: dict[str, Any] = {"value": "lots", "measurand": "Power.Active.Import"}
    key = "connectorId" if version == "1.6" else "evseId"
    return "MeterValues", {
        key: evse_id,
        "meterValue": [{"timestamp": timestamp, "sampledValue": [sample]}],
        "bogus": True,
    }


def _sample(value: float, measurand: str, unit: str, context: str) -> dict[str, Any]:
    return {
        "value": round(value, 3),
        "measurand": measurand,
        "context": context,
        "unit_of_measure": {"unit": unit},
    }
