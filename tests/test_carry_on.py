"""A read or write started by hand and carried on by a task (`cycle.carry_on`) lets go of
its bus however the task ends: cancelled on stop before its first step, it once stayed
suspended holding the bus's lock, and closing the bus then waited for ever."""

from __future__ import annotations

import asyncio
from typing import Any

from resilience.cycle import carry_on


async def _request(lock: asyncio.Lock, reply: asyncio.Future[int], log: list[str]) -> int:
    async with lock:  # as `ModbusBus._execute` holds its bus for one request
        try:
            return await reply
        finally:
            log.append("finally")


def _started(lock: asyncio.Lock, reply: asyncio.Future[int], log: list[str]) -> tuple[Any, Any]:
    coro = _request(lock, reply, log)
    return coro, coro.send(None)  # as the cycle starts every read: up to its request


async def test_a_task_cancelled_before_its_first_step_lets_go_of_the_bus() -> None:
    lock, log = asyncio.Lock(), []
    reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    coro, pending = _started(lock, reply, log)
    assert pending is reply and lock.locked()
    task = carry_on(coro, pending)
    task.cancel()  # at once: `settle_io` on stop, in the cycle that detached it
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert log == ["finally"] and not lock.locked()
    await asyncio.wait_for(lock.acquire(), 1.0)  # the next request (closing the bus) gets it


async def test_a_waiter_for_the_bus_gets_it_when_the_holder_is_cancelled_early() -> None:
    lock, log = asyncio.Lock(), []
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[int] = loop.create_future()
    coro, pending = _started(lock, reply, log)  # (kept: a collected one would close)
    second: asyncio.Future[int] = loop.create_future()
    waiter = asyncio.ensure_future(_request(lock, second, log))
    await asyncio.sleep(0)  # the waiter queues for the lock
    holder = carry_on(coro, pending)
    holder.cancel()
    second.set_result(7)
    assert await asyncio.wait_for(waiter, 1.0) == 7
    assert holder.cancelled() and coro.cr_frame is None


async def test_a_carried_on_request_still_returns_its_reply() -> None:
    lock, log = asyncio.Lock(), []
    reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = carry_on(*_started(lock, reply, log))
    reply.set_result(42)
    assert await asyncio.wait_for(task, 1.0) == 42
    assert log == ["finally"] and not lock.locked()
