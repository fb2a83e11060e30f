"""The probe and metrics server: routes, status codes, bad clients and a clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from consumer.ops.http_server import HealthServer
from consumer.ops.metrics import WorkerMetrics

HOST = "127.0.0.1"


@dataclass
class Probes:
    """Mutable answers the server's callbacks read, so a test can flip them."""

    healthy: bool = True
    ready: bool = False
    reason: str = "restoring state"


@dataclass
class Reply:
    """A parsed HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes


async def exchange(port: int, raw: bytes, *, eof: bool = False) -> Reply:
    """Send ``raw`` on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(raw)
        if eof:
            writer.write_eof()
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 2)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    assert status_line.startswith("HTTP/1.1 ")
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    return Reply(int(status_line.split(" ")[1]), headers, body)


async def get(port: int, path: str) -> Reply:
    """A well-formed GET of ``path``."""
    return await exchange(port, f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())


@pytest.fixture
def probes() -> Probes:
    return Probes()


@pytest.fixture
def metrics() -> WorkerMetrics:
    return WorkerMetrics(model_version="test", threshold=0.5)


@pytest.fixture
async def server(probes: Probes, metrics: WorkerMetrics) -> AsyncIterator[HealthServer]:
    async with HealthServer(
        HOST,
        0,
        metrics,
        health=lambda: probes.healthy,
        ready=lambda: probes.ready,
        not_ready_reason=lambda: probes.reason,
        timeout_s=0.3,
    ) as running:
        yield running


async def test_metrics_page_serves_the_registry(server: HealthServer, metrics: WorkerMetrics) -> None:
    metrics.record_consumed("ticks", 7)
    reply = await get(server.port, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"] == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}
    assert families["bullflag_records_consumed"].samples[0].value == 7


async def test_healthz_follows_the_health_callback(server: HealthServer, probes: Probes) -> None:
    reply = await get(server.port, "/healthz")
    assert (reply.status, reply.body) == (200, b"ok\n")
    assert reply.headers["content-type"].startswith("text/plain")
    probes.healthy = False
    assert (await get(server.port, "/healthz")).status == 503


async def test_readyz_flips_from_503_with_a_reason_to_200(server: HealthServer, probes: Probes) -> None:
    reply = await get(server.port, "/readyz")
    assert (reply.status, reply.body) == (503, b"restoring state\n")
    probes.ready = True
    reply = await get(server.port, "/readyz?verbose=1")
    assert (reply.status, reply.body) == (200, b"ready\n")


async def test_a_standard_client_understands_the_replies(server: HealthServer, probes: Probes) -> None:
    def fetch(path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(HOST, server.port, timeout=2)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    assert await asyncio.to_thread(fetch, "/readyz") == (503, b"restoring state\n")
    probes.ready = True
    assert await asyncio.to_thread(fetch, "/readyz") == (200, b"ready\n")
    assert server.url == f"http://{HOST}:{server.port}"


async def test_unknown_path_is_404_and_other_methods_405(server: HealthServer) -> None:
    assert (await get(server.port, "/")).status == 404
    assert (await get(server.port, "/metricsx")).status == 404
    reply = await exchange(server.port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert reply.status == 405
    assert reply.headers["allow"] == "GET"
    assert (await exchange(server.port, b"HEAD /healthz HTTP/1.1\r\n\r\n")).status == 405


@pytest.mark.parametrize(
    "raw",
    [
        b"HELLO\r\n\r\n",
        b"GET /healthz\r\n\r\n",
        b"GET healthz HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/2.0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        b"\xff\xfe /healthz HTTP/1.1\r\n\r\n",
        b"\r\n\r\n",
    ],
)
async def test_malformed_requests_get_400(server: HealthServer, raw: bytes) -> None:
    assert (await exchange(server.port, raw)).status == 400


async def test_a_request_cut_short_gets_400(server: HealthServer) -> None:
    assert (await exchange(server.port, b"GET /healthz HTT", eof=True)).status == 400


async def test_an_oversized_head_gets_431(server: HealthServer) -> None:
    raw = b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n"
    assert (await exchange(server.port, raw)).status == 431


async def test_an_idle_client_times_out_with_408(server: HealthServer) -> None:
    reply = await exchange(server.port, b"GET /healthz HTTP/1.1\r\n")
    assert reply.status == 408


async def test_a_failing_callback_gets_500_and_the_server_keeps_serving(
    metrics: WorkerMetrics,
) -> None:
    def broken() -> bool:
        raise RuntimeError("worker state unavailable")

    async with HealthServer(HOST, 0, metrics, health=broken, ready=lambda: True) as server:
        assert (await get(server.port, "/healthz")).status == 500
        assert (await get(server.port, "/readyz")).status == 200


async def test_stop_releases_the_port_and_drops_idle_clients(metrics: WorkerMetrics) -> None:
    server = HealthServer(HOST, 0, metrics, health=lambda: True, ready=lambda: True, timeout_s=30)
    with pytest.raises(RuntimeError):
        _ = server.port
    await server.start()
    port = server.port
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        async with asyncio.timeout(5):  # a guard only: the server takes the connection at once
            while not server._handlers:  # accepted and waiting for a request: an idle client
                await asyncio.sleep(0)
        # An idle client would hold stop() for timeout_s (30 s) if it were not dropped.
        await asyncio.wait_for(server.stop(), 5)
        assert await asyncio.wait_for(reader.read(), 1) == b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(HOST, port)
    await server.stop()
