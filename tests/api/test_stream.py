"""The live stream: status changes, events and alarms as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from resilience.api.status import StatusCache
from resilience.api.stream import Hub

from .conftest import Api

pytestmark = pytest.mark.integration


async def messages(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    name = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


async def next_where(
    stream: AsyncIterator[tuple[str, Any]], want: str, predicate: Any, timeout_s: float
) -> Any:
    async def find() -> Any:
        async for name, data in stream:
            if name == want and predicate(data):
                return data
        raise AssertionError("stream ended")

    return await asyncio.wait_for(find(), timeout_s)


async def test_stream_pushes_a_grid_loss_and_its_events(api: Api) -> None:
    client = api.client("responder")
    async with client.stream("GET", "/api/v1/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = messages(response)
        first = await next_where(stream, "status", lambda d: True, 5)
        assert first["mode"] == "grid_connected"
        await next_where(stream, "alarms", lambda d: True, 5)
        api.plant.grid_loss()
        await next_where(stream, "status", lambda d: d["mode"] == "islanded", 10)
        event = await next_where(
            stream, "event", lambda d: d["kind"] == "transition" and d["mode_to"] == "islanded", 10
        )
        assert event["reason"]


async def test_status_pushes_are_throttled_and_viewers_get_status_only(api: Api) -> None:
    """At most one status push per 0.5 s while ~50 cycles/s run, unless the mode or the
    alarms changed (those are pushed at once: a site starting under load may flap an
    alarm, so only the pushes of an unchanged mode and alarm set are timed)."""
    client = api.client("viewer")
    loop = asyncio.get_running_loop()
    names: list[str] = []
    throttled: list[float] = []  # [s] between two pushes of the same mode and alarms
    async with client.stream("GET", "/api/v1/stream") as response:
        stream = messages(response)
        cycles_before = api.running.controller.stats.cycles
        start = last_at = loop.time()
        last_key: tuple[Any, ...] | None = None

        async def collect() -> None:
            nonlocal last_key, last_at
            async for name, data in stream:
                names.append(name)
                now = loop.time()
                key = (data["mode"], tuple(a["code"] for a in data["alarms"]))
                if key == last_key:
                    throttled.append(now - last_at)
                last_key, last_at = key, now
                if len(throttled) == 3:
                    return

        await asyncio.wait_for(collect(), 20)
        cycles = api.running.controller.stats.cycles - cycles_before
    assert set(names) == {"status"}
    assert min(throttled) >= 0.45, throttled
    assert cycles > (loop.time() - start) / 0.02 / 5  # the pushes are not the cycles


async def test_the_hub_stops_when_a_wake_up_comes_with_the_stop(api: Api) -> None:
    """The teardown hang seen once: the hub's task parked in a wait woken (every control
    cycle sets it) in the same loop step as `stop`'s cancel. On Python 3.11 a `wait_for`
    there returned and dropped the cancel, and `stop` waited for the task for good (or,
    cancelled itself, swallowed that and returned with the task still running)."""
    hub = Hub(api.running.controller, StatusCache(api.running.controller))
    hub.event_poll_s = 60.0
    # Its task alone, not woken by the cycles: parked in its wait, then woken with the stop.
    task = hub._task = asyncio.create_task(hub._run())
    await api.until(lambda: bool(hub._wake._waiters), 5, "the hub waiting")  # type: ignore[attr-defined]
    hub._wake.set()
    stopping = asyncio.ensure_future(hub.stop())
    done, _ = await asyncio.wait({stopping}, timeout=2.0)  # not cancelled when late
    if not done:
        stopping.cancel()  # cancels the task it awaits too: the test ends either way
        await asyncio.wait({stopping, task})
    assert done, "Hub.stop still waiting for its task after 2 s"
    assert task.done()


async def test_a_slow_client_is_dropped_not_waited_for(api: Api) -> None:
    hub = Hub(api.running.controller, StatusCache(api.running.controller), queue_size=2)
    hub.status_interval_s = 0.0
    stream = hub.subscribe(full=False)
    first = await anext(stream)  # the fresh status, then the client reads nothing more
    assert first.startswith(b"event: status")
    hub.start()
    await api.until(lambda: hub.dropped >= 1, 5, "the slow client dropped")
    rest = [chunk async for chunk in stream]  # its stream ends (it would reconnect)
    assert len(rest) <= 2
    assert not hub.clients
    await hub.stop()
