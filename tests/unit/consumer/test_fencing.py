"""Fencing: a paused worker is blocked until it rejoins; restore skips a stale writer's records."""

from __future__ import annotations

import numpy as np

from consumer.core.clock import ClockState
from consumer.core.state import CHECKPOINT_KEY, Checkpoint, StateReplay, bar_records
from consumer.kafka.fencing import GENERATION_HEADER, Fence, record_generation


class FakeCoordinator:
    """The two attributes and the one method of aiokafka's group coordinator the fence uses."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.member_id = "member-1"
        self.rejoins = 0

    def request_rejoin(self) -> None:
        self.rejoins += 1


class FakeConsumer:
    def __init__(self, coordinator: FakeCoordinator) -> None:
        self._coordinator = coordinator


def fence_at(generation: int) -> tuple[Fence, FakeCoordinator, list[float]]:
    now = [100.0]
    fence = Fence(6.0, clock=lambda: now[0])
    coordinator = FakeCoordinator(generation)
    fence.attach(FakeConsumer(coordinator))
    return fence, coordinator, now


def test_a_pause_longer_than_the_session_blocks_until_a_new_generation() -> None:
    fence, coordinator, now = fence_at(4)
    fence.restored(0, state_generation=-1)
    now[0] += 5.0
    assert not fence.blocked, "a pause shorter than the session keeps the partitions"
    fence.tick()
    now[0] += 6.5
    assert fence.refuses("outputs")
    assert coordinator.rejoins == 1
    fence.tick()
    assert fence.blocked, "still the old generation"
    coordinator.generation = 5
    assert not fence.blocked


def test_a_blocked_worker_claims_no_partition() -> None:
    fence, coordinator, now = fence_at(4)
    fence.restored(1, state_generation=-1)
    fence.restored(0, state_generation=-1)
    assert fence.claimed() == [0, 1]
    now[0] += 6.5
    assert fence.claimed() == [], "paused past the session: the partitions are someone else's"
    fence.tick()
    assert fence.claimed() == [], "still the old generation"
    coordinator.generation = 5
    assert fence.claimed() == [0, 1]
    fence.forget(1)
    assert fence.claimed() == [0]


def test_no_generation_while_holding_partitions_blocks() -> None:
    fence, coordinator, _ = fence_at(3)
    assert not fence.blocked
    fence.restored(1, state_generation=2)
    coordinator.generation = -1
    assert fence.blocked


def test_the_write_generation_is_above_the_states_even_after_a_group_restarts() -> None:
    fence, _, _ = fence_at(2)
    assert fence.restored(0, state_generation=40) == 41
    assert fence.restored(1, state_generation=-1) == 2
    assert record_generation(fence.headers(0)) == 41
    assert record_generation([(GENERATION_HEADER, b"x")]) == -1
    assert record_generation(None) == -1


def test_restore_never_takes_an_older_generations_later_checkpoint() -> None:
    bars = bar_records(["A"], np.array([5_000]), np.ones((1, 5)), 1_000, 200)
    stale_bars = bar_records(["A"], np.array([9_000]), np.full((1, 5), 2.0), 1_000, 200)
    new = Checkpoint(130, 120, ClockState(7, ()), generation=5)
    stale = Checkpoint(98, 90, ClockState(3, ()), generation=4)
    replay = StateReplay(1_000, 200)
    replay.apply(
        [bars[0][0], CHECKPOINT_KEY, stale_bars[0][0], CHECKPOINT_KEY],
        [bars[0][1], new.encode(), stale_bars[0][1], stale.encode()],
        [5, 5, 4, 4],
    )
    restored = replay.result()
    assert restored.checkpoint == new
    assert restored.generation == 5 and restored.stale == 2
    assert [s.tolist() for s in restored.bar_start] == [[5_000]]


def test_a_newer_generation_drops_an_older_writers_unfinished_bars() -> None:
    older = bar_records(["A"], np.array([9_000]), np.ones((1, 5)), 1_000, 200)
    replay = StateReplay(1_000, 200)
    replay.apply([older[0][0], CHECKPOINT_KEY], [older[0][1], Checkpoint(3, 3, None).encode()], [4, 5])
    assert replay.result().symbols == []
