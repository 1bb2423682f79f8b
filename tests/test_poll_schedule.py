"""Who is read when (resilience/poll_schedule.py and `Controller._read_all`).

The real controller and drivers against the simulated plant in process, counting the
requests each device's transport served: the grid meter and the PCC breaker every
cycle, the rest at their own period on the grid; the whole field at once after a change
of mode; formers and panels every cycle off the grid; a device at once after a command
to it. And a slow device: the cycle does not wait for it, and its reply is used by a
later cycle with its age.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from firmware_sim.inprocess import InProcessTransport
from firmware_sim.plant import PlantInit
from resilience.config import SiteConfig, parse_site
from resilience.model import Mode
from resilience.poll_schedule import read_every_cycle
from tests.inprocess_site import InProcessSite, reference_data


def site_config(**device_periods: float) -> SiteConfig:
    data = reference_data()
    # every cycle decides and publishes its snapshot, whose ages these tests read
    data["site"]["steady_decision_max_s"] = 0.0
    for name, period in device_periods.items():
        data["devices"][name]["poll_period_s"] = period
    return parse_site(data, "reference")


def reads(site: InProcessSite, device_id: str) -> int:
    driver = site.controller.slots[device_id].driver
    return int(driver.transport.reads)


def counted(site: InProcessSite, seconds: float) -> dict[str, int]:
    before = {name: reads(site, name) for name in site.controller.slots}
    site.seconds(seconds)
    return {name: reads(site, name) - n for name, n in before.items()}


def test_on_the_grid_only_the_meter_and_the_breaker_are_read_every_cycle() -> None:
    site = InProcessSite(site_config(pv=2.0), PlantInit(pv_available_fraction=0.5))
    try:
        site.seconds(3)
        assert site.mode is Mode.GRID_CONNECTED
        n = counted(site, 4.0)
        cycles = round(4.0 / site.cycle_s)
        # (the meter's driver reads two blocks a cycle; one endpoint per device here)
        assert n["pcc_breaker"] == cycles
        assert n["grid_meter"] >= cycles
        for name in ("panel_main", "panel_v2l", "charger_1", "charger_3", "v2l_1"):
            assert 4 <= n[name] <= 5, (name, n[name])  # 1 s by default
        assert 2 <= n["pv"] <= 3  # its own 2 s
        assert site.plant.violations == []
    finally:
        site.close()


def test_a_change_of_mode_reads_the_whole_field_and_an_island_its_formers_and_panels() -> None:
    site = InProcessSite(site_config(), PlantInit(pv_available_fraction=0.0))
    try:
        site.seconds(3)
        before = {name: reads(site, name) for name in site.controller.slots}
        site.plant.grid_loss()
        while not site.decisions or not site.decisions[-1].transitions:
            site.cycles(1)
        assert site.mode is Mode.ISLANDING
        site.cycles(1)  # the cycle after the change reads everything
        assert all(reads(site, name) > before[name] for name in before)
        site.islanded()
        fast = read_every_cycle(site.config, Mode.ISLANDED)
        assert {"charger_1", "charger_2", "panel_main", "panel_v2l"} <= fast
        assert "charger_3" not in fast and "pv" not in fast
        n = counted(site, 2.0)
        cycles = round(2.0 / site.cycle_s)
        for name in ("charger_1", "charger_2", "panel_main", "panel_v2l", "pcc_breaker"):
            assert n[name] >= cycles, (name, n[name])
        assert n["pv"] <= 3
        assert site.plant.violations == []
    finally:
        site.close()


def test_a_device_is_read_again_at_once_after_a_command_to_it() -> None:
    site = InProcessSite(site_config(), PlantInit(pv_available_fraction=0.0))
    try:
        site.seconds(3)
        transport = site.controller.slots["panel_main"].driver.transport
        writes = transport.writes
        read_before = transport.reads
        site.submit("shed_load", {"load_id": "kitchen"})
        for _ in range(5):
            site.cycles(1)
            if transport.writes > writes:
                break
        assert transport.writes > writes
        site.cycles(1)
        assert transport.reads > read_before  # not a second later: the next cycle
        assert not site.controller.status.snapshot.load("kitchen").relay_on
    finally:
        site.close()


class SlowTransport(InProcessTransport):
    """One unit whose replies wait until the test lets them through (a slow device)."""

    def __init__(self, inner: InProcessTransport) -> None:
        super().__init__(inner.units, inner.endpoint)
        self.gate = asyncio.Event()

    async def read(self, unit_id: int, address: int, count: int) -> list[int]:
        await self.gate.wait()
        return await super().read(unit_id, address, count)

    async def write(self, unit_id: int, address: int, values: Sequence[int]) -> None:
        await self.gate.wait()
        await super().write(unit_id, address, values)


def test_the_cycle_does_not_wait_for_a_slow_device_and_uses_its_reply_later() -> None:
    site = InProcessSite(site_config(), PlantInit(pv_available_fraction=0.5))
    try:
        site.seconds(3)
        controller = site.controller
        driver = controller.slots["pv"].driver
        slow = SlowTransport(driver.transport)
        driver.transport = slow
        controller.slots["pv"].next_due_s = -float("inf")
        site.cycles(1)  # sends the read; the reply does not come
        slot = controller.slots["pv"]
        assert slot.inflight is not None and not slot.inflight.done()
        asked = slot.asked_s
        for _ in range(10):  # the cycle goes on, the PV's last value kept
            site.cycles(1)
        assert slot.available and slot.inflight is not None
        snap = controller.status.snapshot
        assert snap.age_s("pv") == pytest.approx(snap.time_s - slot.read_at_s)
        assert snap.age_s("grid_meter") == pytest.approx(0.0)
        slow.gate.set()
        site.cycles(1)  # the reply came between cycles: this one takes it
        snap = controller.status.snapshot
        assert slot.inflight is None and slot.read_at_s == pytest.approx(asked)
        assert snap.age_s("pv") == pytest.approx(snap.time_s - asked)
        assert site.plant.violations == []
    finally:
        site.close()
