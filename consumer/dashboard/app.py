"""The dashboard server: the page, its JSON API and its live event stream, on one asyncio loop.

Routes (all GET, served by :class:`consumer.ops.http_server.HttpServer`):

- ``/`` and ``/<file>``: the page, static files shipped as package data in ``static/``;
- ``/api/events``: server-sent events. ``signals`` (a JSON array of table rows; on connect
  every stored row numbered above ``Last-Event-ID``, then each batch as it arrives; the event
  id is the newest row's number, so a reconnecting browser misses nothing the store still holds)
  and ``status`` (worker readiness, key metrics, topic readers, error counts) every second;
- ``/api/signals``: the stored rows and the status, once, as JSON;
- ``/api/window/<id>``: one document with its activation map and the bars of its window;
- ``/api/status``: the status as JSON.

A subscriber that falls ``QUEUE_LIMIT`` events behind is dropped; its browser reconnects and
catches up from the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from http import HTTPStatus
from importlib.resources import files
from types import TracebackType
from typing import Any, Final, Self

import orjson
from aiokafka import ConsumerRecord, TopicPartition

from consumer.config import Settings
from consumer.dashboard.feeds import TopicFollower
from consumer.dashboard.probe import WorkerProbe, WorkerStatus
from consumer.dashboard.store import DEFAULT_CAPACITY, BarBook, DocumentStore
from consumer.ops.http_router import EventStream, Request, Response, Router, sse_comment, sse_event
from consumer.ops.http_server import HttpServer

log = logging.getLogger(__name__)

CLIENT_ID: Final = "bullflag-dashboard"
STATUS_EVERY_S: Final = 1.0
KEEPALIVE_S: Final = 15.0
QUEUE_LIMIT: Final = 256
STATE_MAX_RECORDS: Final = 50_000


class _Subscriber:
    """One open event stream: its queue of encoded events and whether it fell too far behind."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = asyncio.Event()

    def send(self, event: bytes) -> None:
        """Queue ``event``; a full queue marks the subscriber to be dropped."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()


class Dashboard:
    """The live signals page of one signals topic (and its worker's state topic).

    ``settings`` give the connection (bootstrap servers, security), ``signals_topic`` and
    ``state_topic``; ``metrics_url`` is the worker's probe server, whose readiness and key
    metrics the page shows (none when not given). ``port`` 0 picks a free port; :attr:`url`
    says which once started. Usable as ``async with Dashboard(settings) as dashboard:``.
    """

    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        metrics_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = DocumentStore(DEFAULT_CAPACITY)
        self.bars = BarBook()
        self.probe = WorkerProbe(metrics_url) if metrics_url else None
        self._signals = TopicFollower(settings, settings.signals_topic, self._on_signals, client_id=CLIENT_ID)
        self._state = TopicFollower(
            settings,
            settings.state_topic,
            self._on_state,
            client_id=CLIENT_ID,
            max_records=STATE_MAX_RECORDS,
        )
        self._subscribers: set[_Subscriber] = set()
        self._tasks: list[asyncio.Task[None]] = []
        router = Router()
        router.get("/api/events", self._events)
        router.get("/api/signals", lambda _: Response.json({"rows": self.store.rows(), **self.status()}))
        router.get("/api/status", lambda _: Response.json(self.status()))
        router.get_prefix("/api/window/", self._window)
        router.static("/", files("consumer.dashboard").joinpath("static"))
        self._server = HttpServer(host, port, router)

    @property
    def url(self) -> str:
        """The page's URL, e.g. ``http://127.0.0.1:8050``; only valid once started."""
        return self._server.url + "/"

    async def start(self) -> None:
        """Serve the page and start following the topics (and polling the worker)."""
        await self._server.start()
        jobs = [self._signals.run(), self._state.run(), self._tick()]
        if self.probe is not None:
            jobs.append(self.probe.run())
        self._tasks = [asyncio.create_task(job) for job in jobs]
        log.info("dashboard on %s for topic %r", self.url, self.settings.signals_topic)

    def follow_worker(self, metrics_url: str) -> None:
        """Show the worker at ``metrics_url`` from now on (one that started after the page did).

        Raises :class:`~consumer.dashboard.probe.ProbeUrlError` for a URL that is not
        ``http://HOST:PORT``, and :class:`RuntimeError` when a worker is already followed or
        the page is not serving.
        """
        if self.probe is not None:
            raise RuntimeError(f"the dashboard already follows the worker at {self.probe.url}")
        if not self._tasks:
            raise RuntimeError("start the dashboard before giving it a worker to follow")
        self.probe = WorkerProbe(metrics_url)
        self._tasks.append(asyncio.create_task(self.probe.run()))

    async def stop(self) -> None:
        """Stop the readers, close every event stream and release the port."""
        self._signals.stop()
        self._state.stop()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.stop()

    async def __aenter__(self) -> Self:
        """Start for the duration of an ``async with`` block."""
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop when the ``async with`` block ends."""
        await self.stop()

    def status(self) -> dict[str, Any]:
        """Everything the status bar shows."""
        worker = self.probe.status if self.probe is not None else WorkerStatus(detail="no metrics URL given")
        return {
            "worker": worker.as_json(),
            "topics": {
                "signals": {"name": self._signals.topic, "status": self._signals.status},
                "state": {"name": self._state.topic, "status": self._state.status},
            },
            "documents": self.store.stats(),
            "bars": {"symbols": self.bars.symbols, "bad_records": self.bars.bad_records},
            "last_seq": self.store.last_seq,
        }

    def _on_signals(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Store a fetched batch of documents and send the new rows to every open stream."""
        rows = [
            row
            for record in records
            if (row := self.store.add(record.value, f"{tp.topic}[{tp.partition}]@{record.offset}"))
        ]
        if rows:
            self._broadcast(sse_event(_json(rows), event="signals", event_id=rows[-1]["seq"]))

    def _on_state(self, _: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Fold a fetched batch of state records into the bar book."""
        self.bars.apply([r.key for r in records], [r.value for r in records])

    def _broadcast(self, event: bytes) -> None:
        """Queue ``event`` on every open stream."""
        for subscriber in self._subscribers:
            subscriber.send(event)

    async def _tick(self) -> None:
        """Send the status to every open stream once a second."""
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            if self._subscribers:
                self._broadcast(sse_event(_json(self.status()), event="status"))

    def _events(self, request: Request) -> EventStream:
        """The live stream, starting after the row the browser saw last (``Last-Event-ID``)."""
        after = request.headers.get("last-event-id", request.query.get("after", "0"))
        return EventStream(self._stream(int(after) if after.isdigit() else 0))

    async def _stream(self, after: int) -> AsyncIterator[bytes]:
        """Rows above ``after`` and the status at once, then whatever is broadcast, with keep-alives."""
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        try:
            yield b"retry: 1000\n\n"
            rows = self.store.rows(after)
            if rows:
                yield sse_event(_json(rows), event="signals", event_id=rows[-1]["seq"])
            yield sse_event(_json(self.status()), event="status")
            while not subscriber.overflowed.is_set():
                try:
                    async with asyncio.timeout(KEEPALIVE_S):
                        event = await subscriber.queue.get()
                except TimeoutError:
                    event = sse_comment("keep-alive")
                yield event
        finally:
            self._subscribers.discard(subscriber)

    def _window(self, request: Request) -> Response:
        """One document, its map and its window's bars; 404 once it is no longer kept."""
        stored = self.store.get(request.tail)
        if stored is None:
            return Response.json(
                {"error": f"no document {request.tail!r} is kept (unknown id, or evicted as older)"},
                HTTPStatus.NOT_FOUND,
            )
        document = stored.document
        bars = self.bars.window(document.symbol, document.window_start_ts, document.bar_end_ts)
        return Response.json(
            {
                "document": stored.row,
                "cam": stored.cam,
                "bars": bars,
                "n_bars": document.n_bars,
                "complete": len(bars) == document.n_bars,
            }
        )


def _json(data: Any) -> str:
    """Compact JSON text for an event."""
    return orjson.dumps(data).decode()
