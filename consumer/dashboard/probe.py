"""The worker's readiness and key metrics for the dashboard, read from its probe server.

``metrics_url`` is the base URL of a worker's ``/metrics``, ``/healthz`` and ``/readyz``
server (``bullflag run --metrics-port``). :class:`WorkerProbe` polls ``/readyz`` and
``/metrics`` with a tiny asyncio HTTP/1.0 client (no thread, no extra dependency) and keeps a
summary the page shows; a worker that does not answer is shown as unreachable, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

POLL_S: Final = 1.0
TIMEOUT_S: Final = 2.0
BODY_LIMIT: Final = 4 << 20
KEY_METRICS: Final = {
    "bullflag_records_consumed": "records consumed",
    "bullflag_inferences": "windows scored",
    "bullflag_signals": "signals",
    "bullflag_outputs_published": "outputs published",
    "bullflag_records_dead_lettered": "dead letters",
    "bullflag_consumer_lag": "consumer lag",
    "bullflag_warm_symbols": "warm symbols",
    "bullflag_assigned_partitions": "partitions",
}
"""Metric family -> label on the page; samples of a family are summed over their labels."""


class ProbeUrlError(ValueError):
    """The metrics URL is not an ``http://host:port`` URL."""


@dataclass
class WorkerStatus:
    """What the page shows about the worker: readiness, its reason, key metrics."""

    reachable: bool = False
    ready: bool = False
    detail: str = "not polled yet"
    metrics: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The status as a JSON-ready dict."""
        return {
            "reachable": self.reachable,
            "ready": self.ready,
            "detail": self.detail,
            "metrics": self.metrics,
        }


def check_metrics_url(url: str) -> tuple[str, int, str]:
    """(host, port, base path) of a probe server URL; :class:`ProbeUrlError` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ProbeUrlError(
            f"metrics URL {url!r}: give the worker's probe server as http://HOST:PORT "
            "(its --metrics-host and --metrics-port)."
        )
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


async def http_get(host: str, port: int, path: str, timeout_s: float = TIMEOUT_S) -> tuple[int, bytes]:
    """(status, body) of a GET, read to the end (at most ``BODY_LIMIT`` bytes); OSError or
    TimeoutError when the server does not answer."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode("latin-1"))
            await writer.drain()
            data = b""
            while len(data) < BODY_LIMIT and (chunk := await reader.read(BODY_LIMIT - len(data))):
                data += chunk
        finally:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)
    if len(status) < 2 or not status[1].isdigit():
        raise OSError(f"http://{host}:{port}{path} answered something that is not HTTP")
    return int(status[1]), body


def key_metrics(text: str) -> dict[str, float]:
    """The page's metrics from a Prometheus text page, by page label."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        label = KEY_METRICS.get(family.name)
        if label is not None:
            samples = [s.value for s in family.samples if s.name in (family.name, family.name + "_total")]
            found[label] = float(sum(samples))
    return found


class WorkerProbe:
    """Polls a worker's probe server; :attr:`status` is the latest answer."""

    def __init__(self, metrics_url: str, poll_s: float = POLL_S) -> None:
        self.host, self.port, self.base = check_metrics_url(metrics_url)
        self.url = metrics_url
        self.status = WorkerStatus()
        self._poll_s = poll_s

    async def poll(self) -> WorkerStatus:
        """Ask once; the answer replaces :attr:`status`."""
        try:
            code, body = await http_get(self.host, self.port, self.base + "/readyz")
            _, page = await http_get(self.host, self.port, self.base + "/metrics")
            metrics = key_metrics(page.decode("utf-8", errors="replace"))
            reason = body.decode("utf-8", errors="replace").strip()
            self.status = WorkerStatus(True, code == 200, reason, metrics)
        except (OSError, TimeoutError, ValueError) as exc:
            self.status = WorkerStatus(
                False, False, f"worker at {self.url} does not answer ({exc or 'timeout'})"
            )
        return self.status

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self.poll()
            await asyncio.sleep(self._poll_s)
