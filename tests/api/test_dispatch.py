"""Every route of the app, found by iterating over the app's routes (a new route is covered
without touching this file): the caller is authenticated before its input is read, and
each method of a route's path gets its own answer (OPTIONS, HEAD, 405 with `Allow`)."""

from __future__ import annotations

import re
from collections import defaultdict

from fastapi.routing import APIRoute, iter_route_contexts

from resilience.api.dispatch import allowed_methods, required_role
from resilience.store import OVERFLOW_COMMAND

from .conftest import Api

BAD_QUERY = {"limit": "many", "no_such_parameter": "1"}
BAD_BODY = b'{"not json'


def bad_path(path_format: str) -> str:
    """The route's path with every parameter a value no pattern or type accepts."""
    return re.sub(r"{[^}]+}", "%20!!%20", path_format)


def protected_routes(api: Api) -> list[tuple[str, str, str]]:
    """(method, path format, role) of every route that needs a token."""
    app = api.server.app
    found = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or route.path_format is None:
            continue
        role = required_role(route.dependant)
        if role is None:
            continue
        for method in sorted(route.methods or ()):
            found.append((method, route.path_format, role))
    return found


def route_paths(api: Api) -> dict[str, set[str]]:
    """Every route path of the app (API, runbooks, docs) and the methods its routes take."""
    paths: dict[str, set[str]] = defaultdict(set)
    for route in iter_route_contexts(api.server.app.routes):
        if route.path_format is not None and route.methods is not None:
            paths[route.path_format] |= set(route.methods)
    return paths


async def test_no_token_is_401_before_any_input_is_read(api: Api) -> None:
    routes = protected_routes(api)
    assert len(routes) >= 22
    anonymous = api.client(role=None)
    forged = api.client(token="x" * 43)
    for method, path, _role in routes:
        if path == "/api/v1/stream":
            continue  # an accepted stream never ends; its 401 is asserted below
        for client in (anonymous, forged):
            r = await client.request(
                method,
                bad_path(path),
                params=BAD_QUERY,
                content=BAD_BODY,
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["WWW-Authenticate"] == "Bearer"
    r = await anonymous.get("/api/v1/stream", params=BAD_QUERY)
    assert r.status_code == 401


async def test_a_role_that_may_not_is_403_before_any_input_is_read(api: Api) -> None:
    viewer = api.client("viewer")
    checked = 0
    for method, path, role in protected_routes(api):
        if role == "viewer":
            continue
        r = await viewer.request(
            method,
            bad_path(path),
            params=BAD_QUERY,
            content=BAD_BODY,
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert f"needs {role}" in r.json()["detail"]
        checked += 1
    assert checked >= 18
    # with a token that may, the same input is what is wrong
    operator = api.client("operator")
    r = await operator.put("/api/v1/loads/lift/tier", content=BAD_BODY)
    assert r.status_code == 422 and r.json()["errors"]


async def test_options_answers_every_route_path_with_its_methods(api: Api) -> None:
    client = api.client(role=None)
    paths = route_paths(api)
    assert {"POST"} == paths["/api/v1/commands/reconnect"]
    for path, methods in paths.items():
        r = await client.options(bad_path(path).replace("%20!!%20", "x1"))
        assert r.status_code == 204, (path, r.status_code, r.text)
        assert r.headers["Allow"] == ", ".join(allowed_methods(methods)), path
    r = await client.options("/api/v1/tokens")
    assert r.headers["Allow"] == "GET, HEAD, OPTIONS, POST"  # two routes, one path


async def test_a_method_no_route_of_the_path_takes_is_405_with_allow(api: Api) -> None:
    client = api.client("admin")
    for path, methods in route_paths(api).items():
        for method in ("PATCH", "TRACE", "DELETE", "PUT", "POST", "GET"):
            if method in methods or (method == "GET" and "HEAD" in methods):
                continue
            r = await client.request(method, bad_path(path).replace("%20!!%20", "x1"))
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.headers["Allow"] == ", ".join(allowed_methods(methods))
            assert method in r.json()["detail"]


async def test_head_is_the_get_without_its_body(api: Api) -> None:
    viewer = api.client("viewer")
    get = await viewer.get("/api/v1/status")
    head = await viewer.head("/api/v1/status")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert int(head.headers["Content-Length"]) > 0
    # HEAD is authenticated like GET, and the stream's headers come without the stream
    assert (await api.client(role=None).head("/api/v1/status")).status_code == 401
    stream = await viewer.head("/api/v1/stream")
    assert stream.status_code == 200 and stream.content == b""
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    runbook = await api.client(role=None).head("/runbooks/islanded.md")
    assert runbook.status_code == 200 and runbook.content == b""


async def test_a_burst_of_refusals_costs_one_audit_row_with_its_count(api: Api) -> None:
    viewer = api.client("viewer")
    for _ in range(40):
        assert (await viewer.post("/api/v1/commands/reconnect")).status_code == 403
    operator = api.client("operator")
    for _ in range(5):
        r = await operator.put("/api/v1/loads/lift/tier", json={"tier": "nope"})
        assert r.status_code == 422
    assert api.running.store.flush(5.0)
    rows = api.running.store.commands(limit=100)
    forbidden = [c for c in rows if c.actor == "test-viewer"]
    rejected = [c for c in rows if c.actor == "test-operator"]
    # one row per minute (two if the burst straddled a minute), the count is exact
    assert 1 <= len(forbidden) <= 2 and sum(c.count for c in forbidden) == 40
    assert forbidden[0].outcome == "forbidden" and "needs operator" in forbidden[0].detail
    assert 1 <= len(rejected) <= 2 and sum(c.count for c in rejected) == 5
    assert all(c.command != OVERFLOW_COMMAND for c in rows)
    r = await api.client("operator").get("/api/v1/commands")
    assert sum(c["count"] for c in r.json()["commands"] if c["actor"] == "test-viewer") == 40

