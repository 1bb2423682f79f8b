"""API load against a running controller: does serving the tablets disturb the control loop?

    .venv/bin/python bench/api_load.py [--duration 30] [--rate 200] [--streams 20] [--idle 10]
                                       [--tls] [--instant]

Three processes on loopback, as on the gateway:

1. the simulated site, `python -m firmware_sim --config config/site.toml --free-ports`
   (its own process, like real devices), its devices answering after their families'
   realistic response latencies (docs/registers.md), or at once with `--instant`;
2. the controller and the API+UI, in this process, in one event loop, exactly as
   `resilience run` serves them (uvicorn on 127.0.0.1, a free port);
3. a load generator in its own process (`--worker`): `--streams` clients on the live
   stream, plus `GET /api/v1/status` at `--rate` requests per second (open loop, new
   requests are sent on schedule whether or not earlier ones have answered).

With `--tls` the API serves HTTPS (a self-signed certificate made for 127.0.0.1, as
install.sh makes one for a gateway) and the clients verify it: the cost of TLS on the
gateway's event loop, the controller's own.

The control loop's jitter comes from its own cycle start times
(`controller.stats.starts`): for each cycle, |start - previous start - period|.
It is measured for `--idle` seconds with no client, then during the load.
The last line is JSON: requests, errors, status_p50_ms, status_p99_ms,
stream_messages, cycle_jitter_p99_ms_idle, cycle_jitter_p99_ms_loaded, ... and the
goals: status_p99_ms <= 20, errors == 0, loaded jitter within 1.5x of idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# ---------------------------------------------------------------------- the load generator
async def worker(
    url: str, token: str, duration_s: float, rate: float, streams: int, cafile: str | None = None
) -> dict[str, Any]:
    import ssl

    import httpx

    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=cafile) if cafile is not None else True
    )
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    latencies: list[float] = []
    errors: list[str] = []
    stream_messages = 0
    stop = asyncio.Event()

    async def one_stream(client: httpx.AsyncClient) -> None:
        nonlocal stream_messages
        try:
            async with client.stream("GET", "/api/v1/stream", headers=headers) as response:
                if response.status_code != 200:
                    errors.append(f"stream {response.status_code}")
                    return
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        stream_messages += 1
                    if stop.is_set():
                        return
        except (httpx.HTTPError, asyncio.CancelledError) as exc:
            if not stop.is_set():
                errors.append(f"stream {type(exc).__name__}")

    async def one_request(client: httpx.AsyncClient) -> None:
        start = time.perf_counter()
        try:
            response = await client.get("/api/v1/status", headers=headers)
            await response.aread()
            if response.status_code != 200:
                errors.append(f"status {response.status_code}")
                return
        except httpx.HTTPError as exc:
            errors.append(f"status {type(exc).__name__}")
            return
        latencies.append((time.perf_counter() - start) * 1000.0)

    async with (
        httpx.AsyncClient(base_url=url, limits=limits, timeout=10.0, verify=verify) as client,
        httpx.AsyncClient(base_url=url, timeout=None, verify=verify) as stream_client,
    ):
        stream_tasks = [asyncio.create_task(one_stream(stream_client)) for _ in range(streams)]
        await one_request(client)  # warm one connection
        latencies.clear()
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        pending: set[asyncio.Task[None]] = set()
        while True:
            now = loop.time()
            due = int((now - start) * rate)
            if now - start >= duration_s:
                break
            while sent < due:
                task = asyncio.create_task(one_request(client))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            await asyncio.sleep(max(0.0, start + (sent + 1) / rate - loop.time()))
        await asyncio.gather(*pending)
        elapsed = loop.time() - start
        stop.set()
        for task in stream_tasks:
            task.cancel()
        await asyncio.gather(*stream_tasks, return_exceptions=True)
    return {
        "requests": sent,
        "requests_per_s": round(sent / elapsed, 1),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "status_p50_ms": round(percentile(latencies, 50), 2),
        "status_p99_ms": round(percentile(latencies, 99), 2),
        "status_max_ms": round(max(latencies, default=float("nan")), 2),
        "stream_clients": streams,
        "stream_messages": stream_messages,
    }


# ---------------------------------------------------------------------- the site
def start_sim(
    config: str, *, instant: bool = False
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_sim",
            "--config",
            config,
            "--free-ports",
            "--control-port",
            "0",
            *(["--instant"] if instant else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert sim.stdout is not None
    ports: dict[str, int] = {}
    deadline = time.monotonic() + 30
    for line in sim.stdout:
        parts = line.split()
        if parts and parts[0] == "control":
            return sim, ports
        if len(parts) >= 3 and ":" in parts[2]:
            ports[parts[0]] = int(parts[2].rsplit(":", 1)[1])
        if time.monotonic() > deadline:
            break
    sim.kill()
    raise RuntimeError("firmware_sim did not start")


def jitter_ms(starts: list[float], period_s: float, since: float, until: float) -> list[float]:
    window = [t for t in starts if since <= t < until]
    return [abs(b - a - period_s) * 1000.0 for a, b in pairwise(window)]


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from resilience.api import ApiServer, create_app
    from resilience.auth import TokenStore
    from resilience.config import load_site
    from resilience.model import Mode
    from resilience.service import quiet_pymodbus, start, stop_running

    quiet_pymodbus()
    config = load_site(args.config)
    sim, ports = start_sim(args.config, instant=args.instant)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            running = await start(config.with_ports(ports), store_path=str(Path(tmp) / "b.sqlite"))
            tokens = TokenStore(running.store.path)
            token = tokens.create("bench", "viewer", by="bench")
            tls, cafile = None, "-"
            if args.tls:
                import datetime
                import ipaddress

                from resilience.config import TlsFiles
                from resilience.tls import make_self_signed, server_context

                now = datetime.datetime.now(datetime.UTC)
                cert, key = make_self_signed([], [ipaddress.ip_address("127.0.0.1")], now)
                files = TlsFiles(Path(tmp) / "cert.pem", Path(tmp) / "key.pem")
                files.cert.write_bytes(cert)
                files.key.write_bytes(key)
                tls, cafile = server_context(files), str(files.cert)
            server = ApiServer(create_app(running.controller, tokens), "127.0.0.1", 0, tls=tls)
            await server.start()
            controller = running.controller
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 20
                while (
                    controller.status is None or controller.status.mode is not Mode.GRID_CONNECTED
                ):
                    if loop.time() > deadline:
                        raise RuntimeError("the site never reached grid_connected")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2.0)  # settle: every load on
                period = config.site.cycle_period_s
                idle_from = time.monotonic()
                await asyncio.sleep(args.idle)
                idle_to = time.monotonic()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--worker",
                    server.url,
                    token,
                    str(args.duration),
                    str(args.rate),
                    str(args.streams),
                    cafile,
                    stdout=asyncio.subprocess.PIPE,
                )
                loaded_from = time.monotonic() + 1.0  # the worker's start-up is not load
                out, _ = await proc.communicate()
                loaded_to = time.monotonic() - 0.5
                result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
                starts = list(controller.stats.starts)
                idle = jitter_ms(starts, period, idle_from, idle_to)
                loaded = jitter_ms(starts, period, loaded_from, loaded_to)
                result.update(
                    {
                        "tls": bool(args.tls),
                        "latencies": "instant" if args.instant else "realistic",
                        "cycle_period_ms": period * 1000,
                        "cycles_idle": len(idle),
                        "cycles_loaded": len(loaded),
                        "cycle_jitter_p50_ms_idle": round(percentile(idle, 50), 3),
                        "cycle_jitter_p50_ms_loaded": round(percentile(loaded, 50), 3),
                        "cycle_jitter_p99_ms_idle": round(percentile(idle, 99), 3),
                        "cycle_jitter_p99_ms_loaded": round(percentile(loaded, 99), 3),
                        "cycle_overruns": controller.stats.overruns,
                        "mode_after": controller.status.mode.value if controller.status else None,
                    }
                )
                result["ok"] = (
                    result["status_p99_ms"] <= 20
                    and result["errors"] == 0
                    and result["cycle_jitter_p99_ms_loaded"]
                    <= 1.5 * max(result["cycle_jitter_p99_ms_idle"], 0.1)
                )
                return result
            finally:
                await server.stop()
                await stop_running(running)
    finally:
        sim.terminate()
        sim.wait(timeout=10)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, token, duration, rate, streams, cafile = sys.argv[2:8]
        result = asyncio.run(
            worker(
                url, token, float(duration), float(rate), int(streams),
                None if cafile == "-" else cafile,
            )
        )  # fmt: skip
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "site.toml"))
    parser.add_argument("--duration", type=float, default=30.0, help="[s] of load")
    parser.add_argument("--rate", type=float, default=200.0, help="status requests per second")
    parser.add_argument("--streams", type=int, default=20, help="live-stream clients")
    parser.add_argument("--idle", type=float, default=10.0, help="[s] measured before the load")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS (self-signed, verified)")
    parser.add_argument(
        "--instant", action="store_true", help="simulated devices answer at once (to compare)"
    )
    args = parser.parse_args()
    if not (0 < args.duration <= 600 and 0 < args.rate <= 2000 and 0 <= args.streams <= 200):
        parser.error("keep the load bounded: duration <= 600 s, rate <= 2000/s, streams <= 200")
    result = asyncio.run(bench(args))
    print(
        f"status p50 {result['status_p50_ms']} ms, p99 {result['status_p99_ms']} ms over"
        f" {result['requests']} requests ({result['requests_per_s']}/s), errors {result['errors']};"
        f" cycle jitter p99 idle {result['cycle_jitter_p99_ms_idle']} ms,"
        f" loaded {result['cycle_jitter_p99_ms_loaded']} ms"
    )
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
