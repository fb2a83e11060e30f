"""Reading state partitions back from the state topic when partitions are assigned.

Reads each partition to its end with the one topic reader and folds the records into a
``StateReplay`` per partition. A state topic that vanished is an error, never re-created by
naming it; committed offsets or saved state that vanished are reported loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka import ConsumerRecord, TopicPartition

from consumer.core.state import CHECKPOINT_VERSION, Checkpoint, RestoredPartition, StateReplay
from consumer.kafka.clients import Connection, as_settings
from consumer.kafka.fencing import record_generation
from consumer.kafka.topic_reader import TopicReadError, read_partitions
from consumer.kafka.topics import existing_topics

log = logging.getLogger("bullflag.worker")

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
    *,
    by_sequence: bool = False,
) -> dict[int, RestoredPartition]:
    """Replay the given partitions of the state topic; one ``RestoredPartition`` each
    (``by_sequence``: bar slots are sequence numbers, see :mod:`consumer.core.state`)."""
    tps = [TopicPartition(topic, p) for p in sorted(set(partitions))]
    if topic not in await existing_topics(connection):
        raise StateRestoreError(
            f"the state topic {topic!r} is gone from {as_settings(connection).bootstrap_servers} (did "
            "the cluster lose its data?); it is not re-created here, where any default would be "
            "wrong: restart the worker, which creates it with the input's partition count, and "
            "expect cold buffers"
        )
    replays = {tp: StateReplay(interval_ms, seq_len, by_sequence) for tp in tps}

    def apply(tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        generations = [record_generation(r.headers) for r in records]
        replays[tp].apply([r.key for r in records], [r.value for r in records], generations)

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


def report_reset(tp: TopicPartition, committed: int | None, checkpoint: Checkpoint | None) -> None:
    """Say loudly when committed offsets or saved state vanished: the stream goes on, but not exactly."""
    if checkpoint is not None and committed is None:
        log.error(
            "partition %d: the group has no committed offset, yet the state topic has a checkpoint "
            "at offset %d: the committed offsets were lost (reset); reading again from the earliest "
            "offset, records before the checkpoint are not published again",
            tp.partition,
            checkpoint.end,
        )
    elif checkpoint is None and committed is not None:
        log.error(
            "partition %d: committed offset %d, yet the state topic holds nothing for it: the saved "
            "state was lost (reset); buffers start cold, so its symbols need 200 new bars to be scored",
            tp.partition,
            committed,
        )
    if checkpoint is not None and checkpoint.migrated_from is not None:
        log.warning(
            "partition %d: checkpoint of state version %d read as version %d: its event-time clock "
            "restarts from the saved time with an empty window (outputs stay exact; the next "
            "checkpoint is written in the new version)",
            tp.partition,
            checkpoint.migrated_from,
            CHECKPOINT_VERSION,
        )
