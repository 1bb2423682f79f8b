"""What a device driver offers the control cycle: small Protocols and raw readings.

The cycle only knows these Protocols, so a driver for another vendor, or one that
talks to the simulated firmware in process, slots in without touching decisions.
A driver raises a `resilience.transport.errors.TransportError` subclass when the
device cannot be read or written, and `BadReply` when it answers with values
outside physical range: the cycle then treats the device as unavailable rather
than believing it.

Units are in the names; power is signed as in `resilience.model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from resilience.model import (
    BreakerCommand,
    BreakerReading,
    ChargerMode,
    ChargerState,
    GridReading,
    V2LState,
)


@dataclass(frozen=True)
class PanelReading:
    relay_feedback: tuple[bool, ...]  # one per channel, True = closed
    relay_command: tuple[bool, ...]  # what the panel was last told
    channel_power_w: tuple[float, ...]
    supply_voltage_v: float
    operations: int


@dataclass(frozen=True)
class ChargerReading:
    state: ChargerState
    mode: ChargerMode  # the mode it is running in
    soc_pct: float
    power_w: float  # + discharge into the bus
    capacity_wh: float
    max_discharge_w: float
    max_charge_w: float
    can_form: bool
    ac_voltage_v: float
    ac_frequency_hz: float
    fault_code: int
    min_soc_pct: float  # the reserve the unit itself enforces
    pcc_interlock: bool = False  # never forms while the PCC is closed (CAP_PCC_INTERLOCK)
    # The car's own figures, where it tells them (OCPP 2.1 NotifyEVChargingNeeds): the
    # lowest SoC it lets itself be discharged to, and when it leaves (Unix seconds). The
    # stricter of these and the owner's registered reserve and leaving time wins.
    vehicle_floor_soc_pct: float = 0.0
    departure_wall: float | None = None
    # The power setpoint [W, + discharge] the charger holds and takes up again as soon as
    # its AC side is live (after a dead bus too): Modbus, the mode and setpoint registers
    # read back (0 when OFF); OCPP, the setpoint of the last command the station took on
    # this connection. None: unknown (a station that reconnected may still run a profile
    # from before), which a black start counts as a draw at the charger's rating.
    held_setpoint_w: float | None = None
    # The mode it was last told and keeps (Modbus: MODE_COMMAND read back; OCPP: the last
    # command the station took), which is not always the mode it runs: a grid-former with
    # a PCC interlock told FORM follows while the PCC is closed, and forms the instant it
    # opens. None: unknown.
    told_mode: ChargerMode | None = None


@dataclass(frozen=True)
class ChargerCommand:
    mode: ChargerMode
    power_setpoint_w: float = 0.0  # follow mode, + discharge
    frequency_setpoint_hz: float = 0.0  # form mode
    voltage_setpoint_v: float = 0.0  # form mode
    min_soc_pct: float = 100.0  # the unit refuses to discharge below it

    @property
    def charge_w(self) -> float:
        """[W] What it tells the charger to draw from the bus (only FOLLOW charges)."""
        if self.mode is ChargerMode.FOLLOW and self.power_setpoint_w < 0:
            return -self.power_setpoint_w
        return 0.0


@dataclass(frozen=True)
class OutletReading:
    state: V2LState
    soc_pct: float
    power_w: float
    rating_w: float
    voltage_v: float
    vehicle_cutoff_soc_pct: float
    capacity_wh: float
    enabled: bool


@dataclass(frozen=True)
class InverterReading:
    power_w: float
    rating_w: float
    frequency_hz: float
    voltage_v: float
    state: int  # SunSpec St
    limit_pct: float  # WMaxLimPct in force (100 when the limit is disabled)


class Meter(Protocol):
    async def read(self) -> GridReading: ...


class Breaker(Protocol):
    async def read(self) -> BreakerReading: ...
    async def command(self, command: BreakerCommand) -> None: ...


class LoadRelays(Protocol):
    async def read(self) -> PanelReading: ...
    async def set_relays(self, on: tuple[bool, ...]) -> None: ...


class BidirectionalCharger(Protocol):
    async def read(self) -> ChargerReading: ...
    async def command(self, command: ChargerCommand) -> None: ...


@runtime_checkable
class SilentDrawBound(Protocol):
    """A charger driver that knows, from what its device last accepted, the most it can
    be drawing while it cannot be read [W]; None: nothing known, count its rating (a
    silent charger may be charging at full rating on its last command, rule 5)."""

    def silent_max_charge_w(self) -> float | None: ...


class V2LOutlet(Protocol):
    async def read(self) -> OutletReading: ...
    async def enable(self, on: bool) -> None: ...


class PVInverter(Protocol):
    async def read(self) -> InverterReading: ...
    async def limit(self, pct: float) -> None: ...
