"""`resilience eoc`'s MQTT side: take every site's state, status, events and answers from
the broker, commit them (`EocDb`), acknowledge what is committed, and send commands.

Subscriptions: the rows (``event``, ``telemetry``) and the answers (``result``) through an
MQTT 5 shared subscription (``$share/<group>/...``) so that several EOC instances split
them; the retained ``state`` and ``status`` without sharing (the broker gives retained
messages only to plain subscriptions, and every instance needs the table). The topic, not
the payload, names the site: the broker's ACL lets a site write only its own topics.

An acknowledgement (``eoc/v1/ack/<district>/<site>`` ``{"seq": N}``) is published only
after the rows it covers are committed. The EOC's birth (``eoc/v1/status`` "online", not
retained: sites replay when they connect anyway) makes every site republish its state
and replay what is unacknowledged; its will says "offline".

Time-driven changes are timers, not a poll: each site has one, armed after every commit
that touches it at `EocDb.next_change` (its silence deadline, last heard + 1.5 x
keepalive less the detection budget, or the moment its state turns stale). When it
fires the silence flag is committed (`EocDb.mark_silent`) and the line is pushed.
Listeners (`watch`: the web view's live stream, tests, bench/eoc.py) get the set of
sites whose line changed after each commit and each timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from resilience.eoc.db import EocDb, Key, Row
from resilience.fleet import payloads

log = logging.getLogger("resilience.eoc")

BATCH_MESSAGES = 500
"""Messages already queued that are committed in one transaction."""
BACKOFF_MAX_S = 10.0
IN_FLIGHT = 10
"""Acknowledgements awaiting their PUBACK at once."""


@dataclass(eq=False)
class Watch:
    """One listener's pending changes: the sites whose line changed since it last took
    them. A set, so a slow listener costs at most one entry per site, never a queue."""

    keys: set[Key] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def add(self, keys: Iterable[Key]) -> None:
        self.keys.update(keys)
        self.ready.set()

    def close(self) -> None:
        """The service stops: `take` answers None from now on."""
        self.closed = True
        self.ready.set()

    async def take(self) -> set[Key] | None:
        """The sites changed since the last take (empty: only the broker link changed),
        waiting for at least one change; None once closed."""
        await self.ready.wait()
        return self.drain()

    def drain(self) -> set[Key] | None:
        """What is pending now, without waiting."""
        if self.closed:
            return None
        self.ready.clear()
        keys, self.keys = self.keys, set()
        return keys


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None
    keepalive_s: int = 30


class EocService:
    def __init__(
        self,
        broker: BrokerSettings,
        db: EocDb,
        *,
        group: str = "eoc",
        wall: Callable[[], float] = time.time,
        identifier: str | None = None,
    ) -> None:
        self.broker = broker
        self.db = db
        self.group = group
        self.wall = wall
        self.identifier = identifier or f"eoc-{uuid.uuid4().hex[:8]}"
        self.connected = asyncio.Event()
        self.changed = asyncio.Event()  # set after each commit: the web view's live updates
        self._client: aiomqtt.Client | None = None
        self.messages = 0  # received, of every kind (bench/eoc.py's throughput)
        self.latencies_s: list[float] | None = None  # bench/eoc.py: event ts -> committed
        self._ack_due: dict[tuple[str, str], int] = {}
        self._ack_wake = asyncio.Event()
        self._failing = False
        self._watches: set[Watch] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._due: set[Key] = set()  # timers fired, not yet checked
        self._checking: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watch(self) -> Iterator[Watch]:
        """Be told which sites' lines change, from now on, while inside."""
        listener = Watch()
        self._watches.add(listener)
        try:
            yield listener
        finally:
            self._watches.discard(listener)

    def _notify(self, keys: Iterable[Key]) -> None:
        keys = set(keys)
        for listener in self._watches:
            listener.add(keys)
        self.changed.set()

    # --- timers: silence and staleness --------------------------------------------------

    def _arm(self, changes: dict[Key, float | None]) -> None:
        """(Re)arm each site's timer at its next time-driven change; None disarms it."""
        loop = asyncio.get_running_loop()
        now = self.wall()
        for key, due in changes.items():
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            if due is not None:
                delay = max(0.0, due - now)
                self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: Key) -> None:
        """A timer is due: its site joins the next check (timers due together share one
        transaction: after a broker outage hundreds fall due within a second)."""
        self._timers.pop(key, None)
        self._due.add(key)
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(self._check())

    async def _check(self) -> None:
        while self._due:
            keys, self._due = self._due, set()
            try:
                flagged = await asyncio.to_thread(self.db.mark_silent, keys, self.wall())
                changes = await asyncio.to_thread(self.db.next_change, self.wall(), keys)
            except (sqlite3.Error, OSError):
                # the store failed: the reads still judge by the deadline; the timers retry
                log.exception("eoc: flagging %d silent site(s) failed; again in 1 s", len(keys))
                changes = {k: self.wall() + 1.0 for k in keys}
                flagged = set()
            for district, site in sorted(flagged):
                log.info("eoc: %s/%s silent past 1.5 x its keepalive: offline", district, site)
            # a commit meanwhile armed a newer timer for some: theirs stands
            self._arm({k: due for k, due in changes.items() if k not in self._timers})
            self._notify(keys)

    def _disarm(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._checking is not None:
            self._checking.cancel()
        self._due.clear()

    async def run(self, stop: asyncio.Event) -> None:
        # the sites known from before: each is judged by its deadline from the start
        self._arm(await asyncio.to_thread(self.db.next_change, self.wall()))
        try:
            await self._run(stop)
        finally:
            self._disarm()
            for listener in list(self._watches):  # the web view's streams end with it
                listener.close()

    async def _run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff = 0.5
            except* (aiomqtt.MqttError, OSError) as group:
                if not self._failing:  # once, and its recovery once; not every retry
                    log.warning("eoc: broker lost or unreachable: %s", group.exceptions[0])
                self._failing = True
            if self.connected.is_set():
                self.connected.clear()
                self._notify(())  # the page says the EOC's own link is down
            self._client = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _mqtt_client(self) -> aiomqtt.Client:
        broker = self.broker
        context = None
        if broker.tls_ca is not None:
            context = ssl.create_default_context(cafile=str(broker.tls_ca))
        offline = json.dumps({"schema": 1, "status": "offline"}).encode()
        return aiomqtt.Client(
            broker.host,
            broker.port,
            username=broker.username,
            password=broker.password,
            identifier=self.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            keepalive=broker.keepalive_s,
            will=aiomqtt.Will(payloads.EOC_STATUS_TOPIC, offline, qos=1),
            tls_context=context,
            timeout=10.0,
        )

    async def _session(self, stop: asyncio.Event) -> None:
        async with self._mqtt_client() as client:
            shared = f"$share/{self.group}/shelter/v1/+/+"
            for topic in (f"{shared}/event", f"{shared}/telemetry", f"{shared}/result"):
                await client.subscribe(topic, qos=1)
            for topic in ("shelter/v1/+/+/state", "shelter/v1/+/+/status"):
                await client.subscribe(topic, qos=1)
            birth = json.dumps({"schema": 1, "status": "online", "ts": self.wall()}).encode()
            await client.publish(payloads.EOC_STATUS_TOPIC, birth, qos=1)
            self._client = client
            if self._failing:
                log.warning("eoc: connected to the broker again")
                self._failing = False
            self.connected.set()
            self._notify(())
            reading = asyncio.create_task(self._read(client))
            acking = asyncio.create_task(self._send_acks(client))
            stopping = asyncio.create_task(stop.wait())
            tasks = {reading, acking, stopping}
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
            for task in (reading, acking):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    async def _read(self, client: aiomqtt.Client) -> None:
        messages = aiter(client.messages)
        while True:
            batch = [await anext(messages)]
            while len(client.messages) and len(batch) < BATCH_MESSAGES:
                batch.append(await anext(messages))
            await self._take(client, batch)

    async def _take(self, client: aiomqtt.Client, batch: list[aiomqtt.Message]) -> None:
        """Commit one read of the broker in one transaction, then acknowledge."""
        now = self.wall()
        rows: list[Row] = []
        states: list[tuple[str, str, dict[str, Any]]] = []
        statuses: list[tuple[str, str, dict[str, Any]]] = []
        results: list[dict[str, Any]] = []
        heard: set[Key] = set()
        self.messages += len(batch)
        for message in batch:
            parts = str(message.topic).split("/")
            if len(parts) != 5 or parts[:2] != ["shelter", "v1"]:
                continue
            district, site, leaf = parts[2], parts[3], parts[4]
            try:
                raw = message.payload if isinstance(message.payload, bytes) else b""
                doc = json.loads(raw) if raw else None
                if not isinstance(doc, dict):
                    continue
                # heard from the site now: not a retained copy (the broker's memory), nor
                # its will (the broker speaking for it)
                if not message.retain and not (leaf == "status" and doc.get("status") != "online"):
                    heard.add((district, site))
                if leaf == "state":
                    states.append((district, site, doc))
                elif leaf == "status":
                    statuses.append((district, site, doc))
                elif leaf == "result":
                    results.append({**doc, "district": district, "site": site})
                elif leaf in ("event", "telemetry"):
                    rows.append(_row(district, site, doc))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("eoc: ignoring a malformed message on %s: %s", message.topic, exc)
        moved, changes = await asyncio.to_thread(
            functools.partial(
                self.db.put_batch,
                states=states,
                statuses=statuses,
                results=results,
                rows=rows,
                heard=heard,
                now=now,
            )
        )
        self._arm(changes)
        if rows:
            if self.latencies_s is not None:
                committed = self.wall()
                self.latencies_s.extend(committed - r.ts for r in rows if r.kind == "event")
            # sent beside the reading (a PUBACK lost with the broker must not stop it); only
            # each site's latest acknowledgement matters
            self._ack_due.update(moved)
            self._ack_wake.set()
        touched = {(d, s) for d, s, _ in states} | {(d, s) for d, s, _ in statuses} | heard
        touched |= {(r["district"], r["site"]) for r in results}
        self._notify(touched | {(r.district, r.site) for r in rows})

    async def _send_acks(self, client: aiomqtt.Client) -> None:
        while True:
            await self._ack_wake.wait()
            self._ack_wake.clear()
            due, self._ack_due = self._ack_due, {}
            items = list(due.items())
            for start in range(0, len(items), IN_FLIGHT):
                await asyncio.gather(
                    *(
                        client.publish(
                            payloads.ack_topic(district, site),
                            json.dumps({"schema": 1, "seq": seq}).encode(),
                            qos=1,
                        )
                        for (district, site), seq in items[start : start + IN_FLIGHT]
                    )
                )

    async def send_command(
        self,
        district: str,
        site: str | None,
        command: str,
        args: dict[str, Any],
        operator: str,
        lifetime_s: float = 300.0,
    ) -> str:
        """Send a command to one site or (site None) to every site of a district; its id.
        ValueError if it is not one the EOC may give; MqttError when not connected."""
        if command not in payloads.EOC_COMMANDS:
            raise ValueError(f"command {command!r} is not one the EOC may give")
        if not 0 < lifetime_s <= payloads.MAX_COMMAND_LIFETIME_S:
            raise ValueError(f"lifetime_s must be in (0, {payloads.MAX_COMMAND_LIFETIME_S:g}]")
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected to the broker")
        command_id = uuid.uuid4().hex
        now = self.wall()
        target = site if site is not None else payloads.DISTRICT_WIDE
        message = {
            "schema": payloads.SCHEMA_VERSION,
            "id": command_id,
            "operator": operator,
            "command": command,
            "args": args,
            "issued_ts": now,
            "expires_ts": now + lifetime_s,
        }
        await asyncio.to_thread(
            self.db.put_command,
            command_id,
            district,
            target,
            operator,
            command,
            args,
            now,
            now + lifetime_s,
        )
        await client.publish(f"eoc/v1/cmd/{district}/{target}", json.dumps(message).encode(), qos=1)
        return command_id


def _row(district: str, site: str, doc: dict[str, Any]) -> Row:
    return Row(
        district=district,
        site=site,
        seq=int(doc["seq"]),
        floor=int(doc.get("floor", 1)),
        session=str(doc["session"]),
        ts=float(doc["ts"]),
        kind=str(doc["kind"]),
        historical=bool(doc.get("historical", False)),
        body=dict(doc.get("body") or {}),
    )
