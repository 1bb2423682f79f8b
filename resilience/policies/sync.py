"""May the PCC breaker close now? The synchronism check, and the island's slip target.

Owns the decision to close the point-of-common-coupling breaker onto a live
grid. Units: voltage [V] (limits in [%] of `nominal_voltage_v`, dead-bus
threshold in [pu]), frequency [Hz], phase angle [deg], breaker closing time [s].

Closing two live AC systems out of phase is a short circuit through the
vehicles' inverters and the shaft of every motor on the bus, so the breaker may
close only when frequency, voltage and phase all match within limits. The
phase is checked twice: now, and as it will be when the contacts touch
`breaker_close_time_s` later, because with a frequency difference the angle
keeps moving while the mechanism travels. Anything we cannot read (a silent
relay, NaN) fails the check: every comparison is written so that NaN fails.

A dead site bus (no island running) may be closed onto a live grid without
matching anything: that is a dead-bus close, flagged so the caller can log it.
"""

from __future__ import annotations

from dataclasses import dataclass

from resilience.config import FREQUENCY_SETPOINT_RANGE_HZ, SyncSection
from resilience.model import BreakerReading

GRID_LIVE_MIN_PU = 0.5
"""[pu] below this the grid side of the PCC counts as dead: never close onto it."""


@dataclass(frozen=True)
class SyncCheck:
    """The outcome of one synchronism check; `reason` says why, with the numbers."""

    ok: bool
    reason: str
    dead_bus: bool = False


def wrap_deg(angle_deg: float) -> float:
    """An angle [deg] folded into -180..180 (180 itself becomes -180)."""
    return (angle_deg + 180.0) % 360.0 - 180.0


def predicted_phase_deg(pcc: BreakerReading, close_time_s: float) -> float:
    """The phase difference [deg] (grid minus bus) expected when the contacts touch.

    The angle grid-minus-bus moves at 360 * (grid_f - bus_f) degrees per second.
    """
    slip_hz = pcc.grid_frequency_hz - pcc.bus_frequency_hz
    return wrap_deg(pcc.phase_diff_deg + 360.0 * slip_hz * close_time_s)


def sync_check(pcc: BreakerReading | None, cfg: SyncSection, nominal_voltage_v: float) -> SyncCheck:
    """Whether the PCC breaker may close now, and why (not).

    Not ok without a reading or with a dead grid side (< 0.5 pu). A dead site bus
    (< `dead_bus_max_pu`) with a live grid is ok as a dead-bus close. A live bus
    must match the grid in frequency, voltage, present phase and the phase
    predicted at contact; every limit that fails is named in `reason`.
    """
    if pcc is None:
        return SyncCheck(False, "no reading from the PCC breaker's sync-check relay")
    grid_live_v = GRID_LIVE_MIN_PU * nominal_voltage_v
    if not pcc.grid_voltage_v >= grid_live_v:
        return SyncCheck(False, f"grid side dead: {pcc.grid_voltage_v:.1f} V < {grid_live_v:.1f} V")
    dead_bus_v = cfg.dead_bus_max_pu * nominal_voltage_v
    if pcc.bus_voltage_v < dead_bus_v:
        return SyncCheck(
            True,
            f"dead-bus close: bus {pcc.bus_voltage_v:.1f} V < {dead_bus_v:.1f} V",
            dead_bus=True,
        )

    freq_diff_hz = abs(pcc.grid_frequency_hz - pcc.bus_frequency_hz)
    volt_diff_v = abs(pcc.grid_voltage_v - pcc.bus_voltage_v)
    max_volt_diff_v = cfg.max_voltage_diff_pct / 100.0 * nominal_voltage_v
    phase_deg = wrap_deg(pcc.phase_diff_deg)
    contact_deg = predicted_phase_deg(pcc, cfg.breaker_close_time_s)

    failures: list[str] = []
    if not freq_diff_hz <= cfg.max_frequency_diff_hz:
        failures.append(
            f"frequency difference {freq_diff_hz:.2f} Hz > {cfg.max_frequency_diff_hz:.2f} Hz"
        )
    if not volt_diff_v <= max_volt_diff_v:
        failures.append(f"voltage difference {volt_diff_v:.1f} V > {max_volt_diff_v:.1f} V")
    if not abs(phase_deg) <= cfg.max_phase_diff_deg:
        failures.append(f"phase {abs(phase_deg):.1f}° > {cfg.max_phase_diff_deg:.1f}°")
    if not abs(contact_deg) <= cfg.max_phase_diff_deg:
        failures.append(f"phase at contact {abs(contact_deg):.1f}° > {cfg.max_phase_diff_deg:.1f}°")
    if failures:
        return SyncCheck(False, "; ".join(failures))
    return SyncCheck(
        True,
        f"in sync: Δf {freq_diff_hz:.2f} Hz, ΔV {volt_diff_v:.1f} V,"
        f" phase {phase_deg:.1f}° ({contact_deg:.1f}° at contact)",
    )


SLIP_MARGIN = 0.8
"""The slip keeps the angle's travel over the close horizon to this share of the window."""


def close_horizon_s(breaker_close_time_s: float, cycle_period_s: float) -> float:
    """[s] from a reading of the angle to the contacts touching: the reading is up to a
    cycle old, the command takes up to another cycle to reach the breaker, then the
    breaker's own closing time."""
    return breaker_close_time_s + 2.0 * cycle_period_s


def close_check_section(cfg: SyncSection, cycle_period_s: float) -> SyncSection:
    """The limits the controller closes on: the angle predicted a whole close horizon
    ahead, inside half the phase window (the breaker's relay checks the whole one)."""
    return cfg.model_copy(
        update={
            "breaker_close_time_s": close_horizon_s(cfg.breaker_close_time_s, cycle_period_s),
            "max_phase_diff_deg": cfg.max_phase_diff_deg / 2,
        }
    )


def slip_hz(
    slip_frequency_hz: float,
    max_phase_diff_deg: float,
    breaker_close_time_s: float,
    cycle_period_s: float,
) -> float:
    """[Hz] the island's slip against the grid: the site's, or less on a slow cycle.

    The close check wants the angle inside half the phase window both at the reading
    and a close horizon later. At slip s the angle moves 360 s H degrees over that
    horizon H, so with s above (window / 2) / (360 H) the two can never hold at once:
    the site would slip past alignment for ever and never reconnect (a 0.3 s cycle at
    the default 0.1 Hz did). Below it, a cycle's step is smaller than the interval
    where both hold, so some cycle always lands in it.
    """
    horizon = close_horizon_s(breaker_close_time_s, cycle_period_s)
    limit = SLIP_MARGIN * (max_phase_diff_deg / 2) / (360.0 * horizon)
    return min(slip_frequency_hz, limit)


def island_frequency_target_hz(
    grid_frequency_hz: float, cfg: SyncSection, cycle_period_s: float = 0.0
) -> float:
    """The frequency [Hz] the island's grid-former should run at while resynchronising.

    Running exactly at grid frequency could park the angle far from zero for
    ever; a small slip (`slip_frequency_hz`, kept below `max_frequency_diff_hz`)
    sweeps the angle through alignment once every 1/slip seconds. The slip is the
    site's `slip_frequency_hz`, or less when a slow cycle needs it (`slip_hz`).
    """
    return grid_frequency_hz + slip_hz(
        cfg.slip_frequency_hz, cfg.max_phase_diff_deg, cfg.breaker_close_time_s, cycle_period_s
    )


def droop_setpoint_hz(
    target_hz: float, droop_hz: float, power_w: float, rating_w: float
) -> float:
    """The frequency setpoint [Hz] that holds a drooping grid-former's island at target_hz
    while it carries power_w [W] (its island runs droop_hz x power / rating below its
    setpoint), within what its FREQUENCY_SETPOINT register takes.

    Only resynchronisation raises the setpoint this way: the rest of the time the island
    runs on the droop, so its frequency tells the stations in LocalFrequency mode how
    loaded the former is. An isochronous former (droop 0) gets target_hz unchanged.
    """
    if droop_hz <= 0 or rating_w <= 0:
        return target_hz
    low, high = FREQUENCY_SETPOINT_RANGE_HZ
    return min(high, max(low, target_hz + droop_hz * power_w / rating_w))

