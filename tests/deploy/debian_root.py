"""A minimal Debian 12 root, booted with systemd as PID 1 of a PID namespace: a gateway.

`debian_root_tarball` builds the root once with debootstrap from the Debian archive
and keeps it as a tarball in a cache directory (`$RESILIENCE_DEBIAN_CACHE`, default
/var/cache/resilience-test), so later runs only unpack it. `BootedRoot` unpacks it,
gives it the host's DNS and TLS trust (the gateway sits on the same network as the
host), boots it with

    unshare --fork --pid --mount --uts --mount-proc=ROOT/proc \
        chroot ROOT /lib/systemd/systemd --system

and runs commands inside with nsenter. The root shares the host's network
namespace, so the simulated site on the host's loopback is the gateway's field.
systemd-nspawn would be the usual tool, but it needs a system bus this machine
does not have. Stopping it kills the namespace's PID 1, which takes every process
in it along, and then deletes the root.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# systemd to boot; ca-certificates so the host's TLS trust can be added. Python is
# left out on purpose: install.sh installs python3 and python3-venv as on a new gateway.
INCLUDE = ("systemd", "systemd-sysv", "ca-certificates")
# units a container has no use for: gettys would take the host's consoles
MASK = (
    "getty@.service",
    "getty-static.service",
    "console-getty.service",
    "serial-getty@.service",
    "e2scrub_reap.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "systemd-timesyncd.service",
)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cache_dir() -> Path:
    return Path(os.environ.get("RESILIENCE_DEBIAN_CACHE", "/var/cache/resilience-test"))


def debian_root_tarball(log: Path) -> Path:
    """The cached tarball of a debootstrapped root; built on the first call (about a minute)."""
    key = hashlib.sha256(f"{SUITE} minbase {MIRROR} {','.join(INCLUDE)}".encode()).hexdigest()
    tarball = cache_dir() / f"debian-{SUITE}-minbase-{key[:12]}.tar"
    if tarball.exists():
        return tarball
    cache_dir().mkdir(parents=True, exist_ok=True)
    build = cache_dir() / f"build-{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)
    try:
        with log.open("ab") as out:
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}",
                 SUITE, str(build), MIRROR],
                stdout=out, stderr=subprocess.STDOUT, check=True, timeout=900,
            )  # fmt: skip
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(build), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return tarball


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


class BootedRoot:
    """A Debian root under `path`, booted; `run` executes a command inside it."""

    def __init__(self, path: Path, tarball: Path, console: Path) -> None:
        self.path = path
        self.tarball = tarball
        self.console = console
        self._unshare: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None  # systemd, as the host sees it

    # ------------------------------------------------------------------ lifecycle
    def prepare(self) -> None:
        self.path.mkdir(parents=True)
        subprocess.run(
            ["tar", "-C", str(self.path), "--numeric-owner", "-xf", str(self.tarball)], check=True
        )
        for name in ("resolv.conf", "hosts"):
            shutil.copyfile(f"/etc/{name}", self.path / "etc" / name)
        local_ca = Path("/usr/local/share/ca-certificates")
        if local_ca.is_dir():
            for cert in local_ca.glob("*.crt"):
                shutil.copy(cert, self.path / "usr/local/share/ca-certificates" / cert.name)
        subprocess.run(
            ["chroot", str(self.path), "update-ca-certificates"],
            env={"PATH": PATH}, check=True, capture_output=True,
        )  # fmt: skip
        (self.path / "etc/hostname").write_text("gateway\n")
        system = self.path / "etc/systemd/system"
        for unit in MASK:
            link = system / unit
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")

    async def boot(self, timeout_s: float = 60.0) -> None:
        out = self.console.open("ab")
        self._unshare = subprocess.Popen(
            ["unshare", "--fork", "--pid", "--mount", "--uts",
             f"--mount-proc={self.path}/proc",
             "chroot", str(self.path), "/lib/systemd/systemd", "--system"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        out.close()
        deadline = time.monotonic() + timeout_s
        while self.pid is None:
            if self._unshare.poll() is not None:
                raise RuntimeError(f"unshare exited {self._unshare.returncode}: see {self.console}")
            children = _children(self._unshare.pid)
            if children:
                self.pid = children[0]
            elif time.monotonic() > deadline:
                raise TimeoutError("systemd did not start")
            else:
                await asyncio.sleep(0.05)
        state = ""
        while state not in ("running", "degraded"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"systemd in the root is {state!r} after {timeout_s:.0f} s")
            await asyncio.sleep(0.2)
            state = (await self.run(["systemctl", "is-system-running"], check=False)).stdout.strip()

    async def bind(self, host_dir: Path, inside: str) -> None:
        """Bind-mount a host directory into the root (in its own mount namespace only)."""
        assert self.pid is not None
        target = self.path / inside.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        proc = await asyncio.create_subprocess_exec(
            "nsenter", "-t", str(self.pid), "-m", "mount", "--bind", str(host_dir), str(target)
        )
        assert await proc.wait() == 0, f"cannot bind {host_dir} to {target}"

    def stop(self) -> None:
        """Kill the namespace (its PID 1 first: the kernel kills the rest) and delete the root."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, 9)
        if self._unshare is not None:
            try:
                self._unshare.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._unshare.kill()
                self._unshare.wait(timeout=30)
        mounted = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(self.path))
        ]
        if mounted:  # only the namespace had mounts; never delete through a bind mount
            raise RuntimeError(f"still mounted, root not deleted: {mounted}")
        shutil.rmtree(self.path, ignore_errors=True)

    # ------------------------------------------------------------------ inside
    async def run(
        self, argv: list[str], *, check: bool = True, timeout_s: float = 600.0
    ) -> subprocess.CompletedProcess[str]:
        """`argv` inside the root (its namespaces, its root directory) as root, with a clean env."""
        assert self.pid is not None
        proc = await asyncio.create_subprocess_exec(
            "nsenter", "-t", str(self.pid), "-m", "-p", "-u", "-r", "-w",
            "env", "-i", f"PATH={PATH}", "HOME=/root", "LANG=C.UTF-8", *argv,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        result = subprocess.CompletedProcess(argv, proc.returncode or 0, out.decode(), err.decode())
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\n"
                f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
            )
        return result

    async def show(self, unit: str, *props: str) -> dict[str, str]:
        """`systemctl show` of `props`, as a dict."""
        result = await self.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)])
        return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
