"""`resilience run`'s wiring (`service.start`) on the simulated reference site with `[fleet]`:
the state reaches the broker with its HAVE-like fields, the controller's own events go
through the outbox, a clean stop says `offline`, and EOC commands are decided by the site's
own controller (refused when expired, not allowed, or refused by its interlocks)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from firmware_sim.server import SimSite
from resilience.config import FleetSection, load_site
from resilience.eoc.db import EocDb
from resilience.eoc.service import BrokerSettings, EocService
from resilience.model import Mode
from resilience.service import quiet_pymodbus, start, stop_running
from tests.fleet.eoc_receiver import Receiver
from tests.fleet.test_publisher import running
from tests.sites import modbus_only
from tools.mqtt_broker import EOC_PASSWORD, EOC_USER, Broker, SiteAccount

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
ACCOUNT = SiteAccount("kadikoy", "school-1")
PREFIX = "shelter/v1/kadikoy/school-1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", [ACCOUNT])
    b.start()
    yield b
    b.stop()


def fleet_section(broker: Broker, tmp_path: Path) -> FleetSection:
    password = tmp_path / "mqtt-password"
    password.write_text(ACCOUNT.password)
    return FleetSection(
        broker_host=broker.host,
        broker_port=broker.port,
        district=ACCOUNT.district,
        site_id=ACCOUNT.site,
        username=ACCOUNT.username,
        password_file=password,
        state_min_interval_s=1,
    )


async def test_a_site_with_fleet_reports_its_state_and_events(
    broker: Broker, tmp_path: Path
) -> None:
    quiet_pymodbus()
    fleet = fleet_section(broker, tmp_path)
    async with SimSite(modbus_only(load_site(SITE)), bind_free_ports=True) as sim:
        config = sim.controller_config().model_copy(update={"fleet": fleet})
        async with running(Receiver(broker)) as eoc:
            run = await start(config, store_path=str(tmp_path / "site.sqlite"))
            try:
                await eoc.until(lambda: f"{PREFIX}/state" in eoc.retained, timeout_s=20)
                await eoc.until(
                    lambda: any(
                        r["body"].get("reason") == "controller started; reading the field"
                        for r in eoc.rows.get("kadikoy/school-1", {}).values()
                    )
                )
                await eoc.until(
                    lambda: eoc.retained[f"{PREFIX}/state"]["mode"] == "grid_connected",
                    timeout_s=20,
                )
                state = eoc.retained[f"{PREFIX}/state"]
                assert state["schema"] == 1 and state["site"] == "school-1"
                assert state["facility_status"] == "Normal" and state["power_source"] == "grid"
                assert state["life_safety_served"] is True
                tiers = {"life_safety", "critical", "essential", "comfort"}
                assert set(state["endurance_h_by_tier"]) == tiers
                assert state["donors_needed_kwh"] >= 0
            finally:
                await stop_running(run)
            await eoc.until(lambda: eoc.retained[f"{PREFIX}/status"]["status"] == "offline")


async def eoc_command(broker: Broker, topic: str, command: dict[str, Any]) -> dict[str, Any]:
    """Publish one command as the EOC and await the site's answer to its id."""
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        username=EOC_USER,
        password=EOC_PASSWORD,
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as eoc:
        await eoc.subscribe(f"{PREFIX}/result", qos=1)
        await eoc.publish(topic, json.dumps(command).encode(), qos=1)
        async with asyncio.timeout(15):
            async for message in eoc.messages:
                assert isinstance(message.payload, bytes)
                answer: dict[str, Any] = json.loads(message.payload)
                if answer["id"] == command["id"]:
                    return answer
    raise AssertionError("no answer")


async def test_eoc_commands_are_decided_by_the_site_and_answered(
    broker: Broker, tmp_path: Path
) -> None:
    quiet_pymodbus()
    fleet = fleet_section(broker, tmp_path)
    own, district = ("eoc/v1/cmd/kadikoy/school-1", "eoc/v1/cmd/kadikoy/_all")
    async with SimSite(modbus_only(load_site(SITE)), bind_free_ports=True) as sim:
        config = sim.controller_config().model_copy(update={"fleet": fleet})
        run = await start(config, store_path=str(tmp_path / "site.sqlite"))
        try:
            assert run.fleet is not None
            await asyncio.wait_for(run.fleet.connected.wait(), 10)
            now = time.time()

            def command(
                cid: str, name: str, expires_in_s: float = 60.0, **args: Any
            ) -> dict[str, Any]:
                return {
                    "schema": 1,
                    "id": cid,
                    "operator": "zeynep",
                    "command": name,
                    "args": args,
                    "expires_ts": now + expires_in_s,
                }

            expired = await eoc_command(broker, own, command("c1", "planned_island", -5))
            assert expired["outcome"] == "refused" and "expired" in expired["detail"]
            bypass = await eoc_command(broker, own, command("c2", "close_pcc"))
            assert bypass["outcome"] == "refused" and "not one the EOC may give" in bypass["detail"]
            # the site's own interlocks: nothing to reconnect while on the grid
            interlock = await eoc_command(broker, district, command("c3", "reconnect"))
            assert (
                interlock["outcome"] == "refused" and "nothing to reconnect" in interlock["detail"]
            )
            on_grid = (
                asyncio.Event()
            )  # the next cycle on the grid (status listeners run each cycle)
            run.controller.on_status(
                lambda status: on_grid.set() if status.mode is Mode.GRID_CONNECTED else None
            )
            await asyncio.wait_for(on_grid.wait(), 20)
            accepted = await eoc_command(broker, district, command("c4", "planned_island"))
            assert accepted["outcome"] == "accepted", accepted
            again = await eoc_command(broker, own, command("c4", "planned_island"))
            assert again == accepted  # delivered twice: answered twice, applied once
            audit = [(c.actor, c.command, c.outcome) for c in run.store.commands()]
            assert ("eoc:zeynep", "planned_island", "accepted") in audit
            assert ("eoc", "planned_island", "refused") in audit  # the expired one
            assert sum(1 for a in audit if a == ("eoc:zeynep", "planned_island", "accepted")) == 1
            # the same through the EOC service: a district command, its answer in the EOC's log
            db = EocDb(tmp_path / "eoc.sqlite")
            service = EocService(
                BrokerSettings(broker.host, broker.port, EOC_USER, EOC_PASSWORD), db
            )
            stop = asyncio.Event()
            eoc = asyncio.create_task(service.run(stop))
            try:
                await asyncio.wait_for(service.connected.wait(), 10)
                command_id = await service.send_command(
                    "kadikoy",
                    None,
                    "set_tier",
                    {"load_id": "no-such-load", "tier": "comfort"},
                    "zeynep",
                )
                async with asyncio.timeout(15):
                    while not await asyncio.to_thread(db.results, command_id):
                        service.changed.clear()
                        await service.changed.wait()
                [answer] = db.results(command_id)
                assert (answer["site"], answer["outcome"]) == ("school-1", "refused")
                assert "no-such-load" in answer["detail"]
            finally:
                stop.set()
                await asyncio.wait_for(eoc, 10)
                db.close()
            assert sim.plant.violations == []
        finally:
            await stop_running(run)
