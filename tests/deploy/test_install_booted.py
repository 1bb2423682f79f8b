"""deploy/install.sh on a booted Debian 12, as a gateway owner runs it, against the simulated site.

A minimal Debian root (debootstrap, cached) boots systemd as PID 1 of a PID
namespace; install.sh runs inside it as root with the site file aimed at the
simulator on the host's loopback (the root shares the host's network). Then, judged
on systemd's record, the journal and the plant's:

- the unit is active, and READY=1 came after the controller had read the field;
- it controls the site: a grid loss islands it, the grid's return resynchronises it,
  and the plant records no violation;
- SIGSTOP of the main process: the watchdog kills it, systemd restarts it, and the new
  process reads the field again before it is READY;
- install.sh made the API's certificate (for the gateway's names and addresses) and
  printed its SHA-256 fingerprint, which matches the file; the API answers over HTTPS
  verified against that certificate (and HSTS with it), and install.sh printed the
  first token's signed-in https link;
- `systemctl stop` is clean (exit 0, no SIGKILL) within TimeoutStopSec;
- install.sh again upgrades the software and keeps the site file and the data;
- the journal has the controller's own lines.

What the test changes in the shipped unit, in a drop-in, and why: the options that
make systemd set up a mount namespace for the service (ProtectSystem=, ProtectHome=,
PrivateTmp=, ReadWritePaths=, ProtectKernelTunables=, ProtectKernelModules=,
ProtectKernelLogs=, ProtectControlGroups=) fail with 226/NAMESPACE inside a chroot,
whose root is not a mount point. Everything else runs as shipped: the seccomp
filter, the user and groups, Type=notify and the watchdog, the device policy, the
memory and task limits.

Opt-in (`RESILIENCE_INSTALL_TEST=1`; `make install-test`, which .ci/run runs as its own
step): it needs root, debootstrap, and about two to four minutes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import sqlite3
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from firmware_sim.server import SimSite
from resilience.config import load_site
from resilience.tls import fingerprint, load_certificate

from .debian_root import BootedRoot, debian_root_tarball
from .field import SITE_FILE, exercise, free_port, ocpp_passwords, site_file_text

ROOT = Path(__file__).resolve().parents[2]
UNIT = "resilience.service"
DATA = "/var/lib/resilience/site.sqlite"
CERT = "etc/resilience/tls/cert.pem"
TOOLS = ("debootstrap", "unshare", "nsenter", "chroot", "tar")
DROP_IN = """\
# tests/deploy/test_install_booted.py: a chroot's root is not a mount point, so systemd
# cannot build the service's mount namespace (226/NAMESPACE). Only those options are lifted.
[Service]
ProtectSystem=no
ReadWritePaths=
ProtectHome=no
PrivateTmp=no
ProtectKernelTunables=no
ProtectKernelModules=no
ProtectKernelLogs=no
ProtectControlGroups=no
"""

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("RESILIENCE_INSTALL_TEST") != "1",
        reason="opt-in: RESILIENCE_INSTALL_TEST=1 (make install-test; .ci/run runs it)",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="boots systemd in a namespace: needs root"),
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in TOOLS),
        reason=f"needs {', '.join(TOOLS)} (make install-test installs debootstrap)",
    ),
]


def _source_files() -> list[str]:
    """The checkout as a user would copy it: tracked and new files, not ignored ones."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _copy_source(into: Path) -> None:
    for name in _source_files():
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


async def _journal(root: BootedRoot, *args: str) -> list[dict[str, str]]:
    result = await root.run(["journalctl", "--no-pager", "-o", "json", *args])
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _messages(entries: list[dict[str, str]]) -> list[str]:
    return [str(entry.get("MESSAGE", "")) for entry in entries]


async def _wait_unit(
    root: BootedRoot, what: str, condition: object, timeout_s: float
) -> dict[str, str]:
    props = ("ActiveState", "SubState", "MainPID", "NRestarts", "Result")
    deadline = time.monotonic() + timeout_s
    while True:
        state = await root.show(UNIT, *props)
        assert callable(condition)
        if condition(state):
            return state
        if time.monotonic() > deadline:
            log = await root.run(["journalctl", "--no-pager", "-u", UNIT, "-n", "60"])
            raise AssertionError(f"timed out waiting for {what}: {state}\n{log.stdout}")
        await asyncio.sleep(0.25)  # polling systemd in another namespace


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _events(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return list(conn.execute("SELECT id, ts, kind, reason FROM events ORDER BY id"))


@pytest.fixture
async def gateway() -> AsyncIterator[BootedRoot]:
    work = Path(tempfile.mkdtemp(prefix="resilience-gateway-", dir="/var/tmp"))
    log = work / "debootstrap.log"
    tarball = await asyncio.to_thread(debian_root_tarball, log)
    root = BootedRoot(work / "root", tarball, work / "console.log")
    try:
        await asyncio.to_thread(root.prepare)
        await root.boot()
        pip_cache = tarball.parent / "pip"
        pip_cache.mkdir(exist_ok=True)
        await root.bind(pip_cache, "/root/.cache/pip")
        yield root
    finally:
        root.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.timeout(1200)
async def test_install_on_a_booted_debian_controls_the_site(gateway: BootedRoot) -> None:
    root = gateway
    timings: dict[str, float] = {}
    config = load_site(SITE_FILE)
    async with SimSite(config, bind_free_ports=True) as sim:
        api_port = free_port()
        ocpp_port = free_port()
        site_text = site_file_text(
            sim.ports,
            store_path=DATA,
            api_port=api_port,
            values={"grid": {"return_to_service_s": "5.0"}},
            ocpp_port=ocpp_port,
        )
        # the site's OCPP stations connect once the service listens (they retry till then)
        await sim.start_stations(f"ws://127.0.0.1:{ocpp_port}/ocpp", ocpp_passwords())
        (root.path / "root/site.toml").write_text(site_text, encoding="utf-8")
        _copy_source(root.path / "root/src")
        drop_in = root.path / "etc/systemd/system/resilience.service.d"
        drop_in.mkdir(parents=True)
        (drop_in / "chroot-test.conf").write_text(DROP_IN, encoding="utf-8")

        # ---------------------------------------------------------------- install
        start = time.monotonic()
        installed = await root.run(["bash", "/root/src/deploy/install.sh", "/root/site.toml"])
        timings["install_s"] = time.monotonic() - start
        assert "install: done" in installed.stdout, installed.stdout
        state = await _wait_unit(
            root, "the unit to be active", lambda s: s["ActiveState"] == "active", 60
        )
        assert state["NRestarts"] == "0", state
        ids = await root.run(["id", "resilience"])
        assert "dialout" in ids.stdout, ids.stdout
        props = await root.show(UNIT, "User", "SystemCallFilter", "WatchdogUSec", "Type")
        assert props["User"] == "resilience" and props["Type"] == "notify", props
        assert props["WatchdogUSec"] == "10s", props
        assert "mbind" in props["SystemCallFilter"] and "setuid" not in props["SystemCallFilter"]

        # READY=1 (systemd: "Started") came after the controller's "field read" line
        entries = await _journal(root, "-u", UNIT)
        messages = _messages(entries)
        read_at = [i for i, m in enumerate(messages) if "field read:" in m]
        started_at = [i for i, m in enumerate(messages) if m.startswith("Started resilience")]
        assert read_at and started_at, messages
        assert read_at[0] < started_at[0], messages
        # every Modbus device answered; an OCPP station may connect a moment after the
        # field is read (its reconnect backoff), and is then silent until it does
        field = re.search(r"(\d+) devices answering, (\d+) silent", messages[read_at[0]])
        assert field is not None, messages[read_at[0]]
        answering, silent = int(field.group(1)), int(field.group(2))
        assert answering + silent == len(config.devices), messages[read_at[0]]
        assert answering >= len(config.devices) - len(config.ocpp_stations), messages[read_at[0]]

        # ---------------------------------------------------------------- TLS
        cert_file = root.path / CERT
        cert = load_certificate(cert_file.read_bytes())
        cert_before = _sha256(cert_file)
        assert f"SHA-256 fingerprint {fingerprint(cert)}" in installed.stdout, installed.stdout
        link = re.search(r"signed-in link: (https://\S+)#token=\S+", installed.stdout)
        assert link is not None and link.group(1).endswith(f":{api_port}/"), installed.stdout
        key_mode = (root.path / "etc/resilience/tls/key.pem").stat().st_mode & 0o777
        assert key_mode == 0o640, oct(key_mode)
        trust = ssl.create_default_context(cafile=str(cert_file))
        async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{api_port}", verify=trust) as c:
            page = await c.get("/", timeout=10)
            assert page.status_code == 200 and "<html" in page.text.lower()
            assert "strict-transport-security" in page.headers
        start = time.monotonic()
        seen = await exercise(sim.plant, island_timeout_s=30, reconnect_timeout_s=120)
        timings["outage_s"] = time.monotonic() - start
        assert not sim.plant.violations, sim.plant.violations
        assert seen.islanded_after_s is not None and seen.islanded_after_s < 10, seen

        # ---------------------------------------------------------------- watchdog
        before = await root.show(UNIT, "MainPID", "NRestarts")
        start = time.monotonic()
        await root.run(["systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", UNIT])
        after = await _wait_unit(
            root,
            "the watchdog to kill and systemd to restart the stopped controller",
            lambda s: (
                s["NRestarts"] == str(int(before["NRestarts"]) + 1)
                and s["ActiveState"] == "active"
                and s["MainPID"] not in ("0", before["MainPID"])
            ),
            90,
        )
        timings["watchdog_restart_s"] = time.monotonic() - start
        messages = _messages(await _journal(root, "-u", UNIT))
        timeout_at = [i for i, m in enumerate(messages) if "Watchdog timeout" in m]
        assert timeout_at, messages
        reread = [i for i, m in enumerate(messages) if "field read:" in m and i > timeout_at[-1]]
        started = [
            i
            for i, m in enumerate(messages)
            if m.startswith("Started resilience") and i > timeout_at[-1]
        ]
        assert reread and started and reread[0] < started[0], messages
        assert after["MainPID"] != before["MainPID"]
        assert not sim.plant.violations, sim.plant.violations

        # ---------------------------------------------------------------- stop
        start = time.monotonic()
        await root.run(["systemctl", "stop", UNIT])
        timings["stop_s"] = time.monotonic() - start
        stopped = await root.show(UNIT, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
        assert stopped["ActiveState"] == "inactive" and stopped["Result"] == "success", stopped
        assert stopped["ExecMainStatus"] == "0", stopped
        assert timings["stop_s"] < 15, timings
        messages = _messages(await _journal(root, "-u", UNIT))
        stopping = max(i for i, m in enumerate(messages) if m.startswith("Stopping resilience"))
        after_stop = messages[stopping:]
        assert not [m for m in after_stop if "SIGKILL" in m or "Killing process" in m], after_stop
        assert any(m.startswith("Stopped resilience") for m in after_stop), after_stop

        # ---------------------------------------------------------------- upgrade
        site_file = root.path / "etc/resilience/site.toml"
        site_before = _sha256(site_file)
        events_before = _events(root.path / DATA.lstrip("/"))
        assert events_before, "the store recorded nothing"
        marker = "ISSUE_10_UPGRADE_MARKER = True\n"
        (root.path / "root/src/resilience/install_marker.py").write_text(marker)
        start = time.monotonic()
        upgraded = await root.run(["bash", "/root/src/deploy/install.sh"])
        timings["upgrade_s"] = time.monotonic() - start
        assert "install: done" in upgraded.stdout, upgraded.stdout
        venv_python = "/opt/resilience/venv/bin/python"
        probe = await root.run(
            [venv_python, "-c", "import resilience.install_marker as m; print(m.__file__)"]
        )
        assert probe.stdout.startswith("/opt/resilience/venv/"), probe.stdout
        assert _sha256(site_file) == site_before
        await _wait_unit(root, "the upgraded unit", lambda s: s["ActiveState"] == "active", 60)
        events_after = _events(root.path / DATA.lstrip("/"))
        assert events_after[: len(events_before)] == events_before
        assert _sha256(cert_file) == cert_before  # kept: same names, far from its end
        assert "kept" in upgraded.stdout and fingerprint(cert) in upgraded.stdout
        mode = await _wait_mode(api_port, "grid_connected", 30, root)
        assert mode == "grid_connected"

        # ---------------------------------------------------------------- journal
        lines = (await root.run(["journalctl", "--no-pager", "-o", "cat", "-u", UNIT])).stdout
        for expected in ("controlling '", "field read:", "-> islanding", "-> grid_connected"):
            assert expected in lines, (expected, lines[-4000:])
        await root.run(["systemctl", "stop", UNIT])
        assert not sim.plant.violations, sim.plant.violations
    print("install test timings:", json.dumps({k: round(v, 1) for k, v in timings.items()}))


async def _wait_mode(api_port: int, mode: str, timeout_s: float, root: BootedRoot) -> str:
    """The controller's mode over its API (HTTPS, verified against install.sh's certificate),
    read with a viewer token made by its own CLI."""
    name = f"install-test-{time.time_ns()}"
    create = ["token", "create", "--role", "viewer", "--name", name]
    made = await root.run(
        ["runuser", "-u", "resilience", "--", "/opt/resilience/venv/bin/resilience", *create,
         "--config", "/etc/resilience/site.toml"]
    )  # fmt: skip
    token = made.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + timeout_s
    seen = ""
    trust = ssl.create_default_context(cafile=str(root.path / CERT))
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{api_port}", verify=trust) as client:
        while time.monotonic() < deadline:
            try:
                r = await client.get(
                    "/api/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=5
                )
                if r.status_code == 200:
                    seen = str(r.json().get("mode", ""))
                    if seen == mode:
                        return seen
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)  # polling another process's API
    return seen
