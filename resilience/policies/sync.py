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

from resilience.config import SyncSection
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


def island_frequency_target_hz(grid_frequency_hz: float, cfg: SyncSection) -> float:
    """The frequency [Hz] the island's grid-former should run at while resynchronising.

    Running exactly at grid frequency could park the angle far from zero for
    ever; a small slip (`slip_frequency_hz`, kept below `max_frequency_diff_hz`)
    sweeps the angle through alignment once every 1/slip seconds.
    """
    return grid_frequency_hz + cfg.slip_frequency_hz
