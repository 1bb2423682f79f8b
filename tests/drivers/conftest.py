"""A fake unit served over real Modbus TCP, and the bus to reach it, for each driver test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from resilience.transport.modbus import ModbusTcpBus
from tests.modbus_fakes import FakeUnit, fake_server


@pytest.fixture
def unit() -> FakeUnit:
    return FakeUnit(unit_id=1)


@pytest.fixture
async def bus(unit: FakeUnit) -> AsyncIterator[ModbusTcpBus]:
    async with fake_server(unit) as port:
        bus = ModbusTcpBus("127.0.0.1", port, timeout_s=1.0)
        try:
            yield bus
        finally:
            await bus.close()
