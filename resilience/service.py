"""`resilience run`: wire a site file to real drivers, the store and the control loop.

The service is what runs on the gateway: it builds one driver per device of the
site file (over shared Modbus buses), opens the SQLite store, and runs the
controller until asked to stop. Nothing here decides anything; a drill or a test
can build the same `Controller` with other transports.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from resilience.config import SiteConfig
from resilience.cycle import Controller
from resilience.drivers.registry import build_driver
from resilience.store import Store
from resilience.transport.modbus import BusPool

log = logging.getLogger("resilience.service")


def build_drivers(config: SiteConfig, pool: BusPool) -> dict[str, Any]:
    return {name: build_driver(name, device, pool) for name, device in config.devices.items()}


@dataclass
class Running:
    controller: Controller
    store: Store
    pool: BusPool
    stop: asyncio.Event
    task: asyncio.Task[None]


async def start(config: SiteConfig, *, store_path: str | None = None) -> Running:
    """Start a controller for `config` in the running loop; stop it with `stop_running`."""
    store = Store(store_path or config.site.store_path)
    store.start()
    pool = BusPool()
    controller = Controller(config, build_drivers(config, pool), store)
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop), name="control-loop")
    return Running(controller, store, pool, stop, task)


async def stop_running(running: Running) -> None:
    running.stop.set()
    try:
        await asyncio.wait_for(running.task, timeout=5.0)
    finally:
        await running.pool.close_all()
        await asyncio.to_thread(running.store.close)


def quiet_pymodbus() -> None:
    """pymodbus logs every timeout; the cycle logs a device failure once and its recovery once.

    transitions logs every callback at INFO; the cycle logs each transition with its reason.
    """
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("transitions").setLevel(logging.WARNING)


async def serve(config: SiteConfig, *, announce: Callable[[str], None] = print) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code."""
    quiet_pymodbus()
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        running = await start(config)
        stack.push_async_callback(stop_running, running)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, running.stop.set)
        announce(
            f"resilience: controlling {config.site.name!r}: {len(config.devices)} devices,"
            f" cycle {config.site.cycle_period_s * 1000:.0f} ms, store {config.site.store_path}"
        )
        last_mode = None
        while not running.task.done():
            await asyncio.sleep(0.5)
            status = running.controller.status
            if status is not None and status.mode != last_mode:
                last_mode = status.mode
                announce(f"resilience: mode {status.mode.value}")
        if running.task.exception() is not None:
            log.error("control loop failed", exc_info=running.task.exception())
            return 1
    return 0
