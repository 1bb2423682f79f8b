"""Tier loads, usable energy and hours of endurance."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.model import (
    ChargerMode,
    ChargerState,
    LoadState,
    OutletState,
    Tier,
    V2LState,
    VehicleState,
)
from resilience.policies.endurance import endurance_h, energy_above_reserve_wh, tier_power_w


def load(load_id: str, tier: Tier, rated_w: float, *, on: bool = True) -> LoadState:
    return LoadState(
        load_id=load_id,
        tier=tier,
        rated_power_w=rated_w,
        supply="bus",
        relay_on=on,
        power_w=rated_w if on else 0.0,
        available=True,
    )


def vehicle(
    charger_id: str = "charger_1",
    *,
    soc_pct: float = 80.0,
    reserve_soc_pct: float = 30.0,
    capacity_wh: float = 100_000.0,
    state: ChargerState = ChargerState.DISCHARGING,
    plugged: bool = True,
    available: bool = True,
) -> VehicleState:
    return VehicleState(
        charger_id=charger_id,
        vehicle_id="car",
        plugged=plugged,
        can_form=False,
        state=state,
        mode=ChargerMode.FOLLOW,
        soc_pct=soc_pct,
        reserve_soc_pct=reserve_soc_pct,
        capacity_wh=capacity_wh,
        power_w=0.0,
        max_discharge_w=11_000.0,
        max_charge_w=11_000.0,
        bus_voltage_v=400.0,
        bus_frequency_hz=50.0,
        available=available,
    )


def outlet(
    *, soc_pct: float = 60.0, state: V2LState = V2LState.SUPPLYING, available: bool = True
) -> OutletState:
    return OutletState(
        outlet_id="v2l_1",
        vehicle_id="donor",
        state=state,
        soc_pct=soc_pct,
        reserve_soc_pct=35.0,
        capacity_wh=80_000.0,
        power_w=0.0,
        rating_w=3600.0,
        enabled=True,
        available=available,
    )


LOADS = (
    load("lights", Tier.LIFE_SAFETY, 800.0),
    load("fridge", Tier.LIFE_SAFETY, 600.0, on=False),
    load("pump", Tier.CRITICAL, 3000.0),
    load("kitchen", Tier.ESSENTIAL, 6000.0),
    load("hvac", Tier.COMFORT, 12000.0, on=False),
)


def test_tier_power_counts_rated_power_on_or_off() -> None:
    assert tier_power_w(LOADS, {Tier.LIFE_SAFETY}) == 1400.0


def test_tier_power_of_several_tiers() -> None:
    assert tier_power_w(LOADS, (Tier.LIFE_SAFETY, Tier.CRITICAL)) == 4400.0


def test_tier_power_of_no_tiers_is_zero() -> None:
    assert tier_power_w(LOADS, ()) == 0.0
    assert tier_power_w((), set(Tier)) == 0.0


def test_energy_above_reserve_of_connected_vehicles() -> None:
    cars = [vehicle("a", soc_pct=80.0), vehicle("b", soc_pct=40.0, reserve_soc_pct=40.0)]
    assert math.isclose(energy_above_reserve_wh(cars), 50_000.0)


def test_vehicle_below_reserve_adds_nothing() -> None:
    assert energy_above_reserve_wh([vehicle(soc_pct=20.0)]) == 0.0


@pytest.mark.parametrize(
    "car",
    [
        vehicle(state=ChargerState.FAULT),
        vehicle(state=ChargerState.UNPLUGGED),
        vehicle(plugged=False),
        vehicle(available=False),
    ],
    ids=["fault", "unplugged-state", "not-plugged", "silent"],
)
def test_disconnected_vehicle_adds_nothing(car: VehicleState) -> None:
    assert energy_above_reserve_wh([car]) == 0.0


def test_outlets_add_their_energy() -> None:
    total = energy_above_reserve_wh([vehicle(soc_pct=80.0)], [outlet(soc_pct=60.0)])
    assert math.isclose(total, 50_000.0 + 20_000.0)


def test_tripped_outlet_still_counts_but_unplugged_or_silent_does_not() -> None:
    assert math.isclose(energy_above_reserve_wh([], [outlet(state=V2LState.TRIPPED)]), 20_000.0)
    assert energy_above_reserve_wh([], [outlet(state=V2LState.UNPLUGGED)]) == 0.0
    assert energy_above_reserve_wh([], [outlet(available=False)]) == 0.0


def test_endurance_hours() -> None:
    assert endurance_h(20_000.0, 5_000.0) == 4.0


def test_endurance_net_of_pv() -> None:
    assert endurance_h(20_000.0, 5_000.0, pv_w=1_000.0) == 5.0


def test_endurance_is_infinite_when_pv_covers_the_load() -> None:
    assert endurance_h(20_000.0, 5_000.0, pv_w=5_000.0) == math.inf
    assert endurance_h(0.0, 0.0) == math.inf


def test_no_energy_lasts_zero_hours() -> None:
    assert endurance_h(0.0, 1_000.0) == 0.0


def test_negative_energy_is_an_error() -> None:
    with pytest.raises(ValueError, match="energy_wh"):
        endurance_h(-1.0, 1_000.0)


def test_nan_inputs_are_errors() -> None:
    with pytest.raises(ValueError):
        endurance_h(math.nan, 1_000.0)
    with pytest.raises(ValueError):
        endurance_h(1_000.0, math.nan)


@given(
    energy=st.floats(0, 1e7),
    load_w=st.floats(1, 1e6),
    pv_w=st.floats(0, 1e6),
    more_pv_w=st.floats(0, 1e6),
)
def test_more_pv_never_shortens_endurance(
    energy: float, load_w: float, pv_w: float, more_pv_w: float
) -> None:
    assert endurance_h(energy, load_w, pv_w + more_pv_w) >= endurance_h(energy, load_w, pv_w)
