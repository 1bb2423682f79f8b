"""The V2L line-protocol meter: codec, SerialLine and V2LSerialDriver against firmware_sim's
simulated meter over a socat pty pair."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_sim.devices import build_devices
from firmware_sim.plant import Plant
from firmware_sim.serial_line import V2LLineMeter
from resilience.config import SiteConfig, cross_check, load_site
from resilience.drivers import v2l_line
from resilience.drivers.registry import build_driver
from resilience.drivers.v2l_serial import V2LSerialDriver
from resilience.model import V2LState
from resilience.transport.errors import (
    BadFrame,
    BadReply,
    DeviceExceptionResponse,
    DeviceTimeout,
    DeviceUnreachable,
)
from resilience.transport.modbus import BusPool
from resilience.transport.serial import SerialLine
from tests.serial_lines import mixed_site, socat_pair

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
TIMEOUT_S = 0.3


# ---------------------------------------------------------------------------- the codec
def test_checksum_is_the_xor_of_the_payload() -> None:
    assert v2l_line.checksum(b"OK") == ord("O") ^ ord("K")
    assert v2l_line.frame("OK") == b"OK*04\r\n"
    assert v2l_line.unframe(b"OK*04\r\n") == "OK"


def test_reading_round_trips() -> None:
    raw = [2, 642, 1850, 3600, 2304, 200, 5800, 1]
    line = v2l_line.format_reading(raw)
    assert line.startswith(b"V2L,2,642,1850,3600,2304,200,5800,1*")
    assert v2l_line.parse_reading(v2l_line.unframe(line)) == raw


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"OK*05\r\n", "checksum mismatch"),
        (b"OK*04", "no CR LF"),
        (b"OK\r\n", r"no \*XX checksum"),
        (b"OK*4\r\n", r"no \*XX checksum"),
        (b"OK*ZZ\r\n", "not two hex digits"),
    ],
)
def test_unsound_frames_are_frame_errors(line: bytes, words: str) -> None:
    with pytest.raises(v2l_line.LineFrameError, match=words):
        v2l_line.unframe(line)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ("V2L,2,642,1850", "3 fields"),
        ("V2L,2,642,1850,3600,2304,200,5800,1,7", "9 fields"),
        ("V2L,2,-642,1850,3600,2304,200,5800,1", "field soc_x10"),
        ("V2L,2,642,1850,3600,99999,200,5800,1", "field volt_x10"),
        ("HELLO,1", "expected a V2L reading"),
    ],
)
def test_impossible_readings_are_reply_errors(payload: str, words: str) -> None:
    with pytest.raises(v2l_line.LineReplyError, match=words):
        v2l_line.parse_reading(payload)


# ---------------------------------------------------------------------------- over a pty
@dataclass
class Meter:
    plant: Plant
    meter: V2LLineMeter
    port: str
    config: SiteConfig

    def driver(self) -> V2LSerialDriver:
        device = self.config.devices["v2l_1"]
        line = SerialLine(
            self.port, baudrate=device.baudrate, parity="N", stopbits=1, timeout_s=TIMEOUT_S
        )
        return V2LSerialDriver.on_line(line, name="v2l_1", rating_w=device.rating_w)


@pytest.fixture
async def meter(tmp_path: Path) -> AsyncIterator[Meter]:
    async with socat_pair(tmp_path, "v2l") as (ctl, sim):
        config = mixed_site(
            load_site(SITE), "/dev/unused", [], serial={"v2l_1": ctl}, cycle_period_s=1.0
        )
        assert cross_check(config) == []
        assert config.devices["v2l_1"].transport == "serial"
        plant = Plant(config)
        device = build_devices(plant)["v2l_1"]
        meter = V2LLineMeter(sim, device, baudrate=config.devices["v2l_1"].baudrate)
        await meter.start()
        try:
            yield Meter(plant, meter, ctl, config)
        finally:
            await meter.stop()


async def test_reads_the_outlet_as_the_modbus_adapter_would(meter: Meter) -> None:
    driver = meter.driver()
    try:
        reading = await driver.read()
        vehicle = meter.plant.outlets["v2l_1"].vehicle
        assert vehicle is not None
        assert reading.state is V2LState.OFF
        assert reading.soc_pct == pytest.approx(vehicle.soc_pct, abs=0.05)
        assert reading.capacity_wh == pytest.approx(vehicle.capacity_wh, abs=10)
        assert reading.rating_w == meter.plant.outlets["v2l_1"].rating_w
        assert not reading.enabled
        await driver.enable(True)
        assert meter.plant.outlets["v2l_1"].enabled
        assert (await driver.read()).state is V2LState.SUPPLYING
        await driver.enable(False)
        assert not meter.plant.outlets["v2l_1"].enabled
    finally:
        await driver.transport.close()


async def test_silent_meter_times_out(meter: Meter) -> None:
    driver = meter.driver()
    try:
        meter.plant.silence("v2l_1")
        started = time.monotonic()
        with pytest.raises(DeviceTimeout, match="no answer within"):
            await driver.read()
        assert TIMEOUT_S * 0.9 <= time.monotonic() - started < TIMEOUT_S + 0.5
        meter.plant.clear_fault("v2l_1")
        assert (await driver.read()).rating_w > 0
    finally:
        await driver.transport.close()


async def test_error_reply_is_an_exception_response(meter: Meter) -> None:
    driver = meter.driver()
    try:
        meter.plant.exception("v2l_1", 4)
        with pytest.raises(DeviceExceptionResponse) as caught:
            await driver.read()
        assert caught.value.code == 4 and "DEVICE_FAILURE" in str(caught.value)
        with pytest.raises(DeviceExceptionResponse):
            await driver.enable(True)
    finally:
        await driver.transport.close()


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("corrupt", BadFrame, "checksum mismatch"),
        ("truncate", BadFrame, "truncated reply"),
        ("garbage", BadReply, "register (STATE|SOC)"),  # a sound line, impossible values
    ],
)
async def test_bad_lines_are_refused(
    meter: Meter, kind: str, error: type[Exception], words: str
) -> None:
    driver = meter.driver()
    try:
        getattr(meter.plant, kind)("v2l_1")
        with pytest.raises(error, match=words) as caught:
            await driver.read()
        assert meter.port in str(caught.value)
        meter.plant.clear_fault("v2l_1")
        assert (await driver.read()).rating_w > 0
    finally:
        await driver.transport.close()


async def test_missing_port_is_unreachable_and_backs_off(tmp_path: Path) -> None:
    now = [0.0]
    line = SerialLine(str(tmp_path / "nothing"), timeout_s=0.1, clock=lambda: now[0])
    driver = V2LSerialDriver.on_line(line, name="v2l_1", rating_w=3600.0)
    with pytest.raises(DeviceUnreachable, match="cannot open the serial port"):
        await driver.read()
    with pytest.raises(DeviceUnreachable, match=r"next in 0\.5 s"):
        await driver.read()


async def test_registry_builds_it_from_the_site_file() -> None:
    config = mixed_site(load_site(SITE), "/dev/unused", [], serial={"v2l_2": "/dev/ttyV2L"})
    pool = BusPool()
    driver = build_driver("v2l_2", config.devices["v2l_2"], pool)
    assert isinstance(driver, V2LSerialDriver)
    assert driver.endpoint == "/dev/ttyV2L unit 1"
    assert [repr(b) for b in pool.serial_buses] == [
        "SerialLine(/dev/ttyV2L, 115200 8N1, timeout_s=0.027)"  # its family's 20 ms + frames
    ]
    await pool.close_all()
