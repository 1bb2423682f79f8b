"""The order in which a cycle's commands land: `write_plan.plan_writes` (pure)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from resilience.config import SiteConfig, load_site
from resilience.devices import ChargerCommand, ChargerReading, OutletReading, PanelReading
from resilience.model import BreakerCommand, ChargerMode, ChargerState, V2LState
from resilience.outputs import Outputs
from resilience.write_plan import REASSERT_S, Kind, Phase, plan_writes

SITE = Path(__file__).resolve().parents[1] / "config" / "site.toml"


@pytest.fixture(scope="module")
def config() -> SiteConfig:
    return load_site(SITE)


def charger(mode: ChargerMode, power_w: float) -> ChargerReading:
    state = ChargerState.FORMING if mode is ChargerMode.FORM else ChargerState.DISCHARGING
    held = 0.0 if mode is ChargerMode.OFF else power_w
    return ChargerReading(
        state,
        mode,
        80.0,
        power_w,
        77400.0,
        11000.0,
        11000.0,
        True,
        400.0,
        50.0,
        0,
        30.0,
        held_setpoint_w=held,
    )


def panel(on: list[bool]) -> PanelReading:
    return PanelReading(tuple(on), tuple(on), tuple(0.0 for _ in on), 230.0, 0)


def follow(power_w: float) -> ChargerCommand:
    return ChargerCommand(ChargerMode.FOLLOW, power_setpoint_w=power_w, min_soc_pct=30.5)


def test_sheds_land_before_supply_comes_down_and_restores_after_it_rises(
    config: SiteConfig,
) -> None:
    readings = {
        "pcc_breaker": object(),
        "charger_1": charger(ChargerMode.FORM, 3000.0),
        "charger_3": charger(ChargerMode.FOLLOW, 5000.0),
        "charger_4": charger(ChargerMode.FOLLOW, 1000.0),
        "panel_main": panel([True] * 16),
    }
    outputs = Outputs(
        pcc=BreakerCommand.OPEN,
        chargers={"charger_3": follow(2000.0), "charger_4": follow(4000.0)},
        loads={"hvac": False, "lift": False},
    )
    plan = plan_writes(outputs, readings, {}, 10.0, config)
    order = [(phase, w.device_id) for phase, writes in plan.phases for w in writes]
    assert order == [
        (Phase.BREAKER, "pcc_breaker"),
        (Phase.SHED, "panel_main"),
        (Phase.SUPPLY_UP, "charger_4"),
        (Phase.SUPPLY_DOWN, "charger_3"),
    ]


def test_a_board_with_sheds_and_restores_is_written_twice(config: SiteConfig) -> None:
    relays = [True] * 16
    relays[12] = False  # lift off
    readings = {"panel_main": panel(relays)}
    outputs = Outputs(loads={"hvac": False, "lift": True})  # hvac is channel 10
    plan = plan_writes(outputs, readings, {}, 0.0, config)
    (shed_phase, (shed,)), (restore_phase, (restore,)) = plan.phases
    assert (shed_phase, restore_phase) == (Phase.SHED, Phase.RESTORE)
    assert shed.kind is Kind.RELAYS and restore.kind is Kind.RELAYS
    assert shed.value[10] is False and shed.value[12] is False  # only the shed applied
    assert restore.value[10] is False and restore.value[12] is True


def test_a_device_without_a_reading_is_never_written(config: SiteConfig) -> None:
    outputs = Outputs(
        pcc=BreakerCommand.CLOSE,
        chargers={"charger_1": follow(1000.0)},
        loads={"hvac": False},
        outlets={"v2l_1": False},
        pv_limit_pct=50.0,
    )
    assert plan_writes(outputs, {}, {}, 0.0, config).phases == ()


def test_only_differences_are_written_and_unreflected_ones_reasserted(config: SiteConfig) -> None:
    command = follow(2000.0)
    readings = {"charger_3": charger(ChargerMode.OFF, 0.0)}
    outputs = Outputs(chargers={"charger_3": command})
    written = {"charger_3": (command, 0.0)}
    assert plan_writes(outputs, readings, written, 1.0, config).phases == ()
    again = plan_writes(outputs, readings, written, REASSERT_S, config)
    assert [w.device_id for w in again.writes()] == ["charger_3"]
    # reflected by the device: nothing to write, however long ago
    shown = {"charger_3": charger(ChargerMode.FOLLOW, 2000.0)}
    assert plan_writes(outputs, shown, written, 100.0, config).phases == ()


def test_a_charger_whose_held_setpoint_is_unknown_does_not_show_the_command(
    config: SiteConfig,
) -> None:
    """An OCPP station that reconnected reads mode OFF (nothing taken on this link) but may
    still run its old profile: an OFF already written is re-sent after REASSERT_S, so that
    a zero it takes makes what it holds known (a black start counts it until then)."""
    command = ChargerCommand(ChargerMode.OFF, min_soc_pct=30.5)
    outputs = Outputs(chargers={"charger_3": command})
    written = {"charger_3": (command, 0.0)}
    unknown = {"charger_3": replace(charger(ChargerMode.OFF, 0.0), held_setpoint_w=None)}
    assert plan_writes(outputs, unknown, written, 1.0, config).phases == ()
    again = plan_writes(outputs, unknown, written, REASSERT_S, config)
    assert [w.device_id for w in again.writes()] == ["charger_3"]
    known = {"charger_3": charger(ChargerMode.OFF, 0.0)}
    assert plan_writes(outputs, known, written, 100.0, config).phases == ()


def test_a_follow_not_read_back_as_told_is_sent_again(config: SiteConfig) -> None:
    """An interlocked former runs FOLLOW while the PCC is closed whatever it was told: a
    FOLLOW written but read back told FORM (it reverted, or an answer was lost) is sent
    again after REASSERT_S; running FOLLOW is not showing it."""
    command = follow(0.0)
    outputs = Outputs(chargers={"charger_1": command})
    written = {"charger_1": (command, 0.0)}
    following = charger(ChargerMode.FOLLOW, 0.0)
    held_form = {"charger_1": replace(following, told_mode=ChargerMode.FORM)}
    assert plan_writes(outputs, held_form, written, 1.0, config).phases == ()
    again = plan_writes(outputs, held_form, written, REASSERT_S, config)
    assert [w.device_id for w in again.writes()] == ["charger_1"]
    told = {"charger_1": replace(following, told_mode=ChargerMode.FOLLOW)}
    assert plan_writes(outputs, told, written, 100.0, config).phases == ()


def test_an_outlet_switched_on_is_supply_up_and_off_is_supply_down(config: SiteConfig) -> None:
    def outlet(enabled: bool) -> OutletReading:
        return OutletReading(V2LState.OFF, 80.0, 0.0, 3600.0, 230.0, 20.0, 77400.0, enabled)

    readings = {"v2l_1": outlet(False), "v2l_2": outlet(True)}
    plan = plan_writes(Outputs(outlets={"v2l_1": True, "v2l_2": False}), readings, {}, 0.0, config)
    assert [(p, w.device_id) for p, ws in plan.phases for w in ws] == [
        (Phase.SUPPLY_UP, "v2l_1"),
        (Phase.SUPPLY_DOWN, "v2l_2"),
    ]
