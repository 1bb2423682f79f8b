"""Simulated OCPP 2.1 stations (`firmware_sim.ocpp_station`) against a minimal central
system written here with the `ocpp` library (the controller's own CSMS is not used), judged
on the plant: what the vehicle's charger actually does, and `plant.violations`.

Real time over WebSockets on 127.0.0.1 (SimSite ticks the plant and the stations every
10 ms), and on a virtual clock over the in-memory pipe with no sockets at all.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from firmware_sim.devices import build_devices
from firmware_sim.inprocess import transports_for
from firmware_sim.ocpp_model import CarProfile, SchedulePeriod, StationModel
from firmware_sim.ocpp_station import InMemoryConnector, SimStation, cancel_and_wait
from firmware_sim.plant import Plant, PlantInit
from firmware_sim.server import SimSite
from resilience.config import SiteConfig, parse_site

SITE_FILE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
RATING_W = 11000.0
CAR_LIMIT_W = 9000.0
CAPACITY_WH = 60000.0
RESERVE_PCT = 20.0
PASSWORD = "correct horse"


def ocpp_site() -> SiteConfig:
    """The reference site with one OCPP 2.1 station (its own two left out) and a car on it."""
    doc = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))
    own = {n for n, d in doc["devices"].items() if d.get("driver") == "ocpp"}
    doc["devices"] = {n: d for n, d in doc["devices"].items() if n not in own}
    doc["vehicles"] = [v for v in doc["vehicles"] if v.get("charger") not in own]
    doc["devices"]["station_1"] = {
        "driver": "ocpp",
        "rating_w": RATING_W,
        "ocpp": {"identity": "ST1"},
    }
    doc["vehicles"].append(
        {
            "id": "ev_st1",
            "charger": "station_1",
            "capacity_wh": CAPACITY_WH,
            "reserve_soc_pct": RESERVE_PCT,
            "max_discharge_w": CAR_LIMIT_W,
        }
    )
    return parse_site(doc)


def ocpp_site_with_refused_stations() -> SiteConfig:
    """`ocpp_site` with two more stations (ST2, ST3), whose passwords the tests get wrong."""
    config = ocpp_site()
    station = config.devices["station_1"]
    assert station.ocpp is not None
    devices = dict(config.devices)
    for n in (2, 3):
        ocpp = station.ocpp.model_copy(update={"identity": f"ST{n}"})
        devices[f"station_{n}"] = station.model_copy(update={"ocpp": ocpp})
    return config.model_copy(update={"devices": devices})


@pytest.fixture(scope="module")
def site_config() -> SiteConfig:
    return ocpp_site()


# --------------------------------------------------------------------------- the test CSMS
@dataclass
class Received:
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, action: str, payload: dict[str, Any]) -> None:
        self.messages.append((action, payload))
        self.changed.set()

    def of(self, action: str) -> list[dict[str, Any]]:
        return [p for a, p in self.messages if a == action]


class TestCsms(ChargePoint):  # type: ignore[misc]
    """Answers what a station sends and records it; commands are sent by the test."""

    __test__ = False

    def __init__(self, identity: str, connection: Any, received: Received) -> None:
        super().__init__(identity, connection, response_timeout=5)
        self.received = received

    @on("BootNotification")
    def boot(self, **payload: Any) -> Any:
        self.received.add("BootNotification", payload)
        return call_result.BootNotification(
            current_time=datetime.now(UTC).isoformat(), interval=10, status="Accepted"
        )

    @on("StatusNotification")
    def status(self, **payload: Any) -> Any:
        self.received.add("StatusNotification", payload)
        return call_result.StatusNotification()

    @on("TransactionEvent")
    def transaction(self, **payload: Any) -> Any:
        self.received.add("TransactionEvent", payload)
        return call_result.TransactionEvent()

    @on("NotifyEVChargingNeeds")
    def needs(self, **payload: Any) -> Any:
        self.received.add("NotifyEVChargingNeeds", payload)
        return call_result.NotifyEVChargingNeeds(status="Accepted")

    @on("MeterValues")
    def meter(self, **payload: Any) -> Any:
        self.received.add("MeterValues", payload)
        return call_result.MeterValues()

    @on("Heartbeat")
    def heartbeat(self, **payload: Any) -> Any:
        self.received.add("Heartbeat", payload)
        return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())


@dataclass
class Csms:
    url: str
    received: Received
    points: dict[str, TestCsms]
    auth: list[str | None]

    def point(self, identity: str = "ST1") -> TestCsms:
        return self.points[identity]


@pytest.fixture
async def csms() -> AsyncIterator[Csms]:
    received = Received()
    points: dict[str, TestCsms] = {}
    auth: list[str | None] = []

    def check_auth(connection: ServerConnection, request: Request) -> Response | None:
        header = request.headers.get("Authorization")
        auth.append(header)
        identity = request.path.rsplit("/", 1)[-1]
        token = base64.b64encode(f"{identity}:{PASSWORD}".encode()).decode()
        if header != f"Basic {token}":
            return Response(401, "Unauthorized", Headers())
        return None

    async def handler(ws: ServerConnection) -> None:
        identity = ws.request.path.rsplit("/", 1)[-1] if ws.request else "?"
        cp = TestCsms(identity, ws, received)
        points[identity] = cp
        with contextlib.suppress(ConnectionClosed):
            await cp.start()

    async with serve(
        handler, "127.0.0.1", 0, subprotocols=["ocpp2.1"], process_request=check_auth
    ) as server:
        port = server.sockets[0].getsockname()[1]
        yield Csms(f"ws://127.0.0.1:{port}/ocpp", received, points, auth)


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> float:
    """Wait (real time) for `predicate`; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.005)
    return time.monotonic()


@pytest.fixture
async def site(site_config: SiteConfig, csms: Csms) -> AsyncIterator[SimSite]:
    async with SimSite(
        site_config,
        bind_free_ports=True,
        tick_s=0.01,
        init=PlantInit(soc_pct={"ev_st1": 70.0}),
        ocpp_url=csms.url,
        ocpp_passwords={"ST1": PASSWORD},
    ) as simsite:
        await until(lambda: "ST1" in csms.points, what="the station to connect")
        yield simsite


def profile_pair(setpoint: float, *, max_offline_s: int = 5) -> tuple[Any, Any]:
    """The controller's dead-man pair (contract): Idle at stack 0, Dynamic at stack 1."""
    idle = call.SetChargingProfile(
        evse_id=1,
        charging_profile={
            "id": 1,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [
                {
                    "id": 1,
                    "charging_rate_unit": "W",
                    "charging_schedule_period": [
                        {"start_period": 0, "limit": 0, "operation_mode": "Idle"}
                    ],
                }
            ],
        },
    )
    dynamic = call.SetChargingProfile(
        evse_id=1,
        charging_profile={
            "id": 2,
            "stack_level": 1,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Dynamic",
            "max_offline_duration": max_offline_s,
            "dyn_update_interval": 1,
            "charging_schedule": [
                {
                    "id": 2,
                    "charging_rate_unit": "W",
                    "charging_schedule_period": [
                        {
                            "start_period": 0,
                            "operation_mode": "CentralSetpoint",
                            "setpoint": setpoint,
                            "limit": RATING_W,
                            "discharge_limit": -CAR_LIMIT_W,
                        }
                    ],
                }
            ],
        },
    )
    return idle, dynamic


def update(setpoint: float, limit: float = RATING_W, discharge: float = -CAR_LIMIT_W) -> Any:
    return call.UpdateDynamicSchedule(
        charging_profile_id=2,
        schedule_update={"setpoint": setpoint, "limit": limit, "discharge_limit": discharge},
    )


async def install(cp: TestCsms, setpoint: float, *, max_offline_s: int = 5) -> None:
    for request in profile_pair(setpoint, max_offline_s=max_offline_s):
        result = await cp.call(request)
        assert result.status == "Accepted", result


# --------------------------------------------------------------------------- no Modbus bank
def test_ocpp_stations_have_no_register_bank_or_modbus_transport(site_config: SiteConfig) -> None:
    plant = Plant(site_config)
    devices = build_devices(plant)
    assert "station_1" not in devices
    assert "station_1" not in transports_for(site_config, devices)
    assert "charger_1" in devices  # the Modbus chargers still have theirs


# --------------------------------------------------------------------------- over WebSockets
async def test_boot_status_needs_and_meter_values_carry_the_plants_figures(
    site: SimSite, csms: Csms
) -> None:
    rx = csms.received
    await until(lambda: bool(rx.of("MeterValues")) and bool(rx.of("NotifyEVChargingNeeds")))
    plant = site.plant
    boot = rx.of("BootNotification")[0]
    assert boot["reason"] == "PowerUp"
    assert csms.auth[-1] == "Basic " + base64.b64encode(f"ST1:{PASSWORD}".encode()).decode()
    assert {"connector_status": "Occupied", "evse_id": 1, "connector_id": 1}.items() <= (
        rx.of("StatusNotification")[0].items()
    )
    started = rx.of("TransactionEvent")[0]
    assert started["event_type"] == "Started"
    assert started["transaction_info"]["transaction_id"]

    needs = rx.of("NotifyEVChargingNeeds")[0]["charging_needs"]
    soc = plant.vehicle_soc("ev_st1")
    assert needs["requested_energy_transfer"] == "DC_BPT"
    assert needs["control_mode"] == "DynamicControl"
    dc = needs["dc_charging_parameters"]
    assert dc["ev_energy_capacity"] == CAPACITY_WH
    assert dc["state_of_charge"] == round(soc)
    v2x = needs["v2x_charging_parameters"]
    assert v2x["max_discharge_power"] == min(RATING_W, CAR_LIMIT_W)
    assert v2x["max_charge_power"] == RATING_W
    assert v2x["ev_min_v2x_energy_request"] == pytest.approx(
        -(soc - RESERVE_PCT) / 100 * CAPACITY_WH, abs=1.0
    )
    assert needs["der_charging_parameters"]["ev_islanding_detection_method"] == [
        "UVP_OVP",
        "UFP_OFP",
    ]

    last = rx.of("MeterValues")[-1]["meter_value"][0]["sampled_value"]
    sampled = {v["measurand"]: v for v in last}
    assert sampled["Voltage"]["value"] == pytest.approx(plant.bus_voltage_v)
    assert sampled["Voltage"]["value"] == pytest.approx(site.config.grid.nominal_voltage_v)
    assert sampled["Frequency"]["value"] == pytest.approx(plant.bus_frequency_hz)
    assert sampled["SoC"]["value"] == pytest.approx(soc, abs=0.1)
    assert sampled["Power.Active.Export"]["value"] == 0
    assert sampled["Power.Active.Import"]["value"] == 0


async def test_a_wrong_password_is_refused_and_retried_with_backoff(
    site_config: SiteConfig, csms: Csms
) -> None:
    async with SimSite(
        site_config, bind_free_ports=True, ocpp_url=csms.url, ocpp_passwords={"ST1": "wrong"}
    ) as simsite:
        await until(lambda: len(csms.auth) >= 3, what="three attempts")
        station = simsite.stations["station_1"]
        assert not station.booted and "ST1" not in csms.points
        assert station.last_error is not None and "401" in station.last_error


async def test_a_discharge_setpoint_moves_the_plant_after_the_delay_with_the_ramp(
    site: SimSite, csms: Csms
) -> None:
    plant = site.plant
    cp = csms.point()
    await install(cp, 0.0)
    t0 = time.monotonic()
    result = await cp.call(update(-6000.0))
    assert result.status == "Accepted"
    t_moving = await until(lambda: plant.charger_power_w("station_1") > 100, what="moving")
    t_done = await until(lambda: plant.charger_power_w("station_1") >= 5999, what="6 kW")
    ramp_s = 6000.0 / (RATING_W / 0.5)  # 0.27 s
    # Not before the response delay plus the ramp; well within a second on a busy machine.
    # The station counts its delay on `SimSite.station_clock`, the plant's time carried on
    # to now between the ticker's steps: however late a step comes, never early.
    assert t_moving - t0 >= 0.05
    assert t_done - t0 >= 0.05 + ramp_s * 0.9
    assert t_done - t0 < 1.0
    # The meter values report it: at once on a >= 5 % move, as Export (out of the car).
    await until(
        lambda: any(
            v["measurand"] == "Power.Active.Export" and v["value"] >= 5999
            for p in csms.received.of("MeterValues")
            for v in p["meter_value"][0]["sampled_value"]
        ),
        what="meter values at 6 kW",
    )
    assert plant.chargers["station_1"].min_soc_pct == RESERVE_PCT
    assert plant.violations == []


async def test_the_response_delay_counts_from_the_command_however_long_the_ticker_step(
    site_config: SiteConfig, csms: Csms
) -> None:
    """With a 0.1 s ticker the plant's own time lags the wall clock by up to 0.1 s between
    steps; a station that stamped a command with it started its 50 ms delay in the past
    and moved early (the flake seen at 48 ms under load). `SimSite.station_clock` is the
    plant's time carried on to now."""
    async with SimSite(
        site_config,
        bind_free_ports=True,
        tick_s=0.1,
        init=PlantInit(soc_pct={"ev_st1": 70.0}),
        ocpp_url=csms.url,
        ocpp_passwords={"ST1": PASSWORD},
    ) as simsite:
        await until(lambda: "ST1" in csms.points, what="the station to connect")
        plant, cp = simsite.plant, csms.point()
        await install(cp, 0.0)
        for setpoint in (-2000.0, -4000.0, -6000.0, -8000.0):
            before = plant.charger_power_w("station_1")
            t0 = time.monotonic()
            assert (await cp.call(update(setpoint))).status == "Accepted"
            t_moving = await until(
                lambda before=before: plant.charger_power_w("station_1") > before + 100,
                what="moving",
            )
            assert t_moving - t0 >= 0.05
            await until(
                lambda setpoint=setpoint: plant.charger_power_w("station_1") >= -setpoint - 1,
                what="there",
            )


async def test_cancel_and_wait_ends_a_task_that_swallowed_its_cancel() -> None:
    """The cause of a hang in `SimSite.stop`: on Python 3.11 `asyncio.wait_for` (the ocpp
    library's `call` awaits its answer with it) returns the answer and drops the cancel when
    both come in the same loop step; the station's session then waited for its outbox for
    good. `cancel_and_wait` cancels again until the task has ended."""
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    outbox = asyncio.Event()

    async def session() -> None:
        await asyncio.wait_for(answer, timeout=5.0)
        await outbox.wait()  # back to waiting for something to send

    task = asyncio.create_task(session())
    await asyncio.sleep(0)  # the session awaits its answer
    answer.set_result("CALLRESULT")
    task.cancel()  # in the same step as the answer
    done, _ = await asyncio.wait({task}, timeout=0.1)
    if sys.version_info < (3, 12):  # 3.12's wait_for keeps the cancel
        assert not done, "the cancel was not swallowed: this runtime has no such race"
    async with asyncio.timeout(2.0):
        await cancel_and_wait((task,))
    assert task.done()


async def test_sites_whose_stations_cannot_authenticate_start_and_stop_repeatedly(
    site_config: SiteConfig, csms: Csms
) -> None:
    """Stations refused (a wrong password) and one let in, started and stopped five times
    at different moments of their exchanges: each stop ends within a bound."""
    config = ocpp_site_with_refused_stations()
    for attempt in range(5):
        simsite = SimSite(
            config,
            bind_free_ports=True,
            ocpp_url=csms.url,
            ocpp_passwords={"ST1": PASSWORD, "ST2": "wrong", "ST3": "wrong"},
        )
        await simsite.start()
        await until(lambda n=attempt: len(csms.auth) >= 3 * (n + 1), what="three attempts")
        stations = list(simsite.stations.values())
        assert len(stations) == 3
        async with asyncio.timeout(5.0):
            await simsite.stop()
        assert not any(s.connected for s in stations)


@pytest.mark.parametrize(
    ("setpoint", "limit", "discharge"),
    [
        (-8000.0, RATING_W, -6000.0),  # beyond discharge_limit
        (5000.0, 4000.0, -CAR_LIMIT_W),  # beyond limit
        (-2000.0, -1000.0, -CAR_LIMIT_W),  # limit below 0
    ],
)
async def test_a_setpoint_outside_its_limits_is_rejected_and_nothing_moves(
    site: SimSite, csms: Csms, setpoint: float, limit: float, discharge: float
) -> None:
    plant = site.plant
    cp = csms.point()
    await install(cp, -3000.0)
    await until(lambda: plant.charger_power_w("station_1") >= 2999, what="3 kW")
    result = await cp.call(update(setpoint, limit, discharge))
    assert result.status == "Rejected"
    await asyncio.sleep(0.3)  # longer than delay + ramp: it would have moved by now
    assert plant.charger_power_w("station_1") == pytest.approx(3000.0)
    assert site.stations["station_1"].model.rejections


async def test_the_dead_man_drops_discharge_after_max_offline_duration_and_keeps_it_dropped(
    site: SimSite, csms: Csms
) -> None:
    plant = site.plant
    station = site.stations["station_1"]
    cp = csms.point()
    await install(cp, -6000.0, max_offline_s=2)
    await until(lambda: plant.charger_power_w("station_1") >= 5999, what="6 kW")
    boots = len(csms.received.of("BootNotification"))

    t_cut = time.monotonic()
    station.cut_link()
    await asyncio.sleep(1.7)
    assert plant.charger_power_w("station_1") >= 5999, "a setpoint outlives a short outage"
    t_zero = await until(lambda: plant.charger_power_w("station_1") <= 0.5, 3.0, "0 W")
    assert 2.0 <= t_zero - t_cut <= 2.0 + 1.0
    fallback = station.model.deadman_fallback_s
    assert fallback is not None and 2.0 <= fallback <= 2.0 + 1.0

    station.restore_link()
    await until(lambda: len(csms.received.of("BootNotification")) > boots, what="a reconnect")
    cp = csms.point()
    await asyncio.sleep(0.3)
    assert plant.charger_power_w("station_1") == 0.0, "no discharge back without a new profile"
    result = await cp.call(update(-6000.0))
    assert result.status == "Rejected"  # profile 2 is gone
    await install(cp, -4000.0, max_offline_s=2)
    await until(lambda: plant.charger_power_w("station_1") >= 3999, what="4 kW again")
    assert plant.violations == []


async def test_a_car_leaving_ends_its_transaction_and_leaves_the_plant(
    site: SimSite, csms: Csms
) -> None:
    plant = site.plant
    station = site.stations["station_1"]
    cp = csms.point()
    await install(cp, -6000.0)
    await until(lambda: plant.charger_power_w("station_1") >= 5999, what="6 kW")
    station.model.car.departure_s = plant.time_s + 0.2
    rx = csms.received
    await until(lambda: any(p["event_type"] == "Ended" for p in rx.of("TransactionEvent")))
    await until(lambda: rx.of("StatusNotification")[-1]["connector_status"] == "Available")
    assert plant.chargers["station_1"].vehicle is None
    ended = next(p for p in rx.of("TransactionEvent") if p["event_type"] == "Ended")
    assert ended["trigger_reason"] == "EVDeparted"
    started = rx.of("TransactionEvent")[0]
    assert ended["transaction_info"]["transaction_id"] == (
        started["transaction_info"]["transaction_id"]
    )
    assert plant.chargers["station_1"].fault_code == 0, "it stopped before it left"
    assert plant.violations == []


# --------------------------------------------------------------------------- in memory
async def test_the_same_exchange_in_memory_on_a_virtual_clock(site_config: SiteConfig) -> None:
    plant = Plant(site_config, PlantInit(soc_pct={"ev_st1": 70.0}))
    received = Received()
    points: list[TestCsms] = []

    async def serve_connection(connection: Any, identity: str, subprotocol: str) -> None:
        assert subprotocol == "ocpp2.1"
        cp = TestCsms(identity, connection, received)
        points.append(cp)
        await cp.start()

    connector = InMemoryConnector(serve_connection, "ST1")
    station = SimStation(
        StationModel(plant, "station_1"),
        "ST1",
        connector,
        clock=lambda: plant.time_s,
        epoch_s=1_800_000_000.0,
    )
    dt = 0.01

    async def run_for(seconds: float, until: Callable[[], bool] | None = None) -> float:
        end = plant.time_s + seconds
        while plant.time_s < end - 1e-9:
            plant.step(dt)
            station.tick()
            await station.settle()
            if until is not None and until():
                return plant.time_s
        return plant.time_s

    station.tick()
    station.start()
    await run_for(1.0)
    assert [a for a, _ in received.messages][:4] == [
        "BootNotification",
        "TransactionEvent",
        "StatusNotification",
        "NotifyEVChargingNeeds",
    ]
    assert received.of("MeterValues"), "a meter value every second"
    assert received.of("BootNotification")[0]["reason"] == "PowerUp"

    async def command(request: Any) -> Any:
        return await points[-1].call(request)

    for request in profile_pair(0.0, max_offline_s=2):
        assert (await command(request)).status == "Accepted"
    t0 = plant.time_s
    assert (await command(update(-6000.0))).status == "Accepted"
    t_done = await run_for(2.0, lambda: plant.charger_power_w("station_1") >= 5999)
    # Virtual time is exact: 0.05 s delay, then 6 kW at 22 kW/s, to the next tick.
    assert t_done - t0 == pytest.approx(0.05 + 6000 / 22000, abs=2 * dt)

    assert (await command(update(-8000.0, discharge=-6000.0))).status == "Rejected"
    await run_for(0.5)
    assert plant.charger_power_w("station_1") == pytest.approx(6000.0)

    t_cut = plant.time_s
    station.cut_link()
    await run_for(1.9)
    assert plant.charger_power_w("station_1") == pytest.approx(6000.0)
    await run_for(1.0, lambda: plant.charger_power_w("station_1") <= 0.5)
    fallback = station.model.deadman_fallback_s
    assert fallback is not None
    assert fallback == pytest.approx(2.0 + 6000 / 22000, abs=2 * dt)
    assert station.model.link_dropped_s == pytest.approx(t_cut)

    station.restore_link()
    boots = len(received.of("BootNotification"))
    await run_for(0.5)
    assert len(received.of("BootNotification")) == boots + 1
    assert plant.charger_power_w("station_1") == 0.0
    assert (await command(update(-6000.0))).status == "Rejected"

    station.model.car.departure_s = plant.time_s + 0.1
    await run_for(0.5)
    assert [p["event_type"] for p in received.of("TransactionEvent")] == ["Started", "Ended"]
    assert plant.chargers["station_1"].vehicle is None
    assert plant.violations == []
    await station.stop()


# --------------------------------------------------------------------------- the model alone
def test_discharge_needs_dc_bpt_requested_or_allowed(site_config: SiteConfig) -> None:
    plant = Plant(site_config)
    model = StationModel(plant, "station_1", car=CarProfile(requests_bpt=False))
    model.tick(0.0)
    period = SchedulePeriod(0, "CentralSetpoint", RATING_W, -CAR_LIMIT_W, -5000.0)
    assert model.check_period(period) is not None  # the car asked for DC only
    needs = model.charging_needs()
    assert needs is not None and needs["requested_energy_transfer"] == "DC"
    assert "DC_BPT" in needs["available_energy_transfer"]
    assert model.transaction_id is not None
    assert model.allow_energy_transfer(model.transaction_id, ["DC", "DC_BPT"], 0.0)
    assert model.check_period(period) is None
    assert model.check_period(SchedulePeriod(0, "CentralSetpoint", RATING_W, None, -1.0))
    assert model.check_period(period, rate_unit="A")


def test_an_active_islanding_method_is_reported(site_config: SiteConfig) -> None:
    plant = Plant(site_config)
    car = CarProfile(islanding_methods=("SandiaFrequencyShift",), floor_soc_pct=35.0)
    model = StationModel(plant, "station_1", car=car)
    needs = model.charging_needs()
    assert needs is not None
    assert needs["der_charging_parameters"]["ev_islanding_detection_method"] == [
        "SandiaFrequencyShift"
    ]
    soc = plant.vehicle_soc("ev_st1")
    expected = -(soc - 35.0) / 100 * CAPACITY_WH
    assert needs["v2x_charging_parameters"]["ev_min_v2x_energy_request"] == pytest.approx(expected)


# --------------------------------------------------------------------------- the command line
def test_command_line_takes_the_central_system_and_the_passwords(tmp_path: Path) -> None:
    from firmware_sim.__main__ import parse_args

    passwords = tmp_path / "passwords.toml"
    passwords.write_text('ST1 = "one"\nST2 = "two"\n', encoding="utf-8")
    args = parse_args(
        [
            "--config",
            "site.toml",
            "--ocpp-url",
            "ws://127.0.0.1:9000/ocpp",
            "--ocpp-passwords",
            str(passwords),
            "--ocpp-password",
            "ST2=three",
        ]
    )
    assert args.ocpp_url == "ws://127.0.0.1:9000/ocpp"
    assert args.passwords == {"ST1": "one", "ST2": "three"}
    with pytest.raises(SystemExit):
        parse_args(["--config", "site.toml", "--ocpp-password", "ST1"])
    with pytest.raises(SystemExit):
        parse_args(["--config", "site.toml", "--ocpp-url", "http://127.0.0.1:9000"])
