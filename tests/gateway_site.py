"""A site wired through a Modbus TCP gateway: several unit ids behind one host:port.

The reference site with the grid meter and both load panels behind one
RS-485-to-TCP gateway at panel_main's endpoint (127.0.0.1:15022): panel_main is
unit 1, panel_v2l unit 2, the grid meter unit 3. The three share one connection
and one request in flight, so the cycle period is 0.03 s: 3 x 0.01 s timeouts
must fit in it (check-config's gateway rule). `gateway_toml()` is the site file's
text, `gateway_site()` that file as check-config validates it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from resilience.config import SiteConfig, parse_site
from tests.sites import modbus_only

SITE_FILE = Path(__file__).resolve().parents[1] / "config" / "site.toml"
GATEWAY_PORT = 15022
GATEWAY_UNITS = {"panel_main": 1, "panel_v2l": 2, "grid_meter": 3}
CYCLE_PERIOD_S = 0.03


def gateway_toml() -> str:
    text = SITE_FILE.read_text(encoding="utf-8")
    for old, new in (
        ("cycle_period_s = 0.02 ", f"cycle_period_s = {CYCLE_PERIOD_S}"),
        ("port = 15022\n", f"port = {GATEWAY_PORT}\nunit_id = 1\n"),  # panel_main
        ("port = 15020\n", f"port = {GATEWAY_PORT}\nunit_id = 3\n"),  # grid_meter
        ("port = 15023\n", f"port = {GATEWAY_PORT}\nunit_id = 2\n"),  # panel_v2l
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def gateway_site() -> SiteConfig:
    config = modbus_only(parse_site(tomllib.loads(gateway_toml()), "gateway-site.toml"))
    assert {n: config.devices[n].unit_id for n in GATEWAY_UNITS} == GATEWAY_UNITS
    assert {config.devices[n].port for n in GATEWAY_UNITS} == {GATEWAY_PORT}
    return config
