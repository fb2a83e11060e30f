"""``--idle-close-after`` against a real broker: quiet partitions close and score their last
bars, and a worker SIGKILLed twice around idle closes publishes exactly what a clean run does.

The stream is a replay of history (event times two hours old) on two partitions, each with a
"pin": one tick 50 minutes ahead, whose bar no close reaches, so the committed offset stays
behind every idle close and each restart must replay the logged decisions. Partition 0's
history comes first; once its idle close has published, ticks for bars it closed arrive (they
must be dead-lettered as ``late``, after a restart too), with partition 1's history.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from consumer.kafka.topic_reader import read_topic
from tests.integration.conftest import TopicFactory
from tests.integration.test_recovery import (
    collect,
    make_topics,
    read_all_outputs,
    signal_reader,
    worker_env,
    workers,
)
from tests.integration.test_worker import produce
from tests.reference import reference_run

INTERVAL_MS = 1_000
BARS = 210
T0 = time.time_ns() // 1_000_000 // INTERVAL_MS * INTERVAL_MS
START_MS = T0 - 2 * 3_600_000
LAST_BAR_END = START_MS + BARS * INTERVAL_MS
Records = list[tuple[bytes | None, bytes | None]]


def symbols_of(partition: int, count: int, prefix: str) -> list[str]:
    """The first ``count`` names ``<prefix><n>`` whose key the default partitioner puts on ``partition``."""
    partitioner, names, n = DefaultPartitioner(), [], 0
    while len(names) < count:
        name = f"{prefix}{n}"
        if partitioner(name.encode(), [0, 1], [0, 1]) == partition:
            names.append(name)
        n += 1
    return names


def tick(symbol: str, ts: int, price: float) -> tuple[bytes, bytes]:
    return symbol.encode(), orjson.dumps({"symbol": symbol, "ts": ts, "price": price, "size": 1})


def history(partition: int, seed: int) -> Records:
    """Two ticks per bar for four symbols of ``partition``, and the pin after bar 100."""
    rng = np.random.default_rng(seed)
    names = symbols_of(partition, 4, "H")
    price = dict.fromkeys(names, 40.0)
    records: Records = []
    for bar in range(BARS):
        if bar == 100:
            records.append(tick(symbols_of(partition, 1, "PIN")[0], T0 + 50 * 60_000, 1.0))
        for name in names:
            for offset in sorted(rng.integers(0, INTERVAL_MS, 2).tolist()):
                price[name] *= float(np.exp(rng.normal(0, 0.004)))
                records.append(tick(name, START_MS + bar * INTERVAL_MS + offset, price[name]))
    return records


def late_ticks() -> Records:
    """Ticks of partition 0's symbols inside bars its idle close already closed."""
    return [
        tick(name, START_MS + bar * INTERVAL_MS + 500, 41.0)
        for bar in (BARS - 3, BARS - 1)
        for name in symbols_of(0, 4, "H")
    ]


PHASE_A = history(0, seed=1)
PHASE_B = late_ticks() + history(1, seed=2)


def expected() -> tuple[set[tuple[str, int]], set[int]]:
    """Windows scored and partition 0's late offsets, by the reference model: one idle close per
    partition after its history, to an event time past every history bar but before the pins."""
    scored: set[tuple[str, int]] = set()
    late: set[int] = set()
    for partition, records in enumerate([PHASE_A + late_ticks(), history(1, seed=2)]):
        ticks = [orjson.loads(value) for _, value in records if value is not None]
        stream = [(offset, t["symbol"], t["ts"]) for offset, t in enumerate(ticks)]
        at = len(PHASE_A) if partition == 0 else len(records)
        reference = reference_run(stream, len(records), INTERVAL_MS, idle_closes=[(at, T0)])
        scored |= reference.scored
        late |= {offset for offset in reference.late if partition == 0}
    return scored, late


async def dead_lettered(bootstrap: str, topic: str) -> set[tuple[int, int, str]]:
    """(source partition, source offset, reason) of every dead letter on ``topic``."""
    found: set[tuple[int, int, str]] = set()

    def visit(_: TopicPartition, records: list[ConsumerRecord]) -> None:
        for record in records:
            headers = {k: v.decode() for k, v in record.headers}
            found.add(
                (
                    int(headers["bullflag.source.partition"]),
                    int(headers["bullflag.source.offset"]),
                    headers["bullflag.reason"],
                )
            )

    await read_topic(bootstrap, topic, visit, timeout_s=30)
    return found


async def logged(path: Path, text: str, timeout_s: float) -> None:
    """Until the log at ``path`` contains ``text``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while text not in path.read_text():
        assert asyncio.get_running_loop().time() < deadline, f"{path.name} never logged {text!r}"
        await asyncio.sleep(0.1)


def idle_outputs(seen: dict[str, Any], partition: int) -> bool:
    """Whether an output of the partition's last history bar (only an idle close closes it) arrived."""
    names = set(symbols_of(partition, 4, "H"))
    return any(d["bar_end_ts"] == LAST_BAR_END and d["symbol"] in names for d in seen.values())


async def run(bootstrap: str, topics: dict[str, str], group: str, logs: Path, kill: bool) -> dict[str, Any]:
    """Phase A, then (once partition 0's idle close has published) phase B; with ``kill``, SIGKILL
    the worker right after each partition's idle close published, producing phase B while none runs."""
    env = worker_env(bootstrap, topics, group) | {"BULLFLAG_IDLE_CLOSE_AFTER": "2s"}
    scored, _ = expected()
    seen: dict[str, Any] = {}
    async with signal_reader(bootstrap, topics["signals"]) as poll:
        await produce(bootstrap, topics["ticks"], PHASE_A)
        with workers(env, 1, logs) as (worker,):
            await collect(poll, seen, lambda: idle_outputs(seen, 0), 90)
            if kill:
                worker.process.send_signal(signal.SIGKILL)
                worker.process.wait()
            await produce(bootstrap, topics["ticks"], PHASE_B)
            if kill:
                with workers(env, 1, logs) as (restarted,):
                    await collect(poll, seen, lambda: idle_outputs(seen, 1), 90)
                    restarted.process.send_signal(signal.SIGKILL)
                with workers(env, 1, logs) as (last,):
                    for partition in (0, 1):
                        await logged(last.log, f"replaying the idle close of partition {partition}", 90)
                    await collect(poll, seen, lambda: len(seen) >= len(scored), 120)
                    last.process.send_signal(signal.SIGTERM)
                    assert await asyncio.to_thread(last.process.wait, 30) == 0
            else:
                await collect(poll, seen, lambda: len(seen) >= len(scored), 120)
                worker.process.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(worker.process.wait, 30) == 0
    await read_all_outputs(bootstrap, topics["signals"], seen)
    return seen


async def test_quiet_partitions_close_their_last_bars_and_restarts_replay_the_closes(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str, tmp_path: Path
) -> None:
    scored, late = expected()
    assert len(scored) == 8 * (BARS - 199)
    assert len(late) == len(late_ticks())
    results = {}
    for kill in (False, True):
        topics = await make_topics(topic_factory)
        seen = await run(kafka_bootstrap, topics, f"{group_id}-{kill}", tmp_path / str(kill), kill)
        assert {(d["symbol"], d["bar_end_ts"]) for d in seen.values()} == scored
        assert await dead_lettered(kafka_bootstrap, topics["dlq"]) == {(0, offset, "late") for offset in late}
        results[kill] = seen
    restarted = sorted((tmp_path / "True").glob("worker-*.log"))[1]
    assert "replaying the idle close of partition 0" in restarted.read_text()
    assert results[True].keys() == results[False].keys()
    for output_id, document in results[False].items():
        assert results[True][output_id] == document
