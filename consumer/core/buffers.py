"""Ring buffers of the last ``capacity`` (200) closed bars per symbol, stored in pages.

A slot per symbol holds a ring of ``capacity`` bars cut into pages of ``page_bars`` (25) bars;
a page is taken from one shared pool only when the ring first writes into it, so a symbol with
one bar holds one page, a warm one ``capacity / page_bars``. The pool is two numpy arrays,
``float64[pages, page_bars, 5]`` (open, high, low, close, volume) and ``int64[pages,
page_bars]`` (bar starts); a page table ``int32[slots, capacity / page_bars]`` maps each slot's
ring segment to its page, 0 being a shared page that stays empty (NaN / ``EMPTY_START``), so
reading a window is one gather whatever the slot holds. Slots grow by doubling up to
``max_symbols``; past it new symbols are refused and the caller counts them and dead-letters or
ignores their bars with reason ``max_symbols``. A removed symbol's pages go back to the pool
(which is compacted once most of it is free) and its slot is reused.

Memory per symbol, C = 200, pages of 25 bars: a page is 25 * 5 * 8 + 25 * 8 = 1,200 bytes; a
slot costs 8 * 4 (page table) + 8 * 3 (position, count, last start) = 56 bytes, plus about
150 bytes for the name and its dict entry. ``python -m benchmarks.bench_symbol_memory``
measures the whole pipeline (aggregator state included): about 2.0 KB per cold symbol (one
bar) and 10.6 KB per warm one (200 bars), against 10.0 KB for both with whole 200-bar slots;
100,000 warm symbols take about 1 GB. The pool grows in place by a sixteenth beyond what it
needs, so little of it is reserved and not yet used.

Appends are idempotent for replays: a bar not newer than the symbol's latest stored bar is
skipped (as happens when ticks are re-read after restoring a changelog that was ahead of the
committed offsets). :meth:`RingBuffers.restore_bars` reloads a symbol from the state topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Final

import numpy as np

FIELDS: Final = ("open", "high", "low", "close", "volume")
"""Column order of the last axis of the bar arrays."""

EMPTY_START: Final = np.iinfo(np.int64).min
"""``bar_start`` of a window row that holds no bar yet (its OHLCV row is NaN)."""

_INITIAL_SLOTS: Final = 1024
PAGE_BARS: Final = 25
"""Bars per page: a cold symbol holds one page, a warm one capacity / PAGE_BARS."""
_EMPTY_PAGE: Final = 0
"""The shared page every unwritten ring segment maps to; never written."""


class BarOrderError(ValueError):
    """Bars of one symbol in an append batch that are not in increasing ``bar_start`` order."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Outcome of :meth:`RingBuffers.append` for m input bars.

    ``slots`` int64[m] is each bar's slot (-1 when its symbol was refused), ``stored`` bool[m]
    whether the bar was written (False for refused ones and replays not newer than the stored
    latest bar), ``refused`` the distinct symbols refused by ``max_symbols``.
    """

    slots: np.ndarray
    stored: np.ndarray
    refused: list[str]


class RingBuffers:
    """The last ``capacity`` closed bars of up to ``max_symbols`` symbols, in pages."""

    def __init__(
        self,
        capacity: int = 200,
        max_symbols: int = 100_000,
        *,
        initial_slots: int = _INITIAL_SLOTS,
        page_bars: int = PAGE_BARS,
    ) -> None:
        for name, value in (
            ("capacity", capacity),
            ("max_symbols", max_symbols),
            ("initial_slots", initial_slots),
            ("page_bars", page_bars),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.capacity = capacity
        self.max_symbols = max_symbols
        self.page_bars = min(page_bars, capacity)
        self._pages_per_slot = -(-capacity // self.page_bars)
        # Page segment and row of ring positions 0 .. 2C - 1 (position + k before the modulo).
        self._segment_of, self._row_of = np.divmod(np.arange(2 * capacity) % capacity, self.page_bars)
        self._slot: dict[str, int] = {}
        self._free: list[int] = []
        self._table = np.zeros((0, self._pages_per_slot), dtype=np.int32)
        self._position = np.zeros(0, dtype=np.int64)
        self._count = np.zeros(0, dtype=np.int64)
        self._latest = np.zeros(0, dtype=np.int64)
        self._used = 0
        self._pool_bars = np.full((1, self.page_bars, len(FIELDS)), np.nan)
        self._pool_start = np.full((1, self.page_bars), EMPTY_START, dtype=np.int64)
        self._free_pages: list[int] = []
        self._pages_used = 1
        self._min_pages = min(initial_slots, max_symbols)
        self._grow(min(initial_slots, max_symbols))

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._slot

    @property
    def pages(self) -> int:
        """Pages holding bars, all symbols together (each ``page_bars`` bars)."""
        return self._pages_used - 1 - len(self._free_pages)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the buffers hold: the page pool and the per-slot arrays."""
        arrays = (self._pool_bars, self._pool_start, self._table, self._position, self._count, self._latest)
        return sum(array.nbytes for array in arrays)

    def slots(self, symbols: Sequence[str]) -> np.ndarray:
        """int64[n] slot of each symbol, -1 for symbols without a buffer."""
        return np.fromiter(map(self._slot.get, symbols, repeat(-1)), np.int64, len(symbols))

    def counts(self, symbols: Sequence[str]) -> np.ndarray:
        """int64[n] bars ever appended per symbol (0 for unknown symbols)."""
        slots = self.slots(symbols)
        return np.where(slots >= 0, self._count[np.maximum(slots, 0)], 0)

    def latest(self, slots: np.ndarray) -> np.ndarray:
        """int64[n] start of the newest stored bar per slot, ``EMPTY_START`` for -1 or no bar."""
        slots = np.asarray(slots, dtype=np.int64)
        return np.where(slots >= 0, self._latest[np.maximum(slots, 0)], EMPTY_START)

    def warm(self, symbols: Sequence[str]) -> np.ndarray:
        """bool[n]: whether each symbol has a full window (at least ``capacity`` bars)."""
        return self.counts(symbols) >= self.capacity

    def append(self, symbols: Sequence[str], bar_start: np.ndarray, ohlcv: np.ndarray) -> AppendResult:
        """Append m closed bars: ``symbols``, ``bar_start`` int64[m], ``ohlcv`` float64[m, 5].

        A symbol may have several bars in the batch, in increasing ``bar_start`` order (else
        :class:`BarOrderError`). New symbols get a slot unless ``max_symbols`` is reached.
        """
        bar_start = np.asarray(bar_start, dtype=np.int64)
        ohlcv = np.asarray(ohlcv, dtype=np.float64)
        m = len(symbols)
        if bar_start.shape != (m,) or ohlcv.shape != (m, len(FIELDS)):
            raise ValueError(
                f"append needs bar_start of shape ({m},) and ohlcv of shape ({m}, {len(FIELDS)})"
                f" for {m} symbols, got {bar_start.shape} and {ohlcv.shape}"
            )
        slots, refused = self._assign(symbols)
        stored = np.zeros(m, dtype=bool)
        rows = np.flatnonzero(slots >= 0)
        order = rows[np.argsort(slots[rows], kind="stable")]
        fresh = self._fresh(slots[order], bar_start[order])
        write = order[fresh]
        stored[write] = True
        self._write(slots[write], bar_start[write], ohlcv[write])
        return AppendResult(slots, stored, refused)

    def windows(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chronological windows of n slots: (bars float64[n, C, 5], bar_start int64[n, C]).

        The newest bar is last. Slots with fewer than C bars start with rows of NaN /
        :data:`EMPTY_START`.
        """
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size and (slots.min() < 0 or slots.max() >= self._used):
            raise IndexError(
                f"slots must lie in [0, {self._used}) (use slots() to look symbols up), "
                f"got range [{slots.min()}, {slots.max()}]"
            )
        flat = self._cells(slots[:, None], self._position[slots, None] + np.arange(self.capacity))
        # np.take gathers whole rows several times faster than the equivalent fancy index.
        bars = np.take(self._pool_bars.reshape(-1, len(FIELDS)), flat, axis=0)
        return bars, np.take(self._pool_start.reshape(-1), flat)

    def remove(self, symbols: Sequence[str]) -> int:
        """Free the buffers of ``symbols`` (a revoked partition, expired symbols); returns how many."""
        freed = [slot for slot in map(self._slot.pop, symbols, repeat(None)) if slot is not None]
        if freed:
            self._clear(np.array(freed, dtype=np.int64))
            self._free += freed
            if len(self._free_pages) > max(self.pages, self._min_pages):
                self._compact()
        return len(freed)

    def restore_bars(
        self, symbol: str, bar_start: np.ndarray, ohlcv: np.ndarray, count: int | None = None
    ) -> int:
        """Replace ``symbol``'s buffer with bars oldest first (``bar_start`` int64[n], ``ohlcv`` [n, 5]).

        Keeps the newest ``capacity``; ``count`` is the number of bars ever appended (default
        n). Returns the slot, or -1 when the symbol is new and ``max_symbols`` is reached.
        """
        keep = min(len(bar_start), self.capacity)
        slots, _ = self._assign([symbol])
        slot = int(slots[0])
        if slot < 0:
            return slot
        self._clear(slot)
        starts = np.asarray(bar_start, dtype=np.int64)[len(bar_start) - keep :]
        self._write(np.full(keep, slot), starts, np.asarray(ohlcv, dtype=np.float64)[len(ohlcv) - keep :])
        self._count[slot] = len(bar_start) if count is None else max(count, len(bar_start))
        return slot

    def _cells(self, slots: np.ndarray, ring: np.ndarray) -> np.ndarray:
        """int64 pool cell (page * page_bars + row) of ring positions ``ring`` in [0, 2C) of
        ``slots`` (broadcast together)."""
        segment = np.take(self._segment_of, ring)
        page = np.take(self._table.reshape(-1), slots * self._pages_per_slot + segment)
        return page.astype(np.int64) * self.page_bars + np.take(self._row_of, ring)

    def _assign(self, symbols: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Slots for ``symbols``, allocating new ones; -1 and the refused names past the limit."""
        slots = self.slots(symbols)
        missing = np.flatnonzero(slots < 0).tolist()
        if not missing:
            return slots, []
        refused = []
        first_new = self._used
        for symbol in dict.fromkeys(symbols[i] for i in missing):
            slot = self._allocate()
            if slot < 0:
                refused.append(symbol)
            else:
                self._slot[symbol] = slot
        self._clear(np.arange(first_new, self._used))
        slots[missing] = [self._slot.get(symbols[i], -1) for i in missing]
        return slots, refused

    def _allocate(self) -> int:
        """A slot: a cleared one reused, or a new one (arrays doubled as needed; the caller
        clears new slots), -1 at the limit."""
        if self._free:
            return self._free.pop()
        if self._used >= self.max_symbols:
            return -1
        if self._used == len(self._count):
            self._grow(min(2 * len(self._count), self.max_symbols))
        self._used += 1
        return self._used - 1

    def _grow(self, slots: int) -> None:
        """Enlarge the per-slot arrays to ``slots`` slots (new ones without pages)."""
        old = len(self._table)
        self._table = _extend(self._table, slots)
        self._table[old:] = _EMPTY_PAGE
        self._position = _extend(self._position, slots)
        self._count = _extend(self._count, slots)
        self._latest = _extend(self._latest, slots)

    def _clear(self, slot: int | np.ndarray) -> None:
        """Reset one slot (or an array of slots) to hold no bars, its pages back to the pool."""
        pages = self._table[slot]
        self._free_pages += pages[pages != _EMPTY_PAGE].tolist()
        self._table[slot] = _EMPTY_PAGE
        self._position[slot] = 0
        self._count[slot] = 0
        self._latest[slot] = EMPTY_START

    def _take_pages(self, n: int) -> np.ndarray:
        """int32[n] cleared pages: freed ones first, then new ones (the pool grown as needed)."""
        split = len(self._free_pages) - min(n, len(self._free_pages))
        reused = self._free_pages[split:]
        del self._free_pages[split:]
        fresh = n - len(reused)
        if self._pages_used + fresh > len(self._pool_start):
            size = max(self._pages_used + fresh, self._min_pages)
            size += size // 16
            # In place (realloc, which moves large blocks by remapping, not copying), so the
            # pool can grow in small steps and reserve little; no view of it outlives a call.
            self._pool_bars.resize((size, self.page_bars, len(FIELDS)), refcheck=False)
            self._pool_start.resize((size, self.page_bars), refcheck=False)
        pages = np.r_[np.array(reused, dtype=np.int32), np.arange(self._pages_used, self._pages_used + fresh)]
        self._pages_used += fresh
        self._pool_bars[pages] = np.nan
        self._pool_start[pages] = EMPTY_START
        return pages.astype(np.int32)

    def _compact(self) -> None:
        """Move the pages in use to the front of a pool just large enough, so that memory freed
        by removed symbols is given back."""
        live = np.flatnonzero(self._table[: self._used].reshape(-1) != _EMPTY_PAGE)
        old = self._table[: self._used].reshape(-1)[live].astype(np.int64)
        order = np.concatenate([[_EMPTY_PAGE], old])
        self._pool_bars = _extend(self._pool_bars[order], max(len(order), self._min_pages))
        self._pool_start = _extend(self._pool_start[order], max(len(order), self._min_pages))
        self._table[: self._used].reshape(-1)[live] = np.arange(1, len(order), dtype=np.int32)
        self._pages_used = len(order)
        self._free_pages = []

    def _fresh(self, slots: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """bool[k] for bars sorted by slot (batch order within a slot): newer than stored.

        Raises :class:`BarOrderError` when a slot's bars do not increase within the batch.
        """
        first = np.ones(len(slots), dtype=bool)
        first[1:] = slots[1:] != slots[:-1]
        if (~first[1:] & (starts[1:] <= starts[:-1])).any():
            raise BarOrderError("bars of one symbol must have strictly increasing bar_start within an append")
        return starts > self._latest[slots]

    def _write(self, slots: np.ndarray, starts: np.ndarray, ohlcv: np.ndarray) -> None:
        """Store bars sorted by slot (increasing start per slot), the newest ``capacity`` each,
        taking a page for every ring segment written for the first time."""
        if not len(slots):
            return
        first = np.ones(len(slots), dtype=bool)
        first[1:] = slots[1:] != slots[:-1]
        group = np.flatnonzero(first)
        sizes = np.diff(group, append=len(slots))
        rank = np.arange(len(slots)) - np.repeat(group, sizes)
        keep = rank >= np.repeat(sizes, sizes) - self.capacity
        kept = slots[keep]
        ring = (self._position[kept] + rank[keep]) % self.capacity
        table = self._table.reshape(-1)
        entry = kept * self._pages_per_slot + np.take(self._segment_of, ring)
        missing = np.unique(entry[table[entry] == _EMPTY_PAGE])
        if len(missing):
            table[missing] = self._take_pages(len(missing))
        cells = self._cells(kept, ring)
        self._pool_bars.reshape(-1, len(FIELDS))[cells] = ohlcv[keep]
        self._pool_start.reshape(-1)[cells] = starts[keep]
        heads = slots[group]
        self._position[heads] = (self._position[heads] + sizes) % self.capacity
        self._count[heads] += sizes
        self._latest[heads] = starts[group + sizes - 1]


def _extend(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` with its first axis enlarged to ``rows``; the new rows are uninitialised."""
    grown = np.empty((rows, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown
