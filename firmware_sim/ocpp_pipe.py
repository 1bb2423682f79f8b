"""An in-memory OCPP-J link: two ends of a WebSocket, without sockets, for drills.

`InMemoryPipe.pair()` gives two connected ends with what the `ocpp` library's
`ChargePoint` needs of a connection (`async recv() -> str`, `async send(str)`,
`async close()`) plus `subprotocol`, as a `websockets` connection has. Closing either
end makes both ends' `recv()` and `send()` raise `websockets.exceptions.ConnectionClosedOK`,
so a ChargePoint's `start()` loop ends as it does on a closed WebSocket.

No time passes here: a message is in the peer's queue the moment it is sent, and the
drill's virtual clock decides everything else. `settle()` lets both sides' tasks run
until nothing is left in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close

__all__ = ["InMemoryPipe", "settle"]

_CLOSED = object()


class InMemoryPipe:
    """One end of an in-memory WebSocket."""

    def __init__(self, name: str, subprotocol: str | None = None) -> None:
        self.name = name
        self.subprotocol = subprotocol
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._peer: InMemoryPipe | None = None
        self.closed = False
        self.sent = 0

    @classmethod
    def pair(
        cls, subprotocol: str | None = "ocpp2.1", names: tuple[str, str] = ("station", "csms")
    ) -> tuple[InMemoryPipe, InMemoryPipe]:
        a, b = cls(names[0], subprotocol), cls(names[1], subprotocol)
        a._peer, b._peer = b, a
        return a, b

    def _closed_error(self) -> ConnectionClosedOK:
        close = Close(1000, f"{self.name}: in-memory link closed")
        return ConnectionClosedOK(close, close, rcvd_then_sent=True)

    async def recv(self) -> str:
        if self.closed and self._inbox.empty():
            raise self._closed_error()
        item = await self._inbox.get()
        if item is _CLOSED:
            self._inbox.put_nowait(_CLOSED)  # every later recv fails too
            raise self._closed_error()
        assert isinstance(item, str)
        return item

    async def send(self, message: str) -> None:
        if self.closed or self._peer is None:
            raise self._closed_error()
        self.sent += 1
        self._peer._inbox.put_nowait(message)

    async def close(self) -> None:
        self.close_nowait()

    def close_nowait(self) -> None:
        """Close both ends at once (what cutting the link does)."""
        for end in (self, self._peer):
            if end is not None and not end.closed:
                end.closed = True
                end._inbox.put_nowait(_CLOSED)

    @property
    def idle(self) -> bool:
        """Nothing waiting to be read at this end."""
        return self._inbox.empty() or self.closed


async def settle(
    pipes: Iterable[InMemoryPipe],
    busy: Iterable[Callable[[], bool]] = (),
    *,
    rounds: int = 3,
    timeout_s: float = 2.0,
) -> None:
    """Let both sides' tasks run until every pipe is idle and no `busy()` is true for
    `rounds` passes in a row: everything sent has been read, handled and answered.

    The `ocpp` library validates each message against its JSON schema in a thread
    (`ocpp.messages.ASYNC_VALIDATION`), so a message can be in flight with every pipe
    empty: `busy` names who may still be working (`SimStation.busy` covers the station's
    calls until answered and its handling of the central system's). Gives up silently
    after `timeout_s` of real time (a side that never answers is the drill's to judge)."""
    ends = list(pipes)
    checks = list(busy)
    await asyncio.sleep(0)  # what was just started or woken runs up to its first wait
    if not any(check() for check in checks) and all(p.idle for p in ends):
        return  # nothing sent, queued or in hand: no more passes of the loop (most steps)
    deadline = time.monotonic() + timeout_s
    quiet = 0
    spins = 0
    while quiet < rounds:
        working = any(check() for check in checks)
        # Yield only, while the work is in this loop's tasks; once it has gone on for a
        # while, something is in a thread (threaded schema validation): wait a little.
        spins += 1
        await asyncio.sleep(0 if spins < 200 else 0.0002)
        if working or not all(p.idle for p in ends):
            quiet = 0
        else:
            quiet += 1
        if spins % 64 == 0 and time.monotonic() > deadline:
            return
