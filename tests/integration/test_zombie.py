"""A paused worker cannot write stale state: SIGSTOP past the session timeout in the middle of
the stream, a second worker takes over and finishes it, SIGCONT. Nothing the resumed worker
creates reaches a topic, a restore right then equals the new owner's state, and the state
restored at the end equals an uninterrupted run's, its checkpoint of the newest generation.

Every step waits on something observable: a worker's log naming its assignment or revocation,
the process state in /proc, the checkpoints on the state topic, the group's committed offset.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from consumer.core.state import CHECKPOINT_KEY, Checkpoint, RestoredPartition
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


async def topic_records(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record of a one-partition topic, in offset order."""
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


async def caught_up(bootstrap: str, topics: dict[str, str], group: str, end: int) -> bool:
    """Whether the partition's last checkpoint ends at ``end`` and the group committed its commit
    point: the batch's outputs and state are acknowledged and nothing of it is left to send."""
    checkpoints = [r for r in await topic_records(bootstrap, topics["state"]) if r.key == CHECKPOINT_KEY]
    if not checkpoints:
        return False
    last = Checkpoint.decode(checkpoints[-1].value)
    return last.end == end and await committed(bootstrap, group, topics["ticks"]) == last.commit


def revokes(worker: WorkerProcess) -> int:
    """How often ``worker`` has given its partitions up."""
    return worker.log.read_text().count("bullflag.worker: revoked")


async def test_a_worker_paused_past_its_session_writes_nothing_after_it_resumes(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str, tmp_path: Path
) -> None:
    """The zombie is stopped in the middle of the stream, batches in hand; the new owner finishes
    the stream and goes idle; then the zombie resumes. Until it gives its partition up only the
    zombie can write: nothing it creates after SIGCONT may reach a topic (records the producer
    held when it froze may, as restore ignores them), and a restore then equals the owner's state."""
    records = market()
    clean_topics = await make_topics(topic_factory, 1)
    await run_to_end(kafka_bootstrap, clean_topics, f"{group_id}-clean", records, tmp_path / "clean")
    clean_state = (await read_state(kafka_bootstrap, clean_topics["state"], [0], INTERVAL_MS, 200))[0]

    topics = await make_topics(topic_factory, 1)
    await produce(kafka_bootstrap, topics["ticks"], records)
    env = worker_env(kafka_bootstrap, topics, group_id)
    with workers(env, 1, tmp_path / "a") as (zombie,):
        await until(lambda: zombie.owned() == {0}, "the first worker owns the partition")
        await until(lambda: checkpoint_end(kafka_bootstrap, topics, len(records) // 4), "a quarter done")
        zombie.process.send_signal(signal.SIGSTOP)
        await until(lambda: stopped(zombie), "the zombie stopped")
        assert not await checkpoint_end(kafka_bootstrap, topics, len(records)), "stopped mid-stream"
        with workers(env, 1, tmp_path / "b") as (owner,):
            await until(lambda: owner.owned() == {0}, "the second worker takes the partition over")
            await until(lambda: caught_up(kafka_bootstrap, topics, group_id, len(records)), "the owner done")
            owner_state = (await read_state(kafka_bootstrap, topics["state"], [0], INTERVAL_MS, 200))[0]
            assert comparable(owner_state) == comparable(clean_state)
            state_before = len(await topic_records(kafka_bootstrap, topics["state"]))
            signals_before = len(await topic_records(kafka_bootstrap, topics["signals"]))
            revoked_before = revokes(zombie)
            resumed_ms = time.time() * 1000
            zombie.process.send_signal(signal.SIGCONT)
            await until(lambda: revokes(zombie) > revoked_before, "the zombie gives its partition up")

            after = (await read_state(kafka_bootstrap, topics["state"], [0], INTERVAL_MS, 200))[0]
            assert comparable(after) == comparable(owner_state)
            written = (await topic_records(kafka_bootstrap, topics["state"]))[state_before:]
            published = (await topic_records(kafka_bootstrap, topics["signals"]))[signals_before:]
            assert [r.timestamp for r in written if r.timestamp >= resumed_ms] == [], (
                "state written after SIGCONT"
            )
            assert [r.timestamp for r in published if r.timestamp >= resumed_ms] == [], (
                "published after SIGCONT"
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
    state = await topic_records(kafka_bootstrap, topics["state"])
    assert_no_stale_checkpoint(state, resumed_ms)
    generations = [record_generation(r.headers) for r in state]
    assert restored.checkpoint is not None and restored.checkpoint.generation == max(generations)
    assert len(set(generations)) >= 2, "the partition changed hands"

    outputs: dict[str, Any] = {}
    clean: dict[str, Any] = {}
    await read_all_outputs(kafka_bootstrap, topics["signals"], outputs)
    await read_all_outputs(kafka_bootstrap, clean_topics["signals"], clean)
    assert outputs == clean
    assert len(clean) == len(SYMBOLS) * (BARS - 1 - 199)


def assert_no_stale_checkpoint(state: list[ConsumerRecord], resumed_ms: float) -> None:
    """In offset order, a checkpoint of a lower generation than one before it, or ending before
    it, must have been created before the zombie resumed (handed to its producer before it froze)."""
    newest, end = -1, 0
    for record in state:
        if record.key != CHECKPOINT_KEY:
            continue
        checkpoint = Checkpoint.decode(record.value)
        generation = record_generation(record.headers)
        if generation < newest or checkpoint.end < end:
            assert record.timestamp < resumed_ms, (
                f"checkpoint of generation {generation} ending at {checkpoint.end} created after "
                f"SIGCONT, after one of generation {newest} ending at {end}"
            )
            continue
        newest, end = generation, checkpoint.end


async def checkpoint_end(bootstrap: str, topics: dict[str, str], end: int) -> bool:
    """Whether the partition's last checkpoint ends at ``end`` or later."""
    checkpoints = [r for r in await topic_records(bootstrap, topics["state"]) if r.key == CHECKPOINT_KEY]
    return bool(checkpoints) and Checkpoint.decode(checkpoints[-1].value).end >= end


def stopped(worker: WorkerProcess) -> bool:
    """Whether the process is in the stopped state (``T`` in /proc)."""
    stat = Path(f"/proc/{worker.process.pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "T"
