"""A real MQTT broker (tests, bench/eoc.py, `make demo-city`): mosquitto, a config of our own.

What the city layer's tests need from a broker is what a city's broker does: accounts
(a password file made by `mosquitto_passwd`), ACLs (a site writes only its own
``shelter/v1/<district>/<site>/#`` topics and reads only the EOC's birth, its own
acknowledgements and its own and its district's commands under ``eoc/v1/``; only the EOC's
account writes ``eoc/#``), persistence on disk (in the test's tmp_path), optionally TLS
with a certificate the test made, and an outage: `kill()` is SIGKILL (nothing saved
since the last autosave, as when the machine loses power) and `start()` brings it back
on the same port.

mosquitto cannot listen on port 0 and tell us the port, so a free port is found by
binding a socket to port 0 and closing it; if another process takes it in between,
mosquitto exits at once ("Address already in use") and `start` tries another port.
Readiness is the listener accepting a TCP connection, polled every 20 ms.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from resilience.tls import make_self_signed

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

EOC_USER = "eoc"
EOC_PASSWORD = "eoc-secret"


@dataclass(frozen=True)
class SiteAccount:
    """A site's broker account: it may write only its own topics."""

    district: str
    site: str
    password: str = "site-secret"

    @property
    def username(self) -> str:
        return f"{self.district}.{self.site}"


@dataclass
class Broker:
    """One mosquitto process with its directory, accounts and port (see the module doc)."""

    directory: Path
    sites: list[SiteAccount]
    tls: bool = False
    port: int = 0
    ca_file: Path | None = None  # the certificate a client trusts, when tls
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(exist_ok=True)
        self._write_passwords()
        self._write_acl()
        if self.tls:
            cert, key = make_self_signed(
                ["localhost"],
                [ipaddress.ip_address("127.0.0.1")],
                datetime.datetime.now(datetime.UTC),
            )
            (self.directory / "broker.crt").write_bytes(cert)
            (self.directory / "broker.key").write_bytes(key)
            self.ca_file = self.directory / "broker.crt"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def _write_passwords(self) -> None:
        """One `mosquitto_passwd -U` over a plain file: it hashes every line in place (one
        process for hundreds of sites, as bench/eoc.py needs)."""
        path = self.directory / "passwords"
        accounts = [(EOC_USER, EOC_PASSWORD)] + [(s.username, s.password) for s in self.sites]
        path.write_text("".join(f"{user}:{password}\n" for user, password in accounts))
        path.chmod(0o600)
        subprocess.run(
            [MOSQUITTO_PASSWD, "-U", str(path)], check=True, capture_output=True, timeout=60
        )

    def _write_acl(self) -> None:
        lines = [f"user {EOC_USER}", "topic readwrite eoc/#", "topic read shelter/#", ""]
        for account in self.sites:
            lines += [
                f"user {account.username}",
                f"topic readwrite shelter/v1/{account.district}/{account.site}/#",
                "topic read eoc/v1/status",  # the EOC's birth
                f"topic read eoc/v1/ack/{account.district}/{account.site}",
                f"topic read eoc/v1/cmd/{account.district}/{account.site}",
                f"topic read eoc/v1/cmd/{account.district}/_all",  # its district's commands
                "",
            ]
        (self.directory / "acl").write_text("\n".join(lines))

    def _write_config(self) -> Path:
        d = self.directory
        lines = [
            f"user {pwd.getpwuid(os.getuid()).pw_name}",  # root: do not switch to 'mosquitto'
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {d / 'passwords'}",
            f"acl_file {d / 'acl'}",
            "persistence true",
            f"persistence_location {d / 'data'}/",
            "autosave_interval 1800",  # a SIGKILL loses what came since the last save
            # mosquitto drops QoS 1 messages beyond 1000 queued for one client: after an
            # outage hundreds of sites replay at once, more than the EOC takes in a moment.
            # (The outbox would resend them; a city's broker for an EOC sets this too.)
            "max_queued_messages 100000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.tls:
            lines += [f"certfile {d / 'broker.crt'}", f"keyfile {d / 'broker.key'}"]
        path = d / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout_s: float = 10.0) -> None:
        """Start (or restart, on the same port) and return once it accepts connections."""
        assert self.process is None, "broker already running"
        keep_port = self.port != 0
        for _attempt in range(5):
            if not keep_port:
                self.port = _free_port()
            config = self._write_config()
            log = (self.directory / "mosquitto.log").open("ab")
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C for the demo is ours to handle: we stop it
            )
            log.close()
            if self._wait_ready(timeout_s):
                return
            self.kill()
            if keep_port:
                break
        raise RuntimeError(f"mosquitto did not start; see {self.directory / 'mosquitto.log'}")

    def _wait_ready(self, timeout_s: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # e.g. the port was taken in between
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return True
            time.sleep(0.02)
        return False

    def kill(self) -> None:
        """SIGKILL: the outage. `start()` brings it back on the same port."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file), then SIGKILL if it lingers."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
