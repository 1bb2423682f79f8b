"""Grid health window and the return-to-service timer."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from resilience.config import GridSection
from resilience.model import GridReading
from resilience.policies.grid import grid_healthy, healthy_since, ready_for_return

CFG = GridSection(
    nominal_voltage_v=400.0,
    nominal_frequency_hz=50.0,
    connection_kva=100.0,
    meter="grid_meter",
    pcc_breaker="pcc_breaker",
)


def reading(voltage_v: float = 400.0, frequency_hz: float = 50.0) -> GridReading:
    return GridReading(voltage_v=voltage_v, frequency_hz=frequency_hz, power_w=0.0)


def test_nominal_grid_is_healthy() -> None:
    assert grid_healthy(reading(), CFG)


def test_silent_meter_is_not_healthy() -> None:
    assert not grid_healthy(None, CFG)


def test_window_edges_are_inclusive() -> None:
    assert grid_healthy(reading(voltage_v=0.917 * 400.0), CFG)
    assert grid_healthy(reading(voltage_v=1.05 * 400.0), CFG)
    assert grid_healthy(reading(frequency_hz=49.5), CFG)
    assert grid_healthy(reading(frequency_hz=50.5), CFG)


def test_undervoltage_is_not_healthy() -> None:
    assert not grid_healthy(reading(voltage_v=0.9 * 400.0), CFG)


def test_overvoltage_is_not_healthy() -> None:
    assert not grid_healthy(reading(voltage_v=1.06 * 400.0), CFG)


def test_frequency_out_of_window_is_not_healthy() -> None:
    assert not grid_healthy(reading(frequency_hz=49.4), CFG)
    assert not grid_healthy(reading(frequency_hz=50.6), CFG)


def test_dead_grid_is_not_healthy() -> None:
    assert not grid_healthy(reading(voltage_v=0.0, frequency_hz=0.0), CFG)


def test_nan_reading_is_not_healthy() -> None:
    assert not grid_healthy(reading(voltage_v=math.nan), CFG)
    assert not grid_healthy(reading(frequency_hz=math.nan), CFG)


def test_healthy_run_starts_now() -> None:
    assert healthy_since(None, True, 12.0) == 12.0


def test_healthy_run_keeps_its_start() -> None:
    assert healthy_since(3.0, True, 12.0) == 3.0


def test_unhealthy_reading_clears_the_run() -> None:
    assert healthy_since(3.0, False, 12.0) is None
    assert healthy_since(None, False, 12.0) is None


def test_not_ready_without_a_healthy_run() -> None:
    assert not ready_for_return(None, 1000.0, CFG)


def test_ready_exactly_after_return_to_service() -> None:
    assert not ready_for_return(100.0, 100.0 + 299.9, CFG)
    assert ready_for_return(100.0, 100.0 + 300.0, CFG)


def test_zero_return_to_service_is_ready_at_once() -> None:
    cfg = CFG.model_copy(update={"return_to_service_s": 0.0})
    assert ready_for_return(5.0, 5.0, cfg)


def test_one_flicker_restarts_the_timer() -> None:
    since: float | None = None
    for t in range(0, 200):
        since = healthy_since(since, True, float(t))
    since = healthy_since(since, False, 200.0)
    for t in range(201, 400):
        since = healthy_since(since, True, float(t))
    assert since == 201.0
    assert not ready_for_return(since, 400.0, CFG)
    assert ready_for_return(since, 501.0, CFG)


@given(st.lists(st.booleans(), min_size=1, max_size=60))
def test_ready_only_after_an_unbroken_healthy_run(samples: list[bool]) -> None:
    """Ready at time t iff every sample in the last return_to_service_s was healthy."""
    cfg = CFG.model_copy(update={"return_to_service_s": 10.0})
    since: float | None = None
    for t, healthy in enumerate(samples):
        since = healthy_since(since, healthy, float(t))
        window = samples[max(0, t - 10) : t + 1]
        expected = t >= 10 and all(window)
        assert ready_for_return(since, float(t), cfg) == expected
