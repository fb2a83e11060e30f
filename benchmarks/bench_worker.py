"""Worker throughput and bar-close-to-publish latency, against the embedded broker.

Run: ``python -m benchmarks.bench_worker`` (``--help`` for sizes). Three measurements:

- ``inprocess``: decode + validate + aggregate + buffer (``BarPipeline.process``), no broker;
- ``end_to_end``: N ticks of S symbols produced to a 4-partition topic first, then one worker
  is started and consumes them all (validation, DLQ routing, state and scoring on); ticks/s and
  CPU us per tick from the moment it is ready until it has finished every batch (outputs and
  state acknowledged, offsets committed). Inputs (``--e2e-inputs``): ``cold:4`` is the peers'
  input (4 ticks per symbol and bar, symbols start empty, so none reaches 200 bars within a
  500,000-tick run at 1,000 symbols); ``warm:N`` restores 200 bars per symbol from the state
  topic first (restore not timed), so every bar that closes is scored: one window per N ticks;
- ``latency``: S warm symbols close a bar at the same moment; the worker's own
  bar-close-to-acknowledgement latencies (p50/p99), Grad-CAM on about 10 % of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from benchmarks.report import print_table, write_json
from bullflag_model.features import build_features
from bullflag_model.infer import BullFlagCNNInfer
from consumer.config import Settings
from consumer.core.pipeline import BarPipeline
from consumer.core.state import CHECKPOINT_KEY, Checkpoint, bar_records
from consumer.kafka.embedded_broker import EmbeddedBroker
from consumer.kafka.topics import TopicSpec, ensure_topics
from consumer.kafka.worker import Worker
from consumer.ops.gc_tuning import batch_friendly_gc

INTERVAL_MS = 60_000
START_MS = 1_732_550_400_000
PARTITIONS = 4
E2E_COLUMNS = ("symbols", "input", "backend", "ticks", "windows_scored", "ticks_per_s", "cpu_us_per_tick")
SEQ_LEN = 200
FAST_CONSUMER = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "fetch_max_wait_ms": 20}


def tick_values(
    symbols: int, ticks_per_bar: int, bars: int, first_bar: int = 0, seed: int = 0
) -> list[bytes]:
    """JSON ticks for ``symbols`` symbols, ``ticks_per_bar`` per bar, bars in event-time order."""
    rng = np.random.default_rng(seed)
    names = [f"SYM{i:05d}" for i in range(symbols)]
    values = []
    for bar in range(first_bar, first_bar + bars):
        for k in range(ticks_per_bar):
            ts = START_MS + bar * INTERVAL_MS + (k + 1) * INTERVAL_MS // (ticks_per_bar + 1)
            prices = 100.0 * np.exp(rng.normal(0.0, 0.002, symbols))
            values += [
                orjson.dumps({"symbol": name, "ts": ts, "price": round(float(p), 4), "size": 100})
                for name, p in zip(names, prices, strict=True)
            ]
    return values


def symbol_of(value: bytes) -> bytes:
    """The symbol of a tick made by ``tick_values`` (its fixed-width name), used as the key."""
    start = value.index(b'"symbol":"') + 10
    return value[start : start + 8]


def bench_inprocess(symbols: int, ticks: int, batch: int = 10_000) -> dict[str, float]:
    """Ticks/s of ``BarPipeline.process`` (decode, validate, aggregate, buffer, windows), under the
    worker's garbage-collector settings."""
    bars = max(2, ticks // (symbols * 4))
    values = tick_values(symbols, 4, bars)
    keys = [symbol_of(v) for v in values]
    pipeline = BarPipeline(INTERVAL_MS, 5_000)
    with batch_friendly_gc(Settings().gc_threshold):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        for lo in range(0, len(values), batch):
            pipeline.process(0, values[lo : lo + batch], keys[lo : lo + batch])
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    return {
        "ticks": len(values),
        "ticks_per_s": len(values) / wall,
        "cpu_us_per_tick": cpu / len(values) * 1e6,
    }


def bench_producer(bootstrap: str) -> AIOKafkaProducer:
    """A producer tuned for filling topics fast (large batches, short linger, acks=all)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=20,
        max_batch_size=1 << 20,
    )


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Produce keyed ticks with batching (futures gathered, never awaited one by one)."""
    producer = bench_producer(bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=symbol_of(v), value=v) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_beside(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """:func:`produce` from another thread with its own event loop, so a worker running in this
    loop keeps running meanwhile, as it would beside a producer in another process."""
    await asyncio.to_thread(asyncio.run, produce(bootstrap, topic, values))


@contextlib.asynccontextmanager
async def running_worker(
    bootstrap: str, name: str, threshold: float | None, backend: str = "auto", **overrides: Any
) -> AsyncIterator[Worker]:
    """A worker on fresh topics ``name``.*, started, yielded, and stopped cleanly; ``overrides``
    replace its settings (1-minute bars, 5 s lateness by default)."""
    fields: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "ticks_topic": f"{name}.ticks",
        "signals_topic": f"{name}.signals",
        "dlq_topic": f"{name}.dlq",
        "group_id": f"{name}.group",
        "bar_interval": "1m",
        "allowed_lateness": "5s",
        "metrics_host": "127.0.0.1",
        "metrics_port": 0,
        "threshold": threshold,
        "backend": backend,
    }
    settings = Settings(**(fields | overrides))
    await ensure_topics(
        bootstrap,
        [
            TopicSpec(settings.ticks_topic, PARTITIONS),
            TopicSpec(settings.signals_topic, PARTITIONS),
            TopicSpec(settings.dlq_topic, 1),
        ],
    )
    worker = Worker(settings, consumer_options=FAST_CONSUMER)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task


def consumed(worker: Worker) -> float:
    value = worker.metrics.registry.get_sample_value(
        "bullflag_records_consumed_total", {"topic": worker.settings.ticks_topic}
    )
    return value or 0.0


async def wait_until(done: Callable[[], bool], what: str, timeout_s: float = 600.0) -> None:
    """Poll ``done`` every millisecond; ``TimeoutError`` naming ``what()`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.001)


async def wait_consumed(worker: Worker, target: int) -> None:
    await wait_until(lambda: consumed(worker) >= target, f"fewer than {target} records consumed")


async def timed_worker(
    bootstrap: str, name: str, ticks: int, threshold: float, backend: str = "auto"
) -> dict[str, float]:
    """One worker over the prefilled topic ``name``.ticks, timed from ready until it has taken all
    ``ticks`` records and finished every batch (outputs and state acknowledged, offsets committed)."""
    async with running_worker(bootstrap, name, threshold, backend) as worker:
        while not worker.ready:
            await asyncio.sleep(0.001)
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        await wait_until(
            lambda: consumed(worker) >= ticks and not worker.finishing, f"{ticks} records not all finished"
        )
        end_wall, end_cpu = time.perf_counter(), time.process_time()
        windows = worker.metrics.registry.get_sample_value("bullflag_inferences_total") or 0.0
    return {
        "ticks": ticks,
        "ticks_per_s": ticks / (end_wall - start_wall),
        "cpu_us_per_tick": (end_cpu - start_cpu) / ticks * 1e6,
        "windows_scored": windows,
    }


@dataclasses.dataclass(frozen=True)
class Input:
    """An end-to-end input: ``ticks_per_bar`` ticks per symbol and bar; ``warm``: every symbol
    starts with 200 bars restored from the state topic, so each bar it closes is scored."""

    warm: bool
    ticks_per_bar: int

    @classmethod
    def parse(cls, text: str) -> Input:
        """``cold:4`` or ``warm:60``."""
        start, _, per_bar = text.partition(":")
        if start not in ("cold", "warm") or not per_bar.isdigit() or int(per_bar) < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: expected cold:N or warm:N (N ticks per bar)")
        return cls(start == "warm", int(per_bar))


async def write_state(
    bootstrap: str, topic: str, names: list[str], starts: np.ndarray, bars: np.ndarray, partitions: list[int]
) -> int:
    """The worker's state records of warm symbols (``starts`` int64[S, L], ``bars`` [S, L, 5]),
    symbol i in state partition ``partitions[i]``, then an initial checkpoint per partition;
    returns how many records were written."""
    producer = bench_producer(bootstrap)
    await producer.start()
    try:
        futures = []
        for name, first, ohlcv, partition in zip(names, starts, bars, partitions, strict=True):
            for key, value in bar_records([name] * len(first), first, ohlcv, INTERVAL_MS, len(first)):
                futures.append(await producer.send(topic, key=key, value=value, partition=partition))
        checkpoint = Checkpoint(end=0, commit=0, mark=None).encode()
        for partition in sorted(set(partitions)):
            sent = await producer.send(topic, key=CHECKPOINT_KEY, value=checkpoint, partition=partition)
            futures.append(sent)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


async def prefill_state(bootstrap: str, state_topic: str, symbols: int) -> None:
    """200 one-minute bars per symbol ending at ``START_MS``, each symbol in the state partition
    of its ticks (the producer's default partitioner), and a checkpoint per partition."""
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, (symbols, SEQ_LEN)), axis=1))
    bars = np.stack([close, close * 1.001, close * 0.999, close, np.full_like(close, 1e4)], axis=-1)
    starts = START_MS + (np.arange(SEQ_LEN, dtype=np.int64) - SEQ_LEN) * INTERVAL_MS
    names = [f"SYM{i:05d}" for i in range(symbols)]
    all_partitions = list(range(PARTITIONS))
    partitioner = DefaultPartitioner()
    partitions = [partitioner(name.encode(), all_partitions, all_partitions) for name in names]
    await write_state(
        bootstrap, state_topic, names, np.broadcast_to(starts, (symbols, SEQ_LEN)), bars, partitions
    )


async def bench_end_to_end(
    bootstrap: str, symbols: int, ticks: int, source: Input, threshold: float, backend: str = "auto"
) -> dict[str, object]:
    """Prefill a 4-partition topic (and, for a warm input, the state topic), then start one
    worker and time it over every record."""
    name = f"e2e-{symbols}-{time.time_ns()}"
    per_bar = source.ticks_per_bar
    values = tick_values(symbols, per_bar, max(2, ticks // (symbols * per_bar)))
    specs = [TopicSpec(f"{name}.ticks", PARTITIONS)]
    if source.warm:
        specs.append(TopicSpec(f"{name}.group.state", PARTITIONS, {"cleanup.policy": "compact"}))
    await ensure_topics(bootstrap, specs)
    if source.warm:
        await prefill_state(bootstrap, f"{name}.group.state", symbols)
    await produce(bootstrap, f"{name}.ticks", values)
    result = await timed_worker(bootstrap, name, len(values), threshold, backend)
    return result | {"input": f"{'warm' if source.warm else 'cold'}:{per_bar}", "backend": backend}


async def bench_latency(bootstrap: str, symbols: int, backend: str = "auto") -> dict[str, object]:
    """Warm ``symbols`` symbols, then close one bar of each at once; latencies from the worker."""
    name = f"lat-{symbols}-{time.time_ns()}"
    warm = tick_values(symbols, 1, 201)
    probe = BullFlagCNNInfer()
    threshold = threshold_for_share(probe, symbols, 0.10)
    async with running_worker(bootstrap, name, threshold, backend) as worker:
        latencies: list[np.ndarray] = []
        observe = worker.metrics.observe_latencies

        def record(seconds: np.ndarray) -> None:
            latencies.append(np.asarray(seconds, dtype=np.float64))
            observe(seconds)

        worker.metrics.observe_latencies = record  # type: ignore[method-assign]
        await produce_beside(bootstrap, worker.settings.ticks_topic, warm)
        await wait_consumed(worker, len(warm))
        await wait_until(lambda: sum(map(len, latencies)) >= symbols, "warm-up outputs not all published")
        latencies.clear()
        closing = tick_values(symbols, 1, 1, first_bar=201, seed=1)
        await produce_beside(bootstrap, worker.settings.ticks_topic, closing)
        await wait_consumed(worker, len(warm) + len(closing))
        deadline = time.monotonic() + 60
        while sum(map(len, latencies)) < symbols and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    values = np.concatenate(latencies) if latencies else np.zeros(0)
    return {
        "symbols": symbols,
        "backend": backend,
        "outputs": int(values.size),
        "p50_ms": float(np.percentile(values, 50) * 1e3) if values.size else float("nan"),
        "p99_ms": float(np.percentile(values, 99) * 1e3) if values.size else float("nan"),
        "threshold": threshold,
    }


def threshold_for_share(infer: BullFlagCNNInfer, symbols: int, share: float) -> float:
    """A threshold that about ``share`` of the benchmark's windows reach (so ~share get a map)."""
    rng = np.random.default_rng(0)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, (min(symbols, 512), 200)), axis=1))
    bars = np.stack([close, close, close, close, np.full_like(close, 100.0)], axis=-1)
    scores = infer.score(build_features(bars)).sequence
    return float(np.quantile(scores, 1.0 - share))


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {
        "inprocess": [bench_inprocess(s, args.inprocess_ticks) | {"symbols": s} for s in args.symbols]
    }
    async with EmbeddedBroker() as broker:
        results["end_to_end"] = [
            await bench_end_to_end(broker.bootstrap, s, args.e2e_ticks, source, 0.9, b) | {"symbols": s}
            for s in args.symbols
            for source in args.e2e_inputs
            for _ in range(args.repeats)
            for b in args.backends
        ]
        results["latency"] = [
            await bench_latency(broker.bootstrap, s, b)
            for s in args.latency_symbols
            for _ in range(args.repeats)
            for b in args.backends
        ]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--inprocess-ticks", type=int, default=1_000_000)
    parser.add_argument("--e2e-ticks", type=int, default=1_000_000)
    parser.add_argument(
        "--e2e-inputs",
        type=Input.parse,
        nargs="+",
        default=[Input(False, 4), Input(True, 60), Input(True, 4)],
        metavar="{cold,warm}:N",
        help="end-to-end inputs: N ticks per symbol and bar; warm: symbols restored with 200 bars",
    )
    parser.add_argument("--latency-symbols", type=int, nargs="+", default=[1, 100, 1_000, 10_000])
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=("auto", "onnx", "torch"),
        default=["onnx", "torch"],
        help="scoring backends, run one after another for each size (interleaved)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of each size and backend")
    parser.add_argument("--out", default="worker", help="results file name in benchmarks/results/")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print_table(
        ["symbols", "in-process ticks/s", "CPU us/tick"],
        [[r["symbols"], r["ticks_per_s"], r["cpu_us_per_tick"]] for r in results["inprocess"]],  # type: ignore[index,union-attr]
    )
    print_table(
        ["symbols", "input", "backend", "ticks", "windows scored", "end-to-end ticks/s", "CPU us/tick"],
        [
            [r[k] for k in E2E_COLUMNS]
            for r in results["end_to_end"]  # type: ignore[union-attr]
        ],
    )
    print_table(
        ["symbols closing at once", "backend", "outputs", "p50 ms", "p99 ms"],
        [[r["symbols"], r["backend"], r["outputs"], r["p50_ms"], r["p99_ms"]] for r in results["latency"]],  # type: ignore[index,union-attr]
    )
    print(f"written {write_json(args.out, results)}")


if __name__ == "__main__":
    main()
