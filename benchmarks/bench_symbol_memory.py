"""Heap bytes per cold symbol (one closed bar), per warm symbol (200 bars), and after expiry.

Run: ``python -m benchmarks.bench_symbol_memory`` (``--symbols`` to change the size). One
pipeline per reading; tracemalloc counts every allocation that numpy and Python make for
the symbols (ring buffers, aggregator state, names, progress), divided by the symbols. The
"after expiry" reading runs with ``--symbol-ttl`` 10 bars: the symbols warm up, then one other
symbol's ticks move event time past the TTL, every symbol expires, and what the pipeline still
holds (arrays kept for reuse, the page pool's floor) is divided by the symbols that left.
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
TTL_BARS = 10


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


def bytes_per_symbol(symbols: int, bars: int, *, expire: bool = False) -> float:
    """Traced heap bytes the pipeline holds after ``bars`` closed bars of ``symbols`` symbols
    (``expire``: and after all of them expired)."""
    values, keys = ticks(symbols, bars)
    if expire:
        clock_ticks = [START_MS + (bars + 2 + k) * INTERVAL_MS for k in range(TTL_BARS + 12)]
        values += [orjson.dumps({"symbol": "CLOCK", "ts": ts, "price": 1.0, "size": 1}) for ts in clock_ticks]
        keys += [b"CLOCK"] * len(clock_ticks)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    pipeline = BarPipeline(
        INTERVAL_MS,
        0,
        max_symbols=10 * symbols,
        clock_ms=lambda: 2**60,
        symbol_ttl_ms=TTL_BARS * INTERVAL_MS if expire else 0,
    )
    for lo in range(0, len(values), 20_000):
        pipeline.process(0, values[lo : lo + 20_000], keys[lo : lo + 20_000])
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    names = [f"S{i:06d}" for i in range(symbols)]
    if expire:
        assert len(pipeline.buffers) == 1 and not any(name in pipeline.buffers for name in names)
    else:
        assert len(pipeline.buffers) == symbols
        assert int(np.min(pipeline.buffers.counts(names))) == bars
    return held / symbols


def main() -> None:
    """Print bytes per cold symbol, per warm symbol, and per symbol once all expired."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=4096)
    args = parser.parse_args()
    cold = bytes_per_symbol(args.symbols, 1)
    warm = bytes_per_symbol(args.symbols, 200)
    gone = bytes_per_symbol(args.symbols, 200, expire=True)
    print(
        f"symbols {args.symbols}: {cold:,.0f} bytes per cold symbol (1 bar), {warm:,.0f} per warm, "
        f"{gone:,.0f} per symbol after all expired"
    )


if __name__ == "__main__":
    main()
