"""The EOC's API over its real service and broker: roles (viewer reads, operator commands),
a command confirmed before it is sent, the command on the broker for the district, and
the live stream pushing a site's changed line."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from resilience.auth import Principal, TokenStore
from resilience.eoc.app import EocServer, create_eoc_app
from resilience.eoc.db import EocDb
from resilience.eoc.service import BrokerSettings, EocService
from tests.fleet.test_publisher import SITE, Site, fleet_section
from tools.mqtt_broker import EOC_PASSWORD, EOC_USER, Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", [SITE])
    b.start()
    yield b
    b.stop()


async def test_roles_confirmation_and_a_district_command(broker: Broker, tmp_path: Path) -> None:
    db = EocDb(tmp_path / "eoc.sqlite")
    tokens = TokenStore(tmp_path / "eoc.sqlite")
    viewer = tokens.create("screen", "viewer", by="test")
    operator = tokens.create("zeynep", "operator", by="test")
    expired = tokens.create("old", "operator", by="test", now=time.time() - 120, expires_s=60)
    service = EocService(BrokerSettings(broker.host, broker.port, EOC_USER, EOC_PASSWORD), db)
    stop = asyncio.Event()
    eoc = asyncio.create_task(service.run(stop))
    site = Site(fleet_section(broker, tmp_path), tmp_path / "site.sqlite")
    app = create_eoc_app(service, db, tokens)
    transport = httpx.ASGITransport(app=app)
    server = EocServer(app, "127.0.0.1", 0, name="eoc")
    url = await server.start()
    try:
        await asyncio.wait_for(service.connected.wait(), 10)
        site.start()
        async with asyncio.timeout(10):
            while not await asyncio.to_thread(db.sites, time.time()):
                service.changed.clear()
                await service.changed.wait()
        async with httpx.AsyncClient(transport=transport, base_url="http://eoc") as http:
            assert (await http.get("/api/sites")).status_code == 401
            page = await http.get("/")
            assert page.status_code == 200 and "Barınaklar" in page.text  # Turkish built in
            as_viewer = {"Authorization": f"Bearer {viewer}"}
            as_operator = {"Authorization": f"Bearer {operator}"}
            listed = (await http.get("/api/sites", headers=as_viewer)).json()["sites"]
            assert [(s["district"], s["site"], s["offline"]) for s in listed] == [
                ("kadikoy", "school-1", False)
            ]
            one = await http.get("/api/sites/kadikoy/school-1", headers=as_viewer)
            assert one.status_code == 200 and one.json()["state"]["mode"] == "grid_connected"
            request = {"district": "kadikoy", "command": "planned_island"}
            assert (
                await http.post("/api/commands", json=request, headers=as_viewer)
            ).status_code == 403
            bypass = {"district": "kadikoy", "command": "close_pcc", "confirm": True}
            assert (
                await http.post("/api/commands", json=bypass, headers=as_operator)
            ).status_code == 422
            ask = await http.post("/api/commands", json=request, headers=as_operator)
            assert ask.status_code == 409 and ask.json()["sites"] == ["school-1"]
            async with aiomqtt.Client(
                broker.host,
                broker.port,
                username=SITE.username,
                password=SITE.password,
                protocol=aiomqtt.ProtocolVersion.V5,
            ) as listener:  # as the site's account: it may read its district's commands
                await listener.subscribe("eoc/v1/cmd/kadikoy/_all", qos=1)
                sent = await http.post(
                    "/api/commands", json={**request, "confirm": True}, headers=as_operator
                )
                assert sent.status_code == 202
                async with asyncio.timeout(10):
                    message = await anext(aiter(listener.messages))
                assert isinstance(message.payload, bytes)
                command = json.loads(message.payload)
                assert command["id"] == sent.json()["id"] and command["operator"] == "zeynep"
                assert command["expires_ts"] > time.time()
            # refusals audited, with who, what and why (a sent command too)
            as_expired = {"Authorization": f"Bearer {expired}"}
            assert (await http.get("/api/sites", headers=as_expired)).status_code == 401
            bad = {**request, "lifetime_s": -1, "confirm": True}
            invalid = await http.post("/api/commands", json=bad, headers=as_operator)
            assert invalid.status_code == 422 and "lifetime_s" in invalid.json()["detail"]
            nowhere = {**request, "site": "no-such-site", "confirm": True}
            unknown = await http.post("/api/commands", json=nowhere, headers=as_operator)
            assert unknown.status_code == 404
            for _ in range(2):  # the same refusal twice in a minute: one row, counted
                assert (
                    await http.post("/api/commands", json=request, headers=as_viewer)
                ).status_code == 403
            assert (await http.get("/api/audit", headers=as_viewer)).status_code == 403
            trail = (await http.get("/api/audit", headers=as_operator)).json()["audit"]
            seen = [(a["actor"], a["outcome"], a["count"], a["detail"]) for a in reversed(trail)]
            forbidden = "role: viewer may not do this (needs operator or above)"
            sent_to = f"command {sent.json()['id']} sent to 1 site(s): school-1"
            assert seen == [
                ("screen", "forbidden", 3, forbidden),
                ("zeynep", "rejected", 1, "command: 'close_pcc' is not one of ack_alarm,"
                 " planned_island, reconnect, set_tier"),
                ("zeynep", "accepted", 1, sent_to),
                ("old", "refused", 1, seen[3][3]),
                ("zeynep", "rejected", 1, "body.lifetime_s: Input should be greater than 0"),
                ("zeynep", "rejected", 1, "no site known at kadikoy/no-such-site"),
            ]  # fmt: skip
            assert seen[3][3].startswith("token expired at ")
            assert trail[0]["args"]["site"] == "no-such-site"
        # the live stream, over a real server (a stream is not buffered there)
        async with httpx.AsyncClient(base_url=url) as http:
            refused = await http.get("/api/stream")
            assert refused.status_code == 401
            async with http.stream("GET", "/api/stream", headers=as_viewer) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                messages = sse_messages(stream)
                first = await anext(messages)
                assert first["full"] and first["connected"]
                assert [s["site"] for s in first["sites"]] == ["school-1"]
                alarm_id = await site.store.committed(
                    site.store.raise_alarm("grid_lost", "critical", "grid lost")
                )
                alarm = {"code": "grid_lost", "message": "grid lost"}
                site.state = {
                    **site.state,
                    "mode": "islanded",
                    "alarms": [alarm],
                    "updated_ts": time.time(),
                }
                async with asyncio.timeout(10):  # pushed after the commit, no request made
                    async for message in messages:
                        if any(s["mode"] == "islanded" for s in message["sites"]):
                            break
                assert not message["full"]
            # the site's page offers its open alarm by the site's own number (ack_alarm's)
            async with asyncio.timeout(10):
                while not (
                    one := (await http.get("/api/sites/kadikoy/school-1", headers=as_viewer)).json()
                )["open_alarms"][0]["alarm_id"]:
                    service.changed.clear()
                    await service.changed.wait()
            assert one["open_alarms"] == [{**alarm, "alarm_id": alarm_id}]
    finally:
        await site.close()
        stop.set()
        await asyncio.wait_for(eoc, 10)  # its end ends the streams
        await server.stop()
        tokens.close()
        db.close()


async def sse_messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The `sites` messages of an SSE response (comments and other events skipped)."""
    name, data = "", []
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line:
            if name == "sites" and data:
                yield json.loads("\n".join(data))
            name, data = "", []


def test_resilience_eoc_makes_tokens_and_refuses_a_bad_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from resilience.cli import main

    db = str(tmp_path / "eoc.sqlite")
    assert main(["eoc", "--db", db, "--create-token", "desk", "--role", "operator"]) == 0
    token = capsys.readouterr().out.strip()
    tokens = TokenStore(db)
    try:
        found = tokens.check(token)
        assert isinstance(found, Principal) and found.role == "operator"
    finally:
        tokens.close()
    assert main(["eoc", "--db", db, "--create-token", "desk", "--role", "operator"]) == 1
    assert "exists" in capsys.readouterr().out
    assert main(["eoc", "--db", db, "--broker", "nowhere"]) == 2
    assert "HOST:PORT" in capsys.readouterr().out
