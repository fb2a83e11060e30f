"""The pure decisions of symbol expiry (consumer.core.expiry) against record-by-record loops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core.bar_columns import NO_BAR
from consumer.core.buffers import EMPTY_START
from consumer.core.expiry import Expired, SymbolTtlError, check_ttl, held_slots, idle, returning
from tests.strategies import examples

TTL = 50
LATENESS = 5
INTERVAL = 10


@st.composite
def batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(code, stored_end, bar_end, after) of a batch: a few symbols, a clock that only rises
    (or has not started), each symbol's stored activity the same on all its records."""
    n = draw(st.integers(1, 40))
    code = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=np.int64)
    stored = [draw(st.one_of(st.just(NO_BAR), st.integers(0, 200))) for _ in range(5)]
    steps = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    after = np.cumsum(steps).astype(np.int64) + draw(st.integers(0, 100))
    started = draw(st.integers(0, n))
    after[:started] = NO_BAR
    lag = np.array(draw(st.lists(st.integers(-20, 60), min_size=n, max_size=n)), dtype=np.int64)
    clock = np.where(after == NO_BAR, 100, after)
    bar_end = (clock - lag) // INTERVAL * INTERVAL + INTERVAL
    return code, np.array(stored, dtype=np.int64)[code], bar_end, after


def reference(code: np.ndarray, stored_end: np.ndarray, bar_end: np.ndarray, after: np.ndarray) -> tuple:
    """The rule one record at a time: activity so far per symbol, from the batch and before."""
    seen: dict[int, int] = {}
    returns, active_before = [], []
    for c, stored, end, clock in zip(
        code.tolist(), stored_end.tolist(), bar_end.tolist(), after.tolist(), strict=True
    ):
        previous = max(stored, seen.get(c, NO_BAR))
        returns.append(previous != NO_BAR and clock != NO_BAR and clock - previous > TTL)
        active_before.append(c in seen)
        if end > clock - LATENESS:
            seen[c] = max(seen.get(c, NO_BAR), end)
    return returns, active_before


@settings(max_examples=examples(400), deadline=None)
@given(batches())
def test_returning_is_the_record_by_record_rule(batch: tuple[np.ndarray, ...]) -> None:
    code, stored_end, bar_end, after = batch
    returns, active_before = returning(code, stored_end, bar_end, after, LATENESS, TTL)
    want_returns, want_active = reference(code, stored_end, bar_end, after)
    assert returns.tolist() == want_returns
    assert active_before.tolist() == want_active


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(st.tuples(st.one_of(st.just(NO_BAR), st.integers(0, 500)), st.booleans()), max_size=30),
    st.integers(0, 600),
)
def test_idle_symbols_have_no_open_bar_and_ended_a_ttl_ago(rows: list[tuple[int, bool]], clock: int) -> None:
    latest = np.array([r[0] for r in rows], dtype=np.int64)
    is_open = np.array([r[1] for r in rows], dtype=bool)
    want = [start != NO_BAR and not o and clock - (start + INTERVAL) > TTL for start, o in rows]
    assert idle(latest, is_open, clock, INTERVAL, TTL).tolist() == want


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=6), st.integers(1, 6), st.booleans())
def test_held_slots_are_the_state_keys_of_the_bars_held(
    held: list[int], width: int, by_sequence: bool
) -> None:
    """Each symbol holds its newest bars (contiguous, newest last) after ``count`` appends."""
    starts = np.full((len(held), width), EMPTY_START, dtype=np.int64)
    counts = np.array(held, dtype=np.int64) + 3
    want = []
    for i, n in enumerate(held):
        kept = min(n, width)
        bars = list(range(counts[i] - kept, counts[i]))
        starts[i, width - kept :] = [b * INTERVAL for b in bars]
        want += [(i, b % 7) for b in bars]  # starts are bar numbers times the interval
    row, slot = held_slots(starts, counts, INTERVAL, 7, by_sequence)
    assert list(zip(row.tolist(), slot.tolist(), strict=True)) == want


def test_a_ttl_shorter_than_a_bar_and_its_lateness_is_refused() -> None:
    assert check_ttl(0, 60_000, 5_000) == 0
    assert check_ttl(65_000, 60_000, 5_000) == 65_000
    with pytest.raises(SymbolTtlError, match="65000 ms"):
        check_ttl(64_999, 60_000, 5_000)


def test_expired_sets_add_up_in_order() -> None:
    both = Expired(["A"], ["A"], np.array([3])) + Expired(["B"], ["B", "B"], np.array([1, 2]))
    assert both.symbols == ["A", "B"] and both.key_symbols == ["A", "B", "B"]
    assert both.key_slots.tolist() == [3, 1, 2]
