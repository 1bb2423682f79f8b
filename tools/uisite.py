"""The simulated site with the real controller and the API+UI, for the browser tests and tools.

`ui_site()` starts firmware_sim's `SimSite` on free loopback ports, the real
controller (`service.start`) on a store in `store_dir`, the app with uvicorn on
127.0.0.1 port 0, and one token per role; everything stops when the block
ends. `browser()` launches Debian's headless chromium through Playwright's
async API (never `playwright install`: the browser comes from apt).
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_sim.plant import PlantInit
from firmware_sim.server import SimSite
from resilience.api import ApiServer, create_app
from resilience.auth import ROLES, TokenStore
from resilience.config import SiteConfig, load_site
from resilience.model import Mode
from resilience.service import Running, quiet_pymodbus, start, stop_running

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "config" / "site.toml"
OCPP_PASSWORDS: dict[str, str] = tomllib.loads(
    (ROOT / "config" / "ocpp-demo-passwords.toml").read_text(encoding="utf-8")
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CYCLE_S = 0.05
TABLET = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def site_config(ratings: dict[str, float] | None = None) -> SiteConfig:
    config = load_site(SITE)
    # A browser shares the machine's two cores: a slower cycle with longer read timeouts keeps
    # a rendering burst from looking like a silent field (the tests are not about timing).
    devices = {
        name: device.model_copy(update={"timeout_s": CYCLE_S * 0.8})
        for name, device in config.devices.items()
    }
    config = config.model_copy(
        update={
            "site": config.site.model_copy(update={"cycle_period_s": CYCLE_S}),
            "grid": config.grid.model_copy(update={"return_to_service_s": 2.0}),
            "devices": devices,
        }
    )
    if ratings:
        loads = [
            load.model_copy(update={"rated_power_w": ratings.get(load.id, load.rated_power_w)})
            for load in config.loads
        ]
        config = config.model_copy(update={"loads": loads})
    return config


@dataclass
class UiSite:
    sim: SimSite
    running: Running
    server: ApiServer
    tokens: dict[str, str]
    changed: asyncio.Event

    @property
    def url(self) -> str:
        return self.server.url

    def mode(self) -> Mode | None:
        status = self.running.controller.status
        return status.mode if status is not None else None

    async def until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait, cycle by cycle, until `predicate` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=remaining)
            except TimeoutError:
                continue

    async def reach(self, mode: Mode, timeout_s: float = 10.0) -> None:
        await self.until(lambda: self.mode() is mode, timeout_s, f"mode {mode.value}")


@asynccontextmanager
async def ui_site(
    store_dir: Path, *, init: PlantInit | None = None, ratings: dict[str, float] | None = None
) -> AsyncIterator[UiSite]:
    quiet_pymodbus()
    async with SimSite(site_config(ratings), bind_free_ports=True, init=init) as sim:
        running = await start(sim.controller_config(), store_path=str(store_dir / "site.sqlite"))
        if running.csms is not None:  # the reference site's OCPP stations connect as well
            await sim.start_stations(running.csms.url, OCPP_PASSWORDS)
        tokens_store = TokenStore(running.store.path)
        tokens = {role: tokens_store.create(f"ui-{role}", role, by="tools") for role in ROLES}
        server = ApiServer(create_app(running.controller, tokens_store), "127.0.0.1", 0)
        changed = asyncio.Event()
        running.controller.on_status(lambda _status: changed.set())
        site = UiSite(sim, running, server, tokens, changed)
        await server.start()
        try:
            await site.reach(Mode.GRID_CONNECTED, 10)
            yield site
        finally:
            await server.stop()
            await stop_running(running)


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
