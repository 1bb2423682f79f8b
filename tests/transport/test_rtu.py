"""ModbusRtuBus against simulated RS-485 slaves (firmware_sim.rtu) over a socat pty pair."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_sim.devices import build_devices
from firmware_sim.plant import Plant
from firmware_sim.rtu import RtuLine
from resilience import rs485
from resilience.config import SiteConfig, cross_check, load_site
from resilience.drivers.registers import BidirectionalCharger as CHG
from resilience.drivers.registry import build_driver
from resilience.transport.errors import (
    BadFrame,
    DeviceExceptionResponse,
    DeviceTimeout,
    DeviceUnreachable,
)
from resilience.transport.modbus import BusPool, RegisterTransport
from resilience.transport.rtu import ModbusRtuBus, crc16
from tests.serial_lines import mixed_site, needs_socat, socat_pair

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
TIMEOUT_S = 0.3

pytestmark = needs_socat


class RecordingBus(ModbusRtuBus):
    """Notes when each request went out and when each reply byte arrived (loop time)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sent: list[float] = []
        self.received: list[float] = []

    def _trace(self, sending: bool, data: bytes) -> bytes:
        now = asyncio.get_running_loop().time()
        (self.sent if sending else self.received).append(now)
        return super()._trace(sending, data)


@dataclass
class Line:
    plant: Plant
    line: RtuLine
    port: str  # the controller's end
    config: SiteConfig

    def bus(self, cls: type[ModbusRtuBus] = ModbusRtuBus, **kwargs: object) -> ModbusRtuBus:
        device = self.config.devices["charger_1"]
        return cls(
            self.port,
            baudrate=device.baudrate,
            parity=device.parity,
            stopbits=device.stopbits,
            timeout_s=kwargs.pop("timeout_s", TIMEOUT_S),  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )


async def _line(tmp_path: Path, baudrate: int) -> AsyncIterator[Line]:
    async with socat_pair(tmp_path) as (ctl, sim):
        config = mixed_site(
            load_site(SITE),
            ctl,
            ["charger_1", "charger_2"],
            baudrate=baudrate,
            timeout_s=0.2,
            cycle_period_s=1.0,
        )
        assert cross_check(config) == []
        plant = Plant(config)
        devices = build_devices(plant)
        line = RtuLine(
            sim,
            [devices["charger_1"], devices["charger_2"]],
            baudrate=baudrate,
            parity="N",
            stopbits=2,
        )
        await line.start()
        try:
            yield Line(plant, line, ctl, config)
        finally:
            await line.stop()


@pytest.fixture
async def fast(tmp_path: Path) -> AsyncIterator[Line]:
    async for line in _line(tmp_path, 115200):
        yield line


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[Line]:
    async for line in _line(tmp_path, 9600):
        yield line


def test_crc16_matches_the_specification_example() -> None:
    # Modbus over serial line V1.02, 6.2.2: 02 07 has CRC 0x1241, sent low byte first.
    assert crc16(bytes([0x02, 0x07])) == bytes([0x41, 0x12])


def test_rtu_bus_is_a_register_transport() -> None:
    def takes(transport: RegisterTransport) -> RegisterTransport:
        return transport

    bus = ModbusRtuBus("/dev/ttyUSB0", baudrate=9600, timeout_s=0.5)
    assert takes(bus) is bus
    assert bus.endpoint == "/dev/ttyUSB0"
    assert bus.gap_s == pytest.approx(3.5 * 11 / 9600)
    assert ModbusRtuBus("/dev/x", baudrate=115200, timeout_s=0.1).gap_s == 0.00175


async def test_reads_and_writes_several_units_on_one_line(fast: Line) -> None:
    bus = fast.bus()
    try:
        one, two = await asyncio.gather(
            bus.read(1, 0, CHG.READ_COUNT), bus.read(2, 0, CHG.READ_COUNT)
        )
        assert one[CHG.SOC] == 800 and two[CHG.SOC] == 800  # 80 % by default
        await bus.write(2, CHG.MIN_SOC, [355])
        await bus.write(1, CHG.POWER_SETPOINT, [0, 5000, 4000, 300])
        assert fast.plant.chargers["charger_2"].min_soc_pct == pytest.approx(35.5)
        assert fast.plant.chargers["charger_1"].min_soc_pct == pytest.approx(30.0)
        assert (await bus.read(2, CHG.MIN_SOC, 1)) == [355]
    finally:
        await bus.close()


async def test_one_request_at_a_time_with_the_gap_and_the_frame_time(slow: Line) -> None:
    bus = slow.bus(RecordingBus)
    assert isinstance(bus, RecordingBus)
    try:
        started = time.monotonic()
        await asyncio.gather(*(bus.read(unit, 0, CHG.READ_COUNT) for unit in (1, 2, 1, 2)))
        elapsed = time.monotonic() - started
    finally:
        await bus.close()
    exchange_s = rs485.frame_time_s(
        8 + rs485.read_response_bytes(CHG.READ_COUNT), 9600, parity="N", stopbits=2
    )
    # four exchanges, one after the other, each at least its frames' time at 9600 baud
    assert elapsed >= 4 * exchange_s
    assert len(bus.sent) == 4
    # each reply ends with the last byte received before the next request went out
    last_bytes = [max(t for t in bus.received if t < nxt) for nxt in bus.sent[1:]]
    for reply_end, next_request in zip(last_bytes, bus.sent[1:], strict=True):
        assert next_request - reply_end >= bus.gap_s * 0.95
    for request, reply_end in zip(bus.sent, [*last_bytes, max(bus.received)], strict=True):
        assert reply_end - request >= exchange_s * 0.95


async def test_silent_unit_times_out_and_the_line_goes_on(fast: Line) -> None:
    bus = fast.bus()
    try:
        fast.plant.silence("charger_2")
        started = time.monotonic()
        with pytest.raises(DeviceTimeout) as caught:
            await bus.read(2, 0, CHG.READ_COUNT)
        assert TIMEOUT_S * 0.9 <= time.monotonic() - started < TIMEOUT_S + 0.5
        assert f"{fast.port} unit 2" in str(caught.value)
        assert (await bus.read(1, 0, 1)) == [fast.plant.chargers["charger_1"].state]
        fast.plant.clear_fault("charger_2")
        assert len(await bus.read(2, 0, CHG.READ_COUNT)) == CHG.READ_COUNT
    finally:
        await bus.close()


async def test_unit_id_nobody_has_is_silent_on_the_line(fast: Line) -> None:
    """On RS-485 an absent slave does not answer (no exception from anyone)."""
    bus = fast.bus(timeout_s=0.1)
    try:
        with pytest.raises(DeviceTimeout):
            await bus.read(7, 0, CHG.READ_COUNT)
        assert (await bus.read(1, 0, CHG.READ_COUNT))[CHG.SOC] == 800
    finally:
        await bus.close()


async def test_exception_code_is_reported(fast: Line) -> None:
    bus = fast.bus()
    try:
        fast.plant.exception("charger_1", 6)
        with pytest.raises(DeviceExceptionResponse) as caught:
            await bus.read(1, 0, CHG.READ_COUNT)
        assert caught.value.code == 6 and caught.value.name == "DEVICE_BUSY"
        with pytest.raises(DeviceExceptionResponse):
            await bus.write(1, CHG.MIN_SOC, [300])
    finally:
        await bus.close()


@pytest.mark.parametrize(
    ("kind", "words"), [("corrupt", "CRC mismatch"), ("truncate", "truncated")]
)
async def test_garbled_frame_is_a_bad_frame_not_a_timeout(
    fast: Line, kind: str, words: str
) -> None:
    bus = fast.bus()
    try:
        getattr(fast.plant, kind)("charger_2")
        with pytest.raises(BadFrame) as caught:
            await bus.read(2, 0, CHG.READ_COUNT)
        assert words in str(caught.value)
        assert f"{fast.port} unit 2" in str(caught.value)
        # the next exchange on the line is clean
        assert len(await bus.read(1, 0, CHG.READ_COUNT)) == CHG.READ_COUNT
        fast.plant.clear_fault("charger_2")
        assert len(await bus.read(2, 0, CHG.READ_COUNT)) == CHG.READ_COUNT
    finally:
        await bus.close()


async def test_missing_port_backs_off_then_opens(tmp_path: Path) -> None:
    now = [100.0]
    path = tmp_path / "later.ctl"
    bus = ModbusRtuBus(
        str(path), baudrate=115200, parity="N", stopbits=2, timeout_s=0.2, clock=lambda: now[0]
    )
    with pytest.raises(DeviceUnreachable, match="cannot open the serial port"):
        await bus.read(1, 0, 1)
    with pytest.raises(DeviceUnreachable, match=r"next attempt in 0\.5 s"):
        await bus.read(1, 0, 1)
    async with socat_pair(tmp_path, "later") as (ctl, sim):
        assert ctl == str(path)
        config = mixed_site(load_site(SITE), ctl, ["charger_1"], timeout_s=0.2)
        plant = Plant(config)
        line = RtuLine(sim, [build_devices(plant)["charger_1"]], baudrate=115200)
        await line.start()
        try:
            now[0] += 0.6
            assert len(await bus.read(1, 0, CHG.READ_COUNT)) == CHG.READ_COUNT
        finally:
            await bus.close()
            await line.stop()


async def test_pool_builds_one_rtu_bus_per_serial_port(tmp_path: Path) -> None:
    config = mixed_site(load_site(SITE), "/dev/ttyRS485", ["charger_1", "charger_2", "pcc_breaker"])
    assert cross_check(config) == []
    pool = BusPool()
    drivers = {
        name: build_driver(name, config.devices[name], pool)
        for name in ("charger_1", "charger_2", "pcc_breaker", "grid_meter")
    }
    assert drivers["charger_1"].transport is drivers["charger_2"].transport
    assert drivers["charger_1"].transport is drivers["pcc_breaker"].transport
    assert isinstance(drivers["charger_1"].transport, ModbusRtuBus)
    assert drivers["charger_2"].endpoint == "/dev/ttyRS485 unit 2"
    assert drivers["grid_meter"].transport in pool.buses
    assert pool.serial_buses == (drivers["charger_1"].transport,)
    await pool.close_all()
