"""resilience.occupancy and Overrides: one occupancy per connector, its views and its memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resilience import occupancy as occ
from resilience.config import SiteConfig, load_site
from resilience.occupancy import Kind, Occupancy, OccupancyError, Source
from resilience.overrides import UNKNOWN_CAR, OverrideError, Overrides

SITE = Path(__file__).resolve().parents[1] / "config" / "site.toml"
T0 = 1.74e9


@pytest.fixture(scope="module")
def config() -> SiteConfig:
    return load_site(SITE)


def donor(o: Occupancy, vehicle_id: str = "donor_v2l_1", **kw: float | None) -> Occupancy:
    return occ.register(
        o,
        vehicle_id=vehicle_id,
        reserve_soc_pct=float(kw.get("reserve", 40.0) or 40.0),
        capacity_wh=None,
        soc_pct=None,
        leaving_at=kw.get("leaving_at"),
        now_wall=T0,
        by="ayse",
    )


# --------------------------------------------------------------------------- the machine
def test_first_reading_at_a_home_connector_is_the_site_files_car() -> None:
    start = Occupancy("charger_3")
    fleet = occ.observe(start, True, "fleet_3", T0)
    assert (fleet.kind, fleet.vehicle_id, fleet.asserted_by) == (
        Kind.FLEET,
        "fleet_3",
        Source.SITE_FILE,
    )
    assert not fleet.keeps_everything
    assert occ.observe(start, True, None, T0).kind is Kind.UNIDENTIFIED
    assert occ.observe(start, False, "fleet_3", T0).kind is Kind.EMPTY


def test_silence_changes_nothing() -> None:
    for o in (
        Occupancy("v2l_1"),
        occ.observe(Occupancy("v2l_1"), True, "donor_v2l_1", T0),
        occ.release(donor(occ.observe(Occupancy("v2l_1"), True, None, T0)), T0),
    ):
        assert occ.observe(o, None, "donor_v2l_1", T0 + 5) is o


def test_a_steady_reading_returns_the_same_object() -> None:
    fleet = occ.observe(Occupancy("charger_3"), True, "fleet_3", T0)
    assert occ.observe(fleet, True, "fleet_3", T0 + 1) is fleet
    empty = occ.observe(fleet, False, "fleet_3", T0 + 2)
    assert occ.observe(empty, False, "fleet_3", T0 + 3) is empty


def test_a_donor_session_ends_trust_in_the_home_connector() -> None:
    fleet = occ.observe(Occupancy("v2l_1"), True, "donor_v2l_1", T0)
    session = donor(fleet, leaving_at=T0 + 3600)
    assert session.kind is Kind.DONOR and session.asserted_by is Source.OPERATOR
    assert session.asserted_actor == "ayse" and not session.home_trusted
    released = occ.release(session, T0 + 10)
    assert released.kind is Kind.RELEASED and released.keeps_everything
    assert (released.vehicle_id, released.reserve_soc_pct) == ("donor_v2l_1", 40.0)
    empty = occ.observe(released, False, "donor_v2l_1", T0 + 20)
    assert empty.kind is Kind.EMPTY and empty.vehicle_id is None and not empty.home_trusted
    # the next car is nobody's until an operator says whose it is
    again = occ.observe(empty, True, "donor_v2l_1", T0 + 30)
    assert again.kind is Kind.UNIDENTIFIED and again.keeps_everything
    assert donor(again).kind is Kind.DONOR


def test_a_released_fleet_car_comes_back_as_the_fleet_car() -> None:
    fleet = occ.observe(Occupancy("charger_3"), True, "fleet_3", T0)
    released = occ.release(fleet, T0 + 1)
    assert released.kind is Kind.RELEASED
    empty = occ.observe(released, False, "fleet_3", T0 + 2)
    assert empty.home_trusted
    assert occ.observe(empty, True, "fleet_3", T0 + 3).kind is Kind.FLEET


def test_a_donor_registered_before_its_car_waits_for_it() -> None:
    empty = occ.observe(Occupancy("v2l_1"), False, "donor_v2l_1", T0)
    waiting = donor(empty)
    assert waiting.kind is Kind.DONOR and not waiting.car_seen and not waiting.occupied
    assert occ.observe(waiting, False, "donor_v2l_1", T0 + 1) is waiting  # still to come
    arrived = occ.observe(waiting, True, "donor_v2l_1", T0 + 2)
    assert (arrived.kind, arrived.car_seen, arrived.vehicle_id) == (Kind.DONOR, True, "donor_v2l_1")
    assert occ.observe(arrived, False, "donor_v2l_1", T0 + 3).kind is Kind.EMPTY
    # registered before the connector first answered: the same
    early = donor(Occupancy("v2l_1"))
    assert not early.car_seen
    assert occ.observe(early, False, None, T0 + 1) is early
    # releasing a session whose car never came cancels it at the next reading
    cancelled = occ.release(waiting, T0 + 4)
    assert cancelled.kind is Kind.RELEASED
    assert occ.observe(cancelled, False, "donor_v2l_1", T0 + 5).kind is Kind.EMPTY


def test_register_once_and_release_only_an_identified_car() -> None:
    session = donor(occ.observe(Occupancy("v2l_1"), True, None, T0))
    assert session.car_seen
    with pytest.raises(OccupancyError, match=r"^connector: v2l_1 already holds"):
        donor(session)
    unidentified = occ.observe(Occupancy("v2l_1"), True, None, T0)
    with pytest.raises(OccupancyError, match=r"^vehicle_id: .* unidentified"):
        occ.release(unidentified, T0)
    with pytest.raises(OccupancyError):
        occ.release(occ.release(session, T0), T0)


def test_an_occupancy_reads_back_as_written() -> None:
    session = donor(Occupancy("v2l_1"), leaving_at=T0 + 60)
    for o in (session, occ.release(session, T0), occ.observe(session, False, None, T0)):
        text = json.dumps(o.to_state())
        assert Occupancy.from_state("v2l_1", json.loads(text)) == o


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "donor",
        {"kind": "parked"},
        {"kind": "donor", "vehicle_id": "x"},  # no reserve: not a session we can honour
        {"kind": "donor", "vehicle_id": "x", "reserve_soc_pct": "forty"},
        {"kind": "donor", "vehicle_id": "x", "reserve_soc_pct": 40, "colour": "red"},
        {"kind": "released", "leaving_at": float("nan")},
    ],
)
def test_a_malformed_occupancy_is_dropped(raw: object) -> None:
    assert Occupancy.from_state("v2l_1", raw) is None


# --------------------------------------------------------------------------- Overrides
def seen(overrides: Overrides, config: SiteConfig) -> None:
    """Every connector read once, all plugged in (the reference site at start-up)."""
    for connector in [*config.chargers, *config.outlets]:
        assert overrides.observe(config, connector, True, T0) is not None


def test_views_of_each_kind(config: SiteConfig) -> None:
    overrides = Overrides()
    assert overrides.vehicle_at(config, "charger_1", T0) is UNKNOWN_CAR
    seen(overrides, config)
    fleet = overrides.vehicle_at(config, "charger_4", T0)
    assert (fleet.vehicle_id, fleet.reserve_soc_pct, fleet.max_discharge_w) == (
        "fleet_4",
        40.0,
        None,
    )
    assert overrides.vehicle_at(config, "charger_4", T0 + 1) is fleet  # worked out once
    overrides.register(
        config,
        vehicle_id="donor_v2l_2",
        connector="v2l_2",
        reserve_soc_pct=55.0,
        now_wall=T0,
        by="ayse",
    )
    view = overrides.vehicle_at(config, "v2l_2", T0)
    assert (view.vehicle_id, view.reserve_soc_pct, view.max_discharge_w) == (
        "donor_v2l_2",
        55.0,
        None,
    )
    overrides.release("donor_v2l_2", former_connector=None, now_wall=T0 + 1)
    released = overrides.vehicle_at(config, "v2l_2", T0 + 1)
    assert (released.vehicle_id, released.reserve_soc_pct, released.max_discharge_w) == (
        "donor_v2l_2",
        100.0,
        0.0,
    )
    assert released.max_charge_w == 0.0
    assert overrides.observe(config, "v2l_2", False, T0 + 2) is not None
    assert overrides.vehicle_at(config, "v2l_2", T0 + 2) is UNKNOWN_CAR
    assert overrides.observe(config, "v2l_2", True, T0 + 3) is not None
    assert overrides.at("v2l_2").kind is Kind.UNIDENTIFIED
    assert overrides.vehicle_at(config, "v2l_2", T0 + 3) is UNKNOWN_CAR


def test_a_leaving_donor_view_ramps_except_while_it_forms(config: SiteConfig) -> None:
    overrides = Overrides()
    seen(overrides, config)
    notice = config.dispatch.leave_notice_s
    leaving_at = T0 + 3 * notice
    overrides.register(
        config,
        vehicle_id="fleet_1",
        connector="charger_1",
        reserve_soc_pct=45.0,
        leaving_at=leaving_at,
        now_wall=T0,
        by="ayse",
    )
    early = overrides.vehicle_at(config, "charger_1", T0)
    assert (early.max_discharge_w, early.may_form, early.leave_in_s) == (None, True, 3 * notice)
    soon = overrides.vehicle_at(config, "charger_1", leaving_at - 1.5 * notice)
    assert soon.max_discharge_w is None and not soon.may_form  # full, but no new island on it
    ramp = overrides.vehicle_at(config, "charger_1", leaving_at - 0.75 * notice)
    assert ramp.max_discharge_w == ramp.max_charge_w == pytest.approx(5500.0)
    assert ramp.reserve_soc_pct == 45.0
    done = overrides.vehicle_at(config, "charger_1", leaving_at - 0.5 * notice)
    assert (done.reserve_soc_pct, done.max_discharge_w, done.max_charge_w) == (100.0, 0.0, 0.0)
    forming = overrides.vehicle_at(config, "charger_1", leaving_at + 60, forming=True)
    assert (forming.reserve_soc_pct, forming.max_discharge_w, forming.may_form) == (
        45.0,
        None,
        True,
    )


def test_register_checks(config: SiteConfig) -> None:
    overrides = Overrides()
    seen(overrides, config)

    def register(vehicle_id: str, connector: str, **kw: float) -> None:
        overrides.register(
            config,
            vehicle_id=vehicle_id,
            connector=connector,
            reserve_soc_pct=kw.get("reserve", 40.0),
            leaving_at=kw.get("leaving_at"),
            now_wall=T0,
            by="ayse",
        )

    with pytest.raises(OverrideError, match=r"^connector: unknown charger or outlet 'v2l_9'"):
        register("34 ABC 12", "v2l_9")
    with pytest.raises(OverrideError, match=r"^leaving_at: "):
        register("fleet_1", "charger_1", leaving_at=T0 - 1)
    with pytest.raises(OverrideError, match=r"^vehicle_id: 'fleet_1' is already at charger_1"):
        overrides.occupancy["v2l_1"] = Occupancy("v2l_1", Kind.UNIDENTIFIED)
        config_free = config.model_copy(update={"vehicles": config.vehicles[:-2]})
        overrides.register(
            config_free,
            vehicle_id="fleet_1",
            connector="v2l_1",
            reserve_soc_pct=40.0,
            now_wall=T0,
            by="ayse",
        )
    register("fleet_1", "charger_1")
    with pytest.raises(OverrideError, match=r"^connector: charger_1 already holds 'fleet_1'"):
        register("fleet_1", "charger_1")


def test_a_donor_of_any_id_at_a_home_connector(config: SiteConfig) -> None:
    """v2l_1 is the home of the site file's donor_v2l_1: a resident's car registered there
    under its own plate keeps its owner's reserve; once it has left, the home is no longer
    trusted and the next car there gives nothing until it is registered."""
    overrides = Overrides()
    seen(overrides, config)
    assert overrides.vehicle_at(config, "v2l_1", T0).vehicle_id == "donor_v2l_1"
    overrides.observe(config, "v2l_1", False, T0)
    overrides.register(
        config,
        vehicle_id="34 ABC 12",
        connector="v2l_1",
        reserve_soc_pct=55.0,
        capacity_wh=58000.0,
        now_wall=T0 + 1,
        by="ayse",
    )
    overrides.observe(config, "v2l_1", True, T0 + 2)
    view = overrides.vehicle_at(config, "v2l_1", T0 + 3)
    assert (view.vehicle_id, view.reserve_soc_pct) == ("34 ABC 12", 55.0)
    overrides.observe(config, "v2l_1", False, T0 + 4)
    overrides.observe(config, "v2l_1", True, T0 + 5)
    assert overrides.vehicle_at(config, "v2l_1", T0 + 6).reserve_soc_pct == 100.0


def test_release_checks(config: SiteConfig) -> None:
    overrides = Overrides()
    seen(overrides, config)
    with pytest.raises(OverrideError, match=r"^vehicle_id: no registered donor vehicle 'x'"):
        overrides.release("x", former_connector=None, now_wall=T0)
    with pytest.raises(OverrideError, match=r"^vehicle_id: 'fleet_1' is forming the grid"):
        overrides.release("fleet_1", former_connector="charger_1", now_wall=T0)
    released = overrides.release("fleet_3", former_connector="charger_1", now_wall=T0)
    assert released.kind is Kind.RELEASED and released.connector == "charger_3"
    with pytest.raises(OverrideError, match=r"^vehicle_id: 'fleet_3' at charger_3 is already"):
        overrides.release("fleet_3", former_connector=None, now_wall=T0)


def test_what_must_survive_a_restart_does(config: SiteConfig) -> None:
    overrides = Overrides()
    seen(overrides, config)
    overrides.set_tier(config, "kitchen", "comfort")
    overrides.locked_off.add("lift")
    overrides.register(
        config,
        vehicle_id="donor_v2l_1",
        connector="v2l_1",
        reserve_soc_pct=50.0,
        now_wall=T0,
        by="ayse",
    )
    overrides.release("donor_v2l_1", former_connector=None, now_wall=T0 + 1)
    overrides.register(
        config,
        vehicle_id="donor_v2l_2",
        connector="v2l_2",
        reserve_soc_pct=60.0,
        leaving_at=T0 + 3600,
        now_wall=T0,
        by="ayse",
    )
    state = json.loads(json.dumps(overrides.to_state()))
    back = Overrides.from_state(state, config)
    assert back.occupancy == overrides.occupancy
    assert back.tiers == overrides.tiers and back.locked_off == {"lift"}
    view = back.vehicle_at(config, "v2l_1", T0 + 5)
    assert (view.vehicle_id, view.reserve_soc_pct) == ("donor_v2l_1", 100.0)
    assert back.donors["v2l_2"].leaving_at == T0 + 3600


def test_restoring_drops_what_the_site_file_no_longer_has(config: SiteConfig) -> None:
    state = {
        "occupancy": {
            "charger_9": {"kind": "unidentified"},
            "charger_3": {"kind": "fleet", "vehicle_id": "fleet_9", "asserted_by": "site_file"},
            "charger_4": {"kind": "fleet", "vehicle_id": "fleet_4", "asserted_by": "site_file"},
            "v2l_1": "garbage",
        }
    }
    back = Overrides.from_state(state, config)
    assert set(back.occupancy) == {"charger_3", "charger_4"}
    assert back.at("charger_3").kind is Kind.UNIDENTIFIED  # fleet_9's home it is not
    assert back.at("charger_4").kind is Kind.FLEET
    assert back.at("v2l_1").kind is Kind.UNKNOWN


def test_donors_saved_before_occupancies_become_donor_sessions(config: SiteConfig) -> None:
    legacy = {
        "donors": {
            "v2l_2": {
                "vehicle_id": "donor_v2l_2",
                "connector": "v2l_2",
                "reserve_soc_pct": 40.0,
                "capacity_wh": None,
                "soc_pct_declared": 80.0,
                "leaving_at": T0 + 600,
                "registered_at": T0,
                "registered_by": "ayse",
            },
            "v2l_1": {"reserve_soc_pct": 40},
        },
        "tiers": {"kitchen": "comfort"},
        "locked_off": [],
    }
    back = Overrides.from_state(legacy, config)
    assert list(back.occupancy) == ["v2l_2"]
    session = back.at("v2l_2")
    assert (session.kind, session.reserve_soc_pct, session.asserted_actor) == (
        Kind.DONOR,
        40.0,
        "ayse",
    )
    assert not session.home_trusted
