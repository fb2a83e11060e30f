"""``bullflag scan`` throughput over a multi-symbol Parquet file, with 1 and 2 processes.

Run: ``python -m benchmarks.bench_scan`` (``--help`` for sizes; about four minutes on a 2-core
machine). A generated market (:func:`consumer.sources.market.synthetic_market`, default 2,000
symbols x 500 one-minute bars = 1,000,000 bars) is written to a Parquet file in a temporary
folder; ``bullflag scan FILE --out /dev/null`` then runs in a fresh process per process count,
timed from start to exit (reading, aggregation, scoring with Grad-CAM above the checkpoint's
threshold, writing). Every symbol's bars 200..499 close a window, so 300 windows per symbol
(its last bar stays open at the end of the file). For comparison, ``scorer`` is the worker's own
scoring rate: :class:`consumer.core.scoring.Scorer` over windows cut from the same market, in
this process with torch's default threads, as the worker's scoring thread runs it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.report import print_table, write_json
from consumer.cli.scanning import load_model
from consumer.config import Settings
from consumer.core.scoring import Scorer
from consumer.core.windows import Windows
from consumer.sources.market import synthetic_market

SEQ_LEN = 200


def write_market(path: Path, symbols: int, bars: int, seed: int) -> int:
    """Write the generated market's bars to ``path``; returns the number of bars."""
    table = synthetic_market(symbols, bars, seed).table()
    columns = {
        "symbol": table.symbols.astype(str),
        "ts": table.ts_ms,
        **{name: table.ohlcv[:, i] for i, name in enumerate(("open", "high", "low", "close", "volume"))},
    }
    pq.write_table(pa.table(columns), path)
    return len(table)


def bench_scan(path: Path, workers: int, windows: int) -> dict[str, float]:
    """Wall seconds and windows/s of one ``bullflag scan`` process over ``path``."""
    command = [sys.executable, "-m", "consumer.cli", "scan", str(path), "--out", "/dev/null"]
    command += ["--workers", str(workers), "--no-progress"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"bullflag scan failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = [line for line in done.stderr.splitlines() if "windows scored" in line]
    scored = int(summary[-1].split(" windows scored")[0].rsplit(" ", 1)[1].replace(",", ""))
    if scored != windows:
        raise RuntimeError(f"expected {windows} windows scored, the summary says {scored}")
    return {"workers": workers, "windows": scored, "seconds": seconds, "windows_per_s": scored / seconds}


def bench_scorer(symbols: int, bars: int, seed: int, count: int) -> dict[str, float]:
    """Windows/s of the worker's :class:`Scorer` on ``count`` windows of the same market."""
    table = synthetic_market(symbols, bars, seed).table()
    order = np.lexsort((table.ts_ms, table.symbols))
    ohlcv = table.ohlcv[order].reshape(symbols, bars, 5)
    starts = np.arange(bars - SEQ_LEN + 1)
    per_symbol = max(1, count // symbols)
    picks = [(s, int(k)) for s in range(symbols) for k in starts[:per_symbol]][:count]
    stack = np.stack([ohlcv[s, k : k + SEQ_LEN] for s, k in picks])
    ends = np.arange(len(picks), dtype=np.int64) * 60_000
    windows = Windows([f"S{s}" for s, _ in picks], stack, ends + SEQ_LEN * 60_000, ends)
    settings = Settings()
    scorer = Scorer(load_model(settings), settings.bar_interval)
    scorer.score(Windows.concat([], SEQ_LEN))
    started = time.perf_counter()
    scored = scorer.score(windows)
    seconds = time.perf_counter() - started
    return {"windows": scored.windows, "seconds": seconds, "windows_per_s": scored.windows / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2_000)
    parser.add_argument("--bars", type=int, default=500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scorer-windows", type=int, default=20_000)
    args = parser.parse_args()
    expected = args.symbols * max(0, args.bars - SEQ_LEN)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "market.parquet"
        bars = write_market(path, args.symbols, args.bars, args.seed)
        scans = [bench_scan(path, workers, expected) for workers in args.workers]
    scorer = bench_scorer(args.symbols, args.bars, args.seed, args.scorer_windows)
    for row in scans:
        row["vs_scorer"] = row["windows_per_s"] / scorer["windows_per_s"]
    print_table(
        ["processes", "bars", "windows", "seconds", "windows/s", "vs worker scorer"],
        [[r["workers"], bars, r["windows"], r["seconds"], r["windows_per_s"], r["vs_scorer"]] for r in scans],
    )
    print_table(["worker scorer windows", "seconds", "windows/s"], [list(scorer.values())])
    payload = {"bars": bars, "symbols": args.symbols, "scan": scans, "scorer": scorer}
    print(f"written {write_json('scan', payload)}")


if __name__ == "__main__":
    main()
