"""Parity: ``bullflag scan`` of a file writes exactly what ``bullflag run`` publishes for it.

A multi-symbol file (one symbol with gaps, one that starts late, one that stops early) is
scanned, and replayed to the broker the way ``bullflag replay`` sends it (same reader, same
records, same producer) for a worker reading a one-partition topic. Once the worker has
consumed every record and finished its last batch, the signals topic read to its end must hold
the scan's documents and nothing else, equal field by field after parsing.
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer.cli import main
from consumer.kafka.worker import Worker
from consumer.sources.producer import bar_records, produce_records, tick_records
from consumer.sources.readers import read_table
from consumer.sources.tables import BarTable, TradeTable
from tests.integration.conftest import TopicFactory
from tests.integration.test_worker import FAST_CONSUMER, running, wait_for, worker_settings
from tests.reference import reference_run

START_MS = 1_732_550_400_000
INTERVAL_MS = 1_000
BARS = 230


def bar_active(symbol: str, bar: int) -> bool:
    """Which bars have trades: GAPS misses runs of bars, LATE starts late, QUIET stops early."""
    if symbol == "GAPS":
        return bar % 23 not in (5, 6, 7) and not 120 <= bar < 150
    if symbol == "LATE":
        return bar >= 9
    if symbol == "QUIET":
        return bar <= 221
    return True


def write_trades(path: Path, seed: int = 3) -> Path:
    """Two or three trades per active bar per symbol, interleaved in event time."""
    rng = np.random.default_rng(seed)
    prices = {"AAA": 50.0, "GAPS": 20.0, "LATE": 75.0, "QUIET": 10.0}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ts", "symbol", "price", "size"])
        for bar in range(BARS):
            for offset_ms in (50, 400, 900):
                for symbol in prices:
                    if not bar_active(symbol, bar) or (offset_ms == 400 and rng.random() < 0.5):
                        continue
                    prices[symbol] *= float(np.exp(rng.normal(0.0, 0.004)))
                    ts = START_MS + bar * INTERVAL_MS + offset_ms
                    writer.writerow([ts, symbol, round(prices[symbol], 4), int(rng.integers(1, 300))])
    return path


def write_bars(trades: Path, path: Path) -> Path:
    """The same market as one-second OHLCV bars (a bars file with the same gaps)."""
    table = read_table(trades)
    assert isinstance(table, TradeTable)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["symbol", "bar_start", "open", "high", "low", "close", "volume"])
        starts = table.ts_ms // INTERVAL_MS * INTERVAL_MS
        for start in np.unique(starts).tolist():
            for symbol in sorted(set(table.symbols[starts == start].tolist())):
                rows = (starts == start) & (table.symbols == symbol)
                p = table.price[rows].tolist()
                row = [p[0], max(p), min(p), p[-1], float(table.size[rows].sum())]
                writer.writerow([symbol, start, *map(repr, row)])
    return path


async def read_to_end(bootstrap: str, topic: str) -> list[Any]:
    """Every record of partition 0 of ``topic``, up to its high watermark."""
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            batch = await consumer.getmany(tp, timeout_ms=200)
            records += batch.get(tp, [])
            highwater = consumer.highwater(tp)
            if highwater is not None and await consumer.position(tp) >= highwater:
                return records
            assert asyncio.get_running_loop().time() < deadline, "signals topic not read to its end in 60 s"
    finally:
        await consumer.stop()


def consumed(worker: Worker) -> float:
    """Records the worker has taken from its input topic."""
    value = worker.metrics.registry.get_sample_value(
        "bullflag_records_consumed_total", {"topic": worker.settings.ticks_topic}
    )
    return value or 0.0


@pytest.mark.parametrize("gaps", ["flat", "skip"])
@pytest.mark.parametrize("kind", ["ticks", "bars"])
async def test_scan_writes_what_the_worker_publishes(
    kind: str, gaps: str, kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str, tmp_path: Path
) -> None:
    trades = write_trades(tmp_path / "trades.csv")
    path = trades if kind == "ticks" else write_bars(trades, tmp_path / "bars.csv")
    flags = ["--bar-interval", "1s", "--allowed-lateness", "0s", "--threshold", "0", "--no-progress"]
    flags += ["--gaps", gaps]
    out = tmp_path / "scan.jsonl"
    assert await asyncio.to_thread(main, ["scan", str(path), "--out", str(out), *flags]) == 0
    scanned = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    # Without gap bars, GAPS never has 200 bars that traded.
    assert {d["symbol"] for d in scanned} == {"AAA", "LATE", "QUIET"} | (
        {"GAPS"} if gaps == "flat" else set()
    )

    topics = {
        "ticks": await topic_factory(1),
        "signals": await topic_factory(1),
        "dlq": await topic_factory(1),
    }
    settings = worker_settings(kafka_bootstrap, topics, group_id, input=kind, gaps=gaps)
    table = read_table(path)
    records = list(bar_records(table) if isinstance(table, BarTable) else tick_records(table))
    await produce_records(settings, topics["ticks"], records)
    worker = Worker(settings, consumer_options=FAST_CONSUMER)
    async with running(worker):
        await wait_for(lambda: consumed(worker) == len(records) and not worker.finishing)
        published = [orjson.loads(r.value) for r in await read_to_end(kafka_bootstrap, topics["signals"])]

    by_id = {d["id"]: d for d in published}
    assert len(by_id) == len(published), "no document published twice"
    assert by_id == {d["id"]: d for d in scanned}
    assert len(scanned) == len(published)
    # Scan and worker share the pipeline; which windows either scores is judged independently.
    pairs = zip(table.symbols.tolist(), table.ts_ms.tolist(), strict=True)
    stream = [(i, symbol, ts) for i, (symbol, ts) in enumerate(pairs)]
    windows = reference_run(stream, len(stream), INTERVAL_MS, gaps=gaps).scored
    assert {(d["symbol"], d["bar_end_ts"]) for d in published} == windows
    ends = {d["symbol"]: max(e["bar_end_ts"] for e in scanned if e["symbol"] == d["symbol"]) for d in scanned}
    quiet_end = START_MS + 222 * INTERVAL_MS
    assert ends["QUIET"] == quiet_end, "the symbol that stopped early: its last bar closed by the watermark"
    assert ends["AAA"] == START_MS + (BARS - 1) * INTERVAL_MS, "the others' last bar is still open"
