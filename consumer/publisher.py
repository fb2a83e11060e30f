"""Sending records and waiting for their acknowledgements, retrying what the broker refused.

The worker commits input offsets only after every record derived from them is acknowledged,
so a send that fails (broker unreachable, leader moving) is sent again until it succeeds or
the worker is asked to stop; nothing acknowledged is ever lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

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
    """Sends batches of ``Outgoing`` records with one producer and waits for all acks."""

    def __init__(self, producer: AIOKafkaProducer, on_error: Callable[[str], None]) -> None:
        self.producer = producer
        self.on_error = on_error

    async def publish(self, records: Sequence[Outgoing], stopping: Callable[[], bool]) -> None:
        """Send ``records`` (order kept per partition on first try); return once all are acked.

        Failed records are sent again with exponential backoff; raises
        ``PublishAbortedError`` if ``stopping()`` turns true while some are still unacknowledged.
        """
        pending = list(records)
        delay = RETRY_BACKOFF_S
        while pending:
            futures = [await self._send(record) for record in pending]
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = [
                r for r, result in zip(pending, results, strict=True) if isinstance(result, BaseException)
            ]
            if not failed:
                return
            errors = [result for result in results if isinstance(result, BaseException)]
            self.on_error("produce")
            log.warning(
                "%d of %d records not acknowledged (%s); retrying", len(failed), len(pending), errors[0]
            )
            if stopping():
                raise PublishAbortedError(f"{len(failed)} records unacknowledged at shutdown")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_BACKOFF_MAX_S)
            pending = failed

    async def _send(self, record: Outgoing) -> asyncio.Future[Any]:
        """Queue one record; a failure to even queue it becomes a failed future."""
        try:
            return await self.producer.send(
                record.topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                partition=record.partition,
            )
        except KafkaError as exc:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed
