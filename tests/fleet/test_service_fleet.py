"""`resilience run`'s wiring (`service.start`) on the simulated reference site with `[fleet]`:
the state reaches the broker with its HAVE-like fields, the controller's own events go
through the outbox, and a clean stop says `offline`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.server import SimSite
from resilience.config import FleetSection, load_site
from resilience.service import quiet_pymodbus, start, stop_running
from tests.fleet.eoc_receiver import Receiver
from tests.fleet.test_publisher import running
from tests.mqtt_broker import Broker, SiteAccount
from tests.sites import modbus_only

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
ACCOUNT = SiteAccount("kadikoy", "school-1")
PREFIX = "shelter/v1/kadikoy/school-1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", [ACCOUNT])
    b.start()
    yield b
    b.stop()


async def test_a_site_with_fleet_reports_its_state_and_events(
    broker: Broker, tmp_path: Path
) -> None:
    quiet_pymodbus()
    password = tmp_path / "mqtt-password"
    password.write_text(ACCOUNT.password)
    fleet = FleetSection(
        broker_host=broker.host,
        broker_port=broker.port,
        district=ACCOUNT.district,
        site_id=ACCOUNT.site,
        username=ACCOUNT.username,
        password_file=password,
        state_min_interval_s=1,
    )
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
                assert set(state["endurance_h_by_tier"]) == {
                    "life_safety",
                    "critical",
                    "essential",
                    "comfort",
                }
                assert state["donors_needed_kwh"] >= 0
            finally:
                await stop_running(run)
            await eoc.until(lambda: eoc.retained[f"{PREFIX}/status"]["status"] == "offline")
