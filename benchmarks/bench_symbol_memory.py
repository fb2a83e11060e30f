"""Heap bytes per cold symbol (one closed bar) and per warm symbol (200 bars) in a BarPipeline.

Run: ``python -m benchmarks.bench_symbol_memory`` (``--symbols`` to change the size). One
pipeline per reading; tracemalloc counts every allocation that numpy and Python make for
the symbols (ring buffers, aggregator state, names, progress), divided by the symbols.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

import numpy as np
import orjson

from consumer.core.pipeline import BarPipeline

INTERVAL_MS = 60_000
START_MS = 1_732_550_400_000


def ticks(symbols: int, bars: int) -> tuple[list[bytes], list[bytes]]:
    """One tick per symbol per bar, ``bars + 1`` bars, so ``bars`` of them close."""
    names = [f"S{i:06d}" for i in range(symbols)]
    values, keys = [], []
    for b in range(bars + 1):
        ts = START_MS + b * INTERVAL_MS
        for name in names:
            values.append(orjson.dumps({"symbol": name, "ts": ts, "price": 10.0 + b % 7, "size": 1}))
            keys.append(name.encode())
    return values, keys


def bytes_per_symbol(symbols: int, bars: int) -> float:
    """Traced heap bytes the pipeline holds after ``bars`` closed bars of ``symbols`` symbols."""
    values, keys = ticks(symbols, bars)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    pipeline = BarPipeline(INTERVAL_MS, 0, max_symbols=10 * symbols, clock_ms=lambda: 2**60)
    for lo in range(0, len(values), 20_000):
        pipeline.process(0, values[lo : lo + 20_000], keys[lo : lo + 20_000])
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(pipeline.buffers) == symbols
    assert int(np.min(pipeline.buffers.counts([f"S{i:06d}" for i in range(symbols)]))) == bars
    return held / symbols


def main() -> None:
    """Print bytes per cold and per warm symbol."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=4096)
    args = parser.parse_args()
    cold = bytes_per_symbol(args.symbols, 1)
    warm = bytes_per_symbol(args.symbols, 200)
    print(f"symbols {args.symbols}: {cold:,.0f} bytes per cold symbol (1 bar), {warm:,.0f} per warm")


if __name__ == "__main__":
    main()
