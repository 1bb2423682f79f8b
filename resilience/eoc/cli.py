"""`resilience eoc`: the city's emergency desk as a service (the broker side, the SQLite
store, the web view and API), and its tokens (`--create-token NAME --role ROLE`)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

DEFAULT_DB = "var/eoc.sqlite"


def eoc_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        default="127.0.0.1:1883",
        metavar="HOST:PORT",
        help="the MQTT 5 broker (default 127.0.0.1:1883)",
    )
    parser.add_argument("--username", default="eoc", help="the EOC's broker account (default eoc)")
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="file whose first line is the broker password",
    )
    parser.add_argument(
        "--tls-ca", type=Path, metavar="FILE", help="CA of the broker's certificate (turns TLS on)"
    )
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="FILE",
        help=f"the EOC's SQLite file (default {DEFAULT_DB})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="web view and API address")
    parser.add_argument("--port", type=int, default=8090, help="web view and API port (0: any)")
    parser.add_argument(
        "--group",
        default="eoc",
        help="shared-subscription group: EOC instances of one group split the rows",
    )
    parser.add_argument(
        "--create-token", metavar="NAME", help="create an API token (printed once) and exit"
    )
    parser.add_argument(
        "--role",
        default="viewer",
        help="role of --create-token: viewer, responder, operator, admin",
    )


def eoc_command(args: argparse.Namespace) -> int:
    from resilience.auth import TokenError, TokenStore

    if args.create_token:
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
        tokens = TokenStore(args.db)
        try:
            print(tokens.create(args.create_token, args.role, by="resilience eoc"))
        except TokenError as exc:
            print(f"resilience eoc: {exc}")
            return 1
        finally:
            tokens.close()
        return 0
    host, _, port = str(args.broker).rpartition(":")
    if not host or not port.isdigit():
        print(f"resilience eoc: --broker {args.broker!r} is not HOST:PORT")
        return 2
    password = None
    if args.password_file is not None:
        from resilience.fleet.publisher import read_password

        try:
            password = read_password(args.password_file)
        except OSError as exc:
            print(f"resilience eoc: --password-file: {exc}")
            return 1
    return asyncio.run(_serve(args, host, int(port), password))


async def _serve(args: argparse.Namespace, host: str, port: int, password: str | None) -> int:
    from resilience.auth import TokenStore
    from resilience.eoc.app import EocServer, create_eoc_app
    from resilience.eoc.db import EocDb
    from resilience.eoc.service import BrokerSettings, EocService

    db = EocDb(args.db)
    tokens = TokenStore(args.db)
    broker = BrokerSettings(host, port, args.username, password, args.tls_ca)
    service = EocService(broker, db, group=args.group)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    task = asyncio.create_task(service.run(stop))
    server = EocServer(create_eoc_app(service, db, tokens), args.host, args.port, name="eoc")
    try:
        url = await server.start()
    except OSError as exc:
        print(f"resilience eoc: {exc}")
        stop.set()
        await task
        return 1
    print(f"resilience eoc: broker {host}:{port}, store {args.db}, web view at {url}/", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        await task
        tokens.close()
        db.close()
    return 0
