"""The EOC's receiving half as the tests need it: a real MQTT client with the EOC's account
that announces itself (eoc/v1/status "online"), takes every site's events and telemetry,
deduplicates them on (site, seq) and acknowledges what it holds without a gap
(`payloads.covered`). It keeps what it received in memory; `resilience eoc` will keep it
in SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from resilience.fleet import payloads
from tools.mqtt_broker import EOC_PASSWORD, EOC_USER, Broker


@dataclass
class Receiver:
    broker: Broker
    acknowledge: bool = True
    rows: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)  # site -> seq -> row
    duplicates: int = 0
    acked: dict[str, int] = field(default_factory=dict)
    retained: dict[str, dict[str, Any]] = field(default_factory=dict)  # topic -> last payload
    connects: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _received: dict[str, set[int]] = field(default_factory=dict)
    _acks: set[asyncio.Task[None]] = field(default_factory=set)

    def _ack_done(self, task: asyncio.Task[None]) -> None:
        self._acks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a lost connection is the session's business

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(aiomqtt.MqttError):
                await self._session(stop)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)

    async def _session(self, stop: asyncio.Event) -> None:
        async with aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=EOC_USER,
            password=EOC_PASSWORD,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as client:
            await client.subscribe("shelter/v1/+/+/#", qos=1)
            await client.publish(payloads.EOC_STATUS_TOPIC, b'{"status":"online"}', qos=1)
            self.connects += 1
            self._changed.set()
            reading = asyncio.create_task(self._read(client))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            reading.cancel()
            for task in list(self._acks):
                task.cancel()
            if reading.done() and not reading.cancelled():
                reading.result()

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            assert isinstance(message.payload, bytes)
            doc = json.loads(message.payload)
            leaf = topic.rsplit("/", 1)[1]
            if leaf in ("state", "status"):
                self.retained[topic] = doc
            elif leaf in ("event", "telemetry"):
                site = f"{doc['district']}/{doc['site']}"
                held = self.rows.setdefault(site, {})
                if doc["seq"] in held:
                    self.duplicates += 1
                else:
                    held[doc["seq"]] = doc
                if self.acknowledge:
                    got = self._received.setdefault(site, set())
                    got.add(doc["seq"])
                    acked, pending = payloads.covered(self.acked.get(site, 0), doc["floor"], got)
                    self._received[site] = pending
                    if acked > self.acked.get(site, 0):
                        self.acked[site] = acked
                        district, site_id = site.split("/")
                        ack = json.dumps({"schema": 1, "seq": acked}).encode()
                        # not awaited here: a PUBACK lost with the broker must not stop reading
                        sending = asyncio.create_task(
                            client.publish(payloads.ack_topic(district, site_id), ack, qos=1)
                        )
                        self._acks.add(sending)
                        sending.add_done_callback(self._ack_done)
            self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
