"""The API against the real controller on the simulated site, over loopback HTTP.

`api` starts firmware_sim's `SimSite` on free ports, the real controller
(`service.start`) on a temporary store, and the app with uvicorn on 127.0.0.1
port 0; one token per role is created in the store. Everything is stopped by
the fixture. Tests await the controller's status (`until`), never sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from firmware_sim.plant import Plant
from firmware_sim.server import SimSite
from resilience.api import ApiServer, create_app
from resilience.auth import ROLES, TokenStore
from resilience.config import SiteConfig, load_site
from resilience.model import Mode
from resilience.service import Running, quiet_pymodbus, start, stop_running
from tests.sites import modbus_only

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"


def site_config() -> SiteConfig:
    config = modbus_only(load_site(SITE))
    return config.model_copy(
        update={"grid": config.grid.model_copy(update={"return_to_service_s": 2.0})}
    )


@dataclass
class Api:
    sim: SimSite
    running: Running
    server: ApiServer
    tokens: dict[str, str]
    changed: asyncio.Event
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def plant(self) -> Plant:
        return self.sim.plant

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, role: str | None = "operator", token: str | None = None) -> httpx.AsyncClient:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10.0)
        self.clients.append(client)
        return client

    async def until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
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

    async def mode(self, mode: Mode, timeout_s: float = 5.0) -> None:
        def reached() -> bool:
            status = self.running.controller.status
            return status is not None and status.mode is mode

        await self.until(reached, timeout_s, f"mode {mode.value}")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    quiet_pymodbus()
    config = site_config()
    async with SimSite(config, bind_free_ports=True) as sim:
        running = await start(sim.controller_config(), store_path=str(tmp_path / "site.sqlite"))
        tokens_store = TokenStore(running.store.path)
        tokens = {role: tokens_store.create(f"test-{role}", role, by="test") for role in ROLES}
        server = ApiServer(create_app(running.controller, tokens_store), "127.0.0.1", 0)
        changed = asyncio.Event()
        running.controller.on_status(lambda _status: changed.set())
        state = Api(sim, running, server, tokens, changed)
        await server.start()
        try:
            await state.mode(Mode.GRID_CONNECTED, 10)
            yield state
        finally:
            for client in state.clients:
                await client.aclose()
            await server.stop()
            await stop_running(running)
