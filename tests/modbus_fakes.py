"""Real pymodbus TCP servers on loopback, built from register dicts, for transport and driver tests.

`FakeUnit` is one Modbus unit: a register bank (address -> raw value), the
requests it received, an exception code to answer with, and a gate that makes
it hang until released. `fake_server` serves one or more units on
127.0.0.1 (port 0, or a given port to bring a server "back"). `raw_server`
serves hand-made reply bytes, for frames pymodbus itself would never send.

Everything started here is stopped on exit of its context manager.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

BANK_SIZE = 50000  # covers our own maps at 0.. and SunSpec at 40000..


@dataclass(frozen=True)
class Request:
    function_code: int
    address: int
    count: int
    values: tuple[int, ...] | None  # None for a read


@dataclass
class FakeUnit:
    """One unit id's register bank and behaviour."""

    unit_id: int = 1
    bank: dict[int, int] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    exception: ExcCodes | None = None  # answer every request with this Modbus exception
    hang: bool = False  # hold every request until `release` is set
    release: asyncio.Event = field(default_factory=asyncio.Event)
    received: asyncio.Event = field(default_factory=asyncio.Event)

    def load(self, address: int, values: list[int]) -> None:
        for i, value in enumerate(values):
            self.bank[address + i] = value

    def registers(self, address: int, count: int) -> list[int]:
        return [self.bank.get(a, 0) for a in range(address, address + count)]

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        offset = address - start_address
        if set_values is None and function_code != 3:
            # pymodbus reads a written register back to build the FC6 reply: not a request.
            registers[offset : offset + count] = self.registers(address, count)
            return None
        values = None if set_values is None else tuple(int(v) for v in set_values)
        self.requests.append(Request(function_code, address, count, values))
        self.received.set()
        if self.hang:
            await self.release.wait()
            return ExcCodes.DEVICE_FAILURE  # the client gave up long ago
        if self.exception is not None:
            return self.exception
        if set_values is None:
            registers[offset : offset + count] = self.registers(address, count)
        else:
            for i, value in enumerate(set_values):
                self.bank[address + i] = int(value)
        return None

    def device(self) -> SimDevice:
        return SimDevice(
            id=self.unit_id,
            simdata=[SimData(0, count=BANK_SIZE, values=0, datatype=DataType.REGISTERS)],
            action=self.action,
        )


@asynccontextmanager
async def fake_server(*units: FakeUnit, port: int = 0) -> AsyncIterator[int]:
    """Serve `units` on 127.0.0.1:`port` (0 = any free port); yields the port."""
    server = ModbusTcpServer([u.device() for u in units], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        listener: Any = server.transport  # an asyncio.Server once listening
        yield int(listener.sockets[0].getsockname()[1])
    finally:
        for unit in units:
            unit.release.set()
        await server.shutdown()  # type: ignore[no-untyped-call]


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mbap_reply(request: bytes, pdu: bytes) -> bytes:
    """A Modbus TCP frame answering `request` (same transaction and unit id) with `pdu`."""
    tid = request[0:2]
    unit = request[6:7]
    return tid + b"\x00\x00" + struct.pack(">H", len(pdu) + 1) + unit + pdu


@asynccontextmanager
async def raw_server(reply: Callable[[bytes], bytes]) -> AsyncIterator[int]:
    """A TCP server answering each 12-byte request frame with `reply(frame)`; yields the port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(6)
                length = struct.unpack(">H", header[4:6])[0]
                frame = header + await reader.readexactly(length)
                writer.write(reply(frame))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
