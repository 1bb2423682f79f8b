"""`resilience run`: wire a site file to real drivers, the store and the control loop.

The service is what runs on the gateway: it builds one driver per device of the
site file (over shared Modbus buses), opens the SQLite store, and runs the
controller until asked to stop. Nothing here decides anything; a drill or a test
can build the same `Controller` with other transports.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resilience.config import SiteConfig
from resilience.cycle import Controller
from resilience.drivers.registry import StationDrivers, build_driver
from resilience.memtrace import period_from_environment, trace_forever
from resilience.retention import prune_telemetry_forever
from resilience.store import Store
from resilience.transport.modbus import BusPool
from resilience.watchdog import Watchdog

if TYPE_CHECKING:  # the OCPP stack (the library, its JSON schemas) only for a site with stations
    from resilience.ocpp import CentralSystem

log = logging.getLogger("resilience.service")


def build_drivers(
    config: SiteConfig, pool: BusPool, csms: StationDrivers | None = None
) -> dict[str, Any]:
    return {
        name: build_driver(name, device, pool, csms) for name, device in config.devices.items()
    }


@dataclass
class Running:
    controller: Controller
    store: Store
    pool: BusPool
    stop: asyncio.Event
    task: asyncio.Task[None]
    background: list[asyncio.Task[None]] = field(default_factory=list)  # e.g. retention
    csms: CentralSystem | None = None  # the OCPP central system, on a site with stations


async def start(config: SiteConfig, *, store_path: str | None = None) -> Running:
    """Start a controller for `config` in the running loop; stop it with `stop_running`."""
    health_listeners: list[Callable[[bool], None]] = []

    def store_health(healthy: bool) -> None:  # from the store's writer thread
        for listener in health_listeners:
            listener(healthy)

    store = Store(store_path or config.site.store_path, on_health_change=store_health)
    store.start()
    pool = BusPool()
    csms: CentralSystem | None = None
    controllers: list[Controller] = []  # the controller, once built (the alarms' target)

    def station_alarm(code: str, raised: bool, severity: str, message: str) -> None:
        for built in controllers:
            built.raise_or_clear_alarm(code, raised, severity, message)

    if config.ocpp_stations:
        from resilience.ocpp import CentralSystem  # the OCPP stack: only for a site with stations

        csms = CentralSystem(config, events=store_event(store), alarms=station_alarm)
    controller = Controller(config, build_drivers(config, pool, csms), store)
    controllers.append(controller)
    if csms is not None:
        # Stations connect to us: listen before the first cycle, so a station that was
        # waiting reconnects while the field is being read.
        try:
            await csms.start()
        except BaseException:
            await asyncio.to_thread(store.close)
            raise
    health_listeners.append(controller.supervisor.store_health)  # alarm store_unhealthy
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop), name="control-loop")
    retention = asyncio.create_task(
        prune_telemetry_forever(
            store,
            config.site.telemetry_retention_days,
            stop,
            refusal_retention_days=config.site.refusal_retention_days,
        ),
        name="telemetry-retention",
    )
    return Running(controller, store, pool, stop, task, [retention], csms)


def store_event(store: Store) -> Callable[[str, str, dict[str, Any]], None]:
    """The central system's events (a station connected, refused, lost) into the store."""

    def record(kind: str, message: str, data: dict[str, Any]) -> None:
        store.record_event(kind, message, data=data)

    return record


async def stop_running(running: Running) -> None:
    running.stop.set()
    for task in running.background:
        task.cancel()
    await asyncio.gather(*running.background, return_exceptions=True)
    try:
        await asyncio.wait_for(running.task, timeout=5.0)
    finally:
        if running.csms is not None:
            await running.csms.stop()
        await running.pool.close_all()
        await asyncio.to_thread(running.store.close)


def quiet_pymodbus() -> None:
    """pymodbus logs every timeout; the cycle logs a device failure once and its recovery once.

    transitions logs every callback at INFO; the cycle logs each transition with its reason.
    """
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    # websockets logs every connection at INFO; the central system logs a station's once
    logging.getLogger("websockets").setLevel(logging.WARNING)


def validate_ocpp_inline() -> None:
    """The `ocpp` library checks every payload against its JSON schema in a worker thread
    by default, which then contends for the GIL with the control cycle (a thread keeps it
    for up to the interpreter's 5 ms switch interval). Inline, each check costs the loop
    its own fraction of a millisecond, once. With the simulated stations inline as well,
    bench/ocpp_v2x.py's setpoint RTT p99 went from about 70 ms to 17 ms (README). A
    process-wide setting of the library, made once by `resilience run` on a site with
    stations (the library is not imported otherwise)."""
    import ocpp.messages

    ocpp.messages.ASYNC_VALIDATION = False


def freeze_startup_heap() -> None:
    """Move what start-up built (the libraries, the site, the app: most of the heap, and
    alive for good) out of the garbage collector's sight. Otherwise every full collection
    walks all of it, and one such pause (tens of milliseconds on a big heap) lands in a
    control cycle; with it frozen, a collection walks only what the cycles made since.
    Collected first, so that no start-up garbage is frozen with it (the usual recipe of
    `gc.freeze`)."""
    gc.collect()
    gc.freeze()


async def serve(
    config: SiteConfig, *, announce: Callable[[str], None] = print, api: bool = True
) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code. With `api`, the API and tablet UI are
    served (uvicorn, in this event loop) on the site file's `[api]` host and port."""
    quiet_pymodbus()
    if config.ocpp_stations:
        validate_ocpp_inline()
    try:
        trace_period_s = period_from_environment()  # opt-in: what grows (resilience.memtrace)
    except ValueError as exc:
        announce(f"resilience: {exc}")
        return 1
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        if config.ocpp_stations:
            from resilience.ocpp.validation import compile_hot_schemas

            compile_hot_schemas(d.ocpp.version for d in config.ocpp_stations.values() if d.ocpp)
        running = await start(config)
        stack.push_async_callback(stop_running, running)
        if trace_period_s is not None:
            running.background.append(
                asyncio.create_task(trace_forever(trace_period_s, running.stop), name="memtrace")
            )
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, running.stop.set)
        # systemd: READY=1 after the first cycle, WATCHDOG=1 while cycles are on time and
        # the store writes (nothing without $NOTIFY_SOCKET)
        watchdog = Watchdog.from_environment(running.controller)
        running.controller.on_status(watchdog.on_status)
        stack.callback(watchdog.stopping)
        announce(
            f"resilience: controlling {config.site.name!r}: {len(config.devices)} devices,"
            f" cycle {config.site.cycle_period_s * 1000:.0f} ms, store {config.site.store_path}"
        )
        if api:
            from resilience.api.server import start_api

            try:
                server = await start_api(
                    running.controller, config.api.host, config.api.port, config.api
                )
            except OSError as exc:
                announce(f"resilience: {exc}")
                return 1
            stack.push_async_callback(server.stop)
            announce(f"resilience: API and tablet UI at {server.url}/")
        freeze_startup_heap()
        if running.csms is not None:
            announce(
                f"resilience: OCPP central system at {running.csms.url}/<identity>:"
                f" {len(config.ocpp_stations)} stations"
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
