"""An OCPP station as a `resilience.devices.BidirectionalCharger` for the control cycle.

`read()` does no I/O: the station pushes its figures (MeterValues, NotifyEVChargingNeeds,
StatusNotification...) and the driver builds the reading from what it last said. A
station not connected, silent for longer than its `stale_after_s`, or not yet heard with
MeterValues since it (re)connected raises `StationSilent`: never an old value as current.

`command()` never blocks the cycle either: it checks the command (ValueError for what a
Modbus charger driver would refuse) and posts it in a latest-wins mailbox; a sender task
per connection sends the newest command and records how the station took it. When the
last command sent was not taken (Rejected, no answer within `[ocpp].call_timeout_s`, a
CALLERROR), `command()` raises `CommandNotTaken` (after posting the new one), so the
cycle alarms `write_failed:<device>` and retries.

The reading's mode is the mode of the last command the station accepted: that is how the
write plan sees whether a command took effect.

2.1 (V2X): after BootNotification the Idle profile goes to stack level 0; the first
non-zero setpoint installs the Dynamic CentralSetpoint profile at stack level 1 with the
dead-man `max_offline_duration`; then only UpdateDynamicSchedule. Both again after every
reconnect. A station with `local_frequency = true` gets its CentralSetpoint profile at
level 2 (installed at the first command, even at 0 W) and, beneath it at level 1, a
LocalFrequency profile matched to the grid-former's droop (`local_frequency.py`), re-sent
when its share must change; a stale one is cleared at boot. 2.0.1 / 1.6: a
TxDefaultProfile limit [W] per command (charging control; a negative limit discharges
when the site file says `discharge_method = "negative_limit"`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from ocpp.exceptions import OCPPError

from resilience.config import Device, OcppSection
from resilience.devices import BidirectionalCharger, ChargerCommand, ChargerReading
from resilience.drivers import registers
from resilience.model import ChargerMode, ChargerState
from resilience.ocpp import local_frequency as lf
from resilience.ocpp import profiles
from resilience.ocpp.sessions import Session
from resilience.ocpp.state import StationState
from resilience.transport.errors import BadReply, DeviceTimeout, TransportError

if TYPE_CHECKING:  # imported only for a site with a 2.1 station (sessions.session_class)
    from resilience.ocpp.sessions_v21 import V21Session

__all__ = [
    "IDLE_BAND_W",
    "Alarms",
    "CommandNotTaken",
    "Events",
    "OcppStationDriver",
    "StationSilent",
    "may_discharge",
    "reading_from_state",
]

log = logging.getLogger(__name__)

Events = Callable[[str, str, dict[str, Any]], None]
Alarms = Callable[[str, bool, str, str], None]

IDLE_BAND_W = 0.5
"""[W] within ±this a station is idle, neither charging nor discharging."""
_SLACK_W = 1e-6


class StationSilent(DeviceTimeout):
    """An OCPP station not connected, silent too long, or not yet heard since it
    reconnected: its reading is unknown."""


class CommandNotTaken(TransportError):
    """The last command sent to an OCPP station did not take effect (why in the message)."""


def may_discharge(
    state: StationState, device: Device, *, assume_bpt: bool = False
) -> tuple[bool, str]:
    """Whether the station may discharge its car now, and if not why not (`assume_bpt`:
    as if the car had been allowed DC_BPT: whether to allow it)."""
    ocpp = device.ocpp
    if device.charger_role != "follower":
        return False, f"role {device.charger_role}"
    if not state.plugged:
        return False, "no car"
    if state.status in ("Faulted", "Unavailable"):
        return False, f"station {state.status}"
    if state.active_islanding:
        return False, (
            f"the car's anti-islanding is active ({', '.join(state.active_islanding)}): it"
            " would fight the grid-former in an island"
        )
    if state.version == "2.1":
        if not state.idle_installed:
            return False, "the Idle profile (dead-man fallback) is not installed yet"
        if state.capacity_wh <= 0:
            return False, "the car's capacity is unknown"
        offered = state.requested_transfer == "DC_BPT" or "DC_BPT" in state.allowed_transfers
        if not (offered or assume_bpt):
            return False, "the car did not offer DC_BPT"
        return True, ""
    if ocpp is not None and ocpp.discharge_method == "negative_limit":
        return True, ""
    return False, f"OCPP {state.version} has no V2X (discharge_method none)"


def reading_from_state(state: StationState, device: Device) -> ChargerReading:
    """The reading the cycle gets (pure; freshness is the caller's check)."""
    rating = state.rating_w
    if state.status == "Faulted":
        charger_state = ChargerState.FAULT
    elif not state.plugged:
        charger_state = ChargerState.UNPLUGGED
    elif state.power_w > IDLE_BAND_W:
        charger_state = ChargerState.DISCHARGING
    elif state.power_w < -IDLE_BAND_W:
        charger_state = ChargerState.CHARGING
    else:
        charger_state = ChargerState.IDLE
    usable = state.plugged and state.status not in ("Faulted", "Unavailable")
    allowed, _ = may_discharge(state, device)
    floor = state.car_floor_soc_pct
    local_stop = device.ocpp.local_min_soc_pct if device.ocpp is not None else None
    if device.local_former and local_stop is not None:
        # It forms by its own configuration, down to the SoC that configuration stops it at:
        # that is what it can give, and its floor (docs/ocpp.md, "A station that forms").
        floor = max(floor, local_stop)
        allowed = usable and state.soc_pct > floor
    max_discharge = 0.0
    if allowed:
        car = state.car_max_discharge_w
        max_discharge = rating if car is None else min(rating, car)
    max_charge = 0.0
    if usable:
        car = state.car_max_charge_w
        max_charge = rating if car is None else min(rating, car)
    fault = registers.BidirectionalCharger.FAULT_NONE
    if charger_state is ChargerState.FAULT:
        fault = registers.BidirectionalCharger.FAULT_INTERNAL
    return ChargerReading(
        state=charger_state,
        mode=state.accepted_mode,
        soc_pct=state.soc_pct,
        power_w=state.power_w,
        capacity_wh=state.capacity_wh,
        max_discharge_w=max_discharge,
        max_charge_w=max_charge,
        can_form=device.local_former,
        pcc_interlock=device.local_former and device.pcc_interlock,
        ac_voltage_v=state.voltage_v,
        ac_frequency_hz=state.frequency_hz,
        fault_code=fault,
        min_soc_pct=floor,
        vehicle_floor_soc_pct=floor,
        departure_wall=state.departure_wall,
        held_setpoint_w=state.held_setpoint_w,
        told_mode=None if state.held_setpoint_w is None else state.accepted_mode,
    )


class OcppStationDriver:
    """Implements `resilience.devices.BidirectionalCharger` for the OCPP station of
    `devices.<name>`; `CentralSystem.driver` makes it, `CentralSystem` attaches each
    connection of the station to it (see the module docstring)."""

    def __init__(
        self,
        name: str,
        device: Device,
        section: OcppSection,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
        events: Events | None = None,
        alarms: Alarms | None = None,
        island: lf.IslandDroop | None = None,
    ) -> None:
        if device.ocpp is None or device.rating_w is None:
            raise ValueError(f"devices.{name}: an OCPP station needs [devices.{name}.ocpp] and"
                             " rating_w")
        self.name = name
        self.device = device
        self.station = device.ocpp
        self.section = section
        self.heartbeat_interval_s = section.heartbeat_interval_s
        self.clock = clock
        self.wall = wall
        self._events = events
        self._alarms = alarms
        self.state = StationState(self.station.identity, self.station.version, device.rating_w)
        self.session: Session | None = None
        self._pending: ChargerCommand | None = None
        self._wake = asyncio.Event()
        self._booted = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_reading: ChargerReading | None = None
        self._read_revision = -1  # `state.revision` that reading was made at
        self._reported: set[tuple[str, str]] = set()
        self._islanding_alarm = False
        self.sent: list[tuple[str, dict[str, Any]]] = []  # (action, payload) of the last 100
        # The last setpoints sent: (sent at [s, clock], setpoint [W, + discharge], RTT [s]
        # or None when not taken); the API's /ocpp and bench/ocpp_v2x.py read them.
        self.setpoints: deque[tuple[float, float, float | None]] = deque(maxlen=200)
        self._delivering = False
        self.refusal_reported = False
        # LocalFrequency (2.1, the site file says the station supports it, formers droop)
        capable = self.station.local_frequency and self.station.version == "2.1"
        self.island = island if capable else None
        self.local_frequency_share: lf.LocalFrequencyShare | None = None  # installed now
        self.local_frequency_note = ""  # why there is none, when there is none
        self._lf_rejected = False  # the station rejected it on this connection
        self._lf_alarmed = False
        self._inflight_charge_w = 0.0  # [W] the charging a command awaiting its answer asks

    def __repr__(self) -> str:
        return f"OcppStationDriver({self.name!r}, ocpp:{self.station.identity})"

    @property
    def endpoint(self) -> str:
        return f"ocpp:{self.station.identity}"

    @property
    def busy(self) -> bool:
        """A command waiting to be sent or awaiting its answer (drills settle on it)."""
        return self._pending is not None or self._delivering

    def status(self) -> dict[str, Any]:
        """What an operator (and the benchmark) sees of the station: the link, the car,
        the profiles, and how its commands fared."""
        state = self.state
        now = self.clock()
        rtts = sorted(state.rtts_s)

        def pct(p: float) -> float | None:
            return round(rtts[min(len(rtts) - 1, int(p * len(rtts)))] * 1000, 3) if rtts else None

        return {
            "device": self.name,
            "identity": state.identity,
            "version": state.version,
            "connected": state.connected,
            "heard_s_ago": None
            if state.last_message_s is None
            else round(now - state.last_message_s, 3),
            "status": state.status,
            "plugged": state.plugged,
            "power_w": state.power_w,
            "soc_pct": state.soc_pct,
            "accepted_mode": ChargerMode(state.accepted_mode).name.lower(),
            "accepted_setpoint_w": state.accepted_setpoint_w,
            "idle_profile": state.idle_installed,
            "dynamic_profile": state.dynamic_installed,
            "local_frequency": None
            if self.island is None
            else {
                "discharge_w": None
                if self.local_frequency_share is None
                else self.local_frequency_share.discharge_w,
                "note": self.local_frequency_note,
            },
            "last_outcome": state.last_outcome,
            "anti_islanding": list(state.islanding_methods),
            "rtt_ms_p50": pct(0.5),
            "rtt_ms_p99": pct(0.99),
            "rtt_ms_recent": [round(r * 1000, 3) for r in state.rtts_s],
            "commands_recent": [
                {
                    "sent_s": sent,
                    "setpoint_w": setpoint,
                    "rtt_ms": None if rtt is None else round(rtt * 1000, 3),
                }
                for sent, setpoint, rtt in self.setpoints
            ],
        }

    @property
    def rtts_s(self) -> list[float]:
        """[s] recent command round trips (CALL sent -> CALLRESULT), oldest first."""
        return list(self.state.rtts_s)

    # ------------------------------------------------------------------ the cycle's side
    async def read(self) -> ChargerReading:
        problem = self._silence(self.clock())
        if problem:
            raise StationSilent(f"{self.name} ({self.endpoint}): {problem}", endpoint=self.endpoint)
        if self.state.meter_problem:
            raise BadReply(
                f"{self.name} ({self.endpoint}): MeterValues refused: {self.state.meter_problem}",
                endpoint=self.endpoint,
            )
        state, last = self.state, self._last_reading
        if last is not None and self._read_revision == state.revision:
            return last  # nothing came since (the very object: the cycle sees no change)
        reading = reading_from_state(state, self.device)
        self._last_reading, self._read_revision = reading, state.revision
        return reading

    def silent_max_charge_w(self) -> float | None:
        """While it cannot be read, the most a LocalFrequency station can be drawing [W]:
        for `max_offline_duration_s` the last setpoint it accepted (or one sent and not yet
        answered), then its curve (which never charges), then Idle. None (count its rating,
        as for any silent charger) unless the CentralSetpoint and LocalFrequency profiles
        are both known to be in place on this connection. Trusts the station to keep its
        profiles through a reboot (OCPP stores them persistently)."""
        if (
            self.island is None
            or self.local_frequency_share is None
            or not self.state.dynamic_installed
        ):
            return None
        return max(0.0, -self.state.accepted_setpoint_w, self._inflight_charge_w)

    def _silence(self, now: float) -> str:
        state = self.state
        if not state.connected:
            return "not connected to the central system"
        if state.last_message_s is None or now - state.last_message_s > self.station.stale_after_s:
            age = "never" if state.last_message_s is None else f"{now - state.last_message_s:.1f} s"
            limit = self.station.stale_after_s
            return f"silent ({age} since its last message; stale after {limit:g} s)"
        if not state.trusted:
            return "connected, no MeterValues yet since it (re)connected"
        return ""

    def check(self, command: ChargerCommand) -> None:
        """ValueError for a command no station may be given (as the Modbus driver's
        `encode`), judged on the bounds of the reading the cycle last saw."""
        mode = ChargerMode(command.mode)
        if mode is ChargerMode.FORM:
            raise ValueError(f"{self.name}: an OCPP station cannot form the grid")
        power = command.power_setpoint_w
        rating = self.state.rating_w
        if not (math.isfinite(power) and abs(power) <= rating):
            raise ValueError(
                f"{self.name}: power setpoint {power} W is beyond the station's rating"
                f" ±{rating:g} W"
            )
        if not 0.0 <= command.min_soc_pct <= 100.0:
            raise ValueError(
                f"{self.name}: minimum SoC {command.min_soc_pct} % is outside 0..100 %"
            )
        if mode is not ChargerMode.FOLLOW:
            return
        reading = self._last_reading or reading_from_state(self.state, self.device)
        if power > reading.max_discharge_w + _SLACK_W:
            _, why = may_discharge(self.state, self.device)
            raise ValueError(
                f"{self.name}: discharge {power:g} W asked, the station may give"
                f" {reading.max_discharge_w:g} W" + (f" ({why})" if why else "")
            )
        if -power > reading.max_charge_w + _SLACK_W:
            raise ValueError(
                f"{self.name}: charge {-power:g} W asked, the station may take"
                f" {reading.max_charge_w:g} W"
            )

    async def command(self, command: ChargerCommand) -> None:
        self.check(command)
        if not self.state.connected:
            raise StationSilent(
                f"{self.name} ({self.endpoint}): not connected; command not sent",
                endpoint=self.endpoint,
            )
        self._pending = command
        self._wake.set()
        if not self.state.last_outcome_ok:
            raise CommandNotTaken(
                f"{self.name} ({self.endpoint}): the last command was not taken:"
                f" {self.state.last_outcome}",
                endpoint=self.endpoint,
            )

    # ------------------------------------------------------------------ the session's side
    def heard(self) -> None:
        self.state.last_message_s = self.clock()

    def booted(self) -> None:
        self.state.booted = True
        self._booted.set()

    def now_iso(self) -> str:
        return datetime.fromtimestamp(self.wall(), UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        )

    def needs_changed(self) -> None:
        state = self.state
        if state.active_islanding and not self._islanding_alarm:
            self._islanding_alarm = True
            methods = ", ".join(state.active_islanding)
            message = (
                f"{self.name}: the car's anti-islanding method is active ({methods}); it would"
                " fight the grid-former in an island, so this car is never discharged"
            )
            log.warning("%s", message)
            self._alarm(f"ocpp_anti_islanding:{self.name}", True, "warning", message)
            data = {"device": self.name, "methods": list(state.active_islanding)}
            self._event("ocpp", message, data)
        elif not state.active_islanding:
            self._clear_islanding()
        allowed, _ = may_discharge(state, self.device, assume_bpt=True)
        if (
            state.version == "2.1"
            and allowed
            and state.requested_transfer == "DC"
            and "DC_BPT" in state.available_transfers
            and "DC_BPT" not in state.allowed_transfers
            and state.transaction_id is not None
            and self.session is not None
        ):
            self._spawn(self._allow_bpt(self.session, state.transaction_id))

    def car_left(self) -> None:
        self._clear_islanding()

    def report_error(self, action: str, kind: str, detail: str) -> None:
        key = (action, kind)
        if key in self._reported:
            log.debug("%s: CALLERROR %s for %s again: %s", self.name, kind, action, detail)
            return
        self._reported.add(key)
        message = f"{self.name} ({self.endpoint}): CALLERROR {kind} sent for {action}: {detail}"
        log.warning("%s", message)
        self._event("ocpp", message, {"device": self.name, "action": action, "error": kind})

    # ------------------------------------------------------------------ connections
    def attach(self, session: Session) -> None:
        """A new connection of the station (replacing any older one)."""
        self._stop_tasks()
        session.evse_id = self.station.evse_id
        self.session = session
        self._pending = None
        self._wake = asyncio.Event()
        self._booted = asyncio.Event()
        self._last_reading = None
        self.local_frequency_share = None
        self._lf_rejected = False
        self.state.connect(self.clock())
        self._sender = asyncio.create_task(self._send_loop(session), name=f"ocpp-send-{self.name}")

    def detach(self, session: Session) -> bool:
        """The connection of `session` ended; False if a newer one had replaced it."""
        if self.session is not session:
            return False
        self._stop_tasks()
        self.session = None
        self._pending = None
        self.state.disconnect()
        return True

    def _stop_tasks(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ sending
    async def _send_loop(self, session: Session) -> None:
        await self._booted.wait()
        if self.state.version == "2.1":
            await self._install_idle(session)
            if self.island is not None:
                # a LocalFrequency profile left from before would rule until the
                # CentralSetpoint one is back above it: clear it (Unknown if there is none)
                await self._call(
                    session,
                    session._call.ClearChargingProfile(
                        charging_profile_id=lf.LOCAL_FREQUENCY_PROFILE_ID
                    ),
                )
        while True:
            await self._wake.wait()
            self._wake.clear()
            command, self._pending = self._pending, None
            if command is not None:
                self._delivering = True
                try:
                    await self._deliver(session, command)
                finally:
                    self._delivering = False

    async def _call(
        self, session: Session, payload: Any, ok: tuple[str, ...] = ("Accepted",)
    ) -> tuple[bool, str]:
        """Send one CALL; (taken: its status is one of `ok`, outcome) and the RTT recorded
        when answered."""
        action = type(payload).__name__
        self.sent.append((action, _plain(payload)))
        del self.sent[:-100]
        try:
            result = await session.call(payload, suppress=False)
        except TimeoutError:
            return False, f"{action}: no answer within {self.section.call_timeout_s:g} s"
        except OCPPError as exc:
            return False, f"{action}: CALLERROR {exc.code}: {exc.description}"
        except Exception as exc:  # a CALLERROR code outside the spec, a closed connection
            return False, f"{action}: {type(exc).__name__}: {exc}"
        self.state.rtts_s.append(self.clock() - session.call_sent_s)
        status = str(getattr(result, "status", ""))
        if status not in ok:
            return False, f"{action}: {status or 'no status'}"
        return True, f"{action}: {status}"

    def _outcome(self, taken: bool, outcome: str) -> None:
        state = self.state
        if not taken and state.last_outcome_ok:
            message = f"{self.name} ({self.endpoint}): command not taken: {outcome}"
            log.warning("%s", message)
            self._event("ocpp", message, {"device": self.name})
        state.last_outcome = outcome
        state.last_outcome_ok = taken

    async def _install_idle(self, session: Session) -> bool:
        payload = session._call.SetChargingProfile(
            evse_id=self.station.evse_id, charging_profile=profiles.idle_profile()
        )
        taken, outcome = await self._call(session, payload)
        self.state.idle_installed = taken
        if not taken:
            self._outcome(False, f"Idle profile (dead-man): {outcome}")
        return taken

    async def _deliver(self, session: Session, command: ChargerCommand) -> None:
        state = self.state
        reading = reading_from_state(state, self.device)
        try:
            schedule = profiles.schedule_for(
                command,
                max_charge_w=reading.max_charge_w,
                max_discharge_w=reading.max_discharge_w,
                soc_pct=state.soc_pct,
            )
        except ValueError as exc:  # cannot happen with checked bounds; never sent
            self._outcome(False, f"not sent: {exc}")
            return
        if session.dynamic_schedules:  # OCPP 2.1
            if not state.idle_installed and not await self._install_idle(session):
                return
            update = profiles.schedule_update(schedule)
            if state.dynamic_installed:
                payload: Any = session._call.UpdateDynamicSchedule(
                    charging_profile_id=profiles.DYNAMIC_PROFILE_ID, schedule_update=update
                )
            elif schedule.setpoint_w == 0.0 and self.island is None:
                # Idle beneath is 0 W already: nothing to install until power is asked.
                # (Not with LocalFrequency beneath: CentralSetpoint must rule over it.) On a
                # new connection the station may still run the Dynamic profile of the last
                # one (it outlives a link down shorter than max_offline_duration): clear it,
                # so that the zero is known, not assumed.
                if state.held_setpoint_w is None and not await self._clear_dynamic(session):
                    return
                self._taken(command, schedule)
                self._outcome(True, "nothing to send (Idle at 0 W)")
                return
            else:
                payload = session._call.SetChargingProfile(
                    evse_id=self.station.evse_id,
                    charging_profile=profiles.dynamic_profile(
                        schedule,
                        max_offline_duration_s=self.section.max_offline_duration_s,
                        dyn_update_interval_s=self.section.max_offline_duration_s,
                        stack_level=1 if self.island is None else 2,
                    ),
                )
            sent_s = self.clock()
            self._inflight_charge_w = max(0.0, schedule.setpoint_w)
            try:
                taken, outcome = await self._call(session, payload)
            finally:
                self._inflight_charge_w = 0.0
            self.setpoints.append(
                (sent_s, -schedule.setpoint_w, state.rtts_s[-1] if taken else None)
            )
            if taken:
                state.dynamic_installed = True
                cast("V21Session", session).schedule_update = update
                if self.island is not None and not self._lf_rejected:
                    self._taken(command, schedule)
                    self._outcome(taken, outcome)
                    await self._local_frequency(session, command, reading)
                    return
        else:
            limit = schedule.setpoint_w
            if self.station.discharge_method != "negative_limit":
                limit = max(0.0, limit)
            if state.version == "1.6":
                payload = session._call.SetChargingProfile(
                    connector_id=self.station.evse_id,
                    cs_charging_profiles=profiles.limit_profile_16(limit, wall_s=self.wall()),
                )
            else:
                payload = session._call.SetChargingProfile(
                    evse_id=self.station.evse_id,
                    charging_profile=profiles.limit_profile_201(limit, wall_s=self.wall()),
                )
            taken, outcome = await self._call(session, payload)
        if taken:
            self._taken(command, schedule)
        self._outcome(taken, outcome)

    async def _local_frequency(
        self, session: Session, command: ChargerCommand, reading: ChargerReading
    ) -> None:
        """Keep the LocalFrequency profile beneath CentralSetpoint within what the car may
        give offline (local_frequency.py): install, re-send or clear it."""
        assert self.island is not None
        state, section = self.state, self.section
        share, why = lf.local_frequency_share(
            rating_w=state.rating_w,
            max_discharge_w=reading.max_discharge_w,
            soc_pct=state.soc_pct,
            reserve_soc_pct=max(command.min_soc_pct, state.car_floor_soc_pct),
            capacity_wh=state.capacity_wh,
            central_hold_s=section.max_offline_duration_s,
            curve_hold_s=section.local_frequency_offline_s - section.max_offline_duration_s,
        )
        if share is None:
            self.local_frequency_note = why
            if self.local_frequency_share is not None:
                taken, outcome = await self._call(
                    session,
                    session._call.ClearChargingProfile(
                        charging_profile_id=lf.LOCAL_FREQUENCY_PROFILE_ID
                    ),
                )
                if taken or outcome.endswith("Unknown"):
                    self.local_frequency_share = None
                    self._event(
                        "ocpp",
                        f"{self.name}: LocalFrequency withdrawn: {why}",
                        {"device": self.name},
                    )
            return
        if not lf.needs_resend(self.local_frequency_share, share):
            return
        payload = session._call.SetChargingProfile(
            evse_id=self.station.evse_id,
            charging_profile=lf.local_frequency_profile(
                self.island, share, max_offline_duration_s=section.local_frequency_offline_s
            ),
        )
        taken, outcome = await self._call(session, payload)
        if taken:
            self.local_frequency_share = share
            self.local_frequency_note = ""
            return
        # Rejected (or no answer): keep today's behaviour (Idle after the dead-man) and
        # say so once; not retried on this connection. A profile that went unanswered may
        # still have been taken, and would not be kept within the reserve: clear it.
        self._lf_rejected = True
        self.local_frequency_share = None
        if not outcome.endswith("Rejected"):
            clear = session._call.ClearChargingProfile(
                charging_profile_id=lf.LOCAL_FREQUENCY_PROFILE_ID
            )
            await self._call(session, clear)
        self.local_frequency_note = f"rejected: {outcome}"
        if not self._lf_alarmed:
            self._lf_alarmed = True
            message = (
                f"{self.name}: the station did not take the LocalFrequency profile ({outcome});"
                " without the link it falls to Idle after ocpp.max_offline_duration_s, as a"
                " station without LocalFrequency"
            )
            log.warning("%s", message)
            self._alarm(f"ocpp_local_frequency:{self.name}", True, "warning", message)
            self._event("ocpp", message, {"device": self.name})

    def _taken(self, command: ChargerCommand, schedule: profiles.Schedule) -> None:
        self.state.accepted_mode = ChargerMode(command.mode)
        self.state.accepted_setpoint_w = -schedule.setpoint_w
        self.state.held_setpoint_w = -schedule.setpoint_w

    async def _clear_dynamic(self, session: Session) -> bool:
        """ClearChargingProfile of the Dynamic profile: True when the station holds none now
        (Accepted: cleared; Unknown: it had none)."""
        payload = session._call.ClearChargingProfile(
            charging_profile_id=profiles.DYNAMIC_PROFILE_ID
        )
        taken, outcome = await self._call(session, payload, ok=("Accepted", "Unknown"))
        if not taken:
            self._outcome(False, outcome)
        return taken

    async def _allow_bpt(self, session: Session, transaction_id: str) -> None:
        payload = session._call.NotifyAllowedEnergyTransfer(
            transaction_id=transaction_id, allowed_energy_transfer=["DC", "DC_BPT"]
        )
        taken, outcome = await self._call(session, payload)
        if taken and self.state.transaction_id == transaction_id:
            self.state.allowed_transfers = ("DC", "DC_BPT")
        elif not taken:
            self._event("ocpp", f"{self.name}: bidirectional transfer not allowed: {outcome}",
                        {"device": self.name})

    # ------------------------------------------------------------------ records
    def _event(self, kind: str, message: str, data: dict[str, Any]) -> None:
        if self._events is not None:
            self._events(kind, message, data)

    def _alarm(self, code: str, raised: bool, severity: str, message: str) -> None:
        if self._alarms is not None:
            self._alarms(code, raised, severity, message)

    def _clear_islanding(self) -> None:
        if self._islanding_alarm:
            self._islanding_alarm = False
            message = f"{self.name}: the car with active anti-islanding left"
            self._alarm(f"ocpp_anti_islanding:{self.name}", False, "warning", message)


def _plain(payload: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: v for k, v in asdict(payload).items() if v is not None}


if TYPE_CHECKING:  # mypy proves the driver implements the cycle's Protocol

    def _implements(driver: OcppStationDriver) -> None:
        _charger: BidirectionalCharger = driver
