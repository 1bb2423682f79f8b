"""The controller's own OCPP central system (CSMS): where the site's stations connect.

One WebSocket server (`[ocpp]` host and port) at ``ws://host:port/ocpp/<identity>``.
Before the upgrade, `process_request` refuses, each with its reason recorded as an event
(at most once per identity and reason per minute, so a station retrying every second does
not flood the store):

- an identity the site file does not name: HTTP 404;
- no Basic Auth, a user other than the identity, a wrong password, or a station without
  a `password_hash` in the site file: HTTP 401;
- no offer of the station's configured version's subprotocol (`ocpp2.1`...): HTTP 400.

An accepted connection becomes a `Session` of its version, attached to the station's
`OcppStationDriver` (what the control cycle reads and commands). A second connection of the
same identity replaces the first (a station that rebooted before its old TCP connection
timed out): the old one is closed.

`serve_connection` is the same path without the WebSocket server, for in-process use (the
station simulator's drills): any object with ``async recv() -> str``, ``async send(str)``
and ``async close()`` will do, as for the `ocpp` library's ChargePoint.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response

from resilience.config import OCPP_SUBPROTOCOLS, Device, SiteConfig
from resilience.ocpp.driver import Alarms, Events, OcppStationDriver
from resilience.ocpp.local_frequency import IslandDroop
from resilience.ocpp.passwords import verify_password
from resilience.ocpp.sessions import Session, close_quietly, session_class

__all__ = ["PATH_PREFIX", "REFUSAL_REPEAT_S", "CentralSystem"]

log = logging.getLogger(__name__)

PATH_PREFIX = "/ocpp/"
REFUSAL_REPEAT_S = 60.0
"""[s] a refusal of the same identity for the same reason is recorded once per this."""


def _offered(request: Request) -> list[str]:
    offered: list[str] = []
    for header in request.headers.get_all("Sec-WebSocket-Protocol"):
        offered.extend(p.strip() for p in header.split(",") if p.strip())
    return offered


def _basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def island_droop(config: SiteConfig) -> IslandDroop | None:
    """The grid-formers' droop line the LocalFrequency curves match (None: they do not
    droop; check-config makes every former droop alike when a station asks for it). The
    island runs with the formers at nominal frequency, so that is the no-load point."""
    droops = {d.droop_hz for d in config.chargers.values() if d.can_form}
    if len(droops) != 1 or 0.0 in droops:
        return None
    return IslandDroop(config.grid.nominal_frequency_hz, droops.pop())


class CentralSystem:
    """The stations of `config` (`SiteConfig.ocpp_stations`), their drivers and server.

    `events(kind, message, data)` records station events (connected, refused and why,
    replaced, disconnected, CALLERROR sent, command not taken); `alarms(code, raised,
    severity, message)` raises and clears alarms (``ocpp_anti_islanding:<device>``).
    `clock` is monotonic (staleness, RTTs), `wall` Unix time (messages' timestamps).
    """

    def __init__(
        self,
        config: SiteConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        events: Events | None = None,
        alarms: Alarms | None = None,
    ) -> None:
        self.config = config
        self.section = config.ocpp
        self.clock = clock
        self.wall = wall
        self._events = events
        self._alarms = alarms
        self._drivers: dict[str, OcppStationDriver] = {}  # by identity
        island = island_droop(config)
        for name, device in config.ocpp_stations.items():
            driver = OcppStationDriver(
                name,
                device,
                self.section,
                clock=clock,
                wall=wall,
                events=events,
                alarms=alarms,
                island=island,
            )
            self._drivers[driver.station.identity] = driver
        # The session class of each version the stations speak, imported now rather than at
        # a station's first connection (an import takes the event loop for a while)
        self._sessions: dict[str, type[Session]] = {
            d.station.version: session_class(d.station.version) for d in self._drivers.values()
        }
        self._connections: dict[str, Any] = {}  # identity -> its current connection
        self._refusals: dict[tuple[str, str], float] = {}
        self._closing: set[asyncio.Task[None]] = set()
        # One scrypt at a time (a thread each): a flood of wrong passwords must not take
        # the executor the sessions' schema validation runs in.
        self._verifying = asyncio.Semaphore(1)
        self._server: Server | None = None
        self._port = 0

    # ------------------------------------------------------------------ drivers
    def driver(self, name: str, device: Device) -> OcppStationDriver:
        """The driver of station `devices.<name>` (the `StationDrivers` Protocol)."""
        if device.ocpp is None:
            raise ValueError(f"devices.{name}: not an OCPP station (no [devices.{name}.ocpp])")
        driver = self._drivers.get(device.ocpp.identity)
        if driver is None or driver.name != name:
            raise ValueError(
                f"devices.{name}: identity {device.ocpp.identity!r} is not a station of this"
                " central system's site file"
            )
        return driver

    @property
    def drivers(self) -> dict[str, OcppStationDriver]:
        """Every station's driver, by device name."""
        return {d.name: d for d in self._drivers.values()}

    # ------------------------------------------------------------------ server
    async def start(self) -> int:
        """Listen on `[ocpp]` host:port (0: a free port); returns the bound port.

        With `[ocpp] tls_cert` and `tls_key`, over TLS (security profile 2; the pair is the
        one check-config checked). A plain listener that the network can reach is logged as
        a warning: the stations' Basic Auth passwords cross the network in clear."""
        subprotocols: list[Any] = sorted(set(OCPP_SUBPROTOCOLS.values()))
        files = self.section.tls_files()
        context = None
        if files is not None:
            from resilience.tls import server_context

            context = server_context(files)
        self._server = await serve(
            self._handler,
            self.section.host,
            self.section.port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            subprotocols=subprotocols,
            compression=None,
            ssl=context,
        )
        self._port = int(next(iter(self._server.sockets)).getsockname()[1])
        log.info("OCPP central system listening on %s", self.url)
        if context is None and not self.section.loopback:
            log.warning(
                "ocpp: listening without TLS on %s: the stations' passwords cross the network"
                " in clear (security profile 1); give [ocpp] tls_cert and tls_key for profile 2",
                self.section.host,
            )
        return self._port

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``ws://host:port/ocpp`` (``wss://`` with TLS): a station connects to this plus
        ``/<identity>``."""
        host = self.section.host
        if ":" in host:
            host = f"[{host}]"
        return f"{self.section.scheme}://{host}:{self._port}/ocpp"

    async def stop(self) -> None:
        """Close every connection (WebSocket or in-process) and the server."""
        for connection in list(self._connections.values()):
            await close_quietly(connection)
        for closing in list(self._closing):
            closing.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _identity(self, path: str) -> str | None:
        path = path.split("?", 1)[0]
        if not path.startswith(PATH_PREFIX):
            return None
        identity = unquote(path[len(PATH_PREFIX) :])
        return identity if identity in self._drivers else None

    def _refused(self, identity: str, reason: str, message: str) -> None:
        """Log and record a refusal, at most once per identity+reason per minute."""
        key = (identity, reason)
        now = self.clock()
        last = self._refusals.get(key)
        if last is not None and now - last < REFUSAL_REPEAT_S:
            log.debug("refused %s again: %s", identity, message)
            return
        self._refusals[key] = now
        log.warning("OCPP connection refused: %s", message)
        if self._events is not None:
            data = {"identity": identity, "reason": reason}
            self._events("ocpp", f"OCPP connection refused: {message}", data)

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = request.path.split("?", 1)[0]
        identity = self._identity(path)
        if identity is None:
            # One key for every unknown path: random paths must not flood the store.
            self._refused("(unknown)", "unknown", f"{path[:80]!r}: no station of that identity")
            return connection.respond(HTTPStatus.NOT_FOUND, "no station of that identity\n")
        driver = self._drivers[identity]
        expected = OCPP_SUBPROTOCOLS[driver.station.version]
        stored = driver.station.password_hash
        if stored is None:
            self._refused(
                identity,
                "no_password",
                f"{identity} (devices.{driver.name}): the site file has no"
                f" [devices.{driver.name}.ocpp] password_hash (make one with"
                " `resilience ocpp-password`)",
            )
            return self._unauthorized(connection)
        credentials = _basic_auth(request)
        if credentials is None:
            self._refused(identity, "no_auth", f"{identity}: no HTTP Basic Auth credentials")
            return self._unauthorized(connection)
        user, password = credentials
        if user != identity:
            self._refused(identity, "wrong_user", f"{identity}: Basic Auth user {user[:48]!r}"
                          " is not the station's identity")
            return self._unauthorized(connection)
        async with self._verifying:
            good = await asyncio.to_thread(verify_password, password, stored)
        if not good:
            self._refused(identity, "wrong_password", f"{identity}: wrong password")
            return self._unauthorized(connection)
        offered = _offered(request)
        if expected not in offered:
            self._refused(
                identity,
                "subprotocol",
                f"{identity}: offers subprotocols {offered or 'none'}; the site file says"
                f" OCPP {driver.station.version} ({expected})",
            )
            return connection.respond(
                HTTPStatus.BAD_REQUEST, f"subprotocol {expected} required\n"
            )
        return None

    @staticmethod
    def _unauthorized(connection: ServerConnection) -> Response:
        response = connection.respond(HTTPStatus.UNAUTHORIZED, "station not authorised\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    def _select_subprotocol(
        self, connection: ServerConnection, subprotocols: Any
    ) -> Any:
        identity = self._identity(connection.request.path if connection.request else "")
        if identity is None:
            raise NegotiationError("unknown station")
        expected = OCPP_SUBPROTOCOLS[self._drivers[identity].station.version]
        if expected not in subprotocols:
            raise NegotiationError(f"subprotocol {expected} required")
        return expected

    async def _handler(self, connection: ServerConnection) -> None:
        request = connection.request
        identity = self._identity(request.path if request else "")
        if identity is None or connection.subprotocol is None:  # process_request refused it
            await connection.close()
            return
        await self.serve_connection(connection, identity, str(connection.subprotocol))

    # ------------------------------------------------------------------ sessions
    async def serve_connection(self, connection: Any, identity: str, subprotocol: str) -> None:
        """Run the OCPP session of station `identity` on an accepted `connection` until it
        closes (returns then). For in-process use (no authentication: the caller is the
        process itself) and the WebSocket path after its checks.

        `connection`: ``async recv() -> str`` (raising when the connection is gone),
        ``async send(str)``, ``async close()``. `subprotocol` must be the station's
        configured version's (``ocpp2.1``...), else ValueError; an identity the site file
        does not name is a LookupError. A station already connected is replaced."""
        driver = self._drivers.get(identity)
        if driver is None:
            raise LookupError(f"{identity!r}: no station of that identity in the site file")
        expected = OCPP_SUBPROTOCOLS[driver.station.version]
        if subprotocol != expected:
            raise ValueError(
                f"{identity}: subprotocol {subprotocol!r}; the site file says OCPP"
                f" {driver.station.version} ({expected})"
            )
        session = self._sessions[driver.station.version](
            identity, connection, link=driver, response_timeout=self.section.call_timeout_s
        )
        old = self._connections.get(identity)
        self._connections[identity] = connection
        if old is not None:
            message = (
                f"{identity} (devices.{driver.name}) connected again: the old connection is"
                " closed"
            )
            log.info("%s", message)
            self._event(message, {"device": driver.name, "identity": identity})
            # In the background: the old link of a rebooted station is usually dead, and a
            # closing handshake on it would wait for its timeout.
            closing = asyncio.create_task(close_quietly(old))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        driver.attach(session)
        self._event(
            f"{identity} (devices.{driver.name}) connected (OCPP {driver.station.version})",
            {"device": driver.name, "identity": identity},
        )
        why = "closed"
        try:
            await session.start()
        except ConnectionClosed as exc:
            why = f"closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
        except asyncio.CancelledError:
            why = "stopped"
            raise
        except Exception as exc:  # an in-memory pipe's own way of saying it is gone
            why = f"{type(exc).__name__}: {exc}"
        finally:
            if driver.detach(session):
                self._connections.pop(identity, None)
                log.info("%s (devices.%s) disconnected: %s", identity, driver.name, why)
                self._event(
                    f"{identity} (devices.{driver.name}) disconnected: {why}",
                    {"device": driver.name, "identity": identity},
                )
            await close_quietly(connection)

    def _event(self, message: str, data: dict[str, Any]) -> None:
        if self._events is not None:
            self._events("ocpp", message, data)


if TYPE_CHECKING:  # mypy proves the central system is what the driver registry takes
    from resilience.drivers.registry import StationDrivers

    def _implements(csms: CentralSystem) -> None:
        _stations: StationDrivers = csms
