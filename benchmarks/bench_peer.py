"""The worker next to its peers on one input: Quix Streams 1-minute OHLCV bars, a bare aiokafka loop.

Run: ``python -m benchmarks.bench_peer`` (``--ticks``, ``--symbols``, ``--repeats``). The parent
starts one embedded broker; for every run it creates a fresh 4-partition topic, produces N ticks
(``benchmarks.bench_worker``'s format, keyed by symbol) and only then starts the consumer in its
own subprocess with a fresh consumer group, so the CPU time is that process's alone (all its
threads, librdkafka's included) and neither client's threads or event loop share a process:

- ``bullflag``: the worker with its default settings (validation, DLQ routing, bars, buffers,
  state and scoring on), timed as in ``benchmarks.bench_worker``: from ready until it has taken
  all N records and finished every batch (outputs and state acknowledged, offsets committed).
- ``quixstreams``: ``Application`` (at-least-once, state in a temporary directory, changelog on)
  with the tick's ``ts`` as event time, a 1-minute tumbling window per key aggregated into
  open/high/low/close/volume (``First``, ``Max``, ``Min``, ``Last``, ``Sum``), ``.final()``.
  Records are counted in ``on_message_processed``, which Quix calls after a record has been
  through the whole pipeline (window update included); the clocks start when the first record
  is processed and stop, and the app is told to stop, when the Nth is. Offsets are committed by
  Quix's own checkpoints (every 5 s); its final checkpoint on stop is outside the timed span.
- ``aiokafka``: ``getmany`` batches (20,000 records at most, as the worker), ``orjson.loads``
  of every value, one manual ``commit()`` per batch, no validation and no aggregation. The
  clocks start when the first batch arrives and stop after the commit of the batch holding
  the Nth record.
- ``aiokafka-gc``: the same loop under the worker's garbage-collector settings
  (``consumer.ops.gc_tuning``), to show how much of the difference is the interpreter's collector.

Each run's rates are over the records processed inside its timed span; the best of
``--repeats`` runs (highest ticks/s) is reported. Without ``quixstreams`` installed its row
says how to install it (``pip install -e .[bench]``) and the script still exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import tempfile
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from benchmarks.bench_worker import FAST_CONSUMER, PARTITIONS, produce, tick_values, timed_worker
from benchmarks.report import print_table, write_json
from consumer.config import Settings
from consumer.kafka.embedded_broker import EmbeddedBroker
from consumer.kafka.topics import TopicSpec, ensure_topics
from consumer.ops.gc_tuning import batch_friendly_gc

FRAMEWORKS = ("bullflag", "quixstreams", "aiokafka", "aiokafka-gc")
SKIPPED = "skipped: pip install -e .[bench]"
MAX_RECORDS = 20_000
CHILD_TIMEOUT_S = 900.0
# The embedded broker's DescribeConfigs returns only the settings a topic was created with, and
# Quix derives its changelog topics from the source's "retention.ms", so state it explicitly.
TICKS_TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}
# librdkafka settings for the embedded broker: it fails InitProducerId (no idempotence or
# transactions); the timeouts mirror FAST_CONSUMER and are valid on real Kafka too.
QUIX_PRODUCER_CONFIG = {"enable.idempotence": False}
QUIX_CONSUMER_CONFIG = {
    "session.timeout.ms": FAST_CONSUMER["session_timeout_ms"],
    "heartbeat.interval.ms": FAST_CONSUMER["heartbeat_interval_ms"],
    "fetch.wait.max.ms": FAST_CONSUMER["fetch_max_wait_ms"],
}


def quix_installed() -> bool:
    """Whether ``quixstreams`` is installed for this interpreter (the children run under it too)."""
    return importlib.util.find_spec("quixstreams") is not None


def rates(records: int, wall: float, cpu: float) -> dict[str, float]:
    """Ticks/s (wall clock) and process CPU microseconds per tick over a timed span."""
    return {"ticks": records, "ticks_per_s": records / wall, "cpu_us_per_tick": cpu / records * 1e6}


async def consume_aiokafka(bootstrap: str, topic: str, group: str, ticks: int) -> dict[str, float]:
    """The bare loop: getmany, orjson.loads per record, commit per batch, until ``ticks`` are read."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **FAST_CONSUMER,
    )
    await consumer.start()
    try:
        count = 0
        start_wall = start_cpu = 0.0
        while count < ticks:
            batches = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
            if not batches:
                continue
            if count == 0:
                start_wall, start_cpu = time.perf_counter(), time.process_time()
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)  # type: ignore[arg-type]
                count += len(records)
            await consumer.commit()
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    finally:
        await consumer.stop()
    return rates(count, wall, cpu)


def consume_quix(bootstrap: str, topic: str, group: str, ticks: int) -> dict[str, float]:
    """Quix Streams 1-minute OHLCV tumbling windows per symbol, until ``ticks`` are processed."""
    from quixstreams import Application
    from quixstreams.dataframe.windows import First, Last, Max, Min, Sum

    count = 0
    start_wall = start_cpu = end_wall = end_cpu = 0.0

    with tempfile.TemporaryDirectory(prefix="bench-peer-quix-") as state_dir:

        def processed(_topic: str, _partition: int, _offset: int) -> None:
            nonlocal count, start_wall, start_cpu, end_wall, end_cpu
            count += 1
            if count == 1:
                start_wall, start_cpu = time.perf_counter(), time.process_time()
            elif count == ticks:
                end_wall, end_cpu = time.perf_counter(), time.process_time()
                app.stop()

        app = Application(
            broker_address=bootstrap,
            consumer_group=group,
            auto_offset_reset="earliest",
            processing_guarantee="at-least-once",
            state_dir=state_dir,
            producer_extra_config=QUIX_PRODUCER_CONFIG,
            consumer_extra_config=QUIX_CONSUMER_CONFIG,
            on_message_processed=processed,
            loglevel="WARNING",
        )
        source = app.topic(
            topic,
            value_deserializer="json",
            timestamp_extractor=lambda value, _headers, _ts, _type: value["ts"],
        )
        (
            app.dataframe(source)
            .tumbling_window(duration_ms=60_000)
            .agg(
                open=First("price"),
                high=Max("price"),
                low=Min("price"),
                close=Last("price"),
                volume=Sum("size"),
            )
            .final()
        )
        app.run()
    return rates(ticks - 1, end_wall - start_wall, end_cpu - start_cpu)


def run_child(framework: str, bootstrap: str, topic: str, group: str, ticks: int) -> dict[str, float]:
    """Run one consumer in a fresh interpreter and return its measurement (its last stdout line)."""
    command = [sys.executable, "-m", "benchmarks.bench_peer", "--child", framework]
    command += ["--bootstrap", bootstrap, "--topic", topic, "--group", group, "--ticks", str(ticks)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{framework} consumer exited with {done.returncode}:\n{done.stderr[-4000:]}")
    return orjson.loads(done.stdout.splitlines()[-1])


async def bench(bootstrap: str, values: list[bytes], framework: str, run: int) -> dict[str, float]:
    """Produce ``values`` to a fresh topic, then time one ``framework`` consumer over all of them."""
    name = f"peer-{framework}-{run}-{time.time_ns()}"
    await ensure_topics(bootstrap, [TopicSpec(f"{name}.ticks", PARTITIONS, TICKS_TOPIC_CONFIG)])
    await produce(bootstrap, f"{name}.ticks", values)
    return await asyncio.to_thread(
        run_child, framework, bootstrap, f"{name}.ticks", f"{name}.group", len(values)
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """All runs against one embedded broker; every run and the best per framework."""
    values = tick_values(args.symbols, 4, max(1, args.ticks // (args.symbols * 4)))
    present = [f for f in FRAMEWORKS if f != "quixstreams" or quix_installed()]
    runs: dict[str, list[dict[str, float]]] = {f: [] for f in present}
    async with EmbeddedBroker() as broker:
        for run in range(args.repeats):
            for framework in present:
                runs[framework].append(await bench(broker.bootstrap, values, framework, run))
    return {
        "symbols": args.symbols,
        "partitions": PARTITIONS,
        "best": {f: max(r, key=lambda m: m["ticks_per_s"]) for f, r in runs.items()},
        "runs": runs,
        "skipped": {f: SKIPPED for f in FRAMEWORKS if f not in runs},
    }


def main() -> None:
    """Parent: run the benchmark and report. Child (``--child``): one consumer, JSON on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=500_000)
    parser.add_argument("--symbols", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "bullflag":
        name = args.topic.removesuffix(".ticks")
        result = asyncio.run(timed_worker(args.bootstrap, name, args.ticks, threshold=0.9))
    elif args.child == "quixstreams":
        result = consume_quix(args.bootstrap, args.topic, args.group, args.ticks)
    elif args.child == "aiokafka":
        result = asyncio.run(consume_aiokafka(args.bootstrap, args.topic, args.group, args.ticks))
    elif args.child == "aiokafka-gc":
        with batch_friendly_gc(Settings().gc_threshold):
            result = asyncio.run(consume_aiokafka(args.bootstrap, args.topic, args.group, args.ticks))
    else:
        results = asyncio.run(main_async(args))
        rows: list[list[Any]] = [
            [f, m["ticks"], m["ticks_per_s"], m["cpu_us_per_tick"]] for f, m in results["best"].items()
        ]
        rows += [[f, reason, "", ""] for f, reason in results["skipped"].items()]
        print(f"{args.symbols:,} symbols, {PARTITIONS} partitions, best of {args.repeats} runs")
        print_table(["framework", "ticks", "ticks/s", "CPU us/tick"], rows)
        print(f"written {write_json('peer', results)}")
        return
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
