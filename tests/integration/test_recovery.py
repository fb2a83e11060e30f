"""Crash recovery and scale-out with real worker processes against a real broker.

A clean run gives the reference signals; runs that SIGKILL workers at various points (and a
3-worker group that loses a member) must publish, deduplicated by ``id``, exactly the same
documents: no bar missing, none extra, identical content.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from consumer.kafka.topic_reader import read_topic
from tests.integration.conftest import TopicFactory
from tests.integration.test_worker import produce
from tests.reference import reference_run

INTERVAL_MS = 1_000
START_MS = 1_732_550_400_000
SYMBOLS = [f"R{i:02d}" for i in range(8)]
BARS = 228


def market(seed: int = 11) -> list[tuple[bytes | None, bytes | None]]:
    """Two ticks per bar per symbol with jitter, one symbol going quiet: a deterministic stream."""
    rng = np.random.default_rng(seed)
    records: list[tuple[bytes | None, bytes | None]] = []
    price = dict.fromkeys(SYMBOLS, 50.0)
    for bar in range(BARS):
        for symbol in SYMBOLS:
            if symbol == SYMBOLS[-1] and 150 < bar < 170:
                continue
            for offset in sorted(rng.integers(0, INTERVAL_MS, 2).tolist()):
                price[symbol] *= float(np.exp(rng.normal(0, 0.003)))
                tick = {"symbol": symbol, "ts": START_MS + bar * INTERVAL_MS + offset, "price": price[symbol]}
                records.append((symbol.encode(), orjson.dumps(tick)))
    return records


def worker_env(bootstrap: str, topics: dict[str, str], group: str) -> dict[str, str]:
    return os.environ | {
        "BULLFLAG_BOOTSTRAP_SERVERS": bootstrap,
        "BULLFLAG_TICKS_TOPIC": topics["ticks"],
        "BULLFLAG_SIGNALS_TOPIC": topics["signals"],
        "BULLFLAG_DLQ_TOPIC": topics["dlq"],
        "BULLFLAG_STATE_TOPIC": topics["state"],
        "BULLFLAG_GROUP_ID": group,
        "BULLFLAG_BAR_INTERVAL": "1s",
        "BULLFLAG_ALLOWED_LATENESS": "0s",
        "BULLFLAG_METRICS_HOST": "127.0.0.1",
        "BULLFLAG_METRICS_PORT": "0",
        "BULLFLAG_MAX_POLL_RECORDS": "60",
        "BULLFLAG_SESSION_TIMEOUT": "6s",
        "BULLFLAG_HEARTBEAT_INTERVAL": "500ms",
        "BULLFLAG_FETCH_MAX_WAIT": "100ms",
        "BULLFLAG_THRESHOLD": "0.0",
    }


ASSIGNMENT = re.compile(r"bullflag\.worker: (assigned|revoked) \[([0-9, ]*)\]")


@dataclasses.dataclass(frozen=True)
class WorkerProcess:
    """A ``bullflag run`` process and the file its log goes to."""

    process: subprocess.Popen[bytes]
    log: Path

    def owned(self) -> frozenset[int]:
        """The partitions it owns now, read from its log: the last assignment, none after a revoke."""
        events = ASSIGNMENT.findall(self.log.read_text())
        if not events or events[-1][0] == "revoked":
            return frozenset()
        return frozenset(int(p) for p in events[-1][1].split(",") if p.strip())


@contextlib.contextmanager
def workers(env: dict[str, str], count: int, logs: Path) -> Iterator[list[WorkerProcess]]:
    """Start ``count`` ``bullflag run`` processes logging into ``logs``; kill any still running at the end."""
    logs.mkdir(parents=True, exist_ok=True)
    started = []
    for _ in range(count):
        path = logs / f"worker-{len(list(logs.iterdir()))}.log"
        with path.open("wb") as log:
            command = [sys.executable, "-m", "consumer.cli", "run"]
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        started.append(WorkerProcess(process, path))
    try:
        yield started
    finally:
        for worker in started:
            if worker.process.poll() is None:
                worker.process.kill()
            worker.process.wait()


async def wait_for_group(members: list[WorkerProcess], partitions: int, timeout_s: float = 60) -> None:
    """Until every member owns partitions and together they own each of ``partitions`` once."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        owned = [member.owned() for member in members]
        if all(owned) and sorted(p for part in owned for p in part) == list(range(partitions)):
            return
        assert asyncio.get_running_loop().time() < deadline, f"group not formed in time: {owned}"
        await asyncio.sleep(0.1)


async def read_all_outputs(bootstrap: str, topic: str, into: dict[str, Any]) -> None:
    """Every document on ``topic`` up to its end into ``into``; a repeated id must repeat the content."""

    def visit(_: TopicPartition, records: list[ConsumerRecord]) -> None:
        for record in records:
            document = orjson.loads(record.value)
            previous = into.setdefault(document["id"], document)
            assert previous == document, f"output {document['id']} published twice with different content"

    await read_topic(bootstrap, topic, visit, timeout_s=30)


@contextlib.asynccontextmanager
async def signal_reader(bootstrap: str, topic: str) -> AsyncIterator[Callable[[], Any]]:
    """A reader of the signals topic; the yielded coroutine function returns new documents."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=100
    )
    await consumer.start()

    async def poll() -> list[dict[str, Any]]:
        batch = await consumer.getmany(timeout_ms=200)
        return [orjson.loads(r.value) for records in batch.values() for r in records]

    try:
        yield poll
    finally:
        await consumer.stop()


async def collect(
    poll: Callable[[], Any], into: dict[str, Any], until: Callable[[], bool], timeout_s: float
) -> None:
    """Read documents into ``into`` (by id; a repeated id must repeat the content) until ``until()``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not until():
        assert asyncio.get_running_loop().time() < deadline, f"only {len(into)} distinct outputs in time"
        for document in await poll():
            previous = into.setdefault(document["id"], document)
            assert previous == document, f"output {document['id']} published twice with different content"


async def make_topics(topic_factory: TopicFactory, partitions: int = 2) -> dict[str, str]:
    return {
        "ticks": await topic_factory(partitions),
        "signals": await topic_factory(1),
        "dlq": await topic_factory(1),
        "state": await topic_factory(partitions, config={"cleanup.policy": "compact"}),
    }


@pytest.fixture(scope="module")
def records() -> list[tuple[bytes | None, bytes | None]]:
    return market()


_REFERENCES: dict[tuple[str, int], dict[str, Any]] = {}


async def clean_run(
    bootstrap: str,
    topic_factory: TopicFactory,
    group: str,
    records: list[tuple[bytes | None, bytes | None]],
    partitions: int,
    logs: Path,
) -> dict[str, Any]:
    """Outputs of one uninterrupted worker on ``records`` (computed once per broker and layout).

    Which windows it scores is checked against the reference model, so that a fault shared by
    the clean and the interrupted runs cannot pass as agreement.
    """
    if (bootstrap, partitions) in _REFERENCES:
        return _REFERENCES[bootstrap, partitions]
    topics = await make_topics(topic_factory, partitions)
    await produce(bootstrap, topics["ticks"], records)
    expected = oracle(records)
    reference: dict[str, Any] = {}
    with workers(worker_env(bootstrap, topics, f"{group}-clean"), 1, logs) as (worker,):
        async with signal_reader(bootstrap, topics["signals"]) as poll:
            await collect(poll, reference, lambda: len(reference) >= len(expected), 90)
        worker.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.process.wait, 30) == 0
    await read_all_outputs(bootstrap, topics["signals"], reference)
    assert {(d["symbol"], d["bar_end_ts"]) for d in reference.values()} == expected
    _REFERENCES[bootstrap, partitions] = reference
    return reference


def oracle(records: list[tuple[bytes | None, bytes | None]]) -> set[tuple[str, int]]:
    """(symbol, bar_end_ts) of every window scored, by the reference model.

    Every symbol's last tick falls in the same bar, so the partition each key hashes to does
    not change which bars the partition's event time closes: one model run covers any layout.
    """
    ticks = [orjson.loads(value) for _, value in records if value is not None]
    stream = [(offset, tick["symbol"], tick["ts"]) for offset, tick in enumerate(ticks)]
    return reference_run(stream, len(records), INTERVAL_MS).scored


@pytest.mark.parametrize("kill_after", [[40], [15, 120]])
async def test_sigkill_and_restart_publish_exactly_the_clean_outputs(
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    group_id: str,
    records: list[tuple[bytes | None, bytes | None]],
    kill_after: list[int],
    tmp_path: Path,
) -> None:
    reference = await clean_run(kafka_bootstrap, topic_factory, group_id, records, 2, tmp_path / "clean")

    topics = await make_topics(topic_factory)
    await produce(kafka_bootstrap, topics["ticks"], records)
    env = worker_env(kafka_bootstrap, topics, group_id)
    seen: dict[str, Any] = {}
    async with signal_reader(kafka_bootstrap, topics["signals"]) as poll:
        for threshold in kill_after:
            with workers(env, 1, tmp_path) as (worker,):
                await collect(poll, seen, lambda t=threshold: len(seen) >= t, 90)
                worker.process.send_signal(signal.SIGKILL)
        with workers(env, 1, tmp_path) as (worker,):
            await collect(poll, seen, lambda: len(seen) >= len(reference), 120)
            worker.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.process.wait, 30) == 0
    await read_all_outputs(kafka_bootstrap, topics["signals"], seen)
    assert seen.keys() == reference.keys()
    for output_id, document in reference.items():
        assert seen[output_id] == document


async def test_a_group_that_loses_a_member_publishes_exactly_the_clean_outputs(
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    group_id: str,
    records: list[tuple[bytes | None, bytes | None]],
    tmp_path: Path,
) -> None:
    reference = await clean_run(kafka_bootstrap, topic_factory, group_id, records, 3, tmp_path / "clean")

    topics = await make_topics(topic_factory, partitions=3)
    env = worker_env(kafka_bootstrap, topics, group_id)
    seen: dict[str, Any] = {}
    async with signal_reader(kafka_bootstrap, topics["signals"]) as poll:
        with workers(env, 3, tmp_path) as members:
            await wait_for_group(members, 3)
            split = len(records) * 212 // BARS
            await produce(kafka_bootstrap, topics["ticks"], records[:split])
            await collect(poll, seen, lambda: len(seen) >= 5, 90)
            killed, *survivors = members
            assert killed.owned(), "the member killed owns partitions, so the group must fail over"
            killed.process.send_signal(signal.SIGKILL)
            await produce(kafka_bootstrap, topics["ticks"], records[split:])
            await collect(poll, seen, lambda: len(seen) >= len(reference), 150)
            await wait_for_group(survivors, 3)
    await read_all_outputs(kafka_bootstrap, topics["signals"], seen)
    assert seen.keys() == reference.keys()
    for output_id, document in reference.items():
        assert seen[output_id] == document
