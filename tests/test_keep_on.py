"""Issue 11: an operator keeps a load on against the endurance policy, and it is undone
when the site reconnects to the grid. Judged on the plant: the load's relay, and no
wrong shed order (every higher-priority load on its circuit stays on with it).
"""

from __future__ import annotations

from firmware_sim.plant import PlantInit
from resilience.config import parse_site
from resilience.model import Mode
from tests.inprocess_site import InProcessSite, reference_data


def test_kept_on_load_stays_on_in_the_island_and_is_undone_on_reconnect() -> None:
    data = reference_data()
    data["grid"]["return_to_service_s"] = 10.0
    config = parse_site(data, "reference")
    # 80 % cars: life-safety is short of its 72 h, so the policy sheds everything else
    site = InProcessSite(config, PlantInit(pv_available_fraction=0.0))
    try:
        site.islanded()
        site.seconds(20)
        assert site.plant.load_on("oxygen_concentrators")
        assert not site.plant.load_on("general_lighting")  # saving energy
        assert "endurance_short:bus" in site.controller.modes.memory.active_alarms
        site.submit("keep_load_on", {"load_id": "general_lighting"})
        site.seconds(40)
        assert site.controller.overrides.kept_on == {"general_lighting"}
        assert site.store.flush(5.0)  # the audit row: the answer waits for it
        site.cycles(2)
        (result,) = site.results()
        assert result.outcome == "accepted", result.detail
        assert site.plant.load_on("general_lighting")
        # shed order: the critical tier above it is back on with it
        assert site.plant.load_on("network") and site.plant.load_on("phone_charging")
        assert site.plant.violations == []
        assert site.controller.overrides.kept_on == {"general_lighting"}
        status = site.controller.status
        assert status is not None
        assert status.energy["bus"].applied.label == "essential"
        site.plant.grid_return()
        for _ in range(600):
            site.seconds(1)
            if site.mode is Mode.GRID_CONNECTED:
                break
        assert site.mode is Mode.GRID_CONNECTED
        site.seconds(1)
        assert site.controller.overrides.kept_on == set()
        assert site.controller.store.flush(5.0)
        events = site.controller.store.events(kinds=["dispatch"], limit=200)
        assert any("general_lighting follow the endurance policy again" in e.reason for e in events)
        assert site.plant.violations == []
    finally:
        site.close()
