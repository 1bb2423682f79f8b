"""Retention: delete telemetry older than the site's `telemetry_retention_days`, and refused
calls older than its `refusal_retention_days`.

A gateway stores its SQLite file on an SD card; telemetry is the one table that
grows without end (one sample per point every `telemetry_period_s`). The
service runs `prune_telemetry_forever` beside the control loop: once at start,
then every `every_s` (an hour by default), it queues
`Store.prune_telemetry(now - retention)`. The delete runs on the store's writer
thread like any write, never in the control loop. The same turn queues
`Store.prune_refusals(now - refusal retention)`: the audit rows of calls that were
not accepted (a viewer's forbidden mutations, bad input, refused commands; already
coalesced to a bounded number per minute, see `store.py`). Events, accepted
commands, alarms and state are kept: they are the audit trail.

SQLite reuses the freed pages for new samples, so the file stops growing once
the retention window is full; it does not shrink (no VACUUM on a running
controller). Times: wall seconds (the store's timestamps), days in the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from resilience.store import Store

log = logging.getLogger("resilience.retention")

__all__ = ["DAY_S", "prune_once", "prune_refusals_once", "prune_telemetry_forever"]

DAY_S = 86400.0


async def prune_once(
    store: Store, retention_days: float, *, wall: Callable[[], float] = time.time
) -> int:
    """Delete telemetry older than `retention_days`; returns how many samples went."""
    cutoff = wall() - retention_days * DAY_S
    deleted = await store.committed(store.prune_telemetry(cutoff))
    if deleted:
        log.info("pruned %d telemetry samples older than %g days", deleted, retention_days)
    return deleted


async def prune_refusals_once(
    store: Store, retention_days: float, *, wall: Callable[[], float] = time.time
) -> int:
    """Delete the refused calls older than `retention_days`; returns how many rows went."""
    cutoff = wall() - retention_days * DAY_S
    deleted = await store.committed(store.prune_refusals(cutoff))
    if deleted:
        log.info("pruned %d refused calls older than %g days", deleted, retention_days)
    return deleted


async def prune_telemetry_forever(
    store: Store,
    retention_days: float,
    stop: asyncio.Event,
    *,
    refusal_retention_days: float | None = None,
    every_s: float = 3600.0,
    wall: Callable[[], float] = time.time,
) -> None:
    """Prune now and then every `every_s` until `stop` is set (refused calls too, when
    `refusal_retention_days` is given). A failed prune (the store unhealthy) is retried
    at the next turn; it never stops the loop."""
    while not stop.is_set():
        try:
            await prune_once(store, retention_days, wall=wall)
            if refusal_retention_days is not None:
                await prune_refusals_once(store, refusal_retention_days, wall=wall)
        except Exception as exc:  # the store logs its own failures; keep going
            log.warning("pruning failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
