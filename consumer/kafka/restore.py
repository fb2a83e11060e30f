"""Reading state partitions back from the state topic when partitions are assigned.

Reads each partition to its end with the one topic reader and folds the records into a
``StateReplay`` per partition.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import ConsumerRecord, TopicPartition

from consumer.core.state import RestoredPartition, StateReplay
from consumer.kafka.clients import Connection
from consumer.kafka.topic_reader import TopicReadError, read_partitions

MAX_RECORDS = 50_000


class StateRestoreError(RuntimeError):
    """The state topic could not be read to its end in time."""


async def read_state(
    connection: Connection,
    topic: str,
    partitions: Iterable[int],
    interval_ms: int,
    seq_len: int,
    timeout_s: float = 300.0,
) -> dict[int, RestoredPartition]:
    """Replay the given partitions of the state topic; one ``RestoredPartition`` each."""
    tps = [TopicPartition(topic, p) for p in sorted(set(partitions))]
    replays = {tp: StateReplay(interval_ms, seq_len) for tp in tps}

    def apply(tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        replays[tp].apply([r.key for r in records], [r.value for r in records])

    try:
        await read_partitions(
            connection,
            tps,
            apply,
            timeout_s=timeout_s,
            max_records=MAX_RECORDS,
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=8 << 20,
        )
    except TopicReadError as exc:
        raise StateRestoreError(
            f"state topic {topic!r} partitions {[tp.partition for tp in tps]}: {exc}"
        ) from None
    return {tp.partition: replay.result() for tp, replay in replays.items()}
