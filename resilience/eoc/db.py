"""The EOC's memory: every site's latest state and status, the event log, acknowledgements,
and the commands it sent with their answers, in one SQLite file (stdlib sqlite3; Postgres
later, for several EOC hosts).

Tables (ts = Unix seconds; JSON columns hold UTF-8 JSON text):

    sites     district, site PK; name, state (JSON, the retained state), state_ts (the
              state's own updated_ts), status ("online"/"offline"), status_ts, session,
              keepalive_s, state_max_interval_s (from the birth), received_ts (last
              message of any kind from the site, on the EOC's clock)
    events    district, site, seq PK; session, ts, kind ("event"/"telemetry"),
              historical (0/1), body (JSON), received_ts
              deduplicated on (district, site, seq): a row replayed is kept once
    acks      district, site PK; seq: the highest acknowledged, all rows up to it held
    commands  id PK, district, site (a site id, or "_all" for the district), operator,
              command, args (JSON), issued_ts, expires_ts
    results   id, district, site PK; outcome, detail, ts: each site's answer

What may be acknowledged is decided here, in the transaction that stored the rows
(`fleet.payloads.covered` over the seqs held above the last acknowledgement), so several
EOC instances sharing one database (an MQTT 5 shared subscription gives each a part of
the rows) acknowledge only what is committed.

Offline and stale (`SiteView`): a site is offline when its last status is the will, or
when nothing came from it for 1.5 x its keepalive (its retained status is republished
every keepalive as a heartbeat; mosquitto 2.0's own keepalive check publishes the will a
few seconds later than that); its state is stale when older than 2 x
state_max_interval_s (+ 5 s), or the site is offline: shown as stale, never as current.

One connection, used under a lock from worker threads (`asyncio.to_thread`): the EOC is
not a control loop, and one writer keeps SQLite simple.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resilience.fleet.payloads import covered

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sites ("
    " district TEXT NOT NULL, site TEXT NOT NULL, name TEXT, state TEXT, state_ts REAL,"
    " status TEXT, status_ts REAL, session TEXT, keepalive_s REAL, state_max_interval_s REAL,"
    " received_ts REAL, PRIMARY KEY (district, site))",
    "CREATE TABLE IF NOT EXISTS events ("
    " district TEXT NOT NULL, site TEXT NOT NULL, seq INTEGER NOT NULL, session TEXT NOT NULL,"
    " ts REAL NOT NULL, kind TEXT NOT NULL, historical INTEGER NOT NULL, body TEXT NOT NULL,"
    " received_ts REAL NOT NULL, PRIMARY KEY (district, site, seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS acks ("
    " district TEXT NOT NULL, site TEXT NOT NULL, seq INTEGER NOT NULL,"
    " PRIMARY KEY (district, site))",
    "CREATE TABLE IF NOT EXISTS commands ("
    " id TEXT PRIMARY KEY, district TEXT NOT NULL, site TEXT NOT NULL, operator TEXT NOT NULL,"
    " command TEXT NOT NULL, args TEXT NOT NULL, issued_ts REAL NOT NULL,"
    " expires_ts REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS results ("
    " id TEXT NOT NULL, district TEXT NOT NULL, site TEXT NOT NULL, outcome TEXT NOT NULL,"
    " detail TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (id, district, site))",
)
STALE_MARGIN_S = 5.0


@dataclass(frozen=True)
class Row:
    """One outbox row as received: an event or telemetry of one site."""

    district: str
    site: str
    seq: int
    floor: int
    session: str
    ts: float
    kind: str
    historical: bool
    body: Mapping[str, Any]


@dataclass(frozen=True)
class SiteView:
    """One line of the EOC's table."""

    district: str
    site: str
    name: str | None
    state: dict[str, Any] | None
    status: str | None
    offline: bool
    stale: bool
    data_age_s: float | None
    alarms: int
    acked_seq: int
    events: int

    def as_dict(self) -> dict[str, Any]:
        state = self.state or {}
        return {
            "district": self.district,
            "site": self.site,
            "name": self.name,
            "mode": state.get("mode"),
            "facility_status": state.get("facility_status"),
            "endurance_h": state.get("endurance_h"),
            "life_safety_served": state.get("life_safety_served"),
            "donors_needed_kwh": state.get("donors_needed_kwh"),
            "alarms": self.alarms,
            "status": self.status,
            "offline": self.offline,
            "stale": self.stale,
            "data_age_s": None if self.data_age_s is None else round(self.data_age_s, 1),
            "acked_seq": self.acked_seq,
            "events": self.events,
        }


class EocDb:
    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._depth = 0  # nested `_transaction`s: only the outer one begins and commits
        self.duplicates = 0  # rows received again (replays): stored once, counted here
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")  # acknowledged means on disk
        for statement in SCHEMA:
            self._db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writes ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction (one fsync) for everything written inside it, nested or not."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def put_batch(
        self,
        *,
        states: Iterable[tuple[str, str, Mapping[str, Any]]] = (),
        statuses: Iterable[tuple[str, str, Mapping[str, Any]]] = (),
        results: Iterable[Mapping[str, Any]] = (),
        rows: Iterable[Row] = (),
        now: float,
    ) -> dict[tuple[str, str], int]:
        """What one read of the broker brought, in one transaction; `put_rows`'s answer."""
        with self._transaction():
            for district, site, state in states:
                self.put_state(district, site, state, now)
            for district, site, status in statuses:
                self.put_status(district, site, status, now)
            for result in results:
                self.put_result(result)
            return self.put_rows(rows, now)

    def put_state(self, district: str, site: str, state: Mapping[str, Any], now: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sites (district, site, name, state, state_ts, received_ts)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (district, site) DO UPDATE SET"
                " name = excluded.name, state = excluded.state, state_ts = excluded.state_ts,"
                " received_ts = excluded.received_ts"
                " WHERE coalesce(sites.state_ts, 0) <= excluded.state_ts",
                [
                    district,
                    site,
                    state.get("name"),
                    json.dumps(state),
                    float(state.get("updated_ts") or now),
                    now,
                ],
            )

    def put_status(self, district: str, site: str, status: Mapping[str, Any], now: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sites (district, site, status, status_ts, session, keepalive_s,"
                " state_max_interval_s, received_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (district, site) DO UPDATE SET status = excluded.status,"
                " status_ts = excluded.status_ts, session = excluded.session,"
                " keepalive_s = coalesce(excluded.keepalive_s, sites.keepalive_s),"
                " state_max_interval_s ="
                " coalesce(excluded.state_max_interval_s, sites.state_max_interval_s),"
                " received_ts = excluded.received_ts",
                [
                    district,
                    site,
                    str(status.get("status")),
                    float(status.get("ts") or now),
                    status.get("session"),
                    status.get("keepalive_s"),
                    status.get("state_max_interval_s"),
                    now,
                ],
            )

    def put_rows(self, rows: Iterable[Row], now: float) -> dict[tuple[str, str], int]:
        """Store rows (a row already held is ignored) and return, per site of the batch, the
        highest seq to acknowledge (moved or not: a site that sends rows again may have lost
        the last acknowledgement). One transaction."""
        rows = list(rows)
        moved: dict[tuple[str, str], int] = {}
        with self._transaction() as db:
            floors: dict[tuple[str, str], int] = {}
            for row in rows:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO events (district, site, seq, session, ts, kind,"
                    " historical, body, received_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        row.district,
                        row.site,
                        row.seq,
                        row.session,
                        row.ts,
                        row.kind,
                        int(row.historical),
                        json.dumps(row.body),
                        now,
                    ],
                )
                self.duplicates += cursor.rowcount == 0  # held already: shown once
                key = (row.district, row.site)
                floors[key] = max(floors.get(key, 0), row.floor)
                db.execute(
                    "UPDATE sites SET received_ts = ? WHERE district = ? AND site = ?",
                    [now, row.district, row.site],
                )
            for (district, site), floor in floors.items():
                found = db.execute(
                    "SELECT seq FROM acks WHERE district = ? AND site = ?", [district, site]
                ).fetchone()
                acked = 0 if found is None else int(found[0])
                held = {
                    int(r[0])
                    for r in db.execute(
                        "SELECT seq FROM events WHERE district = ? AND site = ? AND seq > ?",
                        [district, site, max(acked, floor - 1)],
                    )
                }
                new, _pending = covered(acked, floor, held)
                if new > acked:
                    db.execute(
                        "INSERT INTO acks (district, site, seq) VALUES (?, ?, ?)"
                        " ON CONFLICT (district, site) DO UPDATE SET seq = excluded.seq",
                        [district, site, new],
                    )
                if new > 0:
                    moved[(district, site)] = new
        return moved

    def put_command(
        self,
        command_id: str,
        district: str,
        site: str,
        operator: str,
        command: str,
        args: Mapping[str, Any],
        issued_ts: float,
        expires_ts: float,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO commands (id, district, site, operator, command, args, issued_ts,"
                " expires_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    command_id,
                    district,
                    site,
                    operator,
                    command,
                    json.dumps(dict(args)),
                    issued_ts,
                    expires_ts,
                ],
            )

    def put_result(self, result: Mapping[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO results (id, district, site, outcome, detail, ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    str(result.get("id")),
                    str(result.get("district")),
                    str(result.get("site")),
                    str(result.get("outcome")),
                    str(result.get("detail")),
                    float(result.get("ts") or 0.0),
                ],
            )

    # --- reads -----------------------------------------------------------------------

    def sites(self, now: float, district: str | None = None) -> list[SiteView]:
        sql = (
            "SELECT s.district, s.site, s.name, s.state, s.state_ts, s.status, s.keepalive_s,"
            " s.state_max_interval_s, s.received_ts, coalesce(a.seq, 0),"
            " (SELECT count(*) FROM events e WHERE e.district = s.district AND e.site = s.site"
            "  AND e.kind = 'event')"
            " FROM sites s LEFT JOIN acks a ON a.district = s.district AND a.site = s.site"
        )
        params: list[Any] = []
        if district is not None:
            sql += " WHERE s.district = ?"
            params.append(district)
        sql += " ORDER BY s.district, s.site"
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [_view(row, now) for row in rows]

    def site(self, district: str, site: str, now: float) -> SiteView | None:
        return next((v for v in self.sites(now, district) if v.site == site), None)

    def events(self, district: str, site: str, *, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, session, ts, kind, historical, body FROM events"
                " WHERE district = ? AND site = ? AND kind = 'event' ORDER BY seq DESC LIMIT ?",
                [district, site, limit],
            ).fetchall()
        return [
            {
                "seq": r[0],
                "session": r[1],
                "ts": r[2],
                "kind": r[3],
                "historical": bool(r[4]),
                "body": json.loads(r[5]),
            }
            for r in rows
        ]

    def seqs(self, district: str, site: str) -> list[int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq FROM events WHERE district = ? AND site = ? ORDER BY seq",
                [district, site],
            ).fetchall()
        return [int(r[0]) for r in rows]

    def results(self, command_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT district, site, outcome, detail, ts FROM results WHERE id = ?"
                " ORDER BY district, site",
                [command_id],
            ).fetchall()
        return [
            {"district": r[0], "site": r[1], "outcome": r[2], "detail": r[3], "ts": r[4]}
            for r in rows
        ]


def _view(row: tuple[Any, ...], now: float) -> SiteView:
    district, site, name, state_text, state_ts, status, keepalive, max_interval, heard, acked, n = (
        row
    )
    state = json.loads(state_text) if state_text else None
    # the will says offline; so does silence past 1.5 x keepalive (the site's status is also
    # its heartbeat), whichever comes first
    silent = keepalive is not None and (heard is None or now - float(heard) > 1.5 * keepalive)
    offline = status != "online" or silent
    age = None if state_ts is None else max(0.0, now - float(state_ts))
    stale_after = 2 * float(max_interval or 60.0) + STALE_MARGIN_S
    return SiteView(
        district=district,
        site=site,
        name=name,
        state=state,
        status=status,
        offline=offline,
        stale=age is None or age > stale_after or offline,
        data_age_s=age,
        alarms=len((state or {}).get("alarms") or []),
        acked_seq=int(acked),
        events=int(n),
    )
