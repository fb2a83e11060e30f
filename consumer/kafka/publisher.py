"""Sending records and waiting for their acknowledgements, retrying what the broker refused.

The worker commits input offsets only after every record derived from them is acknowledged,
so a send that fails (broker unreachable, leader moving) is sent again until it succeeds or
the worker is asked to stop; nothing acknowledged is ever lost. Partitions are sent in
parallel, but within a partition a record batch is queued only once the one before it is
acknowledged: a batch that failed is sent again before anything after it, so a symbol's
documents reach the topic in order even when a send fails after the client's own retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

log = logging.getLogger("bullflag.publisher")

RETRY_BACKOFF_S = 0.5
RETRY_BACKOFF_MAX_S = 10.0


class PublishAbortedError(RuntimeError):
    """Records were still unacknowledged when the worker was asked to stop."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to send: topic, key, value, headers and (for the state topic) a partition."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    partition: int | None = None


class Publisher:
    """Sends batches of ``Outgoing`` records with one producer and waits for all acks.

    Records are grouped per partition (keyed ones by the producer's default partitioner,
    murmur2 as in Kafka's Java client) and appended to record batches directly, which costs a
    fraction of a ``send()`` per record; order within a partition is kept.
    """

    def __init__(self, producer: AIOKafkaProducer, on_error: Callable[[str], None]) -> None:
        self.producer = producer
        self.on_error = on_error
        self._partitioner = DefaultPartitioner()

    async def publish(self, records: Sequence[Outgoing], stopping: Callable[[], bool]) -> None:
        """Send ``records``; return once every one is acknowledged.

        Batches that fail are sent again with exponential backoff; raises
        ``PublishAbortedError`` if ``stopping()`` turns true while some are still unacknowledged.
        """
        pending = await self._by_partition(records)
        try:
            async with asyncio.TaskGroup() as group:
                for tp, records_of_tp in pending.items():
                    group.create_task(self._publish_partition(tp, records_of_tp, stopping))
        except ExceptionGroup as errors:
            raise errors.exceptions[0] from None

    async def _publish_partition(
        self, tp: TopicPartition, records: list[Outgoing], stopping: Callable[[], bool]
    ) -> None:
        """Send one partition's records batch after batch, each acknowledged before the next."""
        for builder, held in self._chunks(records):
            delay = RETRY_BACKOFF_S
            while True:
                try:
                    await (await self._send_batch(tp, builder))
                    break
                except KafkaError as exc:
                    self.on_error("produce")
                    log.warning(
                        "%d records for %s-%d not acknowledged (%s); sending them again before the rest",
                        len(held),
                        tp.topic,
                        tp.partition,
                        exc,
                    )
                    if stopping():
                        raise PublishAbortedError(f"{len(held)} records unacknowledged at shutdown") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_BACKOFF_MAX_S)
                ((builder, _),) = self._chunks(held)

    async def _by_partition(self, records: Sequence[Outgoing]) -> dict[TopicPartition, list[Outgoing]]:
        """Records grouped by destination partition, in their original order."""
        partitions: dict[str, list[int]] = {}
        groups: dict[TopicPartition, list[Outgoing]] = {}
        for record in records:
            partition = record.partition
            if partition is None:
                if record.topic not in partitions:
                    partitions[record.topic] = sorted(await self.producer.partitions_for(record.topic))
                every = partitions[record.topic]
                partition = self._partitioner(record.key, every, every)
            groups.setdefault(TopicPartition(record.topic, partition), []).append(record)
        return groups

    def _chunks(self, records: list[Outgoing]) -> list[tuple[BatchBuilder, list[Outgoing]]]:
        """Record batches holding ``records`` in order, each with the records it holds."""
        chunks: list[tuple[BatchBuilder, list[Outgoing]]] = []
        builder = self.producer.create_batch()
        held: list[Outgoing] = []
        for record in records:
            if (
                builder.append(
                    timestamp=None, key=record.key, value=record.value, headers=list(record.headers)
                )
                is None
            ):
                chunks.append((builder, held))
                builder, held = self.producer.create_batch(), []
                if (
                    builder.append(
                        timestamp=None, key=record.key, value=record.value, headers=list(record.headers)
                    )
                    is None
                ):
                    raise ValueError(
                        f"a record for {record.topic} is larger than the producer's max batch size"
                    )
            held.append(record)
        chunks.append((builder, held))
        return chunks

    async def _send_batch(self, tp: TopicPartition, builder: BatchBuilder) -> asyncio.Future[Any]:
        """Queue one batch; a failure to even queue it becomes a failed future."""
        try:
            return await self.producer.send_batch(builder, tp.topic, partition=tp.partition)
        except KafkaError as exc:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed
