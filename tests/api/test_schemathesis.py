"""Schemathesis, run as its own command line (`schemathesis run`), over the whole API schema,
as a viewer and as an admin: every check it has (`--checks all`), a fixed seed.

The site, the real controller and the API run in this process, in a thread with its own
event loop (firmware_sim on free loopback ports, uvicorn on 127.0.0.1 port 0). The two
runs go at the same time, each in its own `schemathesis` process, against that API. What
must hold for any input, valid or not: no 5xx; bad input is a 4xx and valid input is not
refused as bad; every status, content type, body and header is the one the schema
documents for it; HEAD, OPTIONS and unsupported methods answer as RFC 9110 says; an
operation that declares authentication enforces it. Afterwards the plant has recorded
no back-feed, unsynchronised close, discharge below a reserve, overload or collapse (the
admin's commands went through the controller's interlocks), and the refusals the viewer
caused cost a bounded number of audit rows.

`RESILIENCE_SCHEMATHESIS_EXAMPLES` (default 100: examples per operation in the fuzzing
phase, on top of the coverage phase's) and `RESILIENCE_SCHEMATHESIS_SEED` (default 13)
change the run; the live stream is left out (it never ends) and has its own tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from firmware_sim.plant import Violation
from firmware_sim.server import SimSite
from resilience.api import ApiServer, create_app
from resilience.auth import TokenStore
from resilience.model import Mode
from resilience.service import quiet_pymodbus, start, stop_running
from resilience.store import REFUSAL_ROWS_PER_MINUTE

from .conftest import site_config

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("RESILIENCE_SCHEMATHESIS_EXAMPLES", "100"))
SEED = int(os.environ.get("RESILIENCE_SCHEMATHESIS_SEED", "13"))
RUN_TIMEOUT_S = 300 + 3 * EXAMPLES


@dataclass
class Live:
    url: str
    tokens: dict[str, str]
    store_path: Path


class LiveApi:
    """The site, controller and API in a thread of their own, until `stop()`; then
    `violations` holds what the plant recorded."""

    def __init__(self, store_dir: Path) -> None:
        self.store_path = store_dir / "s.db"
        self.ready: concurrent.futures.Future[Live] = concurrent.futures.Future()
        self.violations: list[Violation] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="schemathesis-site", daemon=True)

    def start(self) -> Live:
        self._thread.start()
        return self.ready.result(timeout=30)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
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
        config = site_config()
        # a slower cycle than the reference site's 20 ms: the API is what is under test, and
        # the two schemathesis processes need the CPU more than the control loop does. Not
        # much slower: each of the admin's ~700 commands waits for the next cycle
        config = config.model_copy(
            update={"site": config.site.model_copy(update={"cycle_period_s": 0.05})}
        )
        async with SimSite(config, bind_free_ports=True) as sim:
            running = await start(sim.controller_config(), store_path=str(self.store_path))
            tokens = TokenStore(running.store.path)
            issued = {role: tokens.create(f"st-{role}", role, by="test") for role in ROLES}
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
                self.ready.set_result(Live(server.url, issued, self.store_path))
                await self._stop.wait()
            finally:
                await server.stop()
                await stop_running(running)
                self.violations = list(sim.plant.violations)


ROLES = ("viewer", "admin")
STREAM = "/api/v1/stream"


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApi, Live]]:
    api = LiveApi(tmp_path_factory.mktemp("schemathesis"))
    try:
        yield api, api.start()
    finally:
        api.stop()


def schemathesis_run(live: Live, role: str, cwd: Path) -> subprocess.Popen[str]:
    """`schemathesis run` with every check over the whole schema, as `role`."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{live.url}/api/v1/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--exclude-path",
        STREAM,
        "--request-timeout",
        "10",
        "--header",
        f"Authorization: Bearer {live.tokens[role]}",
    ]
    env = {**os.environ, "NO_COLOR": "1"}
    # in a directory of its own: schemathesis keeps a cache where it runs
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
    )


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_schemathesis_finds_nothing_as_viewer_and_as_admin(
    live_api: tuple[LiveApi, Live], tmp_path: Path
) -> None:
    api, live = live_api
    runs = {}
    for role in ROLES:
        (tmp_path / role).mkdir()
        runs[role] = schemathesis_run(live, role, tmp_path / role)
    outputs: dict[str, str] = {}
    try:
        for role, process in runs.items():
            outputs[role], _ = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    failed = {role: outputs[role] for role, process in runs.items() if process.returncode != 0}
    assert not failed, "\n\n".join(f"as {role}:\n{out[-20000:]}" for role, out in failed.items())
    schema = httpx.get(f"{live.url}/api/v1/openapi.json").json()
    operations = sum(len(ops) for path, ops in schema["paths"].items() if path != STREAM)
    assert operations >= 22
    for role in ROLES:  # the whole schema was exercised, not a part of it
        assert re.search(rf"^\s*Tested: {operations}$", outputs[role], re.M), outputs[role]

    api.stop()
    # The safety rules the API cannot lift. The shed order is not judged here: the admin
    # sheds, keeps on and moves loads between tiers at random, which an operator may
    # (tests/fuzz/test_sites_fuzz.py judges it, excusing the loads shed by hand).
    assert api.violations is not None
    assert [v for v in api.violations if v.kind != "wrong_shed_order"] == []
    refusals = refused_rows_per_actor_minute(live.store_path)
    assert refusals, "the viewer's forbidden calls were audited"
    # one row per distinct refusal (at most REFUSAL_ROWS_PER_MINUTE) plus one per outcome
    assert max(refusals.values()) <= REFUSAL_ROWS_PER_MINUTE + 4, refusals


def refused_rows_per_actor_minute(path: Path) -> Counter[tuple[str, int]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT actor, ts FROM commands WHERE outcome != 'accepted'").fetchall()
    return Counter((actor, math.floor(ts / 60)) for actor, ts in rows)
