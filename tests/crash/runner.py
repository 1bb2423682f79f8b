"""A controller process for the crash test: `resilience.service.start` plus a line protocol.

    python -m tests.crash.runner SITE_FILE STORE PORTS_JSON

runs the real controller (drivers, store, supervisor, control loop; no API) for
the site file with its devices moved to the ports in PORTS_JSON (what
`python -m firmware_sim --free-ports` printed), on the SQLite store STORE.

stdout, one JSON object per line, flushed at once:
    {"started": true, "ocpp_url": url}    the control loop runs (url: its OCPP central
                                          system, null on a site without stations)
    {"mode": "islanded", "cycle": n}      on every mode change (the first cycle included)
    {"ack": id, "outcome": "accepted"}    an operator command answered, i.e. committed
stdin, one JSON object per line:
    {"id": id, "command": "...", "args": {...}}   submitted as actor "probe-<id>"

The test SIGKILLs this process at random moments; nothing here cleans up on purpose.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from resilience.config import load_site
from resilience.cycle import SiteStatus
from resilience.service import quiet_pymodbus, start


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def main(site_file: str, store_path: str, ports_json: str) -> None:
    quiet_pymodbus()
    config = load_site(site_file).with_ports(json.loads(ports_json))
    running = await start(config, store_path=store_path)
    last: list[str] = []

    def on_status(status: SiteStatus) -> None:
        mode = status.mode.value
        if not last or last[-1] != mode:
            last.append(mode)
            emit(mode=mode, cycle=status.cycle)

    running.controller.on_status(on_status)
    emit(started=True, ocpp_url=running.csms.url if running.csms is not None else None)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def answer(request: dict[str, Any]) -> None:
        result = await running.controller.submit(
            str(request["command"]),
            dict(request.get("args", {})),
            actor=f"probe-{request['id']}",
            role="operator",
        )
        emit(ack=request["id"], outcome=result.outcome)

    pending: set[asyncio.Task[None]] = set()
    while not running.task.done():
        line = await reader.readline()
        if not line:
            await running.task
            break
        task = asyncio.create_task(answer(json.loads(line)))
        pending.add(task)
        task.add_done_callback(pending.discard)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
