"""Token lifetimes: expiry, last use (coalesced), rotation, and the migration of a store
made before them (tests/data/tokens-48be53c.sql, dumped from a store the code at 48be53c
made: rule 6, nothing acknowledged is lost)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from resilience import cli
from resilience.auth import Expired, Principal, TokenError, TokenStore, TokenUses, parse_duration
from resilience.store import Store

DUMP = Path(__file__).resolve().parent / "data" / "tokens-48be53c.sql"
SITE = Path(__file__).resolve().parents[1] / "config" / "site.toml"


def old_store(path: Path) -> dict[str, str]:
    """A store as the code at 48be53c left it; returns the live tokens' secrets by name."""
    text = DUMP.read_text(encoding="utf-8")
    with sqlite3.connect(path) as conn:
        conn.executescript(text)
    conn.close()
    secrets = dict(re.findall(r"^-- (tablet-hall|old-admin) (?:\(live\) )?(\S+)$", text, re.M))
    assert set(secrets) == {"tablet-hall", "old-admin"}
    return secrets


def rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        found = list(
            conn.execute(
                "SELECT id, name, role, hash, created_ts, created_by, revoked_ts, revoked_by"
                " FROM tokens ORDER BY id"
            )
        )
    conn.close()
    return found


def test_a_store_made_before_lifetimes_is_migrated_without_losing_a_row(tmp_path: Path) -> None:
    path = tmp_path / "site.sqlite"
    secrets = old_store(path)
    before = rows(path)
    assert len(before) == 3
    tokens = TokenStore(path)
    try:
        assert rows(path) == before  # every row, every value, as it was
        with sqlite3.connect(path) as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(tokens)")]
            added = list(conn.execute("SELECT expires_ts, last_used_ts FROM tokens"))
        conn.close()
        assert columns[-2:] == ["expires_ts", "last_used_ts"]
        assert added == [(None, None)] * 3  # no expiry, no use recorded: as before
        # the secrets handed out before the migration still work, and never expire
        assert tokens.lookup(secrets["tablet-hall"]) == Principal("tablet-hall", "operator")
        assert tokens.lookup(secrets["old-admin"], now=4e9) == Principal("old-admin", "admin")
        assert [t.name for t in tokens.list(include_revoked=True)] == [
            "tablet-hall", "old-admin", "old-admin"
        ]  # fmt: skip
        TokenStore(path).close()  # opening it again changes nothing
        assert rows(path) == before
    finally:
        tokens.close()
    store = Store(path)  # the rest of the file is the Store's, untouched
    try:
        assert [c.command for c in store.commands(limit=10)] == ["token_create"]
    finally:
        store.close()


def test_expiry_and_rotation(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path / "site.sqlite")
    try:
        secret = tokens.create("kiosk", "viewer", by="test", now=1000.0, expires_s=3600)
        assert tokens.check(secret, now=4599.0) == Principal("kiosk", "viewer")
        expired = tokens.check(secret, now=4600.0)
        assert isinstance(expired, Expired) and expired.expires_ts == 4600.0
        assert expired.principal.name == "kiosk"
        assert tokens.lookup(secret, now=4600.0) is None
        with pytest.raises(TokenError, match="expires: a lifetime"):
            tokens.create("x", "viewer", by="test", expires_s=10)

        new, info = tokens.rotate("kiosk", by="test", now=5000.0)
        assert new != secret and (info.name, info.role) == ("kiosk", "viewer")
        assert info.expires_ts == 8600.0  # the same lifetime as the old one, from now
        assert tokens.check(secret, now=5001.0) is None  # revoked, not merely expired
        assert tokens.lookup(new, now=5001.0) == Principal("kiosk", "viewer")
        listed = tokens.list(include_revoked=True)
        assert [(t.name, t.revoked_ts) for t in listed] == [("kiosk", 5000.0), ("kiosk", None)]
        third, info = tokens.rotate("kiosk", by="test", now=6000.0, expires_s=60)
        assert tokens.lookup(third, now=6001.0) == Principal("kiosk", "viewer")
        assert info.expires_ts == 6060.0 and tokens.lookup(new, now=6001.0) is None
        with pytest.raises(TokenError, match="name: no live token named 'nobody'"):
            tokens.rotate("nobody", by="test")
        assert len(tokens.list(include_revoked=True)) == 3  # the refusal wrote nothing
    finally:
        tokens.close()


def test_last_use_is_written_at_most_once_a_minute(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path / "site.sqlite")
    try:
        tokens.create("a", "viewer", by="test", now=0.0)
        tokens.create("b", "viewer", by="test", now=0.0)
        a, b = tokens.list()
        ids = {row[1]: row[0] for row in rows(tmp_path / "site.sqlite")}
        uses = TokenUses(interval_s=60)
        assert uses.seen(ids["a"], 100.0) == {ids["a"]: 100.0}  # the first: at once
        for t in range(101, 160):  # a request a second: nothing to write
            assert uses.seen(ids["a"], float(t)) is None
        assert uses.seen(ids["b"], 150.0) is None
        batch = uses.seen(ids["a"], 160.0)
        assert batch == {ids["a"]: 160.0, ids["b"]: 150.0}  # one write for both
        tokens.record_use(batch)
        tokens.record_use({ids["a"]: 120.0})  # an older time never overwrites a newer
        assert {t.name: t.last_used_ts for t in tokens.list()} == {"a": 160.0, "b": 150.0}
        assert (a.last_used_ts, b.last_used_ts) == (None, None)
        assert uses.audit_expired(ids["a"], 0.0) and not uses.audit_expired(ids["a"], 59.0)
        assert uses.audit_expired(ids["a"], 60.0)
    finally:
        tokens.close()


def test_durations() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("12h") == 43200 and parse_duration("90m") == 5400
    assert parse_duration("2w") == 14 * 86400 and parse_duration("1.5h") == 5400
    for bad in ("30", "30 days", "-1d", "10s", "11000d", ""):
        with pytest.raises(TokenError, match="expires:"):
            parse_duration(bad)


def site_file(tmp_path: Path) -> Path:
    text = SITE.read_text(encoding="utf-8").replace(
        'store_path = "', f'store_path = "{tmp_path}/', 1
    )
    site = tmp_path / "site.toml"
    site.write_text(text, encoding="utf-8")
    return site


def test_token_cli_expires_rotate_and_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = site_file(tmp_path)
    config = ["--config", str(site)]
    assert cli.main(["token", "create", "--role", "viewer", "--name", "hall",
                     "--expires", "30d", *config]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "valid until" in out
    first = out.strip().splitlines()[-1]
    assert cli.main(["token", "list", *config]) == 0
    listed = capsys.readouterr().out
    assert "hall" in listed and "expires 20" in listed and "last used never" in listed
    assert cli.main(["token", "create", "--role", "viewer", "--name", "x",
                     "--expires", "soon", *config]) == 1  # fmt: skip
    assert "expires: 'soon' is not a duration" in capsys.readouterr().out

    assert cli.main(["token", "rotate", "hall", *config]) == 0
    out = capsys.readouterr().out
    assert "the old secret is revoked" in out and "valid until" in out
    second = out.strip().splitlines()[-1]
    store_path = re.search(r"rotated in (\S+):", out)
    assert store_path is not None
    tokens = TokenStore(store_path.group(1))
    try:
        assert tokens.lookup(first) is None
        assert tokens.lookup(second) == Principal("hall", "viewer")
    finally:
        tokens.close()
    assert cli.main(["token", "rotate", "nobody", *config]) == 1
    assert "no live token named 'nobody'" in capsys.readouterr().out
    store = Store(store_path.group(1))
    try:
        audit = [(c.command, c.outcome) for c in store.commands(limit=10)]
    finally:
        store.close()
    assert ("token_rotate", "accepted") in audit and ("token_rotate", "refused") in audit
    assert ("token_create", "refused") in audit
