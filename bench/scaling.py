"""Does the controller's cost grow no faster than the work? 1 to 24 chargers, live and in a drill.

    .venv/bin/python bench/scaling.py [--sizes 1,4,12,24] [--live-s 60] [--drill-h 24]
                                      [--runs 1] [--no-live] [--no-drill]

For each size N (N chargers and proportional loads: `bench/sites.py` scales the large
test site, 12 chargers and 40 loads, so 1/4, 4/13, 12/40, 24/80):

(a) live control over Modbus TCP: the simulated site (`python -m firmware_sim
    --free-ports`) as one process, the controller (`resilience run`, with its API, store
    and supervisor) as another, at the site's cycle period (50 ms), grid-connected. After
    a warm-up, the controller's CPU time (psutil) over `--live-s` seconds, divided by the
    cycles it ran meanwhile (its /metrics `resilience_cycles`, read with a viewer
    token made for the run): `live_cpu_ms_per_cycle`, and `live_cpu_pct` of one core;
(b) the earthquake drill (config/drills/earthquake_72h.toml mapped onto the site by role,
    as bench/drill_speed.py does) for `--drill-h` hours on the virtual clock:
    `drill_speedup` and `drill_cycle_ms` (wall time per control cycle, plant included),
    the median of `--runs`; `drill_violations` is the plant's count (0).

`per_device` figures divide a cycle's cost by the site's Modbus devices, so that a cost
growing no faster than the work shows as a flat or falling column.

Prints a table, then, last, one line of JSON: {"sizes": {"N/loads": figures}, ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from drill_speed import SCENARIO, scenario_for  # noqa: E402
from footprint import start_simulator, stop, wait_for  # noqa: E402
from islanding import to_toml  # noqa: E402
from sites import loads_for, write_scaled_site  # noqa: E402

from firmware_sim.drill import run_max  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _metric(port: int, token: str, name: str) -> float:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no {name} in the controller's metrics")
    return float(match.group(1))


def live(chargers: int, seconds: float, warmup_s: float, tmp: Path) -> dict[str, Any]:
    """(a): the controller over Modbus TCP against the simulator, its CPU per cycle."""
    resilience = Path(sys.executable).parent / "resilience"
    site_path = write_scaled_site(chargers, tmp / f"sim_{chargers}.toml")
    ocpp_port = _free_port()  # for a site with OCPP stations (the scaled ones have none)
    sim, ports = start_simulator(site_path, tmp / f"sim_{chargers}.log", ocpp_port)
    controller: subprocess.Popen[bytes] | None = None
    try:
        data: dict[str, Any] = tomllib.loads(site_path.read_text("utf-8"))
        if "ocpp" in data:
            data["ocpp"]["port"] = ocpp_port
        data["site"]["store_path"] = str(tmp / f"scaling_{chargers}.sqlite")
        api_port = _free_port()
        data.setdefault("api", {})["port"] = api_port
        for name, port in ports.items():
            data["devices"][name]["port"] = port
        site = tmp / f"controller_{chargers}.toml"
        site.write_text(to_toml(data), encoding="utf-8")
        made = subprocess.run(
            [
                *(str(resilience), "token", "create", "--role", "viewer"),
                *("--name", "bench", "--config", str(site)),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp,
        )
        token = made.stdout.split()[-1]
        log = tmp / f"controller_{chargers}.log"
        with log.open("wb") as out:
            controller = subprocess.Popen(
                [str(resilience), "run", "--config", str(site)],
                cwd=tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        wait_for(log, "mode grid_connected", 60, controller)
        time.sleep(warmup_s)
        proc = psutil.Process(controller.pid)
        cycles_0 = _metric(api_port, token, "resilience_cycles_total")
        overruns_0 = _metric(api_port, token, "resilience_cycle_overruns_total")
        cpu_0 = proc.cpu_times()
        started = time.monotonic()
        time.sleep(seconds)
        cpu_1 = proc.cpu_times()
        wall = time.monotonic() - started
        cycles = _metric(api_port, token, "resilience_cycles_total") - cycles_0
        overruns = _metric(api_port, token, "resilience_cycle_overruns_total") - overruns_0
        if controller.poll() is not None:
            raise SystemExit(f"the controller died during the run; see {log}")
    finally:
        if controller is not None:
            stop(controller)
        stop(sim)
    cpu_s = cpu_1.user + cpu_1.system - cpu_0.user - cpu_0.system
    return {
        "live_seconds": round(wall, 1),
        "live_cycles": int(cycles),
        "live_overruns": int(overruns),
        "live_cpu_pct": round(100 * cpu_s / wall, 2),
        "live_cpu_ms_per_cycle": round(1000 * cpu_s / max(cycles, 1), 3),
    }


def drill(chargers: int, hours: float, runs: int, tmp: Path) -> dict[str, Any]:
    """(b): the earthquake drill on the virtual clock, the median of `runs`."""
    loaded = scenario_for(str(chargers), SCENARIO, tmp)
    reports = []
    for i in range(runs):
        out = tmp / f"drill_{chargers}_{i}"
        reports.append(asyncio.run(run_max(loaded, out, progress=False, duration_s=hours * 3600)))
    walls = [r["wall_seconds"] for r in reports]
    report = next(r for r in reports if r["wall_seconds"] == statistics.median_low(walls))
    return {
        "drill_hours": hours,
        "drill_speedup": report["speedup"],
        "drill_cycles": report["control_steps"],
        "drill_cycle_ms": round(1000 * report["wall_seconds"] / report["control_steps"], 4),
        "drill_violations": max(len(r["safety_violations"]) for r in reports),
        "drill_runs_wall_seconds": walls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,12,24", help="charger counts")
    parser.add_argument("--live-s", type=float, default=60.0, help="measured live control [s]")
    parser.add_argument("--warmup-s", type=float, default=5.0, help="live warm-up [s]")
    parser.add_argument("--drill-h", type=float, default=24.0, help="drill length [h]")
    parser.add_argument("--runs", type=int, default=1, help="drill runs per size (median)")
    parser.add_argument("--no-live", action="store_true", help="skip (a)")
    parser.add_argument("--no-drill", action="store_true", help="skip (b)")
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: charger counts separated by commas, not {args.sizes!r}")
    if not sizes or min(sizes) < 1 or args.runs < 1 or args.live_s <= 0 or args.drill_h <= 0:
        parser.error("sizes, --runs, --live-s and --drill-h must be positive")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="resilience-scaling-") as name:
        tmp = Path(name)
        for chargers in sizes:
            label = f"{chargers}/{loads_for(chargers)}"
            figures: dict[str, Any] = {}
            site = tomllib.loads(to_toml(_doc(chargers)))
            devices = len(site["devices"])
            figures["devices"] = devices
            if not args.no_live:
                figures.update(live(chargers, args.live_s, args.warmup_s, tmp))
                figures["live_cpu_us_per_cycle_per_device"] = round(
                    1000 * figures["live_cpu_ms_per_cycle"] / devices, 1
                )
            if not args.no_drill:
                figures.update(drill(chargers, args.drill_h, args.runs, tmp))
                figures["drill_cycle_us_per_device"] = round(
                    1000 * figures["drill_cycle_ms"] / devices, 1
                )
            results[label] = figures
            print(f"{label}: {json.dumps(figures)}", flush=True)
    print()
    print(
        f"{'chargers/loads':>15} {'devices':>7} {'live CPU ms/cycle':>18} {'live CPU %':>10}"
        f" {'drill x':>8} {'drill ms/cycle':>15}"
    )
    for label, f in results.items():
        print(
            f"{label:>15} {f['devices']:>7} {f.get('live_cpu_ms_per_cycle', '-'):>18}"
            f" {f.get('live_cpu_pct', '-'):>10} {f.get('drill_speedup', '-'):>8}"
            f" {f.get('drill_cycle_ms', '-'):>15}"
        )
    print(json.dumps({"live_s": args.live_s, "drill_h": args.drill_h, "sizes": results}))


def _doc(chargers: int) -> dict[str, Any]:
    from sites import scaled_site

    return scaled_site(chargers)


if __name__ == "__main__":
    main()
