"""How a request reaches its route: the caller is authenticated before its input is read,
and every method of a route's path gets an answer of its own.

`AuthFirstRoute` is the API router's route class. A route that takes a principal
(`require(role)` among its dependencies) checks the bearer token and the role before
FastAPI parses the body or validates the path and query: a caller without a valid
token learns nothing about the route's input (401, never 422), and a viewer's
mutation is refused (403, audited) before its body is looked at.

`MethodFallback` sits between the routes and the UI's catch-all mount. Without it, a
path whose routes do not take the request's method would fall through to the static
files (`OPTIONS` answered 405 `Allow: GET, HEAD`, `HEAD /api/v1/status` 404). For a
path some route matches it answers, over all the routes of that path:

    OPTIONS    204, `Allow` listing the path's methods (plus HEAD where GET, and OPTIONS)
    HEAD       the GET route's answer without its body (where the path has GET)
    any other  405 with the same `Allow` and a JSON `detail`

Paths no route matches go on to the UI's files as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute, Match, compile_path
from starlette.types import Message, Receive, Scope, Send

from resilience.api.security import authorize

__all__ = ["AuthFirstRoute", "MethodFallback", "allowed_methods", "required_role"]

ROLE_ATTRIBUTE = "required_role"
"""The attribute `security.require` sets on its dependency: the role the route needs."""


def required_role(dependant: Dependant) -> str | None:
    """The role a route's dependencies require (`require(role)`), or None for a public one."""
    role = getattr(dependant.call, ROLE_ATTRIBUTE, None)
    if isinstance(role, str):
        return role
    for sub in dependant.dependencies:
        found = required_role(sub)
        if found is not None:
            return found
    return None


class AuthFirstRoute(APIRoute):
    """An APIRoute that authenticates (and checks the role) before FastAPI reads the input."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        role = required_role(self.dependant)
        if role is None:
            return handler

        async def authenticated(request: Request) -> Response:
            await authorize(request, role)
            return await handler(request)

        return authenticated


def allowed_methods(methods: Iterable[str]) -> list[str]:
    """What `Allow` says for a path whose routes take `methods`: HEAD wherever GET is,
    OPTIONS always (this module answers it)."""
    allowed = {m.upper() for m in methods}
    if "GET" in allowed:
        allowed.add("HEAD")
    allowed.add("OPTIONS")
    return sorted(allowed)


class _HeadSent(Exception):
    """Raised into the GET route once a HEAD answer's headers are out: stops a stream."""


class MethodFallback(BaseRoute):
    """Answers OPTIONS, HEAD and unsupported methods on the app's route paths (see the module
    docstring). Add it after every route and before the UI mount."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._paths: list[tuple[Any, frozenset[str]]] | None = None

    def _table(self) -> list[tuple[Any, frozenset[str]]]:
        """Each route path's regex and its methods, built on the first request (all routes
        are in place by then)."""
        if self._paths is None:
            paths: dict[str, set[str]] = {}
            for route in iter_route_contexts(self._app.routes):
                if route.route is self or route.path is None or route.methods is None:
                    continue
                paths.setdefault(route.path, set()).update(route.methods)
            self._paths = [
                (compile_path(path)[0], frozenset(methods)) for path, methods in paths.items()
            ]
        return self._paths

    def _methods_for(self, scope: Scope) -> frozenset[str] | None:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]  # as the routes match it (starlette's get_route_path)
        found: set[str] = set()
        matched = False
        for regex, methods in self._table():
            if regex.match(path):
                matched = True
                found |= methods
        return frozenset(found) if matched else None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        methods = self._methods_for(scope)
        if methods is None or scope["method"] in methods:
            return Match.NONE, {}
        return Match.FULL, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = self._methods_for(scope) or frozenset()
        allow = ", ".join(allowed_methods(methods))
        method = scope["method"]
        if method == "HEAD" and "GET" in methods:
            await self._head(scope, receive, send)
            return
        response: Response
        if method == "OPTIONS":
            response = Response(status_code=204, headers={"Allow": allow})
        else:
            response = JSONResponse(
                {"detail": f"method: {method} is not allowed here (allowed: {allow})"},
                status_code=405,
                headers={"Allow": allow},
            )
        await response(scope, receive, send)

    async def _head(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The GET route's answer, headers only: its body (or stream) is cut after them."""
        done = False

        async def headers_only(message: Message) -> None:
            nonlocal done
            if done:
                raise _HeadSent
            if message["type"] == "http.response.start":
                await send(message)
                return
            done = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            raise _HeadSent

        as_get = dict(scope, method="GET")
        with contextlib.suppress(_HeadSent):
            await scope["router"](as_get, receive, headers_only)
