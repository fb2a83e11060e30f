"""The worker's idle-close decisions with a hand-driven clock: when a partition counts as quiet,
what is written, how restored decisions cut batches and replay, and how long a fetch waits."""

from __future__ import annotations

import orjson
from aiokafka import ConsumerRecord, TopicPartition

from consumer.core.idle import IDLE_KEY, IdleDecision, IdleLog
from consumer.core.pipeline import BarPipeline
from consumer.kafka.fencing import Fence
from consumer.kafka.idle_close import IdleCloser

TP = TopicPartition("ticks", 0)
T0 = 1_700_000_000_000


class Clocks:
    """A wall clock (ms) and a monotonic clock (s) that move only when told."""

    def __init__(self) -> None:
        self.wall = T0 + 60_000
        self.mono = 100.0


def closer(clocks: Clocks) -> tuple[IdleCloser, BarPipeline]:
    pipeline = BarPipeline(1_000, 0, seq_len=4)
    idle = IdleCloser(
        pipeline, 5_000, "state", Fence(10.0), wall_ms=lambda: clocks.wall, monotonic=lambda: clocks.mono
    )
    return idle, pipeline


def feed(pipeline: BarPipeline, n: int) -> None:
    """``n`` ticks of one symbol, one per second from ``T0``: the last bar stays open."""
    values = [orjson.dumps({"symbol": "A", "ts": T0 + 1_000 * i, "price": 1.0 + i}) for i in range(n)]
    pipeline.process(0, values, [b"A"] * n, list(range(n)))


def records(offsets: range) -> list[ConsumerRecord]:
    return [ConsumerRecord("ticks", 0, o, 0, 0, b"A", b"{}", None, 2, 2, []) for o in offsets]


def test_a_partition_closes_once_quiet_long_enough_and_read_to_its_end() -> None:
    clocks = Clocks()
    idle, pipeline = closer(clocks)
    idle.restored(TP, IdleLog(), None)
    feed(pipeline, 12)
    idle.before_replay(TP, records(range(12)))
    clocks.mono += 4.9
    assert idle.due({TP: 12}, lambda _: 12, lambda _: None) == [], "not quiet long enough"
    clocks.mono += 0.2
    assert idle.due({TP: 12}, lambda _: 13, lambda _: None) == [], "records are waiting to be read"
    (close,) = idle.due({TP: 12}, lambda _: 12, lambda _: 8)
    assert close.end == 12
    assert close.outcome.commit == 12, "nothing stays open"
    assert close.outcome.windows.bar_end_ts.tolist() == [T0 + 12_000]
    assert close.record is not None and close.record.key == IDLE_KEY
    assert IdleLog.decode(close.record.value or b"") == IdleLog(None, (IdleDecision(12, clocks.wall),))
    assert idle.due({TP: 12}, lambda _: 12, lambda _: 12) == [], "nothing left to close"


def test_restored_decisions_cut_the_batch_and_replay_at_their_offset_without_a_new_record() -> None:
    clocks = Clocks()
    idle, pipeline = closer(clocks)
    idle.restored(TP, IdleLog(T0, (IdleDecision(3, T0 + 1), IdleDecision(12, T0 + 99_000))), committed=5)
    kept = idle.before_replay(TP, records(range(5, 20)))
    assert [r.offset for r in kept] == list(range(5, 12))
    feed(pipeline, 12)
    assert idle.due({TP: 11}, lambda _: 20, lambda _: None) == []
    (close,) = idle.due({TP: 12}, lambda _: 20, lambda _: None)
    assert close.record is None, "the decision is on the state topic already"
    assert close.outcome.windows.bar_end_ts.tolist() == [T0 + 12_000]
    assert [r.offset for r in idle.before_replay(TP, records(range(12, 20)))] == list(range(12, 20))


def test_a_fetch_waits_until_the_next_partition_becomes_quiet_at_most() -> None:
    clocks = Clocks()
    idle, _ = closer(clocks)
    assert idle.poll_timeout_ms(500) == 500
    idle.restored(TP, IdleLog(), None)
    clocks.mono += 4.8
    assert 200 <= idle.poll_timeout_ms(500) <= 201
    clocks.mono += 1.0
    assert idle.poll_timeout_ms(500) == 500, "a partition already quiet does not shorten fetches"
    off = IdleCloser(BarPipeline(1_000, 0), 0, "state", Fence(10.0))
    off.restored(TP, IdleLog(), None)
    assert off.poll_timeout_ms(500) == 500
