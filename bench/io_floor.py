"""The I/O floor of the gateway's CPU: the every-cycle reads alone, nothing decided.

Issue 14 asks for <= 5 % of one core on the reference site (`bench/footprint.py`). This
benchmark measures what the reads that must happen every cycle cost by themselves: the
grid meter and the PCC breaker (grid-loss detection and the synchronisation check rest on
them, `resilience.poll_schedule.every_cycle`), read through the controller's own drivers
and `ModbusTcpBus` (pymodbus 3.16 over loopback TCP) at the site's cycle period, against
the simulated site (`python -m firmware_sim --free-ports`, its own process, realistic
latencies), with a loop that sleeps to the next period as `Controller.run` does. Only
this process is measured (psutil, CPU time over wall time after a warm-up).

Nothing is decided, recorded or served: no snapshot, no mode machine, no writes, no
store, no API, no OCPP. So `cpu_pct` is a floor under the whole controller's figure:
whatever the cycle decides costs on top of it.

    .venv/bin/python bench/io_floor.py                 # 60 s
    .venv/bin/python bench/io_floor.py --seconds 120 --period 0.02

Prints progress, and last a line of JSON: the period, reads per second, `cpu_pct` and
the CPU time per cycle [ms].
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from footprint import reference_simulator  # noqa: E402

from resilience.config import load_site  # noqa: E402
from resilience.drivers.registry import driver_for  # noqa: E402
from resilience.transport.modbus import BusPool  # noqa: E402


async def read_every_cycle(
    ports: dict[str, int], period_s: float, warmup_s: float, seconds: float
) -> dict[str, float]:
    config = load_site(ROOT / "config" / "site.toml")
    pool = BusPool()
    drivers: list[Any] = []
    for name in (config.grid.meter, config.grid.pcc_breaker):
        device = config.devices[name]
        bus = pool.get("127.0.0.1", ports[name], device.timeout_s)
        drivers.append(driver_for(name, device, bus))
    process = psutil.Process()
    loop = asyncio.get_running_loop()
    cycles = failures = 0
    measured_from = loop.time() + warmup_s
    cpu_start = None
    next_start = loop.time()
    try:
        while True:
            now = loop.time()
            if cpu_start is None and now >= measured_from:
                cpu_start, wall_start, cycles, failures = process.cpu_times(), now, 0, 0
            if cpu_start is not None and now >= wall_start + seconds:
                break
            results = await asyncio.gather(*(d.read() for d in drivers), return_exceptions=True)
            failures += sum(isinstance(r, BaseException) for r in results)
            cycles += 1
            next_start += period_s
            await asyncio.sleep(max(0.0, next_start - loop.time()))
        cpu_end = process.cpu_times()
        wall = loop.time() - wall_start
    finally:
        await pool.close_all()
    cpu = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
    return {
        "cycles": cycles,
        "reads_per_s": round(len(drivers) * cycles / wall, 1),
        "failed_reads": failures,
        "cpu_pct": round(100 * cpu / wall, 2),
        "cpu_ms_per_cycle": round(1000 * cpu / cycles, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured run [s]")
    parser.add_argument("--warmup", type=float, default=5.0, help="before measuring [s]")
    parser.add_argument("--period", type=float, default=0.02, help="cycle period [s]")
    args = parser.parse_args()
    with reference_simulator("resilience-io-floor-") as ports:
        print(f"simulated site up; reading for {args.warmup:g} + {args.seconds:g} s", flush=True)
        started = time.monotonic()
        figures = asyncio.run(read_every_cycle(ports, args.period, args.warmup, args.seconds))
        print(f"done in {time.monotonic() - started:.0f} s", flush=True)
    print(json.dumps({"period_s": args.period, "latencies": "realistic", **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
