"""OCPP station faults from the simulator's control API, judged on the plant and the alarms.

The reference site in process on a virtual clock (`tests.fuzz.machine.Harness`: the real
controller and central system, its two OCPP 2.1 stations over in-memory pipes), islanded
at night with both stations exporting. Each fault goes in through the control API
(`POST /stations/<id>/fault`, `/stations/<id>/clear`, `/vehicles/unplug`), as a drill or a
person at a terminal would send it; the plant must record no violation throughout and the
controller must raise the alarm that says what happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from firmware_sim.control import create_app
from firmware_sim.ocpp_station import SimStation
from firmware_sim.plant import PlantInit
from resilience.config import load_site
from resilience.model import Mode
from tests.fuzz.machine import Harness, fuzz_timers
from tests.sites import without_endurance_policy

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
STATIONS = ("ocpp_1", "ocpp_2")


class Site(Harness):
    def __init__(self) -> None:
        config = without_endurance_policy(load_site(SITE))
        config = config.model_copy(
            update={"ocpp": config.ocpp.model_copy(update={"call_timeout_s": 0.05})}
        )
        self.start(fuzz_timers(config), PlantInit(pv_available_fraction=0.0))
        assert self.stations is not None
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(self.plant, self.stations.stations)),
            base_url="http://sim",
        )

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.loop.run_until_complete(self.client.post(path, json=body))

    def station(self, name: str) -> SimStation:
        assert self.stations is not None
        return self.stations.stations[name]

    def run_s(self, seconds: float) -> None:
        self.cycles(max(1, round(seconds / 0.1)), 0.1)
        self.check()

    def until(self, what: str, predicate: Any, seconds: float = 15.0) -> None:
        for _ in range(round(seconds / 0.1)):
            if predicate():
                return
            self.run_s(0.1)
        raise AssertionError(f"not reached in {seconds} s: {what}")

    def exporting(self, name: str) -> bool:
        return self.plant.charger_power_w(name) >= 500.0

    def alarm(self, code: str) -> bool:
        return code in self.controller.modes.memory.active_alarms


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    try:
        s.plant.grid_loss()
        s.until("islanded", lambda: s.controller.modes.mode is Mode.ISLANDED)
        s.until("both stations exporting", lambda: all(s.exporting(n) for n in STATIONS))
        yield s
    finally:
        s.loop.run_until_complete(s.client.aclose())
        s.stop()


def test_link_cut_and_restored(site: Site) -> None:
    assert site.post("/stations/ocpp_1/fault", {"kind": "link_cut"}).status_code == 200
    mod = site.config.ocpp.max_offline_duration_s
    site.until("ocpp_1 at zero export", lambda: site.plant.charger_power_w("ocpp_1") <= 0.5,
               mod + 2.0)  # fmt: skip
    assert site.alarm("device_unavailable:ocpp_1")
    assert site.plant.bus_live
    assert site.post("/stations/ocpp_1/clear").status_code == 200
    site.until("ocpp_1 exporting again", lambda: site.exporting("ocpp_1"))
    site.until("its alarm cleared", lambda: not site.alarm("device_unavailable:ocpp_1"))
    assert site.plant.violations == []


def test_faulted_station_stops_and_comes_back(site: Site) -> None:
    assert site.post("/stations/ocpp_2/fault", {"kind": "faulted"}).status_code == 200
    site.run_s(0.5)
    assert site.plant.charger_power_w("ocpp_2") == 0.0
    site.until("charger_fault alarm", lambda: site.alarm("charger_fault:ocpp_2"))
    assert site.plant.bus_live
    site.post("/stations/ocpp_2/clear")
    site.until("ocpp_2 exporting again", lambda: site.exporting("ocpp_2"))
    assert site.plant.violations == []


@pytest.mark.parametrize("kind", ["rejecting", "slow"])
def test_a_station_that_does_not_take_commands_is_alarmed(site: Site, kind: str) -> None:
    body: dict[str, Any] = {"kind": kind}
    if kind == "slow":
        body["delay_s"] = 0.1  # call_timeout_s is 0.05 s here
    assert site.post("/stations/ocpp_1/fault", body).status_code == 200
    site.plant.set_load_factor(sorted(site.plant.loads)[0], 0.5)  # a new setpoint is due
    site.until("write_failed alarm", lambda: site.alarm("write_failed:ocpp_1"), 5.0)
    assert site.plant.bus_live and site.plant.violations == []
    site.post("/stations/ocpp_1/clear")
    site.until("alarm cleared", lambda: not site.alarm("write_failed:ocpp_1"))
    assert site.plant.violations == []


def test_out_of_schema_message_gets_a_callerror_and_the_island_goes_on(site: Site) -> None:
    assert site.post("/stations/ocpp_2/fault", {"kind": "out_of_schema"}).status_code == 200
    site.run_s(1.5)
    replies = site.station("ocpp_2").out_of_schema_replies
    assert len(replies) == 1 and replies[0][0] == 4, replies  # a CALLERROR
    assert site.exporting("ocpp_2") and site.plant.violations == []
    site.store.flush(5.0)
    logged = [e.reason for e in site.store.events(kinds=["ocpp"]) if "CALLERROR" in e.reason]
    assert any("ocpp_2" in m and "MeterValues" in m for m in logged), logged


def test_the_car_leaves_and_arrives(site: Site) -> None:
    vehicle = site.plant.chargers["ocpp_1"].vehicle
    assert vehicle is not None
    assert site.post("/vehicles/unplug", {"connector": "ocpp_1"}).status_code == 200
    site.run_s(1.0)
    status = site.controller.status
    assert status is not None
    car = next(v for v in status.snapshot.vehicles if v.charger_id == "ocpp_1")
    assert not car.plugged
    body = {
        "connector": "ocpp_1",
        "vehicle_id": vehicle.vehicle_id,
        "soc_pct": 70.0,
        "capacity_wh": vehicle.capacity_wh,
    }
    assert site.post("/vehicles/plug", body).status_code == 200
    site.until("ocpp_1 exporting again", lambda: site.exporting("ocpp_1"))
    assert site.plant.violations == []


def test_bad_station_faults_name_the_field(site: Site) -> None:
    rsp = site.post("/stations/charger_1/fault", {"kind": "link_cut"})
    assert rsp.status_code == 404 and "not an OCPP station" in rsp.text
    rsp = site.post("/stations/ocpp_1/fault", {"kind": "meltdown"})
    assert rsp.status_code == 422 and "kind" in rsp.text
    rsp = site.post("/stations/ocpp_1/fault", {"kind": "slow"})
    assert rsp.status_code == 422 and "delay_s" in rsp.text
    rsp = site.post("/stations/ocpp_1/fault", {"kind": "rejecting", "delay_s": 1.0})
    assert rsp.status_code == 422 and "delay_s" in rsp.text
