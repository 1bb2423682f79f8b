"""Modbus RTU over RS-485: one bus per serial port, the unit ids on it taking turns.

`ModbusRtuBus` is the serial sibling of `ModbusTcpBus` (same `RegisterTransport`
methods, same exception tree, same back-off when the port cannot be opened),
over a pymodbus `AsyncModbusSerialClient` with the RTU framer on pyserial:

- one bus per serial port: every device on the line shares it, and its lock
  lets one request out at a time (RS-485 is half duplex; a second master
  request before the answer would collide on the wire);
- the line is kept silent for the inter-frame gap (3.5 characters, 1.75 ms above
  19200 baud; `resilience.rs485`) after every exchange before the next request,
  so a slave sees the end of one frame before the start of the next;
- the answer timeout is the device's `timeout_s`, which the site file check
  (`resilience.config`) makes long enough for the frames at that baud rate;
- a reply that arrives garbled is told apart from silence: the RTU framer drops a
  frame whose CRC does not match and pymodbus then only reports a timeout, so
  the bus watches the bytes received and raises `BadFrame` ("CRC mismatch", or
  "truncated") when bytes came but no frame, `DeviceTimeout` when nothing came;
- the port is opened exclusively (a second process on the same line fails to
  open it, rather than interleaving frames).

Endpoint names are the serial port path (``/dev/ttyUSB0 unit 3``). Times in
seconds [s], rates in baud.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.framer import FramerType

from resilience import rs485
from resilience.transport.modbus import ModbusBus

__all__ = ["ModbusRtuBus", "crc16"]

_FC_READ_HOLDING = 3


def crc16(frame: bytes) -> bytes:
    """The Modbus RTU CRC of `frame`, as the two bytes that end it (low byte first)."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes((crc & 0xFF, crc >> 8))


class ModbusRtuBus(ModbusBus):
    """The devices on one RS-485 serial port, one request at a time.

    `baudrate`, `parity` ("N", "E", "O") and `stopbits` must match the slaves'.
    See `ModbusBus` for `timeout_s`, the back-off and `clock` (which times the
    back-off only; the inter-frame gap is physical time, on the event loop's clock).
    """

    def __init__(
        self,
        serial_port: str,
        *,
        baudrate: int = 19200,
        parity: rs485.Parity = "E",
        stopbits: int = 1,
        timeout_s: float,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            timeout_s=timeout_s,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            clock=clock,
        )
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be N, E or O, not {parity!r}")
        if stopbits not in (1, 2):
            raise ValueError(f"stopbits must be 1 or 2, not {stopbits}")
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.parity: rs485.Parity = parity
        self.stopbits = stopbits
        self.gap_s = rs485.inter_frame_gap_s(baudrate, parity=parity, stopbits=stopbits)
        self._quiet_until = 0.0  # event-loop time before which no request may start
        self._received = b""  # bytes seen since the last request went out

    @property
    def endpoint(self) -> str:
        """The serial port, as error messages name it."""
        return self.serial_port

    def __repr__(self) -> str:
        return (
            f"ModbusRtuBus({self.serial_port}, {self.baudrate} {self.parity}{self.stopbits},"
            f" timeout_s={self.timeout_s})"
        )

    def _new_client(self) -> AsyncModbusSerialClient:
        return AsyncModbusSerialClient(
            self.serial_port,
            framer=FramerType.RTU,
            baudrate=self.baudrate,
            bytesize=8,
            parity=self.parity,
            stopbits=self.stopbits,
            name=self.serial_port,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,  # the bus owns reopening (back-off on its clock)
            reconnect_delay_max=0,
            trace_packet=self._trace,
        )

    def _connect_failed_reason(self) -> str:
        return "cannot open the serial port (missing, in use by another process, or no permission)"

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """pymodbus shows us every frame sent and the receive buffer as it grows."""
        if sending:
            self._received = b""
        else:
            self._received = bytes(data)
        return data

    async def _before_request(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._quiet_until - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._received = b""

    def _after_request(self) -> None:
        self._quiet_until = asyncio.get_running_loop().time() + self.gap_s

    def _unusable_reply(self, function_code: int, count: int) -> str | None:
        got = self._received
        if not got:
            return None
        shown = got[:16].hex(" ") + (" ..." if len(got) > 16 else "")
        expected = 5 + 2 * count if function_code == _FC_READ_HOLDING else 8
        exception_reply = len(got) >= 2 and got[1] & 0x80
        if exception_reply:
            expected = 5
        if len(got) < expected:
            return f"truncated reply: {len(got)} of {expected} bytes ({shown})"
        frame = got[:expected]
        if crc16(frame[:-2]) != frame[-2:]:
            return f"garbled reply: CRC mismatch in {len(got)} bytes ({shown})"
        return f"unusable reply: {len(got)} bytes ({shown})"
