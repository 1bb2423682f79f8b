"""What `resilience run` imports: the gateway's memory is mostly the libraries it imports.

bench/footprint.py measures the controller's RSS (goal <= 70 MB on the reference site);
these tests keep out of the running controller what it does not need, each a few MB
resident for the process's life (README, footprint): numpy (only the survival analysis
uses it), sqlite-utils (which imports numpy when it is installed), cryptography (`ssl`
checks a good pair; cryptography only explains a bad one, or dates a certificate about
to expire), and the payload classes of OCPP versions no station of the site speaks.

Each case is a fresh interpreter (`sys.modules` of this one holds whatever other tests
imported), importing what `resilience run` imports and building what it builds before
the first cycle that decides what else to import (the site file, the central system).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from resilience.tls import make_self_signed

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import datetime, json, sys
from resilience import cli, service  # `resilience run`
from resilience.api import server
from resilience.config import load_site
site = load_site(sys.argv[1])
if site.ocpp_stations:  # as service.start does
    from resilience.ocpp import CentralSystem
    CentralSystem(site)
if site.fleet is not None:  # as service.start does
    from resilience.fleet.site import start_publisher
files = site.api.tls_files()
if files is not None:  # as api.server.start_api does
    from resilience.tls import expiry_warning, server_context
    server_context(files)
    assert expiry_warning(files, datetime.datetime.now(datetime.UTC)) is None
print(json.dumps(sorted(sys.modules)))
"""

NEVER = ("numpy", "sqlite_utils", "cryptography", "pandas")
MQTT = {"aiomqtt", "paho"}  # the city layer: only for a site with [fleet]


def imported(site: Path) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(result.stdout))


def tops(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_the_reference_site_imports_ocpp_2_1_only_and_no_numpy() -> None:
    modules = imported(ROOT / "config" / "site.toml")  # two OCPP 2.1 stations, no TLS
    assert tops(modules) & {*NEVER, *MQTT} == set()
    assert not any(name.startswith("resilience.fleet") for name in modules)
    assert "ocpp.v21" in modules and "resilience.ocpp.sessions_v21" in modules
    assert modules & {"ocpp.v16", "ocpp.v201"} == set()


@pytest.mark.parametrize("site", ["tiny_site.toml"])
def test_a_site_without_stations_imports_no_ocpp(site: str) -> None:
    modules = imported(ROOT / "config" / "sites" / site)
    assert tops(modules) & {*NEVER, *MQTT, "ocpp", "websockets", "jsonschema"} == set()
    assert "resilience.store" in modules and "fastapi" in modules  # what it does need


def test_a_site_serving_https_checks_its_pair_without_cryptography(tmp_path: Path) -> None:
    cert, key = make_self_signed(["gateway.local"], [], datetime.datetime.now(datetime.UTC))
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    site = tmp_path / "site.toml"
    text = (ROOT / "config" / "sites" / "tiny_site.toml").read_text(encoding="utf-8")
    tls = f'tls_cert = "{tmp_path / "cert.pem"}"\ntls_key = "{tmp_path / "key.pem"}"\n'
    site.write_text(f'{text}\n[api]\nhost = "0.0.0.0"\n{tls}', encoding="utf-8")
    modules = imported(site)
    assert tops(modules) & set(NEVER) == set()
    assert "resilience.tls" in modules  # the pair was checked


def test_a_site_with_fleet_loads_mqtt_and_still_no_numpy(tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").write_text("secret\n")
    site = tmp_path / "site.toml"
    text = (ROOT / "config" / "sites" / "tiny_site.toml").read_text(encoding="utf-8")
    fleet = (
        '[fleet]\nbroker_host = "127.0.0.1"\ndistrict = "d1"\nsite_id = "hall"\n'
        f'username = "d1.hall"\npassword_file = "{tmp_path / "mqtt-password"}"\n'
    )
    site.write_text(f"{text}\n{fleet}", encoding="utf-8")
    modules = imported(site)
    assert tops(modules) & set(NEVER) == set()
    assert {"aiomqtt", "paho", "resilience.fleet.publisher"} <= modules
