"""Islanding benchmark: how fast the controller opens the PCC and balances the island.

Runs the reference site with every device on Modbus TCP over loopback: the simulated
firmware in this process, the controller as its own `resilience run` process (so its
CPU and memory are its own). Injects at least 50 grid losses; each time it measures,
on the simulated devices' side of the wire and one monotonic clock:

- pcc_open:  grid loss -> the PCC open command arrives at the breaker
- balanced:  grid loss -> the controller reads the PCC confirmed open while the loads
             left on the bus are within what the grid-forming vehicle can carry
- cycle jitter: how far apart the controller's successive meter reads are from its
             cycle period (one read per cycle)

After each loss the grid returns and the controller resynchronises (the bench's copy of
the site file shortens the return-to-service delay to 1 s and uses the largest slip
the synchronisation limits allow, so one outage takes a few seconds).

Both times are taken when the simulated device acts on the request, after its
response latency: the PCC open command when the breaker takes it.

The simulated devices answer after their families' realistic response latencies
(docs/registers.md, "Device response times"); `--instant` answers at once, as before
they had latencies, to compare. The JSON says which (`latencies`).

    .venv/bin/python bench/islanding.py [--outages 50] [--instant]

Prints figures, and last a line of JSON with outages, pcc_open_p50_ms, pcc_open_p99_ms,
balanced_p99_ms, cycle_jitter_p99_ms, cpu_pct, rss_mb.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_sim.server import SimSite  # noqa: E402
from resilience.config import SiteConfig, load_site  # noqa: E402
from resilience.drivers.registers import PccBreaker  # noqa: E402
from resilience.model import BreakerCommand, BreakerPosition  # noqa: E402


@dataclass
class Probe:
    """Timestamps taken where the controller's requests arrive."""

    meter_reads: list[float] = field(default_factory=list)
    open_commands: list[float] = field(default_factory=list)
    open_confirmed: list[float] = field(default_factory=list)
    armed: bool = False  # set at a grid loss; the first open read after it is the confirmation
    balanced_ok: list[bool] = field(default_factory=list)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def bench_site(tmp: Path) -> tuple[SiteConfig, dict[str, Any]]:
    data = tomllib.loads((ROOT / "config" / "site.toml").read_text(encoding="utf-8"))
    # the Modbus field only (the OCPP stations have their own benchmark, ocpp_v2x.py)
    stations = {n for n, d in data["devices"].items() if d.get("driver") == "ocpp"}
    data["devices"] = {n: d for n, d in data["devices"].items() if n not in stations}
    data["vehicles"] = [v for v in data["vehicles"] if v.get("charger") not in stations]
    data["grid"]["return_to_service_s"] = 1.0
    data["sync"]["slip_frequency_hz"] = 0.25
    data["site"]["store_path"] = str(tmp / "bench.sqlite")
    data["site"]["telemetry_period_s"] = 5.0
    for load in data["loads"]:
        load["min_off_s"] = min(float(load.get("min_off_s", 0.0)), 1.0)
    path = tmp / "bench-site.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return load_site(path), data


def to_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for the site file's shapes (tables, arrays of tables, scalars)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(type(v))

    lines: list[str] = []

    def table(prefix: str, t: dict[str, Any]) -> None:
        scalars = {k: v for k, v in t.items() if not isinstance(v, dict) and not _is_aot(v)}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        lines.append("")
        for k, v in t.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)
            elif _is_aot(v):
                for item in v:
                    lines.append(f"[[{prefix + '.' if prefix else ''}{k}]]")
                    lines.extend(f"{ik} = {value(iv)}" for ik, iv in item.items())
                    lines.append("")

    table("", data)
    return "\n".join(lines)


def _is_aot(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def instrument(site: SimSite, probe: Probe, former_capacity_w: float, config: SiteConfig) -> None:
    meter = site.devices[config.grid.meter]
    breaker = site.devices[config.grid.pcc_breaker]
    plant = site.plant
    meter_read = meter.read
    breaker_read = breaker.read
    breaker_write = breaker.write

    def on_meter_read(address: int, count: int) -> Any:
        probe.meter_reads.append(time.monotonic())
        return meter_read(address, count)

    def on_breaker_read(address: int, count: int) -> Any:
        result = breaker_read(address, count)
        if probe.armed and not isinstance(result, int) and address <= PccBreaker.POSITION:
            position = result[PccBreaker.POSITION - address]
            if position == BreakerPosition.OPEN:
                probe.armed = False
                probe.open_confirmed.append(time.monotonic())
                on_bus = sum(
                    load.rated_power_w
                    for load in config.loads
                    if load.supply == "bus" and plant.load_on(load.id)
                )
                probe.balanced_ok.append(on_bus <= former_capacity_w)
        return result

    def on_breaker_write(address: int, values: Any) -> Any:
        if (
            address <= PccBreaker.COMMAND < address + len(values)
            and values[PccBreaker.COMMAND - address] == BreakerCommand.OPEN
        ):
            probe.open_commands.append(time.monotonic())
        return breaker_write(address, values)

    meter.read = on_meter_read  # type: ignore[method-assign]
    breaker.read = on_breaker_read  # type: ignore[method-assign]
    breaker.write = on_breaker_write  # type: ignore[method-assign]


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the controller process, SIGKILL it if it has not gone within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def wait_for(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def run(outages: int, *, instant: bool = False) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="resilience-bench-"))
    config, data = bench_site(tmp)
    former_capacity_w = max((d.rating_w or 0.0) for d in config.chargers.values() if d.can_form)
    probe = Probe()
    async with SimSite(config, bind_free_ports=True, instant=instant) as site:
        instrument(site, probe, former_capacity_w, config)
        controller_cfg = site.controller_config()
        data["devices"] = {
            name: {**data["devices"][name], "port": port} for name, port in site.ports.items()
        }
        run_path = tmp / "run-site.toml"
        run_path.write_text(to_toml(data), encoding="utf-8")
        assert load_site(run_path).devices == controller_cfg.devices
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log_path = tmp / "controller.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "resilience.cli", "run", "--config", str(run_path)],
            cwd=str(ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        ps = psutil.Process(proc.pid)
        plant = site.plant
        pcc_open_ms: list[float] = []
        balanced_ms: list[float] = []
        try:
            ok = await wait_for(
                lambda: (
                    plant.breaker_position is BreakerPosition.CLOSED and len(probe.meter_reads) > 50
                ),
                30,
            )
            if not ok:
                raise RuntimeError("controller did not start")
            ps.cpu_percent(None)
            cpu_t0 = time.monotonic()
            jitter_from = len(probe.meter_reads)
            done = 0
            while done < outages:
                await asyncio.sleep(0.3)
                opens_before = len(probe.open_commands)
                confirmed_before = len(probe.open_confirmed)
                probe.armed = True
                t0 = time.monotonic()
                plant.grid_loss()
                seen = confirmed_before
                if not await wait_for(lambda seen=seen: len(probe.open_confirmed) > seen, 5):
                    raise RuntimeError(f"outage {done + 1}: PCC open never confirmed")
                pcc_open_ms.append((probe.open_commands[opens_before] - t0) * 1000)
                if probe.balanced_ok[-1]:
                    balanced_ms.append((probe.open_confirmed[-1] - t0) * 1000)
                else:
                    balanced_ms.append(float("inf"))
                await wait_for(lambda: plant.bus_live, 5)
                await asyncio.sleep(0.2)
                plant.grid_return()
                if not await wait_for(
                    lambda: plant.breaker_position is BreakerPosition.CLOSED and plant.grid_present,
                    30,
                ):
                    raise RuntimeError(f"outage {done + 1}: no reconnection within 30 s")
                done += 1
                print(
                    f"outage {done:3d}: pcc open command {pcc_open_ms[-1]:6.1f} ms,"
                    f" balanced {balanced_ms[-1]:6.1f} ms",
                    flush=True,
                )
            elapsed = time.monotonic() - cpu_t0
            cpu_pct = ps.cpu_percent(None)
            rss_mb = ps.memory_info().rss / 1e6
            reads = probe.meter_reads[jitter_from:]
            period = config.site.cycle_period_s
            jitter_ms = [abs((b - a) - period) * 1000 for a, b in itertools.pairwise(reads)]
            violations = [f"{v.kind}: {v.detail}" for v in plant.violations]
        except BaseException:
            print(f"controller log: {log_path}", file=sys.stderr)
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            log.close()
            stop_process(proc)
    return {
        "latencies": "instant" if instant else "realistic",
        "outages": len(pcc_open_ms),
        "pcc_open_p50_ms": round(percentile(pcc_open_ms, 50), 2),
        "pcc_open_p99_ms": round(percentile(pcc_open_ms, 99), 2),
        "pcc_open_max_ms": round(max(pcc_open_ms), 2),
        "balanced_p50_ms": round(percentile(balanced_ms, 50), 2),
        "balanced_p99_ms": round(percentile(balanced_ms, 99), 2),
        "cycle_period_ms": config.site.cycle_period_s * 1000,
        "cycle_jitter_p50_ms": round(percentile(jitter_ms, 50), 2),
        "cycle_jitter_p99_ms": round(percentile(jitter_ms, 99), 2),
        "cpu_pct": round(cpu_pct, 1),
        "rss_mb": round(rss_mb, 1),
        "run_seconds": round(elapsed, 1),
        "safety_violations": violations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", type=int, default=50)
    parser.add_argument(
        "--instant", action="store_true", help="simulated devices answer at once (to compare)"
    )
    args = parser.parse_args()
    result = asyncio.run(run(max(1, args.outages), instant=args.instant))
    print(
        f"\n{result['outages']} outages: PCC open command p50 {result['pcc_open_p50_ms']} ms,"
        f" p99 {result['pcc_open_p99_ms']} ms; balanced p99 {result['balanced_p99_ms']} ms;"
        f" cycle jitter p99 {result['cycle_jitter_p99_ms']} ms;"
        f" controller CPU {result['cpu_pct']} % of one core, RSS {result['rss_mb']} MB;"
        f" safety violations: {len(result['safety_violations'])}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
