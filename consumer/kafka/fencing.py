"""Fencing without transactions: a worker that may have lost its partitions writes nothing.

Two guards, both needed because the embedded broker (and so the tests) has no transactions:

- **A paused worker stops writing.** The event loop ticks a timestamp; when the gap since the
  last tick exceeds the session timeout (SIGSTOP, a frozen VM, a stalled loop), the group has
  very likely given the partitions to someone else. From then on :attr:`Fence.blocked` is true
  and the worker sends no output, dead letter, state record or commit, until the consumer has
  rejoined the group (a new generation; a rejoin is requested at once). The same holds while
  the consumer knows no generation (its heartbeats were refused).
- **Restore ignores a stale writer.** Every state record carries a *fencing generation* in its
  ``bullflag.generation`` header: the group generation the writer joined with, or one more
  than the highest generation in the partition's state when it restored, whichever is larger
  (a group that was deleted and re-created starts its generations again). The new owner's
  generation is therefore above its predecessor's, and restore skips any record of a lower
  generation than one it has already seen (:class:`consumer.core.state.StateReplay`).

What remains is the moment between a check and the send it allows: records already handed to
the producer when the process froze are delivered when it resumes. Transactions on Apache Kafka
(outputs, state and offsets committed atomically, the producer fenced by its epoch) would close
that gap; they stay out while no broker the tests can start supports them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final

log = logging.getLogger("bullflag.worker")

GENERATION_HEADER: Final = "bullflag.generation"
"""Header of every state record: the writer's fencing generation (ASCII digits)."""

TICK_S: Final = 0.1
"""How often the event loop proves it is running."""

NO_GENERATION: Final = -1
"""aiokafka's generation before a join and after its membership was reset."""


def record_generation(headers: Any) -> int:
    """The fencing generation in a state record's headers; -1 for records written without one."""
    for name, value in headers or ():
        if name == GENERATION_HEADER:
            try:
                return int(value)
            except (TypeError, ValueError):
                return NO_GENERATION
    return NO_GENERATION


class Fence:
    """Whether this worker may write as the owner of its partitions, and with which generation."""

    def __init__(self, session_timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.session_timeout_s = session_timeout_s
        self._clock = clock
        self._last_tick = clock()
        self._coordinator: Any = None
        self._paused_in: int | None = None
        self._generations: dict[int, int] = {}

    def attach(self, consumer: Any) -> None:
        """Follow the group membership of ``consumer`` (an ``AIOKafkaConsumer``, after start)."""
        self._coordinator = getattr(consumer, "_coordinator", None)
        self._last_tick = self._clock()

    @property
    def group_generation(self) -> int:
        """The consumer's current group generation (-1 when it knows none)."""
        return int(getattr(self._coordinator, "generation", NO_GENERATION))

    @property
    def member(self) -> str:
        """The consumer's member id ('' when it knows none)."""
        return str(getattr(self._coordinator, "member_id", "") or "")

    @property
    def blocked(self) -> bool:
        """True while this worker must not publish, write state or commit."""
        self._check_pause()
        if self._coordinator is None:
            return False
        if self._paused_in is not None:
            if self.group_generation == self._paused_in or self.group_generation == NO_GENERATION:
                return True
            log.warning("rejoined the group as generation %d: writing again", self.group_generation)
            self._paused_in = None
        return self.group_generation == NO_GENERATION and bool(self._generations)

    def refuses(self, what: str) -> bool:
        """Whether to hold back ``what`` (logged): the batch is dropped, its records read again by
        whoever owns the partitions after the rejoin."""
        if not self.blocked:
            return False
        log.warning("fenced (missed the group session): not sending %s", what)
        return True

    def tick(self) -> None:
        """Record that the event loop runs (called every :data:`TICK_S`)."""
        self._check_pause()
        self._last_tick = self._clock()

    async def keep_ticking(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set."""
        while not stop.is_set():
            self.tick()
            await asyncio.sleep(TICK_S)

    def claimed(self) -> list[int]:
        """The partitions this worker may claim to own (for the assignment gauge): none while
        blocked, since another member very likely owns them."""
        return [] if self.blocked else sorted(self._generations)

    def restored(self, partition: int, state_generation: int) -> int:
        """Take ``partition`` over from a state whose highest generation is ``state_generation``;
        returns the generation this worker now writes it with."""
        generation = max(self.group_generation, state_generation + 1)
        self._generations[partition] = generation
        return generation

    def forget(self, partition: int) -> None:
        """Drop a revoked partition."""
        self._generations.pop(partition, None)

    def generation(self, partition: int) -> int:
        """The fencing generation of this worker's writes to ``partition``'s state."""
        return self._generations.get(partition, max(self.group_generation, 0))

    def headers(self, partition: int) -> list[tuple[str, bytes]]:
        """Headers for a state record of ``partition``."""
        return [(GENERATION_HEADER, str(self.generation(partition)).encode())]

    def _check_pause(self) -> None:
        """Notice a gap in the ticks longer than the session timeout while owning partitions;
        fence and ask to rejoin."""
        gap = self._clock() - self._last_tick
        if gap <= self.session_timeout_s or self._paused_in is not None or not self._generations:
            return
        if self._coordinator is None:
            return
        self._paused_in = self.group_generation
        log.error(
            "the worker did not run for %.1f s, longer than the session timeout (%.1f s): its partitions "
            "may have moved; writing nothing until it has rejoined the group",
            gap,
            self.session_timeout_s,
        )
        self._coordinator.request_rejoin()
