"""State records one by one (consumer.core.state): checkpoints, bar records, their replay."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from consumer.core.clock import ClockState
from consumer.core.state import (
    BAR_DTYPE,
    BAR_KEY_PREFIX,
    CHECKPOINT_KEY,
    Checkpoint,
    CheckpointBook,
    StateError,
    StateReplay,
    bar_records,
)

INTERVAL = 1_000
T0 = 1_700_000_000_000


def bars(symbol: str, count: int, first: int = 0) -> list[tuple[bytes, bytes]]:
    """State records of ``count`` consecutive bars of ``symbol`` from bar ``first``."""
    starts = T0 + (first + np.arange(count, dtype=np.int64)) * INTERVAL
    ohlcv = np.arange(count * 5, dtype=np.float64).reshape(count, 5) + 1
    return bar_records([symbol] * count, starts, ohlcv, INTERVAL, slots=64)


def replay(records: list[tuple[bytes | None, bytes | None]], seq_len: int = 3) -> StateReplay:
    state = StateReplay(INTERVAL, seq_len)
    state.apply([k for k, _ in records], [v for _, v in records])
    return state


def test_a_checkpoint_round_trips_every_field() -> None:
    checkpoint = Checkpoint(
        end=10,
        commit=7,
        mark=ClockState(123, (120, 123)),
        last_commit=5,
        last_mark=ClockState(99, (99,)),
        generation=4,
        member="worker-1",
    )
    assert Checkpoint.decode(checkpoint.encode()) == checkpoint


def test_bad_checkpoints_name_the_problem() -> None:
    with pytest.raises(
        StateError,
        match=r"^checkpoint version 3: this code reads versions 1 and 2; "
        r"run the release that wrote it, or start a new --group-id to rebuild the state$",
    ):
        Checkpoint.decode(b'{"v": 3, "end": 1}')
    with pytest.raises(StateError, match=r"^corrupt checkpoint record: .*last_mark"):
        Checkpoint.decode(b'{"v": 2, "end": 1, "commit": 1, "mark": null, "last_commit": null}')


def test_the_records_read_are_counted_across_calls_even_without_bars() -> None:
    state = replay([(b"other", b"x"), (None, b"y")])
    state.apply([CHECKPOINT_KEY], [Checkpoint(3, 2, None).encode()])
    restored = state.result()
    assert restored.records == 3
    assert (restored.symbols, restored.bar_start, restored.ohlcv) == ([], [], [])
    assert restored.checkpoint == Checkpoint(3, 2, None)


def test_keys_and_values_must_be_aligned() -> None:
    with pytest.raises(ValueError, match="zip"):
        StateReplay(INTERVAL, 3).apply([b"a", b"b"], [b"x"])


def test_tombstones_and_keyless_records_are_ignored() -> None:
    records: list[tuple[bytes | None, bytes | None]] = [
        (None, None),
        (bars("A", 1)[0][0], None),
        *bars("B", 2),
        (CHECKPOINT_KEY, Checkpoint(4, 4, None).encode()),
    ]
    restored = replay(records).result()
    assert restored.symbols == ["B"]
    assert restored.records == 5


def test_the_newest_seq_len_bars_are_restored_with_their_types() -> None:
    records = [*bars("A", 5), (CHECKPOINT_KEY, Checkpoint(5, 5, None).encode())]
    restored = replay(records, seq_len=3).result()
    assert restored.bar_start[0].tolist() == [T0 + 2 * INTERVAL, T0 + 3 * INTERVAL, T0 + 4 * INTERVAL]
    assert restored.bar_start[0].dtype == np.int64
    assert restored.ohlcv[0][:, 0].tolist() == [11.0, 16.0, 21.0]


def test_bars_after_the_last_checkpoint_are_not_restored() -> None:
    records = [*bars("A", 2), (CHECKPOINT_KEY, Checkpoint(2, 2, None).encode()), *bars("A", 1, first=2)]
    assert replay(records).result().bar_start[0].tolist() == [T0, T0 + INTERVAL]


def test_corrupt_bar_records_name_the_problem() -> None:
    (key, value), checkpoint = bars("A", 1)[0], (CHECKPOINT_KEY, Checkpoint(1, 1, None).encode())
    with pytest.raises(StateError, match=r"^corrupt bar record in the state topic: unexpected value size$"):
        replay([(key, value[:-1]), checkpoint]).result()
    other = np.frombuffer(value, dtype=BAR_DTYPE).copy()
    other["version"] = 2
    with pytest.raises(StateError, match=r"^bar records of another version than 1$"):
        replay([(key, other.tobytes()), checkpoint]).result()
    assert key.startswith(BAR_KEY_PREFIX + b"A|")


def test_a_forgotten_partition_starts_its_checkpoints_afresh() -> None:
    book = CheckpointBook()
    book.committed(0, 10, ClockState(5, (5,)))
    book.forget(0)
    book.forget(7)
    mark, older = ClockState(9, (9,)), ClockState(6, (6,))
    book.committed(1, 20, older)
    assert book.checkpoint(0, 12, 11, mark) == Checkpoint(12, 11, mark, None, None)
    assert book.checkpoint(1, 22, 21, mark) == Checkpoint(22, 21, mark, 20, older)


@pytest.mark.parametrize(("count", "seq_len"), [(1, 3), (3, 3), (4, 3), (5, 3), (7, 3), (350, 200)])
def test_bars_slotted_by_sequence_restore_the_number_of_the_next_bar(count: int, seq_len: int) -> None:
    """The next bar's sequence must land on the slot of the oldest bar kept (its number mod
    seq_len) and say whether the window is full; three-digit slots included."""
    starts = T0 + np.arange(count, dtype=np.int64) * INTERVAL
    ohlcv = np.ones((count, 5))
    records = bar_records(["A"] * count, starts, ohlcv, INTERVAL, seq_len, np.arange(count))
    state = StateReplay(INTERVAL, seq_len, by_sequence=True)
    state.apply(
        [k for k, _ in records] + [CHECKPOINT_KEY],
        [v for _, v in records] + [Checkpoint(1, 1, None).encode()],
    )
    restored = state.result()
    (sequence,) = restored.sequences
    assert sequence % seq_len == count % seq_len
    assert (sequence >= seq_len) == (count >= seq_len)
    assert restored.bar_start[0].tolist() == starts[-seq_len:].tolist()


def test_the_highest_generation_and_the_stale_records_are_reported_with_or_without_bars() -> None:
    """Fencing reads both from every restore: -1 and 0 when no record carries a generation."""
    empty = StateReplay(INTERVAL, 3).result()
    assert (empty.generation, empty.stale) == (-1, 0)
    unfenced = replay([*bars("A", 1), (CHECKPOINT_KEY, Checkpoint(1, 1, None).encode())]).result()
    assert (unfenced.symbols, unfenced.generation, unfenced.stale) == (["A"], -1, 0)
    checkpoints = StateReplay(INTERVAL, 3)
    checkpoints.apply([CHECKPOINT_KEY] * 3, [Checkpoint(i, i, None).encode() for i in (1, 2, 3)], [3, 5, 4])
    only = checkpoints.result()
    assert (only.symbols, only.generation, only.stale) == ([], 5, 1)
    fenced = StateReplay(INTERVAL, 3)
    records = [
        *bars("A", 1),
        (CHECKPOINT_KEY, Checkpoint(1, 1, None).encode()),
        *bars("B", 1),
        (CHECKPOINT_KEY, Checkpoint(2, 2, None).encode()),
        *bars("C", 1),
        (CHECKPOINT_KEY, Checkpoint(3, 3, None).encode()),
    ]
    fenced.apply([k for k, _ in records], [v for _, v in records], [2, 2, 1, 1, 2, 2])
    both = fenced.result()
    assert (both.symbols, both.generation, both.stale) == (["A", "C"], 2, 2)
    assert both.checkpoint == Checkpoint(3, 3, None)


def test_bar_records_refuse_columns_of_other_lengths() -> None:
    """One bar start for two symbols would broadcast into two records' values: refused, not cut short."""
    with pytest.raises(ValueError, match="zip"):
        bar_records(["A", "B"], np.array([T0]), np.ones((1, 5)), INTERVAL, 3)


def test_a_tombstone_removes_its_slots_bar() -> None:
    (key, value), *_ = bars("A", 1)
    records: list[tuple[bytes | None, bytes | None]] = [
        (key, value),
        (CHECKPOINT_KEY, Checkpoint(1, 1, None).encode()),
        (key, None),
        (CHECKPOINT_KEY, Checkpoint(2, 2, None).encode()),
    ]
    assert replay(records).result().symbols == []


def test_a_version_1_checkpoint_migrates_its_last_mark_too() -> None:
    old = orjson.dumps({"v": 1, "end": 9, "commit": 7, "mark": 5_000, "last_commit": 3, "last_mark": 4_000})
    checkpoint = Checkpoint.decode(old)
    assert (checkpoint.mark, checkpoint.last_mark) == (ClockState(5_000, ()), ClockState(4_000, ()))


def test_the_book_writes_the_fencing_generation_and_member_into_the_checkpoint() -> None:
    mark = ClockState(9, (9,))
    checkpoint = CheckpointBook().checkpoint(0, 12, 11, mark, generation=3, member="worker-1")
    assert checkpoint == Checkpoint(12, 11, mark, None, None, None, 3, "worker-1")
