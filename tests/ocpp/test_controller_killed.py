"""The controller SIGKILLed mid-island with OCPP stations exporting, judged by the plant.

The controller is its own process (`tests.crash.runner`: the real service, its central
system on a free port); the Modbus field and the two OCPP 2.1 stations of the reference
site are simulated here. Mid-island the controller is killed: nothing tells the stations
to stop, so each must fall back to its Idle profile by itself once its Dynamic profile's
`maxOfflineDuration` has run out (the dead-man), with no back-feed and nothing else the
plant calls a violation. A new controller on the same store and the same port then
re-reads the field, the stations reconnect, and it gives them setpoints again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.server import SimSite
from resilience.config import parse_site
from resilience.model import BreakerPosition
from tests.sites import to_toml

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "config" / "site.toml"
PASSWORDS = tomllib.loads((REPO / "config" / "ocpp-demo-passwords.toml").read_text("utf-8"))
STATIONS = ("ocpp_1", "ocpp_2")
MAX_OFFLINE_S = 2

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def site_document(ocpp_port: int) -> dict[str, Any]:
    data = tomllib.loads(SITE.read_text(encoding="utf-8"))
    data["grid"]["return_to_service_s"] = 2.0
    data["dispatch"]["endurance_target_h"] = 0.0
    data["dispatch"]["endurance_targets_h"] = {}
    data["ocpp"] = {"port": ocpp_port, "max_offline_duration_s": MAX_OFFLINE_S}
    return data


class Controller:
    """One `tests.crash.runner` process; `url` is its central system's."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)


@asynccontextmanager
async def controller(
    tmp: Path, sim: SimSite, ocpp_port: int, name: str
) -> AsyncIterator[Controller]:
    site_file = tmp / f"{name}.toml"
    site_file.write_text(to_toml(site_document(ocpp_port)), encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.crash.runner", str(site_file), str(tmp / "site.sqlite"),
        json.dumps(sim.ports),
        cwd=str(REPO), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, "the controller exited before it started"
            message = json.loads(line)
            if "started" in message:
                break
        yield Controller(process, message["ocpp_url"])
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def until(predicate: Callable[[], bool], timeout_s: float, what: str, sim: SimSite) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s; {sim.plant.violations}")
        await asyncio.sleep(0.02)


async def test_sigkill_mid_island_stations_stop_by_themselves_and_a_restart_rereads_them(
    tmp_path: Path,
) -> None:
    config = parse_site(site_document(0))
    async with SimSite(config, bind_free_ports=True) as sim:
        plant = sim.plant
        plant.set_pv_available(0.0)  # night: the cars carry the island
        async with controller(tmp_path, sim, 0, "first") as first:
            await sim.start_stations(first.url, PASSWORDS)
            await until(
                lambda: all(s.booted for s in sim.stations.values()), 20, "stations booted", sim
            )
            await asyncio.sleep(1.0)  # a few cycles on the grid with the stations read
            plant.grid_loss()
            await until(
                lambda: plant.breaker_position is BreakerPosition.OPEN
                and plant.bus_live
                and all(plant.charger_power_w(s) > 500 for s in STATIONS),
                20,
                "island with both OCPP stations exporting",
                sim,
            )
            port = first.port
            first.kill()
            await first.process.wait()
            # nobody commands them now: each stops by itself past maxOfflineDuration
            await until(
                lambda: all(sim.stations[s].model.deadman_fallback_s is not None for s in STATIONS),
                MAX_OFFLINE_S + 5,
                "both stations at zero export",
                sim,
            )
            for s in STATIONS:
                fallback = sim.stations[s].model.deadman_fallback_s
                assert fallback is not None and fallback <= MAX_OFFLINE_S + 1.0, (s, fallback)
            assert not plant.grid_present and plant.breaker_position is BreakerPosition.OPEN
            assert plant.violations == []
        # A new controller, same store, same port: it re-reads the field (the island the
        # Modbus former still holds), the stations reconnect and are given setpoints again.
        async with controller(tmp_path, sim, port, "second") as second:
            assert second.port == port
            await until(
                lambda: all(plant.charger_power_w(s) > 500 for s in STATIONS),
                30,
                "both OCPP stations exporting for the new controller",
                sim,
            )
            assert plant.breaker_position is BreakerPosition.OPEN
            assert plant.violations == []
