"""Modbus TCP servers for the simulated devices, and the site that runs them with the plant.

Owns the wire: one pymodbus `ModbusTcpServer` per Modbus TCP endpoint (host:port)
of the site file, answering each unit id from its device's register bank
(`devices.py`) through the simulator's `action` hook so that every read is
rendered live from the plant and every write goes straight to it. Devices that
share a host:port (an RS-485-to-TCP gateway: several unit ids behind one port)
are served by one server, as the gateway would serve them. Also owns real time:
`SimSite` steps the plant by the measured monotonic time every `tick_s` seconds,
or not at all (`tick_s=None`) when a test or a drill steps it by hand.

Each device answers after its own response latency (`firmware_sim.latency`: drawn
per request from its family's model, seeded per device), one request at a time per
endpoint, without blocking the event loop (`firmware_sim.replies`): a slow inverter
delays only the requests queued behind it on its own endpoint. `SimSite(instant=True)`
(``python -m firmware_sim --instant``) answers at once instead, as before.

Comms faults are acted out here because only the wire can be silent: a request
that reaches a silenced device is lost for good, as on a cut cable. It is never
answered, not even after `clear_fault` (a late answer would only confuse the
client). Requests sent after `clear_fault` are answered again.

Servers bind loopback addresses only. Units: seconds (tick, timeouts, latencies).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import ssl
import struct
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

from pymodbus.constants import ExcCodes

from firmware_sim.devices import SimulatedDevice, build_devices
from firmware_sim.latency import DeviceLatency, reply_delay_s, site_latencies
from firmware_sim.ocpp_legacy import site_station
from firmware_sim.ocpp_station import SimStation, websocket_connector
from firmware_sim.plant import Plant, PlantInit
from firmware_sim.replies import EndpointReplies, RepliesTcpServer, RequestLost
from firmware_sim.rtu import RtuLine
from firmware_sim.serial_line import V2LLineMeter
from firmware_sim.units import Action, answer_known_units_only, sim_devices
from resilience.config import SiteConfig

log = logging.getLogger(__name__)

HOLDING_REGISTER_FUNCTIONS = frozenset({3, 6, 16})  # read, write single, write multiple


def require_loopback(host: str) -> str:
    """The simulator must never answer on a real network, where a controller could mistake it
    for a site."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"firmware_sim serves on loopback addresses only, not {host!r}")


class EndpointServer:
    """One Modbus TCP endpoint (host:port) and the devices behind it, each under its unit id.

    Usually one device; several when the site file puts them behind one host:port,
    as an RS-485-to-TCP gateway does (the most common field wiring). Each unit id is
    answered from its own device, with that device's faults: a silenced unit loses
    its requests while the others keep answering, and corrupt or truncate spoils only
    its own replies. A request for a unit id no device has is answered at once with
    GATEWAY_TARGET_FAILED_TO_RESPOND (0x0B), as a gateway answers for a unit that
    does not reply behind it (`firmware_sim.units`).

    `latencies` (device id -> `DeviceLatency`) delays each device's replies; a device
    without one answers at once. Requests are answered one at a time, in order, as one
    device or one gateway does (`firmware_sim.replies`).
    """

    def __init__(
        self,
        devices: Sequence[SimulatedDevice],
        host: str = "127.0.0.1",
        port: int = 0,
        latencies: Mapping[str, DeviceLatency] | None = None,
    ) -> None:
        units = [d.unit_id for d in devices]
        if not devices or len(set(units)) != len(units):
            names = ", ".join(f"{d.device_id} (unit {d.unit_id})" for d in devices)
            raise ValueError(f"{host}:{port}: one endpoint needs distinct unit ids, not {names}")
        self.devices = {d.unit_id: d for d in devices}
        self.host = require_loopback(host)
        self.requested_port = port
        self.port = 0
        self.latencies = dict(latencies or {})
        self._server: RepliesTcpServer | None = None
        self._replies: EndpointReplies | None = None

    @property
    def device_ids(self) -> list[str]:
        return [d.device_id for d in self.devices.values()]

    async def start(self) -> int:
        """Listen; returns the bound port."""
        sims = sim_devices(self.devices, self._action_for)
        self._replies = EndpointReplies(self._delay_s)
        server = RepliesTcpServer(
            sims,
            address=(self.host, self.requested_port),
            trace_packet=self._trace,
            replies=self._replies,
        )
        answer_known_units_only(server, sims)
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise OSError(
                f"{', '.join(self.device_ids)}: cannot listen on"
                f" {self.host}:{self.requested_port} ({exc})"
            ) from None
        self._server = server
        transport = server.transport
        assert isinstance(transport, asyncio.Server)
        self.port = int(transport.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._replies is not None:
            await self._replies.close()
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()  # type: ignore[no-untyped-call]

    def _delay_s(self, unit: int) -> float:
        """[s] the reply time of the device at `unit` (none for a silent or unknown one)."""
        return reply_delay_s(self.devices, self.latencies, unit)

    def _action_for(self, device: SimulatedDevice) -> Action:
        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if device.silent:
                raise RequestLost(device.device_id)
            if function_code not in HOLDING_REGISTER_FUNCTIONS:
                return ExcCodes.ILLEGAL_FUNCTION
            offset = address - start_address
            if set_values is None:
                result = device.read(address, count)
                if isinstance(result, ExcCodes):
                    return result
                registers[offset : offset + count] = result
                return None
            return device.write(address, [int(v) for v in set_values])

        return action

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """A corrupt or truncate fault sends a short frame (TCP has no CRC to spoil): one
        register fewer than asked in a read reply, the last byte missing from any other.
        The unit id in the reply's MBAP header says whose fault applies."""
        if not sending or len(data) < 9:
            return data
        tid, pid, _length, unit = struct.unpack(">HHHB", data[:7])
        device = self.devices.get(unit)
        fault = None if device is None else device.plant.comm_fault(device.device_id)
        if fault is None or fault.kind not in ("corrupt", "truncate"):
            return data
        pdu = data[7:]
        read_reply = pdu[0] == 3 and len(pdu) >= 4
        pdu = bytes([3, pdu[1] - 2]) + pdu[2:-2] if read_reply else pdu[:-1]
        return struct.pack(">HHHB", tid, pid, len(pdu) + 1, unit) + pdu


class SimSite:
    """The whole simulated site: plant, one Modbus TCP server per endpoint, and a
    real-time ticker.

    Use as `async with SimSite(config, bind_free_ports=True) as site:`; `site.ports` maps
    device id -> bound port and `site.controller_config()` is the site file pointed at them.
    Devices that share a host:port in the site file (a gateway) share one server
    (`EndpointServer`), also on a free port: `site.servers` maps each endpoint of the
    site file (``host:port``) to its server.

    Devices on serial transports ("rtu", "serial") are served on pseudo-terminals:
    `serial_links` maps each serial port of the site file (the controller's end) to
    the pty this side serves (the other end of a socat pair); one `RtuLine` per
    Modbus RTU port, one `V2LLineMeter` per line-protocol port (`site.lines`).

    OCPP stations (driver "ocpp") have no register bank and no endpoint here: each is a
    `SimStation` that connects to the controller's central system at `ocpp_url`
    (``ws://host:port/ocpp``; the station appends its identity), with its password from
    `ocpp_passwords` (by identity or device id). The central system's port is often known
    only once the controller listens: then leave `ocpp_url` out and call
    `start_stations(url, passwords)` later. A ``wss://`` url is TLS, checked against
    `ocpp_ssl` (the gateway's certificate). `site.stations` maps device id -> station; the
    stations tick on the plant's clock right after each plant step (one event loop: no race).

    Every device answers after its family's response latency (`firmware_sim.latency`),
    drawn from its own generator seeded with `latency_seed` and its device id
    (`site.latencies`); `instant=True` answers at once (only a serial line's frame
    times remain), for tests that need speed more than realism.
    """

    def __init__(
        self,
        config: SiteConfig,
        *,
        bind_free_ports: bool = False,
        tick_s: float | None = 0.01,
        init: PlantInit | None = None,
        serial_links: Mapping[str, str] | None = None,
        ocpp_url: str | None = None,
        ocpp_passwords: Mapping[str, str] | None = None,
        ocpp_ssl: ssl.SSLContext | None = None,
        instant: bool = False,
        latency_seed: int = 0,
    ) -> None:
        if tick_s is not None and tick_s <= 0:
            raise ValueError("tick_s must be > 0, or None to step the plant by hand")
        self.config = config
        self.bind_free_ports = bind_free_ports
        self.tick_s = tick_s
        self.plant = Plant(config, init)
        self.devices = build_devices(self.plant)
        self.instant = instant
        self.latencies: dict[str, DeviceLatency] = (
            {} if instant else site_latencies(config, latency_seed)
        )
        self.servers: dict[str, EndpointServer] = {}
        self.ports: dict[str, int] = {}
        self.serial_links = dict(serial_links or {})
        self.lines: dict[str, RtuLine | V2LLineMeter] = {}
        self.ocpp_url = ocpp_url
        self.ocpp_passwords = dict(ocpp_passwords or {})
        self.ocpp_ssl = ocpp_ssl
        self.stations: dict[str, SimStation] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._stepped_at: float | None = None  # [s, monotonic] of the ticker's last step

    async def start(self) -> None:
        try:
            on_lines: dict[str, list[str]] = {}
            endpoints: dict[tuple[str, int], list[SimulatedDevice]] = {}
            for device_id, device in self.devices.items():
                cfg = self.config.devices[device_id]
                if cfg.transport != "tcp" and cfg.serial_port is not None:
                    on_lines.setdefault(cfg.serial_port, []).append(device_id)
                    continue
                host = require_loopback(cfg.host)
                endpoints.setdefault((host, cfg.port), []).append(device)
            for (host, port), devices in endpoints.items():
                server = EndpointServer(
                    devices, host, 0 if self.bind_free_ports else port, self.latencies
                )
                self.servers[f"{host}:{port}"] = server
                bound = await server.start()
                for device in devices:
                    self.ports[device.device_id] = bound
            for serial_port, device_ids in on_lines.items():
                await self._start_line(serial_port, device_ids)
            if self.ocpp_url is not None:
                await self.start_stations(self.ocpp_url, self.ocpp_passwords)
        except BaseException:
            await self.stop()
            raise
        if self.tick_s is not None:
            self._ticker = asyncio.create_task(self._tick(self.tick_s), name="firmware_sim ticker")

    async def start_stations(
        self,
        url: str,
        passwords: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> dict[str, SimStation]:
        """Start one simulated station (`SimStation`, or the 2.0.1 / 1.6 ones of
        ocpp_legacy.py, by the site file's version) per OCPP station of the site file,
        connecting to the central system at `url` (and reconnecting until it is up)."""
        passwords = dict(passwords or {})
        for device_id, device in self.config.ocpp_stations.items():
            if device_id in self.stations or device.ocpp is None:
                continue
            identity = device.ocpp.identity
            password = passwords.get(identity, passwords.get(device_id))
            station = site_station(
                device_id,
                device,
                self.config.ocpp,
                self.plant,
                functools.partial(
                    websocket_connector,
                    url,
                    identity,
                    password,
                    ssl_context=ssl_context or self.ocpp_ssl,
                ),
                clock=self.station_clock,
            )
            station.latency = self.latencies.get(device_id)
            self.stations[device_id] = station
            station.tick()  # the car already plugged in is seen at once
            station.start()
        return self.stations

    def station_clock(self) -> float:
        """[s] The plant's time now, for the stations: between two ticker steps the plant's
        own `time_s` stands still (it lags by up to a step, more on a busy machine), and a
        command stamped with it would start its response delay in the past."""
        if self._stepped_at is None:
            return self.plant.time_s
        return self.plant.time_s + max(0.0, time.monotonic() - self._stepped_at)

    def tick_stations(self) -> None:
        """Run every station's timers on the plant's clock (the ticker does, after each
        plant step; call it by hand with `tick_s=None`)."""
        for station in self.stations.values():
            station.tick()

    async def _start_line(self, serial_port: str, device_ids: list[str]) -> None:
        path = self.serial_links.get(serial_port)
        if path is None:
            raise ValueError(
                f"serial port {serial_port} ({', '.join(device_ids)}) has no simulated end:"
                " pass serial_links (or --serial-link CONTROLLER=SIM) naming the other pty"
            )
        first = self.config.devices[device_ids[0]]
        line: RtuLine | V2LLineMeter
        if first.transport == "rtu":
            line = RtuLine(
                path,
                [self.devices[d] for d in device_ids],
                baudrate=first.baudrate,
                parity=first.parity,
                stopbits=first.stopbits,
                latencies=self.latencies,
            )
        else:
            line = V2LLineMeter(
                path,
                self.devices[device_ids[0]],
                baudrate=first.baudrate,
                parity=first.parity,
                stopbits=first.stopbits,
                latency=self.latencies.get(device_ids[0]),
            )
        self.lines[serial_port] = line
        await line.start()

    async def stop(self) -> None:
        stations, self.stations = self.stations, {}
        for station in stations.values():
            await station.stop()
        if self._ticker is not None:
            ticker, self._ticker = self._ticker, None
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        servers, self.servers = self.servers, {}
        for server in servers.values():
            await server.stop()
        lines, self.lines = self.lines, {}
        for line in lines.values():
            await line.stop()

    async def __aenter__(self) -> SimSite:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def controller_config(self) -> SiteConfig:
        """The site file as the controller should see it: every device at its bound port
        (and, with free ports, its OCPP central system on any free one: `start_stations`
        with the URL it then listens at)."""
        config = self.config.with_ports(self.ports)
        if self.bind_free_ports and config.ocpp_stations:
            config = config.model_copy(update={"ocpp": config.ocpp.model_copy(update={"port": 0})})
        return config

    async def _tick(self, tick_s: float) -> None:
        last = self._stepped_at = time.monotonic()
        try:
            while True:
                await asyncio.sleep(tick_s)
                now = time.monotonic()
                try:
                    self.plant.step(now - last)
                    self._stepped_at = now
                    self.tick_stations()
                except Exception:
                    log.exception("plant step failed; the simulated site stops moving")
                    raise
                last = now
        finally:
            self._stepped_at = None
