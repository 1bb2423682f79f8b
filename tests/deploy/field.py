"""The simulated field for tests of the installed controller: a site file aimed at it, and a drill.

The controller under test runs as its own process (under strace, or as a systemd
service in a booted Debian root), so it reads a real site file: `site_file_text`
rewrites the reference site's text with the simulator's bound ports and the
paths and periods the test needs. `exercise` then drives the plant through the
controller's main job (grid loss -> island, grid return -> resynchronise and
close) and judges it on what the plant recorded, not on what the controller says.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from firmware_sim.plant import Plant
from resilience.model import BreakerPosition

SITE_FILE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
OCPP_PASSWORDS = SITE_FILE.parent / "ocpp-demo-passwords.toml"
"""The simulated stations' passwords (the site file holds their hashes)."""

_SECTION = re.compile(r"^\[([^\[\]]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)([^#]*?)(\s*#.*)?$")


def free_port() -> int:
    """A loopback port nobody listens on now (the API, or the OCPP central system, binds
    it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def site_file_text(
    ports: Mapping[str, int],
    *,
    store_path: str,
    api_port: int,
    values: Mapping[str, Mapping[str, str]] | None = None,
    device_values: Mapping[str, str] | None = None,
    base: str | None = None,
    ocpp_port: int | None = None,
    api_tls: tuple[str, str] | None = None,
) -> str:
    """The reference site file with each device at `ports[device]`, the store at
    `store_path`, the API on 127.0.0.1:`api_port` (HTTPS with `api_tls`: (cert, key)).

    `values` replaces keys of plain sections ({"grid": {"return_to_service_s": "2.0"}}),
    `device_values` keys of every device section ({"timeout_s": "0.2"}); the values are
    TOML literals. Every key named must be found, so a renamed key fails the test here
    instead of leaving the default in place. `ocpp_port`: the OCPP central system listens
    on 127.0.0.1 at that port.
    """
    text = SITE_FILE.read_text(encoding="utf-8") if base is None else base
    wanted: dict[str, dict[str, str]] = {k: dict(v) for k, v in (values or {}).items()}
    wanted.setdefault("site", {})["store_path"] = f'"{store_path}"'
    found: set[tuple[str, str]] = set()
    out: list[str] = []
    section = ""
    for line in text.splitlines():
        header = _SECTION.match(line.strip())
        if header:
            section = header.group(1).strip()
        key = _KEY.match(line)
        if key and not line.lstrip().startswith("#"):
            name = key.group(2)
            replacement: str | None = None
            if section.startswith("devices."):
                device = section.removeprefix("devices.")
                if name == "port" and device in ports:
                    replacement = str(ports[device])
                elif device_values and name in device_values:
                    replacement = device_values[name]
            elif name in wanted.get(section, {}):
                replacement = wanted[section][name]
            if replacement is not None:
                found.add((section, name))
                line = f"{key.group(1)}{name}{key.group(3)}{replacement}"
        out.append(line)
    missing = [f"[{s}] {k}" for s, keys in wanted.items() for k in keys if (s, k) not in found]
    missing += [f"[devices.{d}] port" for d in ports if (f"devices.{d}", "port") not in found]
    if missing:
        raise ValueError(f"not in the site file: {', '.join(missing)}")
    out += ["", "[api]", 'host = "127.0.0.1"', f"port = {api_port}"]
    if api_tls is not None:
        out += [f'tls_cert = "{api_tls[0]}"', f'tls_key = "{api_tls[1]}"']
    out += [""]
    if ocpp_port is not None:
        out += ["[ocpp]", 'host = "127.0.0.1"', f"port = {ocpp_port}", ""]
    return "\n".join(out)


@dataclass
class Exercise:
    """What the drill saw, in plant time (seconds since the plant started)."""

    islanded_after_s: float | None = None
    reconnected_after_s: float | None = None
    notes: list[str] = field(default_factory=list)


def ocpp_passwords() -> dict[str, str]:
    return dict(tomllib.loads(OCPP_PASSWORDS.read_text(encoding="utf-8")))


async def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05
) -> float:
    """Seconds until `condition()` held; AssertionError naming `what` after `timeout_s`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(poll_s)  # polling another process's effect on the plant
    return time.monotonic() - start


def islanded(plant: Plant) -> bool:
    """The PCC is open and a local former holds the site bus up."""
    return (
        plant.breaker_position == BreakerPosition.OPEN and plant.bus_live and bool(plant.former_ids)
    )


def grid_connected(plant: Plant) -> bool:
    return (
        plant.grid_present
        and plant.breaker_position == BreakerPosition.CLOSED
        and not plant.former_ids
    )


async def exercise(
    plant: Plant,
    *,
    island_timeout_s: float = 30.0,
    reconnect_timeout_s: float = 60.0,
) -> Exercise:
    """Grid loss -> the controller islands the site; grid return -> it closes the PCC again.

    Raises AssertionError if the controller does not; the caller checks
    `plant.violations` (the referee) afterwards.
    """
    seen = Exercise()
    plant.grid_loss()
    seen.islanded_after_s = await wait_for(
        lambda: islanded(plant), island_timeout_s, "the controller to island the site"
    )
    plant.grid_return()
    seen.reconnected_after_s = await wait_for(
        lambda: grid_connected(plant), reconnect_timeout_s, "the PCC to close on the grid"
    )
    return seen
