"""A site publisher in a process of its own, for tests that SIGKILL it (a gateway losing
power: no clean `offline`, the broker's last will says it). Usage:

    python -m tests.fleet.site_process HOST PORT DISTRICT SITE PASSWORD_FILE STORE KEEPALIVE_S

Prints "connected" once the broker has its birth, then runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from resilience.config import FleetSection
from resilience.fleet.publisher import FleetPublisher
from resilience.store import Store


async def main(argv: list[str]) -> None:
    host, port, district, site, password_file, store_path, keepalive = argv
    fleet = FleetSection(
        broker_host=host,
        broker_port=int(port),
        district=district,
        site_id=site,
        username=f"{district}.{site}",
        password_file=Path(password_file),
        keepalive_s=int(keepalive),
    )
    store = Store(store_path, outbox_max_rows=fleet.outbox_max_rows)
    store.start()
    state = {"schema": 1, "name": site, "mode": "islanded", "updated_ts": time.time()}
    publisher = FleetPublisher(fleet, store, lambda: state)
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    await publisher.connected.wait()
    print("connected", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
