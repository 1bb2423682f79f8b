"""Synchronism check before closing the PCC, and the island's slip target."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from resilience.config import SyncSection
from resilience.model import BreakerPosition, BreakerReading
from resilience.policies.sync import (
    SyncCheck,
    close_check_section,
    island_frequency_target_hz,
    predicted_phase_deg,
    slip_hz,
    sync_check,
    wrap_deg,
)

CFG = SyncSection()  # 0.3 Hz, 10 %, 20°, 0.05 s close, 0.1 Hz slip, 0.1 pu dead bus
NOMINAL_V = 400.0


def pcc(
    *,
    bus_v: float = 400.0,
    bus_f: float = 50.0,
    grid_v: float = 400.0,
    grid_f: float = 50.0,
    phase: float = 0.0,
) -> BreakerReading:
    return BreakerReading(
        position=BreakerPosition.OPEN,
        fail_to_operate=False,
        operations=0,
        bus_voltage_v=bus_v,
        bus_frequency_hz=bus_f,
        grid_voltage_v=grid_v,
        grid_frequency_hz=grid_f,
        phase_diff_deg=phase,
    )


def check(reading: BreakerReading | None, cfg: SyncSection = CFG) -> SyncCheck:
    return sync_check(reading, cfg, NOMINAL_V)


def test_matched_systems_may_close() -> None:
    result = check(pcc())
    assert result.ok
    assert not result.dead_bus
    assert result.reason.startswith("in sync")


def test_no_reading_may_not_close() -> None:
    result = check(None)
    assert not result.ok
    assert "no reading" in result.reason


def test_dead_grid_may_not_close() -> None:
    result = check(pcc(grid_v=150.0, bus_v=0.0))
    assert not result.ok
    assert not result.dead_bus
    assert "grid side dead" in result.reason


def test_dead_grid_with_live_bus_may_not_close() -> None:
    assert not check(pcc(grid_v=0.0)).ok


def test_dead_bus_close_onto_live_grid() -> None:
    result = check(pcc(bus_v=20.0, bus_f=0.0, phase=170.0))
    assert result.ok
    assert result.dead_bus
    assert "dead-bus close" in result.reason


def test_bus_at_dead_bus_threshold_is_live() -> None:
    result = check(pcc(bus_v=40.0, bus_f=0.0, phase=170.0))
    assert not result.ok
    assert not result.dead_bus


def test_frequency_difference_too_large() -> None:
    result = check(pcc(bus_f=49.6))
    assert not result.ok
    assert "frequency difference 0.40 Hz > 0.30 Hz" in result.reason


def test_voltage_difference_too_large() -> None:
    result = check(pcc(bus_v=355.0))
    assert not result.ok
    assert "voltage difference 45.0 V > 40.0 V" in result.reason


def test_voltage_difference_at_the_limit_passes() -> None:
    assert check(pcc(bus_v=360.0)).ok


def test_phase_too_large() -> None:
    result = check(pcc(phase=24.0))
    assert not result.ok
    assert "phase 24.0° > 20.0°" in result.reason


def test_negative_phase_too_large() -> None:
    result = check(pcc(phase=-24.0))
    assert not result.ok
    assert "phase 24.0° > 20.0°" in result.reason


def test_phase_moving_out_of_window_during_closing_time() -> None:
    # 19° now, grid 0.2 Hz fast: +72°/s, so +3.6° during the 50 ms close.
    result = check(pcc(phase=19.0, grid_f=50.2))
    assert not result.ok
    assert "phase at contact 22.6° > 20.0°" in result.reason
    assert "phase 19.0°" not in result.reason


def test_phase_moving_into_window_during_closing_time_still_waits() -> None:
    # 22° now, heading to 18.4° at contact: the present angle still fails.
    result = check(pcc(phase=22.0, grid_f=49.8))
    assert not result.ok
    assert "phase 22.0° > 20.0°" in result.reason
    assert "at contact" not in result.reason


def test_every_failing_limit_is_named() -> None:
    result = check(pcc(bus_v=300.0, bus_f=49.0, phase=90.0))
    assert not result.ok
    assert "frequency difference" in result.reason
    assert "voltage difference" in result.reason
    assert "phase 90.0°" in result.reason


def test_nan_measurements_fail_safe() -> None:
    assert not check(pcc(phase=math.nan)).ok
    assert not check(pcc(bus_f=math.nan)).ok
    assert not check(pcc(grid_v=math.nan)).ok
    assert not check(pcc(bus_v=math.nan)).ok


def test_phase_outside_range_is_wrapped() -> None:
    assert check(pcc(phase=365.0)).ok  # 5°
    assert check(pcc(phase=-380.0)).ok  # -20°, at the limit
    result = check(pcc(phase=335.0))  # -25°
    assert not result.ok
    assert "phase 25.0° > 20.0°" in result.reason


def test_wrap_deg() -> None:
    assert wrap_deg(0.0) == 0.0
    assert wrap_deg(190.0) == -170.0
    assert wrap_deg(-190.0) == 170.0
    assert wrap_deg(180.0) == -180.0
    assert wrap_deg(720.0 + 10.0) == 10.0


def test_prediction_wraps_across_180() -> None:
    # 175° plus 0.5 Hz * 0.05 s * 360 = +9° -> 184° -> -176°
    assert math.isclose(predicted_phase_deg(pcc(phase=175.0, grid_f=50.5), 0.05), -176.0)


def test_island_runs_faster_than_grid_by_the_slip() -> None:
    assert math.isclose(island_frequency_target_hz(50.02, CFG), 50.12)


def test_slip_sweeps_the_angle_through_a_closing_window() -> None:
    """Integrating the angle at the slip target must reach an ok check within 1/slip s."""
    grid_f = 49.97
    bus_f = island_frequency_target_hz(grid_f, CFG)
    phase = 150.0
    dt = 0.02
    for step in range(int(1 / CFG.slip_frequency_hz / dt) + 1):
        if check(pcc(grid_f=grid_f, bus_f=bus_f, phase=phase)).ok:
            assert step > 0
            return
        phase = wrap_deg(phase + 360.0 * (grid_f - bus_f) * dt)
    raise AssertionError("never synchronised")


@given(
    bus_v=st.floats(0, 500),
    bus_f=st.floats(45, 55),
    grid_v=st.floats(0, 500),
    grid_f=st.floats(45, 55),
    phase=st.floats(-180, 180),
)
def test_ok_live_close_implies_every_limit_holds(
    bus_v: float, bus_f: float, grid_v: float, grid_f: float, phase: float
) -> None:
    reading = pcc(bus_v=bus_v, bus_f=bus_f, grid_v=grid_v, grid_f=grid_f, phase=phase)
    result = check(reading)
    if not result.ok:
        assert result.reason
        return
    assert grid_v >= 0.5 * NOMINAL_V
    if result.dead_bus:
        assert bus_v < CFG.dead_bus_max_pu * NOMINAL_V
        return
    assert abs(grid_f - bus_f) <= CFG.max_frequency_diff_hz
    assert abs(grid_v - bus_v) <= CFG.max_voltage_diff_pct / 100 * NOMINAL_V
    assert abs(phase) <= CFG.max_phase_diff_deg
    contact = wrap_deg(phase + 360 * (grid_f - bus_f) * CFG.breaker_close_time_s)
    assert abs(contact) <= CFG.max_phase_diff_deg


@settings(max_examples=200, deadline=None)
@given(
    cycle_s=st.floats(0.01, 2.0),
    window_deg=st.floats(5.0, 40.0),
    close_time_s=st.floats(0.02, 0.2),
    slip=st.floats(0.02, 0.5),
    phase0=st.floats(-180.0, 180.0),
)
def test_a_slow_cycle_still_finds_the_closing_window_within_one_sweep(
    cycle_s: float, window_deg: float, close_time_s: float, slip: float, phase0: float
) -> None:
    """Sampled once a cycle, at the slip `slip_hz` gives, the angle passes the close check
    (now and a close horizon ahead, half the window) within one sweep, whatever the cycle.
    At the site's own 0.1 Hz a 0.3 s cycle never passed: the drill stayed islanded."""
    cfg = CFG.model_copy(
        update={
            "max_phase_diff_deg": window_deg,
            "breaker_close_time_s": close_time_s,
            "slip_frequency_hz": slip,
            "max_frequency_diff_hz": 1.0,
        }
    )
    limits = close_check_section(cfg, cycle_s)
    grid_f = 50.0
    bus_f = island_frequency_target_hz(grid_f, cfg, cycle_s)
    sweep_s = 1.0 / (bus_f - grid_f)
    phase = phase0
    for _ in range(int(sweep_s / cycle_s) + 2):
        reading = pcc(grid_f=grid_f, bus_f=bus_f, phase=phase)
        if sync_check(reading, limits, 400.0).ok:
            return
        phase = wrap_deg(phase + 360.0 * (grid_f - bus_f) * cycle_s)
    raise AssertionError(f"no cycle passed the close check in one {sweep_s:.1f} s sweep")


def test_the_slip_is_the_sites_own_on_a_fast_cycle() -> None:
    assert slip_hz(0.1, 20.0, 0.05, 0.02) == 0.1
    assert slip_hz(0.1, 20.0, 0.05, 0.3) < 0.1
