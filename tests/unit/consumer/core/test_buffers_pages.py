"""Paged ring buffers against a dict of lists: appends, removals and restores across page
boundaries, slot and page reuse, and the pool's compaction (consumer.core.buffers)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core.buffers import EMPTY_START, RingBuffers
from tests.strategies import examples

SYMBOLS = "ABCDEFG"


def ohlcv(starts: list[int]) -> np.ndarray:
    """float64[m, 5] rows derived from the bar starts, so every bar is recognisable."""
    return np.asarray(starts, dtype=np.float64)[:, None] + np.arange(5) / 10


class Reference:
    """What the buffers must show: every symbol's bars ever stored, its count, the symbol cap."""

    def __init__(self, max_symbols: int) -> None:
        self.max_symbols = max_symbols
        self.bars: dict[str, list[int]] = {}
        self.count: dict[str, int] = {}

    def append(self, rows: list[tuple[str, int]]) -> tuple[list[bool], list[str]]:
        """(stored per row, refused symbols) of one append."""
        refused: list[str] = []
        for symbol in dict.fromkeys(s for s, _ in rows):
            if symbol not in self.bars:
                if len(self.bars) < self.max_symbols:
                    self.bars[symbol], self.count[symbol] = [], 0
                else:
                    refused.append(symbol)
        stored = []
        for symbol, start in rows:
            fresh = symbol in self.bars and (not self.bars[symbol] or start > self.bars[symbol][-1])
            if fresh:
                self.bars[symbol].append(start)
                self.count[symbol] += 1
            stored.append(fresh)
        return stored, refused

    def remove(self, symbols: list[str]) -> int:
        gone = [s for s in dict.fromkeys(symbols) if s in self.bars]
        for symbol in gone:
            del self.bars[symbol], self.count[symbol]
        return len(gone)

    def restore(self, symbol: str, starts: list[int], count: int, capacity: int) -> bool:
        if symbol not in self.bars and len(self.bars) >= self.max_symbols:
            return False
        self.bars[symbol], self.count[symbol] = starts[-capacity:], max(count, len(starts))
        return True


Op = tuple[str, object]


@st.composite
def operations(draw: st.DrawFn) -> list[Op]:
    """Appends of increasing bars (several per symbol), removals and restores, in any order."""
    clock = {s: 0 for s in SYMBOLS}
    ops: list[Op] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["append", "append", "append", "remove", "restore"]))
        if kind == "append":
            rows = []
            for symbol in draw(st.lists(st.sampled_from(SYMBOLS), max_size=40)):
                clock[symbol] += draw(st.integers(-1, 3))
                if not rows or clock[symbol] > max((b for s, b in rows if s == symbol), default=-99):
                    rows.append((symbol, clock[symbol]))
            ops.append(("append", rows))
        elif kind == "remove":
            ops.append(("remove", draw(st.lists(st.sampled_from(SYMBOLS), max_size=4))))
        else:
            symbol = draw(st.sampled_from(SYMBOLS))
            n = draw(st.integers(0, 30))
            starts = sorted(draw(st.sets(st.integers(-50, 50), min_size=n, max_size=n)))
            ops.append(("restore", (symbol, starts, draw(st.integers(0, 60)))))
    return ops


def check(buffers: RingBuffers, reference: Reference, capacity: int) -> None:
    """Every symbol's window, count and latest bar equal the reference's."""
    symbols = sorted(reference.bars)
    assert sorted(s for s in SYMBOLS if s in buffers) == symbols and len(buffers) == len(symbols)
    slots = buffers.slots(symbols)
    bars, begins = buffers.windows(slots)
    for i, symbol in enumerate(symbols):
        kept = reference.bars[symbol][-capacity:]
        want_begins = np.full(capacity, EMPTY_START, dtype=np.int64)
        want_bars = np.full((capacity, 5), np.nan)
        if kept:
            want_begins[capacity - len(kept) :] = kept
            want_bars[capacity - len(kept) :] = ohlcv(kept)
        np.testing.assert_array_equal(begins[i], want_begins)
        np.testing.assert_array_equal(bars[i], want_bars)
        assert buffers.counts([symbol])[0] == reference.count[symbol]
        assert buffers.latest(slots[i : i + 1])[0] == (kept[-1] if kept else EMPTY_START)
    held = sum(-(-min(len(starts), capacity) // buffers.page_bars) for starts in reference.bars.values())
    assert buffers.pages <= held + len(symbols)


@settings(max_examples=examples(200), deadline=None)
@given(
    ops=operations(),
    capacity=st.integers(1, 12),
    page_bars=st.integers(1, 5),
    max_symbols=st.integers(1, len(SYMBOLS)),
)
def test_paged_buffers_match_a_dict_of_lists(
    ops: list[Op], capacity: int, page_bars: int, max_symbols: int
) -> None:
    buffers = RingBuffers(capacity, max_symbols, initial_slots=1, page_bars=page_bars)
    reference = Reference(max_symbols)
    for kind, arg in ops:
        if kind == "append":
            rows = arg
            assert isinstance(rows, list)
            stored, refused = reference.append(rows)
            result = buffers.append(
                [s for s, _ in rows],
                np.array([b for _, b in rows], dtype=np.int64),
                ohlcv([b for _, b in rows]),
            )
            assert result.stored.tolist() == stored and result.refused == refused
        elif kind == "remove":
            assert isinstance(arg, list)
            assert buffers.remove(arg) == reference.remove(arg)
        else:
            symbol, starts, count = arg  # type: ignore[misc]
            accepted = reference.restore(symbol, starts, count, capacity)
            slot = buffers.restore_bars(symbol, np.array(starts, dtype=np.int64), ohlcv(starts), count)
            assert (slot >= 0) == accepted
        check(buffers, reference, capacity)


def test_a_cold_symbol_holds_one_page_and_removal_gives_pages_back() -> None:
    buffers = RingBuffers(capacity=200, max_symbols=4096, page_bars=25)
    names = [f"S{i}" for i in range(3000)]
    buffers.append(names, np.zeros(3000, dtype=np.int64), ohlcv([0] * 3000))
    assert buffers.pages == 3000
    many = [n for n in names[:10] for _ in range(200)]
    buffers.append(many, np.tile(np.arange(1, 201), 10), ohlcv(list(np.tile(np.arange(1, 201), 10))))
    assert buffers.pages == 2990 + 10 * 8
    assert buffers.remove(names) == 3000 and buffers.pages == 0
    assert buffers.nbytes < 1024 * 1300 + 4096 * 64  # compacted: the freed pages' memory is returned
    buffers.append(["X"], np.array([5]), ohlcv([5]))
    _, begins = buffers.windows(buffers.slots(["X"]))
    assert begins[0, -1] == 5 and (begins[0, :-1] == EMPTY_START).all() and buffers.pages == 1
