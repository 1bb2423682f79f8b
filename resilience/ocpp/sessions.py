"""One OCPP-J session per connected station: the `ocpp` library's ChargePoint, per version.

`Session` replaces the library's message routing where it falls short for a controller:

- a frame that is not OCPP-J (not JSON, not a list, no message type) gets a CALLERROR
  (the library only logs it): RpcFrameworkError (MessageTypeNotSupported for an unknown
  message type) in 2.x, with message id "-1" when the id cannot be read (OCPP-J);
- 1.6 error codes are spelt as 1.6 spells them (FormationViolation...);
- an action without a handler gets NotImplemented (a known action) or NotSupported (the
  library answers nothing at all for 2.1);
- a handler that refuses a payload (`state.Refused`: a value out of physical range) or
  fails gets a CALLERROR, and the session goes on;
- each error is logged once per (identity, action, error kind) through the link
  (`StationLink.report_error`), not once per message, and never with a traceback for
  what a station sent;
- every message counts as "heard from" (staleness), and a hook runs after the answer to
  BootNotification has been sent (`StationLink.booted`), so the profiles the central
  system then installs reach a station that knows it was accepted (a station that
  reconnects without rebooting sends no BootNotification: its first answered message on
  the new link counts).

The handlers decode payloads with the pure functions of `resilience.ocpp.state` and leave
every decision to the link (the station's driver).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeVar, cast

from ocpp import charge_point as library
from ocpp.charge_point import ChargePoint, remove_nones
from ocpp.exceptions import (
    FormatViolationError,
    InternalError,
    NotImplementedError,
    NotSupportedError,
    OCPPError,
    PropertyConstraintViolationError,
)
from ocpp.messages import Call, CallError, MessageType, unpack
from ocpp.routing import on as _on

from resilience.ocpp.casing import camel_to_snake_case, serialize_as_dict, snake_to_camel_case
from resilience.ocpp.state import (
    Refused,
    StationState,
    charging_needs_update,
    meter_values_update,
    status_update,
    transaction_update,
)

__all__ = ["Session", "Session2", "StationLink", "on", "session_class"]

log = logging.getLogger(__name__)
_F = TypeVar("_F", bound=Callable[..., Any])


def on(action: str) -> Callable[[_F], _F]:
    """The library's `@on(action)` handler decorator, typed."""
    return cast(Callable[[_F], _F], _on(action))

wire = logging.getLogger("resilience.ocpp.wire")  # every frame, at DEBUG


class StationLink(Protocol):
    """What a session tells the station's driver."""

    state: StationState
    heartbeat_interval_s: int

    def heard(self) -> None: ...
    def booted(self) -> None: ...
    def needs_changed(self) -> None: ...
    def car_left(self) -> None: ...
    def report_error(self, action: str, kind: str, detail: str) -> None: ...
    def now_iso(self) -> str: ...
    def clock(self) -> float: ...


def _message_id(raw: Any) -> str:
    """The message id of a frame that could not be unpacked, or "-1" (OCPP-J)."""
    try:
        frame = json.loads(raw)
    except (TypeError, ValueError):
        return "-1"
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str):
        return frame[1]
    return "-1"


def _cause(error: OCPPError) -> str:
    details = error.details if isinstance(error.details, Mapping) else {}
    return str(details.get("cause") or error.description)


class Session(ChargePoint):  # type: ignore[misc]  # the library has no type hints
    """A station's session; subclasses set the version's payload modules and handlers."""

    _actions: ClassVar[frozenset[str]] = frozenset()
    dynamic_schedules: ClassVar[bool] = False
    """OCPP 2.1's dynamic charging profiles (UpdateDynamicSchedule, PullDynamicSchedule)."""

    def __init__(
        self, identity: str, connection: Any, *, link: StationLink, response_timeout: float
    ) -> None:
        super().__init__(identity, connection, response_timeout=response_timeout, logger=wire)
        self.link = link
        self.evse_id = 1
        self.call_sent_s = 0.0  # link.clock() when the last CALL went out (RTTs)

    # ------------------------------------------------------------------ routing
    async def start(self) -> None:
        """Route frames until the connection closes (its `recv` raises)."""
        while True:
            message = await self._connection.recv()
            wire.debug("%s <- %s", self.id, message)
            await self.route_message(message)

    async def _send(self, message: str) -> None:
        wire.debug("%s -> %s", self.id, message)
        if message.startswith("[2,"):
            self.call_sent_s = self.link.clock()
        await self._connection.send(message)

    async def route_message(self, raw_msg: Any) -> None:
        self.link.heard()
        try:
            msg = unpack(raw_msg)
        except OCPPError as error:
            code = self._frame_code(error)
            self.link.report_error("(frame)", code, _cause(error))
            reply = CallError(_message_id(raw_msg), code, error.description, {})
            await self._send(reply.to_json())
            return
        if msg.message_type_id == MessageType.Call:
            try:
                await self._handle_call(msg)
            except OCPPError as error:
                code = self._code(error.code)
                self.link.report_error(str(msg.action), code, _cause(error))
                reply = CallError(msg.unique_id, code, error.description, {"cause": _cause(error)})
                await self._send(reply.to_json())
        elif msg.message_type_id in (MessageType.CallResult, MessageType.CallError):
            self._response_queue.put_nowait(msg)

    def _code(self, code: str) -> str:
        """The version's spelling of an error code (1.6 has its own, see V16Session)."""
        return code

    def _frame_code(self, error: OCPPError) -> str:
        """OCPP 2.x: a frame that is no RPC message is an RpcFrameworkError, an unknown
        message type MessageTypeNotSupported."""
        if isinstance(error, PropertyConstraintViolationError):
            return "MessageTypeNotSupported"
        return "RpcFrameworkError"

    async def _handle_call(self, msg: Call) -> None:
        handlers = self.route_map.get(msg.action)
        if not handlers or "_on_action" not in handlers:
            if msg.action in self._actions:
                raise NotImplementedError(details={"cause": f"{msg.action}: not implemented"})
            raise NotSupportedError(
                details={"cause": f"{msg.action}: not an action of OCPP {self._ocpp_version}"}
            )
        # the library's own validator, looked up each time as its ChargePoint.call does
        await library.validate_payload(msg, self._ocpp_version)
        payload = camel_to_snake_case(msg.payload)
        try:
            response = handlers["_on_action"](**payload)
            if inspect.isawaitable(response):
                response = await response
        except Refused as exc:
            raise PropertyConstraintViolationError(details={"cause": str(exc)}) from None
        except TypeError as exc:  # a field the schema allows but the handler did not expect
            raise FormatViolationError(details={"cause": str(exc)}) from None
        except OCPPError:
            raise
        except Exception as exc:
            log.exception("%s: %s handler failed", self.id, msg.action)
            raise InternalError(details={"cause": f"{type(exc).__name__}: {exc}"}) from None
        body = snake_to_camel_case(remove_nones(serialize_as_dict(response)))
        result = msg.create_call_result(body)
        await library.validate_payload(result, self._ocpp_version)
        await self._send(result.to_json())
        if msg.action == "BootNotification" or not self.link.state.booted:
            # Registered: answered its BootNotification, or (a station that reconnected
            # without rebooting sends none) answered its first message on this link.
            self.link.booted()

    # ------------------------------------------------------------------ shared decoding
    def _ours(self, evse_id: int | None) -> bool:
        return evse_id is None or evse_id == self.evse_id

    def _meter(self, meter_value: Sequence[Mapping[str, Any]]) -> None:
        try:
            meter_values_update(self.link.state, meter_value)
        except Refused as exc:
            # Not believed: the reading is unknown until a good MeterValues comes.
            self.link.state.meter_problem = str(exc)
            raise

    def _status(self, status: str) -> None:
        was_plugged = self.link.state.plugged
        status_update(self.link.state, status)
        if was_plugged and not self.link.state.plugged:
            self.link.car_left()

    def _transaction(self, event_type: str, transaction_id: str) -> None:
        was_plugged = self.link.state.plugged
        transaction_update(self.link.state, event_type, transaction_id)
        if was_plugged and not self.link.state.plugged:
            self.link.car_left()

    def _needs(self, charging_needs: Mapping[str, Any]) -> None:
        charging_needs_update(self.link.state, charging_needs)
        self.link.needs_changed()


class Session2(Session):
    """Handlers common to OCPP 2.0.1 and 2.1 (the payloads are the same)."""

    def _boot(self) -> Any:
        return self._call_result.BootNotification(
            current_time=self.link.now_iso(),
            interval=self.link.heartbeat_interval_s,
            status="Accepted",
        )

    @on("BootNotification")
    def on_boot_notification(self, **_: Any) -> Any:
        return self._boot()

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        return self._call_result.Heartbeat(current_time=self.link.now_iso())

    @on("StatusNotification")
    def on_status_notification(
        self, connector_status: str, evse_id: int, **_: Any
    ) -> Any:
        if self._ours(evse_id):
            self._status(connector_status)
        return self._call_result.StatusNotification()

    @on("MeterValues")
    def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]], **_: Any) -> Any:
        if self._ours(evse_id):
            self._meter(meter_value)
        return self._call_result.MeterValues()

    @on("TransactionEvent")
    def on_transaction_event(
        self,
        event_type: str,
        transaction_info: dict[str, Any],
        evse: dict[str, Any] | None = None,
        meter_value: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        if self._ours(evse.get("id") if evse else None):
            self._transaction(event_type, str(transaction_info["transaction_id"]))
            if meter_value:
                self._meter(meter_value)
        return self._call_result.TransactionEvent()

    @on("NotifyEVChargingNeeds")
    def on_notify_ev_charging_needs(
        self, charging_needs: dict[str, Any], evse_id: int, **_: Any
    ) -> Any:
        if self._ours(evse_id):
            self._needs(charging_needs)
        return self._call_result.NotifyEVChargingNeeds(status="Accepted")

    @on("NotifyReport")
    def on_notify_report(self, **_: Any) -> Any:
        return self._call_result.NotifyReport()

    @on("NotifyEvent")
    def on_notify_event(self, **_: Any) -> Any:
        return self._call_result.NotifyEvent()

    @on("SecurityEventNotification")
    def on_security_event_notification(self, **_: Any) -> Any:
        return self._call_result.SecurityEventNotification()

    @on("Authorize")
    def on_authorize(self, **_: Any) -> Any:
        return self._call_result.Authorize(id_token_info={"status": "Accepted"})


def session_class(version: str) -> type[Session]:
    """The session class for an OCPP version a site file may name ("2.1", "2.0.1", "1.6").

    Each version's module imports that version's payload classes and JSON schemas from
    the `ocpp` library (2 to 3 MB each, resident for the process's life): only the
    versions of the site's stations are imported, by the central system as it starts."""
    if version == "2.1":
        from resilience.ocpp.sessions_v21 import V21Session

        return V21Session
    if version == "2.0.1":
        from resilience.ocpp.sessions_v201 import V201Session

        return V201Session
    if version == "1.6":
        from resilience.ocpp.sessions_v16 import V16Session

        return V16Session
    raise ValueError(f"OCPP {version!r}: not a version this central system speaks")


async def close_quietly(connection: Any) -> None:
    """Close a connection, whatever state it is in."""
    try:
        await connection.close()
    except (OSError, RuntimeError, asyncio.CancelledError):
        pass
    except Exception:  # an in-memory pipe may raise anything of its own
        log.debug("closing a connection failed", exc_info=True)
