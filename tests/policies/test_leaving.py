"""policies.leaving: the wind-down before an announced leaving time, and its config key."""

from __future__ import annotations

import copy
import itertools
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from resilience.config import ConfigError, DispatchSection, load_site, parse_site
from resilience.model import ChargerMode, ChargerState, VehicleState
from resilience.policies.leaving import (
    FORMER_LEAD,
    cap_fraction,
    former_leaving_message,
    leave_in_s,
    may_start_forming,
)

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
NOTICE = 600.0
CFG = DispatchSection(leave_notice_s=NOTICE)


def test_leave_in_is_whole_seconds_rounded_down() -> None:
    assert leave_in_s(None, 1000.0) is None
    assert leave_in_s(1600.9, 1000.0) == 600.0
    assert leave_in_s(1000.5, 1000.0) == 0.0
    assert leave_in_s(999.5, 1000.0) == -1.0


@pytest.mark.parametrize(
    ("leave_in", "fraction"),
    [
        (None, 1.0),
        (3600.0, 1.0),
        (NOTICE, 1.0),
        (0.75 * NOTICE, 0.5),
        (0.6 * NOTICE, pytest.approx(0.2)),
        (NOTICE / 2, 0.0),
        (10.0, 0.0),
        (-100.0, 0.0),
    ],
)
def test_full_until_the_notice_then_a_ramp_to_nothing_at_half_of_it(
    leave_in: float | None, fraction: float
) -> None:
    assert cap_fraction(leave_in, NOTICE) == fraction


def test_the_ramp_is_monotonic() -> None:
    values = [cap_fraction(float(s), NOTICE) for s in range(700, -10, -1)]
    assert all(b <= a for a, b in itertools.pairwise(values))


def test_a_car_leaving_soon_is_not_started_as_a_former() -> None:
    assert may_start_forming(None, NOTICE)
    assert may_start_forming(FORMER_LEAD * NOTICE + 1, NOTICE)
    assert not may_start_forming(FORMER_LEAD * NOTICE, NOTICE)
    assert not may_start_forming(-5.0, NOTICE)


def vehicle(
    charger_id: str, *, forming: bool = False, can_form: bool = True, leave: float | None = None
) -> VehicleState:
    return VehicleState(
        charger_id=charger_id,
        vehicle_id=f"car_{charger_id}",
        plugged=True,
        can_form=can_form,
        state=ChargerState.FORMING if forming else ChargerState.IDLE,
        mode=ChargerMode.FORM if forming else ChargerMode.FOLLOW,
        soc_pct=80.0,
        reserve_soc_pct=30.0,
        capacity_wh=77400.0,
        power_w=0.0,
        max_discharge_w=11000.0,
        max_charge_w=11000.0,
        bus_voltage_v=400.0,
        bus_frequency_hz=50.0,
        available=True,
        leave_in_s=leave,
    )


def test_a_leaving_former_with_no_replacement_is_alarmed_twice_the_notice_ahead() -> None:
    follower = vehicle("c3", can_form=False)
    far = vehicle("c1", forming=True, leave=FORMER_LEAD * NOTICE + 1)
    assert former_leaving_message([far, follower], CFG) is None
    near = replace(far, leave_in_s=FORMER_LEAD * NOTICE)
    message = former_leaving_message([near, follower], CFG)
    assert message is not None and "c1" in message and "no other vehicle" in message
    # another car that can form: no alarm (the island is moved to it at the notice)
    assert former_leaving_message([near, follower, vehicle("c2")], CFG) is None
    # one that is leaving itself cannot take over (its can_form is already withdrawn)
    assert former_leaving_message([near, vehicle("c2", can_form=False)], CFG) is not None
    # nobody forming with a leaving time: nothing to say
    assert former_leaving_message([vehicle("c1", leave=10.0), follower], CFG) is None


def test_leave_notice_is_a_dispatch_key_with_bounds() -> None:
    assert load_site(SITE).dispatch.leave_notice_s == 600.0
    with SITE.open("rb") as f:
        reference = tomllib.load(f)
    data = copy.deepcopy(reference)
    data["dispatch"]["leave_notice_s"] = 1800
    assert parse_site(data, "site.toml").dispatch.leave_notice_s == 1800.0
    for bad in (0, 30, 7200, "soon"):
        data = copy.deepcopy(reference)
        data["dispatch"]["leave_notice_s"] = bad
        with pytest.raises(ConfigError) as caught:
            parse_site(data, "site.toml")
        keys = [p.key for p in caught.value.problems]
        assert keys == ["dispatch.leave_notice_s"], caught.value.problems
        assert str(caught.value.problems[0]).startswith("site.toml: dispatch.leave_notice_s: ")
