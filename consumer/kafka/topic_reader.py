"""The one way to read a topic from its beginning to its end: state restore, ``explain``, ``demo``.

The end is each partition's high watermark as fetch responses report it, compared with the
consumer's position. ``end_offsets()`` is not used: the embedded broker answers it wrongly,
and the high watermark after a fetch is right on every Kafka-protocol broker. No consumer group
is joined and nothing is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from consumer.kafka.clients import Connection, as_settings, new_consumer

Visit = Callable[[TopicPartition, list[ConsumerRecord]], bool | None]
"""Called with each fetched batch of one partition; returning True stops the read early."""

DEFAULT_POLL_MS = 200


class TopicReadError(RuntimeError):
    """A topic could not be read to its end: it is missing, the broker failed, or time ran out."""


async def reached_end(consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]) -> bool:
    """Whether every partition's position has reached the high watermark its last fetch reported."""
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


async def read_partitions(
    connection: Connection,
    partitions: Sequence[TopicPartition],
    visit: Visit,
    *,
    client_id: str | None = None,
    timeout_s: float | None = None,
    follow: Callable[[], bool] | None = None,
    poll_ms: int = DEFAULT_POLL_MS,
    max_records: int | None = None,
    **consumer_options: Any,
) -> None:
    """Read ``partitions`` from their beginning to their end, handing each batch to ``visit``.

    While ``follow()`` is true the read goes on past the end (a live tail); it ends at the first
    end reached after ``follow()`` turns false. Raises :class:`TopicReadError` on a broker error
    or when the end is not reached within ``timeout_s``.
    """
    async with _reader(connection, client_id, timeout_s, consumer_options) as consumer:
        await _read(consumer, list(partitions), visit, follow, poll_ms, max_records)


async def read_topic(
    connection: Connection,
    topic: str,
    visit: Visit,
    *,
    client_id: str | None = None,
    timeout_s: float | None = None,
    poll_ms: int = DEFAULT_POLL_MS,
    **consumer_options: Any,
) -> None:
    """Read every partition of ``topic`` to its end; :class:`TopicReadError` if there is no such topic.

    Existence is checked with a metadata request for all topics, which creates nothing (naming a
    missing topic would auto-create it on brokers that allow that).
    """
    async with _reader(connection, client_id, timeout_s, consumer_options) as consumer:
        if topic not in await consumer.topics():
            bootstrap = as_settings(connection).bootstrap_servers
            raise TopicReadError(f"there is no topic {topic!r} on {bootstrap}.")
        numbers = sorted(consumer.partitions_for_topic(topic) or ())
        await _read(consumer, [TopicPartition(topic, p) for p in numbers], visit, None, poll_ms, None)


@contextlib.asynccontextmanager
async def _reader(
    connection: Connection, client_id: str | None, timeout_s: float | None, options: dict[str, Any]
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started group-less consumer, stopped afterwards; timeouts and broker errors as TopicReadError."""
    options = {"fetch_max_wait_ms": 100} | options
    consumer = new_consumer(connection, client_id=client_id, **options)
    bootstrap = as_settings(connection).bootstrap_servers
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            yield consumer
    except TimeoutError:
        raise TopicReadError(
            f"reading from {bootstrap} did not reach the end within {timeout_s:g} s; check that the "
            "broker is reachable, or allow more time for a long topic."
        ) from None
    except KafkaError as exc:
        raise TopicReadError(f"reading from {bootstrap} failed: {exc!r}.") from None
    finally:
        await consumer.stop()


async def _read(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    visit: Visit,
    follow: Callable[[], bool] | None,
    poll_ms: int,
    max_records: int | None,
) -> None:
    """Assign, seek to the beginning, and fetch until every partition is at its end (or ``visit`` stops)."""
    if not partitions:
        return
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    while True:
        batch = await consumer.getmany(*partitions, timeout_ms=poll_ms, max_records=max_records)
        for tp, records in batch.items():
            if visit(tp, records):
                return
        if (follow is None or not follow()) and await reached_end(consumer, partitions):
            return
