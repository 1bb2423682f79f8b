"""Serial lines for tests: two linked pseudo-terminals made by socat, started and stopped here.

`socat_pair(directory, name)` yields ``(controller_end, sim_end)``: what one side
writes, the other reads, like the two ends of an RS-485 line. A pty ignores the
baud rate; the simulated devices add each frame's transmission time themselves.
`mixed_site(...)` is the reference site with some devices moved onto serial lines.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from resilience.config import Device, SiteConfig

SOCAT = shutil.which("socat")
needs_socat = pytest.mark.skipif(
    SOCAT is None, reason="socat is not installed (make test installs it: apt-get install socat)"
)


@asynccontextmanager
async def socat_pair(directory: Path, name: str = "line") -> AsyncIterator[tuple[str, str]]:
    """Two linked ptys ``directory/<name>.ctl`` and ``directory/<name>.sim``."""
    if SOCAT is None:
        pytest.skip("socat is not installed")
    ctl, sim = directory / f"{name}.ctl", directory / f"{name}.sim"
    process = await asyncio.create_subprocess_exec(
        SOCAT,
        "-d",
        "-d",
        f"pty,raw,echo=0,link={ctl}",
        f"pty,raw,echo=0,link={sim}",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while not (ctl.exists() and sim.exists()):
            if process.returncode is not None or loop.time() > deadline:
                raise RuntimeError(f"socat did not create {ctl} and {sim}")
            await asyncio.sleep(0.01)
        yield str(ctl), str(sim)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5.0)
            except TimeoutError:
                process.kill()
                await process.wait()


def mixed_site(
    config: SiteConfig,
    rtu_port: str,
    rtu_devices: Iterable[str],
    *,
    baudrate: int = 115200,
    timeout_s: float | None = None,
    cycle_period_s: float = 0.1,
    serial: dict[str, str] | None = None,
) -> SiteConfig:
    """`config` with `rtu_devices` on one Modbus RTU line at `rtu_port` (unit ids 1, 2, ...),
    and each device of `serial` (device -> serial port) turned into a line-protocol V2L meter.
    Each gets `timeout_s`, by default the least its family can meet on that line
    (`Device.least_timeout_s`: the family's figure plus the frames)."""
    devices = dict(config.devices)

    def timed(device: Device) -> Device:
        least = math.ceil(device.least_timeout_s * 1000 - 1e-6) / 1000
        return device.model_copy(update={"timeout_s": least if timeout_s is None else timeout_s})

    for unit, name in enumerate(rtu_devices, start=1):
        devices[name] = devices[name].model_copy(
            update={
                "transport": "rtu",
                "port": 0,
                "serial_port": rtu_port,
                "unit_id": unit,
                "baudrate": baudrate,
                "parity": "N",  # a pty refuses parity; 8N2 is 11 bits a character, as 8E1
                "stopbits": 2,
            }
        )
        devices[name] = timed(devices[name])
    for name, port in (serial or {}).items():
        devices[name] = devices[name].model_copy(
            update={
                "driver": "v2l_serial",
                "transport": "serial",
                "port": 0,
                "serial_port": port,
                "baudrate": baudrate,
                "parity": "N",
                "stopbits": 1,
            }
        )
        devices[name] = timed(devices[name])
    site = config.site.model_copy(update={"cycle_period_s": cycle_period_s})
    # a slow line's slow cycle slips the island slowly: give resynchronisation a sweep
    sync = config.sync.model_copy(update={"timeout_s": max(config.sync.timeout_s, 300.0)})
    return config.model_copy(update={"devices": devices, "site": site, "sync": sync})
