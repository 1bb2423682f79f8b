"""The live stream: status changes, events and alarms as Server-Sent Events.

One `Hub` per app. The controller calls its listener every cycle; the listener
only notes that a new status exists (O(1), nothing else runs on the control
loop's time). The hub's own task then fans out, at most `status_interval_s`
apart (2 per second by default), or at once when the mode or the set of active
alarms changed. It polls the store for new events once per `event_poll_s`
(through `asyncio.to_thread`), only while someone listens.

Each client has a bounded queue. A client too slow to keep up is dropped, its
stream ends, and it reconnects to a fresh status: a slow tablet never holds
memory or time from the control loop.

Messages (each `event: NAME` + `data: JSON`):

    status   the status document (see `status.py`)
    alarms   {"alarms": [...]} the alarm list as `GET /api/v1/alarms?active=true`
    event    one event row as `GET /api/v1/events` returns it

A viewer's stream carries `status` only. A comment line keeps idle connections
alive every `keepalive_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from resilience.api.status import StatusCache
from resilience.cycle import Controller, SiteStatus
from resilience.store import AlarmRecord, EventRecord

log = logging.getLogger("resilience.api.stream")

_CLOSE = b""


def event_json(e: EventRecord) -> dict[str, Any]:
    return {
        "id": e.id,
        "ts": e.ts,
        "kind": e.kind,
        "mode_from": e.mode_from,
        "mode_to": e.mode_to,
        "trigger": e.trigger,
        "reason": e.reason,
        "data": e.data,
    }


def alarm_json(a: AlarmRecord) -> dict[str, Any]:
    return {
        "id": a.id,
        "code": a.code,
        "severity": a.severity,
        "message": a.message,
        "raised_ts": a.raised_ts,
        "cleared_ts": a.cleared_ts,
        "acked_ts": a.acked_ts,
        "acked_by": a.acked_by,
        "active": a.cleared_ts is None,
    }


def sse(name: str, payload: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


@dataclass(eq=False)
class Client:
    full: bool  # events and alarms too (responder and above), or status only
    queue: asyncio.Queue[bytes]
    dropped: bool = False
    last_status_s: float = -1e9  # monotonic time of its last status push


@dataclass
class Hub:
    controller: Controller
    cache: StatusCache
    status_interval_s: float = 0.5
    event_poll_s: float = 1.0
    keepalive_s: float = 15.0
    queue_size: int = 64
    clients: set[Client] = field(default_factory=set)
    dropped: int = 0

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_key: tuple[str, frozenset[str]] | None = None
        self._last_poll = -1e9
        self._last_event_id: int | None = None
        self._alarms_dirty = True

    # ------------------------------------------------------------------ wiring
    def on_status(self, status: SiteStatus) -> None:
        """The controller's listener: runs in the control loop, so it only sets a flag."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self.controller.on_status(self.on_status)
            self._task = asyncio.create_task(self._run(), name="api stream hub")

    async def stop(self) -> None:
        for client in list(self.clients):
            self._close(client)
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            # Wait for it to end without taking its CancelledError for ours: a stop that is
            # itself cancelled (a timeout around it) must say so, not return as if done.
            await asyncio.wait({task})

    def alarms_changed(self) -> None:
        """Someone acknowledged an alarm: push the list on the next round."""
        self._alarms_dirty = True
        self._wake.set()

    # ------------------------------------------------------------------ clients
    async def subscribe(self, *, full: bool) -> AsyncIterator[bytes]:
        """The SSE byte stream of one client, from a fresh status on."""
        self.start()
        client = Client(full, asyncio.Queue(self.queue_size))
        self.clients.add(client)
        try:
            body = self.cache.body()
            if body is not None:
                client.last_status_s = time.monotonic()
                yield sse("status", body)
            if full:
                yield sse("alarms", await self._alarms_payload())
            while True:
                try:
                    # asyncio.timeout, not wait_for: 3.11's wait_for drops a cancel that
                    # comes with a message, and the stream would outlive the server's stop.
                    async with asyncio.timeout(self.keepalive_s):
                        message = await client.queue.get()
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if message is _CLOSE or client.dropped:
                    return
                yield message
        finally:
            self.clients.discard(client)

    def _close(self, client: Client) -> None:
        client.dropped = True
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                client.queue.get_nowait()
        client.queue.put_nowait(_CLOSE)

    def _send(
        self, message: bytes, *, full_only: bool, status_at: float | None = None, force: bool = True
    ) -> None:
        """Queue `message` for each client; a status (`status_at` set) at most once per
        interval per client unless `force` (the mode or the alarms changed)."""
        for client in list(self.clients):
            if client.dropped or (full_only and not client.full):
                continue
            if status_at is not None:
                if not force and status_at - client.last_status_s < self.status_interval_s:
                    continue
                client.last_status_s = status_at
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                self.dropped += 1
                log.info("stream client too slow; dropping it (it will reconnect)")
                self._close(client)

    # ------------------------------------------------------------------ the task
    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            await self._poll_events()  # the baseline: only events from now on are streamed
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns and drops the cancel
            # when the wake-up (every control cycle) comes in the same step as `stop`'s
            # cancel, and `stop` then waited for this task for good.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.event_poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._round()
            except Exception:  # a store hiccup must not end the stream for good
                log.exception("stream hub round failed")

    async def _round(self) -> None:
        status = self.controller.status
        now = time.monotonic()
        if status is not None:
            key = (status.mode.value, frozenset(status.alarms))
            changed = self._last_key is not None and key != self._last_key
            if changed and self._last_key is not None and key[1] != self._last_key[1]:
                self._alarms_dirty = True
            due = any(now - c.last_status_s >= self.status_interval_s for c in self.clients)
            if self.clients and (changed or due):
                body = self.cache.body()
                if body is not None:
                    self._send(sse("status", body), full_only=False, status_at=now, force=changed)
            self._last_key = key
        if not any(c.full for c in self.clients):
            return
        if self._alarms_dirty:
            self._alarms_dirty = False
            self._send(sse("alarms", await self._alarms_payload()), full_only=True)
        if now - self._last_poll >= self.event_poll_s:
            self._last_poll = now
            await self._poll_events()

    async def _alarms_payload(self) -> bytes:
        store = self.controller.store
        alarms = await asyncio.to_thread(store.alarms, active_only=False, limit=50)
        return json.dumps({"alarms": [alarm_json(a) for a in alarms]}).encode()

    async def _poll_events(self) -> None:
        store = self.controller.store
        events = await asyncio.to_thread(store.events, limit=50)
        if self._last_event_id is None:
            self._last_event_id = events[0].id if events else 0
            return
        fresh = [e for e in reversed(events) if e.id > self._last_event_id]
        for e in fresh:
            self._send(sse("event", json.dumps(event_json(e)).encode()), full_only=True)
        if fresh:
            self._last_event_id = fresh[-1].id
