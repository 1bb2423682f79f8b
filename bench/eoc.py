"""City-layer benchmark: N site publishers (the real `FleetPublisher` and SQLite outbox, in a
few worker processes) against one mosquitto and the EOC (`EocService`, `EocDb`).

Phases:
1. nominal: every site records one event every --event-period-s (plus its state); the
   EOC's latency is site event (its `ts`) -> committed in the EOC's SQLite file
2. outage: the broker is SIGKILLed for --outage-s (the sites go on recording), then
   restarted on its port; recovered_s is broker back -> the EOC holds every event
   recorded before it came back (every site's backlog drained)
3. offline: one worker process is SIGSTOPped (its sites go silent: no FIN, as a cut
   link); the EOC's own timer flags each at its deadline (last heard + 1.5 x
   --keepalive-s less `DETECTION_BUDGET_S`; the broker's will comes later).
   offline_detected_s is the worst site's last message heard -> flag committed;
   offline_timer_late_ms the worst timer's lateness past its deadline;
   offline_after_stop_s the stop -> the last of them flagged. Then SIGCONT: they
   reconnect and replay
4. once they are back, stop the sites, drain, count: lost = events a site recorded that
   the EOC does not hold and that are no longer in the site's outbox (pending_at_stop:
   still in an outbox, sent with the site's next start);
   duplicates_shown = (site, seq) pairs held twice (0 by the primary key: the check
   that it holds); duplicates_received = replayed rows the EOC ignored

    .venv/bin/python bench/eoc.py [--sites 50] [--workers 4] [--event-period-s 5]
        [--nominal-s 15] [--outage-s 10] [--keepalive-s 5] [--keep]

Goals at --sites 500 --outage-s 60: latency_p99_ms <= 1000, lost 0, recovered_s <= 30,
offline_detected_s <= 1.5 x keepalive_s. Prints figures, then one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resilience.config import FleetSection  # noqa: E402
from resilience.eoc.db import EocDb, offline_at  # noqa: E402
from resilience.eoc.service import BrokerSettings, EocService  # noqa: E402
from resilience.fleet.publisher import FleetPublisher  # noqa: E402
from resilience.store import Store  # noqa: E402
from tools.mqtt_broker import EOC_PASSWORD, EOC_USER, Broker, SiteAccount  # noqa: E402

DISTRICTS = 10


def accounts(n: int) -> list[SiteAccount]:
    return [SiteAccount(f"d{i % DISTRICTS}", f"s{i}") for i in range(n)]


# --- a worker process: its share of the sites ---------------------------------------------


async def worker(args: argparse.Namespace) -> None:
    directory = Path(args.dir)
    password = directory / "site-password"
    sites = [SiteAccount(f"d{i % DISTRICTS}", f"s{i}") for i in args.indices]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    running = []
    for account in sites:
        fleet = FleetSection(
            broker_host="127.0.0.1",
            broker_port=args.port,
            district=account.district,
            site_id=account.site,
            username=account.username,
            password_file=password,
            keepalive_s=args.keepalive_s,
            state_min_interval_s=5,
            resend_after_s=60,
        )
        store = Store(directory / f"{account.site}.sqlite", outbox_max_rows=fleet.outbox_max_rows)
        store.start()
        state = {"schema": 1, "name": account.site, "mode": "islanded", "updated_ts": time.time()}
        publisher = FleetPublisher(fleet, store, functools.partial(dict, state))
        running.append((store, publisher, asyncio.create_task(publisher.run(stop))))
    await asyncio.gather(*(p.connected.wait() for _s, p, _t in running))
    print("ready", flush=True)

    async def record(store: Store, offset: float) -> None:
        await asyncio.sleep(offset)
        n = 0
        while not stop.is_set():
            store.record_event("bench", f"event {n}", data={"n": n})
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.event_period_s)

    period = args.event_period_s
    recorders = [
        asyncio.create_task(record(store, period * k / len(running)))
        for k, (store, _p, _t) in enumerate(running)
    ]
    await stop.wait()
    await asyncio.gather(*recorders)
    await asyncio.gather(*(t for _s, _p, t in running), return_exceptions=True)
    for store, _p, _t in running:
        await asyncio.to_thread(store.close)


# --- the conductor ------------------------------------------------------------------------


def site_events(directory: Path, n: int) -> dict[tuple[str, str], set[int]]:
    """The bench events each site's own store recorded: {(district, site): {event ids}}."""
    out: dict[tuple[str, str], set[int]] = {}
    for account in accounts(n):
        path = directory / f"{account.site}.sqlite"
        with sqlite3.connect(path) as db:
            ids = {int(r[0]) for r in db.execute("SELECT id FROM events WHERE kind = 'bench'")}
        out[(account.district, account.site)] = ids
    return out


def outbox_events(directory: Path, n: int) -> dict[tuple[str, str], set[int]]:
    """The bench events still in each site's outbox (not acknowledged by the EOC)."""
    out: dict[tuple[str, str], set[int]] = {}
    for account in accounts(n):
        with sqlite3.connect(directory / f"{account.site}.sqlite") as db:
            out[(account.district, account.site)] = {
                int(r[0])
                for r in db.execute(
                    "SELECT json_extract(body, '$.id') FROM outbox"
                    " WHERE json_extract(body, '$.type') = 'event'"
                    " AND json_extract(body, '$.kind') = 'bench'"
                )
            }
    return out


def eoc_events(path: Path, before_ts: float | None = None) -> dict[tuple[str, str], set[int]]:
    sql = (
        "SELECT district, site, json_extract(body, '$.id') FROM events"
        " WHERE kind = 'event' AND json_extract(body, '$.kind') = 'bench'"
    )
    params: list[Any] = []
    if before_ts is not None:
        sql += " AND ts < ?"
        params.append(before_ts)
    out: dict[tuple[str, str], set[int]] = {}
    with sqlite3.connect(path) as db:
        for district, site, event_id in db.execute(sql, params):
            out.setdefault((district, site), set()).add(int(event_id))
    return out


def missing(
    expected: dict[tuple[str, str], set[int]], held: dict[tuple[str, str], set[int]]
) -> int:
    return sum(len(ids - held.get(key, set())) for key, ids in expected.items())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def wait_until(predicate: Any, timeout_s: float, step_s: float = 0.2) -> float:
    """Seconds until `predicate()` (polled: the figures are read from SQLite files)."""
    start = time.monotonic()
    while not await asyncio.to_thread(predicate):
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"not within {timeout_s} s")
        await asyncio.sleep(step_s)
    return time.monotonic() - start


async def conductor(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="bench-eoc-"))
    (directory / "site-password").write_text("site-secret\n")
    broker = Broker(directory / "broker", accounts(args.sites))
    broker.start()
    db = EocDb(directory / "eoc.sqlite")
    service = EocService(BrokerSettings(broker.host, broker.port, EOC_USER, EOC_PASSWORD), db)
    stop = asyncio.Event()
    eoc = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.connected.wait(), 10)
    shares = [list(range(args.sites))[w :: args.workers] for w in range(args.workers)]
    workers = []
    for share in shares:
        command = [
            sys.executable, __file__, "--worker", "--dir", str(directory),
            "--port", str(broker.port), "--keepalive-s", str(args.keepalive_s),
            "--event-period-s", str(args.event_period_s), "--indices", *map(str, share),
        ]  # fmt: skip
        workers.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT))
    figures: dict[str, Any] = {"sites": args.sites, "workers": args.workers}
    try:
        for process in workers:
            assert process.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 120)
            assert line.strip() == "ready", line
        print(f"eoc bench: {args.sites} sites connected ({args.workers} workers)", flush=True)

        # 1. nominal
        service.latencies_s = []
        messages0, t0 = service.messages, time.monotonic()
        await asyncio.sleep(args.nominal_s)
        latencies = service.latencies_s
        service.latencies_s = None
        elapsed_s = time.monotonic() - t0
        figures["messages_per_s"] = round((service.messages - messages0) / elapsed_s, 1)
        figures["latency_p50_ms"] = round(percentile(latencies, 0.5) * 1000, 1)
        figures["latency_p99_ms"] = round(percentile(latencies, 0.99) * 1000, 1)
        figures["latency_samples"] = len(latencies)
        print(f"eoc bench: nominal {figures}", flush=True)

        # 2. broker outage
        broker.kill()
        await asyncio.sleep(args.outage_s)
        figures["broker_outage_s"] = args.outage_s
        broker.start()
        back = time.time()
        # what the sites recorded before the broker came back (they go on recording)
        expected_before = await asyncio.to_thread(_recorded_before, directory, args.sites, back)
        figures["recovered_s"] = round(
            await wait_until(
                lambda: missing(expected_before, eoc_events(directory / "eoc.sqlite")) == 0,
                args.outage_s + 300,
            ),
            1,
        )
        print(f"eoc bench: recovered in {figures['recovered_s']} s", flush=True)

        # 3. a worker's sites go silent
        silent = workers[0]
        silent_sites = [accounts(args.sites)[i] for i in shares[0]]
        silent_keys = {(a.district, a.site) for a in silent_sites}
        with service.watch() as changes:  # woken by the EOC's own timers, not a poll
            stopped = time.time()
            os.kill(silent.pid, signal.SIGSTOP)
            async with asyncio.timeout(10 * args.keepalive_s):
                while True:
                    views = await asyncio.to_thread(db.sites, time.time(), None, silent_keys)
                    if len(views) == len(silent_keys) and all(v.offline_ts for v in views):
                        break
                    await changes.take()
        # per site: its last message heard -> the EOC's timer committed the flag
        silent_for = [float(v.offline_ts or 0) - float(v.heard_ts or 0) for v in views]
        deadlines = [offline_at(v.heard_ts, args.keepalive_s) or 0.0 for v in views]
        figures["offline_detected_s"] = round(max(silent_for), 3)
        figures["offline_timer_late_ms"] = round(
            max(float(v.offline_ts or 0) - d for v, d in zip(views, deadlines, strict=True)) * 1000,
            1,
        )
        figures["offline_after_stop_s"] = round(
            max(float(v.offline_ts or 0) for v in views) - stopped, 2
        )
        figures["keepalive_s"] = args.keepalive_s
        print(f"eoc bench: offline detected in {figures['offline_detected_s']} s", flush=True)
        with service.watch() as changes:  # they come back: heard again, the flag cleared
            os.kill(silent.pid, signal.SIGCONT)
            async with asyncio.timeout(60):
                while True:
                    views = await asyncio.to_thread(db.sites, time.time(), None, silent_keys)
                    if not any(v.offline for v in views):
                        break
                    await changes.take()
        back = time.time()  # and what they recorded before is drained (they replay it)
        expected_back = await asyncio.to_thread(_recorded_before, directory, args.sites, back)
        await wait_until(
            lambda: missing(expected_back, eoc_events(directory / "eoc.sqlite")) == 0, 120
        )

        # 4. stop the sites, drain, count
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            await asyncio.to_thread(process.wait, 60)
        # the sites are stopped: what they recorded is final; the EOC must hold all of it
        final = await asyncio.to_thread(site_events, directory, args.sites)
        with contextlib.suppress(TimeoutError):  # the sites are stopped: what is not here is lost
            await wait_until(lambda: missing(final, eoc_events(directory / "eoc.sqlite")) == 0, 5)
        held = await asyncio.to_thread(eoc_events, directory / "eoc.sqlite")
        queued = await asyncio.to_thread(outbox_events, directory, args.sites)
        figures["events_recorded"] = sum(len(v) for v in final.values())
        # lost: gone from the site's outbox without the EOC holding it; an event still in
        # the outbox when its site stopped is not lost, it goes with the site's next start
        figures["lost"] = missing(final, {k: held.get(k, set()) | queued[k] for k in final})
        figures["pending_at_stop"] = sum(len(v - held.get(k, set())) for k, v in queued.items())
        with sqlite3.connect(directory / "eoc.sqlite") as conn:
            (pairs,) = conn.execute("SELECT count(*) FROM events").fetchone()
            (distinct,) = conn.execute(
                "SELECT count(*) FROM (SELECT DISTINCT district, site, seq FROM events)"
            ).fetchone()
        figures["duplicates_shown"] = pairs - distinct
        figures["duplicates_received"] = db.duplicates
    finally:
        for process in workers:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
                process.wait(10)
        stop.set()
        await asyncio.wait_for(eoc, 15)
        db.close()
        broker.stop()
        if args.keep:
            print(f"eoc bench: files kept in {directory}", flush=True)
        else:  # 500 sites' stores and the broker's files: hundreds of MB in /tmp
            shutil.rmtree(directory, ignore_errors=True)
    return figures


def _recorded_before(directory: Path, n: int, ts: float) -> dict[tuple[str, str], set[int]]:
    out: dict[tuple[str, str], set[int]] = {}
    for account in accounts(n):
        with sqlite3.connect(directory / f"{account.site}.sqlite") as db:
            out[(account.district, account.site)] = {
                int(r[0])
                for r in db.execute("SELECT id FROM events WHERE kind = 'bench' AND ts < ?", [ts])
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--event-period-s", type=float, default=5.0)
    parser.add_argument("--nominal-s", type=float, default=15.0)
    parser.add_argument("--outage-s", type=float, default=10.0)
    parser.add_argument("--keepalive-s", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the stores and broker files")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--indices", type=int, nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args))
        return
    figures = asyncio.run(conductor(args))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
