"""Routes for :mod:`consumer.ops.http_server`: requests, responses, static files and event streams.

A :class:`Router` maps a GET of an exact path, or of any path under a prefix, to a handler, a
plain function ``Request -> Response | EventStream`` that runs on the event loop (handlers
answer from memory; nothing here blocks). :func:`static_files` serves the files of a folder or
of package data (``importlib.resources``) without ever leaving it; an :class:`EventStream`
is a server-sent-events response (``text/event-stream``) the server writes chunk by chunk as its
async iterator yields them. No web framework: the worker's probes and the dashboard share this.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib.resources.abc import Traversable
from typing import Any

import orjson

__all__ = [
    "EventStream",
    "Handler",
    "Request",
    "Response",
    "Router",
    "sse_comment",
    "sse_event",
    "static_files",
]

log = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_TEXT_SUFFIXES = (".html", ".js", ".css", ".txt", ".svg", ".json")


@dataclass(frozen=True)
class Request:
    """One parsed request head: ``path`` without its query, ``headers`` with lower-case names.

    ``tail`` is the part of the path after the prefix of the route that matched ("" for exact routes).
    """

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    tail: str = ""


@dataclass(frozen=True)
class Response:
    """A complete response; the server adds ``Content-Length``, ``Cache-Control`` and ``Connection``."""

    status: HTTPStatus
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: HTTPStatus, text: str) -> Response:
        """A plain-text response with a trailing newline."""
        return cls(status, TEXT, f"{text}\n".encode())

    @classmethod
    def json(cls, data: Any, status: HTTPStatus = HTTPStatus.OK) -> Response:
        """``data`` as a JSON response (numpy arrays and dataclasses encode as orjson does them)."""
        return cls(status, JSON, orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY))


@dataclass(frozen=True)
class EventStream:
    """A server-sent-events response: each chunk ``events`` yields is written as soon as it comes.

    The stream ends when the iterator ends, when the client goes away or stops reading for the
    server's timeout, or when the server stops; the iterator is closed in every case.
    """

    events: AsyncIterator[bytes]


Handler = Callable[[Request], Response | EventStream]
"""Answers one GET; runs on the event loop, so it must not block."""


def sse_event(data: str, *, event: str | None = None, event_id: int | None = None) -> bytes:
    """One server-sent event; ``data`` may span lines (each becomes a ``data:`` line)."""
    lines = [f"event: {event}"] if event else []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def sse_comment(text: str = "") -> bytes:
    """A comment line: keeps the connection alive through proxies and finds clients gone away."""
    return f": {text}\n\n".encode()


class Router:
    """GET routes: exact paths first, then the longest matching prefix (e.g. ``/api/window/``)."""

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, Handler]] = []

    def get(self, path: str, handler: Handler) -> None:
        """Answer a GET of exactly ``path`` (any query string) with ``handler``."""
        if not path.startswith("/"):
            raise ValueError(f"route {path!r} must start with '/'")
        self._exact[path] = handler

    def get_prefix(self, prefix: str, handler: Handler) -> None:
        """Answer a GET of any path starting with ``prefix`` (ending in '/'); the rest is ``tail``."""
        if not (prefix.startswith("/") and prefix.endswith("/")):
            raise ValueError(f"prefix route {prefix!r} must start and end with '/'")
        self._prefixes.append((prefix, handler))
        self._prefixes.sort(key=lambda route: len(route[0]), reverse=True)

    def static(self, prefix: str, root: Traversable, index: str = "index.html") -> None:
        """Serve the files under ``root`` at ``prefix``; the prefix itself serves ``index``."""
        self.get_prefix(prefix, static_files(root, index))

    def resolve(self, request: Request) -> Response | EventStream:
        """The answer to ``request``: 404 without a route, 405 for methods other than GET, 500 on failure."""
        found = self._lookup(request.path)
        if found is None:
            return Response.text(HTTPStatus.NOT_FOUND, "not found")
        if request.method != "GET":
            return Response(HTTPStatus.METHOD_NOT_ALLOWED, TEXT, b"method not allowed\n", (("Allow", "GET"),))
        handler, tail = found
        try:
            return handler(Request(request.method, request.path, request.query, request.headers, tail))
        except Exception:
            log.exception("handler for %s failed", request.path)
            return Response.text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    def _lookup(self, path: str) -> tuple[Handler, str] | None:
        """The handler for ``path`` and the tail after its prefix."""
        if path in self._exact:
            return self._exact[path], ""
        for prefix, handler in self._prefixes:
            if path.startswith(prefix):
                return handler, path[len(prefix) :]
        return None


def static_files(root: Traversable, index: str = "index.html") -> Handler:
    """A handler serving the file ``root / tail`` (``index`` for an empty tail).

    Only names of letters, digits, ``_``, ``.`` and ``-`` not starting with a dot are served, so
    a request can never climb out of ``root`` or see hidden files; anything else is 404.
    """

    def serve(request: Request) -> Response:
        parts = (request.tail or index).split("/")
        if not all(_SEGMENT.fullmatch(part) for part in parts):
            return Response.text(HTTPStatus.NOT_FOUND, "not found")
        target = root.joinpath(*parts)
        if not target.is_file():
            return Response.text(HTTPStatus.NOT_FOUND, "not found")
        return Response(HTTPStatus.OK, content_type(parts[-1]), target.read_bytes())

    return serve


def content_type(name: str) -> str:
    """The ``Content-Type`` of a file name; text types say UTF-8."""
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith(".js"):
        guessed = "text/javascript"
    return f"{guessed}; charset=utf-8" if name.endswith(_TEXT_SUFFIXES) else guessed
