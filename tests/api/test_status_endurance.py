"""Issue 11, section 2: endurance per supply circuit, from that circuit's own sources.

A V2L car feeds only its own circuit: its energy and its circuit's loads were added into
the bus figure (16.1 h shown, 2.2 h true; the oxygen concentrators went dark at 2.15 h).
Pure: the status document is built from a hand-made cycle status, no I/O.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resilience.api.status import status_document
from resilience.config import load_site
from resilience.cycle import SiteStatus
from resilience.model import (
    BreakerPosition,
    BreakerReading,
    ChargerMode,
    ChargerState,
    LoadState,
    Mode,
    OutletState,
    Snapshot,
    Tier,
    V2LState,
    VehicleState,
)
from resilience.modes import SiteModes
from resilience.outputs import Outputs
from resilience.overrides import Overrides

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"


def snapshot(config, mode: Mode) -> Snapshot:  # type: ignore[no-untyped-def]
    loads = tuple(
        LoadState(
            load_id=load.id,
            tier=load.tier,
            rated_power_w=load.rated_power_w,
            supply=load.supply,
            relay_on=load.tier <= Tier.CRITICAL,
            power_w=load.rated_power_w if load.tier <= Tier.CRITICAL else 0.0,
            available=True,
        )
        for load in config.loads
    )
    # One fleet car with 2 x 10.4 kW x ~2.2 h above its reserve on the bus ...
    fleet = VehicleState(
        charger_id="charger_1",
        vehicle_id="fleet_1",
        plugged=True,
        can_form=True,
        state=ChargerState.FORMING,
        mode=ChargerMode.FORM,
        soc_pct=30.0 + 100.0 * 22880.0 / 77400.0,
        reserve_soc_pct=30.0,
        capacity_wh=77400.0,
        power_w=10400.0,
        max_discharge_w=11000.0,
        max_charge_w=11000.0,
        bus_voltage_v=400.0,
        bus_frequency_hz=50.0,
        available=True,
    )
    # ... and two full donors on the V2L outlets, feeding only the tents
    donors = tuple(
        OutletState(
            outlet_id=oid,
            vehicle_id=vid,
            state=V2LState.SUPPLYING,
            soc_pct=95.0,
            reserve_soc_pct=35.0,
            capacity_wh=77400.0,
            power_w=500.0,
            rating_w=3600.0,
            enabled=True,
            available=True,
        )
        for oid, vid in (("v2l_1", "donor_v2l_1"), ("v2l_2", "donor_v2l_2"))
    )
    pcc = BreakerReading(BreakerPosition.OPEN, False, 1, 400.0, 50.0, 0.0, 0.0, 0.0)
    return Snapshot(
        time_s=100.0,
        grid=None,
        pcc=pcc,
        loads=loads,
        vehicles=(fleet,),
        outlets=donors,
        pv=None,
    )


def test_bus_endurance_counts_only_the_bus_cars_and_loads() -> None:
    config = load_site(SITE)
    snap = snapshot(config, Mode.ISLANDED)
    modes = SiteModes(config, now_s=0.0)
    decision = modes.step(snap)  # starting: the figures are worked out all the same
    status = SiteStatus(Mode.ISLANDED, 0.0, 0.0, snap, Outputs(), {}, 1, decision.energy)
    doc = status_document(status, config, Overrides(), 0.0)
    bus_ls_cr_w = sum(
        load.rated_power_w for load in config.loads if load.supply == "bus" and load.tier <= 1
    )
    assert doc["endurance_h"] == pytest.approx(22880.0 / bus_ls_cr_w, abs=0.01)  # 2.2 h
    assert doc["endurance_h"] < 2.5  # not the 16 h the donors' energy would make of it
    assert doc["endurance_basis"]["energy_above_reserve_wh"] == pytest.approx(22880, abs=1)
    circuits = {c["id"]: c for c in doc["circuits"]}
    assert circuits["bus"]["endurance_h"] == doc["endurance_h"]
    # each V2L circuit from its own car: 46.4 kWh for its life-safety and critical loads
    v2l_1_w = sum(
        load.rated_power_w for load in config.loads if load.supply == "v2l_1" and load.tier <= 1
    )
    assert circuits["v2l_1"]["endurance_h"] == pytest.approx(46440.0 / v2l_1_w, rel=1e-3)
    policy = circuits["bus"]["policy"]
    assert policy["short"]["tier"] == "life_safety"
    assert set(policy["projection_h"]) == {t.label for t in Tier}
    # the supply the bus can be given leaves the outlets out (they feed only the tents)
    assert doc["supply_w"] == pytest.approx(11000.0)
    assert doc["delivered_w"] == pytest.approx(10400.0)
