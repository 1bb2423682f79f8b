"""An OCPP 2.1 charging station's behaviour, without the protocol: `StationModel`.

The station is the other side of the safety argument (docs/ocpp: the contract in
notes/ocpp_contract.md), so it keeps its own rules whatever the central system says:

- charging profiles by id and stack level; the highest valid one rules. The controller's
  dead-man pair is an Idle profile (stack 0, 0 W) under a Dynamic CentralSetpoint profile
  (stack 1) whose `max_offline_duration` bounds how long a setpoint outlives the link;
- a setpoint is checked before it is accepted (`discharge_limit <= setpoint <= limit`,
  `discharge_limit <= 0 <= limit`, W only, discharge only when the car offers DC_BPT and
  it was requested or allowed): a violation is Rejected and nothing moves;
- an accepted setpoint starts moving the power `response_delay_s` later, at
  `ramp_w_per_s` (what a real station's power stage and the car's BMS take);
- once the link has been down longer than a profile's max_offline_duration the profile is
  dropped for good (a new one must come from the central system) and the station falls
  back to the profile beneath: Idle, power ramps to 0; or, where the central system
  installed one between them, LocalFrequency (below) until its own max_offline_duration;
- LocalFrequency (OCPP 2.1 operation mode): the power follows the bus frequency the plant
  gives along the period's `v2xFreqWattCurve` (frequency [Hz] -> power [W], OCPP's sign:
  + charges the car; linear between points, flat beyond the ends; plus `v2xBaseline`),
  within its `limit` and `dischargeLimit`, the car's limits and the rating, through a
  first-order response (`freq_watt_response_s`) and the ramp. Nothing on a dead bus: a
  follower has no frequency to follow and cannot energise one. A station built with
  `local_frequency=False` rejects a LocalFrequency period, as one without it would.

It drives the plant's `ChargerSim` as a Modbus charger's firmware would: mode FOLLOW/OFF and
a power setpoint (+ = discharge into the site, the plant's sign; OCPP's is the opposite)
with the car's own floor SoC; the plant clamps to what the car can do and integrates SoC.

Clock-driven: nothing sleeps here; `tick(now_s)` advances it on whatever clock the caller
has (the plant's, a drill's virtual one). Units: W, s, %, Wh.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from firmware_sim.plant import ChargerSim, Plant
from resilience.model import ChargerMode

__all__ = [
    "DEFAULT_ISLANDING_METHODS",
    "CarProfile",
    "ChargingProfile",
    "SchedulePeriod",
    "StationEvent",
    "StationModel",
    "curve_power_w",
]

DEFAULT_ISLANDING_METHODS = ("UVP_OVP", "UFP_OFP")
"""Passive anti-islanding (under/over voltage and frequency): what most cars report."""
ZERO_EXPORT_W = 0.5
"""[W] at or below this the plant's measured power counts as no export (the plant's own
'active' threshold for a charger)."""


@dataclass
class CarProfile:
    """The car at a station, beyond what the plant's vehicle says (capacity, SoC).

    `floor_soc_pct` None: the plant vehicle's reserve. `departure_s` is on the station's
    clock; the car leaves then (None: it stays)."""

    floor_soc_pct: float | None = None
    departure_s: float | None = None
    offers_bpt: bool = True  # DC_BPT in available_energy_transfer
    requests_bpt: bool = True  # requested_energy_transfer DC_BPT (else "DC")
    target_soc_pct: int = 100
    islanding_methods: tuple[str, ...] = DEFAULT_ISLANDING_METHODS
    max_voltage_v: float = 450.0  # [V] DC, the pack's


@dataclass
class SchedulePeriod:
    """The one period of a schedule the controller sends (OCPP sign: + charges the car)."""

    start_period: int = 0
    operation_mode: str | None = None
    limit: float | None = None
    discharge_limit: float | None = None
    setpoint: float | None = None
    # LocalFrequency: (frequency [Hz], power [W], OCPP sign) points, and the baseline [W]
    freq_watt: tuple[tuple[float, float], ...] = ()
    baseline: float | None = None


def curve_power_w(points: Sequence[tuple[float, float]], frequency_hz: float) -> float:
    """A frequency-watt curve at frequency_hz: linear between its points (taken in order of
    frequency), flat beyond the first and the last."""
    ordered = sorted(points)
    if frequency_hz <= ordered[0][0]:
        return ordered[0][1]
    for (f0, p0), (f1, p1) in itertools.pairwise(ordered):
        if frequency_hz == f1:
            return p1
        if frequency_hz < f1:
            return p0 + (p1 - p0) * (frequency_hz - f0) / (f1 - f0)
    return ordered[-1][1]


@dataclass
class ChargingProfile:
    id: int
    stack_level: int
    purpose: str
    kind: str
    rate_unit: str
    periods: list[SchedulePeriod]
    max_offline_duration_s: float | None = None
    transaction_id: str | None = None

    @classmethod
    def from_ocpp(cls, profile: Mapping[str, Any]) -> ChargingProfile:
        """From SetChargingProfile's charging_profile (snake_case, as the ocpp library
        hands it); the first schedule is the one that counts."""
        schedule = profile["charging_schedule"][0]
        periods = [
            SchedulePeriod(
                start_period=int(p.get("start_period", 0)),
                operation_mode=p.get("operation_mode"),
                limit=p.get("limit"),
                discharge_limit=p.get("discharge_limit"),
                setpoint=p.get("setpoint"),
                freq_watt=tuple(
                    (float(pt["frequency"]), float(pt["power"]))
                    for pt in p.get("v2x_freq_watt_curve") or ()
                ),
                baseline=p.get("v2x_baseline"),
            )
            for p in schedule["charging_schedule_period"]
        ]
        mod = profile.get("max_offline_duration")
        return cls(
            id=int(profile["id"]),
            stack_level=int(profile["stack_level"]),
            purpose=str(profile["charging_profile_purpose"]),
            kind=str(profile["charging_profile_kind"]),
            rate_unit=str(schedule["charging_rate_unit"]),
            periods=periods,
            max_offline_duration_s=None if mod is None else float(mod),
            transaction_id=profile.get("transaction_id"),
        )

    @property
    def period(self) -> SchedulePeriod:
        """The period in force: schedules from the controller have one, starting at 0."""
        return self.periods[0]


@dataclass(frozen=True)
class StationEvent:
    """Something the protocol layer must tell the central system about."""

    kind: Literal["plugged", "departed", "unplugged", "needs"]
    at_s: float
    transaction_id: str | None = None


@dataclass
class _Pending:
    due_s: float
    target_w: float


@dataclass
class StationModel:
    """One EVSE (connector 1) of a DC station on the plant's charger `charger_id`."""

    plant: Plant
    charger_id: str
    evse_id: int = 1
    ramp_w_per_s: float | None = None  # None: rating / 0.5 s
    response_delay_s: float = 0.05
    car: CarProfile = field(default_factory=CarProfile)
    local_frequency: bool = True  # implements the LocalFrequency operation mode
    freq_watt_response_s: float = 1.0  # [s] time constant of its frequency-watt response
    # After a dead bus the converter takes up its setpoint again at once, where this one by
    # default restarts from nothing and ramps (a real station need not: with this set, a
    # station still told to charge draws its full setpoint as soon as the bus is live).
    resume_after_dead_bus: bool = False
    # A station whose own local configuration makes it a grid-former: its grid-forming input
    # is wired to the PCC breaker's auxiliary contact (the plant's PCC interlock: while the
    # PCC is closed it follows its profiles); with the PCC open it forms by itself on a dead
    # bus, and follows a bus some other source holds. It stops forming at
    # `local_min_soc_pct`, whatever the central system says (it cannot tell it anything).
    forms_locally: bool = False
    local_min_soc_pct: float = 0.0
    negative_limit: bool = False  # 2.0.1 / 1.6 vendor discharge: a negative limit discharges

    # state (read by tests, the benchmark and the protocol layer)
    profiles: dict[int, ChargingProfile] = field(default_factory=dict)
    allowed_energy_transfer: tuple[str, ...] = ()
    transaction_id: str | None = None
    link_up: bool = False
    link_dropped_s: float | None = None  # when the link last went down
    deadman_tripped_s: float | None = None  # when an offline-bounded profile was last dropped
    local_frequency_since_s: float | None = None  # when LocalFrequency last took over
    power_zero_s: float | None = None  # after a dead-man trip: plant power at zero export
    command_w: float = 0.0  # what the station commands the plant now (+ = discharge)
    target_w: float = 0.0  # where the ramp is heading
    rejections: list[str] = field(default_factory=list)
    events: list[StationEvent] = field(default_factory=list)

    _pending: list[_Pending] = field(default_factory=list)
    _last_tick_s: float | None = None
    _sessions: int = 0
    _departing: bool = False
    _mode: ChargerMode = ChargerMode.OFF
    _written_w: int | None = None
    _lf_w: float | None = None  # the frequency-watt response's state while in LocalFrequency

    def __post_init__(self) -> None:
        if self.ramp_w_per_s is None:
            self.ramp_w_per_s = self.rating_w / 0.5
        if self.ramp_w_per_s <= 0 or self.response_delay_s < 0 or self.freq_watt_response_s <= 0:
            raise ValueError(
                f"{self.charger_id}: ramp_w_per_s and freq_watt_response_s must be > 0 and"
                " response_delay_s >= 0"
            )

    # ------------------------------------------------------------------ views
    @property
    def charger(self) -> ChargerSim:
        return self.plant.chargers[self.charger_id]

    @property
    def rating_w(self) -> float:
        return self.charger.rating_w

    @property
    def plugged(self) -> bool:
        return self.charger.vehicle is not None

    @property
    def faulted(self) -> bool:
        """The plant's charger has an internal fault (`Plant.fault`): no power."""
        return self.charger.internal_fault

    @property
    def floor_soc_pct(self) -> float:
        """The car's own minimum SoC: it never gives energy below it."""
        if self.car.floor_soc_pct is not None:
            return self.car.floor_soc_pct
        vehicle = self.charger.vehicle
        return 0.0 if vehicle is None else vehicle.reserve_soc_pct

    @property
    def may_discharge(self) -> bool:
        """The car offers DC_BPT, and asked for it or the central system allowed it."""
        return self.car.offers_bpt and (
            self.car.requests_bpt or "DC_BPT" in self.allowed_energy_transfer
        )

    @property
    def max_discharge_w(self) -> float:
        return self.charger.max_discharge_w if self.may_discharge else 0.0

    @property
    def deadman_fallback_s(self) -> float | None:
        """[s] from the link dropping to the plant's power at zero export, after a dead-man
        trip (None until both happened)."""
        if self.link_dropped_s is None or self.power_zero_s is None:
            return None
        return self.power_zero_s - self.link_dropped_s

    def active_profile(self) -> ChargingProfile | None:
        """The highest stack level in force (TxProfile above TxDefaultProfile at a level)."""
        order = {"TxProfile": 1}
        best = None
        for p in self.profiles.values():
            if p.transaction_id is not None and p.transaction_id != self.transaction_id:
                continue
            key = (p.stack_level, order.get(p.purpose, 0))
            if best is None or key > (best.stack_level, order.get(best.purpose, 0)):
                best = p
        return best

    def profile_target_w(self) -> float:
        """What the profiles ask for, in the plant's sign (+ = discharge), within the car's
        and the station's limits; 0 with no car, no profile or an Idle one."""
        profile = self.active_profile()
        if profile is None or not self.plugged or self._departing:
            return 0.0
        period = profile.period
        mode = period.operation_mode
        if mode == "Idle":
            ocpp_w = 0.0
        elif mode == "CentralSetpoint":
            ocpp_w = period.setpoint or 0.0
        elif mode == "LocalFrequency":
            if not self.plant.bus_live:
                return 0.0  # no frequency to follow: a follower never energises a dead bus
            ocpp_w = (period.baseline or 0.0) + curve_power_w(
                period.freq_watt, self.plant.bus_frequency_hz
            )
            if period.limit is not None:
                ocpp_w = min(ocpp_w, period.limit)
            if period.discharge_limit is not None:
                ocpp_w = max(ocpp_w, period.discharge_limit)
        elif period.limit is not None:  # ChargingOnly or no mode: a charging limit
            ocpp_w = period.limit if self.negative_limit else max(period.limit, 0.0)
        else:
            ocpp_w = 0.0
        plant_w = -ocpp_w
        return max(-self.charger.max_charge_w, min(plant_w, self.max_discharge_w))

    # ------------------------------------------------------------------ commands
    def check_period(self, period: SchedulePeriod, rate_unit: str = "W") -> str | None:
        """Why a period must be Rejected, or None: the station's side of the contract."""
        if rate_unit != "W":
            return f"charging_rate_unit {rate_unit}: this station takes W only"
        d, s, lim = period.discharge_limit, period.setpoint, period.limit
        if period.operation_mode == "CentralSetpoint" and s is None:
            return "CentralSetpoint without a setpoint"
        if period.operation_mode == "LocalFrequency":
            reason = self._check_freq_watt(period)
            if reason is not None:
                return reason
        for name, v in (("setpoint", s), ("limit", lim), ("discharge_limit", d)):
            if v is not None and not math.isfinite(v):
                return f"{name} {v} is not a number"
        if d is not None and d > 0:
            return f"discharge_limit {d:g} > 0"
        if lim is not None and lim < 0 and period.operation_mode is not None:
            return f"limit {lim:g} < 0"
        if lim is not None and lim < 0 and not self.negative_limit:
            return f"limit {lim:g} < 0: this station does not discharge by a negative limit"
        if lim is not None and lim < 0 and not self.may_discharge:
            return f"limit {lim:g}: the car does not offer bidirectional transfer"
        if s is not None:
            if d is not None and s < d:
                return f"setpoint {s:g} < discharge_limit {d:g}"
            if lim is not None and s > lim:
                return f"setpoint {s:g} > limit {lim:g}"
            if s < 0 and d is None:
                return f"setpoint {s:g} discharges with no discharge_limit"
            if s < 0 and not self.may_discharge:
                return f"setpoint {s:g}: the car does not offer or was not allowed DC_BPT"
        return None

    def _check_freq_watt(self, period: SchedulePeriod) -> str | None:
        if not self.local_frequency:
            return "LocalFrequency: this station does not support the operation mode"
        points = period.freq_watt
        if not points:
            return "LocalFrequency without a v2xFreqWattCurve"
        values = [v for pt in points for v in pt] + [period.baseline or 0.0]
        if not all(math.isfinite(v) for v in values):
            return "v2xFreqWattCurve: a point is not a number"
        frequencies = [f for f, _ in points]
        if len(set(frequencies)) != len(frequencies):
            return "v2xFreqWattCurve: two points at one frequency"
        if any(p < 0 for _, p in points) and not self.may_discharge:
            return "v2xFreqWattCurve discharges: the car does not offer or was not allowed DC_BPT"
        return None

    def set_profile(self, profile: ChargingProfile, now_s: float) -> str | None:
        """SetChargingProfile: None when Accepted, else the reason it is Rejected."""
        reason = None
        if profile.kind == "Dynamic" and len(profile.periods) != 1:
            reason = "a Dynamic profile has exactly one period"
        for period in profile.periods:
            reason = reason or self.check_period(period, profile.rate_unit)
        for other in self.profiles.values():
            same_slot = (other.stack_level, other.purpose) == (profile.stack_level, profile.purpose)
            if other.id != profile.id and same_slot:
                reason = reason or (
                    f"profile {other.id} already holds stack level {profile.stack_level}"
                    f" ({profile.purpose})"
                )
        if reason is not None:
            self.rejections.append(f"SetChargingProfile {profile.id}: {reason}")
            return reason
        self.profiles[profile.id] = profile
        self._retarget(now_s)
        return None

    def update_dynamic(
        self, profile_id: int, update: Mapping[str, Any], now_s: float
    ) -> str | None:
        """UpdateDynamicSchedule: None when Accepted, else why it is Rejected. Values not in
        the update keep the profile's."""
        profile = self.profiles.get(profile_id)
        reason = None
        if profile is None:
            reason = f"no profile {profile_id} (never installed, cleared or dropped offline)"
        elif profile.kind != "Dynamic":
            reason = f"profile {profile_id} is {profile.kind}, not Dynamic"
        if profile is None or reason is not None:
            self.rejections.append(f"UpdateDynamicSchedule {profile_id}: {reason}")
            return reason
        old = profile.period
        new = SchedulePeriod(
            start_period=old.start_period,
            operation_mode=old.operation_mode,
            limit=update.get("limit", old.limit),
            discharge_limit=update.get("discharge_limit", old.discharge_limit),
            setpoint=update.get("setpoint", old.setpoint),
        )
        reason = self.check_period(new, profile.rate_unit)
        if reason is not None:
            self.rejections.append(f"UpdateDynamicSchedule {profile_id}: {reason}")
            return reason
        profile.periods[0] = new
        self._retarget(now_s)
        return None

    def clear_profiles(
        self,
        now_s: float,
        profile_id: int | None = None,
        criteria: Mapping[str, Any] | None = None,
    ) -> bool:
        """ClearChargingProfile: True when something was cleared."""
        criteria = criteria or {}
        doomed = []
        for p in self.profiles.values():
            if profile_id is not None and p.id != profile_id:
                continue
            if criteria.get("evse_id") not in (None, 0, self.evse_id):
                continue
            if criteria.get("charging_profile_purpose") not in (None, p.purpose):
                continue
            if criteria.get("stack_level") not in (None, p.stack_level):
                continue
            doomed.append(p.id)
        for pid in doomed:
            del self.profiles[pid]
        if doomed:
            self._retarget(now_s)
        return bool(doomed)

    def allow_energy_transfer(
        self, transaction_id: str, modes: Sequence[str], now_s: float
    ) -> bool:
        """NotifyAllowedEnergyTransfer: True (Accepted) for the running transaction."""
        if transaction_id != self.transaction_id:
            return False
        self.allowed_energy_transfer = tuple(modes)
        self._retarget(now_s)
        self.events.append(StationEvent("needs", now_s, self.transaction_id))
        return True

    # ------------------------------------------------------------------ link
    def set_link(self, up: bool, now_s: float) -> None:
        if up == self.link_up:
            return
        self.link_up = up
        if not up:
            self.link_dropped_s = now_s

    # ------------------------------------------------------------------ time
    def tick(self, now_s: float) -> None:
        """Advance to now_s: dead-man, car arrival and departure, delayed setpoints, ramp,
        and the plant's setpoints."""
        last = now_s if self._last_tick_s is None else self._last_tick_s
        if now_s < last:
            raise ValueError(f"{self.charger_id}: the clock went back ({now_s} < {last})")
        self._watch_car(now_s)
        self._deadman(now_s)
        cursor = last
        while self._pending and self._pending[0].due_s <= now_s:
            item = self._pending.pop(0)
            due = max(item.due_s, cursor)
            self._ramp(due - cursor)
            cursor = due
            self.target_w = item.target_w
        self._follow_frequency(now_s - last)
        self._ramp(now_s - cursor)
        if (not self.plant.bus_live and not self.resume_after_dead_bus) or self.faulted:
            # Faulted, or no AC on its side: the converter has stopped; when the bus is back
            # (the fault cleared) it starts again from nothing and ramps to its target, as
            # a real station restarts (unless it resumes at once after a dead bus).
            self.command_w = 0.0
        self._last_tick_s = now_s
        self._write_plant()
        if (
            self.deadman_tripped_s is not None
            and self.power_zero_s is None
            and self.plant.charger_power_w(self.charger_id) <= ZERO_EXPORT_W
        ):
            self.power_zero_s = now_s
        if self._departing and abs(self.plant.charger_power_w(self.charger_id)) <= ZERO_EXPORT_W:
            self._leave(now_s)

    def in_local_frequency(self) -> bool:
        profile = self.active_profile()
        return (
            profile is not None
            and profile.period.operation_mode == "LocalFrequency"
            and self.plugged
            and not self._departing
        )

    def _follow_frequency(self, dt_s: float) -> None:
        """In LocalFrequency the target follows the curve at the bus frequency now, through
        a first-order response. The drooping former's frequency answers the stations'
        power at once, so with ticks of dt the loop is stable while a x (1 + g) < 2, a the
        step's share of the way and g the loop gain (the stations' shares over the formers'
        ratings): at 10 ms ticks a is 0.01; the cap keeps a clock that ticks slowly (a
        drill) stable up to g = 19, a dozen stations as big as the former."""
        if not self.in_local_frequency():
            self._lf_w = None
            return
        wanted = self.profile_target_w()
        if self._lf_w is None:
            self._lf_w = self.command_w
        share = min(0.1, 1.0 - math.exp(-max(dt_s, 0.0) / self.freq_watt_response_s))
        self._lf_w += (wanted - self._lf_w) * share
        self.target_w = self._lf_w

    def _ramp(self, dt_s: float) -> None:
        assert self.ramp_w_per_s is not None
        step = self.ramp_w_per_s * max(dt_s, 0.0)
        diff = self.target_w - self.command_w
        if abs(diff) <= step:
            self.command_w = self.target_w
        else:
            self.command_w += math.copysign(step, diff)

    def _retarget(self, now_s: float, delay_s: float | None = None) -> None:
        """The profiles changed: power starts moving to their target after the delay."""
        delay = self.response_delay_s if delay_s is None else delay_s
        self._pending.append(_Pending(now_s + delay, self.profile_target_w()))
        self._pending.sort(key=lambda p: p.due_s)

    def _deadman(self, now_s: float) -> None:
        if self.link_up or self.link_dropped_s is None:
            return
        offline = now_s - self.link_dropped_s
        dropped = [
            p.id
            for p in self.profiles.values()
            if p.max_offline_duration_s is not None and offline > p.max_offline_duration_s
        ]
        if not dropped:
            return
        for pid in dropped:
            del self.profiles[pid]
        self.deadman_tripped_s = now_s
        if self.in_local_frequency():
            self.local_frequency_since_s = now_s
        self.power_zero_s = None
        self._pending.clear()
        self._retarget(now_s, delay_s=0.0)  # the station's own decision: no command latency

    def _watch_car(self, now_s: float) -> None:
        vehicle = self.charger.vehicle
        if vehicle is not None and self.transaction_id is None:
            self._sessions += 1
            self.transaction_id = f"{self.charger_id}-{self._sessions}"
            self.allowed_energy_transfer = ()
            self._departing = False
            self.events.append(StationEvent("plugged", now_s, self.transaction_id))
            self.plant.set_charger_setpoints(self.charger_id, min_soc_pct=self.floor_soc_pct)
            self._retarget(now_s)
        elif vehicle is None and self.transaction_id is not None:  # pulled out from outside
            self.events.append(StationEvent("unplugged", now_s, self.transaction_id))
            self._end_session(now_s)
        departure = self.car.departure_s
        if (
            self.transaction_id is not None
            and not self._departing
            and departure is not None
            and now_s >= departure
        ):
            self._departing = True  # stop first: a car never leaves with current flowing
            self._pending.clear()
            self._retarget(now_s, delay_s=0.0)

    def _leave(self, now_s: float) -> None:
        self.events.append(StationEvent("departed", now_s, self.transaction_id))
        self.plant.unplug(self.charger_id)
        self._end_session(now_s)

    def _end_session(self, now_s: float) -> None:
        self.transaction_id = None
        self.allowed_energy_transfer = ()
        self._departing = False
        self.car.departure_s = None
        self.profiles = {
            pid: p for pid, p in self.profiles.items() if p.purpose != "TxProfile"
        }
        self._pending.clear()
        self.target_w = self.command_w = 0.0
        self._retarget(now_s, delay_s=0.0)

    def _write_plant(self) -> None:
        power = round(self.command_w)
        mode = ChargerMode.FOLLOW if power != 0 or self.target_w != 0 else ChargerMode.OFF
        if not self.plugged:
            mode, power = ChargerMode.OFF, 0
        elif self._forms_now():
            mode = ChargerMode.FORM
        if power != self._written_w:
            self.plant.set_charger_setpoints(
                self.charger_id, power_w=power, min_soc_pct=self.floor_soc_pct
            )
            self._written_w = power
        if mode != self._mode:
            self.plant.set_charger_mode(self.charger_id, mode)
            self._mode = mode

    def _forms_now(self) -> bool:
        """Its local configuration: form (held back by the interlock while the PCC is
        closed), unless it is at its floor, leaving, or the bus is live from another source
        behind an open PCC."""
        vehicle = self.charger.vehicle
        if not self.forms_locally or vehicle is None or self._departing:
            return False
        if vehicle.soc_pct <= max(self.local_min_soc_pct, self.floor_soc_pct):
            return False  # its configuration's floor, or the car's own
        charger = self.charger
        if charger.pcc_closed or charger.form_started_s is not None:
            return True
        return not self.plant.bus_live

    def drain_events(self) -> list[StationEvent]:
        events, self.events = self.events, []
        return events

    # ------------------------------------------------------------------ the car's needs
    def charging_needs(self, departure_time: str | None = None) -> dict[str, Any] | None:
        """NotifyEVChargingNeeds' charging_needs (snake_case) from the plant's vehicle;
        None with no car. `departure_time`: ISO 8601 UTC (None: not sent)."""
        vehicle = self.charger.vehicle
        if vehicle is None:
            return None
        soc = vehicle.soc_pct
        cap = vehicle.capacity_wh
        max_charge = self.charger.max_charge_w
        max_discharge = self.charger.max_discharge_w if self.car.offers_bpt else 0.0
        bpt = self.car.offers_bpt and self.car.requests_bpt
        needs: dict[str, Any] = {
            "requested_energy_transfer": "DC_BPT" if bpt else "DC",
            "available_energy_transfer": ["DC", "DC_BPT"] if self.car.offers_bpt else ["DC"],
            "control_mode": "DynamicControl",
            "dc_charging_parameters": {
                "ev_max_current": round(max(max_charge, max_discharge) / self.car.max_voltage_v, 1),
                "ev_max_voltage": self.car.max_voltage_v,
                "ev_max_power": max(max_charge, max_discharge),
                "ev_energy_capacity": cap,
                "state_of_charge": round(soc),
            },
            "v2x_charging_parameters": {
                "max_charge_power": max_charge,
                "max_discharge_power": max_discharge,
                "ev_min_v2x_energy_request": -(soc - self.floor_soc_pct) / 100.0 * cap,
                "ev_max_v2x_energy_request": (self.car.target_soc_pct - soc) / 100.0 * cap,
                "target_soc": self.car.target_soc_pct,
            },
            "der_charging_parameters": {
                "ev_islanding_detection_method": list(self.car.islanding_methods),
            },
        }
        if departure_time is not None:
            needs["departure_time"] = departure_time
        return needs
