"""The controller's vocabulary: modes, tiers and the frozen per-cycle Snapshot.

Everything a decision needs is in a `Snapshot`, built once per control cycle from
what the drivers read. Decisions (guards, policies) are pure functions of a
Snapshot and a time, so they are tested without I/O.

Units are in the names: `_w` watts, `_wh` watt-hours, `_v` volts, `_hz` hertz,
`_pct` percent (0-100), `_deg` degrees, `_s` seconds. Power sign convention:
a source's `power_w` is positive when it supplies the site bus (a vehicle
discharging), negative when it draws from it (a vehicle charging). The grid
meter's `power_w` is positive when the site imports from the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Mode(StrEnum):
    """Operating modes of the site; each one names its runbook."""

    STARTING = "starting"
    GRID_CONNECTED = "grid_connected"
    PLANNED_ISLANDING = "planned_islanding"
    ISLANDING = "islanding"
    BLACK_START = "black_start"
    ISLANDED = "islanded"
    EMERGENCY = "emergency"
    RESYNCHRONISING = "resynchronising"


class Tier(IntEnum):
    """Load priority. A lower value is a higher priority: shed from the top value down."""

    LIFE_SAFETY = 0
    CRITICAL = 1
    ESSENTIAL = 2
    COMFORT = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Tier:
        try:
            return cls[label.upper()]
        except KeyError:
            names = ", ".join(t.label for t in cls)
            raise ValueError(f"unknown tier {label!r} (expected one of: {names})") from None


class BreakerPosition(IntEnum):
    OPEN = 0
    CLOSED = 1
    TRAVELLING = 2
    FAULT = 3


class BreakerCommand(IntEnum):
    NONE = 0
    OPEN = 1
    CLOSE = 2


class ChargerMode(IntEnum):
    """What a bidirectional charger is told to be: off, a current source, or the voltage source."""

    OFF = 0
    FOLLOW = 1
    FORM = 2


class ChargerState(IntEnum):
    UNPLUGGED = 0
    IDLE = 1
    CHARGING = 2
    DISCHARGING = 3
    FORMING = 4
    FAULT = 5


class V2LState(IntEnum):
    UNPLUGGED = 0
    OFF = 1
    SUPPLYING = 2
    TRIPPED = 3


@dataclass(frozen=True)
class DeviceHealth:
    """Whether a device answered this cycle; `since_s` is when it last changed."""

    device_id: str
    available: bool
    since_s: float
    error: str = ""


@dataclass(frozen=True)
class GridReading:
    """Grid side of the PCC, from the grid meter."""

    voltage_v: float
    frequency_hz: float
    power_w: float  # + import from grid


@dataclass(frozen=True)
class BreakerReading:
    """PCC breaker position and its synchronism-check measurements."""

    position: BreakerPosition
    fail_to_operate: bool
    operations: int
    bus_voltage_v: float
    bus_frequency_hz: float
    grid_voltage_v: float
    grid_frequency_hz: float
    phase_diff_deg: float  # grid angle minus bus angle, -180..180


@dataclass(frozen=True)
class LoadState:
    """One switchable load: its configuration and what its panel reports this cycle."""

    load_id: str
    tier: Tier
    rated_power_w: float
    supply: str  # "bus" or the id of the V2L outlet feeding its circuit
    relay_on: bool
    power_w: float
    available: bool  # its panel answered this cycle


@dataclass(frozen=True)
class VehicleState:
    """A vehicle at a bidirectional charger, with the reserve its owner keeps."""

    charger_id: str
    vehicle_id: str | None
    plugged: bool
    can_form: bool
    state: ChargerState
    mode: ChargerMode
    soc_pct: float
    reserve_soc_pct: float
    capacity_wh: float
    power_w: float  # + discharging to the bus
    max_discharge_w: float  # min(charger rating, vehicle limit)
    max_charge_w: float
    bus_voltage_v: float
    bus_frequency_hz: float
    available: bool
    # Configured and reported: it cannot form while the PCC is closed, so it may be closed
    # onto the grid while forming (make before break).
    pcc_interlock: bool = False
    # Whole seconds until its driver's announced leaving time (negative once past); None
    # when none was given (policies/leaving.py winds the connector down before it).
    leave_in_s: float | None = None
    # The setpoint [W, + discharge] it takes up again once its AC side is live (see
    # `ChargerReading.held_setpoint_w`); None: unknown, or a silent charger.
    held_setpoint_w: float | None = None
    # The mode it was last told and keeps (`ChargerReading.told_mode`); None: unknown.
    told_mode: ChargerMode | None = None

    @property
    def energy_above_reserve_wh(self) -> float:
        return max(0.0, (self.soc_pct - self.reserve_soc_pct) / 100.0 * self.capacity_wh)


@dataclass(frozen=True)
class OutletState:
    """A V2L outlet (a vehicle's own AC socket) feeding its own small circuit."""

    outlet_id: str
    vehicle_id: str | None
    state: V2LState
    soc_pct: float
    reserve_soc_pct: float
    capacity_wh: float
    power_w: float
    rating_w: float
    enabled: bool
    available: bool

    @property
    def energy_above_reserve_wh(self) -> float:
        return max(0.0, (self.soc_pct - self.reserve_soc_pct) / 100.0 * self.capacity_wh)


@dataclass(frozen=True)
class PVState:
    inverter_id: str
    power_w: float
    rating_w: float
    limit_pct: float
    available: bool


@dataclass(frozen=True)
class Snapshot:
    """Everything the controller knows at one instant; never mutated."""

    time_s: float  # controller clock (monotonic), seconds
    grid: GridReading | None  # None when the meter did not answer
    pcc: BreakerReading | None  # None when the breaker did not answer
    loads: tuple[LoadState, ...]
    vehicles: tuple[VehicleState, ...]
    outlets: tuple[OutletState, ...]
    pv: PVState | None
    health: tuple[DeviceHealth, ...] = field(default=())
    # When each device's reading in this snapshot was asked for [s, controller clock], in
    # the order of `health`; None for a device with no reading. Devices are read on their
    # own schedules (resilience/poll_schedule.py), so values differ in age: `age_s`.
    read_at_s: tuple[float | None, ...] = field(default=())

    def age_s(self, device_id: str) -> float | None:
        """[s] how old the device's reading is (None: no reading, or no ages given)."""
        for i, health in enumerate(self.health):
            if health.device_id == device_id:
                at = self.read_at_s[i] if i < len(self.read_at_s) else None
                return None if at is None else self.time_s - at
        return None

    def load(self, load_id: str) -> LoadState:
        for load in self.loads:
            if load.load_id == load_id:
                return load
        raise KeyError(load_id)

    def vehicle(self, charger_id: str) -> VehicleState:
        for vehicle in self.vehicles:
            if vehicle.charger_id == charger_id:
                return vehicle
        raise KeyError(charger_id)
