"""The dashboard server without a broker: the page, the JSON API, the live stream and the worker probe.

Records are handed to the dashboard as its topic follower would; the followers themselves point
at a port where nothing listens, so the status shows them retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition

from consumer.config import Settings
from consumer.dashboard import Dashboard
from consumer.dashboard.probe import ProbeUrlError, WorkerProbe, key_metrics
from consumer.ops.http_server import HealthServer
from consumer.ops.metrics import WorkerMetrics
from tests.unit.consumer.dashboard.test_store import bars, document

HOST = "127.0.0.1"
SIGNALS = TopicPartition("signals", 0)
STATE = TopicPartition("state", 0)


def records(tp: TopicPartition, items: list[tuple[bytes | None, bytes | None]]) -> list[ConsumerRecord]:
    return [
        ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, key, value, None, 0, 0, ())
        for offset, (key, value) in enumerate(items)
    ]


async def get(port: int, path: str, headers: str = "") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def port_of(dashboard: Dashboard) -> int:
    return int(dashboard.url.rstrip("/").rsplit(":", 1)[1])


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.fixture
async def dashboard() -> AsyncIterator[Dashboard]:
    settings = Settings(bootstrap_servers="127.0.0.1:1", signals_topic="signals", state_topic="state")
    async with Dashboard(settings) as running:
        yield running


async def test_the_page_and_its_files_are_served(dashboard: Dashboard) -> None:
    port = port_of(dashboard)
    status, page = await get(port, "/")
    assert status == 200 and b'<canvas id="chart"' in page and b"dashboard.js" in page
    assert (await get(port, "/dashboard.js"))[0] == 200
    assert (await get(port, "/dashboard.css"))[0] == 200
    assert (await get(port, "/../app.py"))[0] == 404


async def test_documents_and_their_window_reach_the_api(dashboard: Dashboard) -> None:
    port = port_of(dashboard)
    doc = document(bar=200)
    dashboard._on_signals(SIGNALS, records(SIGNALS, [(b"AAA", orjson.dumps(doc)), (b"AAA", b"{bad")]))
    dashboard._on_state(STATE, records(STATE, bars("AAA", 0, 120)))
    status, body = await get(port, f"/api/window/{doc['id']}")
    window = orjson.loads(body)
    assert status == 200
    assert (len(window["bars"]), window["n_bars"], window["complete"]) == (120, 200, False)
    assert len(window["cam"]) == 200 and window["document"]["symbol"] == "AAA"
    dashboard._on_state(STATE, records(STATE, bars("AAA", 120, 80)))
    assert orjson.loads((await get(port, f"/api/window/{doc['id']}"))[1])["complete"] is True
    assert (await get(port, "/api/window/0123"))[0] == 404
    listing = orjson.loads((await get(port, "/api/signals"))[1])
    assert [r["id"] for r in listing["rows"]] == [doc["id"]]
    assert listing["documents"]["errors"] == {"invalid_json": 1}
    await until(lambda: "retrying" in dashboard.status()["topics"]["signals"]["status"])


async def read_events(reader: asyncio.StreamReader, count: int) -> list[tuple[str, str]]:
    """The next ``count`` named events as (event, data)."""
    found: list[tuple[str, str]] = []
    while len(found) < count:
        block = (await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)).decode()
        fields = dict(line.split(": ", 1) for line in block.strip().split("\n") if ": " in line)
        if "event" in fields:
            found.append((fields["event"], fields["data"]))
    return found


async def test_the_event_stream_sends_what_is_kept_then_live_rows(dashboard: Dashboard) -> None:
    port = port_of(dashboard)
    first, second, third = (document(bar=b) for b in (200, 201, 202))
    dashboard._on_signals(SIGNALS, records(SIGNALS, [(b"AAA", orjson.dumps(first))]))
    dashboard._on_signals(SIGNALS, records(SIGNALS, [(b"AAA", orjson.dumps(second))]))
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(b"GET /api/events HTTP/1.1\r\nLast-Event-ID: 1\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        (kind, data), (status, _) = await read_events(reader, 2)
        assert (kind, [r["id"] for r in orjson.loads(data)]) == ("signals", [second["id"]])
        assert status == "status"
        dashboard._on_signals(SIGNALS, records(SIGNALS, [(b"AAA", orjson.dumps(third))]))
        events = await read_events(reader, 1)
        while events[-1][0] != "signals":
            events = await read_events(reader, 1)
        assert [r["id"] for r in orjson.loads(events[-1][1])] == [third["id"]]
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    await until(lambda: not dashboard._subscribers)


async def test_the_probe_reads_readiness_and_key_metrics_from_the_worker() -> None:
    metrics = WorkerMetrics(model_version="test", threshold=0.5)
    metrics.record_consumed("ticks", 42)
    ready = False
    async with HealthServer(HOST, 0, metrics, health=lambda: True, ready=lambda: ready) as server:
        probe = WorkerProbe(server.url)
        status = await probe.poll()
        assert (status.reachable, status.ready, status.detail) == (True, False, "not ready")
        assert status.metrics["records consumed"] == 42
        ready = True
        assert (await probe.poll()).ready
        port = server.port
    gone = await WorkerProbe(f"http://{HOST}:{port}").poll()
    assert not gone.reachable and "does not answer" in gone.detail
    with pytest.raises(ProbeUrlError, match="http://HOST:PORT"):
        WorkerProbe("localhost:9108")
    assert key_metrics("# nothing\n") == {}


async def test_a_worker_that_starts_after_the_page_is_followed_from_then_on(dashboard: Dashboard) -> None:
    assert dashboard.status()["worker"]["detail"] == "no metrics URL given"
    metrics = WorkerMetrics(model_version="test", threshold=0.5)
    metrics.record_consumed("ticks", 7)
    async with HealthServer(HOST, 0, metrics, health=lambda: True, ready=lambda: True) as server:
        dashboard.follow_worker(server.url)
        await until(lambda: dashboard.status()["worker"]["ready"] is True)
        assert dashboard.status()["worker"]["metrics"]["records consumed"] == 7
        with pytest.raises(RuntimeError, match="already follows"):
            dashboard.follow_worker(server.url)


async def test_following_a_worker_needs_a_started_page_and_a_probe_url() -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    with pytest.raises(RuntimeError, match="start the dashboard"):
        Dashboard(settings).follow_worker("http://127.0.0.1:9108")
    async with Dashboard(settings) as running:
        with pytest.raises(ProbeUrlError):
            running.follow_worker("localhost:9108")
