"""A stock Modbus master (Debian's mbpoll) talks to the simulated devices: standard Modbus TCP."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator

import pytest

from firmware_sim.server import SimSite
from resilience.config import SiteConfig
from resilience.drivers.registers import SUNSPEC_BASE, SUNSPEC_MARKER, LoadPanel, SunSpecMeter

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("mbpoll") is None,
        reason="mbpoll is not installed (apt-get install mbpoll; `make test` installs it)",
    ),
]


@pytest.fixture
async def site(site_config: SiteConfig) -> AsyncIterator[SimSite]:
    async with SimSite(site_config, bind_free_ports=True, tick_s=None) as sim:
        yield sim


async def mbpoll(port: int, *args: str) -> str:
    """One mbpoll run (zero-based references, holding registers, one poll), its stdout."""
    proc = await asyncio.create_subprocess_exec(
        "mbpoll", "-0", "-1", "-t", "4", "-o", "2", "-p", str(port), "-a", "1", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 0, err.decode() + out.decode()
    return out.decode()


def registers(output: str) -> dict[int, int]:
    return {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", output, re.M)}


async def test_mbpoll_reads_the_meter_sunspec_block(site: SimSite) -> None:
    port = site.ports["grid_meter"]
    head = registers(await mbpoll(port, "-r", str(SUNSPEC_BASE), "-c", "4", "127.0.0.1"))
    assert (head[SUNSPEC_BASE], head[SUNSPEC_BASE + 1]) == SUNSPEC_MARKER
    assert head[SUNSPEC_BASE + 2] == 1
    data = SunSpecMeter.DATA
    values = registers(await mbpoll(port, "-r", str(data), "-c", "21", "127.0.0.1"))
    assert values[SunSpecMeter.ID_ADDR + 2 + SunSpecMeter.HZ] == 5000  # 50.00 Hz, HZ_SF -2
    assert values[data + SunSpecMeter.PPV] == 4000  # 400.0 V, V_SF -1


async def test_mbpoll_writes_a_load_relay(site: SimSite) -> None:
    channel = site.plant.loads["hvac"].spec.channel
    address = LoadPanel.RELAY_COMMAND + channel
    out = await mbpoll(site.ports["panel_main"], "-r", str(address), "127.0.0.1", "0")
    assert "Written 1 references" in out
    assert not site.plant.load_on("hvac")
    assert site.plant.load_power_w("hvac") == 0
