"""Simulated OCPP 2.0.1 and 1.6 stations: `SimStation201`, `SimStation16`, `make_station`.

The 2.1 `SimStation` (ocpp_station.py) with what the older versions say instead, on the
same `StationModel` and plant charger (the same ramp, delay, car, faults and link):

- 2.0.1 (`ocpp.v201`): BootNotification, Heartbeat, StatusNotification, MeterValues,
  TransactionEvent Started / Ended, NotifyEVChargingNeeds without the 2.1 V2X figures
  (the car's capacity, SoC, power and departure only: no floor of its own, no
  anti-islanding method). SetChargingProfile (a TxDefaultProfile limit), ClearChargingProfile,
  Get/SetVariables as the 2.1 station.
- 1.6 (`ocpp.v16`): BootNotification, Heartbeat, StatusNotification (Preparing with a car,
  Available, Faulted), MeterValues (string values; Frequency has no unit in 1.6),
  StartTransaction when a car plugs (the central system's transaction id is kept) and
  StopTransaction when it leaves; SetChargingProfile with csChargingProfiles and
  ClearChargingProfile.

Neither version has V2X: a limit charges the car up to it. A station whose vendor takes a
negative limit as discharge (the site file's `discharge_method = "negative_limit"`,
`StationModel.negative_limit`) discharges at -limit; any other station refuses a negative
limit. Limits come in W or in A (`charging_rate_unit`): amperes are turned into watts at
`PHASE_VOLTAGE_V` per phase times the period's `number_phases` (3 when not given), what an
AC station's meter would make of them. There is no dead-man in these versions: a limit
outlives a lost link (the central system must and does assume so).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call_16
from ocpp.v16 import call_result as result_16
from ocpp.v201 import call as call_201
from ocpp.v201 import call_result as result_201

from firmware_sim.ocpp_model import ChargingProfile, SchedulePeriod, StationEvent, StationModel
from firmware_sim.ocpp_station import (
    REJECTING,
    Connection,
    Connector,
    SimStation,
    _rejected,
    _StationChargePoint,
)
from firmware_sim.plant import Plant
from resilience.config import OCPP_SUBPROTOCOLS, Device, OcppSection
from resilience.ocpp.sessions import on

__all__ = [
    "PHASE_VOLTAGE_V",
    "SimStation16",
    "SimStation201",
    "make_station",
    "site_station",
    "to_watts",
]

PHASE_VOLTAGE_V = 230.0
"""[V] phase-to-neutral: what an ampere limit is worth per phase."""


def to_watts(
    profile: ChargingProfile,
    phases: list[int] | None = None,
    phase_voltage_v: float = PHASE_VOLTAGE_V,
) -> ChargingProfile:
    """`profile` with its values in W: an A profile converted period by period at
    `phase_voltage_v` times the period's number of phases (`phases`, 3 when not given);
    a W profile as it is."""
    if profile.rate_unit != "A":
        return profile
    counts = phases or [3] * len(profile.periods)

    def watts(amps: float | None, n: int) -> float | None:
        return None if amps is None else amps * phase_voltage_v * n

    converted = copy.deepcopy(profile)
    converted.rate_unit = "W"
    converted.periods = [
        SchedulePeriod(
            start_period=p.start_period,
            operation_mode=p.operation_mode,
            limit=watts(p.limit, n),
            discharge_limit=watts(p.discharge_limit, n),
            setpoint=watts(p.setpoint, n),
        )
        for p, n in zip(profile.periods, counts, strict=True)
    ]
    return converted


def _phases(periods: list[dict[str, Any]]) -> list[int]:
    return [int(p.get("number_phases") or 3) for p in periods]


class _ChargePoint201(_StationChargePoint):
    """2.0.1: the same handlers as 2.1 (SetChargingProfile, ClearChargingProfile,
    Get/SetVariables have the same fields), 2.0.1 payloads and schemas."""

    _call = call_201
    _call_result = result_201
    _ocpp_version = "2.0.1"


class SimStation201(SimStation):
    """A simulated OCPP 2.0.1 station (see the module docstring)."""

    version = "2.0.1"
    subprotocol = OCPP_SUBPROTOCOLS["2.0.1"]

    def _charge_point(self, conn: Connection) -> Any:
        return _ChargePoint201(self, conn, self.call_timeout_s)

    def _heartbeat(self) -> Any:
        return call_201.Heartbeat()

    def _boot(self, reason: str) -> Any:
        return call_201.BootNotification(
            charging_station={"model": "sim DC 2.0.1", "vendor_name": "resilience"},
            reason=reason,
        )

    def _status(self, status: str) -> Any:
        return call_201.StatusNotification(
            timestamp=self._iso(),
            connector_status=status,
            evse_id=self.model.evse_id,
            connector_id=1,
        )

    def _transaction(self, event_type: str, trigger: str, event: StationEvent) -> Any:
        p = super()._transaction(event_type, trigger, event)
        return call_201.TransactionEvent(
            event_type=p.event_type,
            timestamp=p.timestamp,
            trigger_reason=p.trigger_reason,
            seq_no=p.seq_no,
            transaction_info=p.transaction_info,
            evse=p.evse,
            offline=p.offline,
        )

    def _meter_values(self, power_w: float, context: str) -> Any:
        p = super()._meter_values(power_w, context)
        return call_201.MeterValues(evse_id=p.evse_id, meter_value=p.meter_value)

    def _maybe_send_needs(self) -> None:
        """The car's capacity, SoC, power and departure (2.0.1 has no V2X figures)."""
        vehicle = self.model.charger.vehicle
        if vehicle is None:
            return
        car = self.model.car
        signature = (round(vehicle.soc_pct), car.departure_s, self.model.charger.max_charge_w)
        if signature == self._needs_sent:
            return
        self._needs_sent = signature
        departure = None if car.departure_s is None else self._iso(car.departure_s)
        full = self.model.charging_needs(departure)
        assert full is not None
        dc = dict(full["dc_charging_parameters"])
        dc["ev_max_power"] = self.model.charger.max_charge_w
        dc = {key: round(value) for key, value in dc.items()}  # integers in 2.0.1
        needs: dict[str, Any] = {"requested_energy_transfer": "DC", "dc_charging_parameters": dc}
        if departure is not None:
            needs["departure_time"] = departure
        self._queue(
            call_201.NotifyEVChargingNeeds(charging_needs=needs, evse_id=self.model.evse_id)
        )

    def on_set_charging_profile(self, evse_id: int, profile: dict[str, Any]) -> Any:
        cls = result_201.SetChargingProfile
        if self.rejecting:
            return _rejected(cls, REJECTING)
        if evse_id not in (0, self.model.evse_id):
            return _rejected(cls, f"no EVSE {evse_id} (this station has {self.model.evse_id})")
        try:
            periods = profile["charging_schedule"][0]["charging_schedule_period"]
            parsed = to_watts(ChargingProfile.from_ocpp(profile), _phases(periods))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return _rejected(cls, f"unreadable charging profile: {exc!r}")
        reason = self.model.set_profile(parsed, self.clock())
        return cls(status="Accepted") if reason is None else _rejected(cls, reason)


class _ChargePoint16(ChargePoint16):  # type: ignore[misc]  # ocpp has no type hints
    """1.6: the library's station side; every central-system command goes to the station."""

    def __init__(self, station: SimStation16, connection: Connection, timeout_s: float) -> None:
        super().__init__(station.identity, connection, response_timeout=timeout_s)
        self.station = station

    async def route_message(self, raw_msg: str) -> None:
        station = self.station
        station._handling += 1  # the station's busy flag, for settle()
        try:
            if station.take_reply(raw_msg):
                return
            if raw_msg.startswith("[2"):  # a CALL of the central system
                delay = station.answer_time_s()
                if delay > 0:
                    await asyncio.sleep(delay)  # its response latency, and the "slow" fault
            await super().route_message(raw_msg)
        finally:
            station._handling -= 1

    @on("SetChargingProfile")
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> Any:
        return self.station.on_set_charging_profile_16(connector_id, cs_charging_profiles)

    @on("ClearChargingProfile")
    def on_clear_charging_profile(
        self,
        id: int | None = None,  # the 1.6 field's name
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> Any:
        if self.station.rejecting:
            return result_16.ClearChargingProfile(status="Unknown")
        criteria = {
            "evse_id": connector_id,
            "charging_profile_purpose": charging_profile_purpose,
            "stack_level": stack_level,
        }
        model = self.station.model
        cleared = model.clear_profiles(self.station.clock(), id, criteria)
        return result_16.ClearChargingProfile(status="Accepted" if cleared else "Unknown")


class SimStation16(SimStation):
    """A simulated OCPP 1.6 station (see the module docstring)."""

    version = "1.6"
    subprotocol = OCPP_SUBPROTOCOLS["1.6"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transaction_16: int | None = None  # the central system's id of the session

    def _charge_point(self, conn: Connection) -> Any:
        return _ChargePoint16(self, conn, self.call_timeout_s)

    def _heartbeat(self) -> Any:
        return call_16.Heartbeat()

    def _boot(self, reason: str) -> Any:
        return call_16.BootNotification(
            charge_point_model="sim DC 1.6", charge_point_vendor="resilience"
        )

    def _connector_status(self) -> str:
        if self.model.faulted:
            return "Faulted"
        return "Preparing" if self.model.plugged else "Available"

    def _status(self, status: str) -> Any:
        return call_16.StatusNotification(
            connector_id=self.model.evse_id,
            error_code="OtherError" if status == "Faulted" else "NoError",
            status=status,
            timestamp=self._iso(),
        )

    def _meter_wh(self) -> int:
        return 0

    def _transaction(self, event_type: str, trigger: str, event: StationEvent) -> Any:
        if event_type == "Started":
            self.transaction_16 = None
            return call_16.StartTransaction(
                connector_id=self.model.evse_id,
                id_tag="SIMCAR",
                meter_start=self._meter_wh(),
                timestamp=self._iso(event.at_s),
            )
        return call_16.StopTransaction(
            meter_stop=self._meter_wh(),
            timestamp=self._iso(event.at_s),
            transaction_id=-1,  # the central system's id, filled in as it goes out
            reason="EVDisconnected",
        )

    def _prepare(self, payload: Any) -> Any:
        if isinstance(payload, call_16.StopTransaction):
            if self.transaction_16 is None:
                return None  # its StartTransaction was never answered: nothing to stop
            payload.transaction_id, self.transaction_16 = self.transaction_16, None
        return payload

    def _answered(self, payload: Any, result: Any) -> None:
        if isinstance(payload, call_16.StartTransaction):
            self.transaction_16 = int(result.transaction_id)

    def _meter_values(self, power_w: float, context: str) -> Any:
        p = super()._meter_values(power_w, context)
        values = []
        for sample in p.meter_value[0]["sampled_value"]:
            unit = sample["unit_of_measure"]["unit"]
            value: dict[str, Any] = {
                "value": f"{sample['value']:g}",
                "measurand": sample["measurand"],
                "context": sample["context"],
            }
            if unit != "Hz":  # 1.6 has no unit for frequency
                value["unit"] = unit
            values.append(value)
        return call_16.MeterValues(
            connector_id=self.model.evse_id,
            meter_value=[{"timestamp": self._iso(), "sampled_value": values}],
        )

    def _maybe_send_needs(self) -> None:
        """1.6 has no NotifyEVChargingNeeds: the car says nothing of itself."""

    def on_set_charging_profile_16(self, connector_id: int, profile: dict[str, Any]) -> Any:
        cls = result_16.SetChargingProfile
        if self.rejecting or connector_id not in (0, self.model.evse_id):
            return cls(status="Rejected")
        try:
            schedule = profile["charging_schedule"]
            periods = schedule["charging_schedule_period"]
            parsed = ChargingProfile(
                id=int(profile["charging_profile_id"]),
                stack_level=int(profile["stack_level"]),
                purpose=str(profile["charging_profile_purpose"]),
                kind=str(profile["charging_profile_kind"]),
                rate_unit=str(schedule["charging_rate_unit"]),
                periods=[
                    SchedulePeriod(
                        start_period=int(p.get("start_period", 0)), limit=float(p["limit"])
                    )
                    for p in periods
                ],
                transaction_id=None
                if profile.get("transaction_id") is None
                else str(profile["transaction_id"]),
            )
            parsed = to_watts(parsed, _phases(periods))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.model.rejections.append(f"SetChargingProfile: unreadable: {exc!r}")
            return cls(status="Rejected")
        reason = self.model.set_profile(parsed, self.clock())
        return cls(status="Accepted" if reason is None else "Rejected")


STATION_CLASSES: dict[str, type[SimStation]] = {
    "2.1": SimStation,
    "2.0.1": SimStation201,
    "1.6": SimStation16,
}


def make_station(
    version: str,
    model: StationModel,
    identity: str,
    connector_for: Callable[[str], Connector],
    clock: Callable[[], float],
    **kwargs: Any,
) -> SimStation:
    """The simulated station of `version` ("2.1", "2.0.1", "1.6"); `connector_for(subprotocol)`
    makes its connector (a WebSocket or an in-memory pipe) for that version's subprotocol."""
    try:
        cls = STATION_CLASSES[version]
    except KeyError:
        raise ValueError(f"OCPP {version!r} is not simulated ({sorted(STATION_CLASSES)})") from None
    return cls(model, identity, connector_for(cls.subprotocol), clock, **kwargs)


def site_station(
    device_id: str,
    device: Device,
    section: OcppSection,
    plant: Plant,
    connector_for: Callable[[str], Connector],
    clock: Callable[[], float],
    **kwargs: Any,
) -> SimStation:
    """The simulated station of the site file's `devices.<device_id>` (its `[ocpp]`
    version, EVSE and discharge method) on the plant's charger of that name."""
    station = device.ocpp
    if station is None:
        raise ValueError(f"devices.{device_id}: not an OCPP station (no [ocpp] table)")
    model = StationModel(
        plant,
        device_id,
        evse_id=station.evse_id,
        negative_limit=station.discharge_method == "negative_limit",
        forms_locally=device.local_former,
        local_min_soc_pct=station.local_min_soc_pct or 0.0,
    )
    return make_station(
        station.version,
        model,
        station.identity,
        connector_for,
        clock,
        meter_interval_s=float(section.meter_interval_s),
        heartbeat_interval_s=float(section.heartbeat_interval_s),
        **kwargs,
    )
