"""Ring buffers of the last ``capacity`` (200) closed bars per symbol, in preallocated numpy.

Storage is one slot per symbol: ``bars`` float64[S, C, 5] (open, high, low, close, volume),
``bar_start`` int64[S, C], and per slot the next write position and the number of bars ever
appended. Slots grow by doubling up to ``max_symbols``; past it new symbols are refused and
the caller counts them and dead-letters or ignores their bars with reason ``max_symbols``.

Memory per symbol with C = 200: 200 * 5 * 8 (bars) + 200 * 8 (starts) + 8 * 3 (position,
count, last start) = 9,624 bytes, plus about 150 bytes for the name and its dict entry, so
about 9.8 KB; 100,000 symbols take about 0.98 GB once allocated (doubling may reserve up to
twice the symbols in use, never more than ``max_symbols``).

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
    """The last ``capacity`` closed bars of up to ``max_symbols`` symbols."""

    def __init__(
        self,
        capacity: int = 200,
        max_symbols: int = 100_000,
        *,
        initial_slots: int = _INITIAL_SLOTS,
    ) -> None:
        for name, value in (
            ("capacity", capacity),
            ("max_symbols", max_symbols),
            ("initial_slots", initial_slots),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.capacity = capacity
        self.max_symbols = max_symbols
        self._slot: dict[str, int] = {}
        self._free: list[int] = []
        self._bars = np.full((0, capacity, len(FIELDS)), np.nan)
        self._start = np.full((0, capacity), EMPTY_START, dtype=np.int64)
        self._position = np.zeros(0, dtype=np.int64)
        self._count = np.zeros(0, dtype=np.int64)
        self._latest = np.zeros(0, dtype=np.int64)
        self._used = 0
        self._grow(min(initial_slots, max_symbols))

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._slot

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
        capacity = self.capacity
        flat = slots[:, None] * capacity + (self._position[slots, None] + np.arange(capacity)) % capacity
        # np.take gathers whole rows several times faster than the equivalent fancy index.
        bars = np.take(self._bars.reshape(-1, len(FIELDS)), flat, axis=0)
        return bars, np.take(self._start.reshape(-1), flat)

    def remove(self, symbols: Sequence[str]) -> int:
        """Free the buffers of ``symbols`` (e.g. on partition revocation); returns how many."""
        removed = 0
        for symbol in symbols:
            slot = self._slot.pop(symbol, None)
            if slot is not None:
                self._clear(slot)
                self._free.append(slot)
                removed += 1
        return removed

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
        self._start[slot, :keep] = bar_start[len(bar_start) - keep :]
        self._bars[slot, :keep] = ohlcv[len(ohlcv) - keep :]
        self._position[slot] = keep % self.capacity
        self._count[slot] = len(bar_start) if count is None else max(count, len(bar_start))
        self._latest[slot] = bar_start[-1] if len(bar_start) else EMPTY_START
        return slot

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
        self._clear(slice(first_new, self._used))
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
        """Enlarge storage to ``slots`` slots. New slots are left uninitialised, so their memory
        is only touched (and resident) once a symbol is allocated there and cleared."""
        self._bars = _extend(self._bars, slots)
        self._start = _extend(self._start, slots)
        self._position = _extend(self._position, slots)
        self._count = _extend(self._count, slots)
        self._latest = _extend(self._latest, slots)

    def _clear(self, slot: int | slice) -> None:
        """Reset one slot (or a range of slots) to hold no bars."""
        self._bars[slot] = np.nan
        self._start[slot] = EMPTY_START
        self._position[slot] = 0
        self._count[slot] = 0
        self._latest[slot] = EMPTY_START

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
        """Store bars sorted by slot (increasing start per slot), the newest ``capacity`` each."""
        if not len(slots):
            return
        first = np.ones(len(slots), dtype=bool)
        first[1:] = slots[1:] != slots[:-1]
        group = np.flatnonzero(first)
        sizes = np.diff(group, append=len(slots))
        rank = np.arange(len(slots)) - np.repeat(group, sizes)
        keep = rank >= np.repeat(sizes, sizes) - self.capacity
        columns = (self._position[slots[keep]] + rank[keep]) % self.capacity
        self._bars[slots[keep], columns] = ohlcv[keep]
        self._start[slots[keep], columns] = starts[keep]
        heads = slots[group]
        self._position[heads] = (self._position[heads] + sizes) % self.capacity
        self._count[heads] += sizes
        self._latest[heads] = starts[group + sizes - 1]


def _extend(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` with its first axis enlarged to ``rows``; the new rows are uninitialised."""
    grown = np.empty((rows, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown
