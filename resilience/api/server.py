"""Serve the app with uvicorn in the running event loop (the controller's), on a socket we bind.

Binding the socket here, before uvicorn starts, makes port 0 work (tests, the
benchmark) and tells the caller the real URL at once. uvicorn's own signal
handlers are disabled: the embedding program (`resilience run`) owns SIGINT and
SIGTERM. Streams are ended before uvicorn is asked to stop, so shutdown does not
wait on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import socket
import ssl
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI

from resilience.api.app import close_app, create_app
from resilience.config import ApiSection
from resilience.cycle import Controller

log = logging.getLogger("resilience.api")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AppServer:
    """One ASGI app on one host:port, served by a task of the running loop.

    The API and firmware_sim's control interface both serve this way: bound at once
    (the port is known and connections queue before uvicorn starts), with TCP_NODELAY.
    `name` says which in a bind error.
    """

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        name: str = "api",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.tls = tls
        self.host = host
        self.requested_port = port
        self.name = name
        self.port = 0
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def _tls_context(
        self, config: uvicorn.Config, default: Callable[[], ssl.SSLContext]
    ) -> ssl.SSLContext:
        assert self.tls is not None
        return self.tls

    async def start(self) -> str:
        """Bind and start serving; returns the URL."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are
        # TCP, and without it every keep-alive answer waits ~40 ms for a delayed ACK (Nagle)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"{self.name}: cannot listen on {self.host}:{self.requested_port} ({exc.strerror})"
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            ssl_context_factory=self._tls_context if self.tls is not None else None,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[sock]), name=f"{self.name} server"
        )
        return self.url

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = None
        self._task = None


class ApiServer(AppServer):
    """The controller's API app: its stream hub and token store are closed on stop."""

    async def stop(self) -> None:
        await close_app(self.app)
        await super().stop()


async def start_api(
    controller: Controller, host: str, port: int, api: ApiSection | None = None
) -> ApiServer:
    """The app over `controller` (tokens in its store's file), serving on host:port: HTTPS
    when `api` (the site file's [api]) gives a certificate, plain HTTP otherwise (warned
    when that reaches beyond loopback, which check-config allows only on request)."""
    api = api if api is not None else ApiSection()
    files = api.tls_files()
    tls = None
    if files is not None:
        from resilience.tls import expiry_warning, server_context

        tls = server_context(files)
        warning = expiry_warning(files, datetime.datetime.now(datetime.UTC))
        if warning is not None:
            log.warning(warning)
    elif api.plain_http_on_lan:
        log.warning(
            "api: serving plain HTTP on %s (allow_plain_http = true): bearer tokens cross the"
            " network in clear text; give [api] tls_cert and tls_key (deploy/install.sh)",
            api.host,
        )
    server = ApiServer(create_app(controller, api=api), host, port, tls=tls)
    await server.start()
    return server
