"""A minimal asyncio HTTP/1.1 server: the worker's ``/metrics``, ``/healthz`` and ``/readyz``, the dashboard.

It runs on the caller's event loop (for the worker, a stuck loop then fails the liveness
probe) and needs no web framework: :class:`HttpServer` parses request heads and writes what a
:class:`~consumer.ops.http_router.Router` answers, a whole response or a server-sent-events
stream. Every connection serves one request and is closed (``Connection: close``). Bad input
never reaches the caller: malformed requests get 400, oversized heads 431, clients that stall
get 408, and any error in a handler only closes that connection. :class:`HealthServer` is the
worker's probe server built on it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

from consumer.ops.http_router import EventStream, Request, Response, Router
from consumer.ops.metrics import WorkerMetrics

__all__ = ["HealthServer", "HttpServer"]

log = logging.getLogger(__name__)

_REQUEST_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (/[\x21-\x7e]*) HTTP/1\.[01]")
_HEAD_LIMIT = 8192


class HttpServer:
    """Serve ``router``'s routes over HTTP/1.1, one request per connection."""

    def __init__(self, host: str, port: int, router: Router, *, timeout_s: float = 5.0) -> None:
        """Configure the server; ``port`` 0 lets the OS pick a free port at :meth:`start`.

        ``timeout_s`` bounds reading a request head and every write, event streams included: a
        client that stops reading for that long is dropped.
        """
        self._host = host
        self._requested_port = port
        self._router = router
        self._timeout_s = timeout_s
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        """The bound port (of the first listening socket); only valid once started."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:9108``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        self._server = await asyncio.start_server(
            self._handle, self._host, self._requested_port, limit=_HEAD_LIMIT
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("%s listening on %s", type(self).__name__, self.url)

    async def stop(self) -> None:
        """Stop accepting, abort requests and event streams in flight and release the port."""
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

    async def __aenter__(self) -> Self:
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
            answer = await self._read_and_route(reader)
            if isinstance(answer, EventStream):
                await self._stream(reader, writer, answer)
            elif answer is not None:
                await self._respond(writer, answer)
        except (ConnectionError, TimeoutError):
            log.debug("http client went away or stalled")
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except Exception:
            log.exception("http server failed to answer a request")
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            try:
                async with asyncio.timeout(self._timeout_s):
                    await writer.wait_closed()
            except (ConnectionError, TimeoutError):
                writer.transport.abort()  # a client that never reads must not hold the connection

    async def _read_and_route(self, reader: asyncio.StreamReader) -> Response | EventStream | None:
        """Read the request head within the timeout and route it (None: nothing to say)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            return Response.text(HTTPStatus.REQUEST_TIMEOUT, "request timeout")
        except asyncio.LimitOverrunError:
            return Response.text(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
        except asyncio.IncompleteReadError as error:
            return Response.text(HTTPStatus.BAD_REQUEST, "incomplete request") if error.partial else None
        lines = head.decode("latin-1").split("\r\n")[:-2]
        match = _REQUEST_LINE.fullmatch(lines[0])
        if match is None or any(":" not in line or line[0] in " \t" for line in lines[1:]):
            return Response.text(HTTPStatus.BAD_REQUEST, "malformed request")
        path, _, query = match[2].partition("?")
        headers = {
            name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in lines[1:])
        }
        request = Request(match[1], path, dict(parse_qsl(query)), headers)
        return self._router.resolve(request)

    async def _respond(self, writer: asyncio.StreamWriter, response: Response) -> None:
        """Write one response and flush it within the timeout."""
        extra = "".join(f"{name}: {value}\r\n" for name, value in response.headers)
        status = response.status
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\nCache-Control: no-store\r\n{extra}"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + response.body)
        async with asyncio.timeout(self._timeout_s):
            await writer.drain()

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: EventStream
    ) -> None:
        """Write an event stream until it ends or the client closes its side (seen at once as EOF)."""
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
            b"Cache-Control: no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n"
        )
        closed = asyncio.ensure_future(reader.read(1))
        events = stream.events
        chunk: asyncio.Future[bytes] | None = None
        try:
            while True:
                chunk = asyncio.ensure_future(anext(events))
                await asyncio.wait({chunk, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not chunk.done():
                    return
                try:
                    data = chunk.result()
                except StopAsyncIteration:
                    return
                writer.write(data)
                async with asyncio.timeout(self._timeout_s):
                    await writer.drain()
        finally:
            pending = [task for task in (chunk, closed) if task is not None and not task.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()


class HealthServer(HttpServer):
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
        reason = not_ready_reason or (lambda: "not ready")

        def metrics_page(_: Request) -> Response:
            body, content_type = metrics.render()
            return Response(HTTPStatus.OK, content_type, body)

        def healthz(_: Request) -> Response:
            if health():
                return Response.text(HTTPStatus.OK, "ok")
            return Response.text(HTTPStatus.SERVICE_UNAVAILABLE, "unhealthy")

        def readyz(_: Request) -> Response:
            if ready():
                return Response.text(HTTPStatus.OK, "ready")
            return Response.text(HTTPStatus.SERVICE_UNAVAILABLE, reason() or "not ready")

        router = Router()
        router.get("/metrics", metrics_page)
        router.get("/healthz", healthz)
        router.get("/readyz", readyz)
        super().__init__(host, port, router, timeout_s=timeout_s)
