"""`[fleet]` on a running site: the publisher fed from the controller's published status.

`resilience.service` imports this module only for a site file with `[fleet]` (aiomqtt and
paho are then loaded; tests/test_run_imports.py checks that no other site loads them).
The state is built from the same status document the API serves (`api.status`), at most
once per state check, never on the control loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from resilience.api.status import StatusCache
from resilience.config import FleetSection
from resilience.cycle import Controller
from resilience.fleet.payloads import state_payload
from resilience.fleet.publisher import Commander, FleetPublisher

log = logging.getLogger("resilience.fleet")


def state_source(
    controller: Controller, fleet: FleetSection
) -> Callable[[], Mapping[str, Any] | None]:
    cache = StatusCache(controller)
    targets_h = {
        tier.label: hours for tier, hours in controller.config.dispatch.tier_targets_h().items()
    }

    def state() -> Mapping[str, Any] | None:
        doc = cache.document()
        if doc is None:
            return None
        return state_payload(
            doc, district=fleet.district, site_id=fleet.site_id, targets_h=targets_h
        )

    return state


def commander(controller: Controller) -> Commander:
    """EOC commands decided by the site's own controller, with its interlocks, audited as
    actor ``eoc:<operator>``, role ``eoc``."""

    async def decide(operator: str, command: str, args: dict[str, Any]) -> tuple[str, str]:
        actor = f"eoc:{operator}"
        if command == "ack_alarm":
            try:
                alarm_id = int(args["alarm_id"])
            except (TypeError, ValueError):
                return "refused", f"alarm_id {args['alarm_id']!r} is not an alarm's number"
            result = await controller.acknowledge_alarm(alarm_id, actor=actor, role="eoc")
        else:
            result = await controller.submit(command, args, actor=actor, role="eoc")
        return result.outcome, result.detail

    return decide


def start_publisher(
    controller: Controller, fleet: FleetSection, stop: asyncio.Event
) -> tuple[FleetPublisher, asyncio.Task[None]]:
    """The publisher and its task (ends once `stop` is set, after saying `offline`)."""
    publisher = FleetPublisher(
        fleet,
        controller.store,
        state_source(controller, fleet),
        wall=controller.wall,
        commander=commander(controller),
    )
    task = asyncio.create_task(publisher.run(stop), name="fleet-publisher")
    task.add_done_callback(_log_failure)
    return publisher, task


def _log_failure(task: asyncio.Task[None]) -> None:
    """The control loop goes on without the city layer, but not in silence."""
    if not task.cancelled() and task.exception() is not None:
        log.error("fleet: the publisher stopped", exc_info=task.exception())
