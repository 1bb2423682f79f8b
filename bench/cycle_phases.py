"""Where a live cycle's CPU goes: thread CPU per phase of `Controller.cycle_once`.

Issue 14 asks for <= 5 % of one core at the reference site's 20 ms cycle
(`bench/footprint.py`). This benchmark splits the controller's own CPU by phase, to show
what a design has to remove: the Modbus-only reference site (its two OCPP stations
left out, so only the cycle is measured), controlled in this process over Modbus TCP
against the simulated site (`python -m firmware_sim --free-ports`, its own process,
realistic latencies), without API or central system.

Each phase's method is wrapped, and the thread CPU time (`time.thread_time`) spent
between its start and its end is added to it. A coroutine phase counts everything this
thread runs while it waits: the read phase includes its replies' wake-ups and handling,
and the idle wait the timer's wake-up. Phases nest: `cycle_once` holds the others except
`_idle`. The wrappers cost a little CPU themselves, so `cpu_pct` is a little above the
footprint's.

    .venv/bin/python bench/cycle_phases.py [--seconds 20]

Prints a line of JSON: `cycles`, `cpu_pct` (this process, all threads), `ms_per_cycle`
(this thread) and `phases_ms_per_cycle`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from footprint import reference_simulator  # noqa: E402

from resilience.config import load_site  # noqa: E402
from resilience.cycle import Controller  # noqa: E402
from resilience.modes import SiteModes  # noqa: E402
from resilience.service import quiet_pymodbus, start, stop_running  # noqa: E402
from tests.sites import modbus_only  # noqa: E402

PHASES: list[tuple[type, str]] = [
    (Controller, "cycle_once"),
    (Controller, "_read_all"),
    (SiteModes, "step"),
    (Controller, "build_snapshot"),
    (Controller, "_write"),
    (Controller, "_record"),
    (Controller, "_idle"),
]


def timed(spent: dict[str, float], name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """`method`, adding the thread CPU of each call to ``spent[name]``."""
    if asyncio.iscoroutinefunction(method):

        @functools.wraps(method)
        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return await method(*args, **kwargs)
            finally:
                spent[name] += time.thread_time() - started

        return coroutine

    @functools.wraps(method)
    def function(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            spent[name] += time.thread_time() - started

    return function


async def measure(ports: dict[str, int], seconds: float, warmup_s: float) -> dict[str, Any]:
    quiet_pymodbus()
    config = modbus_only(load_site(ROOT / "config" / "site.toml")).with_ports(ports)
    spent: dict[str, float] = dict.fromkeys((name for _, name in PHASES), 0.0)
    originals = [(cls, name, getattr(cls, name)) for cls, name in PHASES]
    for cls, name, method in originals:
        setattr(cls, name, timed(spent, name, method))
    with tempfile.TemporaryDirectory(prefix="resilience-phases-") as store:
        running = await start(config, store_path=str(Path(store) / "store.sqlite"))
        try:
            await asyncio.sleep(warmup_s)
            spent.update(dict.fromkeys(spent, 0.0))
            cycles_0 = running.controller.stats.cycles
            kept_0 = running.controller.stats.kept
            thread_0, process_0, wall_0 = time.thread_time(), time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cycles = running.controller.stats.cycles - cycles_0
            kept = running.controller.stats.kept - kept_0
            thread_s = time.thread_time() - thread_0
            process_s = time.process_time() - process_0
            wall_s = time.monotonic() - wall_0
        finally:
            await stop_running(running)
            for cls, name, method in originals:
                setattr(cls, name, method)
    ranked = sorted(spent.items(), key=lambda item: -item[1])
    per_cycle = {name: round(1000 * s / cycles, 3) for name, s in ranked}
    return {
        "seconds": seconds,
        "cycles": cycles,
        "kept": kept,
        "cpu_pct": round(100 * process_s / wall_s, 2),
        "ms_per_cycle": round(1000 * thread_s / cycles, 3),
        "phases_ms_per_cycle": per_cycle,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured run [s]")
    parser.add_argument("--warmup", type=float, default=5.0, help="before measuring [s]")
    args = parser.parse_args()
    with reference_simulator("resilience-phases-sim-") as ports:
        figures = asyncio.run(measure(ports, args.seconds, args.warmup))
    print(json.dumps({"latencies": "realistic", **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
