"""`GET /metrics`: Prometheus text over the real controller on the simulated site."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from resilience.model import Mode
from tests.api.conftest import Api


async def scrape(api: Api) -> dict[str, list[Sample]]:
    response = await api.client("viewer").get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(response.text):
        families.setdefault(family.name, []).extend(family.samples)
    return families


def value(samples: list[Sample], name: str, **labels: str) -> float:
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    raise AssertionError(f"no sample {name} {labels} in {samples}")


async def test_metrics_show_cycle_mode_devices_and_energy(api: Api) -> None:
    first = await scrape(api)
    cycles = value(first["resilience_cycles"], "resilience_cycles_total")
    assert cycles > 0
    assert value(first["resilience_cycle_period_seconds"], "resilience_cycle_period_seconds") == (
        api.running.controller.config.site.cycle_period_s
    )
    assert value(first["resilience_mode"], "resilience_mode", mode="grid_connected") == 1.0
    assert value(first["resilience_mode"], "resilience_mode", mode="islanded") == 0.0
    up = first["resilience_device_up"]
    assert len(up) == 11 and all(s.value == 1.0 for s in up)
    assert value(up, "resilience_device_up", device="charger_1", transport="tcp") == 1.0
    assert value(first["resilience_store_healthy"], "resilience_store_healthy") == 1.0

    api.plant.silence("pv")
    await api.until(lambda: not api.running.controller.slots["pv"].available, 5, "pv unavailable")
    api.plant.grid_loss()
    await api.mode(Mode.ISLANDED, 10)
    # the energy meter integrates from the first scrape on
    await api.until(lambda: api.running.controller.stats.cycles > cycles + 50, 5, "cycles")
    second = await scrape(api)
    assert value(second["resilience_cycles"], "resilience_cycles_total") > cycles
    assert value(second["resilience_mode"], "resilience_mode", mode="islanded") == 1.0
    assert value(second["resilience_device_up"], "resilience_device_up", device="pv") == 0.0
    assert (
        value(
            second["resilience_alarm_active"],
            "resilience_alarm_active",
            code=("device_unavailable:pv"),
        )
        == 1.0
    )
    served = value(
        second["resilience_energy_served_wh"],
        "resilience_energy_served_wh_total",
        tier="life_safety",
    )
    assert served > 0
    assert (
        value(
            second["resilience_load_power_watts"], "resilience_load_power_watts", tier="life_safety"
        )
        > 0
    )
    interval = second["resilience_cycle_interval_seconds"]
    assert value(interval, "resilience_cycle_interval_seconds_count") > 0
    assert (
        value(
            second["resilience_energy_above_reserve_wh"],
            "resilience_energy_above_reserve_wh",
            connector="charger_1",
        )
        > 0
    )
    # the endurance policy per circuit: the bus is the headline, each V2L circuit its own
    hours = second["resilience_endurance_hours"]
    assert value(hours, "resilience_endurance_hours", circuit="bus", tier="life_safety") > 0
    assert {s.labels["circuit"] for s in hours} == {"bus", "v2l_1", "v2l_2"}
    allowed = second["resilience_endurance_allowed_tier"]
    assert 0 <= value(allowed, "resilience_endurance_allowed_tier", circuit="bus") <= 3


async def test_each_app_has_its_own_registry(api: Api) -> None:
    from resilience.api import create_app
    from resilience.api.metrics import metrics_for

    controller = api.running.controller
    one = create_app(controller, ui_dir=None)
    two = create_app(controller, ui_dir=None)
    assert metrics_for(one, controller) is metrics_for(one, controller)
    assert metrics_for(one, controller) is not metrics_for(two, controller)


async def test_metrics_need_a_token(api: Api) -> None:
    """Unauthenticated, anyone on the LAN would see the mode, the devices up and the
    energy in each car: any role's token may scrape, none may not."""
    anonymous = await api.client(role=None).get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "resilience_mode" not in anonymous.text
    assert (await api.client(token="y" * 43).get("/metrics")).status_code == 401
    scraped = await api.client("viewer").get("/metrics")
    assert scraped.status_code == 200 and "resilience_mode" in scraped.text
    assert scraped.headers["cache-control"] == "no-store"
