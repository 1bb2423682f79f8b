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
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from resilience.api.app import close_app, create_app
from resilience.cycle import Controller


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
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 8080, *, name: str = "api"
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.name = name
        self.port = 0
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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


async def start_api(controller: Controller, host: str, port: int) -> ApiServer:
    """The app over `controller` (tokens in its store's file), serving on host:port."""
    server = ApiServer(create_app(controller), host, port)
    await server.start()
    return server
