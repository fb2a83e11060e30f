"""Per-symbol ring buffers of closed bars (consumer.core.buffers)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core.buffers import (
    EMPTY_START,
    BarOrderError,
    RingBuffers,
)
from tests.strategies import examples


def ohlcv(starts: list[int]) -> np.ndarray:
    """float64[m, 5] rows derived from the bar starts, so every bar is recognisable."""
    base = np.asarray(starts, dtype=np.float64)[:, None]
    return base + np.arange(5) / 10


def expected_window(starts: list[int], capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """The chronological window a symbol with bars at ``starts`` must show."""
    kept = starts[-capacity:]
    pad = capacity - len(kept)
    bars = np.full((capacity, 5), np.nan)
    begins = np.full(capacity, EMPTY_START, dtype=np.int64)
    if kept:
        bars[pad:] = ohlcv(kept)
        begins[pad:] = kept
    return bars, begins


@st.composite
def bar_streams(draw: st.DrawFn) -> list[tuple[str, int]]:
    """Closed bars of a few symbols, each symbol's starts strictly increasing."""
    latest: dict[str, int] = {}
    rows = []
    for symbol in draw(st.lists(st.sampled_from("ABCDE"), max_size=60)):
        latest[symbol] = latest.get(symbol, 0) + draw(st.integers(1, 3))
        rows.append((symbol, latest[symbol]))
    return rows


@settings(max_examples=examples(150), deadline=None)
@given(
    rows=bar_streams(),
    capacity=st.integers(1, 6),
    cuts=st.lists(st.integers(0, 60), max_size=5),
)
def test_windows_hold_the_last_bars_in_order(
    rows: list[tuple[str, int]], capacity: int, cuts: list[int]
) -> None:
    buffers = RingBuffers(capacity=capacity, initial_slots=1)
    bounds = [0, *sorted(min(c, len(rows)) for c in cuts), len(rows)]
    for start, stop in pairwise(bounds):
        chunk = rows[start:stop]
        result = buffers.append(
            [s for s, _ in chunk],
            np.array([b for _, b in chunk], dtype=np.int64),
            ohlcv([b for _, b in chunk]),
        )
        assert result.stored.all() and result.refused == []
    symbols = sorted({s for s, _ in rows})
    bars, begins = buffers.windows(buffers.slots(symbols))
    assert bars.shape == (len(symbols), capacity, 5) and begins.shape == (len(symbols), capacity)
    for i, symbol in enumerate(symbols):
        starts = [b for s, b in rows if s == symbol]
        want_bars, want_begins = expected_window(starts, capacity)
        np.testing.assert_array_equal(bars[i], want_bars)
        np.testing.assert_array_equal(begins[i], want_begins)
        assert buffers.warm([symbol])[0] == (len(starts) >= capacity)
        assert buffers.counts([symbol])[0] == len(starts)


@settings(max_examples=examples(100), deadline=None)
@given(rows=bar_streams(), restore_capacity=st.integers(1, 6))
def test_restored_bars_show_the_newest_window(rows: list[tuple[str, int]], restore_capacity: int) -> None:
    restored = RingBuffers(capacity=restore_capacity)
    for symbol in sorted({s for s, _ in rows}):
        starts = [b for s, b in rows if s == symbol]
        slot = restored.restore_bars(symbol, np.array(starts, dtype=np.int64), ohlcv(starts))
        bars, begins = restored.windows(np.array([slot]))
        want_bars, want_begins = expected_window(starts, restore_capacity)
        np.testing.assert_array_equal(bars[0], want_bars)
        np.testing.assert_array_equal(begins[0], want_begins)
        assert restored.counts([symbol])[0] == len(starts)


def test_max_symbols_refuses_new_symbols() -> None:
    buffers = RingBuffers(capacity=3, max_symbols=2, initial_slots=1)
    result = buffers.append(["A", "B", "C", "A", "C"], np.array([1, 1, 1, 2, 2]), ohlcv([1, 1, 1, 2, 2]))
    assert result.slots.tolist() == [0, 1, -1, 0, -1]
    assert result.stored.tolist() == [True, True, False, True, False]
    assert result.refused == ["C"]
    assert len(buffers) == 2 and "C" not in buffers
    assert buffers.restore_bars("C", np.array([5]), ohlcv([5])) == -1


def test_replayed_bars_are_skipped_and_disorder_is_an_error() -> None:
    buffers = RingBuffers(capacity=3)
    buffers.append(["A", "A"], np.array([10, 20]), ohlcv([10, 20]))
    result = buffers.append(["A", "A", "A"], np.array([10, 20, 30]), ohlcv([10, 20, 30]))
    assert result.stored.tolist() == [False, False, True]
    assert buffers.counts(["A"]).tolist() == [3]
    with pytest.raises(BarOrderError, match="increasing"):
        buffers.append(["A", "A"], np.array([50, 40]), ohlcv([50, 40]))
    with pytest.raises(ValueError, match="shape"):
        buffers.append(["A"], np.array([60]), np.zeros((1, 4)))


def test_restore_replaces_an_existing_buffer() -> None:
    buffers = RingBuffers(capacity=3)
    buffers.append(["A", "A", "A", "B"], np.array([1, 2, 3, 7]), ohlcv([1, 2, 3, 7]))
    buffers.restore_bars("A", np.array([7]), ohlcv([7]))
    _, begins = buffers.windows(buffers.slots(["A"]))
    assert begins.tolist() == [[EMPTY_START, EMPTY_START, 7]]
    assert buffers.counts(["A"]).tolist() == [1]
    assert buffers.append(["A", "A"], np.array([7, 8]), ohlcv([7, 8])).stored.tolist() == [False, True]


def test_more_bars_than_capacity_in_one_append() -> None:
    buffers = RingBuffers(capacity=3)
    buffers.append(["A"] * 7, np.arange(1, 8), ohlcv(list(range(1, 8))))
    _, begins = buffers.windows(buffers.slots(["A"]))
    assert begins.tolist() == [[5, 6, 7]]
    assert buffers.warm(["A", "B"]).tolist() == [True, False]


def test_removed_symbols_free_clean_slots() -> None:
    buffers = RingBuffers(capacity=2, max_symbols=1)
    buffers.append(["A"], np.array([1]), ohlcv([1]))
    assert buffers.remove(["A", "unknown"]) == 1
    result = buffers.append(["B"], np.array([5]), ohlcv([5]))
    assert result.slots.tolist() == [0]
    bars, begins = buffers.windows(result.slots)
    assert begins.tolist() == [[EMPTY_START, 5]]
    assert np.isnan(bars[0, 0]).all()


def test_growth_keeps_existing_bars() -> None:
    buffers = RingBuffers(capacity=2, initial_slots=1)
    symbols = [f"S{i}" for i in range(50)]
    buffers.append(symbols, np.arange(50), ohlcv(list(range(50))))
    buffers.append(symbols, np.arange(50) + 100, ohlcv(list(range(100, 150))))
    _, begins = buffers.windows(buffers.slots(symbols))
    assert begins.tolist() == [[i, i + 100] for i in range(50)]


def test_errors_are_specific() -> None:
    buffers = RingBuffers(capacity=2)
    with pytest.raises(IndexError, match="slots"):
        buffers.windows(np.array([0]))
    with pytest.raises(ValueError, match="capacity"):
        RingBuffers(capacity=0)
