"""Token lifetimes over the API: an expired token gets 401 and is audited (once a minute,
not per request); each token's last use reaches `GET /api/v1/tokens` without a write per
request; a token made with a lifetime says when it ends."""

from __future__ import annotations

import asyncio

import pytest

from resilience.api.security import ApiContext

from .conftest import Api

pytestmark = pytest.mark.integration


async def test_an_expired_token_is_refused_and_audited_once(api: Api) -> None:
    ctx: ApiContext = api.server.app.state.api
    now = api.running.controller.wall()
    secret = await asyncio.to_thread(
        ctx.tokens.create, "short", "operator", by="test", now=now - 120, expires_s=60
    )
    client = api.client(token=secret)
    for _ in range(3):
        r = await client.get("/api/v1/status")
        assert r.status_code == 401, r.text
        assert r.json()["detail"] == "Authorization: token 'short' has expired; ask for a new one"
        assert r.headers["www-authenticate"] == "Bearer"
    assert (await client.post("/api/v1/loads/lift/shed")).status_code == 401
    await asyncio.to_thread(api.running.store.flush, 5.0)
    refused = [
        c for c in api.running.store.commands(limit=50) if c.actor == "short"
    ]
    assert len(refused) == 1, refused  # four refusals, one audit row this minute
    assert refused[0].outcome == "refused" and "token expired" in refused[0].detail


async def test_last_use_and_lifetime_show_in_the_token_list(api: Api) -> None:
    ctx: ApiContext = api.server.app.state.api
    admin = api.client("admin")
    made = await admin.post(
        "/api/v1/tokens", json={"name": "kiosk", "role": "viewer", "expires_in_s": 86400}
    )
    assert made.status_code == 201, made.text
    assert made.json()["expires_ts"] > api.running.controller.wall() + 86000
    kiosk = api.client(token=made.json()["token"])
    for _ in range(5):
        assert (await kiosk.get("/api/v1/status")).status_code == 200
    await asyncio.gather(*ctx.writes)
    listed = {t["name"]: t for t in (await admin.get("/api/v1/tokens")).json()["tokens"]}
    # the admin's own first use was written at once; the kiosk's five requests wait for the
    # minute (no write per request), and are written when the app closes
    assert listed["test-admin"]["last_used_ts"] is not None
    assert listed["kiosk"]["last_used_ts"] is None
    assert listed["kiosk"]["expires_ts"] == made.json()["expires_ts"]
    await ctx.flush_uses()
    kiosk_row = next(t for t in ctx.tokens.list() if t.name == "kiosk")
    assert kiosk_row.last_used_ts is not None
    bad = await admin.post("/api/v1/tokens", json={"name": "k2", "role": "viewer",
                                                   "expires_in_s": 5})  # fmt: skip
    assert bad.status_code == 422 and "expires_in_s" in bad.json()["detail"]
