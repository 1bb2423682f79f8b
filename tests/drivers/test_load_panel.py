"""LoadPanel: the configured channels' relays and metering."""

from __future__ import annotations

import pytest

from resilience.config import Device
from resilience.drivers.load_panel import LoadPanel
from resilience.transport.errors import BadReply
from resilience.transport.modbus import ModbusTcpBus
from tests.drivers import banks
from tests.drivers.banks import PNL
from tests.modbus_fakes import FakeUnit


async def test_reports_only_the_configured_channels(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.panel(unit)
    reading = await LoadPanel(bus, 1, name="panel_v2l", channels=8).read()
    assert reading.relay_command == (True, False, True, False, True, True, True, False)
    assert reading.relay_feedback == (True, False, True, False, True, False, True, False)
    assert reading.channel_power_w == (100.0, 0.0, 300.0, 0.0, 500.0, 0.0, 700.0, 0.0)
    assert reading.supply_voltage_v == 230.1
    assert reading.operations == 77
    assert [(r.address, r.count) for r in unit.requests] == [(0, LoadPanel.READ_COUNT)]


async def test_relay_state_other_than_0_or_1_is_refused(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.panel(unit)
    unit.load(PNL.RELAY_FEEDBACK + 3, [2])
    with pytest.raises(BadReply, match=r"RELAY_FEEDBACK\[3\] at 19: 2 is neither 0 nor 1"):
        await LoadPanel(bus, 1, name="panel_main").read()


async def test_unconfigured_channels_are_not_checked(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.panel(unit)
    unit.load(PNL.RELAY_FEEDBACK + 12, [9])
    assert len((await LoadPanel(bus, 1, name="panel_v2l", channels=8).read()).relay_feedback) == 8


async def test_channel_power_beyond_twice_the_panel_rating_is_refused(
    unit: FakeUnit, bus: ModbusTcpBus
) -> None:
    banks.panel(unit)
    unit.load(PNL.CHANNEL_POWER + 2, [50000])
    panel = LoadPanel(bus, 1, name="panel_main", rating_w=20_000.0)
    with pytest.raises(BadReply, match=r"CHANNEL_POWER\[2\] at 34: 50000 W"):
        await panel.read()


async def test_set_relays_writes_every_channel_in_one_request(
    unit: FakeUnit, bus: ModbusTcpBus
) -> None:
    panel = LoadPanel(bus, 1, name="panel_v2l", channels=8)
    await panel.set_relays((True, True, False, False, True, False, False, True))
    assert [(r.function_code, r.address, r.values) for r in unit.requests] == [
        (16, PNL.RELAY_COMMAND, (1, 1, 0, 0, 1, 0, 0, 1)),
    ]


async def test_set_relays_needs_one_state_per_channel(bus: ModbusTcpBus) -> None:
    with pytest.raises(ValueError, match="3 relay states for a panel of 8 channels"):
        await LoadPanel(bus, 1, name="panel_v2l", channels=8).set_relays((True, False, True))


def test_from_config_takes_the_channel_count() -> None:
    device = Device(driver="load_panel", port=15023, channels=8, unit_id=2)
    panel = LoadPanel.from_config("panel_v2l", device, ModbusTcpBus("h", 1, timeout_s=1))
    assert (panel.channels, panel.unit_id) == (8, 2)
    with pytest.raises(ValueError, match="17 channels"):
        LoadPanel(ModbusTcpBus("h", 1, timeout_s=1), 1, name="x", channels=17)
