"""What the central system knows of one station, and the pure decoding that feeds it.

`StationState` is the protocol-independent part: the sessions (`sessions`) decode each
message with the functions here and the driver (`driver`) turns the state into a
`ChargerReading`. Each decoder checks every value before it changes anything: a value out
of physical range raises `Refused` (the session answers a CALLERROR) and leaves the state
as it was, so a station that says something impossible is not believed, exactly as
`resilience.drivers.base` refuses an impossible register.

Signs: the controller's power is + = discharge into the bus = Export - Import; OCPP's
setpoint is + = charging the car. Units are in the names.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from resilience.drivers.base import (
    DEAD_VOLTAGE_V,
    FREQUENCY_MAX_HZ,
    FREQUENCY_MIN_HZ,
    RATING_MARGIN,
    VOLTAGE_MAX_V,
)
from resilience.model import ChargerMode

__all__ = [
    "ACTIVE_ISLANDING_METHODS",
    "CAR_FIGURE_MAX",
    "PASSIVE_ISLANDING_METHODS",
    "Refused",
    "StationState",
    "car_left",
    "charging_needs_update",
    "meter_values_update",
    "parse_time",
    "status_update",
    "transaction_update",
]

ACTIVE_ISLANDING_METHODS = frozenset(
    {
        "ImpedanceMeasurement",
        "ImpedanceAtFrequency",
        "SlipModeFrequencyShift",
        "SandiaFrequencyShift",
        "SandiaVoltageShift",
        "FrequencyJump",
        "RCLQFactor",
        "OtherActive",
    }
)
"""Anti-islanding methods that perturb the grid to detect it: in an island formed by one of
our chargers they fight the grid-former (and may trip it), so such a car never discharges."""
PASSIVE_ISLANDING_METHODS = frozenset(
    {
        "NoAntiIslandingSupport",
        "RoCoF",
        "UVP_OVP",
        "UFP_OFP",
        "VoltageVectorShift",
        "ZeroCrossingDetection",
        "OtherPassive",
    }
)

CAR_FIGURE_MAX = 1_000_000.0
"""[W], [Wh] the largest believable car figure (a 1 MW charger, a 1 MWh battery)."""

PLUGGED_STATUSES = frozenset(
    {
        "Occupied",  # 2.x
        "Preparing",  # 1.6 from here on
        "Charging",
        "SuspendedEV",
        "SuspendedEVSE",
        "Finishing",
    }
)
UNPLUGGED_STATUSES = frozenset({"Available", "Reserved"})
KNOWN_STATUSES = PLUGGED_STATUSES | UNPLUGGED_STATUSES | {"Faulted", "Unavailable"}


class Refused(ValueError):
    """A message whose content cannot be believed; nothing of it was applied."""


@dataclass
class StationState:
    """One station as the central system last heard it (see the module docstring)."""

    identity: str
    version: str
    rating_w: float
    connected: bool = False
    connected_at_s: float | None = None  # monotonic
    last_message_s: float | None = None  # monotonic, any message (Heartbeat included)
    trusted: bool = False  # a MeterValues arrived since the last (re)connect
    booted: bool = False  # BootNotification accepted on this connection
    meter_problem: str = ""  # the last MeterValues was refused (why); cleared by a good one
    status: str = "Unknown"
    plugged: bool = False
    transaction_id: str | None = None
    power_w: float = 0.0  # + = discharge into the site (Export - Import)
    soc_pct: float = 0.0
    voltage_v: float = 0.0
    frequency_hz: float = 0.0
    # The car's figures (NotifyEVChargingNeeds), reset when it leaves.
    capacity_wh: float = 0.0  # 0: unknown
    car_max_charge_w: float | None = None
    car_max_discharge_w: float | None = None
    car_floor_soc_pct: float = 0.0
    departure_wall: float | None = None  # Unix s
    requested_transfer: str | None = None
    available_transfers: tuple[str, ...] = ()
    allowed_transfers: tuple[str, ...] = ()  # after NotifyAllowedEnergyTransfer Accepted
    islanding_methods: tuple[str, ...] = ()
    active_islanding: tuple[str, ...] = ()  # the active ones among them
    # What the central system installed and how the station took it.
    idle_installed: bool = False  # 2.1: the Idle profile at stack level 0
    dynamic_installed: bool = False  # 2.1: the Dynamic CentralSetpoint profile at stack 1
    accepted_mode: ChargerMode = ChargerMode.OFF  # mode of the last command taken
    accepted_setpoint_w: float = 0.0  # + = discharge, of the last command taken
    # What the station holds and takes up again on a live bus [W, + discharge]: known only
    # once a command was taken on this connection (a station that reconnects may still run
    # the Dynamic profile it had before); None until then.
    held_setpoint_w: float | None = None
    last_outcome: str = ""  # "Accepted", "Rejected", "timeout", "CALLERROR <code>"
    last_outcome_ok: bool = True
    rtts_s: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    # Bumped by every assignment to a field above (`__setattr__`): the cycle reads a
    # station fifty times a second, and its driver hands back the last reading while
    # this has not moved (every field is an immutable value; `rtts_s` is not read).
    revision: int = field(default=0, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name != "revision":
            object.__setattr__(self, "revision", self.__dict__.get("revision", 0) + 1)

    def connect(self, now_s: float) -> None:
        """A (new) connection: nothing is trusted until the station reports again, and
        everything installed must be installed again (a station offline longer than the
        Dynamic profile's max_offline_duration dropped it)."""
        self.connected = True
        self.connected_at_s = now_s
        self.last_message_s = now_s
        self.trusted = False
        self.booted = False
        self.idle_installed = False
        self.dynamic_installed = False
        self.accepted_mode = ChargerMode.OFF
        self.accepted_setpoint_w = 0.0
        self.held_setpoint_w = None
        self.last_outcome = ""
        self.last_outcome_ok = True

    def disconnect(self) -> None:
        self.connected = False
        self.trusted = False
        self.booted = False


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)  # 1.6 sends sampled values as strings
    except (TypeError, ValueError):
        raise Refused(f"{what}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise Refused(f"{what}: {value!r} is not a finite number")
    return number


def _in_range(value: float, low: float, high: float, what: str, unit: str) -> float:
    if not low <= value <= high:
        raise Refused(f"{what}: {value:g} {unit} is outside {low:g}..{high:g} {unit}")
    return value


_POWER_UNITS = {"W": 1.0, "kW": 1000.0}


def _sampled(sample: Mapping[str, Any]) -> tuple[str, str | None, float]:
    """(measurand, phase, value in W / % / V / Hz) of one sampled value, 1.6 or 2.x."""
    measurand = str(sample.get("measurand", "Energy.Active.Import.Register"))
    value = _number(sample.get("value"), measurand)
    unit_info = sample.get("unit_of_measure")
    if isinstance(unit_info, Mapping):  # 2.x: {unit, multiplier}
        unit = unit_info.get("unit")
        multiplier = unit_info.get("multiplier", 0)
        if not isinstance(multiplier, int) or not -3 <= multiplier <= 6:
            raise Refused(f"{measurand}: multiplier {multiplier!r} is not an integer in -3..6")
        value *= 10.0**multiplier
    else:
        unit = sample.get("unit")  # 1.6
    if measurand.startswith("Power.") and unit is not None:
        if unit not in _POWER_UNITS:
            raise Refused(f"{measurand}: unit {unit!r} is not W or kW")
        value *= _POWER_UNITS[str(unit)]
    phase = sample.get("phase")
    return measurand, str(phase) if phase is not None else None, value


def meter_values_update(state: StationState, meter_value: Sequence[Mapping[str, Any]]) -> None:
    """Apply a MeterValues' `meter_value` list (snake_case, as the library hands it over):
    the last entry's power (Export - Import), SoC, AC voltage and frequency. Every value is
    checked before any is applied; `Refused` names the first that cannot be believed.

    A phase-less value is the total; per-phase values are only used when no total is
    given (power summed, voltage and frequency from the first)."""
    if not meter_value:
        raise Refused("meter_value: empty")
    samples = meter_value[-1].get("sampled_value") or []
    totals: dict[str, float] = {}
    phases: dict[str, list[float]] = {}
    for sample in samples:
        if not isinstance(sample, Mapping):
            raise Refused(f"sampled_value: {sample!r} is not an object")
        measurand, phase, value = _sampled(sample)
        if phase is None:
            totals[measurand] = value
        else:
            phases.setdefault(measurand, []).append(value)
    for measurand, values in phases.items():
        if measurand not in totals:
            summed = measurand.startswith("Power.")
            totals[measurand] = sum(values) if summed else values[0]
    top = RATING_MARGIN * state.rating_w
    power = state.power_w
    if "Power.Active.Import" in totals or "Power.Active.Export" in totals:
        imported = _in_range(
            totals.get("Power.Active.Import", 0.0), -top, top, "Power.Active.Import", "W"
        )
        exported = _in_range(
            totals.get("Power.Active.Export", 0.0), -top, top, "Power.Active.Export", "W"
        )
        power = _in_range(exported - imported, -top, top, "Export - Import", "W")
    soc = state.soc_pct
    if "SoC" in totals:
        soc = _in_range(totals["SoC"], 0.0, 100.0, "SoC", "%")
    volts = state.voltage_v
    if "Voltage" in totals:
        volts = _in_range(totals["Voltage"], 0.0, VOLTAGE_MAX_V, "Voltage", "V")
    hertz = state.frequency_hz
    if "Frequency" in totals:
        hertz = totals["Frequency"]
        if not (hertz == 0.0 and volts < DEAD_VOLTAGE_V):
            _in_range(hertz, FREQUENCY_MIN_HZ, FREQUENCY_MAX_HZ, "Frequency", "Hz")
    state.power_w = power
    state.soc_pct = soc
    state.voltage_v = volts
    state.frequency_hz = hertz
    state.trusted = True
    state.meter_problem = ""


def status_update(state: StationState, status: str) -> None:
    """A connector status (2.x connector_status or 1.6 status)."""
    if status not in KNOWN_STATUSES:
        raise Refused(f"status: {status!r} is not a known connector status")
    state.status = status
    if status in PLUGGED_STATUSES:
        state.plugged = True
    elif status in UNPLUGGED_STATUSES:
        state.plugged = False
        car_left(state)


def transaction_update(state: StationState, event_type: str, transaction_id: str) -> None:
    """TransactionEvent Started / Updated / Ended (2.x), Start/StopTransaction (1.6)."""
    if event_type in ("Started", "Updated"):
        state.transaction_id = transaction_id
        state.plugged = True
    elif event_type == "Ended":
        state.transaction_id = None
        state.plugged = False
        car_left(state)
    else:
        raise Refused(f"event_type: {event_type!r} is not Started, Updated or Ended")


def car_left(state: StationState) -> None:
    """Forget the car's figures: the next car tells its own."""
    state.transaction_id = None
    state.capacity_wh = 0.0
    state.car_max_charge_w = None
    state.car_max_discharge_w = None
    state.car_floor_soc_pct = 0.0
    state.departure_wall = None
    state.requested_transfer = None
    state.available_transfers = ()
    state.allowed_transfers = ()
    state.islanding_methods = ()
    state.active_islanding = ()


def parse_time(text: str, what: str) -> float:
    """Unix seconds of an ISO 8601 date-time with an offset (OCPP sends UTC, "Z")."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise Refused(f"{what}: {text!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise Refused(f"{what}: {text!r} has no UTC offset")
    return moment.timestamp()


def _optional(mapping: Mapping[str, Any], key: str, what: str) -> float | None:
    if mapping.get(key) is None:
        return None
    return _in_range(_number(mapping[key], what), 0.0, CAR_FIGURE_MAX, what, "")


def _strings(values: Iterable[Any] | None) -> tuple[str, ...]:
    return tuple([str(v) for v in values or ()])


def charging_needs_update(state: StationState, charging_needs: Mapping[str, Any]) -> None:
    """Apply NotifyEVChargingNeeds' `charging_needs` (snake_case): the car's capacity, SoC,
    power limits, own floor, departure and anti-islanding methods. All checked first.

    The car's floor [%] is soc + ev_min_v2x_energy_request / capacity * 100 (the energy to
    its own minimum SoC; negative = it may give that much), clamped to 0..100; without the
    figure (or the capacity) the floor is 0 and only the owner's reserve applies."""
    dc = charging_needs.get("dc_charging_parameters") or {}
    v2x = charging_needs.get("v2x_charging_parameters") or {}
    der = charging_needs.get("der_charging_parameters") or {}
    capacity = _optional(dc, "ev_energy_capacity", "ev_energy_capacity [Wh]") or 0.0
    soc = state.soc_pct
    if dc.get("state_of_charge") is not None:
        soc = _in_range(_number(dc["state_of_charge"], "state_of_charge"), 0, 100, "SoC", "%")
    ev_max_power = _optional(dc, "ev_max_power", "ev_max_power [W]")
    max_charge = _optional(v2x, "max_charge_power", "max_charge_power [W]")
    if max_charge is None:
        max_charge = ev_max_power
    max_discharge = _optional(v2x, "max_discharge_power", "max_discharge_power [W]")
    floor = 0.0
    if v2x.get("ev_min_v2x_energy_request") is not None and capacity > 0:
        energy = _number(v2x["ev_min_v2x_energy_request"], "ev_min_v2x_energy_request")
        _in_range(energy, -capacity, capacity, "ev_min_v2x_energy_request [Wh]", "Wh")
        floor = min(100.0, max(0.0, soc + energy / capacity * 100.0))
    departure = None
    if charging_needs.get("departure_time") is not None:
        departure = parse_time(str(charging_needs["departure_time"]), "departure_time")
    methods = _strings(der.get("ev_islanding_detection_method"))
    unknown = [m for m in methods if m not in ACTIVE_ISLANDING_METHODS | PASSIVE_ISLANDING_METHODS]
    if unknown:
        raise Refused(f"ev_islanding_detection_method: {unknown[0]!r} is not a known method")
    state.capacity_wh = capacity
    state.soc_pct = soc
    state.car_max_charge_w = max_charge
    state.car_max_discharge_w = max_discharge
    state.car_floor_soc_pct = floor
    state.departure_wall = departure
    state.requested_transfer = str(charging_needs.get("requested_energy_transfer"))
    state.available_transfers = _strings(charging_needs.get("available_energy_transfer"))
    state.islanding_methods = methods
    state.active_islanding = tuple([m for m in methods if m in ACTIVE_ISLANDING_METHODS])
    state.plugged = True
