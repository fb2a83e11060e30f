"""Behaviour of the embedded broker, explicit topic set-up, and a produce/consume round trip."""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata

from consumer.kafka import embedded_broker
from consumer.kafka.embedded_broker import (
    BINARY_ENV_VAR,
    BrokerPortInUseError,
    BrokerUnavailableError,
    EmbeddedBroker,
)
from consumer.kafka.topics import TopicMismatchError, TopicSpec, ensure_topics

if TYPE_CHECKING:
    from .conftest import TopicFactory, WaitForAssignment

RECORDS = 1_000
SYMBOLS = 37


def _topic_name() -> str:
    """A topic name no other test uses."""
    return f"bullflag-test-{uuid.uuid4().hex}"


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (a reaped child does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _produce(
    bootstrap: str, topic: str, values: range, settings: dict[str, Any]
) -> list[RecordMetadata]:
    """Send ``values`` keyed by symbol without awaiting each send; return their metadata."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **settings)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=f"SYM{i % SYMBOLS}".encode(), value=str(i).encode())
            for i in values
        ]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


async def _consume(consumer: AIOKafkaConsumer, count: int) -> dict[TopicPartition, list[Any]]:
    """Fetch until ``count`` records arrived; return them per partition in offset order."""
    received: dict[TopicPartition, list[Any]] = defaultdict(list)
    total = 0
    async with asyncio.timeout(20):
        while total < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for tp, records in batches.items():
                received[tp].extend(records)
                total += len(records)
    return received


@pytest.fixture
def stray_broker(broker_binary: Path, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A second, test-owned broker (the session broker may be an external cluster)."""
    with EmbeddedBroker(binary=broker_binary, log_dir=tmp_path) as broker:
        yield broker


async def test_round_trip_commits_survive_consumer_restart(
    kafka_bootstrap: str,
    unique_topic: str,
    group_id: str,
    consumer_settings: dict[str, Any],
    producer_settings: dict[str, Any],
    wait_for_assignment: WaitForAssignment,
) -> None:
    sent = await _produce(kafka_bootstrap, unique_topic, range(RECORDS), producer_settings)

    consumer = AIOKafkaConsumer(
        unique_topic, bootstrap_servers=kafka_bootstrap, group_id=group_id, **consumer_settings
    )
    await consumer.start()
    try:
        partitions = await wait_for_assignment(consumer, 3)
        received = await _consume(consumer, RECORDS)
        await consumer.commit()
        committed = {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()

    values = sorted(int(r.value) for records in received.values() for r in records)
    assert values == list(range(RECORDS))
    assert {(m.partition, m.offset) for m in sent} == {
        (tp.partition, r.offset) for tp, records in received.items() for r in records
    }
    partition_of_key: dict[bytes, set[int]] = defaultdict(set)
    for tp, records in received.items():
        for record in records:
            partition_of_key[record.key].add(tp.partition)
        in_partition = [int(r.value) for r in records]
        assert in_partition == sorted(in_partition), "per-partition order must be kept"
    assert all(len(owners) == 1 for owners in partition_of_key.values())
    assert committed == {tp: len(received[tp]) for tp in partitions}

    later = range(RECORDS, RECORDS + 10)
    more = await _produce(kafka_bootstrap, unique_topic, later, producer_settings)
    # The restarted consumer reads the group's commits through a manual assignment: same
    # offsets as after a re-join, without the slow re-join of an emptied group.
    restarted = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group_id, **consumer_settings)
    await restarted.start()
    try:
        restarted.assign(list(partitions))
        assert {tp: await restarted.committed(tp) for tp in partitions} == committed
        resumed = await _consume(restarted, len(more))
    finally:
        await restarted.stop()
    assert sorted(int(r.value) for rs in resumed.values() for r in rs) == list(later)


async def test_ensure_topics_creates_explicitly_and_is_idempotent(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient
) -> None:
    ticks = TopicSpec(_topic_name(), 5)
    changelog = TopicSpec(_topic_name(), 5, {"cleanup.policy": "compact"})
    try:
        created = await ensure_topics(kafka_bootstrap, [ticks, changelog])
        again = await ensure_topics(kafka_bootstrap, [ticks, changelog])
        described = await kafka_admin.describe_topics([ticks.name, changelog.name])
    finally:
        await kafka_admin.delete_topics([ticks.name, changelog.name])
    assert created == {ticks.name, changelog.name}
    assert again == frozenset()
    assert {t["topic"]: len(t["partitions"]) for t in described} == {
        ticks.name: 5,
        changelog.name: 5,
    }


async def test_ensure_topics_rejects_partition_count_mismatch(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    name = await topic_factory(2)
    with pytest.raises(TopicMismatchError, match=name) as raised:
        await ensure_topics(kafka_bootstrap, [TopicSpec(name, 3)])
    assert (raised.value.topic, raised.value.expected, raised.value.actual) == (name, 3, 2)


def test_broker_stop_leaves_no_process(broker_binary: Path, tmp_path: Path) -> None:
    with EmbeddedBroker(binary=broker_binary, log_dir=tmp_path) as broker:
        pid = broker.pid
        assert broker.is_running and _alive(pid)
        assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    assert not broker.is_running and not _alive(pid)
    broker.stop()
    assert broker.log_path.parent == tmp_path and broker.log_path.stat().st_size > 0


def test_forgotten_broker_is_stopped_when_collected(broker_binary: Path, tmp_path: Path) -> None:
    broker = EmbeddedBroker(binary=broker_binary, log_dir=tmp_path).start()
    pid = broker.pid
    del broker
    gc.collect()
    assert not _alive(pid)


async def test_broker_serves_from_async_code(broker_binary: Path, tmp_path: Path) -> None:
    async with EmbeddedBroker(binary=broker_binary, log_dir=tmp_path) as broker:
        name = _topic_name()
        assert await ensure_topics(broker.bootstrap, [TopicSpec(name, 1)]) == {name}
    assert not _alive(broker.pid)


def test_second_broker_on_busy_port_fails(
    stray_broker: EmbeddedBroker, broker_binary: Path, tmp_path: Path
) -> None:
    second = EmbeddedBroker(stray_broker.port, binary=broker_binary, log_dir=tmp_path)
    with pytest.raises(BrokerPortInUseError, match=str(stray_broker.port)):
        second.start()
    assert not second.is_running and not _alive(second.pid)
    assert stray_broker.is_running


def test_auto_picked_busy_port_is_replaced(
    stray_broker: EmbeddedBroker,
    broker_binary: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    free_ports = iter([stray_broker.port, embedded_broker.pick_free_port()])
    monkeypatch.setattr(embedded_broker, "pick_free_port", lambda: next(free_ports))
    with EmbeddedBroker(binary=broker_binary, log_dir=tmp_path) as broker:
        assert broker.port != stray_broker.port
        assert broker.is_running


def test_missing_binary_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BINARY_ENV_VAR, str(tmp_path / "no-such-tansu"))
    with pytest.raises(BrokerUnavailableError, match=BINARY_ENV_VAR):
        EmbeddedBroker(log_dir=tmp_path).start()
