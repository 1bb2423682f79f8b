"""ModbusTcpBus and BusPool against real pymodbus servers on loopback."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator

import pytest
from pymodbus.constants import ExcCodes

from resilience.transport.errors import (
    BadFrame,
    DeviceExceptionResponse,
    DeviceTimeout,
    DeviceUnreachable,
    TransportError,
)
from resilience.transport.modbus import RECV_BYTES, BusPool, ModbusTcpBus, RegisterTransport
from resilience.transport.tcp_link import TIMEOUTS_BEFORE_RECONNECT
from tests.modbus_fakes import FakeUnit, fake_server, free_port, mbap_reply, raw_server

TIMEOUT_S = 0.2


class FakeClock:
    """A monotonic clock the test moves by hand [s]."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def pool(clock: FakeClock) -> AsyncIterator[BusPool]:
    pool = BusPool(clock=clock)
    yield pool
    await pool.close_all()


def bus_for(pool: BusPool, port: int, timeout_s: float = TIMEOUT_S) -> ModbusTcpBus:
    return pool.get("127.0.0.1", port, timeout_s)


def test_bus_is_a_register_transport() -> None:
    def takes(transport: RegisterTransport) -> RegisterTransport:
        return transport

    bus = ModbusTcpBus("127.0.0.1", 502, timeout_s=1.0)
    assert takes(bus) is bus
    assert bus.endpoint == "127.0.0.1:502"
    assert not bus.connected


async def test_reads_exactly_the_registers_asked_for(pool: BusPool) -> None:
    unit = FakeUnit(unit_id=3)
    unit.load(100, [1, 2, 3, 0xFFFF])
    async with fake_server(unit) as port:
        bus = bus_for(pool, port)
        assert await bus.read(3, 100, 4) == [1, 2, 3, 0xFFFF]
        assert bus.connected
        assert [(r.function_code, r.address, r.count) for r in unit.requests] == [(3, 100, 4)]


async def test_socket_reads_are_small_and_the_largest_reply_still_whole(pool: BusPool) -> None:
    """asyncio's 256 KiB read buffer per reply costs an mmap and a page fault each under the
    unit's mmap threshold (bench/footprint.py); a Modbus TCP frame is at most 260 bytes."""
    unit = FakeUnit(unit_id=1)
    unit.load(0, list(range(125)))
    async with fake_server(unit) as port:
        bus = bus_for(pool, port)
        assert await bus.read(1, 0, 125) == list(range(125))  # 259 bytes on the wire
        assert bus._client._transport.max_size == RECV_BYTES < 256 * 1024


async def test_one_value_is_fc6_several_are_one_fc16(pool: BusPool) -> None:
    unit = FakeUnit()
    async with fake_server(unit) as port:
        bus = bus_for(pool, port)
        await bus.write(1, 8, [2])
        await bus.write(1, 11, [1, 0xFFFE, 5000, 4000, 200])
    assert [(r.function_code, r.address, r.values) for r in unit.requests] == [
        (6, 8, (2,)),
        (16, 11, (1, 0xFFFE, 5000, 4000, 200)),
    ]
    assert unit.registers(11, 5) == [1, 0xFFFE, 5000, 4000, 200]


async def test_units_behind_one_endpoint_share_the_bus(pool: BusPool) -> None:
    one, two = FakeUnit(unit_id=1), FakeUnit(unit_id=2)
    one.load(0, [11])
    two.load(0, [22])
    async with fake_server(one, two) as port:
        bus = bus_for(pool, port)
        assert list(await asyncio.gather(bus.read(1, 0, 1), bus.read(2, 0, 1))) == [[11], [22]]
    assert len(one.requests) == len(two.requests) == 1


@pytest.mark.parametrize(
    ("code", "name"),
    [(ExcCodes.ILLEGAL_ADDRESS, "ILLEGAL_ADDRESS"), (ExcCodes.DEVICE_BUSY, "DEVICE_BUSY")],
)
async def test_exception_response(pool: BusPool, code: ExcCodes, name: str) -> None:
    unit = FakeUnit(unit_id=7, exception=code)
    async with fake_server(unit) as port:
        bus = bus_for(pool, port)
        with pytest.raises(DeviceExceptionResponse) as caught:
            await bus.read(7, 40000, 2)
        with pytest.raises(DeviceExceptionResponse):
            await bus.write(7, 11, [1, 2])
    error = caught.value
    assert error.code == int(code)
    assert error.name == name
    assert (error.endpoint, error.unit_id, error.address) == (f"127.0.0.1:{port}", 7, 40000)
    message = str(error)
    assert f"127.0.0.1:{port} unit 7" in message
    assert "40000" in message
    assert name in message


async def test_silent_device_times_out_within_the_timeout(pool: BusPool) -> None:
    unit = FakeUnit(hang=True)
    async with fake_server(unit) as port:
        bus = bus_for(pool, port)
        started = time.monotonic()
        with pytest.raises(DeviceTimeout) as caught:
            await bus.read(1, 0, 9)
        elapsed = time.monotonic() - started
    assert unit.received.is_set()
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + 0.5
    assert f"127.0.0.1:{port} unit 1" in str(caught.value)
    assert f"no answer within {TIMEOUT_S} s" in str(caught.value)


async def test_a_session_that_never_answers_is_dropped_and_connected_afresh(
    pool: BusPool,
) -> None:
    """A half-open TCP session (a gateway rebooted without a reset) swallows every request:
    after `TIMEOUTS_BEFORE_RECONNECT` unanswered ones in a row the bus drops it, and the
    next request connects again (and is answered, on the new session)."""
    sessions: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sessions.append(writer)
        answering = len(sessions) > 1  # the first session is the dead one
        try:
            while True:
                header = await reader.readexactly(6)
                frame = header + await reader.readexactly(struct.unpack(">H", header[4:6])[0])
                if answering:
                    writer.write(mbap_reply(frame, bytes([3, 2, 0, 42])))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        bus = bus_for(pool, int(server.sockets[0].getsockname()[1]), timeout_s=0.05)
        for _ in range(TIMEOUTS_BEFORE_RECONNECT):
            with pytest.raises(DeviceTimeout):
                await bus.read(1, 0, 1)
        assert len(sessions) == 1
        assert await bus.read(1, 0, 1) == [42]
        assert len(sessions) == 2
    finally:
        for writer in sessions:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_closed_port_is_unreachable_then_backs_off_then_recovers(
    pool: BusPool, clock: FakeClock
) -> None:
    port = free_port()
    bus = bus_for(pool, port)
    with pytest.raises(DeviceUnreachable) as caught:
        await bus.read(1, 0, 1)
    assert f"127.0.0.1:{port} unit 1" in str(caught.value)
    assert bus.retry_at == clock.now + 0.5

    unit = FakeUnit()
    unit.load(0, [42])
    async with fake_server(unit, port=port):
        # The device is back, but the bus does not try again before its back-off ends.
        with pytest.raises(DeviceUnreachable, match=r"next attempt in 0\.5 s"):
            await bus.read(1, 0, 1)
        assert unit.requests == []
        clock.now += 0.5
        assert await bus.read(1, 0, 1) == [42]
        assert bus.retry_at is None


async def test_back_off_doubles_up_to_its_maximum(clock: FakeClock) -> None:
    bus = ModbusTcpBus(
        "127.0.0.1",
        free_port(),
        timeout_s=TIMEOUT_S,
        backoff_initial_s=0.5,
        backoff_max_s=2.0,
        clock=clock,
    )
    delays = []
    for _ in range(4):
        with pytest.raises(DeviceUnreachable):
            await bus.read(1, 0, 1)
        assert bus.retry_at is not None
        delays.append(bus.retry_at - clock.now)
        clock.now = bus.retry_at
    assert delays == [0.5, 1.0, 2.0, 2.0]
    await bus.close()


async def test_reconnects_after_the_device_restarts(pool: BusPool, clock: FakeClock) -> None:
    unit = FakeUnit()
    unit.load(5, [7])
    async with fake_server(unit) as port:
        bus = bus_for(pool, port)
        assert await bus.read(1, 5, 1) == [7]
    # Server gone: the connection drops; the next requests fail fast.
    with pytest.raises((DeviceUnreachable, DeviceTimeout)):
        await bus.read(1, 5, 1)
    with pytest.raises(DeviceUnreachable):
        await bus.read(1, 5, 1)
    async with fake_server(unit, port=port):
        clock.now += 5.0
        assert await bus.read(1, 5, 1) == [7]


async def test_short_reply_is_a_bad_frame(pool: BusPool) -> None:
    def one_register(request: bytes) -> bytes:
        return mbap_reply(request, bytes([3, 2, 0, 9]))  # FC3, 2 bytes: one register

    async with raw_server(one_register) as port:
        bus = bus_for(pool, port)
        with pytest.raises(BadFrame, match="holds 1 registers") as caught:
            await bus.read(1, 10, 3)
        await bus.close()
    assert caught.value.address == 10


async def test_reply_of_another_function_is_a_bad_frame(pool: BusPool) -> None:
    def wrong_function(request: bytes) -> bytes:
        return mbap_reply(request, bytes([4, 2, 0, 9]))  # FC4 answering FC3

    async with raw_server(wrong_function) as port:
        bus = bus_for(pool, port)
        with pytest.raises(BadFrame, match="function code"):
            await bus.read(1, 10, 1)
        await bus.close()


async def test_write_reply_must_echo_the_request(pool: BusPool) -> None:
    def wrong_echo(request: bytes) -> bytes:
        return mbap_reply(request, bytes([16]) + struct.pack(">HH", 99, 2))

    async with raw_server(wrong_echo) as port:
        bus = bus_for(pool, port)
        with pytest.raises(BadFrame, match="does not echo"):
            await bus.write(1, 11, [1, 2])
        await bus.close()


async def test_undecodable_write_reply_is_a_bad_frame_not_a_timeout(pool: BusPool) -> None:
    """A write echo cut short by a byte cannot be decoded: the device did answer, garbled
    (as the simulator's truncate fault sends it), so the request fails at once, without
    waiting out its timeout; the connection is kept and the next request answered."""
    answers = iter([bytes([16]) + struct.pack(">HH", 11, 2)[:-1]])

    def cut_short(request: bytes) -> bytes:
        return mbap_reply(request, next(answers, bytes([16]) + struct.pack(">HH", 11, 2)))

    async with raw_server(cut_short) as port:
        bus = bus_for(pool, port)
        started = time.monotonic()
        with pytest.raises(BadFrame, match="unusable reply: 11 bytes") as caught:
            await bus.write(1, 11, [1, 2])
        assert time.monotonic() - started < TIMEOUT_S
        assert caught.value.address == 11
        assert bus.connected  # the MBAP length kept the stream in step: no reconnection
        await bus.write(1, 11, [1, 2])
        await bus.close()


async def test_a_reply_cut_short_on_the_wire_is_a_bad_frame(pool: BusPool) -> None:
    """The MBAP header promises 7 bytes, 3 come: the bus waits for the rest and the
    request times out, but the device did answer, truncated."""

    def cut(request: bytes) -> bytes:
        return mbap_reply(request, bytes([3, 4, 0, 9, 0, 8]))[:-3]

    async with raw_server(cut) as port:
        bus = bus_for(pool, port)
        with pytest.raises(BadFrame, match="truncated reply: 10 of 13 bytes"):
            await bus.read(1, 10, 2)
        await bus.close()


async def test_a_frame_no_modbus_device_sends_fails_at_once_and_the_next_is_read(
    pool: BusPool,
) -> None:
    """An MBAP length of 65 535 (a Modbus TCP frame is at most 260 bytes): waiting for the
    rest would swallow every reply after it. The request fails at once, naming the bytes,
    and the stream is taken up again at the next reply."""
    answers = iter([b"\x00\x01\x00\x00\xff\xff\x01\x03"])

    def bogus_first(request: bytes) -> bytes:
        return next(answers, b"") or mbap_reply(request, bytes([3, 2, 0, 9]))

    async with raw_server(bogus_first) as port:
        bus = bus_for(pool, port)
        started = time.monotonic()
        with pytest.raises(BadFrame, match="unusable reply: 8 bytes"):
            await bus.read(1, 10, 1)
        assert time.monotonic() - started < TIMEOUT_S
        assert await bus.read(1, 10, 1) == [9]
        await bus.close()


async def test_a_late_reply_to_an_earlier_request_is_no_answer(pool: BusPool) -> None:
    """A reply under another transaction id (an earlier request's, late) is skipped: the
    request it came during is unanswered (a timeout), not garbled."""

    def late_one(request: bytes) -> bytes:
        other = struct.pack(">H", struct.unpack(">H", request[:2])[0] + 100)
        return mbap_reply(other + request[2:], bytes([3, 2, 0, 9]))

    async with raw_server(late_one) as port:
        bus = bus_for(pool, port)
        with pytest.raises(DeviceTimeout, match="no answer within"):
            await bus.read(1, 10, 1)
        await bus.close()


async def test_impossible_requests_are_value_errors() -> None:
    bus = ModbusTcpBus("127.0.0.1", free_port(), timeout_s=TIMEOUT_S)
    with pytest.raises(ValueError, match=r"1\.\.125"):
        await bus.read(1, 0, 126)
    with pytest.raises(ValueError, match=r"1\.\.125"):
        await bus.read(1, 0, 0)
    with pytest.raises(ValueError, match="16-bit"):
        await bus.write(1, 0, [0x10000])
    with pytest.raises(ValueError, match="past address 65535"):
        await bus.read(1, 65535, 2)
    assert bus.retry_at is None  # nothing was attempted


def test_errors_form_one_tree() -> None:
    for kind in (DeviceUnreachable, DeviceTimeout, BadFrame):
        assert issubclass(kind, TransportError)
    assert issubclass(DeviceExceptionResponse, TransportError)
    error = DeviceExceptionResponse("x", code=0x0B)
    assert error.name == "GATEWAY_NO_RESPONSE"
    assert DeviceExceptionResponse("x", code=0x42).name == "UNKNOWN_EXCEPTION_0x42"


async def test_pool_shares_one_bus_per_endpoint(pool: BusPool) -> None:
    first = pool.get("127.0.0.1", 15020, 0.01)
    assert pool.get("127.0.0.1", 15020, 0.05) is first
    assert first.timeout_s == 0.05  # the longest timeout asked for
    assert pool.get("127.0.0.1", 15020, 0.02).timeout_s == 0.05
    other = pool.get("127.0.0.1", 15021, 0.01)
    assert other is not first
    assert pool.get("10.0.0.2", 15020, 0.01) not in (first, other)
    assert len(pool.buses) == 3


async def test_pool_close_all_closes_every_bus(pool: BusPool) -> None:
    one, two = FakeUnit(), FakeUnit()
    async with fake_server(one) as port_one, fake_server(two) as port_two:
        buses = [bus_for(pool, port_one), bus_for(pool, port_two)]
        for bus in buses:
            await bus.read(1, 0, 1)
        assert all(bus.connected for bus in buses)
        await pool.close_all()
        assert not any(bus.connected for bus in buses)
        assert await buses[0].read(1, 0, 1) == [0]  # reconnects on demand
