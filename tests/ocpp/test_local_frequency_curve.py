"""resilience.ocpp.local_frequency: the frequency-watt curve and the offline bound (pure).

The curve is read as the simulated station reads it (`firmware_sim.ocpp_model.
curve_power_w`: linear between points, flat beyond), so these are the station's powers.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.ocpp_model import curve_power_w
from resilience.ocpp.local_frequency import (
    MIN_SHARE_FRACTION,
    IslandDroop,
    LocalFrequencyShare,
    freq_watt_curve,
    local_frequency_profile,
    local_frequency_share,
    needs_resend,
    offline_discharge_bound_w,
)

droops = st.builds(
    IslandDroop,
    no_load_hz=st.sampled_from([50.0, 60.0]),
    droop_hz=st.floats(0.05, 3.0),
)
shares = st.builds(LocalFrequencyShare, discharge_w=st.floats(0.0, 400_000.0))


@given(droops, shares, st.lists(st.floats(40.0, 70.0), min_size=2, max_size=8))
def test_the_curve_is_monotone_and_within_the_share(
    droop: IslandDroop, share: LocalFrequencyShare, frequencies: list[float]
) -> None:
    points = freq_watt_curve(droop, share)
    powers = [curve_power_w(points, f) for f in sorted(frequencies)]
    for lower, higher in itertools.pairwise(powers):
        assert higher >= lower - 1e-6  # OCPP sign: more discharge (more negative) lower down
    for p in powers:
        assert -share.discharge_w - 0.1 <= p <= 0.0  # never charges, never beyond the share


@given(droops, shares)
def test_zero_at_no_load_and_the_whole_share_at_full_load(
    droop: IslandDroop, share: LocalFrequencyShare
) -> None:
    points = freq_watt_curve(droop, share)
    assert curve_power_w(points, droop.no_load_hz) == 0.0
    assert curve_power_w(points, droop.no_load_hz + 0.5) == 0.0  # a surplus: nothing
    full = curve_power_w(points, droop.no_load_hz - droop.droop_hz)
    assert full == pytest.approx(-share.discharge_w, abs=0.1)
    # Half the former's rating: half the share (the droop's proportional sharing).
    half = curve_power_w(points, droop.no_load_hz - droop.droop_hz / 2)
    assert half == pytest.approx(-share.discharge_w / 2, abs=share.discharge_w * 0.01 + 0.1)


def test_a_droop_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="drooping former"):
        IslandDroop(50.0, 0.0)


@given(
    rating=st.floats(1000.0, 400_000.0),
    car_w=st.floats(0.0, 400_000.0),
    soc=st.floats(0.0, 100.0),
    reserve=st.floats(0.0, 100.0),
    capacity=st.floats(1000.0, 200_000.0),
    central_s=st.integers(1, 300),
    curve_s=st.integers(1, 3600),
)
def test_the_share_never_lets_a_lost_link_take_the_car_below_its_reserve(
    rating: float,
    car_w: float,
    soc: float,
    reserve: float,
    capacity: float,
    central_s: int,
    curve_s: int,
) -> None:
    share, why = local_frequency_share(
        rating_w=rating,
        max_discharge_w=car_w,
        soc_pct=soc,
        reserve_soc_pct=reserve,
        capacity_wh=capacity,
        central_hold_s=central_s,
        curve_hold_s=curve_s,
    )
    if share is None:
        assert why
        return
    assert MIN_SHARE_FRACTION * rating - 1e-6 <= share.discharge_w <= min(rating, car_w) + 1e-6
    # The worst a lost link can do: the last setpoint (at most car_w) for the dead-man's
    # time, then the whole share for the curve's: within the energy above the reserve.
    worst_wh = (central_s * car_w + curve_s * share.discharge_w) / 3600.0
    above_wh = max(0.0, soc - reserve) / 100.0 * capacity
    assert worst_wh <= above_wh * (1 + 1e-9) + 1e-6


def test_a_car_near_its_reserve_gets_no_local_frequency() -> None:
    share, why = local_frequency_share(
        rating_w=11000.0,
        max_discharge_w=11000.0,
        soc_pct=30.02,
        reserve_soc_pct=30.0,
        capacity_wh=60000.0,
        central_hold_s=5,
        curve_hold_s=55,
    )
    assert share is None and "too close to the reserve" in why


def test_the_bound_counts_the_dead_mans_part_first() -> None:
    # 1 kWh above the reserve; 10 s at 11 kW (30.6 Wh) first, then 50 s on the curve.
    bound = offline_discharge_bound_w(
        soc_pct=31.0,
        reserve_soc_pct=30.0,
        capacity_wh=100_000.0,
        central_hold_s=10,
        central_max_w=11000.0,
        curve_hold_s=50,
    )
    assert bound == pytest.approx((1000.0 * 3600 - 10 * 11000.0) / 50)


def test_shares_shrink_in_steps_and_are_resent_only_when_they_change() -> None:
    def share_at(soc: float) -> LocalFrequencyShare | None:
        share, _ = local_frequency_share(
            rating_w=10000.0,
            max_discharge_w=10000.0,
            soc_pct=soc,
            reserve_soc_pct=30.0,
            capacity_wh=50_000.0,
            central_hold_s=5,
            curve_hold_s=595,
        )
        return share

    seen = {share_at(30.0 + i / 100) for i in range(1, 400)}
    assert len(seen) <= 22  # 5 % steps of the rating, and None
    a, b = share_at(33.0), share_at(33.001)
    assert a is not None and b is not None and not needs_resend(a, b)
    assert needs_resend(None, a)


def test_the_profile_is_the_curve_between_idle_and_central_setpoint() -> None:
    profile = local_frequency_profile(
        IslandDroop(60.0, 1.0), LocalFrequencyShare(7000.0), max_offline_duration_s=60
    )
    assert profile["stack_level"] == 1 and profile["max_offline_duration"] == 60
    (period,) = profile["charging_schedule"][0]["charging_schedule_period"]
    assert period["operation_mode"] == "LocalFrequency"
    assert period["discharge_limit"] == -7000.0 and period["limit"] == 0.0
    assert period["v2x_freq_watt_curve"] == [
        {"frequency": 59.0, "power": -7000.0},
        {"frequency": 60.0, "power": 0.0},
    ]
