"""Is the grid healthy, and has it been healthy long enough to go back to it?

Owns the grid-health window and the return-to-service timer. Units: voltage
[V] and per-unit [pu] of `nominal_voltage_v`, frequency [Hz], time [s].

A grid that comes back after an outage often flickers for minutes (reclosers,
crews switching feeders), so reconnecting on the first good reading would
drop the shelter back into an outage. The grid must stay inside both windows
continuously for `return_to_service_s` before `ready_for_return` says yes; one
bad or missing reading restarts the timer.
"""

from __future__ import annotations

from resilience.config import GridSection
from resilience.model import GridReading


def grid_healthy(grid: GridReading | None, cfg: GridSection) -> bool:
    """Whether this one grid reading is inside the voltage and frequency windows.

    A silent meter (`None`) is not healthy: we cannot return to a grid we
    cannot see. Both window edges are inclusive. A NaN reading fails every
    comparison and so counts as unhealthy.
    """
    if grid is None:
        return False
    v_lo, v_hi = cfg.voltage_window_pu
    f_lo, f_hi = cfg.frequency_window_hz
    voltage_pu = grid.voltage_v / cfg.nominal_voltage_v
    return v_lo <= voltage_pu <= v_hi and f_lo <= grid.frequency_hz <= f_hi


def healthy_since(previous_since_s: float | None, healthy: bool, now_s: float) -> float | None:
    """The start [s] of the current unbroken healthy run, or None when unhealthy now.

    Feed back the previous cycle's answer: a healthy cycle keeps the old start
    (or starts a run at `now_s`), an unhealthy one clears it.
    """
    if not healthy:
        return None
    return now_s if previous_since_s is None else previous_since_s


def ready_for_return(healthy_since_s: float | None, now_s: float, cfg: GridSection) -> bool:
    """Whether the grid has been healthy continuously for `return_to_service_s` [s]."""
    if healthy_since_s is None:
        return False
    return now_s - healthy_since_s >= cfg.return_to_service_s
