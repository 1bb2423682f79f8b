"""The gateway deployment: the install script's syntax and the systemd unit's options."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "resilience.service"
INSTALL = DEPLOY / "install.sh"


def unit_options() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            sections[section] = {}
            continue
        key, _, value = line.partition("=")
        sections[section].setdefault(key, []).append(value)
    return sections


def test_install_script_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(INSTALL)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = INSTALL.read_text(encoding="utf-8")
    for step in (
        "useradd --system",
        "usermod -a -G dialout",
        "/opt/resilience/venv",
        "systemctl enable resilience.service",
        "check-config",
    ):
        assert step in text


def test_unit_runs_unprivileged_with_a_watchdog_and_hardening() -> None:
    service = unit_options()["Service"]
    assert service["Type"] == ["notify"]
    assert service["User"] == ["resilience"] and service["Group"] == ["resilience"]
    assert service["SupplementaryGroups"] == ["dialout"]
    assert service["Restart"] == ["always"]
    assert float(service["WatchdogSec"][0]) > 0
    assert service["ProtectSystem"] == ["strict"]
    assert service["ReadWritePaths"] == ["/var/lib/resilience"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ExecStart"][0].endswith("run --config /etc/resilience/site.toml")
    assert service["StandardOutput"] == ["journal"]
    assert unit_options()["Install"]["WantedBy"] == ["multi-user.target"]
    configparser.ConfigParser(strict=False).read_string(
        UNIT.read_text(encoding="utf-8").replace("%", "%%")
    )


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # verify checks that the executables exist: point them at this venv's
    resilience = Path(sys.executable).parent / "resilience"
    if not resilience.exists():
        pytest.skip(f"{resilience} is missing (pip install -e .)")
    unit = tmp_path / "resilience.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace(
            "/opt/resilience/venv/bin/resilience", str(resilience)
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "resilience.service" in line
    ]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr



SCRYPT_TWICE = """
from resilience.ocpp.passwords import hash_password, verify_password
def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS")) / 1024
stored = hash_password("station password")  # scrypt, 16 MB of work memory
before = rss_mb()
assert verify_password("station password", stored)
assert not verify_password("wrong", stored)
print(rss_mb() - before)
"""


def resident_after_scrypts(environ: dict[str, str]) -> float:
    """[MB] what two more scrypt checks leave resident (each station's connection makes one)."""
    result = subprocess.run(
        [sys.executable, "-c", SCRYPT_TWICE],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return float(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, /proc")
def test_the_units_glibc_tunables_keep_scrypt_memory_from_staying_resident() -> None:
    """glibc raises its mmap threshold when a large block is freed, so the next 16 MB
    scrypt buffer comes from the heap and stays resident; the unit fixes the threshold."""
    tunables = [
        line.partition("=")[2]
        for line in unit_options()["Service"]["Environment"]
        if line.startswith("GLIBC_TUNABLES=")
    ]
    assert tunables and "glibc.malloc.mmap_threshold=" in tunables[0]
    plain = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    assert resident_after_scrypts(plain) > 12.0  # what the unit's line is for
    assert resident_after_scrypts({**plain, "GLIBC_TUNABLES": tunables[0]}) < 2.0


READ_BUFFER_IN_HEAP = """
import asyncio.selector_events, socket
a, b = socket.socketpair()
a.send(b"reply")
# what asyncio's socket transport does on every read: a buffer of max_size, shrunk to
# what came (CPython's id() is the object's address)
data = b.recv(asyncio.selector_events._SelectorSocketTransport.max_size)
with open("/proc/self/maps") as maps:
    heap = next(line.split()[0] for line in maps if line.rstrip().endswith("[heap]"))
low, high = (int(bound, 16) for bound in heap.split("-"))
print(low <= id(data) < high)
"""


def read_buffer_in_heap(environ: dict[str, str]) -> bool:
    """Whether asyncio's read buffer comes from glibc's heap (not a mapping of its own)."""
    result = subprocess.run(
        [sys.executable, "-c", READ_BUFFER_IN_HEAP],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {"True": True, "False": False}[result.stdout.strip()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, /proc")
def test_the_units_glibc_tunables_keep_asyncio_read_buffers_out_of_the_heap() -> None:
    """Every socket read in asyncio allocates a 256 KiB buffer and shrinks it to the bytes
    that came. From the heap (a threshold above 256 KiB, as the unit's first one was), each
    split the heap's free space at a new place and its resident size crept up, about 1 MB
    in bench/footprint.py's first minutes; a mapping of its own returns it whole."""
    tunables = [
        line.partition("=")[2]
        for line in unit_options()["Service"]["Environment"]
        if line.startswith("GLIBC_TUNABLES=")
    ]
    plain = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    assert read_buffer_in_heap({**plain, "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"})
    assert not read_buffer_in_heap({**plain, "GLIBC_TUNABLES": tunables[0]})
