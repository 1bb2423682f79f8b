"""The simulator's control interface: HTTP on loopback to inject events and read the referee.

Owns the JSON routes a drill, a test or a person at a terminal uses to break
the simulated site on purpose (grid loss, sags, device faults, OCPP station faults
(`/stations/<id>/fault`, firmware_sim/ocpp_faults.py), vehicles coming and going,
clouds) and to read the plant's state and violations. It only calls
`Plant` methods; it never touches the Modbus servers.

Bodies are validated by pydantic: bad input is a 422 whose detail names the
field; an unknown device, load or connector is a 404; an injection the device
cannot take is a 409. Units are those of the field names (W, s, %, Wh, pu).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from firmware_sim.ocpp_faults import StationFault, clear_station_faults, inject_station_fault
from firmware_sim.ocpp_station import SimStation
from firmware_sim.plant import MODBUS_EXCEPTION_CODES, Plant
from firmware_sim.server import require_loopback
from resilience.api.server import AppServer

NonNegative = Annotated[float, Field(ge=0)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SagBody(_Body):
    pu: Annotated[float, Field(ge=0, le=1.5)]
    duration_s: Annotated[float, Field(gt=0, le=3600)]


class FlickerBody(_Body):
    period_s: Annotated[float, Field(gt=0, le=3600)]
    count: Annotated[int, Field(ge=1, le=1000)]


class FaultBody(_Body):
    kind: Literal[
        "silence", "exception", "garbage", "corrupt", "truncate", "fail_to_operate", "trip"
    ]
    code: int | None = None


class PlugBody(_Body):
    connector: str = Field(min_length=1)
    vehicle_id: str = Field(min_length=1)
    soc_pct: Annotated[float, Field(ge=0, le=100)]
    capacity_wh: Annotated[float, Field(gt=0)]
    reserve_soc_pct: Annotated[float, Field(ge=0, le=100)] | None = None


class StationFaultBody(_Body):
    kind: StationFault
    delay_s: Annotated[float, Field(gt=0, le=60)] | None = None


class UnplugBody(_Body):
    connector: str = Field(min_length=1)


class PvBody(_Body):
    available_w: NonNegative
    inverter_id: str | None = None


class FactorBody(_Body):
    factor: Annotated[float, Field(ge=0, le=10)]


def create_app(plant: Plant, stations: Mapping[str, SimStation] | None = None) -> FastAPI:
    """The control API over one plant and its simulated OCPP stations (`stations`: by
    device id, the live mapping of `SimSite.stations`: stations started later count)."""
    app = FastAPI(title="firmware_sim control", version="0.1.0")

    def ok() -> dict[str, Any]:
        return {"ok": True, "time_s": plant.time_s}

    def need_device(device_id: str) -> str:
        if device_id not in plant.config.devices:
            raise HTTPException(404, f"device_id: unknown device {device_id!r}")
        return plant.config.devices[device_id].driver

    def need_connector(connector: str) -> None:
        if connector not in plant.chargers and connector not in plant.outlets:
            raise HTTPException(
                404, f"connector: {connector!r} is not a bidirectional charger or V2L outlet"
            )

    @app.get("/state")
    def get_state() -> dict[str, Any]:
        return plant.state()

    @app.post("/grid/loss")
    def grid_loss() -> dict[str, Any]:
        plant.grid_loss()
        return ok()

    @app.post("/grid/return")
    def grid_return() -> dict[str, Any]:
        plant.grid_return()
        return ok()

    @app.post("/grid/sag")
    def grid_sag(body: SagBody) -> dict[str, Any]:
        plant.sag(body.pu, body.duration_s)
        return ok()

    @app.post("/grid/flicker")
    def grid_flicker(body: FlickerBody) -> dict[str, Any]:
        plant.flicker(body.period_s, body.count)
        return ok()

    @app.post("/devices/{device_id}/fault")
    def device_fault(device_id: str, body: FaultBody) -> dict[str, Any]:
        driver = need_device(device_id)
        if body.kind == "silence":
            plant.silence(device_id)
        elif body.kind == "garbage":
            plant.garbage(device_id)
        elif body.kind == "corrupt":
            plant.corrupt(device_id)
        elif body.kind == "truncate":
            plant.truncate(device_id)
        elif body.kind == "exception":
            if body.code is None or body.code not in MODBUS_EXCEPTION_CODES:
                codes = sorted(MODBUS_EXCEPTION_CODES)
                raise HTTPException(422, f"code: a Modbus exception code is required {codes}")
            plant.exception(device_id, body.code)
        elif body.kind == "fail_to_operate":
            if driver != "pcc_breaker":
                raise HTTPException(409, f"kind: {device_id} is a {driver}, not a pcc_breaker")
            plant.fail_to_operate(True)
        else:
            try:
                plant.fault(device_id)
            except ValueError as exc:
                raise HTTPException(409, f"kind: {exc}") from None
        return ok()

    @app.post("/devices/{device_id}/clear")
    def device_clear(device_id: str) -> dict[str, Any]:
        need_device(device_id)
        plant.clear_fault(device_id)
        return ok()

    def need_station(device_id: str) -> SimStation:
        device = plant.config.devices.get(device_id)
        if device is None or device.driver != "ocpp":
            raise HTTPException(404, f"device_id: {device_id!r} is not an OCPP station")
        station = (stations or {}).get(device_id)
        if station is None:
            raise HTTPException(409, f"device_id: the station {device_id!r} is not running")
        return station

    # async: a station's state lives in the event loop (not a worker thread's to touch)
    @app.post("/stations/{device_id}/fault")
    async def station_fault(device_id: str, body: StationFaultBody) -> dict[str, Any]:
        station = need_station(device_id)
        try:
            inject_station_fault(station, body.kind, delay_s=body.delay_s)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return ok()

    @app.post("/stations/{device_id}/clear")
    async def station_clear(device_id: str) -> dict[str, Any]:
        clear_station_faults(need_station(device_id))
        return ok()

    @app.post("/vehicles/plug")
    def vehicle_plug(body: PlugBody) -> dict[str, Any]:
        need_connector(body.connector)
        try:
            plant.plug(
                body.connector,
                body.vehicle_id,
                body.soc_pct,
                body.capacity_wh,
                reserve_soc_pct=body.reserve_soc_pct,
            )
        except ValueError as exc:
            raise HTTPException(409, f"connector: {exc}") from None
        return ok()

    @app.post("/vehicles/unplug")
    def vehicle_unplug(body: UnplugBody) -> dict[str, Any]:
        need_connector(body.connector)
        try:
            plant.unplug(body.connector)
        except ValueError as exc:
            raise HTTPException(409, f"connector: {exc}") from None
        return ok()

    @app.post("/pv")
    def pv(body: PvBody) -> dict[str, Any]:
        if body.inverter_id is not None and body.inverter_id not in plant.inverters:
            raise HTTPException(404, f"inverter_id: unknown PV inverter {body.inverter_id!r}")
        plant.set_pv_available(body.available_w, body.inverter_id)
        return ok()

    @app.post("/loads/{load_id}/factor")
    def load_factor(load_id: str, body: FactorBody) -> dict[str, Any]:
        if load_id not in plant.loads:
            raise HTTPException(404, f"load_id: unknown load {load_id!r}")
        plant.set_load_factor(load_id, body.factor)
        return ok()

    return app


class ControlServer(AppServer):
    """The control API over one plant, served on loopback only in the running event loop."""

    def __init__(
        self,
        plant: Plant,
        host: str = "127.0.0.1",
        port: int = 0,
        stations: Mapping[str, SimStation] | None = None,
    ) -> None:
        app = create_app(plant, stations)
        super().__init__(app, require_loopback(host), port, name="control")
        self.plant = plant
