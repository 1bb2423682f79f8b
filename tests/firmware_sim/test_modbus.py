"""The simulated devices over real Modbus TCP on loopback, with pymodbus as the client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from firmware_sim.server import SimSite, require_loopback
from resilience.config import SiteConfig
from resilience.drivers.registers import (
    SUNSPEC_BASE,
    SUNSPEC_MARKER,
    BidirectionalCharger,
    LoadPanel,
    PccBreaker,
    SunSpecMeter,
    to_signed16,
)
from resilience.model import BreakerPosition, ChargerMode, ChargerState

pytestmark = pytest.mark.integration

ClientFor = Callable[[str], Awaitable[AsyncModbusTcpClient]]


@pytest.fixture
async def site(site_config: SiteConfig) -> AsyncIterator[SimSite]:
    async with SimSite(site_config, bind_free_ports=True, tick_s=None) as sim:
        yield sim


@pytest.fixture
async def client_for(site: SimSite) -> AsyncIterator[ClientFor]:
    clients: list[AsyncModbusTcpClient] = []

    async def connect(device_id: str) -> AsyncModbusTcpClient:
        client = AsyncModbusTcpClient(
            "127.0.0.1", port=site.ports[device_id], timeout=0.2, retries=0
        )
        assert await client.connect()
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


async def test_every_device_gets_its_own_free_port(site: SimSite) -> None:
    modbus = [d for d in site.config.devices.values() if d.transport != "ocpp"]
    assert len(set(site.ports.values())) == len(modbus)  # OCPP stations connect to us
    moved = site.controller_config()
    assert all(moved.devices[d].port == p for d, p in site.ports.items())


async def test_read_sunspec_marker_and_meter_values(site: SimSite, client_for: ClientFor) -> None:
    meter = await client_for("grid_meter")
    head = await meter.read_holding_registers(SUNSPEC_BASE, count=4, device_id=1)
    assert tuple(head.registers[:2]) == SUNSPEC_MARKER
    assert head.registers[2:] == [1, 66]
    model = await meter.read_holding_registers(SunSpecMeter.ID_ADDR, count=2, device_id=1)
    assert model.registers == [203, 105]
    rsp = await meter.read_holding_registers(
        SunSpecMeter.DATA, count=SunSpecMeter.READ_COUNT, device_id=1
    )
    data = rsp.registers
    m = SunSpecMeter
    assert data[m.PPV] * 10.0 ** to_signed16(data[m.V_SF]) == pytest.approx(400.0)
    assert data[m.HZ] * 10.0 ** to_signed16(data[m.HZ_SF]) == pytest.approx(50.0)
    watts = to_signed16(data[m.W]) * 10.0 ** to_signed16(data[m.W_SF])
    assert watts == pytest.approx(site.plant.meter_power_w, abs=10)


async def test_write_charger_mode_and_setpoint_and_the_plant_follows(
    site: SimSite, client_for: ClientFor
) -> None:
    charger = await client_for("charger_3")
    m = BidirectionalCharger
    rsp = await charger.write_registers(
        m.MODE_COMMAND, [int(ChargerMode.FOLLOW), 6000], device_id=1
    )
    assert not rsp.isError()
    assert site.plant.charger_power_w("charger_3") == 6000
    site.plant.step(3600)
    block = (await charger.read_holding_registers(0, count=m.READ_COUNT, device_id=1)).registers
    assert block[m.STATE] == ChargerState.DISCHARGING
    assert to_signed16(block[m.POWER]) == 6000
    assert block[m.SOC] == round((80 - 6000 / 77400 * 100) * 10)


async def test_breaker_operates_over_modbus(site: SimSite, client_for: ClientFor) -> None:
    breaker = await client_for("pcc_breaker")
    assert not (await breaker.write_register(PccBreaker.COMMAND, 1, device_id=1)).isError()
    site.plant.step(0.1)
    rsp = await breaker.read_holding_registers(0, count=PccBreaker.READ_COUNT, device_id=1)
    assert rsp.registers[PccBreaker.POSITION] == BreakerPosition.OPEN


async def test_read_only_write_is_rejected_with_an_exception_response(
    site: SimSite, client_for: ClientFor
) -> None:
    panel = await client_for("panel_main")
    rsp = await panel.write_register(LoadPanel.RELAY_FEEDBACK, 0, device_id=1)
    assert rsp.isError()
    assert rsp.exception_code == 2  # ILLEGAL_ADDRESS
    rsp = await panel.write_register(LoadPanel.RELAY_COMMAND, 5, device_id=1)
    assert rsp.exception_code == 3  # ILLEGAL_VALUE
    assert site.plant.load_on("emergency_lighting")


async def test_read_beyond_the_map_is_illegal_address(client_for: ClientFor) -> None:
    charger = await client_for("charger_1")
    rsp = await charger.read_holding_registers(0, count=BidirectionalCharger.READ_COUNT + 1)
    assert rsp.exception_code == 2


async def test_coils_are_not_served(client_for: ClientFor) -> None:
    panel = await client_for("panel_main")
    rsp = await panel.read_coils(0, count=1, device_id=1)
    assert rsp.isError()


async def test_silenced_device_times_out_then_answers_after_clear(
    site: SimSite, client_for: ClientFor
) -> None:
    meter = await client_for("grid_meter")
    site.plant.silence("grid_meter")
    started = time.monotonic()
    with pytest.raises(ModbusIOException):
        await meter.read_holding_registers(SUNSPEC_BASE, count=2, device_id=1)
    assert time.monotonic() - started >= 0.15
    site.plant.clear_fault("grid_meter")
    fresh = await client_for("grid_meter")
    rsp = await fresh.read_holding_registers(SUNSPEC_BASE, count=2, device_id=1)
    assert tuple(rsp.registers) == SUNSPEC_MARKER


async def test_stop_does_not_hang_on_a_silenced_request(site_config: SiteConfig) -> None:
    sim = SimSite(site_config, bind_free_ports=True, tick_s=None)
    await sim.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.ports["pv"], timeout=5.0, retries=0)
    await client.connect()
    sim.plant.silence("pv")
    pending = asyncio.ensure_future(client.read_holding_registers(SUNSPEC_BASE, count=2))
    await asyncio.sleep(0)  # let the request leave
    await asyncio.wait_for(sim.stop(), timeout=2.0)
    assert not pending.done()  # the request was never answered
    pending.cancel()
    client.close()


async def test_exception_injection_answers_with_that_code(
    site: SimSite, client_for: ClientFor
) -> None:
    breaker = await client_for("pcc_breaker")
    site.plant.exception("pcc_breaker", 4)
    rsp = await breaker.read_holding_registers(0, count=PccBreaker.READ_COUNT, device_id=1)
    assert rsp.exception_code == 4  # DEVICE_FAILURE
    site.plant.clear_fault("pcc_breaker")
    rsp = await breaker.read_holding_registers(0, count=PccBreaker.READ_COUNT, device_id=1)
    assert not rsp.isError()


async def test_the_ticker_moves_plant_time_in_real_time(site_config: SiteConfig) -> None:
    async with SimSite(site_config, bind_free_ports=True, tick_s=0.005) as sim:
        started = time.monotonic()
        while sim.plant.time_s < 0.05:
            assert time.monotonic() - started < 5.0
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - started
    assert sim.plant.time_s <= elapsed + 0.05


def test_only_loopback_addresses_are_served() -> None:
    assert require_loopback("localhost") == "127.0.0.1"
    assert require_loopback("127.0.0.2") == "127.0.0.2"
    with pytest.raises(ValueError, match="loopback"):
        require_loopback("0.0.0.0")
