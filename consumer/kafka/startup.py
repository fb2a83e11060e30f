"""Starting a Kafka client against brokers that may not be up yet: retry with backoff, quietly.

aiokafka logs every failed connection attempt at ERROR; while we retry, one line of ours per
attempt says what failed and when the next try is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

from aiokafka.errors import KafkaConnectionError

log = logging.getLogger("bullflag.worker")

STARTUP_BACKOFF_INITIAL_S = 0.5
STARTUP_BACKOFF_MAX_S = 30.0


async def start_with_retries(start: Callable[[], Awaitable[None]], what: str, stop: asyncio.Event) -> bool:
    """Call ``start`` until it connects (exponential backoff, one log line per failed attempt).

    Returns False when ``stop`` was set before a connection succeeded.
    """
    delay = STARTUP_BACKOFF_INITIAL_S
    attempt = 1
    while not stop.is_set():
        try:
            with _quiet("aiokafka"):
                await start()
            return True
        except KafkaConnectionError as exc:
            log.warning(
                "%s cannot reach the brokers (attempt %d, retrying in %.1fs): %s", what, attempt, delay, exc
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, STARTUP_BACKOFF_MAX_S)
        attempt += 1
    return False


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a library logger below CRITICAL for a moment (our own line says what failed)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
