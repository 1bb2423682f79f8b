"""The control interface: injections and state over HTTP (in-process ASGI, and once on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from firmware_sim.control import ControlServer, create_app
from firmware_sim.plant import Plant
from resilience.model import BreakerPosition, ChargerState


@pytest.fixture
async def http(plant: Plant) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(plant))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        yield client


async def test_state_reports_the_plant_and_its_violations(
    plant: Plant, http: httpx.AsyncClient
) -> None:
    rsp = await http.get("/state")
    assert rsp.status_code == 200
    state = rsp.json()
    assert state["bus"]["live"] is True
    assert state["violations"] == []
    assert set(state["chargers"]) == set(plant.config.chargers)  # the OCPP stations too


async def test_grid_loss_and_return(plant: Plant, http: httpx.AsyncClient) -> None:
    assert (await http.post("/grid/loss")).status_code == 200
    assert not plant.grid_present
    assert (await http.post("/grid/return")).status_code == 200
    assert plant.grid_present


async def test_sag_and_flicker(plant: Plant, http: httpx.AsyncClient) -> None:
    assert (await http.post("/grid/sag", json={"pu": 0.7, "duration_s": 1.0})).status_code == 200
    assert plant.grid.voltage_v == pytest.approx(280.0)
    rsp = await http.post("/grid/flicker", json={"period_s": 0.5, "count": 2})
    assert rsp.status_code == 200
    assert not plant.grid_present


async def test_bad_input_names_the_field(http: httpx.AsyncClient) -> None:
    rsp = await http.post("/grid/sag", json={"pu": -1, "duration_s": 1.0})
    assert rsp.status_code == 422
    assert "pu" in rsp.text
    rsp = await http.post("/grid/flicker", json={"period_s": 1.0})
    assert rsp.status_code == 422
    assert "count" in rsp.text


async def test_device_faults(plant: Plant, http: httpx.AsyncClient) -> None:
    rsp = await http.post("/devices/grid_meter/fault", json={"kind": "silence"})
    assert rsp.status_code == 200
    assert plant.comm_fault("grid_meter") is not None
    assert (await http.post("/devices/grid_meter/clear")).status_code == 200
    assert plant.comm_fault("grid_meter") is None

    rsp = await http.post("/devices/charger_2/fault", json={"kind": "exception", "code": 6})
    assert rsp.status_code == 200
    rsp = await http.post("/devices/charger_2/fault", json={"kind": "exception"})
    assert rsp.status_code == 422 and "code" in rsp.text

    rsp = await http.post("/devices/pcc_breaker/fault", json={"kind": "fail_to_operate"})
    assert rsp.status_code == 200 and plant.breaker.fail_to_operate
    rsp = await http.post("/devices/charger_1/fault", json={"kind": "fail_to_operate"})
    assert rsp.status_code == 409

    assert (await http.post("/devices/charger_1/fault", json={"kind": "trip"})).status_code == 200
    assert plant.chargers["charger_1"].state == ChargerState.FAULT
    rsp = await http.post("/devices/grid_meter/fault", json={"kind": "trip"})
    assert rsp.status_code == 409

    rsp = await http.post("/devices/nope/fault", json={"kind": "silence"})
    assert rsp.status_code == 404 and "nope" in rsp.text
    rsp = await http.post("/devices/pcc_breaker/fault", json={"kind": "melt"})
    assert rsp.status_code == 422 and "kind" in rsp.text


async def test_breaker_trip(plant: Plant, http: httpx.AsyncClient) -> None:
    assert (await http.post("/devices/pcc_breaker/fault", json={"kind": "trip"})).status_code == 200
    assert plant.breaker_position == BreakerPosition.OPEN


async def test_plug_and_unplug(plant: Plant, http: httpx.AsyncClient) -> None:
    assert (await http.post("/vehicles/unplug", json={"connector": "v2l_2"})).status_code == 200
    assert plant.outlets["v2l_2"].vehicle is None
    body = {"connector": "v2l_2", "vehicle_id": "guest", "soc_pct": 64, "capacity_wh": 58000}
    assert (await http.post("/vehicles/plug", json=body)).status_code == 200
    assert plant.vehicle_soc("guest") == 64
    assert (await http.post("/vehicles/plug", json=body)).status_code == 409
    rsp = await http.post("/vehicles/plug", json={**body, "connector": "pv"})
    assert rsp.status_code == 404 and "connector" in rsp.text
    rsp = await http.post("/vehicles/plug", json={**body, "soc_pct": 120})
    assert rsp.status_code == 422 and "soc_pct" in rsp.text


async def test_pv_and_load_factor(plant: Plant, http: httpx.AsyncClient) -> None:
    assert (await http.post("/pv", json={"available_w": 3000})).status_code == 200
    assert plant.pv_power_w == pytest.approx(3000)
    assert (await http.post("/loads/hvac/factor", json={"factor": 0.5})).status_code == 200
    assert plant.load_power_w("hvac") == pytest.approx(6000)
    assert (await http.post("/loads/sauna/factor", json={"factor": 0.5})).status_code == 404
    assert (await http.post("/loads/hvac/factor", json={"factor": -2})).status_code == 422


async def test_control_server_on_loopback(plant: Plant) -> None:
    server = ControlServer(plant, port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5.0) as client:
            assert (await client.post("/grid/loss")).status_code == 200
            state = (await client.get("/state")).json()
    finally:
        await server.stop()
    assert state["grid"]["present"] is False
