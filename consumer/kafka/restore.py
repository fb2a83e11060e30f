"""Reading state partitions back from the state topic when partitions are assigned.

Reads each partition from its beginning to its high watermark (taken from fetch responses:
``end_offsets`` is not trustworthy on every Kafka-protocol broker) and folds the records into
a ``StateReplay``; the consumer joins no group.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer.core.state import RestoredPartition, StateReplay

FETCH_TIMEOUT_MS = 200
MAX_RECORDS = 50_000


class StateRestoreError(RuntimeError):
    """The state topic could not be read to its end in time."""


async def read_state(
    client_options: dict[str, Any],
    topic: str,
    partitions: Iterable[int],
    interval_ms: int,
    seq_len: int,
    timeout_s: float = 300.0,
) -> dict[int, RestoredPartition]:
    """Replay the given partitions of the state topic; one ``RestoredPartition`` each."""
    tps = [TopicPartition(topic, p) for p in sorted(set(partitions))]
    if not tps:
        return {}
    replays = {tp: StateReplay(interval_ms, seq_len) for tp in tps}
    consumer = AIOKafkaConsumer(
        **client_options,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = set(tps)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise StateRestoreError(
                    f"state topic {topic!r} partitions {sorted(tp.partition for tp in remaining)} "
                    f"not read to their end within {timeout_s:.0f}s"
                )
            batch = await consumer.getmany(*remaining, timeout_ms=FETCH_TIMEOUT_MS, max_records=MAX_RECORDS)
            for tp, records in batch.items():
                replays[tp].apply([r.key for r in records], [r.value for r in records])
            for tp in list(remaining):
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return {tp.partition: replay.result() for tp, replay in replays.items()}
