"""State restore rate and resident memory per warm symbol.

Run: ``python -m benchmarks.bench_state`` (``--symbols`` to change the size).

- ``restore``: the state of S symbols x 200 one-minute bars is written to a state topic on the
  embedded broker the way the worker writes it; then the time to read it back and load it into
  a fresh ``BarPipeline`` (what a worker does on partition assignment) gives symbols/s.
- ``memory``: resident set size per warm symbol (200 bars each), right after a restore
  (includes heap the restore used and the allocator kept) and for a pipeline filled without
  Kafka (the steady state); freed heap is returned with ``malloc_trim`` before each reading.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import time

import numpy as np

from benchmarks.bench_worker import INTERVAL_MS, PARTITIONS, SEQ_LEN, write_state
from benchmarks.report import print_table, write_json
from consumer.core.pipeline import BarPipeline
from consumer.core.state import RestoredPartition
from consumer.kafka.embedded_broker import EmbeddedBroker
from consumer.kafka.restore import read_state
from consumer.kafka.topics import TopicSpec, ensure_topics


def rss_bytes() -> int:
    """Resident set size of this process, after returning freed heap memory to the system."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def symbol_bars(symbols: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """200 bars per symbol: names, bar starts int64[S, 200], OHLCV float64[S, 200, 5]."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, (symbols, SEQ_LEN)), axis=1))
    bars = np.stack([close, close * 1.001, close * 0.999, close, rng.uniform(0, 1e4, close.shape)], axis=-1)
    starts = np.broadcast_to(np.arange(SEQ_LEN, dtype=np.int64) * INTERVAL_MS, (symbols, SEQ_LEN))
    return [f"SYM{i:05d}" for i in range(symbols)], starts, bars


async def round_robin_state(bootstrap: str, topic: str, symbols: int) -> int:
    """Write the state records of ``symbols`` warm symbols, spread over the partitions in turn."""
    names, starts, bars = symbol_bars(symbols)
    partitions = [i % PARTITIONS for i in range(symbols)]
    return await write_state(bootstrap, topic, names, starts, bars, partitions)


async def bench_restore(symbols: int) -> dict[str, float]:
    async with EmbeddedBroker() as broker:
        topic = "state-bench"
        await ensure_topics(broker.bootstrap, [TopicSpec(topic, PARTITIONS)])
        records = await round_robin_state(broker.bootstrap, topic, symbols)
        rss_before = rss_bytes()
        started = time.perf_counter()
        restored = await read_state(
            {"bootstrap_servers": broker.bootstrap}, topic, range(PARTITIONS), INTERVAL_MS, SEQ_LEN
        )
        read_s = time.perf_counter() - started
        pipeline = BarPipeline(INTERVAL_MS, 0, seq_len=SEQ_LEN, max_symbols=symbols)
        loaded = sum(pipeline.restore_partition(p, restored[p], 0) for p in range(PARTITIONS))
        total_s = time.perf_counter() - started
        del restored
        per_symbol = (rss_bytes() - rss_before) / loaded
    return {
        "symbols": loaded,
        "records": records,
        "read_s": read_s,
        "restore_s": total_s,
        "symbols_per_s": loaded / total_s,
        "rss_bytes_per_warm_symbol": per_symbol,
    }


def bench_memory(symbols: int, chunk: int = 500) -> float:
    """Resident bytes per warm symbol of a pipeline holding ``symbols`` symbols x 200 bars.

    Inputs are made ``chunk`` symbols at a time, so they barely count in the measurement.
    """
    rss_before = rss_bytes()
    pipeline = BarPipeline(INTERVAL_MS, 0, seq_len=SEQ_LEN, max_symbols=symbols)
    for first in range(0, symbols, chunk):
        names, starts, bars = symbol_bars(min(chunk, symbols - first), seed=first)
        names = [f"SYM{first + i:05d}" for i in range(len(names))]
        restored = RestoredPartition(names, list(starts), list(bars), None, 0)
        pipeline.restore_partition(first // chunk, restored, None)
    del names, starts, bars, restored
    return (rss_bytes() - rss_before) / symbols


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[10_000])
    args = parser.parse_args()
    results = [
        asyncio.run(bench_restore(s)) | {"steady_rss_bytes_per_symbol": bench_memory(s)} for s in args.symbols
    ]
    print_table(
        [
            "symbols",
            "state records",
            "read + load s",
            "symbols/s",
            "RSS B/symbol after restore",
            "RSS B/symbol",
        ],
        [
            [
                r["symbols"],
                r["records"],
                r["restore_s"],
                r["symbols_per_s"],
                r["rss_bytes_per_warm_symbol"],
                r["steady_rss_bytes_per_symbol"],
            ]
            for r in results
        ],
    )
    print(f"written {write_json('state', {'results': results})}")


if __name__ == "__main__":
    main()
