"""Records for the worker's input topic, and the producer that sends them in event-time order.

:func:`tick_records` and :func:`bar_records` encode tables as the worker reads them (keyed by
symbol); :func:`produce_records` is the thin async shell that sends, through the client factory
so that the SSL and SASL settings apply.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
import orjson

from consumer.kafka.clients import Connection, new_producer
from consumer.sources.tables import BarTable, TradeTable

__all__ = ["ProduceStats", "Record", "bar_records", "produce_records", "tick_records"]

Record = tuple[bytes, bytes, int]
"""One Kafka record to send: key, value and timestamp (event time, epoch ms)."""

_SETTLE_EVERY: Final = 5_000
_SETTLE_PAUSE_S: Final = 0.05
_MAX_BATCH_BYTES: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class ProduceStats:
    """What :func:`produce_records` sent: record count, wall seconds, first and last event time."""

    records: int
    seconds: float
    first_ts_ms: int | None
    last_ts_ms: int | None


class _ProgressBar(Protocol):
    """The part of a tqdm bar the producer uses."""

    def update(self, n: int) -> object:
        """Count ``n`` more records as delivered."""

    def close(self) -> None:
        """Finish the bar."""


def _number(value: float) -> int | float:
    """A whole float as an int (``100`` rather than ``100.0`` on the wire)."""
    return int(value) if value.is_integer() else value


def tick_records(trades: TradeTable) -> Iterator[Record]:
    """Tick records ``{"symbol", "ts", "price", "size"}`` keyed by symbol, in table order."""
    keys = {name: name.encode() for name in np.unique(trades.symbols).tolist()}
    rows = zip(
        trades.symbols.tolist(),
        trades.ts_ms.tolist(),
        trades.price.tolist(),
        trades.size.tolist(),
        strict=True,
    )
    for symbol, ts, price, size in rows:
        value = {"symbol": symbol, "ts": ts, "price": price, "size": _number(size)}
        yield keys[symbol], orjson.dumps(value), ts


def bar_records(bars: BarTable) -> Iterator[Record]:
    """Bar records ``{"symbol", "ts", "open", "high", "low", "close", "volume"}`` keyed by symbol."""
    keys = {name: name.encode() for name in np.unique(bars.symbols).tolist()}
    for symbol, ts, (o, h, lo, c, v) in zip(
        bars.symbols.tolist(), bars.ts_ms.tolist(), bars.ohlcv.tolist(), strict=True
    ):
        value = {
            "symbol": symbol,
            "ts": ts,
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": _number(v),
        }
        yield keys[symbol], orjson.dumps(value), ts


async def produce_records(
    connection: Connection,
    topic: str,
    records: Iterable[Record],
    *,
    speed: float = 0.0,
    total: int | None = None,
    linger_ms: int = 20,
    progress: bool | None = False,
    client_id: str | None = None,
    **producer_settings: Any,
) -> ProduceStats:
    """Send ``records`` (key, value, event time ms) to ``topic`` in order; return what was sent.

    ``speed`` 0 sends as fast as the client can; ``speed`` s > 0 sends each record when
    (its event time - the first one's) / s has passed on the wall clock. Sends are never awaited
    one by one: once 10,000 deliveries are outstanding the oldest 5,000 are awaited, and all of
    them before each pause of 50 ms or more, so a failed delivery raises
    :class:`aiokafka.errors.KafkaError` soon after. ``acks="all"``, no idempotence (the embedded
    broker lacks it) and 256 KiB batches unless ``producer_settings`` say otherwise. The producer
    comes from :func:`consumer.kafka.clients.new_producer` (``client_id``: the connection's if
    not given). ``progress``: a tqdm bar on stderr (``None``: only on a terminal), when tqdm is
    installed.
    """
    if not (math.isfinite(speed) and speed >= 0):
        raise ValueError(f"speed must be a finite number >= 0 (0: as fast as possible), not {speed}.")
    settings = {
        "acks": "all",
        "enable_idempotence": False,
        "max_batch_size": _MAX_BATCH_BYTES,
        "linger_ms": linger_ms,
        **producer_settings,
    }
    producer = new_producer(connection, client_id=client_id, **settings)
    bar = _progress_bar(topic, total, progress)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    first_ts: int | None = None
    last_ts: int | None = None
    sent = 0
    unsettled: list[asyncio.Future[Any]] = []
    try:
        await producer.start()
        begin = loop.time()
        for key, value, ts in records:
            if first_ts is None:
                first_ts = ts
            due = begin + (ts - first_ts) / 1000.0 / speed if speed > 0 else begin
            if due - loop.time() >= _SETTLE_PAUSE_S:
                await _settle(unsettled, bar)
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            unsettled.append(await producer.send(topic, value=value, key=key, timestamp_ms=ts))
            last_ts = ts
            sent += 1
            if len(unsettled) >= 2 * _SETTLE_EVERY:
                await _settle(unsettled, bar, keep=_SETTLE_EVERY)
        await _settle(unsettled, bar)
    finally:
        if bar is not None:
            bar.close()
        await producer.stop()
        await asyncio.gather(*unsettled, return_exceptions=True)
    return ProduceStats(sent, time.monotonic() - started, first_ts, last_ts)


async def _settle(unsettled: list[asyncio.Future[Any]], bar: _ProgressBar | None, keep: int = 0) -> None:
    """Wait for all but the newest ``keep`` deliveries and drop them from ``unsettled``.

    Every awaited delivery finishes before the first failure among them is raised.
    """
    count = len(unsettled) - keep
    if count <= 0:
        return
    done = unsettled[:count]
    del unsettled[:count]
    results = await asyncio.gather(*done, return_exceptions=True)
    if bar is not None:
        bar.update(count)
    failure = next((result for result in results if isinstance(result, BaseException)), None)
    if failure is not None:
        raise failure


def _progress_bar(topic: str, total: int | None, progress: bool | None) -> _ProgressBar | None:
    """A tqdm bar on stderr (``progress`` ``None``: only on a terminal); ``None`` without tqdm.

    tqdm is an optional extra, imported here so that the producer runs without it.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar: _ProgressBar = tqdm(
        total=total,
        unit=" rec",
        unit_scale=True,
        desc=f"replay -> {topic}",
        disable=None if progress is None else not progress,
        file=sys.stderr,
    )
    return bar
