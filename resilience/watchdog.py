"""systemd notification and watchdog: READY=1 once the field has been read, then WATCHDOG=1
from the control cycle only while it is healthy.

systemd (``Type=notify``, ``WatchdogSec=``; see deploy/resilience.service) restarts
the service when the pings stop. They stop when the control loop stops cycling
(hung, deadlocked, busy elsewhere), when its cycles run late, or when the store
cannot write: each is a controller that can no longer be trusted to act, or to
record what it did.

The protocol is one unix datagram per message to the socket named in
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace), as
sd_notify(3) describes; it is a few lines, so no dependency. Without
``$NOTIFY_SOCKET`` (not under systemd) everything here does nothing.
``$WATCHDOG_USEC`` gives the watchdog period; we ping at half of it, as
sd_watchdog_enabled(3) advises. Times in seconds [s].
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resilience.cycle import Controller, SiteStatus

log = logging.getLogger("resilience.watchdog")

__all__ = ["Notifier", "Watchdog"]


class Notifier:
    """Sends sd_notify messages to `socket_path` (None: a no-op notifier)."""

    def __init__(self, socket_path: str | None) -> None:
        self.socket_path = socket_path
        self.sent: list[str] = []  # every message sent, for tests and the log
        self._failed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def notify(self, message: str) -> bool:
        """Send one message ("READY=1", "WATCHDOG=1", "STATUS=..."); False if it failed."""
        if self.socket_path is None:
            return False
        address = self.socket_path
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(address)
                sock.sendall(message.encode("utf-8"))
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.error("cannot notify systemd at %s: %s", self.socket_path, exc)
            return False
        if self._failed:
            self._failed = False
            log.info("notifying systemd at %s again", self.socket_path)
        self.sent.append(message)
        return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Half the watchdog period systemd asked for (``$WATCHDOG_USEC``), or None."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        period = int(usec) / 1e6
    except ValueError:
        return None
    return period / 2 if period > 0 else None


class Watchdog:
    """A `Controller.on_status` listener that tells systemd the controller is alive and well.

    The first cycle after the field has been read (every device answered, or was
    declared unavailable after its start-up grace: `Controller.field_read`) sends
    ``READY=1``; before that systemd keeps the unit "activating". Then each cycle
    sends ``WATCHDOG=1`` at most every `interval_s`, and only when

    - the cycle is on time: it started within `late_s` of the one before (default
      five cycle periods, at least 0.5 s), and
    - the store is healthy (its last write committed).

    A mode change also sends ``STATUS=<mode>`` (shown by ``systemctl status``).
    `clock` is monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        controller: Controller,
        notifier: Notifier,
        *,
        interval_s: float | None,
        late_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.controller = controller
        self.notifier = notifier
        self.interval_s = interval_s
        period = controller.config.site.cycle_period_s
        self.late_s = late_s if late_s is not None else max(5 * period, 0.5)
        self._clock = clock
        self.ready = False
        self.pings = 0
        self._last_ping: float | None = None
        self._last_mode: str | None = None
        self._unhealthy_reason: str | None = None

    @classmethod
    def from_environment(
        cls, controller: Controller, environ: Mapping[str, str] | None = None
    ) -> Watchdog:
        return cls(
            controller,
            Notifier.from_environment(environ),
            interval_s=watchdog_interval_s(environ),
        )

    def healthy(self) -> str | None:
        """Why the controller is not healthy now, or None when it is."""
        starts = self.controller.stats.starts
        if len(starts) >= 2 and starts[-1] - starts[-2] > self.late_s:
            return f"cycle late: {starts[-1] - starts[-2]:.2f} s between cycle starts"
        if not self.controller.store.healthy:
            return "store unhealthy: writes failing"
        return None

    def on_status(self, status: SiteStatus) -> None:
        if not self.notifier.enabled:
            return
        if not self.ready:
            field = self.controller.field_read()
            if field is None:
                return  # not READY, and no pings, before the field is read
            self.ready = True
            answering, silent = field
            log.info(
                "field read: %d devices answering, %d silent; mode %s; READY=1 to systemd",
                answering, silent, status.mode.value,
            )  # fmt: skip
            self.notifier.notify("READY=1")
        mode = status.mode.value
        if mode != self._last_mode:
            self._last_mode = mode
            self.notifier.notify(f"STATUS=mode {mode}")
        if self.interval_s is None:
            return
        reason = self.healthy()
        if reason is not None:
            if self._unhealthy_reason is None:
                log.error("not pinging the systemd watchdog: %s", reason)
            self._unhealthy_reason = reason
            return
        if self._unhealthy_reason is not None:
            log.warning("pinging the systemd watchdog again")
            self._unhealthy_reason = None
        now = self._clock()
        due = self._last_ping is None or now - self._last_ping >= self.interval_s
        if due and self.notifier.notify("WATCHDOG=1"):
            self._last_ping = now
            self.pings += 1

    def stopping(self) -> None:
        """Tell systemd a stop is under way (a clean shutdown is not a watchdog failure)."""
        with contextlib.suppress(Exception):
            self.notifier.notify("STOPPING=1")
