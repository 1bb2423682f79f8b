"""The systemd unit's seccomp filter, as systemd computes it, and the syscalls a process made.

`unit_allowed_syscalls` reads the unit's `SystemCallFilter=` lines in order, the way
systemd.exec(5) says they combine: the first line sets allow-list (or deny-list)
mode, each later line adds (or with "~" removes) its syscalls, and groups
("@system-service") are expanded by `systemd-analyze syscall-filter`, the same table
PID 1 uses. `traced_syscalls` parses `strace -c` output. A test compares the two.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

# systemd.exec(5): in allow-list mode these are always permitted.
ALWAYS_ALLOWED = frozenset(
    {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"}
)

# x86_64 syscalls that arm64 (and other new ABIs) do not have, and what the same C
# library call becomes there. The unit must allow both, so a filter checked on
# x86_64 also holds on an arm64 gateway (the Raspberry Pi class).
ARM64_EQUIVALENTS: dict[str, tuple[str, ...]] = {
    "open": ("openat",),
    "stat": ("newfstatat", "statx"),
    "lstat": ("newfstatat", "statx"),
    "fstat": ("fstat",),
    "access": ("faccessat", "faccessat2"),
    "readlink": ("readlinkat",),
    "unlink": ("unlinkat",),
    "rename": ("renameat", "renameat2"),
    "mkdir": ("mkdirat",),
    "rmdir": ("unlinkat",),
    "pipe": ("pipe2",),
    "dup2": ("dup3",),
    "poll": ("ppoll",),
    "select": ("pselect6",),
    "epoll_wait": ("epoll_pwait",),
    "epoll_create": ("epoll_create1",),
    "getdents": ("getdents64",),
    "fork": ("clone",),
    "vfork": ("clone",),
    "chmod": ("fchmodat",),
    "chown": ("fchownat",),
    "alarm": ("setitimer",),
    "time": ("clock_gettime",),
    "arch_prctl": (),  # x86 only: the C library sets up thread-local storage
    "eventfd": ("eventfd2",),
    "signalfd": ("signalfd4",),
    "inotify_init": ("inotify_init1",),
    "getpgrp": ("getpgid",),
    "link": ("linkat",),
    "symlink": ("symlinkat",),
    "creat": ("openat",),
    "utimes": ("utimensat",),
}

_FILTER_LINE = re.compile(r"^\s*SystemCallFilter\s*=\s*(.*?)\s*$")


@functools.cache
def expand(name: str) -> frozenset[str]:
    """The syscalls of `name`: a group ("@resources", nested groups expanded) or a syscall."""
    if not name.startswith("@"):
        return frozenset({name})
    listing = subprocess.run(
        ["systemd-analyze", "--no-pager", "syscall-filter", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        names |= expand(entry)
    if not names:
        raise ValueError(f"systemd-analyze knows no syscall group {name}")
    return frozenset(names)


def filter_lines(unit_text: str) -> list[str]:
    """The unit's SystemCallFilter= values, in order (comments and other keys skipped)."""
    lines = []
    for raw in unit_text.splitlines():
        match = _FILTER_LINE.match(raw)
        if match and not raw.lstrip().startswith(("#", ";")):
            lines.append(match.group(1))
    return lines


def unit_allowed_syscalls(unit_text: str) -> frozenset[str]:
    """Every syscall the unit's filter lets through (allow-list units only)."""
    values = filter_lines(unit_text)
    if not values:
        raise ValueError("the unit has no SystemCallFilter=")
    if values[0].startswith("~"):
        raise ValueError(
            "the unit's first SystemCallFilter= is a deny list; expected an allow list"
        )
    allowed: set[str] = set(ALWAYS_ALLOWED)
    for value in values:
        remove = value.startswith("~")
        names: set[str] = set()
        for item in value.removeprefix("~").split():
            names |= expand(item)
        if remove:
            allowed -= names
        else:
            allowed |= names
    return frozenset(allowed)


def traced_syscalls(strace_summary: str) -> dict[str, int]:
    """syscall -> calls, from `strace -c` output (one table, or one per process with -f)."""
    calls: dict[str, int] = {}
    for line in strace_summary.splitlines():
        parts = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(parts) < 5 or parts[-1] == "total" or not parts[0][0].isdigit():
            continue
        try:
            count = int(parts[3])
        except ValueError:
            continue
        calls[parts[-1]] = calls.get(parts[-1], 0) + count
    return calls


def missing_syscalls(unit: Path, traced: dict[str, int]) -> dict[str, list[str]]:
    """What the unit would kill the process for: {"x86_64": [...], "arm64": [...]}."""
    allowed = unit_allowed_syscalls(unit.read_text(encoding="utf-8"))
    x86 = sorted(name for name in traced if name not in allowed)
    arm = sorted(
        {
            equivalent
            for name in traced
            for equivalent in ARM64_EQUIVALENTS.get(name, (name,))
            if equivalent not in allowed
        }
    )
    return {"x86_64": x86, "arm64": arm}
