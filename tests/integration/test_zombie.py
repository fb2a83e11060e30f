"""A paused worker cannot write stale state: SIGSTOP past the session timeout, a second worker
takes over, SIGCONT; the state restored at the end equals an uninterrupted run's and its
checkpoint is of the newest fencing generation.

Every step waits on something observable: a worker's log naming its assignment, the group's
committed offset, the documents on the signals topic.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from consumer.core.state import RestoredPartition
from consumer.kafka.fencing import record_generation
from consumer.kafka.restore import read_state
from consumer.kafka.topic_reader import read_topic
from tests.integration.conftest import TopicFactory
from tests.integration.test_recovery import (
    BARS,
    INTERVAL_MS,
    START_MS,
    SYMBOLS,
    WorkerProcess,
    make_topics,
    market,
    read_all_outputs,
    worker_env,
    workers,
)
from tests.integration.test_worker import produce

Record = tuple[bytes | None, bytes | None]


def final_commit(records: list[Record]) -> int:
    """Where an uninterrupted worker commits at the end: the first tick of the last bar, which
    stays open (the clock, the median of the last records, is inside it)."""
    last_start = START_MS + (BARS - 1) * INTERVAL_MS
    return next(i for i, (_, value) in enumerate(records) if orjson.loads(value or b"{}")["ts"] >= last_start)


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        return await consumer.committed(tp)
    finally:
        await consumer.stop()


async def until(condition: Any, what: str, timeout_s: float = 90.0) -> None:
    """Poll ``condition`` (a function, maybe async) until it holds; fail naming ``what``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert asyncio.get_running_loop().time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.1)


def logged(worker: WorkerProcess, text: str) -> bool:
    return text in worker.log.read_text()


async def state_records(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []

    def keep(_: TopicPartition, batch: list[ConsumerRecord]) -> bool:
        records.extend(batch)
        return False

    await read_topic(bootstrap, topic, keep, timeout_s=30)
    return records


def comparable(restored: RestoredPartition) -> tuple[Any, ...]:
    """What must equal between two runs: the bars per symbol and where the checkpoint resumes."""
    checkpoint = restored.checkpoint
    assert checkpoint is not None
    bars = [
        (s, b.tolist(), np.round(o, 12).tolist())
        for s, b, o in zip(restored.symbols, restored.bar_start, restored.ohlcv, strict=True)
    ]
    return bars, checkpoint.end, checkpoint.commit, checkpoint.mark


async def run_to_end(
    bootstrap: str, topics: dict[str, str], group: str, records: list[Record], logs: Path
) -> None:
    """One uninterrupted worker over ``records`` until it has committed the final commit point."""
    await produce(bootstrap, topics["ticks"], records)
    with workers(worker_env(bootstrap, topics, group), 1, logs) as (worker,):
        await until(
            lambda: _equals(committed(bootstrap, group, topics["ticks"]), final_commit(records)),
            "clean commit",
        )
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(30) == 0


async def _equals(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def test_a_worker_paused_past_its_session_writes_no_state_that_restore_uses(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str, tmp_path: Path
) -> None:
    records = market()
    clean_topics = await make_topics(topic_factory, 1)
    await run_to_end(kafka_bootstrap, clean_topics, f"{group_id}-clean", records, tmp_path / "clean")
    clean_state = (await read_state(kafka_bootstrap, clean_topics["state"], [0], INTERVAL_MS, 200))[0]

    topics = await make_topics(topic_factory, 1)
    half = len(records) // 2
    await produce(kafka_bootstrap, topics["ticks"], records[:half])
    env = worker_env(kafka_bootstrap, topics, group_id)
    with workers(env, 1, tmp_path / "a") as (zombie,):
        await until(lambda: zombie.owned() == {0}, "the first worker owns the partition")
        await until(
            lambda: _above(committed(kafka_bootstrap, group_id, topics["ticks"]), 0), "a first commit"
        )
        zombie.process.send_signal(signal.SIGSTOP)
        await produce(kafka_bootstrap, topics["ticks"], records[half:])
        with workers(env, 1, tmp_path / "b") as (owner,):
            await until(lambda: owner.owned() == {0}, "the second worker takes the partition over")
            zombie.process.send_signal(signal.SIGCONT)
            await until(
                lambda: logged(zombie, "longer than the session timeout"), "the zombie notices its pause"
            )
            await until(lambda: logged(zombie, "rejoined the group"), "the zombie rejoins")
            await until(
                lambda: _equals(committed(kafka_bootstrap, group_id, topics["ticks"]), final_commit(records)),
                "the group commits the final commit point",
            )
            await until(
                lambda: sorted(map(sorted, (owner.owned(), zombie.owned()))) == [[], [0]],
                "the group settles after the rejoin: one owner, one idle member",
            )
            for worker in (owner, zombie):
                worker.process.send_signal(signal.SIGTERM)
                worker.process.wait(30)

    restored = (await read_state(kafka_bootstrap, topics["state"], [0], INTERVAL_MS, 200))[0]
    assert comparable(restored) == comparable(clean_state)
    generations = [
        record_generation(r.headers) for r in await state_records(kafka_bootstrap, topics["state"])
    ]
    assert restored.checkpoint is not None and restored.checkpoint.generation == max(generations)
    assert len(set(generations)) >= 2, "the partition changed hands"

    outputs: dict[str, Any] = {}
    clean: dict[str, Any] = {}
    await read_all_outputs(kafka_bootstrap, topics["signals"], outputs)
    await read_all_outputs(kafka_bootstrap, clean_topics["signals"], clean)
    assert outputs == clean
    assert len(clean) == len(SYMBOLS) * (BARS - 1 - 199)


async def _above(value: Any, floor: int) -> bool:
    return bool((await value or 0) > floor)
