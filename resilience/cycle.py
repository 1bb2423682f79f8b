"""The control loop: read every device, freeze a Snapshot, decide, write, publish.

One asyncio task runs `cycle_once` at the site's fixed period. Reads run
concurrently, each bounded by its device's timeout. A device that fails keeps
its last reading for a short grace (`stale_after_s`, a few cycles) so one lost
packet does not flip the site's mode; past that it is *unavailable* and the
decisions treat it as unknown, never as its last value. A failure is logged and
alarmed once, and its recovery once.

Only the write phase talks to devices: it compares the decision's `Outputs`
with what each device reports and writes the difference (plus a periodic
re-assertion), so a 20 ms cycle does not flood the buses.

Every transition, dispatch note, alarm and operator command goes to the store;
an operator command is answered only after its audit row is committed.
Times: `clock` is monotonic seconds (decisions), `wall` is Unix seconds (store).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from resilience.config import Device, SiteConfig
from resilience.config import Load as LoadConfig
from resilience.devices import (
    BidirectionalCharger,
    Breaker,
    ChargerReading,
    InverterReading,
    LoadRelays,
    Meter,
    OutletReading,
    PanelReading,
    PVInverter,
    SilentDrawBound,
    V2LOutlet,
)
from resilience.model import (
    BreakerReading,
    ChargerMode,
    ChargerState,
    DeviceHealth,
    GridReading,
    LoadState,
    Mode,
    OutletState,
    PVState,
    Snapshot,
    Tier,
    V2LState,
    VehicleState,
)
from resilience.modes import Memory, SiteModes, write_failed_alarm
from resilience.occupancy import Occupancy, describe
from resilience.outputs import Decision, Outputs
from resilience.overrides import OverrideError, Overrides, VehicleView
from resilience.policies.leaving import cap_fraction
from resilience.poll_schedule import SLOW_GRACE_READS, poll_period_s, read_every_cycle
from resilience.shelter import MAX_PEOPLE, Headcount
from resilience.shelter import STATE_KEY as HEADCOUNT_KEY
from resilience.steady import may_keep_decision
from resilience.store import Store
from resilience.supervision import Supervisor
from resilience.transport.errors import DeviceTimeout
from resilience.write_plan import CANCELLING, Kind, Phase, Write, panel_channels, plan_writes

log = logging.getLogger("resilience.cycle")

GRACE_READS = 5  # a device is unavailable only after this many missed reads in a row ...
# ... and `DeviceSlot.stale_after_s` without an answer (both must have passed)
STARTUP_GRACE_S = 2.0  # a device not yet heard from is alarmed only after this long
STARTS_KEPT = 2048  # cycle start times kept (CycleStats.starts)
READ_WAIT_FRACTION = 0.5
"""The share of the cycle period a cycle waits for its reads' replies; a later reply is
used by a later cycle."""
WRITE_WAIT_FRACTION = 0.3
"""The share of the period it then waits for its commands' answers; the rest go on."""
WRITE_TIMEOUT_GRACE_S = 0.5
"""[s] how long a device's commands may go unanswered (each sent again the next cycle)
before `write_failed` is raised; a refused command is alarmed at once."""


def _slot(config: SiteConfig, name: str, driver: Any, now: float) -> DeviceSlot:
    """A device's slot: its own period, and how long a silence may last at each pace."""
    period = config.site.cycle_period_s
    poll = poll_period_s(config, name)
    device = config.devices.get(name)
    timeout = device.timeout_s if device is not None else period
    fast_stale = max(5 * period, 0.1)
    return DeviceSlot(
        name,
        driver,
        stale_after_s=fast_stale,
        poll_s=poll,
        slow_stale_after_s=max(fast_stale, SLOW_GRACE_READS * poll + timeout),
        since_s=now,
    )


@dataclass
class DeviceSlot:
    """One device: its driver, its schedule, its last good reading and its health.

    `stale_after_s` and `grace_reads` are the device's patience while it is read every
    cycle; `slow_stale_after_s` and `SLOW_GRACE_READS` while it is read at its own
    period (`poll_s`): a device read once a second is not unavailable after 0.1 s.
    """

    device_id: str
    driver: Any
    stale_after_s: float
    poll_s: float = 0.0
    slow_stale_after_s: float = 0.0
    reading: Any = None
    last_ok_s: float | None = None  # [s] when its last good reply arrived
    read_at_s: float | None = None  # [s] when that reading was asked for (its age)
    available: bool = False
    since_s: float = 0.0
    error: str = ""
    failures: int = 0
    fast: bool = True  # read every cycle in the site's present mode
    next_due_s: float = -math.inf  # [s] when it is next read, at its own period
    inflight: asyncio.Future[Any] | None = None  # a read whose reply is still awaited
    asked_s: float = 0.0  # [s] when that read was sent
    writing: int = 0  # commands to it still awaiting their answer
    # [s] when the first of its commands that went unanswered since its last taken one
    # was sent (None: the last one was taken); see WRITE_TIMEOUT_GRACE_S.
    unanswered_since_s: float | None = None
    # A charger: the most [W] any command sent to it since its reading was asked for tells
    # it to charge, and when the last was sent. Its reading cannot show them yet, and a
    # charger that falls silent now holds one of them (see `_vehicle_state`).
    sent_charge_w: float = 0.0
    sent_s: float = -math.inf


@dataclass(frozen=True)
class CommandResult:
    command: str
    outcome: str  # "accepted", "refused" or "error"
    detail: str


@dataclass
class _Pending:
    command: str
    args: dict[str, Any]
    actor: str
    role: str
    future: asyncio.Future[CommandResult]


@dataclass
class CycleStats:
    cycles: int = 0
    overruns: int = 0
    reactions: int = 0  # cycles run early on a grid meter's or breaker's late reply
    kept: int = 0  # cycles on a steady grid that kept the last decision (`resilience.steady`)
    last_duration_s: float = 0.0
    # the recent cycle start times, for jitter (/metrics takes the last 501, the watchdog
    # the last 2): a bounded ring, so that it costs the same memory after a year as now
    starts: deque[float] = field(default_factory=lambda: deque(maxlen=STARTS_KEPT))

    def record_start(self, t: float) -> None:
        self.starts.append(t)


@dataclass(frozen=True)
class SiteStatus:
    """What the controller publishes each cycle for the API, the UI and tests."""

    mode: Mode
    mode_since_s: float
    mode_since_wall: float
    snapshot: Snapshot
    outputs: Outputs
    alarms: Mapping[str, str]
    cycle: int
    # The endurance policy per supply circuit ("bus", outlet ids): `modes.CircuitEnergy`.
    energy: Mapping[str, Any] = field(default_factory=dict)


class Controller:
    """Runs the site: owns the drivers, the decision core and the store writer."""

    def __init__(
        self,
        config: SiteConfig,
        drivers: Mapping[str, Any],
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.wall = wall
        now = clock()
        self.slots = {name: _slot(config, name, driver, now) for name, driver in drivers.items()}
        self._pace: tuple[Mode, bool] | None = None  # what `slot.fast` was last set for
        self._writing: set[asyncio.Future[None]] = set()  # write plans still under way
        # Grid-loss detection's devices, and the sign that one's reply came after its
        # cycle's read wait: `run` then cycles at once, asking nothing new, so that a slow
        # reply showing a dead grid does not cost a whole extra period.
        self._watched = frozenset((config.grid.meter, config.grid.pcc_breaker))
        self._late = False
        self._waker: asyncio.Future[None] | None = None  # what `_idle` awaits, if it does
        self._reading_replies = False  # in a read phase: a reply now is this cycle's
        self.overrides = Overrides.from_state(store.get_state("overrides"), config)
        # the shelter's headcount as an operator last gave it (None: never counted)
        self.headcount = Headcount.from_state(store.get_state(HEADCOUNT_KEY))
        memory = Memory(mode_since_s=now)
        memory.locked_off = self.overrides.locked_off  # one set, shared with the mode machine
        memory.kept_on = self.overrides.kept_on  # likewise
        self.modes = SiteModes(config, now_s=now, memory=memory)
        self.mode_since_wall = wall()
        self.stats = CycleStats()
        self.status: SiteStatus | None = None
        self._inbox: asyncio.Queue[_Pending] = asyncio.Queue()
        self._written: dict[str, tuple[Any, float]] = {}
        # snapshot parts by device or load id, with the inputs they were built from
        self._built: dict[str, tuple[tuple[Any, ...], Any]] = {}
        self._tuples: dict[str, tuple[Any, ...]] = {}
        self._health_key: tuple[Any, ...] | None = None
        self._health_tuple: tuple[DeviceHealth, ...] = ()
        self._last_telemetry_s = -math.inf
        self._status_listeners: list[Callable[[SiteStatus], None]] = []
        self._answering: set[asyncio.Future[None]] = set()
        # the site file does not change while running: look its devices up once
        self._chargers = list(config.chargers.items())
        self._panel_channels = panel_channels(config)
        # the last decision on the grid, kept by the cycles that change nothing (`steady`)
        self._decided_s: float | None = None
        self._kept = Decision(Outputs())
        self._field: tuple[Any, ...] = ()
        self._outlets = list(config.outlets.items())
        self._inverters = list(config.pv_inverters.items())
        self._panels = tuple([panel for panel, _ in self._panel_channels])  # site-file order
        # what the loads' states were last built from (`_load_states`)
        self._loads_key: tuple[Any, ...] | None = None
        # alarms for faults that change no mode (clock jump, flicker, unplug, store)
        self.supervisor = Supervisor(
            config, self._alarm_change, wall, store_healthy=lambda: store.healthy
        )
        self.on_status(self.supervisor.on_status)

    # ------------------------------------------------------------------ public
    def on_status(self, listener: Callable[[SiteStatus], None]) -> None:
        self._status_listeners.append(listener)

    async def submit(
        self, command: str, args: Mapping[str, Any] | None = None, *, actor: str, role: str
    ) -> CommandResult:
        """Queue an operator command for the next cycle; answered once audited in SQLite."""
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        await self._inbox.put(_Pending(command, dict(args or {}), actor, role, future))
        return await future

    async def run(self, stop: asyncio.Event) -> None:
        """Run cycles at the fixed period until `stop` is set."""
        period = self.config.site.cycle_period_s
        next_start = self.clock()
        self.store.record_event("controller", "controller started; reading the field", data={})
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: self._wake())  # `_idle` returns at once
        try:
            await self._cycles(stop, period, next_start)
        finally:
            stopping.cancel()
        await self.settle_io()
        self.store.record_event("controller", "controller stopped", data={})

    async def _cycles(self, stop: asyncio.Event, period: float, next_start: float) -> None:
        while not stop.is_set():
            await self.cycle_once()
            next_start += period
            if next_start < self.clock():
                self.stats.overruns += 1
                next_start = self.clock()
            # until the next period: a late reply of the grid meter or the breaker is
            # decided on at once, by a cycle that only takes in what has come
            while await self._idle(stop, next_start - self.clock()):
                self.stats.reactions += 1
                await self.cycle_once(ask=False)

    async def _idle(self, stop: asyncio.Event, delay_s: float) -> bool:
        """Wait up to `delay_s` for `stop` or a watched late reply; True for the late reply.

        One future and one timer, woken by whichever comes first (`_wake`): fewer event
        loop turns than `asyncio.wait_for` (a task, its cancellation), 50 times a second."""
        if stop.is_set() or delay_s <= 0:
            return False
        if not self._late:
            loop = asyncio.get_running_loop()
            self._waker = waker = loop.create_future()
            timer = loop.call_later(delay_s, self._wake)
            try:
                await waker
            finally:
                timer.cancel()
                self._waker = None
        return self._late and not stop.is_set()

    def _wake(self) -> None:
        if self._waker is not None and not self._waker.done():
            self._waker.set_result(None)

    def _late_reply(self, _future: asyncio.Future[Any]) -> None:
        if not self._reading_replies:
            self._late = True
            self._wake()

    async def settle_io(self) -> None:
        """Cancel the reads and writes still awaiting a device (on stop)."""
        pending = [s.inflight for s in self.slots.values() if s.inflight is not None]
        pending.extend(self._writing)
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def cycle_once(self, *, ask: bool = True) -> Decision:
        """One cycle. `ask=False` (a late reply's reaction, see `run`) starts no reads and
        waits for none: it decides on the replies that have come."""
        start = self.clock()
        if ask:
            self.stats.record_start(start)
        period = self.config.site.cycle_period_s
        # Starting (after a restart): nothing is decided on a field half read, so the cycle
        # waits for every reply (each bounded by its device's timeout), as before any action.
        starting = self.modes.mode is Mode.STARTING
        await self._read_all(math.inf if starting else READ_WAIT_FRACTION * period, ask=ask)
        now = self.clock()
        if self._keeps_decision(now):
            self.stats.kept += 1
            self.stats.cycles += 1
            self.stats.last_duration_s = self.clock() - start
            return self._kept
        snap = self.build_snapshot(now)
        await self._process_commands()
        decision = self.modes.step(snap)
        if decision.transitions:
            self._all_due(now)  # a new mode: read the whole field at once
        await self._write(decision.outputs, snap, WRITE_WAIT_FRACTION * period)
        self._record(decision, snap)
        self._decided_s = now
        if self._may_keep_next():
            self._kept = Decision(decision.outputs, energy=decision.energy)
            self._field = self._field_key()
        self.stats.cycles += 1
        self.stats.last_duration_s = self.clock() - start
        return decision

    def _may_keep_next(self) -> bool:
        """Whether a later cycle may keep this one's decision at all: on the grid, unless
        the site file asks for a decision every cycle (else what a keep rests on is not
        worth recording: a drill on an island records it ten thousand times for nothing)."""
        return self.modes.mode is Mode.GRID_CONNECTED and self.config.site.steady_decision_max_s > 0

    def _keeps_decision(self, now: float) -> bool:
        """This cycle keeps the last decision (`resilience.steady`: on a steady grid, read
        every cycle, decided at least every `STEADY_DECISION_MAX_S`)."""
        modes = self.modes
        return may_keep_decision(
            mode=modes.mode,
            memory=modes.memory,
            grid=self.config.grid,
            trip_points=modes.trip_points,
            meter=self._reading(self.config.grid.meter),
            now_s=now,
            decided_s=self._decided_s,
            field_unchanged=lambda: self._field_key() == self._field,
            busy=not self._inbox.empty() or bool(self._writing),
            max_s=self.config.site.steady_decision_max_s,
        )

    def _field_key(self) -> tuple[Any, ...]:
        """What the decision rests on besides the grid meter and the clock: what every other
        device answered, and the operators' overrides (a tier, a car's session and its
        leaving time, changed by a command or by the API directly)."""
        meter = self.config.grid.meter
        overrides = self.overrides
        return (
            tuple([(s.available, s.reading) for s in self.slots.values() if s.device_id != meter]),
            tuple(overrides.occupancy.values()),
            dict(overrides.tiers),
        )

    def _all_due(self, now: float) -> None:
        for slot in self.slots.values():
            slot.next_due_s = now

    # ------------------------------------------------------------------ read phase
    async def _read_all(self, wait_s: float = math.inf, *, ask: bool = True) -> None:
        """Start the reads that are due, then wait up to `wait_s` for the replies of the
        devices read every cycle (`ask=False`: start none and wait for none).

        Due: the devices read every cycle in this mode (`poll_schedule.read_every_cycle`),
        and the others once their own period has passed (or a command to them, or a new
        mode, made them due at once). A device whose read is still in flight is not asked
        again. Each read coroutine is run eagerly up to its first real wait (a request
        sent): all requests go out before any reply is awaited, and a read that needs no
        I/O wait (an in-process transport) completes here, without a task. A reply that
        comes after `wait_s` lands in its slot when it comes, for a later cycle: the cycle
        never waits for the slowest device. Replies are taken into the slots here only, at
        one point of the cycle, so a snapshot and the alarms raised with it agree.
        """
        start = self.clock()
        self._late = False  # whatever came is taken in below
        grid = self.config.grid
        blind = not any(
            slot.available
            for slot in (self.slots.get(grid.meter), self.slots.get(grid.pcc_breaker))
            if slot is not None
        )
        pace = (self.modes.mode, blind)
        if pace != self._pace:
            self._pace = pace
            fast = read_every_cycle(self.config, pace[0], blind=blind)
            for slot in self.slots.values():
                slot.fast = slot.device_id in fast
        waiting: list[tuple[DeviceSlot, asyncio.Future[Any]]] = []
        stepping: list[_Step] = []  # awaited reads, resumed here (see `_step_replies`)
        everything = math.isinf(wait_s)
        early = 0.5 * self.config.site.cycle_period_s
        for slot in self.slots.values():
            if slot.inflight is not None:
                if not slot.inflight.done():
                    waiting.append((slot, slot.inflight))
                    continue
                self._reply(slot, slot.inflight)  # came in since the last cycle
            if not ask or (not slot.fast and start + early < slot.next_due_s):
                continue  # (`early`: read by the cycle nearest its due time, not the next)
            slot.next_due_s = start + slot.poll_s
            coro = slot.driver.read()
            try:
                first = coro.send(None)
            except StopIteration as done:
                self._landed(slot, start, done.value)
            except Exception as exc:
                self._landed(slot, start, exc)
            else:
                slot.asked_s = start
                if (slot.fast or everything) and isinstance(first, asyncio.Future):
                    stepping.append(_Step(slot, coro, first))
                else:
                    self._detach(slot, coro, first)
        # The wait is for the devices read every cycle in this mode (grid-loss detection
        # rests on them); a slower-read device's reply that is not in by then lands when
        # it comes (the next cycle): a slow panel must not hold up the PCC open command.
        # Starting, every reply is awaited (see `cycle_once`).
        futures = [future for slot, future in waiting if slot.fast or everything]
        if (futures or stepping) and ask:
            self._reading_replies = True
            try:
                await self._step_replies(stepping, futures, start + wait_s)
            finally:
                self._reading_replies = False
            for slot, future in waiting:
                if future.done():
                    self._reply(slot, future)

    async def _step_replies(
        self, stepping: list[_Step], futures: list[asyncio.Future[Any]], deadline_s: float
    ) -> None:
        """Carry on the read coroutines in `stepping` by hand until each has landed in its
        slot, and wait for `futures`, until `deadline_s`; a read still waiting then
        carries on in a task of its own (`_detach`) and lands in a later cycle.

        A task per read (as `asyncio.wait` needs) cost a task, its first step and a
        hand-over per reply, for the two reads of every cycle (about 0.05 ms of a 0.7 ms
        read phase on this machine, README "Footprint"). Here a reply wakes this cycle, which
        resumes the coroutine that waits for it at once, as a task would have: a read
        that sends a second request (a device's identity check), or that waited for its
        bus (another unit on the same connection), goes on in the same wait."""
        loop = asyncio.get_running_loop()
        try:
            while stepping or futures:
                remaining = deadline_s - self.clock()
                if remaining <= 0:
                    break
                waker = loop.create_future()

                def wake(_: object = None, waker: asyncio.Future[None] = waker) -> None:
                    if not waker.done():
                        waker.set_result(None)

                pending = [step.future for step in stepping] + futures
                for future in pending:
                    future.add_done_callback(wake)
                timer = None if math.isinf(remaining) else loop.call_later(remaining, wake)
                try:
                    await waker
                finally:
                    if timer is not None:
                        timer.cancel()
                    for future in pending:
                        future.remove_done_callback(wake)
                futures = [future for future in futures if not future.done()]
                stepping = [step for step in stepping if not self._resume(step)]
        except BaseException:
            # (the cycle cancelled, on stop): each read goes on in a task, for `settle_io`
            # to cancel the asyncio way; closing it here would skip what a cancellation
            # does in its `finally`s (a bus lock handing itself to its next waiter)
            for step in stepping:
                self._detach(step.slot, step.coro, step.future)
            raise
        for step in stepping:
            if not self._resume(step):  # (a reply that came with the deadline lands now)
                self._detach(step.slot, step.coro, step.future)

    def _resume(self, step: _Step) -> bool:
        """Carry `step` on if what it waits for is done; True once it has landed."""
        if not step.future.done():
            return False
        slot = step.slot
        try:
            pending = step.coro.send(None)
        except StopIteration as done:
            self._landed(slot, slot.asked_s, done.value)
            return True
        except asyncio.CancelledError:
            return True  # its wait was cancelled (as a cancelled read task): nothing lands
        except Exception as exc:
            self._landed(slot, slot.asked_s, exc)
            return True
        if isinstance(pending, asyncio.Future):
            step.future = pending
            return False
        self._detach(slot, step.coro, pending)  # anything else: a task knows what to do
        return True

    def _detach(self, slot: DeviceSlot, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        """The read `coro` (waiting on `pending`) carries on in a task of its own; its
        reply lands in a later cycle (`_reply`)."""
        future = carry_on(coro, pending)
        slot.inflight = future
        if slot.device_id in self._watched:
            future.add_done_callback(self._late_reply)

    def _reply(self, slot: DeviceSlot, future: asyncio.Future[Any]) -> None:
        """A read's reply (or failure) has come: into the slot."""
        slot.inflight = None
        if future.cancelled():
            return
        exc = future.exception()
        self._landed(slot, slot.asked_s, exc if exc is not None else future.result())

    def _landed(self, slot: DeviceSlot, sent_s: float, result: Any) -> None:
        now = self.clock()
        if isinstance(result, BaseException):
            self._failed(slot, result, now)
        else:
            self._succeeded(slot, result, now)
            slot.read_at_s = sent_s
            if sent_s > slot.sent_s:  # asked for after the last command: it shows them
                slot.sent_charge_w = 0.0

    def field_read(self) -> tuple[int, int] | None:
        """(answering, silent) once every device has answered or been declared
        unavailable, None while some device is still unheard within its start-up grace.

        This is "the field has been read": what the controller does next rests on a
        reading or on a known silence, never on a request still in flight.
        """
        answering = sum(1 for slot in self.slots.values() if slot.available)
        silent = sum(1 for slot in self.slots.values() if not slot.available and slot.error)
        if answering + silent < len(self.slots):
            return None
        return answering, silent

    def _succeeded(self, slot: DeviceSlot, reading: Any, now: float) -> None:
        slot.reading = reading
        slot.last_ok_s = now
        slot.failures = 0
        if not slot.available:
            slot.available = True
            slot.since_s = now
            if slot.error:
                log.info("%s answering again", slot.device_id)
                self.store.record_event(
                    "device", f"{slot.device_id} answering again", data={"device": slot.device_id}
                )
                self._alarm_change(f"device_unavailable:{slot.device_id}", False)
            slot.error = ""

    def _failed(self, slot: DeviceSlot, exc: BaseException, now: float) -> None:
        slot.failures += 1
        message = f"{type(exc).__name__}: {exc}"
        # The grace is in time and in reads: a cycle that overran (CPU load, a stalled
        # switch) must not turn one missed read into "unavailable".
        stale_after_s, grace = (
            (slot.stale_after_s, GRACE_READS)
            if slot.fast
            else (slot.slow_stale_after_s, SLOW_GRACE_READS)
        )
        fresh = slot.last_ok_s is not None and (
            now - slot.last_ok_s <= stale_after_s or slot.failures < grace
        )
        if slot.available and fresh:
            return
        if slot.last_ok_s is None and not slot.error and now - slot.since_s <= STARTUP_GRACE_S:
            # Never answered yet, still within the start-up grace (the first request also
            # connects): unknown, so not used, but not worth an alarm either.
            slot.reading = None
            return
        if slot.available or not slot.error:
            slot.available = False
            slot.since_s = now
            slot.error = message
            slot.reading = None
            log.warning("%s unavailable: %s", slot.device_id, message)
            self.store.record_event(
                "device",
                f"{slot.device_id} unavailable: {message}",
                data={"device": slot.device_id},
            )
            self._alarm_change(
                f"device_unavailable:{slot.device_id}",
                True,
                "warning",
                f"{slot.device_id} not answering: {message}",
            )
        slot.reading = None

    # ------------------------------------------------------------------ snapshot
    def _reading(self, device_id: str) -> Any:
        slot = self.slots.get(device_id)
        return slot.reading if slot is not None and slot.available else None

    def _silent_charge_w(self, device_id: str) -> float | None:
        """What a silent charger's driver knows it can be drawing at most (SilentDrawBound)."""
        slot = self.slots.get(device_id)
        if slot is None or not isinstance(slot.driver, SilentDrawBound):
            return None
        return slot.driver.silent_max_charge_w()

    def build_snapshot(self, now: float) -> Snapshot:
        """The cycle's snapshot; a device state whose inputs did not change is last cycle's.

        Drivers hand back the same reading for an identical reply, so in a steady field
        most states are reused (they are immutable) rather than rebuilt every cycle.
        """
        config = self.config
        built = self._built
        grid: GridReading | None = self._reading(config.grid.meter)
        pcc: BreakerReading | None = self._reading(config.grid.pcc_breaker)
        wall = self.wall()
        overrides = self.overrides
        loads = self._load_states(built, overrides)
        vehicles: list[VehicleState] = []
        seen: list[Occupancy] = []  # connectors whose occupancy this reading changed
        for charger_id, device in self._chargers:
            reading: ChargerReading | None = self._reading(charger_id)
            plugged = None if reading is None else reading.state is not ChargerState.UNPLUGGED
            if (new := overrides.observe(config, charger_id, plugged, wall)) is not None:
                seen.append(new)
            forming = reading is not None and reading.state is ChargerState.FORMING
            inputs: tuple[Any, ...] = (
                reading,
                overrides.vehicle_at(config, charger_id, wall, forming=forming),
            )
            silent_charge_w = None if reading is not None else self._silent_charge_w(charger_id)
            if silent_charge_w is not None:
                inputs = (*inputs, silent_charge_w)
            sent_charge_w = self.slots[charger_id].sent_charge_w if reading is not None else 0.0
            if sent_charge_w > 0:
                inputs = (*inputs, "sent", sent_charge_w)
            if reading is not None and reading.departure_wall is not None:
                inputs = (*inputs, math.floor(wall))  # its leaving ramp moves with the clock
            cached = built.get(charger_id)
            if cached is not None and cached[0] == inputs:
                vehicles.append(cached[1])
                continue
            vehicle_state = _vehicle_state(
                charger_id,
                device,
                reading,
                inputs[1],
                wall,
                config.dispatch.leave_notice_s,
                silent_charge_w,
                sent_charge_w,
            )
            built[charger_id] = (inputs, vehicle_state)
            vehicles.append(vehicle_state)
        outlets: list[OutletState] = []
        for outlet_id, device in self._outlets:
            o: OutletReading | None = self._reading(outlet_id)
            plugged = None if o is None else o.state is not V2LState.UNPLUGGED
            if (new := overrides.observe(config, outlet_id, plugged, wall)) is not None:
                seen.append(new)
            inputs = (o, overrides.vehicle_at(config, outlet_id, wall))
            cached = built.get(outlet_id)
            if cached is not None and cached[0] == inputs:
                outlets.append(cached[1])
                continue
            outlet_state = _outlet_state(outlet_id, device, o, inputs[1])
            built[outlet_id] = (inputs, outlet_state)
            outlets.append(outlet_state)
        for new in seen:
            self.store.record_event("vehicle", describe(new), data={"connector": new.connector})
        if seen:
            self.store.put_state("overrides", overrides.to_state())
        pv: PVState | None = None
        for inverter_id, device in self._inverters:
            inv: InverterReading | None = self._reading(inverter_id)
            cached = built.get(inverter_id)
            if cached is not None and cached[0] == (inv,):
                pv = cached[1]
            else:
                pv = PVState(
                    inverter_id,
                    inv.power_w if inv is not None else 0.0,
                    device.rating_w or 0.0,
                    inv.limit_pct if inv is not None else 100.0,
                    inv is not None,
                )
                built[inverter_id] = ((inv,), pv)
            break
        return Snapshot(
            now,
            grid,
            pcc,
            loads,
            self._same_tuple("vehicles", vehicles),
            self._same_tuple("outlets", outlets),
            pv,
            self._health(),
            tuple([slot.read_at_s if slot.available else None for slot in self.slots.values()]),
        )

    def _load_states(
        self, built: dict[str, tuple[tuple[Any, ...], Any]], overrides: Overrides
    ) -> tuple[LoadState, ...]:
        """Every load's state; last cycle's tuple, untouched, when no panel's reading and no
        operator's tier changed.

        A load's state depends only on its panel's reading and its tier, and a driver hands
        back the very same reading for an identical reply, so a steady site costs one
        comparison per panel here, not one per load: the cost of a steady cycle does not
        grow with the loads that did not change (issue 14).
        """
        key = (tuple([self._reading(panel) for panel in self._panels]), dict(overrides.tiers))
        if self._loads_key is not None and self._loads_key == key:
            return self._tuples["loads"]
        loads: list[LoadState] = []
        for load in self.config.loads:
            panel: PanelReading | None = self._reading(load.panel)
            inputs: tuple[Any, ...] = (panel, overrides.tier_of(load.id, load.tier))
            cached = built.get(load.id)
            if cached is not None and cached[0] == inputs:
                loads.append(cached[1])
                continue
            state = _load_state(load, panel, inputs[1])
            built[load.id] = (inputs, state)
            loads.append(state)
        self._loads_key = key
        return self._same_tuple("loads", loads)

    def _same_tuple(self, key: str, items: list[Any]) -> tuple[Any, ...]:
        """Last cycle's tuple when it holds the same items, so a steady site's snapshot
        parts compare by identity downstream."""
        fresh = tuple(items)
        last = self._tuples.get(key)
        if last is not None and last == fresh:
            return last
        self._tuples[key] = fresh
        return fresh

    def _health(self) -> tuple[DeviceHealth, ...]:
        slots = self.slots.values()
        key = tuple([(s.available, s.since_s, s.error) for s in slots])
        if self._health_key != key:
            self._health_key = key
            self._health_tuple = tuple(
                [DeviceHealth(s.device_id, s.available, s.since_s, s.error) for s in slots]
            )
        return self._health_tuple

    # ------------------------------------------------------------------ write phase
    async def _write(self, outputs: Outputs, snap: Snapshot, wait_s: float = math.inf) -> None:
        """Plan the cycle's writes and send them phase by phase (see `write_plan`), waiting
        up to `wait_s` for them; a plan still under way after that goes on by itself.

        A device never has two commands in flight: a write to a device still busy with an
        earlier one is left for a later cycle (it is not recorded as written, so the plan
        wants it again). In a cancelling phase (a shed, a supply increase) that counts as
        not done, and the plan's later phases wait, as after a failed write. A plan is the
        decision of one mode: once the site is in another, its phases not yet sent are
        dropped (`_send_plan`).
        """
        start = self.clock()
        now = snap.time_s
        readings = {
            device_id: slot.reading
            for device_id, slot in self.slots.items()
            if slot.available and slot.reading is not None
        }
        plan = plan_writes(outputs, readings, self._written, now, self.config, self._panel_channels)
        for key, value in plan.reflected.items():
            self._written[key] = (value, now)
        if not plan.phases:
            return
        coro = self._send_plan(plan.phases, now, self.modes.mode)
        try:
            first = coro.send(None)
        except StopIteration:
            return
        task = carry_on(coro, first)
        self._writing.add(task)
        task.add_done_callback(self._plan_done)
        await asyncio.wait({task}, timeout=max(0.0, wait_s - (self.clock() - start)))

    def _plan_done(self, task: asyncio.Future[None]) -> None:
        self._writing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a write plan failed: %r", task.exception())

    async def _send_plan(
        self, phases: tuple[tuple[Phase, tuple[Write, ...]], ...], now: float, mode: Mode
    ) -> None:
        for phase, writes in phases:
            if self.modes.mode is not mode:
                # Planned in another mode, still under way (a slow write held its later
                # phases): the new mode's own decisions own the field now. A grid-connected
                # plan's restores, behind a former's slow FOLLOW after a close, landed after
                # a grid loss had islanding shed them: islanding then formed charger_1 on a
                # panel reading taken before they came back on (the crash test's collapse,
                # 42.9 kW on 11 kW). What is not sent is not recorded as written: the next
                # plan wants it again if the new mode still does.
                log.info(
                    "write plan of %s dropped at its %s phase: now %s",
                    mode.value,
                    phase.name.lower(),
                    self.modes.mode.value,
                )
                return
            busy = [w for w in writes if self.slots[w.device_id].writing]
            sending = [w for w in writes if not self.slots[w.device_id].writing]
            sent_s = self.clock()
            for write in sending:
                self._written[write.key] = (write.value, now)
                slot = self.slots[write.device_id]
                slot.writing += 1
                if write.kind is Kind.CHARGER:
                    slot.sent_charge_w = max(slot.sent_charge_w, write.value.charge_w)
                    slot.sent_s = sent_s
            results = await asyncio.gather(
                *(self._send(write) for write in sending), return_exceptions=True
            )
            failed = bool(busy)
            for write, result in zip(sending, results, strict=True):
                slot = self.slots[write.device_id]
                slot.writing -= 1
                slot.next_due_s = -math.inf  # read it again at once: did it take?
                if isinstance(result, BaseException):
                    failed = True
                    self._write_failed(write, result, sent_s)
                else:
                    slot.unanswered_since_s = None
                    self._write_ok(write)
            if failed and phase in CANCELLING:
                # retried every cycle; the failure itself is alarmed once (_write_failed)
                log.debug(
                    "write phase %s not done: the later phases wait for the next cycle",
                    phase.name.lower(),
                )
                return

    def _send(self, write: Write) -> Awaitable[None]:
        driver = self.slots[write.device_id].driver
        if write.kind is Kind.BREAKER:
            return cast(Breaker, driver).command(write.value)
        if write.kind is Kind.CHARGER:
            return cast(BidirectionalCharger, driver).command(write.value)
        if write.kind is Kind.RELAYS:
            return cast(LoadRelays, driver).set_relays(write.value)
        if write.kind is Kind.OUTLET:
            return cast(V2LOutlet, driver).enable(write.value)
        return cast(PVInverter, driver).limit(write.value)

    def _write_failed(self, write: Write, exc: BaseException, sent_s: float) -> None:
        """A command that did not land is retried next cycle; alarmed once, not every try.

        A refusal (an exception reply, a Rejected) is alarmed at once. An unanswered
        command is unknown, not refused (safety rule 5): a device whose timeout is a few
        milliseconds over its slowest reply misses one on a busy gateway; it is alarmed
        once its commands have gone unanswered for WRITE_TIMEOUT_GRACE_S."""
        self._written.pop(write.key, None)
        device_id = write.device_id
        if isinstance(exc, DeviceTimeout):
            slot = self.slots[device_id]
            if slot.unanswered_since_s is None:
                slot.unanswered_since_s = sent_s
            if self.clock() - slot.unanswered_since_s < WRITE_TIMEOUT_GRACE_S:
                log.info("%s: a command went unanswered (%s); sent again", device_id, exc)
                return
        if isinstance(exc, ValueError):
            # A driver refused a command as unsafe (past a rating, form on a follower):
            # a decision bug, never silent.
            log.error("refused unsafe command to %s: %s", device_id, exc)
            self.store.record_event(
                "fault", f"refused unsafe command to {device_id}: {exc}", data={}
            )
        code = write_failed_alarm(device_id)
        if code in self.modes.memory.active_alarms:
            return
        message = f"{device_id} did not take a command: {type(exc).__name__}: {exc}"
        log.warning("%s", message)
        self.store.record_event("device", message, data={"device": device_id})
        self._alarm_change(code, True, "warning", message)

    def _write_ok(self, write: Write) -> None:
        code = write_failed_alarm(write.device_id)
        if code in self.modes.memory.active_alarms:
            message = f"{write.device_id} takes commands again"
            log.info("%s", message)
            self.store.record_event("device", message, data={"device": write.device_id})
            self._alarm_change(code, False)

    # ------------------------------------------------------------------ commands
    async def _process_commands(self) -> None:
        while not self._inbox.empty():
            pending = self._inbox.get_nowait()
            result = self._apply(pending)
            future = self.store.record_command(
                pending.actor,
                pending.role,
                pending.command,
                pending.args,
                result.outcome,
                result.detail,
                ts=self.wall(),
            )
            task = asyncio.ensure_future(self._answer(pending, result, future))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

    async def _answer(self, pending: _Pending, result: CommandResult, future: Any) -> None:
        try:
            await self.store.committed(future)
        except Exception as exc:  # the audit row could not be written: the command is not done
            if not pending.future.done():
                pending.future.set_result(
                    CommandResult(pending.command, "error", f"audit log not written: {exc}")
                )
            return
        if not pending.future.done():
            pending.future.set_result(result)

    def _apply(self, pending: _Pending) -> CommandResult:
        """Apply one command at the start of a cycle, through the same interlocks as the modes."""
        modes = self.modes
        name = pending.command
        args = pending.args
        try:
            if name == "planned_island":
                detail = modes.request_planned_island()
            elif name == "reconnect":
                detail = modes.request_reconnect()
            elif name == "shed_load":
                detail = modes.shed_load(str(args["load_id"]))
            elif name == "restore_load":
                detail = modes.restore_load(str(args["load_id"]))
            elif name == "keep_load_on":
                detail = modes.keep_load_on(str(args["load_id"]))
            elif name == "follow_policy":
                detail = modes.follow_policy(str(args["load_id"]))
            elif name == "set_tier":
                detail = "accepted: " + self.overrides.set_tier(
                    self.config, str(args["load_id"]), str(args["tier"])
                )
            elif name == "register_vehicle":
                donor = self.overrides.register(
                    self.config,
                    vehicle_id=str(args["vehicle_id"]),
                    connector=str(args["connector"]),
                    reserve_soc_pct=float(args["reserve_soc_pct"]),
                    capacity_wh=_opt_float(args.get("capacity_wh")),
                    soc_pct=_opt_float(args.get("soc_pct")),
                    leaving_at=_opt_float(args.get("leaving_at")),
                    now_wall=self.wall(),
                    by=pending.actor,
                )
                detail = (
                    f"accepted: {donor.vehicle_id} at {donor.connector},"
                    f" keeps {donor.reserve_soc_pct:g} %"
                    + ("" if donor.car_seen else " (waiting for it to be plugged in)")
                )
            elif name == "release_vehicle":
                former = modes.memory.former_id if modes.mode is not Mode.GRID_CONNECTED else None
                donor = self.overrides.release(
                    str(args["vehicle_id"]), former_connector=former, now_wall=self.wall()
                )
                detail = (
                    f"accepted: {donor.vehicle_id} released from {donor.connector};"
                    " it gives nothing until it is unplugged"
                )
            else:
                return CommandResult(name, "refused", f"unknown command {name!r}")
        except KeyError as exc:
            return CommandResult(name, "refused", f"missing argument {exc}")
        except (OverrideError, ValueError, TypeError) as exc:
            return CommandResult(name, "refused", str(exc))
        outcome = "accepted" if detail.startswith("accepted") else "refused"
        if outcome == "accepted":
            self.store.put_state("overrides", self.overrides.to_state())
        return CommandResult(name, outcome, detail)

    async def acknowledge_alarm(self, alarm_id: int, *, actor: str, role: str) -> CommandResult:
        """Acknowledging touches only the store, so it does not wait for a cycle."""
        acked = await self.store.committed(self.store.ack_alarm(alarm_id, actor, ts=self.wall()))
        result = CommandResult(
            "ack_alarm",
            "accepted" if acked else "refused",
            f"alarm {alarm_id} acknowledged"
            if acked
            else f"alarm {alarm_id}: unknown or already acknowledged",
        )
        await self.store.committed(
            self.store.record_command(
                actor,
                role,
                "ack_alarm",
                {"alarm_id": alarm_id},
                result.outcome,
                result.detail,
                ts=self.wall(),
            )
        )
        return result

    async def record_headcount(self, people: int, *, actor: str, role: str) -> CommandResult:
        """The shelter's headcount as the operator gives it: stored with its audit row in one
        transaction, held here once committed (the status document and the EOC's state read
        it from here). No cycle is involved: counting people decides nothing."""
        if isinstance(people, bool) or not 0 <= people <= MAX_PEOPLE:
            return CommandResult("set_headcount", "refused", f"people: not within 0..{MAX_PEOPLE}")
        counted = Headcount(people, self.wall(), actor)
        detail = f"{people} people sheltering here"
        await self.store.committed(
            self.store.record_headcount(
                counted.as_dict(), actor, role, detail, ts=counted.recorded_ts
            )
        )
        self.headcount = counted
        return CommandResult("set_headcount", "accepted", detail)

    # ------------------------------------------------------------------ publish
    def raise_or_clear_alarm(self, code: str, raised: bool, severity: str, message: str) -> None:
        """For what runs beside the cycle in its event loop (the OCPP central system)."""
        self._alarm_change(code, raised, severity, message)

    def _alarm_change(
        self, code: str, raised: bool, severity: str = "warning", message: str = ""
    ) -> None:
        active = self.modes.memory.active_alarms
        if raised:
            if code not in active:
                active[code] = message
                self.store.raise_alarm(code, severity, message, ts=self.wall())
        elif code in active:
            del active[code]
            self.store.clear_alarm(code, ts=self.wall())

    def _record(self, decision: Decision, snap: Snapshot) -> None:
        wall = self.wall()
        for t in decision.transitions:
            self.mode_since_wall = wall
            log.info("%s -> %s (%s): %s", t.source, t.dest, t.trigger, t.reason)
            self.store.record_event(
                "transition",
                t.reason,
                mode_from=t.source,
                mode_to=t.dest,
                trigger=t.trigger,
                ts=wall,
            )
            self.store.put_state("mode", t.dest)
            if t.dest == Mode.GRID_CONNECTED.value and self.overrides.kept_on:
                # On the grid, energy is no constraint: whoever kept a load on against the
                # endurance policy did so for this outage, not for the next one.
                undone = sorted(self.overrides.kept_on)
                self.overrides.kept_on.clear()
                self.store.put_state("overrides", self.overrides.to_state())
                self.store.record_event(
                    "dispatch",
                    f"back on the grid: {', '.join(undone)} follow the endurance policy again",
                    data={"kept_on_undone": undone},
                    ts=wall,
                )
        for alarm in decision.alarms:
            if alarm.raised:
                log.warning("alarm %s (%s): %s", alarm.code, alarm.severity, alarm.message)
                self.store.raise_alarm(alarm.code, alarm.severity, alarm.message, ts=wall)
            else:
                log.info("alarm %s cleared", alarm.code)
                self.store.clear_alarm(alarm.code, ts=wall)
        for note in decision.notes:
            self.store.record_event("dispatch", note, data={"mode": self.modes.mode.value}, ts=wall)
        if snap.time_s - self._last_telemetry_s >= self.config.site.telemetry_period_s:
            self._last_telemetry_s = snap.time_s
            self.store.record_telemetry(
                wall, {**telemetry_samples(snap), **endurance_samples(decision.energy)}
            )
        status = SiteStatus(
            mode=self.modes.mode,
            mode_since_s=self.modes.memory.mode_since_s,
            mode_since_wall=self.mode_since_wall,
            snapshot=snap,
            outputs=decision.outputs,
            alarms=dict(self.modes.memory.active_alarms),
            cycle=self.stats.cycles,
            energy=decision.energy,
        )
        self.status = status
        for listener in self._status_listeners:
            listener(status)


def carry_on(coro: Coroutine[Any, Any, Any], pending: Any) -> asyncio.Future[Any]:
    """A task that carries on `coro`, started by hand and now waiting on `pending`.

    A task cancelled before its first step never reaches the coroutine it was to carry
    on (the cancellation is thrown into a wrapper that has not started): the read or
    write would stay suspended for ever in the middle of its request, holding its bus's
    lock, and the next request on that bus (closing it, on stop) would wait for ever.
    So once the task is done, a coroutine still suspended gets the cancellation itself,
    and its `finally`s run the asyncio way (a lock hands itself to its next waiter)."""
    task: asyncio.Future[Any] = asyncio.ensure_future(_Resumed(coro, pending))
    task.add_done_callback(lambda _task: _unwind(coro))
    return task


def _unwind(coro: Coroutine[Any, Any, Any]) -> None:
    if not inspect.iscoroutine(coro) or inspect.getcoroutinestate(coro) != inspect.CORO_SUSPENDED:
        return  # finished (or a generator-based awaitable, which a close unwinds)
    try:
        coro.throw(asyncio.CancelledError())
    except BaseException:
        return  # unwound: cancelled, or it finished or failed on the way out
    coro.close()  # it awaited again on its way out: nothing will resume it


@dataclass(slots=True)
class _Step:
    """A read coroutine the cycle carries on by hand, and the future it waits on."""

    slot: DeviceSlot
    coro: Coroutine[Any, Any, Any]
    future: asyncio.Future[Any]


class _Resumed:
    """Awaitable that carries on a coroutine already started by hand.

    `first` is what the coroutine yielded when it was started (the future it waits on);
    a Task driving this object sees that future first, then everything the coroutine
    yields after it, exactly as if the Task had started the coroutine itself.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        pending = self._first
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                self._coro.close()
                raise
            except BaseException as exc:
                try:
                    pending = self._coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = self._coro.send(sent)
                except StopIteration as done:
                    return done.value


def _load_state(load: LoadConfig, panel: PanelReading | None, tier: Tier) -> LoadState:
    if panel is None or load.channel >= len(panel.relay_feedback):
        # Unknown is unsafe: a load whose panel is silent may be on and cannot be shed,
        # so decisions see it on at its rating (available=False says unknown).
        return LoadState(
            load.id, tier, load.rated_power_w, load.supply, True, load.rated_power_w, False
        )
    return LoadState(
        load.id,
        tier,
        load.rated_power_w,
        load.supply,
        panel.relay_feedback[load.channel],
        panel.channel_power_w[load.channel],
        True,
    )


def _vehicle_state(
    charger_id: str,
    device: Device,
    reading: ChargerReading | None,
    vehicle: VehicleView,
    wall: float,
    leave_notice_s: float,
    silent_charge_w: float | None = None,
    sent_charge_w: float = 0.0,
) -> VehicleState:
    # The connector's occupancy says whose car it is and what it keeps (Overrides.vehicle_at):
    # 100 % for a car nobody vouches for, a released one, and one about to leave.
    reserve = vehicle.reserve_soc_pct
    leave_in_s = vehicle.leave_in_s
    car_fraction = 1.0
    if reading is not None:
        # The car's own floor and departure (OCPP 2.1): the stricter of the car's and the
        # owner's wins; a car that says when it leaves winds down before it, as a donor's
        # registered leaving time does (policies.leaving).
        reserve = max(reserve, reading.vehicle_floor_soc_pct)
        if reading.departure_wall is not None:
            car_leaves_in = max(0.0, reading.departure_wall - wall)
            leave_in_s = car_leaves_in if leave_in_s is None else min(leave_in_s, car_leaves_in)
            car_fraction = cap_fraction(car_leaves_in, leave_notice_s)
    vehicle_id = vehicle.vehicle_id
    rating = device.rating_w or 0.0
    if reading is None:
        # A silent charger gives nothing, but may still be drawing up to its rating
        # (max_charge_w) on its last command: decisions count that as a load (less only
        # when its driver knows better: an OCPP station under LocalFrequency).
        return VehicleState(
            charger_id,
            vehicle_id,
            False,
            device.can_form,
            ChargerState.UNPLUGGED,
            ChargerMode.OFF,
            0.0,
            reserve,
            0.0,
            0.0,
            0.0,
            rating if silent_charge_w is None else min(rating, silent_charge_w),
            0.0,
            0.0,
            False,
        )
    limit = min(reading.max_discharge_w, rating)
    if device.charger_role == "load":
        limit = 0.0  # the site file says it only ever takes power
    if car_fraction < 1.0:
        limit = min(limit, car_fraction * rating)
    if vehicle.max_discharge_w is not None:
        limit = min(limit, vehicle.max_discharge_w)
    charge = min(reading.max_charge_w, rating)
    if vehicle.max_charge_w is not None:
        charge = min(charge, vehicle.max_charge_w)
    if car_fraction < 1.0:
        charge = min(charge, car_fraction * rating)
    return VehicleState(
        charger_id=charger_id,
        vehicle_id=vehicle_id,
        plugged=reading.state is not ChargerState.UNPLUGGED,
        can_form=device.can_form and reading.can_form and vehicle.may_form,
        state=reading.state,
        mode=reading.mode,
        soc_pct=reading.soc_pct,
        reserve_soc_pct=reserve,
        capacity_wh=reading.capacity_wh,
        power_w=reading.power_w,
        max_discharge_w=limit,
        max_charge_w=charge,
        bus_voltage_v=reading.ac_voltage_v,
        bus_frequency_hz=reading.ac_frequency_hz,
        available=True,
        pcc_interlock=device.pcc_interlock and reading.pcc_interlock,
        leave_in_s=leave_in_s,
        # A command sent since this reading was asked for may have landed (it holds that
        # now): counted at the larger charge of the two, until a reading shows it.
        held_setpoint_w=(
            reading.held_setpoint_w
            if reading.held_setpoint_w is None or sent_charge_w <= 0
            else min(reading.held_setpoint_w, -sent_charge_w)
        ),
        told_mode=reading.told_mode,
    )


def _outlet_state(
    outlet_id: str, device: Device, o: OutletReading | None, vehicle: VehicleView
) -> OutletState:
    reserve = vehicle.reserve_soc_pct
    rating = device.rating_w or 0.0
    if o is None:
        return OutletState(
            outlet_id, None, V2LState.UNPLUGGED, 0.0, reserve, 0.0, 0.0, rating, False, False
        )
    rating_w = min(rating, o.rating_w) if o.rating_w > 0 else rating
    if vehicle.max_discharge_w is not None:
        # Winding down before its driver leaves: the circuit is shed to fit, then opened.
        rating_w = min(rating_w, vehicle.max_discharge_w)
    return OutletState(
        outlet_id=outlet_id,
        vehicle_id=vehicle.vehicle_id,
        state=o.state,
        soc_pct=o.soc_pct,
        reserve_soc_pct=reserve,
        capacity_wh=o.capacity_wh,
        power_w=o.power_w,
        rating_w=rating_w,
        enabled=o.enabled,
        available=True,
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def telemetry_samples(snap: Snapshot) -> dict[str, float]:
    samples: dict[str, float] = {}
    if snap.grid is not None:
        samples["grid.voltage_v"] = snap.grid.voltage_v
        samples["grid.frequency_hz"] = snap.grid.frequency_hz
        samples["grid.power_w"] = snap.grid.power_w
    if snap.pcc is not None:
        samples["pcc.position"] = float(snap.pcc.position)
        samples["bus.voltage_v"] = snap.pcc.bus_voltage_v
        samples["bus.frequency_hz"] = snap.pcc.bus_frequency_hz
    for load in snap.loads:
        if load.available:
            samples[f"{load.load_id}.power_w"] = load.power_w
            samples[f"{load.load_id}.on"] = 1.0 if load.relay_on else 0.0
    for v in snap.vehicles:
        if v.available:
            samples[f"{v.charger_id}.soc_pct"] = v.soc_pct
            samples[f"{v.charger_id}.power_w"] = v.power_w
    for o in snap.outlets:
        if o.available:
            samples[f"{o.outlet_id}.soc_pct"] = o.soc_pct
            samples[f"{o.outlet_id}.power_w"] = o.power_w
    if snap.pv is not None and snap.pv.available:
        samples["pv.power_w"] = snap.pv.power_w
    return samples


ENDURANCE_UNBOUNDED_H = 9999.0
"""[h] how telemetry stores "no limit" (the store skips non-finite values)."""


def endurance_samples(energy: Mapping[str, Any]) -> dict[str, float]:
    """The endurance policy per supply circuit as telemetry (see README, endurance series):

    ``endurance.<circuit>.<tier>_h``  hours the circuit's energy carries that tier with the
                                     tiers above it (`policies.energy.projection_h`);
                                     `ENDURANCE_UNBOUNDED_H` for no limit
    ``endurance.<circuit>.energy_wh`` energy above its cars' reserves [Wh]
    ``endurance.<circuit>.allowed_tier`` lowest tier its energy lets stay on (0 life-safety
                                     .. 3 comfort); ``.applied_tier`` the limit its loads
                                     followed (absent when not running on stored energy)
    """
    samples: dict[str, float] = {}
    for circuit, view in energy.items():
        cap = view.cap
        prefix = f"endurance.{circuit}"
        for tier in Tier:
            hours = cap.projection_h[tier]
            samples[f"{prefix}.{tier.label}_h"] = (
                min(hours, ENDURANCE_UNBOUNDED_H) if math.isfinite(hours) else ENDURANCE_UNBOUNDED_H
            )
        samples[f"{prefix}.energy_wh"] = cap.energy_wh
        samples[f"{prefix}.allowed_tier"] = float(cap.tier)
        if view.applied is not None:
            samples[f"{prefix}.applied_tier"] = float(view.applied)
    return samples


__all__ = [
    "CommandResult",
    "Controller",
    "Meter",
    "SiteStatus",
]
