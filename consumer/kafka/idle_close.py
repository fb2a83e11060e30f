"""The worker's idle closes: closes a quiet partition's bars, and replays them after a restart.

A partition is quiet when no record of it has been fetched for ``--idle-close-after`` (wall
clock, measured from the last fetch that returned any) and the consumer has read it to its
high watermark. Then, if raising its event time to the wall clock closes an open bar, the
worker does so (:meth:`consumer.core.pipeline.BarPipeline.close_idle`) and writes the
decision to the state topic before the outputs (:mod:`consumer.core.idle`). After a restore,
the decisions ahead of the committed offset are replayed at their offsets: a fetched batch is
cut at the next one, and the decision is applied once the partition is read up to it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiokafka import ConsumerRecord, TopicPartition

from consumer.core.idle import IDLE_KEY, IdleDecision, IdleLog
from consumer.core.pipeline import BarPipeline, PartitionOutcome
from consumer.core.windows import Windows
from consumer.kafka.batch import Ingested
from consumer.kafka.fencing import Fence
from consumer.kafka.publisher import Outgoing

log = logging.getLogger("bullflag.idle")


@dataclass(frozen=True)
class IdleClose:
    """One partition's idle close: its outcome, and the idle-log record to write before the
    outputs (None when the close replays a decision already on the state topic)."""

    tp: TopicPartition
    end: int
    outcome: PartitionOutcome
    record: Outgoing | None


class IdleCloser:
    """Decides idle closes for the assigned partitions and replays restored ones."""

    def __init__(
        self,
        pipeline: BarPipeline,
        idle_after_ms: int,
        state_topic: str,
        fence: Fence,
        *,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pipeline = pipeline
        self.idle_after_s = idle_after_ms / 1000
        self.state_topic = state_topic
        self.fence = fence
        self.wall_ms = wall_ms
        self.monotonic = monotonic
        self._heard: dict[TopicPartition, float] = {}
        self._logs: dict[TopicPartition, IdleLog] = {}
        self._replay: dict[TopicPartition, deque[IdleDecision]] = {}

    def restored(self, tp: TopicPartition, idle_log: IdleLog, committed: int | None) -> None:
        """A partition restored to ``committed``: its decisions ahead of it are to be replayed."""
        split = idle_log.split(committed)
        self._logs[tp] = split
        self._replay[tp] = deque(split.pending)
        self._heard[tp] = self.monotonic()

    def forget(self, tp: TopicPartition) -> None:
        """Drop a revoked partition."""
        self._heard.pop(tp, None)
        self._logs.pop(tp, None)
        self._replay.pop(tp, None)

    def poll_timeout_ms(self, default_ms: int) -> int:
        """How long the next fetch may wait: ``default_ms``, or less so that it returns when the
        next partition becomes quiet (so its idle close waits no extra poll)."""
        if self.idle_after_s <= 0 or not self._heard:
            return default_ms
        now = self.monotonic()
        ahead = [heard + self.idle_after_s - now for heard in self._heard.values()]
        soonest = min((s for s in ahead if s > 0), default=None)
        return default_ms if soonest is None else max(1, min(default_ms, int(soonest * 1000) + 1))

    def before_replay(self, tp: TopicPartition, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        """The fetched records of ``tp`` to process now: those before the next decision to
        replay (the rest are fetched again once it is applied). Marks the partition heard."""
        self._heard[tp] = self.monotonic()
        replay = self._replay.get(tp)
        if not replay or records[-1].offset < replay[0].at:
            return records
        return [r for r in records if r.offset < replay[0].at]

    def due(
        self,
        expected: Mapping[TopicPartition, int | None],
        highwater: Callable[[TopicPartition], int | None],
        last_commit: Callable[[int], int | None],
    ) -> list[IdleClose]:
        """The idle closes to make now: replayed decisions whose offset the partition has reached,
        then new ones for quiet partitions (when ``--idle-close-after`` is on)."""
        closes = []
        now = self.monotonic()
        for tp, at in expected.items():
            if at is None or tp not in self._logs:
                continue
            replay = self._replay[tp]
            if replay:
                if replay[0].at == at:
                    decision = replay.popleft()
                    log.info(
                        "replaying the idle close of partition %d at offset %d (event time %d)",
                        tp.partition,
                        at,
                        decision.event_time_ms,
                    )
                    outcome = self.pipeline.close_idle(tp.partition, decision.event_time_ms, at)
                    closes.append(IdleClose(tp, at, outcome, None))
                continue
            if self.idle_after_s <= 0 or now - self._heard[tp] < self.idle_after_s:
                continue
            read_to = highwater(tp)
            event_time_ms = self.wall_ms()
            if (
                read_to is None
                or read_to > at
                or not self.pipeline.idle_close_due(tp.partition, event_time_ms)
            ):
                continue
            idle_log = self._logs[tp].with_decision(
                IdleDecision(at, event_time_ms), last_commit(tp.partition)
            )
            self._logs[tp] = idle_log
            record = Outgoing(
                self.state_topic, IDLE_KEY, idle_log.encode(), self.fence.headers(tp.partition), tp.partition
            )
            closes.append(
                IdleClose(tp, at, self.pipeline.close_idle(tp.partition, event_time_ms, at), record)
            )
        return closes


def idle_batch(closes: list[IdleClose], seq_len: int) -> Ingested:
    """The idle closes of one poll as one batch: their decisions go out before their outputs."""
    now = time.perf_counter()
    return Ingested(
        now,
        now,
        {close.tp: close.outcome for close in closes},
        {close.tp: close.end for close in closes},
        [],
        Windows.concat([close.outcome.windows for close in closes], seq_len),
        [close.record for close in closes if close.record is not None],
    )
