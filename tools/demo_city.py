"""`make demo-city`: a city's emergency desk on this machine.

Starts Debian's mosquitto (accounts, ACLs: tools/mqtt_broker.py), three simulated shelters
in two districts (firmware_sim's plant and Modbus servers, the real controller with
`[fleet]`, each with its own SQLite store) and `resilience eoc` (its service, store and
web view); prints the web view's address with an operator token. One shelter loses its
grid every few minutes and gets it back (the drill), so the table moves; a district
command from the page is answered by the shelters' own controllers. Ctrl-C stops it all.

    .venv/bin/python tools/demo_city.py [--port 8090] [--dir var/demo-city]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_sim.server import SimSite  # noqa: E402
from resilience.auth import TokenStore  # noqa: E402
from resilience.config import FleetSection, load_site  # noqa: E402
from resilience.eoc.app import EocServer, create_eoc_app  # noqa: E402
from resilience.eoc.db import EocDb  # noqa: E402
from resilience.eoc.service import BrokerSettings, EocService  # noqa: E402
from resilience.service import quiet_pymodbus, start, stop_running  # noqa: E402
from tools.mqtt_broker import EOC_PASSWORD, EOC_USER, Broker, SiteAccount  # noqa: E402

SHELTERS = [
    (SiteAccount("kadikoy", "moda-school"), "Moda School"),
    (SiteAccount("kadikoy", "fenerbahce-hall"), "Fenerbahçe Hall"),
    (SiteAccount("uskudar", "mosque-annex"), "Üsküdar Mosque Annex"),
]
OUTAGE_EVERY_S = 180.0
OUTAGE_S = 90.0


async def drill(sim: SimSite, stop: asyncio.Event) -> None:
    """The grid goes every OUTAGE_EVERY_S for OUTAGE_S: the shelter islands and returns."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), OUTAGE_EVERY_S - OUTAGE_S)
        if stop.is_set():
            return
        sim.plant.grid_loss()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), OUTAGE_S)
        sim.plant.grid_return()


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    quiet_pymodbus()
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    broker = Broker(directory / "broker", [account for account, _name in SHELTERS])
    broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    db = EocDb(directory / "eoc.sqlite")
    tokens = TokenStore(directory / "eoc.sqlite")
    tokens.revoke("demo", by="demo-city")  # a new token each run
    token = tokens.create("demo", "operator", by="demo-city")
    service = EocService(BrokerSettings(broker.host, broker.port, EOC_USER, EOC_PASSWORD), db)
    eoc = asyncio.create_task(service.run(stop))
    server = EocServer(create_eoc_app(service, db, tokens), "127.0.0.1", args.port, name="eoc")
    password = directory / "site-password"
    password.write_text(SHELTERS[0][0].password)
    site_file = load_site(ROOT / "config" / "sites" / "tiny_site.toml")
    async with contextlib.AsyncExitStack() as stack:
        runs = []
        for n, (account, name) in enumerate(SHELTERS):
            sim = await stack.enter_async_context(SimSite(site_file, bind_free_ports=True))
            fleet = FleetSection(
                broker_host=broker.host,
                broker_port=broker.port,
                district=account.district,
                site_id=account.site,
                username=account.username,
                password_file=password,
                keepalive_s=10,
            )
            config = sim.controller_config()
            config = config.model_copy(
                update={"fleet": fleet, "site": config.site.model_copy(update={"name": name})}
            )
            run = await start(config, store_path=str(directory / f"{account.site}.sqlite"))
            stack.push_async_callback(stop_running, run)
            runs.append(run)
            if n == 1:
                stack.enter_context(_task(drill(sim, stop)))
        url = await server.start()
        stack.push_async_callback(server.stop)
        print(f"demo-city: broker 127.0.0.1:{broker.port}, {len(SHELTERS)} shelters", flush=True)
        print(f"demo-city: EOC at {url}/#token={token}  (operator; Ctrl-C stops)", flush=True)
        await stop.wait()
    await eoc
    tokens.close()
    db.close()
    broker.stop()
    return 0


@contextlib.contextmanager
def _task(coroutine: Coroutine[Any, Any, None]) -> Iterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(coroutine)
    try:
        yield task
    finally:
        task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--dir", default="var/demo-city")
    sys.exit(asyncio.run(main(parser.parse_args())))
