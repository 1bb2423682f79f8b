"""Property-based run of the whole API with schemathesis, against its own OpenAPI schema.

The app runs in this process, in a thread with its own event loop, over the real
controller on the simulated site (firmware_sim on free loopback ports, uvicorn on
127.0.0.1 port 0); schemathesis calls it over loopback with an admin token, so every
route is reachable. What must hold for any input, valid or not: no 5xx, bad input
is a 4xx, and every status code and content type is one the schema documents.
The run is bounded (25 examples per operation); the live stream is left out (it
never ends) and has its own tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from firmware_sim.server import SimSite
from resilience.api import ApiServer, create_app
from resilience.auth import TokenStore
from resilience.model import Mode
from resilience.service import quiet_pymodbus, start, stop_running

from .conftest import site_config

pytestmark = pytest.mark.integration


class LiveApi:
    """The site, controller and API in a thread of their own, until `stop()`."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.ready: concurrent.futures.Future[tuple[str, str]] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="schemathesis-site", daemon=True)

    def start(self) -> tuple[str, str]:
        self._thread.start()
        return self.ready.result(timeout=30)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
            raise

    async def _serve(self) -> None:
        quiet_pymodbus()
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with SimSite(site_config(), bind_free_ports=True) as sim:
            running = await start(sim.controller_config(), store_path=str(self.store_dir / "s.db"))
            tokens = TokenStore(running.store.path)
            admin = tokens.create("schemathesis-admin", "admin", by="test")
            server = ApiServer(create_app(running.controller, tokens), "127.0.0.1", 0)
            await server.start()
            try:
                changed = asyncio.Event()
                running.controller.on_status(lambda _s: changed.set())
                while running.controller.status is None or (
                    running.controller.status.mode is not Mode.GRID_CONNECTED
                ):
                    changed.clear()
                    await asyncio.wait_for(changed.wait(), 10)
                self.ready.set_result((server.url, admin))
                await self._stop.wait()
            finally:
                await server.stop()
                await stop_running(running)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    api = LiveApi(tmp_path_factory.mktemp("schemathesis"))
    try:
        yield api.start()
    finally:
        api.stop()


MAX_EXAMPLES = 25
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.negative_data_rejection,
]


def run_operation(operation: Any, mode: schemathesis.GenerationMode, url: str, admin: str) -> None:
    """Hypothesis over one operation in one generation mode (schemathesis's own pytest
    plugin reads pytest internals that pytest 9 no longer has, so it is driven directly)."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=url, headers={"Authorization": f"Bearer {admin}"}, checks=CHECKS, timeout=10
        )

    check()


def test_no_input_gives_a_5xx(live_api: tuple[str, str]) -> None:
    url, admin = live_api
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/stream":
            continue  # never ends; tested in test_stream.py
        operations += 1
        for mode in schemathesis.GenerationMode:
            try:
                run_operation(operation, mode, url, admin)
            except (Exception, BaseExceptionGroup) as exc:  # collect every failure, report all
                failures.append(
                    f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc}"
                )
    assert operations >= 18
    assert failures == [], "\n\n".join(failures)
