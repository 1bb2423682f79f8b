"""Footprint benchmark: memory and CPU of `resilience run` on the reference site, as on a gateway.

The simulated site (`python -m firmware_sim --free-ports`) runs as its own process, its
two OCPP 2.1 stations connecting to the controller's central system (on a free port,
with the demo passwords); the controller (`resilience run`, with its API, store,
supervisor, retention and central system) runs as another, on a copy of config/site.toml
pointed at the simulator's ports, in the environment deploy/resilience.service gives it
(its GLIBC_TUNABLES), with its store in a temporary directory, at the site's normal
cycle period (20 ms). Only the controller process is measured (psutil), after a warm-up:

- rss_mb_start, rss_mb_end: resident memory after the warm-up and at the end [MB]
- rss_mb_max: the highest sample in between [MB]
- rss_growth_mb: end - start [MB]; rss_growth_mb_per_10min scales it to 10 minutes
  (judge it on a 10-minute run: a short one is mostly the first minute's settling);
  rss_growth_mb_after_1min: from the first sample a minute into the run to the end
- cpu_pct: CPU time used over wall time, in % of one core
- ocpp_stations_connected: the stations that connected (the store's events)

Goals on the gateway (issue 14): CPU <= 5 % of one core, RSS <= 70 MB, growth < 1 MB
per 10 minutes.

The simulated devices answer after their families' realistic response latencies
(docs/registers.md, "Device response times"); `--instant` answers at once, as before
they had latencies, to compare. The JSON says which (`latencies`).

    .venv/bin/python bench/footprint.py                # 10 minutes
    .venv/bin/python bench/footprint.py --seconds 60   # a quick look
    .venv/bin/python bench/footprint.py --instant      # devices that answer at once
    .venv/bin/python bench/footprint.py --seconds 60 --cycle-period 0.04   # a longer cycle
    .venv/bin/python bench/footprint.py --seconds 300 --tracemalloc 60   # what grows

`--regions` adds to each sample where the resident memory is (/proc/PID/smaps): glibc's
main heap (`heap`: blocks above 512 bytes, C libraries' malloc), other anonymous memory
(`anon`: Python's 1 MiB object arenas, other threads' malloc arenas, blocks mmapped on
their own) and file mappings (`files`: the interpreter, the libraries' code, SQLite's
shared memory); what grows in which tells Python objects from allocator and C memory.

`--tracemalloc SECONDS` sets RESILIENCE_TRACEMALLOC for the controller
(`resilience.memtrace`) and prints its last report of the call sites whose allocations
grew; tracing costs memory and CPU, so such a run's own figures are not the footprint.

Prints progress, and last a line of JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from islanding import to_toml  # noqa: E402  (the bench's small TOML writer)

MB = 1024 * 1024
STATIONS = ("ocpp_1", "ocpp_2")  # config/site.toml's OCPP stations


def free_port() -> int:
    """A free TCP port on loopback for the central system: the simulated stations must be
    told where it listens before the controller starts (and port 9000, the site file's,
    may be another benchmark's)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_simulator(
    site: Path, log: Path, ocpp_port: int, *, instant: bool = False
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """firmware_sim on free ports, its OCPP stations connecting to the controller's central
    system on `ocpp_port` with the demo passwords; returns the process and device -> port."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "firmware_sim", "--config", str(site)),
            *("--free-ports", "--control-port", "0"),
            *("--ocpp-url", f"ws://127.0.0.1:{ocpp_port}/ocpp"),
            *("--ocpp-passwords", str(ROOT / "config" / "ocpp-demo-passwords.toml")),
            *(["--instant"] if instant else []),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    ports: dict[str, int] = {}
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("control "):
            break
        match = re.match(r"^(\S+) \S+ [\d.]+:(\d+) unit \d+$", line.strip())
        if match:
            ports[match.group(1)] = int(match.group(2))
    # nobody reads the rest of its output: let it go to /dev/null from here
    process.stdout.close()
    return process, ports


@contextlib.contextmanager
def reference_simulator(prefix: str) -> Iterator[dict[str, int]]:
    """The reference site simulated in its own process (its log in a temporary directory
    named by `prefix`; no central system for its stations): device -> port, while open."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        sim, ports = start_simulator(
            ROOT / "config" / "site.toml", Path(name) / "sim.log", free_port()
        )
        try:
            yield ports
        finally:
            stop(sim)


def site_period_s() -> float:
    """[s] the reference site's own cycle period."""
    site = tomllib.loads((ROOT / "config" / "site.toml").read_text("utf-8"))
    return float(site["site"]["cycle_period_s"])


def controller_site(
    tmp: Path, ports: dict[str, int], ocpp_port: int, cycle_period_s: float | None = None
) -> Path:
    data: dict[str, Any] = tomllib.loads((ROOT / "config" / "site.toml").read_text("utf-8"))
    if cycle_period_s is not None:
        data["site"]["cycle_period_s"] = cycle_period_s
    data["site"]["store_path"] = str(tmp / "footprint.sqlite")
    data.setdefault("api", {})["port"] = 0
    data.setdefault("ocpp", {})["port"] = ocpp_port
    for name, port in ports.items():
        data["devices"][name]["port"] = port
    path = tmp / "footprint-site.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def wait_for(log: Path, text: str, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the controller exited ({process.returncode}); see {log}")
        if log.exists() and text in log.read_text("utf-8", errors="replace"):
            return
        time.sleep(0.2)
    raise SystemExit(f"no {text!r} in {log} after {timeout_s} s")


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def gateway_environment() -> dict[str, str]:
    """The environment deploy/resilience.service gives the controller (its Environment=
    lines): PYTHONUNBUFFERED, and GLIBC_TUNABLES, which shapes its memory."""
    unit = (ROOT / "deploy" / "resilience.service").read_text("utf-8")
    env: dict[str, str] = {}
    for line in unit.splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            env[key] = value
    return env


def stations_connected(store: Path) -> int:
    """How many OCPP stations connected to the controller (its store's events)."""
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT DISTINCT json_extract(data, '$.device') FROM events"
            " WHERE kind = 'ocpp' AND reason LIKE '% connected (OCPP %'"
        ).fetchall()
    return len(rows)


def resident_regions(pid: int) -> dict[str, float]:
    """[MB] resident memory of `pid` by kind of mapping: glibc's main heap, other anonymous
    memory, file mappings (/proc/PID/smaps)."""
    regions = {"heap": 0.0, "anon": 0.0, "files": 0.0}
    kind = "anon"
    with open(f"/proc/{pid}/smaps", encoding="utf-8") as smaps:
        for line in smaps:
            fields = line.split()
            if fields and fields[0] == "Rss:":
                regions[kind] += int(fields[1]) / 1024
            elif fields and "-" in fields[0] and not fields[0].endswith(":"):
                path = fields[5] if len(fields) > 5 else ""
                kind = "heap" if path == "[heap]" else "files" if path.startswith("/") else "anon"
    return regions


def print_last_trace(log: Path) -> None:
    """The controller's last memtrace report (a total line and the call sites after it)."""
    lines = [line for line in log.read_text("utf-8").splitlines() if "memtrace: " in line]
    starts = [i for i, line in enumerate(lines) if "memtrace: total" in line]
    for line in lines[starts[-1] :] if starts else ["no memtrace report yet: a longer run"]:
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="measured run [s]")
    parser.add_argument("--warmup", type=float, default=10.0, help="before measuring [s]")
    parser.add_argument("--every", type=float, default=10.0, help="sample period [s]")
    parser.add_argument(
        "--tracemalloc",
        type=float,
        metavar="SECONDS",
        help="trace the controller's allocations (resilience.memtrace): its growth by call"
        " site every SECONDS, printed at the end (costs memory and CPU: not a footprint run)",
    )
    parser.add_argument(
        "--instant", action="store_true", help="simulated devices answer at once (to compare)"
    )
    parser.add_argument(
        "--cycle-period",
        type=float,
        metavar="SECONDS",
        help="the controller's cycle period instead of the site's (20 ms): what a longer"
        " cycle would cost (the grid-loss goals assume 20 ms)",
    )
    parser.add_argument(
        "--regions",
        action="store_true",
        help="each sample also says where the RSS is: glibc's heap, other anonymous, files",
    )
    args = parser.parse_args(argv)
    env = {**os.environ, **gateway_environment()}
    if args.tracemalloc is not None:
        env["RESILIENCE_TRACEMALLOC"] = str(args.tracemalloc)
    resilience = Path(sys.executable).parent / "resilience"
    with tempfile.TemporaryDirectory(prefix="resilience-footprint-") as name:
        tmp = Path(name)
        ocpp_port = free_port()
        sim, ports = start_simulator(
            ROOT / "config" / "site.toml", tmp / "sim.log", ocpp_port, instant=args.instant
        )
        controller: subprocess.Popen[bytes] | None = None
        try:
            site = controller_site(tmp, ports, ocpp_port, args.cycle_period)
            log = tmp / "controller.log"
            with log.open("wb") as out:
                controller = subprocess.Popen(
                    [str(resilience), "run", "--config", str(site)],
                    cwd=tmp,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            wait_for(log, "mode grid_connected", 60, controller)
            proc = psutil.Process(controller.pid)
            print(f"controller pid {controller.pid} grid-connected; warming up {args.warmup:g} s")
            time.sleep(args.warmup)
            rss_start = proc.memory_info().rss / MB
            rss_1min: float | None = None  # the first sample a minute or more in
            cpu_start = proc.cpu_times()
            started = time.monotonic()
            rss_max = rss_start
            print(f"t=0 s rss {rss_start:.1f} MB")
            while (elapsed := time.monotonic() - started) < args.seconds:
                time.sleep(min(args.every, args.seconds - elapsed))
                rss = proc.memory_info().rss / MB
                rss_max = max(rss_max, rss)
                if rss_1min is None and time.monotonic() - started >= 60.0:
                    rss_1min = rss
                used = proc.cpu_times()
                cpu = (used.user + used.system - cpu_start.user - cpu_start.system) / max(
                    1e-9, time.monotonic() - started
                )
                where = ""
                if args.regions:
                    parts = resident_regions(controller.pid).items()
                    where = " (" + ", ".join(f"{k} {v:.2f}" for k, v in parts) + ")"
                print(
                    f"t={time.monotonic() - started:.0f} s rss {rss:.1f} MB{where}"
                    f" cpu {cpu * 100:.1f} %"
                )
            rss_end = proc.memory_info().rss / MB
            used = proc.cpu_times()
            wall = time.monotonic() - started
            cpu_pct = (used.user + used.system - cpu_start.user - cpu_start.system) / wall * 100
            if controller.poll() is not None:
                raise SystemExit(f"the controller died during the run; see {log}")
            stations = stations_connected(tmp / "footprint.sqlite")
            if args.tracemalloc is not None:
                print_last_trace(log)
        finally:
            if controller is not None:
                stop(controller)
            stop(sim)
    growth_per_10min = (rss_end - rss_start) * 600.0 / wall
    result = {
        "latencies": "instant" if args.instant else "realistic",
        "seconds": round(wall, 1),
        "cycle_period_s": args.cycle_period or site_period_s(),
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_mb_max": round(rss_max, 1),
        "rss_growth_mb": round(rss_end - rss_start, 2),
        "rss_growth_mb_per_10min": round(growth_per_10min, 2),
        "rss_growth_mb_after_1min": None if rss_1min is None else round(rss_end - rss_1min, 2),
        "cpu_pct": round(cpu_pct, 2),
        "ocpp_stations_connected": stations,
        "goals_met": rss_max <= 70
        and growth_per_10min < 1.0
        and cpu_pct <= 5
        and stations == len(STATIONS),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
