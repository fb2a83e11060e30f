"""Following topics for the dashboard: the signals topic and the state topic, live, forever.

Each :class:`TopicFollower` reads every partition of its topic from the beginning with the
project's one topic reader (:func:`consumer.kafka.topic_reader.read_partitions` with
``follow=``) through the one client factory, and then keeps tailing it. A topic that does not
exist yet (the dashboard started before the worker) is waited for, checked with a metadata
request for all topics, which creates nothing; broker trouble is shown in :attr:`status` and
the read starts over after a pause that doubles, up to ``MAX_RETRY_S``, while it lasts.
Starting over reads records again: the stores downstream are idempotent (documents
deduplicated by id, bars keyed by symbol and start).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from consumer.kafka.clients import Connection, new_consumer
from consumer.kafka.topic_reader import TopicReadError, Visit, read_partitions

log = logging.getLogger(__name__)

RETRY_S: Final = 1.0
MAX_RETRY_S: Final = 15.0
CONNECT_TIMEOUT_S: Final = 10.0


async def topic_partitions(
    connection: Connection, topic: str, *, client_id: str, timeout_s: float = CONNECT_TIMEOUT_S
) -> list[TopicPartition] | None:
    """The partitions of ``topic``, or None while there is no such topic (nothing is created)."""
    consumer = new_consumer(connection, client_id=client_id)
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            if topic not in await consumer.topics():
                return None
        numbers = sorted(consumer.partitions_for_topic(topic) or ())
        return [TopicPartition(topic, number) for number in numbers]
    finally:
        await consumer.stop()


class TopicFollower:
    """Reads ``topic`` from its beginning and follows it, handing each batch to ``visit``."""

    def __init__(
        self,
        connection: Connection,
        topic: str,
        visit: Visit,
        *,
        client_id: str,
        retry_s: float = RETRY_S,
        max_records: int | None = None,
    ) -> None:
        self.connection = connection
        self.topic = topic
        self.status = "starting"
        self._visit = visit
        self._client_id = client_id
        self._retry_s = retry_s
        self._max_records = max_records
        self._following = True

    async def run(self) -> None:
        """Follow the topic until cancelled; trouble shows in :attr:`status`, then it starts over."""
        pause = self._retry_s
        while self._following:
            try:
                partitions = await topic_partitions(self.connection, self.topic, client_id=self._client_id)
                if partitions is None:
                    self.status = f"waiting for topic {self.topic!r}"
                else:
                    self.status = "following"
                    pause = self._retry_s
                    await read_partitions(
                        self.connection,
                        partitions,
                        self._visit,
                        client_id=self._client_id,
                        follow=lambda: self._following,
                        max_records=self._max_records,
                    )
            except (TopicReadError, KafkaError, OSError, TimeoutError) as exc:
                self.status = f"cannot read topic {self.topic!r} ({exc}); retrying in {pause:g} s"
                log.warning("dashboard: %s", self.status)
                pause = min(pause * 2, MAX_RETRY_S)
            await asyncio.sleep(pause)

    def stop(self) -> None:
        """Let the read end at the next end of the topic (cancel the task to end it at once)."""
        self._following = False
