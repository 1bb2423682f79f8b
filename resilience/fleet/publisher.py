"""The site's side of the city layer: publish state, events and telemetry to the broker,
and forward the outbox until the EOC acknowledges it.

Store and forward: what the EOC must not miss is an outbox row (resilience/store.py),
written in the transaction of the record it mirrors. The publisher only reads rows and
sends them; it deletes nothing. A row goes when the EOC's acknowledgement
(``eoc/v1/ack/<district>/<site>``, the highest seq it has committed) covers it, never on
the broker's PUBACK: a broker killed before its next autosave forgets what it had
PUBACKed, and a broker that stays up still cannot give a row to an EOC that is down. So:

- on every connect, the rows already in the outbox are sent again, oldest first, flagged
  historical (they never overwrite live state at the EOC);
- when the EOC announces itself (``eoc/v1/status`` "online"), the state is republished
  and what is unacknowledged is replayed (historical);
- rows the EOC has not acknowledged resend_after_s after they were sent are sent again.

The EOC deduplicates on (site, seq), so a row sent twice is shown once.

The connection: MQTT 5 (aiomqtt over paho), clean start (the outbox, not the broker's
session, is the memory), a retained ``online`` birth on ``<prefix>/status`` and a
retained ``offline`` last will, TLS with the site file's CA (and client certificate) or
username and password. A lost connection is logged once and retried with a doubling,
jittered back-off (0.5 s to 10 s); its recovery is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiomqtt

from resilience.config import FleetSection
from resilience.fleet import payloads
from resilience.store import OutboxRow, Store

log = logging.getLogger("resilience.fleet")

BATCH_ROWS = 200
"""Rows read and published (concurrently, QoS 1) per round."""
IN_FLIGHT = 10
"""QoS 1 publishes awaiting their PUBACK at once."""
ANSWERS_KEPT = 1000
"""Command ids remembered with their answer: a command delivered twice (QoS 1 may) is
answered twice and applied once."""
Commander = Callable[[str, str, dict[str, Any]], Awaitable[tuple[str, str]]]
"""(operator, command, args) -> (outcome, detail): how the site decides an EOC command."""
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0
"""A broker back after an outage is found within this (bench/eoc.py's recovered_s); each
wait is drawn between half and all of the back-off, so hundreds of sites do not all
reconnect in the same instant."""


def read_password(path: Path) -> str:
    """The broker password: the file's first line (the site file holds no secret)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].strip() if lines else ""


def tls_context(fleet: FleetSection) -> ssl.SSLContext | None:
    if fleet.tls_ca is None:
        return None
    context = ssl.create_default_context(cafile=str(fleet.tls_ca))
    if fleet.tls_cert is not None and fleet.tls_key is not None:
        context.load_cert_chain(str(fleet.tls_cert), str(fleet.tls_key))
    return context


class FleetPublisher:
    """Publishes one site (see the module docstring); `run(stop)` until stop is set.

    `state` gives the state payload to publish (`payloads.state_payload`), or None before
    the controller has one. `wall` is Unix time [s]; `monotonic` paces the state.
    """

    def __init__(
        self,
        fleet: FleetSection,
        store: Store,
        state: Callable[[], Mapping[str, Any] | None],
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        session: str | None = None,
        commander: Commander | None = None,
    ) -> None:
        self.fleet = fleet
        self.store = store
        self.state = state
        self.wall = wall
        self.monotonic = monotonic
        self.session = session or uuid.uuid4().hex[:12]
        self.commander = commander
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._commands: set[asyncio.Task[None]] = set()
        self.prefix = fleet.topic_prefix
        self._result_topic = payloads.result_topic(fleet.district, fleet.site_id)
        self.connected = asyncio.Event()  # for tests and the service's log
        self.connects = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_state: Mapping[str, Any] | None = None
        self._state_sent_s = -float("inf")
        self._republish = False
        self._sent_at: dict[int, float] = {}  # seq -> when first sent (unacknowledged)
        self._resend_jitter_s = random.uniform(0, fleet.resend_after_s / 4)
        self.acked_seq = 0  # the highest acknowledgement applied to the outbox
        self.sent_seq = 0  # the highest seq the broker has taken (PUBACK) on this connection
        self._sent = asyncio.Event()
        self._acked = asyncio.Event()
        store.on_outbox(self._outbox_written)

    async def wait_acknowledged(self, seq: int) -> None:
        """Until an acknowledgement covering `seq` has been applied to the outbox."""
        while self.acked_seq < seq:
            self._acked.clear()
            await self._acked.wait()

    async def wait_sent(self, seq: int) -> None:
        """Until the broker has taken (PUBACK) the row `seq` on the present connection."""
        while self.sent_seq < seq:
            self._sent.clear()
            await self._sent.wait()

    # --- the connection loop -----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        backoff = BACKOFF_INITIAL_S
        failing = False
        while not stop.is_set():
            try:
                await self._connected_session(stop)
                backoff = BACKOFF_INITIAL_S
            except* (aiomqtt.MqttError, OSError) as group:
                if not failing:
                    log.warning(
                        "fleet: broker %s:%d lost or unreachable: %s (retrying)",
                        self.fleet.broker_host,
                        self.fleet.port,
                        group.exceptions[0],
                    )
                failing = True
            else:
                failing = False
            self.connected.clear()
            if stop.is_set():
                break
            if self.connects and not failing:
                backoff = BACKOFF_INITIAL_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _client(self) -> aiomqtt.Client:
        fleet = self.fleet
        password = None if fleet.password_file is None else read_password(fleet.password_file)
        will = aiomqtt.Will(
            f"{self.prefix}/status",
            payloads.encode(payloads.status_payload(False, session=self.session, ts=self.wall())),
            qos=1,
            retain=True,
        )
        return aiomqtt.Client(
            fleet.broker_host,
            fleet.port,
            username=fleet.username,
            password=password,
            identifier=f"site.{fleet.district}.{fleet.site_id}",
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            keepalive=fleet.keepalive_s,
            will=will,
            tls_context=tls_context(fleet),
            timeout=10.0,
        )

    async def _connected_session(self, stop: asyncio.Event) -> None:
        async with self._client() as client:
            await client.subscribe(
                payloads.ack_topic(self.fleet.district, self.fleet.site_id), qos=1
            )
            await client.subscribe(payloads.EOC_STATUS_TOPIC, qos=1)
            if self.commander is not None:
                for topic in payloads.command_topics(self.fleet.district, self.fleet.site_id):
                    await client.subscribe(topic, qos=1)
            await self._publish_online(client)
            self.connects += 1
            if self.connects > 1:
                log.warning("fleet: connected to the broker again")
            # rows up to this were written before this connection: historical when sent
            _rows, _low, backlog_high = await asyncio.to_thread(self.store.outbox_bounds)
            self.connected.set()
            self._last_state = None  # a new connection: republish the state now
            async with asyncio.TaskGroup() as group:
                sender = group.create_task(self._send(client, stop, backlog_high))
                receiver = group.create_task(self._receive(client))
                await stop.wait()  # or an error in either task cancels this wait
                receiver.cancel()
                sender.cancel()
            with contextlib.suppress(aiomqtt.MqttError):  # a clean stop: say so, no will
                offline = payloads.status_payload(False, session=self.session, ts=self.wall())
                await client.publish(
                    f"{self.prefix}/status", payloads.encode(offline), qos=1, retain=True
                )

    async def _publish_online(self, client: aiomqtt.Client) -> None:
        """The retained birth, also the heartbeat every keepalive_s: the EOC flags a site it
        has not heard from for 1.5 x keepalive_s offline by itself, whatever the broker's
        keepalive check takes to publish the will."""
        online = payloads.status_payload(
            True,
            session=self.session,
            ts=self.wall(),
            keepalive_s=self.fleet.keepalive_s,
            state_max_interval_s=self.fleet.state_max_interval_s,
        )
        await client.publish(f"{self.prefix}/status", payloads.encode(online), qos=1, retain=True)

    # --- receiving: acknowledgements, the EOC's birth ---------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        ack = payloads.ack_topic(self.fleet.district, self.fleet.site_id)
        async for message in client.messages:
            topic = str(message.topic)
            body = message.payload if isinstance(message.payload, bytes) else b""
            if topic == ack:
                try:
                    seq = payloads.parse_ack(body)
                except ValueError as exc:
                    log.warning("fleet: ignoring an acknowledgement on %s: %s", topic, exc)
                    continue
                await self.store.committed(self.store.outbox_ack(seq))
                for sent in [n for n in self._sent_at if n <= seq]:
                    del self._sent_at[sent]
                self.acked_seq = max(self.acked_seq, seq)
                self._acked.set()
            elif topic == payloads.EOC_STATUS_TOPIC and b'"online"' in body:
                self._republish = True
                self._wake.set()
            elif topic.startswith("eoc/v1/cmd/") and self.commander is not None:
                # decided beside the reading: a command waits for a control cycle
                task = asyncio.create_task(self._command(client, body))
                self._commands.add(task)
                task.add_done_callback(self._commands.discard)

    async def _command(self, client: aiomqtt.Client, body: bytes) -> None:
        """Decide one EOC command through the site's own controller and answer it on
        ``<prefix>/result``. Refused here, before the controller, when malformed, not
        allowed or expired (audited as such); otherwise the controller decides and audits."""
        assert self.commander is not None
        fleet = self.fleet
        command_id: str | None
        try:
            command_id, operator, name, args = payloads.parse_command(body, self.wall())
        except payloads.CommandRefused as refused:
            command_id, name = refused.command_id, refused.command
            outcome, detail = "refused", str(refused)
            self.store.record_command(
                "eoc", "eoc", name or "?", {"eoc_command_id": command_id}, outcome, detail
            )
        else:
            answer = self._answers.get(command_id or "")
            if answer is not None:  # delivered again: the same answer, not a second action
                await client.publish(self._result_topic, payloads.encode(answer), qos=1)
                return
            try:
                outcome, detail = await self.commander(
                    operator, name, {**args, "eoc_command_id": command_id}
                )
            except Exception as exc:  # a bug in deciding must still be answered
                log.exception("fleet: command %s failed", command_id)
                outcome, detail = "error", f"{type(exc).__name__}: {exc}"
        answer = payloads.result_payload(
            district=fleet.district,
            site_id=fleet.site_id,
            command_id=command_id,
            command=name,
            outcome=outcome,
            detail=detail,
            ts=self.wall(),
        )
        if command_id is not None:
            self._answers[command_id] = answer
            while len(self._answers) > ANSWERS_KEPT:
                self._answers.popitem(last=False)
        await client.publish(self._result_topic, payloads.encode(answer), qos=1)

    # --- sending: the outbox and the state ---------------------------------------------

    def _outbox_written(self) -> None:
        """From the store's writer thread after a commit with outbox rows."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    async def _send(self, client: aiomqtt.Client, stop: asyncio.Event, backlog_high: int) -> None:
        live_from = backlog_high  # rows up to this are historical
        sent_up_to = 0
        self.sent_seq = 0
        self._sent_at.clear()
        next_state_s = self.monotonic()
        next_beat_s = next_state_s + self.fleet.keepalive_s
        while not stop.is_set():
            self._wake.clear()
            if self._republish:  # the EOC came (back) online: state now, replay the rest
                self._republish = False
                self._last_state = None
                live_from, sent_up_to = max(live_from, sent_up_to), 0
                self._sent_at.clear()
            now = self.monotonic()
            if now >= next_beat_s:
                await self._publish_online(client)
                next_beat_s = now + self.fleet.keepalive_s
            if now >= next_state_s or self._last_state is None:
                await self._publish_state(client)
                next_state_s = now + self.fleet.state_min_interval_s
            rows, floor = await asyncio.to_thread(
                self.store.outbox_page, after_seq=sent_up_to, limit=BATCH_ROWS
            )
            if rows:
                await self._publish_rows(client, rows, floor, live_from)
                sent_up_to = rows[-1].seq
                self.sent_seq = max(self.sent_seq, sent_up_to)
                self._sent.set()
                sent_s = self.monotonic()
                for row in rows:
                    self._sent_at.setdefault(row.seq, sent_s)
                if len(rows) == BATCH_ROWS:
                    continue  # more backlog: no waiting
            now = self.monotonic()
            deadline = min(next_state_s, next_beat_s)
            if self._sent_at:
                # jittered: sites that reconnected together do not all resend together
                oldest_s = next(iter(self._sent_at.values())) + self._resend_jitter_s
                if now >= oldest_s + self.fleet.resend_after_s:
                    # sent and not acknowledged for resend_after_s: again, historical
                    live_from, sent_up_to = max(live_from, sent_up_to), 0
                    self._sent_at.clear()
                    self._resend_jitter_s = random.uniform(0, self.fleet.resend_after_s / 4)
                    continue
                deadline = min(deadline, oldest_s + self.fleet.resend_after_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.01, deadline - now))

    async def _publish_rows(
        self, client: aiomqtt.Client, rows: list[OutboxRow], floor: int, live_from: int
    ) -> None:
        fleet = self.fleet
        publishes = []
        for row in rows:
            message = payloads.envelope(
                district=fleet.district,
                site_id=fleet.site_id,
                session=self.session,
                seq=row.seq,
                floor=floor,
                historical=row.seq <= live_from,
                ts=row.ts,
                kind=row.kind,
                body=row.body,
            )
            topic = f"{self.prefix}/{'event' if row.kind == 'event' else 'telemetry'}"
            publishes.append((topic, payloads.encode(message)))
        # at most IN_FLIGHT PUBACKs awaited at once (aiomqtt warns beyond 10 pending calls)
        for start in range(0, len(publishes), IN_FLIGHT):
            chunk = publishes[start : start + IN_FLIGHT]
            await asyncio.gather(*(client.publish(t, body, qos=1) for t, body in chunk))

    async def _publish_state(self, client: aiomqtt.Client) -> None:
        """The retained state: on change at most every state_min_interval_s, and at least
        every state_max_interval_s. Each one published is also a telemetry row."""
        now = self.monotonic()
        state = self.state()
        if state is None:
            return
        stale = now - self._state_sent_s >= self.fleet.state_max_interval_s
        if not stale and not payloads.changed(self._last_state, state):
            return
        await client.publish(f"{self.prefix}/state", payloads.encode(state), qos=1, retain=True)
        self._last_state = state
        self._state_sent_s = now
        self.store.outbox_telemetry(state, ts=float(state.get("updated_ts") or self.wall()))
