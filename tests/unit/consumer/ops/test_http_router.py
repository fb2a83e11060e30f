"""The router behind the HTTP server: exact and prefix routes, static files, server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path

import pytest

from consumer.ops.http_router import EventStream, Request, Response, Router, sse_comment, sse_event
from consumer.ops.http_server import HttpServer

HOST = "127.0.0.1"


def get(path: str, method: str = "GET", tail: str = "") -> Request:
    return Request(method, path, {}, {}, tail)


def answer(router: Router, path: str, method: str = "GET") -> Response:
    reply = router.resolve(get(path, method))
    assert isinstance(reply, Response)
    return reply


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<h1>hi</h1>")
    (tmp_path / "app.js").write_text("let x = 1;")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "style.css").write_text("body {}")
    (tmp_path / ".secret").write_text("no")
    return tmp_path


def test_exact_routes_win_over_prefixes_and_the_longest_prefix_wins() -> None:
    router = Router()
    router.get("/api/x", lambda r: Response.text(HTTPStatus.OK, "exact"))
    router.get_prefix("/api/", lambda r: Response.text(HTTPStatus.OK, f"api {r.tail}"))
    router.get_prefix("/api/window/", lambda r: Response.text(HTTPStatus.OK, f"window {r.tail}"))
    assert answer(router, "/api/x").body == b"exact\n"
    assert answer(router, "/api/y").body == b"api y\n"
    assert answer(router, "/api/window/abc").body == b"window abc\n"
    assert answer(router, "/other").status is HTTPStatus.NOT_FOUND


def test_other_methods_get_405_with_allow_and_failures_500() -> None:
    router = Router()

    def broken(_: Request) -> Response:
        raise RuntimeError("boom")

    router.get("/broken", broken)
    reply = answer(router, "/broken", "POST")
    assert reply.status is HTTPStatus.METHOD_NOT_ALLOWED
    assert reply.headers == (("Allow", "GET"),)
    assert answer(router, "/broken").status is HTTPStatus.INTERNAL_SERVER_ERROR


def test_routes_must_be_absolute_and_prefixes_end_in_a_slash() -> None:
    router = Router()
    with pytest.raises(ValueError, match="start with"):
        router.get("api", lambda r: Response.text(HTTPStatus.OK, ""))
    with pytest.raises(ValueError, match="end with"):
        router.get_prefix("/api", lambda r: Response.text(HTTPStatus.OK, ""))


def test_static_files_serve_the_folder_and_never_leave_it(site: Path) -> None:
    router = Router()
    router.static("/", site)
    index = answer(router, "/")
    assert (index.status, index.content_type, index.body) == (
        HTTPStatus.OK,
        "text/html; charset=utf-8",
        b"<h1>hi</h1>",
    )
    assert answer(router, "/app.js").content_type == "text/javascript; charset=utf-8"
    assert answer(router, "/sub/style.css").content_type == "text/css; charset=utf-8"
    for path in ("/../etc/passwd", "/sub/../app.js", "/.secret", "/missing.js", "/sub", "/sub//x"):
        assert answer(router, path).status is HTTPStatus.NOT_FOUND, path


def test_sse_events_are_framed_line_by_line() -> None:
    assert sse_event('{"a": 1}', event="signal", event_id=7) == b'event: signal\nid: 7\ndata: {"a": 1}\n\n'
    assert sse_event("one\ntwo") == b"data: one\ndata: two\n\n"
    assert sse_comment("ping") == b": ping\n\n"


async def test_an_event_stream_reaches_the_client_and_ends_when_it_goes_away() -> None:
    closed = asyncio.Event()
    release = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        try:
            yield sse_event("first", event="hello")
            yield sse_event("second")
            await release.wait()
            yield sse_event("never read")
        finally:
            closed.set()

    router = Router()
    router.get("/events", lambda r: EventStream(events()))
    async with HttpServer(HOST, 0, router, timeout_s=1) as server:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Content-Type: text/event-stream" in head
        body = b""
        while b"second" not in body:
            body += await asyncio.wait_for(reader.read(100), 2)
        assert body == b"event: hello\ndata: first\n\ndata: second\n\n"
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        await asyncio.wait_for(closed.wait(), 2)


async def test_a_finite_stream_closes_the_connection_and_stop_ends_endless_ones() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield sse_comment("open")
            await asyncio.Event().wait()
            yield b""
        finally:
            closed.set()

    async def finite() -> AsyncIterator[bytes]:
        yield sse_event("only")

    router = Router()
    router.get("/endless", lambda r: EventStream(endless()))
    router.get("/finite", lambda r: EventStream(finite()))
    server = HttpServer(HOST, 0, router, timeout_s=1)
    await server.start()
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(b"GET /finite HTTP/1.1\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 2)).endswith(b"\r\n\r\ndata: only\n\n")
    writer.close()
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(b"GET /endless HTTP/1.1\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b": open\n\n"), 2)).startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(server.stop(), 2)
    assert closed.is_set()
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
