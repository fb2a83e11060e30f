"""A batch between the worker's two stages, and the state records it leaves behind.

``_ingest`` turns fetched records into an :class:`Ingested` (per-partition outcomes, dead
letters, windows to score); ``_finish`` publishes its outputs, then :func:`state_records`,
then commits. Kept apart from the worker so the records a batch writes to the state topic
are built in one place, whatever produced the batch.
"""

from __future__ import annotations

import dataclasses

from aiokafka import TopicPartition

from consumer.core.pipeline import BarPipeline, PartitionOutcome
from consumer.core.state import CHECKPOINT_KEY, CheckpointBook, bar_keys, bar_records
from consumer.core.windows import Windows
from consumer.kafka.fencing import Fence
from consumer.kafka.publisher import Outgoing


@dataclasses.dataclass(frozen=True)
class Ingested:
    """A batch between ingest and finish: per-partition outcomes, dead letters, windows to score.

    ``ends``: per partition the offset after the batch's last record (the checkpoint's end);
    ``started`` / ``closed_at``: ``time.perf_counter()`` when ingest began and ended.
    """

    started: float
    closed_at: float
    outcomes: dict[TopicPartition, PartitionOutcome]
    ends: dict[TopicPartition, int]
    dead_letters: list[Outgoing]
    windows: Windows
    decisions: list[Outgoing] = dataclasses.field(default_factory=list)
    """Idle-log records (:mod:`consumer.kafka.idle_close`), sent and acknowledged before the outputs."""


def state_records(
    ingested: Ingested,
    pipeline: BarPipeline,
    checkpoints: CheckpointBook,
    fence: Fence,
    state_topic: str,
) -> list[Outgoing]:
    """Per partition, for the state topic's same partition: tombstones for the bars of expired
    symbols, then the closed bars (a symbol that came back writes its new bars after them), then
    a checkpoint."""
    out = []
    for tp, outcome in ingested.outcomes.items():
        stored = outcome.stored
        headers = fence.headers(tp.partition)
        out += [
            Outgoing(state_topic, key, None, headers, tp.partition)
            for key in bar_keys(outcome.expired.key_symbols, outcome.expired.key_slots)
        ]
        out += [
            Outgoing(state_topic, key, value, headers, tp.partition)
            for key, value in bar_records(
                stored.symbols,
                stored.bar_start,
                stored.ohlcv,
                pipeline.interval_ms,
                pipeline.seq_len,
                stored.sequence if pipeline.by_sequence else None,
            )
        ]
        checkpoint = checkpoints.checkpoint(
            tp.partition,
            ingested.ends[tp],
            outcome.commit,
            outcome.mark,
            fence.generation(tp.partition),
            fence.member,
        )
        out.append(Outgoing(state_topic, CHECKPOINT_KEY, checkpoint.encode(), headers, tp.partition))
    return out
