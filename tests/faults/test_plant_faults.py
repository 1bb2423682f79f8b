"""Faults of the power system itself, over Modbus TCP and RTU: a breaker whose feedback
disagrees with its command, vehicles unplugged while discharging, a grid that flickers.

The controller must raise a clear alarm, log it once (and its end once), take the
safe action and break no safety rule on the plant.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from resilience.model import BreakerPosition, ChargerState, Mode
from tests.faults.conftest import FaultSite, running_site, warnings_about


async def test_breaker_that_does_not_follow_its_command(
    site: FaultSite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resilience")
    await site.mode(Mode.GRID_CONNECTED, 10)
    site.plant.fail_to_operate(True)
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDING, 10)
    message = await site.alarm_raised("pcc_fail_to_open")
    assert "did not open" in message or "open" in message
    # the breaker still reads CLOSED: no vehicle may form the grid behind it
    cycles = site.running.controller.stats.cycles
    await site.until(lambda: site.running.controller.stats.cycles > cycles + 30, 10, "cycles")
    assert site.plant.breaker_position is BreakerPosition.CLOSED
    assert site.plant.former_ids == ()
    assert not site.plant.bus_live
    assert len(warnings_about(caplog, "pcc_fail_to_open")) == 1
    site.plant.fail_to_operate(False)
    await site.mode(Mode.ISLANDED, 15)
    assert site.plant.breaker_position is BreakerPosition.OPEN
    site.assert_safe()


async def test_fail_to_open_alarm_clears_once_the_breaker_opens(site: FaultSite) -> None:
    await site.mode(Mode.GRID_CONNECTED, 10)
    site.plant.fail_to_operate(True)
    site.plant.grid_loss()
    await site.alarm_raised("pcc_fail_to_open")
    site.plant.fail_to_operate(False)
    await site.mode(Mode.ISLANDED, 15)
    await site.alarm_cleared("pcc_fail_to_open", 5)


async def test_vehicles_unplugged_while_discharging(
    site: FaultSite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resilience")
    await site.mode(Mode.GRID_CONNECTED, 10)
    site.plant.set_pv_available(0.0)  # every watt now comes from the vehicles
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 10)
    (former,) = site.plant.former_ids

    def discharging_follower() -> str | None:
        """A follower that cannot form (the other former stays for the black start),
        discharging as the controller last read it."""
        for v in site.status.snapshot.vehicles:
            can_form = site.config.devices[v.charger_id].can_form
            if not can_form and v.available and v.plugged and v.power_w > 500:
                return v.charger_id
        return None

    await site.until(lambda: discharging_follower() is not None, 20, "a follower discharging")
    follower = discharging_follower()
    assert follower is not None
    site.plant.unplug(follower)
    message = await site.alarm_raised(f"vehicle_unplugged:{follower}")
    assert "unplugged while delivering" in message
    assert site.status.mode in (Mode.ISLANDED, Mode.EMERGENCY)
    # then the grid-former itself: the island is lost and black-started on another
    site.plant.unplug(former)
    await site.alarm_raised("former_lost")
    await site.mode(Mode.ISLANDED, 20)
    assert site.plant.former_ids and site.plant.former_ids[0] != former
    assert len(warnings_about(caplog, f"{follower}: vehicle")) == 1
    site.plant.plug(follower, "returning_car", 70.0, 60000.0, reserve_soc_pct=30.0)
    await site.alarm_cleared(f"vehicle_unplugged:{follower}")
    site.assert_safe()


async def test_flickering_grid_causes_no_chatter(
    tmp_path: Path, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resilience")
    # return to service 2.5 s: longer than the flicker's 1 s healthy halves
    async with running_site(tmp_path, transport, return_to_service_s=2.5) as site:
        await site.mode(Mode.GRID_CONNECTED, 10)
        # every bus load (the V2L circuits follow their own cars' energy: issue 11)
        await site.until(
            lambda: all(
                site.plant.load_on(load.id) for load in site.config.loads if load.supply == "bus"
            ),
            10,
            "every bus load on",
        )
        loads_before = {lid: site.plant.relay_operations(lid) for lid in site.plant.loads}
        breaker_before = site.plant.breaker.operations
        modes: list[Mode] = []
        site.running.controller.on_status(
            lambda s: modes.append(s.mode) if not modes or modes[-1] is not s.mode else None
        )
        loop_end = site.plant.time_s + 12.0
        site.plant.flicker(period_s=2.0, count=6)  # lost 1 s, back 1 s, six times
        message = await site.alarm_raised("grid_unstable", 30)
        assert "grid lost" in message
        await site.until(lambda: site.plant.time_s >= loop_end, 40, "the flicker to end")
        # one islanding, no reconnection attempt inside the flicker
        assert Mode.RESYNCHRONISING not in modes, modes
        assert site.plant.breaker.operations - breaker_before == 1  # opened once
        await site.mode(Mode.GRID_CONNECTED, 30)  # healthy 2.5 s, then resynchronised
        assert site.plant.breaker.operations - breaker_before == 2  # and closed once
        for lid, before in loads_before.items():
            # shed at most once and restored at most once, whatever the flicker did
            assert site.plant.relay_operations(lid) - before <= 2, lid
        assert len(warnings_about(caplog, "grid lost 3 times")) == 1
        assert site.plant.breaker_position is BreakerPosition.CLOSED
        assert all(c.state is not ChargerState.FORMING for c in site.plant.chargers.values())
        site.assert_safe()
