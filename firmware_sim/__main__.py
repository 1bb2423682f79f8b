"""`python -m firmware_sim`: run the simulated site from a site file until SIGINT/SIGTERM.

Prints one line per device ("device_id driver host:port unit N"; the devices
behind one gateway share a host:port; "device_id ocpp <url>/<identity>" for an OCPP
station, which connects to `--ocpp-url` and keeps reconnecting until the controller's
central system is up) and the
control URL, so a person or a script (`resilience sim`) knows where to point the
controller and the drills. Every device answers after its family's response latency
(`firmware_sim.latency`, seeded by `--latency-seed`); `--instant` answers at once, as
the simulator did before it had latencies (to compare). Exit status: 0 after a clean
stop, 2 for a bad site file or arguments, 1 when a port cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from firmware_sim.control import ControlServer
from firmware_sim.server import SimSite
from resilience.config import ConfigError, SiteConfig, load_site


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_sim",
        description="Simulated site devices over Modbus TCP, with a control API on loopback.",
    )
    parser.add_argument("--config", required=True, help="site file (TOML), e.g. config/site.toml")
    parser.add_argument(
        "--control-port", type=int, default=8090, help="control API port (0 = any free port)"
    )
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="bind every endpoint to a free port instead of the one in the site file"
        " (devices that share a host:port, as behind a gateway, share one)",
    )
    parser.add_argument(
        "--tick", type=float, default=0.01, help="plant step period [s] (default 0.01)"
    )
    parser.add_argument(
        "--instant",
        action="store_true",
        help="answer every request at once instead of after the device family's realistic"
        " response latency (docs/registers.md, 'Device response times')",
    )
    parser.add_argument(
        "--latency-seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the devices' response latencies (each device draws its own from N and"
        " its device id; default 0)",
    )
    parser.add_argument(
        "--serial-link",
        action="append",
        default=[],
        metavar="PORT=PTY",
        help="serve the serial line the site file calls PORT (the controller's end) on the"
        " pty PTY (the other end of a socat pair); repeat for each serial port",
    )
    parser.add_argument(
        "--ocpp-url",
        default=None,
        metavar="URL",
        help="the controller's OCPP central system, e.g. ws://127.0.0.1:9000/ocpp: every OCPP"
        " 2.1 station of the site file connects to URL/<identity>",
    )
    parser.add_argument(
        "--ocpp-ca",
        default=None,
        metavar="FILE",
        help="PEM certificate(s) to trust for a wss:// central system (the gateway's own,"
        " self-signed); default: the site file's [ocpp] tls_cert, else the system's CAs",
    )
    parser.add_argument(
        "--ocpp-password",
        action="append",
        default=[],
        metavar="ID=PW",
        help="a station's Basic Auth password, by identity or device id; repeat per station",
    )
    parser.add_argument(
        "--ocpp-passwords",
        default=None,
        metavar="FILE",
        help='TOML file of station passwords: ID = "password" per line',
    )
    args = parser.parse_args(argv)
    passwords: dict[str, str] = {}
    if args.ocpp_passwords is not None:
        try:
            table = tomllib.loads(Path(args.ocpp_passwords).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            parser.error(f"--ocpp-passwords {args.ocpp_passwords}: {exc}")
        for key, value in table.items():
            if not isinstance(value, str):
                parser.error(f"--ocpp-passwords {args.ocpp_passwords}: {key}: not a string")
            passwords[key] = value
    for item in args.ocpp_password:
        key, sep, pw = item.partition("=")
        if not (sep and key and pw):
            parser.error(f"--ocpp-password {item!r}: expected ID=PW")
        passwords[key] = pw
    if args.ocpp_url is not None and not args.ocpp_url.startswith(("ws://", "wss://")):
        parser.error(f"--ocpp-url {args.ocpp_url!r}: expected ws://host:port/path")
    args.passwords = passwords
    links: dict[str, str] = {}
    for link in args.serial_link:
        port, sep, pty = link.partition("=")
        if not (sep and port and pty):
            parser.error(f"--serial-link {link!r}: expected PORT=PTY")
        links[port] = pty
    args.serial_links = links
    if not 0 <= args.control_port <= 65535:
        parser.error("--control-port must be within 0..65535")
    if args.tick <= 0:
        parser.error("--tick must be > 0")
    return args


async def run(
    config: SiteConfig,
    control_port: int,
    free_ports: bool,
    tick_s: float,
    serial_links: dict[str, str] | None = None,
    ocpp_url: str | None = None,
    ocpp_passwords: dict[str, str] | None = None,
    *,
    ocpp_ssl: ssl.SSLContext | None = None,
    instant: bool = False,
    latency_seed: int = 0,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    site = SimSite(
        config,
        bind_free_ports=free_ports,
        tick_s=tick_s,
        serial_links=serial_links,
        ocpp_url=ocpp_url,
        ocpp_passwords=ocpp_passwords,
        ocpp_ssl=ocpp_ssl,
        instant=instant,
        latency_seed=latency_seed,
    )
    control = ControlServer(site.plant, port=control_port, stations=site.stations)
    try:
        await site.start()
        await control.start()
        for server in site.servers.values():
            for unit, sim in server.devices.items():
                driver = config.devices[sim.device_id].driver
                print(
                    f"{sim.device_id} {driver} {server.host}:{server.port} unit {unit}",
                    flush=True,
                )
        for serial_port, line in site.lines.items():
            for device_id, device in config.devices.items():
                if device.serial_port == serial_port:
                    print(
                        f"{device_id} {device.driver} {device.transport} {serial_port}"
                        f" (served on {line.path}) unit {device.unit_id}",
                        flush=True,
                    )
        for device_id, station in site.stations.items():
            url = (ocpp_url or "").rstrip("/")
            print(f"{device_id} ocpp {url}/{station.identity}", flush=True)
        latencies = "instant" if instant else f"realistic (seed {latency_seed})"
        print(f"firmware_sim: device latencies {latencies}", file=sys.stderr, flush=True)
        print(f"control {control.url}", flush=True)
        await stop.wait()
    finally:
        await control.stop()
        await site.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_site(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    ocpp_url = args.ocpp_url
    tls = config.ocpp.tls_files()
    if ocpp_url is None and config.ocpp_stations and args.passwords:
        # The stations connect where the site file says the controller listens.
        host = config.ocpp.host if config.ocpp.host not in ("0.0.0.0", "::") else "127.0.0.1"
        ocpp_url = f"{config.ocpp.scheme}://{host}:{config.ocpp.port}/ocpp"
    trust = args.ocpp_ca if args.ocpp_ca is not None else (tls.cert if tls is not None else None)
    try:
        ocpp_ssl = ssl.create_default_context(cafile=None if trust is None else str(trust))
    except (OSError, ssl.SSLError) as exc:
        print(f"firmware_sim: cannot trust {trust}: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(
            run(
                config,
                args.control_port,
                args.free_ports,
                args.tick,
                args.serial_links,
                ocpp_url,
                args.passwords,
                ocpp_ssl=ocpp_ssl,
                instant=args.instant,
                latency_seed=args.latency_seed,
            )
        )
    except OSError as exc:
        print(f"firmware_sim: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # e.g. a device host that is not loopback
        print(f"firmware_sim: {exc}", file=sys.stderr)
        return 2
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
