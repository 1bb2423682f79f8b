"""The must-trip evaluator (IEEE 1547-2018 style trip points with clearing times), the
trip tables a site chooses, and the enter-service reason shown while a site waits."""

from __future__ import annotations

import pytest

from resilience.config import GridSection, TripPoint, trip_points
from resilience.model import GridReading
from resilience.policies.grid import (
    TripState,
    TripVerdict,
    enter_service_reason,
    evaluate_trip,
    next_trip_s,
    within_trip_limits,
)

NOMINAL_V = 480.0


def grid(table: str = "ieee1547_cat2", hz: float = 60.0, **extra: object) -> GridSection:
    window = {"frequency_window_hz": (59.5, 60.1)} if hz == 60.0 else {}
    return GridSection.model_validate(
        {
            "nominal_voltage_v": NOMINAL_V,
            "nominal_frequency_hz": hz,
            "connection_kva": 100.0,
            "meter": "m",
            "pcc_breaker": "b",
            "trip_table": table,
            **window,
            **extra,
        }
    )


CAT2 = trip_points(grid())


def reading(pu: float = 1.0, hz: float = 60.0) -> GridReading:
    return GridReading(voltage_v=pu * NOMINAL_V, frequency_hz=hz, power_w=0.0)


def hold(
    value: GridReading | None, seconds: float, state: TripState | None = None, t0: float = 0.0,
    dt: float = 0.02, points: tuple[TripPoint, ...] = CAT2,
) -> tuple[TripVerdict, float]:
    """Feed the same reading every dt for `seconds`; the first trip, or the last verdict."""
    state = state or TripState()
    t = t0
    verdict = evaluate_trip(value, points, NOMINAL_V, state, t)
    while verdict.tripped is None and t < t0 + seconds - 1e-9:
        t = round(t + dt, 9)
        verdict = evaluate_trip(value, points, NOMINAL_V, verdict.state, t)
    return verdict, t


def levels(points: tuple[TripPoint, ...]) -> dict[str, tuple[float, float]]:
    return {p.name: (p.level, p.clearing_s) for p in points}


def test_ieee1547_cat2_defaults() -> None:
    assert levels(CAT2) == {
        "ov2": (1.20, 0.16),
        "ov1": (1.10, 2.0),
        "uv1": (0.70, 10.0),
        "uv2": (0.45, 0.16),
        "of2": (62.0, 0.16),
        "of1": (61.2, 300.0),
        "uf1": (58.5, 300.0),
        "uf2": (56.5, 0.16),
    }


def test_ieee1547_cat3_voltage_defaults_and_50_hz_deviations() -> None:
    cat3 = levels(trip_points(grid("ieee1547_cat3", hz=50.0)))
    assert {k: cat3[k] for k in ("ov2", "ov1", "uv1", "uv2")} == {
        "ov2": (1.20, 0.16),
        "ov1": (1.10, 13.0),
        "uv1": (0.88, 21.0),
        "uv2": (0.50, 2.0),
    }
    # 50 Hz keeps the 60 Hz table's deviations (inside the standard's adjustable ranges)
    assert cat3["of2"] == (52.0, 0.16) and cat3["uf2"] == (46.5, 0.16)
    assert cat3["of1"][0] == pytest.approx(51.2) and cat3["uf1"] == (48.5, 300.0)


def test_overrides_replace_single_values() -> None:
    site = grid(trip={"of1": {"clearing_s": 10.0}, "uv1": {"pu": 0.8}})
    points = {p.name: p for p in trip_points(site)}
    assert (points["of1"].level, points["of1"].clearing_s) == (61.2, 10.0)
    assert points["uv1"].level == 0.8 and points["uv1"].source == "grid.trip"
    assert points["of2"].source == "ieee1547_cat2"


@pytest.mark.parametrize(
    ("name", "value", "clearing_s"),
    [
        ("ov2", reading(pu=1.25), 0.16),
        ("ov1", reading(pu=1.15), 2.0),
        ("uv1", reading(pu=0.60), 10.0),
        ("uv2", reading(pu=0.40), 0.16),
        ("of2", reading(hz=62.5), 0.16),
        ("of1", reading(hz=61.5), 300.0),
        ("uf1", reading(hz=58.0), 300.0),
        ("uf2", reading(hz=56.0), 0.16),
    ],
)
def test_each_point_trips_exactly_at_its_clearing_time(
    name: str, value: GridReading, clearing_s: float
) -> None:
    dt = 0.02 if clearing_s < 20 else 1.0
    before, t = hold(value, clearing_s - dt, dt=dt)
    assert before.tripped is None, f"{name} tripped early at {t}"
    verdict, t = hold(value, 2 * dt, before.state, t0=t, dt=dt)
    assert verdict.tripped is not None and verdict.tripped.name == name
    assert t == pytest.approx(clearing_s)
    assert name.upper() in verdict.reason


def test_inside_the_table_never_trips() -> None:
    # 60.2 Hz is outside the enter-service window (60.1) but well inside OF1 (61.2)
    for value in (reading(hz=60.2), reading(hz=61.2), reading(pu=0.75), reading(pu=1.10)):
        verdict, _ = hold(value, 3600.0, dt=10.0)
        assert verdict.tripped is None
        assert verdict.state.beyond_since_s == (None,) * len(CAT2)


def test_a_short_excursion_is_ridden_through_and_the_timer_resets() -> None:
    verdict, t = hold(reading(hz=62.5), 0.10)
    assert verdict.tripped is None
    assert next_trip_s(CAT2, verdict.state) == pytest.approx(0.16)
    back = evaluate_trip(reading(), CAT2, NOMINAL_V, verdict.state, t + 0.02)
    assert back.state.beyond_since_s == (None,) * len(CAT2)
    assert next_trip_s(CAT2, back.state) is None
    # a second excursion gets the whole clearing time again
    again, t2 = hold(reading(hz=62.5), 0.14, back.state, t0=t + 0.04)
    assert again.tripped is None
    done, t3 = hold(reading(hz=62.5), 0.04, again.state, t0=t2)
    assert done.tripped is not None and t3 == pytest.approx(t + 0.04 + 0.16)


def test_a_deep_excursion_trips_on_stage_2_while_stage_1_times() -> None:
    verdict, t = hold(reading(hz=62.5), 1.0)
    assert verdict.tripped is not None and verdict.tripped.name == "of2"
    assert t == pytest.approx(0.16)


def test_silence_holds_the_timers_and_never_trips() -> None:
    verdict, t = hold(reading(hz=61.5), 100.0, dt=1.0)
    silent, t = hold(None, 400.0, verdict.state, t0=t, dt=1.0)
    assert silent.tripped is None and silent.state == verdict.state
    nan = evaluate_trip(reading(hz=float("nan")), CAT2, NOMINAL_V, verdict.state, t)
    assert nan.tripped is None and nan.state == verdict.state
    # seen again still beyond OF1, past its clearing time: trips at once
    seen = evaluate_trip(reading(hz=61.5), CAT2, NOMINAL_V, silent.state, t + 1.0)
    assert seen.tripped is not None and seen.tripped.name == "of1"


def test_deadline_matches_the_trip_instant_exactly() -> None:
    state = evaluate_trip(reading(hz=61.5), CAT2, NOMINAL_V, TripState(), 12.345).state
    deadline = next_trip_s(CAT2, state)
    assert deadline is not None
    early = evaluate_trip(reading(hz=61.5), CAT2, NOMINAL_V, state, deadline - 1e-6)
    assert early.tripped is None
    assert evaluate_trip(reading(hz=61.5), CAT2, NOMINAL_V, state, deadline).tripped is not None


def test_within_trip_limits() -> None:
    assert within_trip_limits(reading(hz=60.2), CAT2, NOMINAL_V)
    assert not within_trip_limits(reading(hz=61.3), CAT2, NOMINAL_V)
    assert not within_trip_limits(reading(pu=0.69), CAT2, NOMINAL_V)


def test_enter_service_reason_says_which_limit() -> None:
    site = grid()
    assert enter_service_reason(reading(hz=60.3), site) == (
        "frequency 60.30 Hz above the enter-service limit 60.1 Hz"
    )
    low = enter_service_reason(reading(hz=59.2), site)
    assert low == "frequency 59.20 Hz below the enter-service limit 59.5 Hz"
    sag = enter_service_reason(reading(pu=0.9), site)
    assert sag == "voltage 0.900 pu (432 V) below the enter-service limit 0.917 pu"
    assert enter_service_reason(reading(hz=60.05), site) is None
    assert enter_service_reason(None, site) is None
