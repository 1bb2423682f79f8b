"""The site generator (tests/sites.py): every site it draws is one check-config accepts.

A generated site goes through `parse_site` (field checks, then `cross_check`) and
keeps the check-config rules of issue 9 that are being added elsewhere
(`pending_problems`); its TOML rendering reads back as the same document, and
`resilience check-config` accepts the file. The generator also reaches every shape
it promises (each `find` below fails if a shape were never drawn).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis.errors import NoSuchExample

from resilience.config import SiteConfig, cross_check, load_site, parse_site
from resilience.model import Tier
from tests.sites import pending_problems, site_documents, sites, to_toml, write_site

REPO = Path(__file__).resolve().parent.parent
DERANDOMIZE = os.environ.get("RESILIENCE_FUZZ_RANDOM") is None
GENERATE = settings(
    max_examples=200,
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@GENERATE
@given(doc=site_documents())
def test_check_config_accepts_every_generated_site(doc: dict[str, Any]) -> None:
    config = parse_site(doc, "generated.toml")  # raises ConfigError with every problem
    assert cross_check(config) == []
    assert pending_problems(config) == []


@GENERATE
@given(doc=site_documents(inprocess=False))
def test_every_shape_is_valid_also_beyond_the_in_process_simulator(doc: dict[str, Any]) -> None:
    config = parse_site(doc, "generated.toml")
    assert cross_check(config) == []
    assert pending_problems(config) == []


@GENERATE
@given(doc=site_documents(inprocess=False))
def test_toml_rendering_reads_back_as_the_same_document(doc: dict[str, Any]) -> None:
    assert tomllib.loads(to_toml(doc)) == doc


@settings(max_examples=3, deadline=None, derandomize=DERANDOMIZE)
@given(doc=site_documents(inprocess=False))
def test_cli_check_config_accepts_rendered_files(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write_site(doc, Path(directory) / "site.toml")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        done = subprocess.run(
            [sys.executable, "-m", "resilience.cli", "check-config", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith(f"{path}: ok (")
        assert load_site(path) == parse_site(doc)


def test_toml_writer_quotes_what_toml_needs() -> None:
    doc = {
        "a": {"name": 'quote " backslash \\ tab \t del \x7f é', "x": 1.0e-5, "n": [[0, 8.5]]},
        "b": [{"odd key": True}, {"k": {"inline": 1}}],
    }
    assert tomllib.loads(to_toml(doc)) == doc
    with pytest.raises(ValueError, match="no inf or nan"):
        to_toml({"a": {"x": float("inf")}})


# --------------------------------------------------------------------------- coverage
def tcp_endpoints(config: SiteConfig) -> dict[tuple[str, int], int]:
    shared: dict[tuple[str, int], int] = {}
    for device in config.devices.values():
        if device.transport == "tcp":
            shared[(device.host, device.port)] = shared.get((device.host, device.port), 0) + 1
    return shared


SHAPES: dict[str, Callable[[SiteConfig], bool]] = {
    "60 Hz at 120/208 V": lambda c: (
        c.grid.nominal_frequency_hz == 60.0 and c.grid.nominal_voltage_v == 208.0
    ),
    "50 Hz at 230/400 V": lambda c: (
        c.grid.nominal_frequency_hz == 50.0 and c.grid.nominal_voltage_v == 400.0
    ),
    "16 chargers": lambda c: len(c.chargers) == 16,
    "one charger": lambda c: len(c.chargers) == 1,
    "3 grid-formers, with and without interlock": lambda c: (
        sum(d.can_form for d in c.chargers.values()) == 3
        and len({d.pcc_interlock for d in c.chargers.values() if d.can_form}) == 2
    ),
    "3 V2L outlets": lambda c: len(c.outlets) == 3,
    "no V2L outlet": lambda c: not c.outlets,
    "no PV": lambda c: not c.pv_inverters,
    "PV": lambda c: bool(c.pv_inverters),
    "50 to 60 loads": lambda c: 50 <= len(c.loads) <= 60,
    "4 loads": lambda c: len(c.loads) == 4,
    "several boards": lambda c: len({ld.panel for ld in c.loads if ld.supply == "bus"}) >= 3,
    "a shared TCP gateway": lambda c: max(tcp_endpoints(c).values()) >= 3,
    "Modbus RTU": lambda c: any(d.transport == "rtu" for d in c.devices.values()),
    "a line-protocol V2L meter": lambda c: any(d.transport == "serial" for d in c.devices.values()),
    "a car's own discharge limit": lambda c: any(v.max_discharge_w for v in c.vehicles),
    "a donor at an outlet": lambda c: any(v.outlet for v in c.vehicles),
    "an empty charger bay": lambda c: any(c.vehicle_at(n) is None for n in c.chargers),
    "a cycle of 200 ms": lambda c: c.site.cycle_period_s == 0.2,
    "a cycle of 20 ms": lambda c: c.site.cycle_period_s == 0.02,
    "every tier on a V2L circuit": lambda c: (
        {ld.tier for ld in c.loads if ld.supply != "bus"} == set(Tier)
    ),
}


def test_generator_reaches_every_shape() -> None:
    """Every shape the module docstring promises comes up within a few hundred sites."""
    seen: set[str] = set()

    @settings(
        max_examples=400,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(config=sites(inprocess=False))
    def draw(config: SiteConfig) -> None:
        seen.update(name for name, shape in SHAPES.items() if shape(config))

    draw()
    # A derandomised run's examples shift with what else is imported (Hypothesis seeds
    # its constants from loaded modules), so a rare shape the sweep missed is searched
    # for directly: the generator must still be able to make it.
    unreached = []
    for name in sorted(set(SHAPES) - seen):
        try:
            find(
                sites(inprocess=False),
                SHAPES[name],
                settings=settings(
                    max_examples=2000,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        except NoSuchExample:
            unreached.append(name)
    assert unreached == []


def car_limit_w(config: SiteConfig, charger: str) -> float:
    """[W] what the car parked at `charger` allows itself (inf: no limit, or no car)."""
    car = config.vehicle_at(charger)
    return car.max_discharge_w if car is not None and car.max_discharge_w else float("inf")


def test_plausible_sizing() -> None:
    """Life-safety + critical on the bus fit the weakest grid-former at the cold-load factor."""

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(config=sites())
    def check(config: SiteConfig) -> None:
        firm = sum(
            ld.rated_power_w
            for ld in config.loads
            if ld.supply == "bus" and ld.tier <= Tier.CRITICAL
        )
        weakest = min(
            min(d.rating_w or 0.0, car_limit_w(config, n))
            for n, d in config.chargers.items()
            if d.can_form
        )
        need = firm * config.dispatch.cold_load_factor + config.dispatch.shed_margin_w
        assert need <= weakest, (firm, weakest)
        for outlet, device in config.outlets.items():
            on_it = [ld for ld in config.loads if ld.supply == outlet]
            assert on_it, f"{outlet} feeds no circuit"
            firm_v2l = sum(ld.rated_power_w for ld in on_it if ld.tier <= Tier.CRITICAL)
            assert firm_v2l <= (device.rating_w or 0.0)

    check()
