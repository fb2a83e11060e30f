"""How soon a quiet partition's last bars are scored with ``--idle-close-after``, against the
embedded broker.

Run: ``python -m benchmarks.bench_idle_close`` (``--symbols``, ``--idle-close-after``). A
worker (1 s bars, lateness 0, 4 partitions) is started and ready; then 201 bars of ticks of
each symbol are produced at once, so every symbol reaches 200 bars and its last bar is closed
by nothing but an idle close. Measured from the moment the broker acknowledged the last tick:
until the worker has consumed every tick, and until it has every output acknowledged (its own
counters, polled every millisecond), for live event times (the last bar ends at about the
wall clock) and for a replay of history (event times three hours old). The target is
``--idle-close-after`` plus one poll of the partition after its last record.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
import orjson

from benchmarks.bench_worker import consumed, produce_beside, running_worker, wait_until
from benchmarks.report import print_table, write_json
from consumer.kafka.embedded_broker import EmbeddedBroker
from consumer.kafka.worker import Worker

INTERVAL_MS = 1_000
BARS = 201


def ticks(symbols: int, last_bar_end_ms: int) -> list[bytes]:
    """Two ticks per symbol and bar, ``BARS`` bars, the last ending at ``last_bar_end_ms``."""
    rng = np.random.default_rng(3)
    start = last_bar_end_ms - BARS * INTERVAL_MS
    values = []
    for bar in range(BARS):
        prices = 100.0 * np.exp(rng.normal(0.0, 0.002, symbols))
        for k in (250, 750):
            ts = start + bar * INTERVAL_MS + k
            values += [
                orjson.dumps({"symbol": f"IDLE{i:04d}", "ts": ts, "price": float(p), "size": 1})
                for i, p in enumerate(prices)
            ]
    return values


def published(worker: Worker) -> float:
    return worker.metrics.registry.get_sample_value("bullflag_outputs_published_total") or 0.0


async def one_run(
    bootstrap: str, name: str, symbols: int, idle_after: str, history: bool
) -> dict[str, object]:
    """Seconds from the last tick acknowledged to every output acknowledged."""
    overrides = {"bar_interval": "1s", "allowed_lateness": "0s", "idle_close_after": idle_after}
    async with running_worker(bootstrap, name, None, **overrides) as worker:
        await wait_until(lambda: worker.ready, "worker not ready", 60)
        now = time.time_ns() // 1_000_000 // INTERVAL_MS * INTERVAL_MS
        values = ticks(symbols, now - 3 * 3_600_000 if history else now)
        await produce_beside(bootstrap, worker.settings.ticks_topic, values)
        acknowledged = time.perf_counter()
        await wait_until(lambda: consumed(worker) >= len(values), "ticks not all consumed", 120)
        caught_up = time.perf_counter()
        await wait_until(lambda: published(worker) >= 2 * symbols, "outputs not all published", 120)
        seconds = time.perf_counter() - acknowledged
        closes = worker.metrics.registry.get_sample_value("bullflag_idle_closes_total") or 0.0
    return {
        "event_times": "replay of history" if history else "live",
        "symbols": symbols,
        "ticks": len(values),
        "idle_close_after": idle_after,
        "all_consumed_s": round(caught_up - acknowledged, 3),
        "last_bar_scored_s": round(seconds, 3),
        "idle_closes": int(closes),
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, object]]:
    async with EmbeddedBroker() as broker:
        return [
            await one_run(
                broker.bootstrap,
                f"idle-{history}-{time.time_ns()}",
                args.symbols,
                args.idle_close_after,
                history,
            )
            for history in (False, True)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--idle-close-after", default="5s")
    rows = asyncio.run(main_async(parser.parse_args()))
    columns = list(rows[0])
    print_table(columns, [[row[c] for c in columns] for row in rows])
    print(write_json("idle_close", {"runs": rows}))


if __name__ == "__main__":
    main()
