"""The EOC's memory: every site's latest state and status, the event log, acknowledgements,
and the commands it sent with their answers, in one SQLite file (stdlib sqlite3; Postgres
later, for several EOC hosts).

Tables (ts = Unix seconds; JSON columns hold UTF-8 JSON text):

    sites     district, site PK; name, state (JSON, the retained state), state_ts (the
              state's own updated_ts), status ("online"/"offline"), status_ts, session,
              keepalive_s, state_max_interval_s (from the birth), received_ts (last
              message of any kind heard live from the site, on the EOC's clock: a
              retained copy the broker hands over on subscribing is not "heard"),
              offline_ts (when the EOC took it for offline: its own timer at the
              silence deadline, or the will's arrival; cleared when heard again)
    events    district, site, seq PK; session, ts, kind ("event"/"telemetry"),
              historical (0/1), body (JSON), received_ts
              deduplicated on (district, site, seq): a row replayed is kept once
    acks      district, site PK; seq: the highest acknowledged, all rows up to it held
    commands  id PK, district, site (a site id, or "_all" for the district), operator,
              command, args (JSON), issued_ts, expires_ts
    results   id, district, site PK; outcome, detail, ts: each site's answer
    audit     id PK, ts, actor (the token's name), role, command (the call, e.g.
              "POST /api/commands" or the EOC command's name), args (JSON), outcome
              ("accepted", "forbidden", "refused", "rejected", "error"), detail (why),
              count and last_ts (a refusal repeated within its minute is one row)

What may be acknowledged is decided here, in the transaction that stored the rows
(`fleet.payloads.covered` over the seqs held above the last acknowledgement), so several
EOC instances sharing one database (an MQTT 5 shared subscription gives each a part of
the rows) acknowledge only what is committed.

Offline and stale (`SiteView`, `offline_at`, `stale_at`): a site is offline when its last
status is the will, or when nothing came from it for 1.5 x its keepalive (its retained
status is republished every keepalive as a heartbeat; mosquitto 2.0's own keepalive
check publishes the will about 2.2 x keepalive after a silent stop, too late for the
rule). The deadline is last heard + 1.5 x keepalive - `DETECTION_BUDGET_S`: the budget
is the last message's way from the site to the EOC plus the timer's and the commit's
own delay, so the flag is up within 1.5 x keepalive of the site *sending* it, not on
that line. `EocService` arms a timer per site at `next_change` and commits the flag
(`mark_silent`) when it fires; reads judge by the same deadline, so a read between the
deadline and the timer already says offline. Its state is stale when older than 2 x
state_max_interval_s (+ 5 s), or the site is offline: shown as stale, never as current.

One connection, used under a lock from worker threads (`asyncio.to_thread`): the EOC is
not a control loop, and one writer keeps SQLite simple.
"""

from __future__ import annotations

import contextlib
import json
import math
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
    " received_ts REAL, offline_ts REAL, PRIMARY KEY (district, site))",
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
    "CREATE TABLE IF NOT EXISTS audit ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, actor TEXT NOT NULL,"
    " role TEXT NOT NULL, command TEXT NOT NULL, args TEXT NOT NULL, outcome TEXT NOT NULL,"
    " detail TEXT NOT NULL, count INTEGER NOT NULL DEFAULT 1, last_ts REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS results ("
    " id TEXT NOT NULL, district TEXT NOT NULL, site TEXT NOT NULL, outcome TEXT NOT NULL,"
    " detail TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (id, district, site))",
)
STALE_MARGIN_S = 5.0
OFFLINE_AFTER_KEEPALIVES = 1.5
"""A site not heard from for this many keepalives is offline (issue 15)."""
DETECTION_BUDGET_S = 0.25
"""[s] Taken off the offline deadline: the last message's delivery (site -> broker -> EOC,
p99 well under this at 500 sites, bench/eoc.py) and the timer's and commit's delay, so
the flag is up within 1.5 x keepalive of the message being sent. The keepalive is at
least 5 s (`FleetSection`): a heartbeat due at 1 x keepalive still has 2.25 s to arrive."""
MIGRATIONS = (("sites", "offline_ts", "REAL"),)
"""Columns added since the first EOC file: added to an older file when it is opened."""

Key = tuple[str, str]
_KEYS_PER_QUERY = 400  # sites per query when reading named ones (2 parameters each)
"""(district, site)"""


def offline_at(heard_ts: float | None, keepalive_s: float | None) -> float | None:
    """[s, wall] When a site last heard at `heard_ts` is offline by silence; None when its
    keepalive is unknown (no birth yet: judged by its status alone). Never heard: at once."""
    if keepalive_s is None:
        return None
    if heard_ts is None:
        return float("-inf")
    return heard_ts + OFFLINE_AFTER_KEEPALIVES * keepalive_s - DETECTION_BUDGET_S


def stale_at(state_ts: float | None, state_max_interval_s: float | None) -> float:
    """[s, wall] When a state stamped `state_ts` is no longer current: the site republishes
    it at least every state_max_interval_s, so two missed ones (plus a margin) are not
    lateness. No state at all is stale from the start."""
    if state_ts is None:
        return float("-inf")
    return state_ts + 2 * (state_max_interval_s or 60.0) + STALE_MARGIN_S


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
    heard_ts: float | None  # last message heard live, on the EOC's clock
    offline_ts: float | None  # when the EOC took it for offline: its timer, or the will

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
            "occupancy": state.get("occupancy"),  # people; None: never counted
            "occupancy_ts": state.get("occupancy_ts"),
            "alarms": self.alarms,
            "status": self.status,
            "offline": self.offline,
            "stale": self.stale,
            "data_age_s": None if self.data_age_s is None else round(self.data_age_s, 1),
            "acked_seq": self.acked_seq,
            "events": self.events,
            "heard_ts": self.heard_ts,
            "offline_ts": self.offline_ts,
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
        for table, column, kind in MIGRATIONS:
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

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
        heard: Iterable[Key] = (),
        now: float,
    ) -> tuple[dict[Key, int], dict[Key, float | None]]:
        """What one read of the broker brought, in one transaction: `put_rows`'s answer,
        and `next_change` of every site it touched. `heard`: the sites that sent a message
        live (not a retained copy)."""
        touched: set[Key] = set(heard)
        with self._transaction():
            for district, site, state in states:
                self.put_state(district, site, state, now)
                touched.add((district, site))
            for district, site, status in statuses:
                self.put_status(district, site, status, now)
                touched.add((district, site))
            for result in results:
                self.put_result(result)
            acks = self.put_rows(rows, now)
            self.put_heard(heard, now)
            return acks, self.next_change(now, touched)

    def put_heard(self, keys: Iterable[Key], now: float) -> None:
        """These sites spoke at `now`: their silence deadline moves, their flag goes."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE sites SET received_ts = ?, offline_ts = NULL"
                " WHERE district = ? AND site = ?",
                [(now, district, site) for district, site in keys],
            )

    def mark_silent(self, keys: Iterable[Key], now: float) -> set[Key]:
        """The timers' commit: flag each site silent if its deadline has passed and nothing
        came since (a message committed first wins). The sites flagged now."""
        flagged: set[Key] = set()
        with self._transaction() as db:
            for district, site in keys:
                found = db.execute(
                    "SELECT status, keepalive_s, received_ts, offline_ts FROM sites"
                    " WHERE district = ? AND site = ?",
                    [district, site],
                ).fetchone()
                if found is None:
                    continue
                status, keepalive, heard, silent = found
                due = offline_at(heard, keepalive)
                if status != "online" or silent is not None or due is None or now < due:
                    continue
                db.execute(
                    "UPDATE sites SET offline_ts = ? WHERE district = ? AND site = ?",
                    [now, district, site],
                )
                flagged.add((district, site))
        return flagged

    def put_state(self, district: str, site: str, state: Mapping[str, Any], now: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sites (district, site, name, state, state_ts)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (district, site) DO UPDATE SET"
                " name = excluded.name, state = excluded.state, state_ts = excluded.state_ts"
                " WHERE coalesce(sites.state_ts, 0) <= excluded.state_ts",
                [
                    district,
                    site,
                    state.get("name"),
                    json.dumps(state),
                    float(state.get("updated_ts") or now),
                ],
            )

    def put_status(self, district: str, site: str, status: Mapping[str, Any], now: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sites (district, site, status, status_ts, session, keepalive_s,"
                " state_max_interval_s, offline_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (district, site) DO UPDATE SET status = excluded.status,"
                " offline_ts = CASE WHEN excluded.status = 'online' THEN sites.offline_ts"
                " ELSE coalesce(sites.offline_ts, excluded.offline_ts) END,"
                " status_ts = excluded.status_ts, session = excluded.session,"
                " keepalive_s = coalesce(excluded.keepalive_s, sites.keepalive_s),"
                " state_max_interval_s ="
                " coalesce(excluded.state_max_interval_s, sites.state_max_interval_s)",
                [
                    district,
                    site,
                    str(status.get("status")),
                    float(status.get("ts") or now),
                    status.get("session"),
                    status.get("keepalive_s"),
                    status.get("state_max_interval_s"),
                    None if status.get("status") == "online" else now,
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

    def record_audit(
        self,
        ts: float,
        actor: str,
        role: str,
        command: str,
        args: Mapping[str, Any],
        outcome: str,
        detail: str,
    ) -> int:
        """One row of the audit: who asked what, and what came of it (why, when refused).
        A refusal the same actor had in the same minute, word for word, adds to that row's
        count instead (a caller that keeps asking costs no row per call, as on a site).
        Committed (synchronous=FULL) before it returns: its id."""
        args_text = json.dumps(dict(args), sort_keys=True, default=str)
        detail = detail[:500]
        with self._transaction() as db:
            if outcome != "accepted":
                minute = math.floor(ts / 60.0) * 60.0
                found = db.execute(
                    "SELECT id FROM audit WHERE actor = ? AND role = ? AND command = ?"
                    " AND args = ? AND outcome = ? AND detail = ? AND ts >= ? AND ts < ?",
                    [actor, role, command, args_text, outcome, detail, minute, minute + 60.0],
                ).fetchone()
                if found is not None:
                    db.execute(
                        "UPDATE audit SET count = count + 1, last_ts = ? WHERE id = ?",
                        [ts, found[0]],
                    )
                    return int(found[0])
            cursor = db.execute(
                "INSERT INTO audit (ts, actor, role, command, args, outcome, detail, last_ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [ts, actor, role, command, args_text, outcome, detail, ts],
            )
            assert cursor.lastrowid is not None
            return int(cursor.lastrowid)

    # --- reads -----------------------------------------------------------------------

    def audit(self, *, limit: int = 50, before_id: int | None = None) -> list[dict[str, Any]]:
        """The audit, newest first (`before_id`: the page after)."""
        sql = (
            "SELECT id, ts, actor, role, command, args, outcome, detail, count, last_ts FROM audit"
        )
        params: list[Any] = []
        if before_id is not None:
            sql += " WHERE id < ?"
            params.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        keys = ("id", "ts", "actor", "role", "command", "args", "outcome", "detail", "count")
        return [
            {**dict(zip(keys, r[:9], strict=True)), "args": json.loads(r[5]), "last_ts": r[9]}
            for r in rows
        ]

    def next_change(self, now: float, keys: Iterable[Key] | None = None) -> dict[Key, float | None]:
        """[s, wall] When each site's line next changes by time alone (None: not by time):
        while it is online and not flagged, the earlier of its silence deadline (at or
        before `now`: due at once) and the moment its state turns stale if still ahead.
        `keys` None: every site (the EOC starting)."""
        sql = (
            "SELECT district, site, status, keepalive_s, received_ts, offline_ts, state_ts,"
            " state_max_interval_s FROM sites"
        )
        with self._lock:
            if keys is None:
                rows = self._db.execute(sql).fetchall()
            else:
                rows = []
                for district, site in keys:
                    rows += self._db.execute(
                        sql + " WHERE district = ? AND site = ?", [district, site]
                    ).fetchall()
        out: dict[Key, float | None] = {}
        for district, site, status, keepalive, heard, silent, state_ts, max_interval in rows:
            due: list[float] = []
            if status == "online" and silent is None:  # offline is stale already
                silence = offline_at(heard, keepalive)
                if silence is not None:
                    due.append(silence)
                stale = stale_at(state_ts, max_interval)
                if stale > now:
                    due.append(stale)
            out[(district, site)] = min(due) if due else None
        return out

    def sites(
        self, now: float, district: str | None = None, keys: Iterable[Key] | None = None
    ) -> list[SiteView]:
        """The table's lines (of a district, or of just these sites)."""
        sql = (
            "SELECT s.district, s.site, s.name, s.state, s.state_ts, s.status, s.keepalive_s,"
            " s.state_max_interval_s, s.received_ts, s.offline_ts, coalesce(a.seq, 0),"
            " (SELECT count(*) FROM events e WHERE e.district = s.district AND e.site = s.site"
            "  AND e.kind = 'event')"
            " FROM sites s LEFT JOIN acks a ON a.district = s.district AND a.site = s.site"
        )
        where: list[str] = []
        params: list[Any] = []
        if district is not None:
            where.append("s.district = ?")
            params.append(district)
        if keys is None:
            batches: list[list[Key]] = [[]]
        else:
            # Only these sites' lines are read (a live push names the few that changed,
            # out of hundreds), in batches within SQLite's limit on parameters.
            wanted = sorted(set(keys))
            if not wanted:
                return []
            batches = [
                wanted[i : i + _KEYS_PER_QUERY] for i in range(0, len(wanted), _KEYS_PER_QUERY)
            ]
        views: list[SiteView] = []
        with self._lock:
            for batch in batches:
                clauses, values = list(where), list(params)
                if batch:
                    rows_sql = ", ".join("(?, ?)" for _ in batch)
                    clauses.append(f"(s.district, s.site) IN (VALUES {rows_sql})")
                    values.extend(part for key in batch for part in key)
                query = sql + (" WHERE " + " AND ".join(clauses) if clauses else "")
                query += " ORDER BY s.district, s.site"
                views.extend(_view(row, now) for row in self._db.execute(query, values))
        if len(batches) > 1:
            views.sort(key=lambda v: (v.district, v.site))
        return views

    def site(self, district: str, site: str, now: float) -> SiteView | None:
        return next(iter(self.sites(now, keys=[(district, site)])), None)

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

    def alarm_ids(self, district: str, site: str) -> dict[str, int]:
        """The site's own number of the latest alarm raised under each code (what an EOC
        acknowledgement names): the state lists alarms by code, the events carry numbers."""
        with self._lock:
            rows = self._db.execute(
                "SELECT json_extract(body, '$.code'), max(json_extract(body, '$.id'))"
                " FROM events WHERE district = ? AND site = ? AND kind = 'event'"
                " AND json_extract(body, '$.type') = 'alarm_raised'"
                " GROUP BY json_extract(body, '$.code')",
                [district, site],
            ).fetchall()
        return {str(code): int(alarm_id) for code, alarm_id in rows if alarm_id is not None}

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
    (district, site, name, state_text, state_ts, status, keepalive, max_interval, heard, offline_ts,
     acked, n) = row  # fmt: skip
    state = json.loads(state_text) if state_text else None
    # the will says offline; so does silence past the deadline (the site's status is also
    # its heartbeat), whichever comes first; the timer's flag says it was past
    silence = offline_at(heard, keepalive)
    silent = offline_ts is not None or (silence is not None and now >= silence)
    offline = status != "online" or silent
    age = None if state_ts is None else max(0.0, now - float(state_ts))
    return SiteView(
        district=district,
        site=site,
        name=name,
        state=state,
        status=status,
        offline=offline,
        stale=now >= stale_at(state_ts, max_interval) or offline,
        data_age_s=age,
        alarms=len((state or {}).get("alarms") or []),
        acked_seq=int(acked),
        events=int(n),
        heard_ts=heard,
        offline_ts=offline_ts,
    )
