"""Publishing under partial failure, against the real broker: a partition's order survives a failed send."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder

from consumer.kafka.publisher import Outgoing, Publisher
from consumer.kafka.topic_reader import read_topic
from tests.integration.conftest import TopicFactory

RECORDS = 300


class FirstBatchFails:
    """The real producer, except that its first batch fails as if the client had given up on it
    after its own retries (the case in which the publisher sends the batch again itself)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.producer, name)

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.sent += 1
        if self.sent == 1:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(KafkaTimeoutError("injected: batch expired"))
            return failed
        return await self.producer.send_batch(builder, topic, partition=partition)


async def test_a_failed_batch_is_sent_again_before_anything_after_it(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=False, max_batch_size=2048
    )
    await producer.start()
    flaky = FirstBatchFails(producer)
    errors: list[str] = []
    try:
        records = [Outgoing(topic, b"SYM", f'{{"n": {i}}}'.encode()) for i in range(RECORDS)]
        await Publisher(cast(AIOKafkaProducer, flaky), errors.append).publish(records, stopping=lambda: False)
    finally:
        await producer.stop()
    assert flaky.sent > 3, "the records span several batches, so a later one could overtake the first"
    assert errors == ["produce"]
    seen: list[bytes | None] = []

    def visit(_: TopicPartition, batch: list[ConsumerRecord]) -> None:
        seen.extend(record.value for record in batch)

    await read_topic(kafka_bootstrap, topic, visit, timeout_s=30)
    assert seen == [record.value for record in records]
