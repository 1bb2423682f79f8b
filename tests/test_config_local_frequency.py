"""The site file's droop (`devices.<id>.droop_hz`) and LocalFrequency keys
(`[devices.<id>.ocpp] local_frequency`, `[ocpp] local_frequency_offline_s`): one small
named case per problem, each starting from the reference site."""

from __future__ import annotations

from typing import Any

import pytest

from resilience.config import ConfigProblem
from tests.test_config import parses_after, problems_after


def droop(hz: float, *names: str) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        for name in names or ("charger_1", "charger_2"):
            data["devices"][name]["droop_hz"] = hz

    return mutate


def local_frequency(*names: str, **station: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        for name in names or ("ocpp_1",):
            data["devices"][name]["ocpp"]["local_frequency"] = True
            data["devices"][name]["ocpp"].update(station)

    return mutate


def keyed(problems: list[ConfigProblem], key: str) -> list[str]:
    return [p.reason for p in problems if p.key == key]


def test_no_droop_is_the_default_and_the_reference_site_is_isochronous() -> None:
    site = parses_after()
    assert all(d.droop_hz == 0.0 for d in site.devices.values())
    assert all(d.ocpp is None or not d.ocpp.local_frequency for d in site.devices.values())
    assert site.ocpp.local_frequency_offline_s == 60


def test_a_drooping_site_with_local_frequency_stations_parses() -> None:
    site = parses_after(droop(1.0), local_frequency("ocpp_1", "ocpp_2"))
    assert site.devices["charger_1"].droop_hz == 1.0
    ocpp = site.devices["ocpp_2"].ocpp
    assert ocpp is not None and ocpp.local_frequency


@pytest.mark.parametrize("hz", [-0.1, 5.5])
def test_a_droop_out_of_range_is_refused(hz: float) -> None:
    problems = problems_after(droop(hz, "charger_1"))
    assert keyed(problems, "devices.charger_1.droop_hz")


def test_only_a_former_droops() -> None:
    problems = problems_after(droop(0.5, "charger_3"))
    assert "only a grid-forming" in keyed(problems, "devices.charger_3.droop_hz")[0]


def test_a_loaded_island_must_stay_inside_uf1_and_of1() -> None:
    # the reference site: 50 Hz, EN 50549's UF1 at 47.5 Hz and OF1 at 51.5 Hz: a 1.5 Hz
    # droop puts a former absorbing at its full rating on OF1
    (reason,) = keyed(problems_after(droop(1.5)), "devices.charger_1.droop_hz")
    assert "OF1 51.5 Hz" in reason and "at 51.5 Hz" in reason
    parses_after(droop(1.4))

    def national(data: dict[str, Any]) -> None:
        data["grid"]["trip"] = {"uf1": {"hz": 49.0}}

    (reason,) = keyed(problems_after(national, droop(1.0)), "devices.charger_1.droop_hz")
    assert "UF1 49 Hz" in reason and "at 49 Hz" in reason


def test_resynchronisation_must_stay_within_the_setpoint_range() -> None:
    def high_window(data: dict[str, Any]) -> None:
        data["grid"]["nominal_frequency_hz"] = 60.0
        data["grid"]["trip_table"] = "ieee1547_cat2"
        data["grid"]["frequency_window_hz"] = [59.5, 61.0]
        data["grid"]["trip"] = {
            "uf1": {"hz": 55.0},
            "uf2": {"hz": 54.0},
            "of1": {"hz": 64.9},
            "of2": {"hz": 65.5},
        }

    reasons = keyed(problems_after(high_window, droop(4.5)), "devices.charger_1.droop_hz")
    assert any("resynchronising" in r and "65 Hz" in r for r in reasons), reasons


def test_local_frequency_needs_a_2_1_follower() -> None:
    def version(data: dict[str, Any]) -> None:
        data["devices"]["ocpp_1"]["ocpp"]["version"] = "2.0.1"

    key = "devices.ocpp_1.ocpp.local_frequency"
    reasons = keyed(problems_after(droop(1.0), local_frequency(), version), key)
    assert any("OCPP 2.0.1 has no LocalFrequency" in r for r in reasons), reasons

    def load_role(data: dict[str, Any]) -> None:
        data["devices"]["ocpp_1"]["role"] = "load"

    reasons = keyed(
        problems_after(droop(1.0), local_frequency(), load_role),
        "devices.ocpp_1.ocpp.local_frequency",
    )
    assert any("role 'load'" in r for r in reasons), reasons


def test_local_frequency_needs_formers_that_droop_alike() -> None:
    key = "devices.ocpp_1.ocpp.local_frequency"
    (reason,) = keyed(problems_after(local_frequency()), key)
    assert "same droop_hz > 0" in reason
    (reason,) = keyed(
        problems_after(droop(1.0, "charger_1"), droop(0.5, "charger_2"), local_frequency()), key
    )
    assert "devices.charger_2.droop_hz = 0.5" in reason


def test_local_frequency_must_outlast_the_dead_man() -> None:
    def short(data: dict[str, Any]) -> None:
        data.setdefault("ocpp", {})["local_frequency_offline_s"] = 5

    (reason,) = keyed(
        problems_after(droop(1.0), local_frequency(), short), "ocpp.local_frequency_offline_s"
    )
    assert "longer than ocpp.max_offline_duration_s (5 s)" in reason
    parses_after(short)  # irrelevant without a LocalFrequency station
