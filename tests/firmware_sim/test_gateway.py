"""Several simulated devices behind one Modbus TCP port, as behind an RS-485-to-TCP gateway.

`SimSite` serves the devices that share a host:port in the site file from one
server, each unit id answered by its own device with its own faults; a unit id
no device has gets exception 0x0B (gateway target failed to respond). Read with
the project's own transport (one `ModbusTcpBus` for the gateway, as the
controller has) and with a stock Modbus master (mbpoll).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware_sim.server import SimSite
from resilience.config import load_site
from resilience.drivers.load_panel import LoadPanel as PanelDriver
from resilience.drivers.registers import SUNSPEC_BASE, SUNSPEC_MARKER, LoadPanel
from resilience.drivers.registry import build_driver
from resilience.drivers.sunspec_meter import SunSpecMeter as MeterDriver
from resilience.transport.errors import BadFrame, DeviceExceptionResponse, DeviceTimeout
from resilience.transport.modbus import BusPool
from tests.gateway_site import GATEWAY_UNITS, gateway_site, gateway_toml

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

GATEWAY = tuple(GATEWAY_UNITS)  # panel_main (unit 1), panel_v2l (2), grid_meter (3)


@pytest.fixture
async def sim() -> AsyncIterator[SimSite]:
    async with SimSite(gateway_site(), bind_free_ports=True, tick_s=None) as site:
        yield site


@pytest.fixture
async def pool() -> AsyncIterator[BusPool]:
    pool = BusPool()
    yield pool
    await pool.close_all()


def gateway_port(sim: SimSite) -> int:
    return sim.ports["panel_main"]


async def test_devices_behind_one_gateway_share_one_free_port(sim: SimSite) -> None:
    ports = {name: sim.ports[name] for name in GATEWAY}
    assert len(set(ports.values())) == 1
    others = {p for name, p in sim.ports.items() if name not in GATEWAY}
    assert len(others) == len(sim.config.devices) - len(GATEWAY)
    assert gateway_port(sim) not in others
    assert len(sim.servers) == len(others) + 1
    assert sorted(sim.servers["127.0.0.1:15022"].devices) == [1, 2, 3]
    moved = sim.controller_config()
    assert {moved.devices[name].endpoint for name in GATEWAY} == {
        f"127.0.0.1:{gateway_port(sim)}"
    }
    assert {name: moved.devices[name].unit_id for name in GATEWAY} == GATEWAY_UNITS


async def test_each_unit_reads_through_the_project_transport(sim: SimSite, pool: BusPool) -> None:
    config = sim.controller_config()
    drivers = {  # a generous timeout: this is about routing, not timing, on a busy machine
        name: build_driver(name, config.devices[name].model_copy(update={"timeout_s": 2.0}), pool)
        for name in GATEWAY
    }
    assert len(pool.buses) == 1  # one connection for the gateway, as the controller has
    main, v2l, meter = drivers["panel_main"], drivers["panel_v2l"], drivers["grid_meter"]
    assert isinstance(main, PanelDriver)
    assert isinstance(v2l, PanelDriver)
    assert isinstance(meter, MeterDriver)
    plant = sim.plant
    await main.set_relays((False,) + (True,) * 15)  # unit 1: emergency lighting off
    assert not plant.load_on("emergency_lighting")
    assert plant.load_on("field_clinic_fridge")  # channel 0 of unit 2 untouched
    readings = {"panel_main": await main.read(), "panel_v2l": await v2l.read()}
    assert readings["panel_main"].relay_command[0] is False
    assert readings["panel_v2l"].relay_command[0] is True
    for load in sim.config.loads:
        reading = readings[load.panel]
        assert reading.channel_power_w[load.channel] == round(plant.load_power_w(load.id))
    grid = await meter.read()
    assert grid.frequency_hz == 50.0
    assert grid.voltage_v == 400.0


async def test_unknown_unit_gets_gateway_target_failed(sim: SimSite, pool: BusPool) -> None:
    bus = pool.get("127.0.0.1", gateway_port(sim), 0.5)
    with pytest.raises(DeviceExceptionResponse) as caught:
        await bus.read(9, SUNSPEC_BASE, 2)
    assert caught.value.code == 0x0B
    assert tuple(await bus.read(3, SUNSPEC_BASE, 2)) == SUNSPEC_MARKER  # the meter, unit 3


async def test_a_silenced_unit_times_out_while_the_others_answer(
    sim: SimSite, pool: BusPool
) -> None:
    bus = pool.get("127.0.0.1", gateway_port(sim), 0.2)
    sim.plant.silence("panel_v2l")
    for _ in range(3):  # the same connection, again and again
        with pytest.raises(DeviceTimeout):
            await bus.read(2, LoadPanel.RELAY_COMMAND, LoadPanel.READ_COUNT)
        assert len(await bus.read(1, LoadPanel.RELAY_COMMAND, LoadPanel.READ_COUNT)) == (
            LoadPanel.READ_COUNT
        )
        assert tuple(await bus.read(3, SUNSPEC_BASE, 2)) == SUNSPEC_MARKER
    sim.plant.clear_fault("panel_v2l")
    assert len(await bus.read(2, LoadPanel.RELAY_COMMAND, LoadPanel.READ_COUNT)) == (
        LoadPanel.READ_COUNT
    )


async def test_exception_and_short_frame_faults_stay_with_their_unit(
    sim: SimSite, pool: BusPool
) -> None:
    bus = pool.get("127.0.0.1", gateway_port(sim), 0.5)
    sim.plant.exception("grid_meter", 4)
    sim.plant.truncate("panel_main")
    with pytest.raises(DeviceExceptionResponse) as caught:
        await bus.read(3, SUNSPEC_BASE, 2)
    assert caught.value.code == 4
    with pytest.raises(BadFrame):
        await bus.read(1, LoadPanel.RELAY_COMMAND, LoadPanel.READ_COUNT)
    assert len(await bus.read(2, LoadPanel.RELAY_COMMAND, 4)) == 4  # panel_v2l unharmed
    await bus.write(2, LoadPanel.RELAY_COMMAND, [0])
    sim.plant.clear_fault("grid_meter")
    sim.plant.clear_fault("panel_main")
    assert tuple(await bus.read(3, SUNSPEC_BASE, 2)) == SUNSPEC_MARKER
    assert len(await bus.read(1, LoadPanel.RELAY_COMMAND, 4)) == 4
    load = next(ld for ld in sim.config.loads if ld.panel == "panel_v2l" and ld.channel == 0)
    assert not sim.plant.load_on(load.id)  # the write reached unit 2's relay


# ---------------------------------------------------------------- a stock Modbus master

needs_mbpoll = pytest.mark.skipif(
    shutil.which("mbpoll") is None,
    reason="mbpoll is not installed (apt-get install mbpoll; `make test` installs it)",
)


async def mbpoll(
    port: int, unit: int, address: int, *, count: int = 1, write: int | None = None,
    timeout_s: float = 1.0,
) -> tuple[int, str]:
    """One mbpoll run (zero-based references, holding registers, one poll): read `count`
    registers from `address` of `unit`, or write `write` there. Exit code and output."""
    proc = await asyncio.create_subprocess_exec(
        "mbpoll", "-0", "-1", "-t", "4", "-o", f"{timeout_s:g}", "-p", str(port),
        "-a", str(unit), "-r", str(address),
        *(["-c", str(count), "127.0.0.1"] if write is None else ["127.0.0.1", str(write)]),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=10)
    return proc.returncode or 0, out.decode() + err.decode()


def registers(output: str) -> dict[int, int]:
    return {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", output, re.M)}


@needs_mbpoll
async def test_mbpoll_reads_and_writes_each_unit_behind_the_gateway(sim: SimSite) -> None:
    port = gateway_port(sim)
    code, out = await mbpoll(port, 3, SUNSPEC_BASE, count=2)
    assert code == 0, out
    assert tuple(registers(out).values()) == SUNSPEC_MARKER
    code, out = await mbpoll(port, 2, LoadPanel.RELAY_COMMAND, write=0)  # panel_v2l channel 0
    assert code == 0, out
    assert not sim.plant.load_on("field_clinic_fridge")
    assert sim.plant.load_on("emergency_lighting")  # channel 0 of unit 1
    for unit, relay in ((1, 1), (2, 0)):
        code, out = await mbpoll(port, unit, LoadPanel.RELAY_COMMAND)
        assert code == 0, out
        assert registers(out) == {LoadPanel.RELAY_COMMAND: relay}
    code, out = await mbpoll(port, 1, LoadPanel.CHANNEL_POWER)
    assert code == 0, out
    assert registers(out) == {LoadPanel.CHANNEL_POWER: 800}  # emergency lighting


@needs_mbpoll
async def test_mbpoll_unknown_unit_and_silenced_unit(sim: SimSite) -> None:
    port = gateway_port(sim)
    code, out = await mbpoll(port, 9, SUNSPEC_BASE, count=2)
    assert code != 0
    assert "target device failed to respond" in out.lower(), out
    sim.plant.silence("panel_main")
    code, out = await mbpoll(port, 1, LoadPanel.CHANNEL_POWER, timeout_s=0.2)
    assert code != 0
    assert "timed out" in out.lower(), out
    code, out = await mbpoll(port, 2, LoadPanel.CHANNEL_POWER)
    assert code == 0, out


# ---------------------------------------------------------------- python -m firmware_sim


async def test_firmware_sim_process_serves_the_gateway_on_one_port(tmp_path: Path) -> None:
    site_file = tmp_path / "gateway-site.toml"
    site_file.write_text(gateway_toml(), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim", "--config", str(site_file),
        "--free-ports", "--control-port", "0",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("control "):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
            assert line, "firmware_sim exited early"
            lines.append(line.decode().strip())
        devices = {fields[0]: fields for fields in (ln.split() for ln in lines[:-1])}
        site = load_site(REPO / "config" / "site.toml")
        assert set(devices) == {n for n, d in site.devices.items() if d.transport != "ocpp"}
        assert len({devices[name][2] for name in GATEWAY}) == 1  # one host:port
        assert {name: devices[name][3:] for name in GATEWAY} == {
            name: ["unit", str(unit)] for name, unit in GATEWAY_UNITS.items()
        }
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), timeout=10)
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
