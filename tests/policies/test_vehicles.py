"""Discharge floor, grid-former choice, island capacity and the setpoint split."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.config import DispatchSection
from resilience.model import (
    ChargerMode,
    ChargerState,
    OutletState,
    PVState,
    V2LState,
    VehicleState,
)
from resilience.policies.vehicles import (
    allocate_power,
    can_discharge,
    choose_former,
    discharge_floor_pct,
    discharge_limit_w,
    outlet_enabled,
    outlet_supply_w,
    supply_capacity_w,
)

CFG = DispatchSection()  # reserve_margin_pct 0.5, pv_firm_fraction 0.5


def vehicle(
    charger_id: str = "charger_1",
    *,
    soc_pct: float = 80.0,
    reserve_soc_pct: float = 30.0,
    capacity_wh: float = 100_000.0,
    state: ChargerState = ChargerState.DISCHARGING,
    plugged: bool = True,
    available: bool = True,
    can_form: bool = False,
    max_discharge_w: float = 11_000.0,
    max_charge_w: float = 11_000.0,
) -> VehicleState:
    return VehicleState(
        charger_id=charger_id,
        vehicle_id=f"car_{charger_id}",
        plugged=plugged,
        can_form=can_form,
        state=state,
        mode=ChargerMode.FOLLOW,
        soc_pct=soc_pct,
        reserve_soc_pct=reserve_soc_pct,
        capacity_wh=capacity_wh,
        power_w=0.0,
        max_discharge_w=max_discharge_w,
        max_charge_w=max_charge_w,
        bus_voltage_v=400.0,
        bus_frequency_hz=50.0,
        available=available,
    )


def outlet(
    *,
    soc_pct: float = 60.0,
    state: V2LState = V2LState.SUPPLYING,
    available: bool = True,
    rating_w: float = 3600.0,
) -> OutletState:
    return OutletState(
        outlet_id="v2l_1",
        vehicle_id="donor",
        state=state,
        soc_pct=soc_pct,
        reserve_soc_pct=35.0,
        capacity_wh=80_000.0,
        power_w=0.0,
        rating_w=rating_w,
        enabled=True,
        available=available,
    )


def pv(power_w: float = 8_000.0, *, available: bool = True) -> PVState:
    return PVState(
        inverter_id="pv", power_w=power_w, rating_w=20_000.0, limit_pct=100.0, available=available
    )


# ------------------------------------------------------------------ floor and limits


def test_floor_is_reserve_plus_margin() -> None:
    assert discharge_floor_pct(vehicle(reserve_soc_pct=30.0), CFG) == 30.5
    assert discharge_floor_pct(outlet(), CFG) == 35.5


def test_vehicle_above_floor_can_discharge() -> None:
    assert can_discharge(vehicle(soc_pct=30.6), CFG)


def test_vehicle_at_floor_cannot_discharge() -> None:
    assert not can_discharge(vehicle(soc_pct=30.5), CFG)


def test_vehicle_inside_margin_cannot_discharge() -> None:
    assert not can_discharge(vehicle(soc_pct=30.2), CFG)


@pytest.mark.parametrize(
    "car",
    [
        vehicle(state=ChargerState.FAULT),
        vehicle(state=ChargerState.UNPLUGGED),
        vehicle(plugged=False),
        vehicle(available=False),
        vehicle(soc_pct=math.nan),
    ],
    ids=["fault", "unplugged-state", "not-plugged", "silent", "nan-soc"],
)
def test_vehicle_out_of_island_cannot_discharge(car: VehicleState) -> None:
    assert not can_discharge(car, CFG)
    assert discharge_limit_w(car, CFG) == 0.0


@pytest.mark.parametrize("state", [ChargerState.IDLE, ChargerState.CHARGING, ChargerState.FORMING])
def test_connected_states_can_discharge(state: ChargerState) -> None:
    assert can_discharge(vehicle(state=state), CFG)


def test_discharge_limit_is_the_rating() -> None:
    assert discharge_limit_w(vehicle(max_discharge_w=7_400.0), CFG) == 7_400.0


def test_discharge_limit_is_never_negative() -> None:
    assert discharge_limit_w(vehicle(max_discharge_w=-5.0), CFG) == 0.0
    assert discharge_limit_w(vehicle(soc_pct=10.0), CFG) == 0.0


# ------------------------------------------------------------------ capacity


def test_capacity_sums_vehicle_limits_and_firm_pv() -> None:
    cars = [vehicle("a"), vehicle("b", max_discharge_w=7_000.0)]
    assert supply_capacity_w(cars, pv(8_000.0), CFG) == 11_000.0 + 7_000.0 + 4_000.0


def test_capacity_leaves_out_faulted_and_depleted_vehicles() -> None:
    cars = [vehicle("a"), vehicle("b", state=ChargerState.FAULT), vehicle("c", soc_pct=30.0)]
    assert supply_capacity_w(cars, None, CFG) == 11_000.0


def test_capacity_without_pv_reading() -> None:
    assert supply_capacity_w([vehicle()], pv(available=False), CFG) == 11_000.0
    assert supply_capacity_w([vehicle()], None, CFG) == 11_000.0


def test_pv_drawing_standby_power_adds_nothing() -> None:
    assert supply_capacity_w([], pv(-30.0), CFG) == 0.0


def test_no_vehicles_no_capacity() -> None:
    assert supply_capacity_w([], None, CFG) == 0.0


# ------------------------------------------------------------------ grid-former


def test_former_has_most_energy_above_reserve() -> None:
    cars = [
        vehicle("charger_1", can_form=True, soc_pct=60.0),
        vehicle("charger_2", can_form=True, soc_pct=70.0),
        vehicle("charger_3", can_form=False, soc_pct=95.0),
    ]
    assert choose_former(cars, CFG) == "charger_2"


def test_former_energy_counts_reserve_not_soc() -> None:
    cars = [
        vehicle("charger_1", can_form=True, soc_pct=70.0, reserve_soc_pct=50.0),
        vehicle("charger_2", can_form=True, soc_pct=60.0, reserve_soc_pct=20.0),
    ]
    assert choose_former(cars, CFG) == "charger_2"


def test_former_tie_goes_to_lowest_charger_id() -> None:
    cars = [vehicle("charger_2", can_form=True), vehicle("charger_1", can_form=True)]
    assert choose_former(cars, CFG) == "charger_1"


def test_former_skips_excluded_and_unable() -> None:
    cars = [
        vehicle("charger_1", can_form=True, soc_pct=90.0),
        vehicle("charger_2", can_form=True, soc_pct=80.0, state=ChargerState.FAULT),
        vehicle("charger_3", can_form=True, soc_pct=70.0, available=False),
        vehicle("charger_4", can_form=True, soc_pct=60.0),
    ]
    assert choose_former(cars, CFG, exclude=frozenset({"charger_1"})) == "charger_4"


def test_no_former_when_no_vehicle_can_form() -> None:
    assert choose_former([vehicle(can_form=False)], CFG) is None
    assert choose_former([vehicle(can_form=True, soc_pct=30.0)], CFG) is None
    assert choose_former([], CFG) is None


# ------------------------------------------------------------------ allocation


def test_zero_demand_gives_zero_setpoints() -> None:
    assert allocate_power([vehicle("a"), vehicle("b")], 0.0, CFG) == {"a": 0.0, "b": 0.0}


def test_discharge_in_proportion_to_energy_above_reserve() -> None:
    cars = [vehicle("a", soc_pct=80.0), vehicle("b", soc_pct=55.0)]  # 50 kWh and 25 kWh
    setpoints = allocate_power(cars, 9_000.0, CFG)
    assert setpoints["a"] == pytest.approx(6_000.0)
    assert setpoints["b"] == pytest.approx(3_000.0)


def test_discharge_keeps_soc_level_at_different_reserves() -> None:
    cars = [
        vehicle("a", soc_pct=60.0, reserve_soc_pct=40.0),  # 20 kWh above reserve
        vehicle("b", soc_pct=60.0, reserve_soc_pct=20.0),  # 40 kWh
    ]
    setpoints = allocate_power(cars, 6_000.0, CFG)
    # Both reach their reserve after the same time.
    assert 20_000.0 / setpoints["a"] == pytest.approx(40_000.0 / setpoints["b"])


def test_discharge_spills_past_a_capped_vehicle() -> None:
    cars = [
        vehicle("a", soc_pct=100.0, max_discharge_w=3_000.0),  # 70 kWh
        vehicle("b", soc_pct=40.0),  # 10 kWh
        vehicle("c", soc_pct=50.0),  # 20 kWh
    ]
    setpoints = allocate_power(cars, 10_000.0, CFG)
    assert setpoints["a"] == pytest.approx(3_000.0)
    assert setpoints["b"] == pytest.approx(7_000.0 / 3)
    assert setpoints["c"] == pytest.approx(14_000.0 / 3)


def test_discharge_beyond_total_limit_puts_everyone_at_limit() -> None:
    cars = [vehicle("a"), vehicle("b", max_discharge_w=5_000.0)]
    assert allocate_power(cars, 50_000.0, CFG) == {"a": 11_000.0, "b": 5_000.0}


def test_discharge_skips_vehicles_at_floor_or_out_of_island() -> None:
    cars = [
        vehicle("a"),
        vehicle("b", soc_pct=30.4),
        vehicle("c", state=ChargerState.FAULT),
        vehicle("d", available=False),
    ]
    assert allocate_power(cars, 4_000.0, CFG) == {"a": 4_000.0, "b": 0.0, "c": 0.0, "d": 0.0}


def test_discharge_with_no_able_vehicle_is_all_zero() -> None:
    assert allocate_power([vehicle("a", soc_pct=20.0)], 4_000.0, CFG) == {"a": 0.0}


def test_surplus_charges_in_proportion_to_room() -> None:
    cars = [vehicle("a", soc_pct=40.0), vehicle("b", soc_pct=70.0)]  # 60 and 30 kWh room
    setpoints = allocate_power(cars, -6_000.0, CFG)
    assert setpoints["a"] == pytest.approx(-4_000.0)
    assert setpoints["b"] == pytest.approx(-2_000.0)


def test_surplus_charges_vehicles_below_their_reserve_too() -> None:
    cars = [vehicle("a", soc_pct=10.0), vehicle("b", soc_pct=100.0)]
    assert allocate_power(cars, -5_000.0, CFG) == {"a": -5_000.0, "b": 0.0}


def test_surplus_capped_by_charge_rating() -> None:
    cars = [vehicle("a", soc_pct=20.0, max_charge_w=2_000.0), vehicle("b", soc_pct=90.0)]
    setpoints = allocate_power(cars, -6_000.0, CFG)
    assert setpoints == {"a": -2_000.0, "b": pytest.approx(-4_000.0)}


def test_surplus_skips_faulted_unplugged_and_silent() -> None:
    cars = [
        vehicle("a", soc_pct=50.0),
        vehicle("b", soc_pct=10.0, state=ChargerState.FAULT),
        vehicle("c", soc_pct=10.0, plugged=False),
        vehicle("d", soc_pct=10.0, available=False),
    ]
    assert allocate_power(cars, -3_000.0, CFG) == {"a": -3_000.0, "b": 0.0, "c": 0.0, "d": 0.0}


def test_nan_demand_is_an_error() -> None:
    with pytest.raises(ValueError):
        allocate_power([vehicle()], math.nan, CFG)


vehicles_strategy = st.lists(
    st.builds(
        vehicle,
        soc_pct=st.floats(0, 100),
        reserve_soc_pct=st.floats(0, 100),
        capacity_wh=st.floats(1_000, 120_000),
        state=st.sampled_from(ChargerState),
        plugged=st.booleans(),
        available=st.booleans(),
        max_discharge_w=st.floats(0, 22_000),
        max_charge_w=st.floats(0, 22_000),
    ),
    max_size=6,
).map(lambda cars: [replace(v, charger_id=f"c{i}") for i, v in enumerate(cars)])


@given(cars=vehicles_strategy, demand_w=st.floats(0, 100_000))
def test_discharge_allocation_properties(cars: list[VehicleState], demand_w: float) -> None:
    setpoints = allocate_power(cars, demand_w, CFG)
    assert set(setpoints) == {v.charger_id for v in cars}
    limits = {v.charger_id: discharge_limit_w(v, CFG) for v in cars}
    total_limit = sum(limits.values())
    for v in cars:
        sp = setpoints[v.charger_id]
        assert 0.0 <= sp <= limits[v.charger_id] + 1e-9
        if not can_discharge(v, CFG):
            assert sp == 0.0
    assert sum(setpoints.values()) == pytest.approx(min(demand_w, total_limit), abs=1e-6)

    # Level SoCs: every vehicle below its limit drains at the same rate per Wh,
    # and a vehicle held at its limit would have drained faster.
    def at_limit(v: VehicleState) -> bool:
        return setpoints[v.charger_id] >= limits[v.charger_id] * (1 - 1e-9)

    free = [v for v in cars if setpoints[v.charger_id] > 0 and not at_limit(v)]
    ratios = [setpoints[v.charger_id] / v.energy_above_reserve_wh for v in free]
    if ratios:
        assert max(ratios) == pytest.approx(min(ratios), rel=1e-6)
        for v in cars:
            if limits[v.charger_id] > 0 and at_limit(v):
                assert limits[v.charger_id] / v.energy_above_reserve_wh <= max(ratios) * (1 + 1e-6)


@given(cars=vehicles_strategy, surplus_w=st.floats(0, 100_000))
def test_charge_allocation_properties(cars: list[VehicleState], surplus_w: float) -> None:
    setpoints = allocate_power(cars, -surplus_w, CFG)
    assert set(setpoints) == {v.charger_id for v in cars}
    total_room = 0.0
    for v in cars:
        sp = setpoints[v.charger_id]
        usable = (
            v.available
            and v.plugged
            and v.state not in (ChargerState.FAULT, ChargerState.UNPLUGGED)
            and v.soc_pct < 100.0
        )
        assert -v.max_charge_w - 1e-9 <= sp <= 0.0
        if not usable:
            assert sp == 0.0
        else:
            total_room += v.max_charge_w
    assert sum(setpoints.values()) == pytest.approx(-min(surplus_w, total_room), abs=1e-6)


# ------------------------------------------------------------------ V2L outlets


def test_outlet_enabled_above_floor() -> None:
    assert outlet_enabled(outlet(soc_pct=40.0), CFG)
    assert outlet_enabled(outlet(state=V2LState.OFF), CFG)


def test_outlet_disabled_at_floor() -> None:
    assert not outlet_enabled(outlet(soc_pct=35.5), CFG)


@pytest.mark.parametrize(
    "o",
    [outlet(state=V2LState.UNPLUGGED), outlet(state=V2LState.TRIPPED), outlet(available=False)],
    ids=["unplugged", "tripped", "silent"],
)
def test_outlet_disabled_when_not_usable(o: OutletState) -> None:
    assert not outlet_enabled(o, CFG)


def test_outlet_supply_is_its_rating_when_enabled() -> None:
    assert outlet_supply_w(outlet(), CFG) == 3600.0
    assert outlet_supply_w(outlet(soc_pct=30.0), CFG) == 0.0
