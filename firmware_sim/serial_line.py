"""A simulated V2L adapter meter that speaks the ASCII line protocol on a pseudo-terminal.

The counterpart of `resilience.drivers.v2l_serial`: the same outlet register
bank as the Modbus adapter (`devices.OutletDevice`), answered one line at a
time as docs/serial-line-protocol.md describes (`READ`, `EN,0|1`; replies
checksummed by `resilience.drivers.v2l_line`). The meter takes each request
after its response latency (`firmware_sim.latency`; one request at a time), and
bytes move at once through a pty, so its reply then waits for the request's and
the reply's transmission time at the configured baud rate.

Faults (`Plant` comm faults) on the wire: silence never answers; an exception
code answers ``ERR,<code>``; garbage answers impossible values in a sound line;
corrupt sends a wrong checksum; truncate cuts the line before its end.
Units: seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import serial
from pymodbus.constants import ExcCodes

from firmware_sim.devices import SimulatedDevice
from firmware_sim.latency import DeviceLatency
from resilience import rs485
from resilience.drivers import v2l_line
from resilience.drivers.registers import V2LOutlet as OutletMap

log = logging.getLogger(__name__)

__all__ = ["V2LLineMeter"]


class V2LLineMeter:
    """One V2L meter on the pty `path` (the other end of the controller's serial port);
    `latency` is its response latency (none: it answers at once)."""

    def __init__(
        self,
        path: str,
        device: SimulatedDevice,
        *,
        baudrate: int = 9600,
        parity: rs485.Parity = "N",
        stopbits: int = 1,
        latency: DeviceLatency | None = None,
    ) -> None:
        self.path = path
        self.device = device
        self.baudrate = baudrate
        self.parity: rs485.Parity = parity
        self.stopbits = stopbits
        self.char_s = rs485.char_time_s(baudrate, parity=parity, stopbits=stopbits)
        self.requests = 0
        self.latency = latency
        self._busy_until = 0.0  # [s, loop time] when the meter is done with its last request
        self._port: Any = None
        self._buffer = bytearray()
        self._pending: set[asyncio.TimerHandle] = set()

    async def start(self) -> None:
        try:
            port = serial.serial_for_url(  # 8N1: a pty refuses parity, ignores the rest
                self.path,
                baudrate=self.baudrate,
                timeout=0,
                write_timeout=0,
            )
        except (serial.SerialException, OSError) as exc:
            raise OSError(f"serial line {self.path}: cannot open ({exc})") from None
        self._port = port
        asyncio.get_running_loop().add_reader(port.fileno(), self._readable)

    async def stop(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(port.fileno())
            with contextlib.suppress(Exception):
                port.close()

    # ------------------------------------------------------------------ the wire
    def _readable(self) -> None:
        port = self._port
        if port is None:
            return
        try:
            data = port.read(4096)
        except (serial.SerialException, OSError):
            log.warning("serial line %s: read failed; the meter stops answering", self.path)
            asyncio.get_running_loop().remove_reader(port.fileno())
            return
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            request = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            self._handle(request)
        if len(self._buffer) > 256:
            self._buffer.clear()  # noise with no line end: drop it, as firmware would

    def _handle(self, request: bytes) -> None:
        self.requests += 1
        if self.device.silent:
            return
        loop = asyncio.get_running_loop()
        start = max(loop.time(), self._busy_until)
        self._busy_until = start + (0.0 if self.latency is None else self.latency.next_s())
        self._pending.add(loop.call_at(self._busy_until, self._respond, request))

    def _respond(self, request: bytes) -> None:
        """The meter has worked on `request`: act on it now and send the reply down the line."""
        device = self.device
        if device.silent:
            return  # silenced while it worked on the request: lost
        reply = self._answer(request.strip().decode("ascii", "replace"))
        fault = device.plant.comm_fault(device.device_id)
        if fault is not None and fault.kind == "corrupt":
            star = reply.rfind(b"*")
            digits = int(reply[star + 1 : star + 3], 16) ^ 0x5A
            reply = reply[: star + 1] + f"{digits:02X}".encode("ascii") + b"\r\n"
        elif fault is not None and fault.kind == "truncate":
            reply = reply[: max(1, len(reply) // 2)]
        delay = (len(request) + len(reply)) * self.char_s
        handle = asyncio.get_running_loop().call_later(delay, self._send, reply)
        self._pending.add(handle)

    def _answer(self, line: str) -> bytes:
        device = self.device
        if line == v2l_line.READ.strip().decode("ascii"):
            result = device.read(0, OutletMap.READ_COUNT)
            if isinstance(result, ExcCodes):
                return v2l_line.frame(f"{v2l_line.ERROR_PREFIX},{int(result)}")
            return v2l_line.format_reading(result)
        parts = line.split(",")
        if parts[0] == v2l_line.ENABLE_PREFIX:
            if len(parts) != 2 or parts[1] not in ("0", "1"):
                return v2l_line.frame(f"{v2l_line.ERROR_PREFIX},{int(ExcCodes.ILLEGAL_VALUE)}")
            code = device.write(OutletMap.ENABLE, [int(parts[1])])
            if code is not None:
                return v2l_line.frame(f"{v2l_line.ERROR_PREFIX},{int(code)}")
            return v2l_line.frame(v2l_line.OK)
        return v2l_line.frame(f"{v2l_line.ERROR_PREFIX},{int(ExcCodes.ILLEGAL_FUNCTION)}")

    def _send(self, reply: bytes) -> None:
        now = asyncio.get_running_loop().time()
        self._pending = {h for h in self._pending if h.when() > now}
        port = self._port
        if port is None:
            return
        try:
            port.write(reply)
        except (serial.SerialException, OSError):
            log.warning("serial line %s: write failed", self.path)
