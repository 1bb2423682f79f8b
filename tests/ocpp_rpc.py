"""Run the ocpp-rpc station (tools/ocpp-rpc-station, node) against a CSMS in a test.

The station is an OCPP 2.1 implementation we did not write (the npm package ocpp-rpc in
strict mode), so a CSMS that passes with it does not merely agree with itself. It reports
everything as JSON lines on stdout; `run_station` parses them into `Station.events`, and
`Station.wait_for` awaits the first event that matches. The station runs in its own
process group, which is killed and reaped when the `async with` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

STATION_DIR = Path(__file__).resolve().parents[1] / "tools" / "ocpp-rpc-station"
STATION_JS = STATION_DIR / "station.js"

Event = dict[str, Any]

# How long the station gets to close its websocket after SIGTERM before it is killed.
STOP_GRACE_S = 5.0


class StationExited(AssertionError):
    """The station's stdout ended before an awaited event came."""


class Station:
    """The events of one running station, in the order it printed them."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[Event] = []
        self.stderr: list[str] = []
        self.ended = False  # stdout closed: no more events
        self._changed = asyncio.Condition()

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "unparsed", "line": line}
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        async with self._changed:
            self.ended = True
            self._changed.notify_all()

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def of(self, name: str) -> list[Event]:
        """The events called NAME so far."""
        return [event for event in self.events if event.get("event") == name]

    async def wait_for(
        self, predicate: Callable[[Event], bool], timeout_s: float, *, after: int = 0
    ) -> Event:
        """The first event from index AFTER on that satisfies PREDICATE.

        Raises TimeoutError (with the events so far, to see why) after TIMEOUT_S, and
        StationExited if the station stops printing first.
        """

        async def first() -> Event:
            seen = after
            async with self._changed:
                while True:
                    for event in self.events[seen:]:
                        if predicate(event):
                            return event
                    seen = max(seen, len(self.events))
                    if self.ended:
                        raise StationExited(f"station exited without the event; {self.describe()}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(first(), timeout_s)
        except TimeoutError:
            raise TimeoutError(f"no such event within {timeout_s} s; {self.describe()}") from None

    async def __aiter__(self) -> AsyncIterator[Event]:
        """Every event, from the first, as it comes; ends when the station's stdout does."""
        index = 0
        while True:
            async with self._changed:
                while index >= len(self.events) and not self.ended:
                    await self._changed.wait()
                if index >= len(self.events):
                    return
                event = self.events[index]
            index += 1
            yield event

    def describe(self) -> str:
        tail = "\n".join(json.dumps(event) for event in self.events[-15:])
        # Ajv's warnings about the OCPP schemas themselves (`strict mode: missing type
        # "object" for keyword "additionalProperties"` on every enum) are noise here.
        errors = "\n".join(
            [line for line in self.stderr if not line.startswith("strict mode:")][-15:]
        )
        return f"last events:\n{tail}\nstderr:\n{errors}"


@contextlib.asynccontextmanager
async def run_station(
    url: str,
    identity: str,
    password: str | None,
    scenario: str = "v2x",
    protocol: str = "ocpp2.1",
) -> AsyncIterator[Station]:
    """Start `node station.js` against URL (it connects to URL/IDENTITY) and yield it.

    Skips the test only where node is missing; a node without the station's npm
    packages is a broken checkout (`make test` runs `npm ci` there) and fails.
    """
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node (Debian nodejs) for the ocpp-rpc station")
    if not (STATION_DIR / "node_modules" / "ocpp-rpc").is_dir():
        pytest.fail(f"{STATION_DIR}: node_modules/ocpp-rpc missing; run `make test` (npm ci)")
    args = [str(STATION_JS), "--url", url, "--identity", identity, "--protocol", protocol]
    args += ["--scenario", scenario]
    if password is not None:
        args += ["--password", password]
    process = await asyncio.create_subprocess_exec(
        node,
        *args,
        cwd=STATION_DIR,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group, killed as one below
    )
    station = Station(process)
    assert process.stdout is not None and process.stderr is not None
    readers = [
        asyncio.create_task(station._read_stdout(process.stdout)),
        asyncio.create_task(station._read_stderr(process.stderr)),
    ]
    try:
        yield station
    finally:
        await _stop(process)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the station's group (it closes its websocket), SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except TimeoutError:
            continue
        # the leader is gone; make sure nothing else of its group survives it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return
