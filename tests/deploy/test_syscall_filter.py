"""Every syscall the controller makes in its main job is one the shipped unit's filter allows.

A seccomp filter that lacks one killed the process (SIGSYS) on every start, and
`Restart=always` restarted it every RestartSec forever: the shelter was uncontrolled
(issue 10: NumPy's OpenBLAS calls mbind). The unit now answers EPERM instead of
killing, but a denied call still breaks whatever made it. So the real
`resilience check-config` and `resilience run` (what ExecStartPre= and ExecStart=
run) are traced with strace while the simulated site loses the grid, islands and
resynchronises, the API is read over HTTPS (the TLS handshake and encryption run in the
traced process) and systemd's notify socket is pinged, and every
syscall seen must be in the filter as systemd computes it (`systemd-analyze`), on
x86_64 and, by the arm64 names of the same calls, on an arm64 gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import tomllib
from pathlib import Path

import httpx
import pytest

from firmware_sim.server import SimSite
from resilience.auth import TokenStore
from resilience.config import parse_site
from resilience.tls import make_self_signed
from tests.serial_lines import socat_pair

from .field import SITE_FILE, exercise, free_port, ocpp_passwords, site_file_text
from .syscalls import missing_syscalls, traced_syscalls, unit_allowed_syscalls

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "resilience.service"
RESILIENCE = Path(sys.executable).with_name("resilience")
NOBODY = 65534

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("strace") is None or shutil.which("systemd-analyze") is None,
        reason="needs strace and systemd-analyze (make test installs them)",
    ),
]


def test_filter_is_computed_the_way_systemd_documents() -> None:
    unit = "\n".join(
        [
            "SystemCallFilter=@system-service",
            "# SystemCallFilter=@obsolete",
            "SystemCallFilter=~@privileged @resources",
            "SystemCallFilter=sched_setaffinity",
        ]
    )
    allowed = unit_allowed_syscalls(unit)
    assert {"read", "openat", "epoll_wait", "execve"} <= allowed
    assert "mbind" not in allowed and "setuid" not in allowed
    assert "sched_setaffinity" in allowed  # added back by the later line
    with pytest.raises(ValueError, match="no SystemCallFilter"):
        unit_allowed_syscalls("[Service]\nUser=x\n")
    summary = (
        "% time     seconds  usecs/call     calls    errors syscall\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        " 40.00    0.000040           2        20         3 openat\n"
        "  1.00    0.000001           1         1           mbind\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        "100.00    0.000041           1        21         3 total\n"
    )
    assert traced_syscalls(summary) == {"openat": 20, "mbind": 1}


async def _notify_reader(sock: socket.socket, messages: list[str], ready: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while True:
        data = await loop.sock_recv(sock, 4096)
        for message in data.decode().splitlines():
            messages.append(message)
            if message == "READY=1":
                ready.set()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _as_service_user(work: Path) -> list[str]:
    """The prefix that runs a command unprivileged, as the unit's User= does.

    Run as root, SQLite chowns its journal files to the database's owner (fchown, in
    @privileged), which the service user never does; so the trace is taken as
    nobody, on a working directory nobody owns. The interpreter may live where nobody
    cannot look (pyenv under /root): the one capability given back only lets it read
    and search there; it grants no syscall.
    """
    if os.geteuid() != 0:
        return []
    for path in [work, *work.rglob("*")]:
        os.chown(path, NOBODY, NOBODY)
    return [
        "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--",
    ]  # fmt: skip


RURAL_RTU = SITE_FILE.parent / "sites" / "rural_clinic_rtu.toml"


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
async def test_the_controller_makes_no_syscall_the_unit_forbids(kind: str) -> None:
    """The reference site (Modbus TCP), and the rural clinic on an RS-485 line (pyserial
    on a socat pty: termios, exclusive locks)."""
    with tempfile.TemporaryDirectory(prefix="resilience-syscalls-") as work:
        tmp_path = Path(work)
        if kind == "tcp":
            await _trace_and_check(tmp_path, SITE_FILE.read_text(encoding="utf-8"), {})
            return
        async with socat_pair(tmp_path, "rs485") as (line_ctl, line_sim):
            for end in (line_ctl, line_sim):
                os.chmod(os.path.realpath(end), 0o666)  # the pty, for the unprivileged trace
            # a pty cannot keep parity: tcsetattr with PARENB fails there (EINVAL), so the
            # line runs 8N1 here; the syscalls are the same
            text = (
                RURAL_RTU.read_text(encoding="utf-8")
                .replace("/dev/ttyUSB0", line_ctl)
                .replace('parity = "E"', 'parity = "N"')
            )
            await _trace_and_check(tmp_path, text, {line_ctl: line_sim})


async def _trace_and_check(tmp_path: Path, site_text: str, links: dict[str, str]) -> None:
    config = parse_site(tomllib.loads(site_text), "site.toml")
    store = tmp_path / "site.sqlite"
    async with SimSite(config, bind_free_ports=True, serial_links=links) as sim:
        api_port = free_port()
        ocpp_port = free_port() if config.ocpp_stations else None
        site = tmp_path / "site.toml"
        cert_pem, key_pem = make_self_signed(
            [], [ipaddress.ip_address("127.0.0.1")], datetime.datetime.now(datetime.UTC)
        )
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        site.write_text(
            site_file_text(
                sim.ports,
                store_path=str(store),
                api_port=api_port,
                # strace stops the process at every syscall: slower cycles (the timeouts
                # are the site file's, each at least its device family's)
                values={
                    "site": {"cycle_period_s": "0.3" if links else "0.1"},
                    "grid": {"return_to_service_s": "2.0"},
                },
                device_values={},
                base=site_text,
                ocpp_port=ocpp_port,
                api_tls=(str(cert), str(key)),
            ),
            encoding="utf-8",
        )
        token = TokenStore(store).create("syscalls", "viewer", by="test")
        prefix = _as_service_user(tmp_path)
        summaries = {"check-config": tmp_path / "check.strace", "run": tmp_path / "run.strace"}
        check = await asyncio.create_subprocess_exec(
            *prefix, "strace", "-f", "-qq", "-c", "-o", str(summaries["check-config"]),
            str(RESILIENCE), "check-config", str(site),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await check.communicate()
        assert check.returncode == 0, out.decode()

        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmp_path / "notify"))
        os.chmod(tmp_path / "notify", 0o777)
        notify.setblocking(False)
        messages: list[str] = []
        ready = asyncio.Event()
        reader = asyncio.create_task(_notify_reader(notify, messages, ready))
        environ = {
            **os.environ,
            "NOTIFY_SOCKET": str(tmp_path / "notify"),
            "WATCHDOG_USEC": "10000000",
            "PYTHONUNBUFFERED": "1",
        }
        log = (tmp_path / "run.log").open("wb")
        tracer = await asyncio.create_subprocess_exec(
            *prefix, "strace", "-f", "-qq", "-c", "-o", str(summaries["run"]),
            str(RESILIENCE), "run", "--config", str(site),
            env=environ, stdout=log, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # strace and the traced controller: one group to kill
        )  # fmt: skip
        if ocpp_port is not None:
            # the site's OCPP stations connect (and retry until the controller listens)
            await sim.start_stations(f"ws://127.0.0.1:{ocpp_port}/ocpp", ocpp_passwords())
        try:
            await asyncio.wait_for(ready.wait(), 60)
            trust = ssl.create_default_context(cafile=str(cert))
            url = f"https://127.0.0.1:{api_port}"
            async with httpx.AsyncClient(base_url=url, verify=trust) as client:
                headers = {"Authorization": f"Bearer {token}"}
                for path in ("/", "/api/v1/status", "/metrics"):
                    response = await client.get(path, headers=headers, timeout=30)
                    assert response.status_code == 200, (path, response.text)
            try:
                seen = await exercise(sim.plant, island_timeout_s=60, reconnect_timeout_s=120)
            except AssertionError as exc:
                log.flush()
                tail = (tmp_path / "run.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{exc}; the controller's log:\n{tail}") from None
            assert not sim.plant.violations, sim.plant.violations
            assert seen.islanded_after_s is not None
            (controller,) = _children(tracer.pid)
            os.kill(controller, signal.SIGTERM)
            assert await asyncio.wait_for(tracer.wait(), 30) == 0
        finally:
            # a killed strace leaves its tracee running: the whole group goes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(tracer.pid, signal.SIGKILL)
            if tracer.returncode is None:
                await tracer.wait()
            reader.cancel()
            notify.close()
            log.close()
        assert "WATCHDOG=1" in messages and "STOPPING=1" in messages, messages

    traced: dict[str, int] = {}
    for summary in summaries.values():
        for name, calls in traced_syscalls(summary.read_text()).items():
            traced[name] = traced.get(name, 0) + calls
    assert {"read", "sendto", "connect"} <= traced.keys(), traced  # the trace is real
    missing = missing_syscalls(UNIT, traced)
    assert missing == {"x86_64": [], "arm64": []}, (
        f"the unit's SystemCallFilter= denies the controller {missing}"
        f" (traced: {sorted(traced)}); log: {(tmp_path / 'run.log').read_text()[-3000:]}"
    )
