"""A minimal asyncio HTTP/1.1 server for ``/metrics``, ``/healthz`` and ``/readyz``.

It runs on the worker's event loop, so a stuck loop fails the liveness probe, and it needs
no web framework. Every connection serves one request and is closed (``Connection: close``).
Bad input never reaches the worker: malformed requests get 400, oversized heads 431, clients
that stall get 408, and any error in a handler only closes that connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from typing import Any

from consumer.ops.metrics import WorkerMetrics

__all__ = ["HealthServer"]

log = logging.getLogger(__name__)

_REQUEST_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (/[\x21-\x7e]*) HTTP/1\.[01]")
_HEAD_LIMIT = 8192
_TEXT = "text/plain; charset=utf-8"
_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

Response = tuple[HTTPStatus, str, bytes]


class HealthServer:
    """Serve the worker's metrics and its liveness and readiness probes over HTTP."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: WorkerMetrics,
        health: Callable[[], bool],
        ready: Callable[[], bool],
        not_ready_reason: Callable[[], str] | None = None,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        """Configure the server; ``port`` 0 lets the OS pick a free port at :meth:`start`."""
        self._host = host
        self._requested_port = port
        self._metrics = metrics
        self._health = health
        self._ready = ready
        self._reason = not_ready_reason or (lambda: "not ready")
        self._timeout_s = timeout_s
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        """The bound port (of the first listening socket); only valid once started."""
        if self._port is None:
            raise RuntimeError("HealthServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:9108``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("HealthServer is already started")
        self._server = await asyncio.start_server(
            self._handle, self._host, self._requested_port, limit=_HEAD_LIMIT
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("health server listening on %s", self.url)

    async def stop(self) -> None:
        """Stop accepting, abort requests in flight and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await asyncio.sleep(0)  # let connections accepted just before close() register their task
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()
        self._port = None

    async def __aenter__(self) -> HealthServer:
        """Start the server for the duration of an ``async with`` block."""
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the server when the ``async with`` block ends."""
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one request on a fresh connection, then close it whatever happens."""
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            response = await self._read_and_route(reader)
            if response is not None:
                await self._respond(writer, *response)
        except (ConnectionError, TimeoutError):
            log.debug("health server client went away or stalled")
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except Exception:
            log.exception("health server failed to answer a request")
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            try:
                async with asyncio.timeout(self._timeout_s):
                    await writer.wait_closed()
            except (ConnectionError, TimeoutError):
                writer.transport.abort()  # a client that never reads must not hold the connection

    async def _read_and_route(self, reader: asyncio.StreamReader) -> Response | None:
        """Read the request head within the timeout and build the response (None: nothing to say)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            return _text(HTTPStatus.REQUEST_TIMEOUT, "request timeout")
        except asyncio.LimitOverrunError:
            return _text(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
        except asyncio.IncompleteReadError as error:
            return _text(HTTPStatus.BAD_REQUEST, "incomplete request") if error.partial else None
        lines = head.decode("latin-1").split("\r\n")[:-2]
        match = _REQUEST_LINE.fullmatch(lines[0])
        if match is None or any(":" not in line or line[0] in " \t" for line in lines[1:]):
            return _text(HTTPStatus.BAD_REQUEST, "malformed request")
        method, path = match[1], match[2].partition("?")[0]
        if path not in _PATHS:
            return _text(HTTPStatus.NOT_FOUND, "not found")
        if method != "GET":
            return _text(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
        try:
            return self._page(path)
        except Exception:
            log.exception("health server handler for %s failed", path)
            return _text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    async def _respond(
        self, writer: asyncio.StreamWriter, status: HTTPStatus, ctype: str, body: bytes
    ) -> None:
        """Write one response and flush it within the timeout."""
        allow = "Allow: GET\r\n" if status is HTTPStatus.METHOD_NOT_ALLOWED else ""
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n{allow}Connection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        async with asyncio.timeout(self._timeout_s):
            await writer.drain()

    def _page(self, path: str) -> Response:
        """The response to a GET of one of the known paths."""
        if path == "/metrics":
            body, content_type = self._metrics.render()
            return HTTPStatus.OK, content_type, body
        if path == "/healthz":
            if self._health():
                return _text(HTTPStatus.OK, "ok")
            return _text(HTTPStatus.SERVICE_UNAVAILABLE, "unhealthy")
        if self._ready():
            return _text(HTTPStatus.OK, "ready")
        return _text(HTTPStatus.SERVICE_UNAVAILABLE, self._reason() or "not ready")


def _text(status: HTTPStatus, text: str) -> Response:
    """A plain-text response with a trailing newline."""
    return status, _TEXT, f"{text}\n".encode()
