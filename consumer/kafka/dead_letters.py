"""Dead-letter records: each rejected input record, unchanged, with why and where it came from."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from consumer.core.record_rules import Reject
from consumer.kafka.publisher import Outgoing


def dead_letter_headers(topic: str, record: ConsumerRecord, reject: Reject) -> list[tuple[str, bytes]]:
    """Headers of a dead-letter record: why it was rejected and where it came from."""
    return [
        ("bullflag.reason", str(reject.reason).encode()),
        ("bullflag.detail", reject.detail.encode()),
        ("bullflag.source.topic", topic.encode()),
        ("bullflag.source.partition", str(record.partition).encode()),
        ("bullflag.source.offset", str(record.offset).encode()),
    ]


def dead_letters(
    dlq_topic: str, topic: str, records: list[ConsumerRecord], rejects: list[Reject]
) -> tuple[list[Outgoing], dict[str, int]]:
    """The dead-letter records of a partition's batch (key and value bytes unchanged), and how
    many there are per reason."""
    counts: dict[str, int] = {}
    for reject in rejects:
        counts[str(reject.reason)] = counts.get(str(reject.reason), 0) + 1
    out = [
        Outgoing(
            dlq_topic,
            records[r.index].key,
            records[r.index].value,
            dead_letter_headers(topic, records[r.index], r),
        )
        for r in rejects
    ]
    return out, counts
