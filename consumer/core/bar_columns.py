"""The column types of bar aggregation: closed bars, per-call results, fragments, per-symbol state.

Every type holds numpy columns of equal length, so a batch of bars moves through the aggregator
as a handful of arrays rather than one object per bar. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np

from consumer.core.record_rules import Reject

NO_BAR: Final = -(2**62)
"""``bar_start`` of a symbol that has no bar yet; far below any event time, no overflow."""


@dataclass(frozen=True, slots=True)
class ClosedBars:
    """Bars closed by one call, sorted by (symbol id, bar_start); all columns have length m.

    ``symbol_ids`` int64[m] (per aggregator), ``symbols`` the names, ``bar_start`` int64[m]
    epoch ms, ``open`` / ``high`` / ``low`` / ``close`` / ``volume`` float64[m], ``count``
    int64[m] ticks (input bars in bar mode; 0 for gap bars).
    """

    symbol_ids: np.ndarray
    symbols: list[str]
    bar_start: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.symbols)

    def ohlcv(self) -> np.ndarray:
        """float64[m, 5] columns open, high, low, close, volume (the ring-buffer layout)."""
        return np.column_stack((self.open, self.high, self.low, self.close, self.volume))


@dataclass(frozen=True, slots=True)
class AggregateResult:
    """Outcome of one call: closed bars, rejected ticks, dropped duplicates, the watermark.

    ``rejects`` (reasons ``late`` and ``max_symbols``) carry the ticks' batch positions;
    ``watermark_ms`` is ``None`` until the partition has seen a tick.
    """

    bars: ClosedBars
    rejects: list[Reject]
    duplicates: int
    watermark_ms: int | None


class BarColumns(NamedTuple):
    """Bars as columns of length m, keyed by symbol id (the internal form of ClosedBars)."""

    sid: np.ndarray
    start: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    ticks: np.ndarray

    def take(self, rows: np.ndarray) -> BarColumns:
        """The bars at ``rows`` (int indices or a bool mask)."""
        return BarColumns(*(column[rows] for column in self))


class Fragments(NamedTuple):
    """One batch as OHLCV fragments in arrival order, columns of length n.

    A tick is a fragment with open = high = low = close = price (the same array) and volume =
    size; an input bar is a fragment with its own OHLC. ``ids`` are dedup ids or ``None``.
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    position: np.ndarray
    ids: Sequence[object] | None

    def take(self, rows: np.ndarray, *, with_ids: bool = True) -> Fragments:
        """The fragments at int ``rows``; columns that share one array still share one."""
        picked: dict[int, np.ndarray] = {}
        for column in self[:7]:
            if id(column) not in picked:
                picked[id(column)] = column[rows]
        arrays = [picked[id(column)] for column in self[:7]]
        ids = None if self.ids is None or not with_ids else [self.ids[i] for i in rows.tolist()]
        return Fragments._make((*arrays, ids))


class SymbolBars:
    """Each symbol's latest bar (open or closed) in arrays indexed by symbol id.

    ``start`` int64 (``NO_BAR`` before the first bar), ``is_open`` bool, ``open`` / ``high`` /
    ``low`` / ``close`` / ``volume`` float64, ``count`` int64, ``open_ts`` / ``close_ts`` int64
    (event times of the ticks that set open and close, for late ticks that reorder them).
    """

    FLOATS: Final = ("open", "high", "low", "close", "volume")
    INTS: Final = ("count", "open_ts", "close_ts")
    COLUMNS: Final = ("start", "is_open", *FLOATS, *INTS)

    def __init__(self, capacity: int) -> None:
        self.start = np.full(capacity, NO_BAR, dtype=np.int64)
        self.is_open = np.zeros(capacity, dtype=bool)
        self.open = np.zeros(capacity)
        self.high = np.zeros(capacity)
        self.low = np.zeros(capacity)
        self.close = np.zeros(capacity)
        self.volume = np.zeros(capacity)
        self.count = np.zeros(capacity, dtype=np.int64)
        self.open_ts = np.zeros(capacity, dtype=np.int64)
        self.close_ts = np.zeros(capacity, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.start)

    def grow(self, capacity: int) -> None:
        """Enlarge every array to ``capacity`` rows, new rows without a bar."""
        fresh = SymbolBars(capacity)
        n = len(self)
        for name in self.COLUMNS:
            column = getattr(fresh, name)
            column[:n] = getattr(self, name)
            setattr(self, name, column)

    def rows(self, sid: np.ndarray) -> BarColumns:
        """The stored bars of symbols ``sid`` as bar columns."""
        return BarColumns(
            sid,
            self.start[sid],
            self.open[sid],
            self.high[sid],
            self.low[sid],
            self.close[sid],
            self.volume[sid],
            self.count[sid],
        )

    def store(self, bars: BarColumns, open_ts: np.ndarray, close_ts: np.ndarray) -> None:
        """Make ``bars`` (one per symbol) the open bars of their symbols."""
        sid = bars.sid
        self.start[sid] = bars.start
        self.is_open[sid] = True
        self.open[sid] = bars.open
        self.high[sid] = bars.high
        self.low[sid] = bars.low
        self.close[sid] = bars.close
        self.volume[sid] = bars.volume
        self.count[sid] = bars.ticks
        self.open_ts[sid] = open_ts
        self.close_ts[sid] = close_ts


def empty_bars() -> BarColumns:
    """Zero closed bars."""
    ints, floats = np.zeros(0, dtype=np.int64), np.zeros(0)
    return BarColumns(ints, ints, floats, floats, floats, floats, floats, ints)
