"""Event-time tumbling OHLCV bars per symbol, built one Kafka batch at a time.

One :class:`BarAggregator` per partition; :meth:`BarAggregator.add` takes the decoded ticks of
one ``getmany()`` batch and returns the bars that closed. The result is the same however the
stream is split into batches: every rule below is evaluated as if ticks arrived one by one.

Policies
--------
Bars
    A bar covers ``[bar_start, bar_start + interval)`` with
    ``bar_start = floor(ts / interval) * interval``. Open is the price of the tick with the
    earliest ts and close of the latest (ties: the first arrival opens, the last one closes);
    high / low are the extremes, volume the sum of sizes, count the number of ticks.
    A symbol has at most one open bar.
Watermark
    ``watermark = max event time seen in the partition - allowed_lateness``. Every tick of an
    admitted symbol moves the maximum, late and duplicate ones included.
    :meth:`BarAggregator.advance_watermark` moves it without ticks (e.g. from the wall clock for
    an idle partition).
Closing
    A symbol's open bar closes as soon as a tick of a later bar of that symbol arrives (lowest
    latency; Kafka keeps one key's records in order, so a symbol rarely goes backwards), and
    any open bar closes once the watermark reaches its end, so quiet symbols close too (unlike
    Kafka Streams / Quix windows, which wait for the key's next record).
Lateness
    A tick is rejected with reason ``late`` when its bar has already closed: the bar ended at
    or before the watermark on the tick's arrival, or the symbol has already moved to a later
    bar. A tick behind the watermark whose bar is still open updates it: that is what
    ``allowed_lateness_ms`` buys, room for symbols lagging behind the partition's fastest one.
Duplicates
    A tick whose trade ``id`` was already counted in the same open bar of its symbol is a
    producer retry: dropped and counted in ``duplicates``. Ids are remembered per bar start and
    forgotten together once the watermark passes that bar's end (every bar of that start is
    closed then), so memory holds the ids of about the last ``interval + allowed_lateness`` of
    event time.
Gaps
    Intervals without ticks between two bars of a symbol are emitted as flat bars at the
    previous close (open = high = low = close, volume 0, count 0) so that a symbol's bars are
    contiguous in bar units; at most ``max_gap_bars`` (default 200, the window length) per gap,
    the most recent ones, since older ones cannot reach a 200-bar window. Gap bars are emitted
    when the symbol's next tick arrives: a quiet symbol without an open bar emits nothing.
Max symbols
    At most ``max_symbols`` symbols per partition; ticks of further symbols are rejected with
    reason ``max_symbols``. Symbols are never forgotten (their last bar seeds gap filling).
Bar input
    :meth:`BarAggregator.add_bars` aggregates input bars instead of ticks (the input interval
    must equal or divide ``interval_ms``); an input bar counts as one "tick" with its own OHLC,
    its start as event time, and its start as the id (a resent input bar is a duplicate).
Output
    :class:`ClosedBars`, sorted by (symbol id, bar_start); symbol ids are per aggregator.
State
    :meth:`BarAggregator.snapshot` returns a plain JSON-serialisable dict and
    :meth:`BarAggregator.restore` rebuilds an aggregator from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from typing import Final, NamedTuple

import numpy as np

from consumer.core.ticks import DecodedBars, DecodedTicks, Reject, RejectReason

DEFAULT_MAX_GAP_BARS: Final = 200
"""Gap bars emitted per gap at most: the window length, older ones cannot matter."""

DEFAULT_MAX_SYMBOLS: Final = 100_000
"""Symbols tracked per partition at most."""

SNAPSHOT_VERSION: Final = 1
"""Version of the :meth:`BarAggregator.snapshot` layout."""

NO_BAR: Final = -(2**62)
"""``bar_start`` of a symbol that has no bar yet; far below any event time, no overflow."""

_INITIAL_SYMBOLS: Final = 1024
_GOLDEN: Final = 0x9E3779B97F4A7C15
# Odd multiplier for dedup keys and its inverse mod 2**64 (symbol ids can be recovered).
_MIX, _MIX_INVERSE = np.array([_GOLDEN, pow(_GOLDEN, -1, 2**64)], dtype=np.uint64).view(np.int64)
_ABSENT: Final = object()


class SnapshotError(ValueError):
    """A snapshot that cannot be restored (wrong version, shape or settings)."""


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


class _Bars(NamedTuple):
    """Bars as columns of length m, keyed by symbol id (the internal form of ClosedBars)."""

    sid: np.ndarray
    start: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray

    def take(self, rows: np.ndarray) -> _Bars:
        """The bars at ``rows`` (int indices or a bool mask)."""
        return _Bars(*(column[rows] for column in self))


class _Fragments(NamedTuple):
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
    index: np.ndarray
    ids: Sequence[object] | None

    def take(self, rows: np.ndarray, *, with_ids: bool = True) -> _Fragments:
        """The fragments at int ``rows``; columns that share one array still share one."""
        picked: dict[int, np.ndarray] = {}
        for column in self[:7]:
            if id(column) not in picked:
                picked[id(column)] = column[rows]
        arrays = [picked[id(column)] for column in self[:7]]
        ids = None if self.ids is None or not with_ids else [self.ids[i] for i in rows.tolist()]
        return _Fragments(*arrays, ids)


class _State:
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
        fresh = _State(capacity)
        n = len(self)
        for name in self.COLUMNS:
            column = getattr(fresh, name)
            column[:n] = getattr(self, name)
            setattr(self, name, column)

    def rows(self, sid: np.ndarray) -> _Bars:
        """The stored bars of symbols ``sid`` as bar columns."""
        return _Bars(
            sid,
            self.start[sid],
            self.open[sid],
            self.high[sid],
            self.low[sid],
            self.close[sid],
            self.volume[sid],
            self.count[sid],
        )

    def store(self, bars: _Bars, open_ts: np.ndarray, close_ts: np.ndarray) -> None:
        """Make ``bars`` (one per symbol) the open bars of their symbols."""
        sid = bars.sid
        self.start[sid] = bars.start
        self.is_open[sid] = True
        self.open[sid] = bars.open
        self.high[sid] = bars.high
        self.low[sid] = bars.low
        self.close[sid] = bars.close
        self.volume[sid] = bars.volume
        self.count[sid] = bars.count
        self.open_ts[sid] = open_ts
        self.close_ts[sid] = close_ts


class BarAggregator:
    """Per-partition event-time bar builder; see the module docstring for the policies."""

    def __init__(
        self,
        interval_ms: int,
        allowed_lateness_ms: int = 0,
        *,
        max_gap_bars: int = DEFAULT_MAX_GAP_BARS,
        max_symbols: int = DEFAULT_MAX_SYMBOLS,
    ) -> None:
        _require_int("interval_ms", interval_ms, minimum=1)
        _require_int("allowed_lateness_ms", allowed_lateness_ms, minimum=0)
        _require_int("max_gap_bars", max_gap_bars, minimum=0)
        _require_int("max_symbols", max_symbols, minimum=1)
        self.interval_ms = interval_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.max_gap_bars = max_gap_bars
        self.max_symbols = max_symbols
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._state = _State(min(_INITIAL_SYMBOLS, max_symbols))
        self._name_array = np.empty(len(self._state), dtype=object)
        self._max_ts = NO_BAR
        self._seen: dict[int, dict[int, object]] = {}

    @property
    def watermark_ms(self) -> int | None:
        """Current watermark (max event time - allowed lateness), ``None`` before any tick."""
        return None if self._max_ts == NO_BAR else self._max_ts - self.allowed_lateness_ms

    @property
    def symbols(self) -> list[str]:
        """Symbols known to this partition, indexed by symbol id."""
        return list(self._names)

    @property
    def remembered_ids(self) -> int:
        """Trade ids held for duplicate detection (a gauge worth exporting)."""
        return sum(map(len, self._seen.values()))

    @property
    def open_bars(self) -> int:
        """Number of symbols with an open bar."""
        return int(self._state.is_open[: len(self._names)].sum())

    def ids_of(self, symbols: Sequence[str]) -> np.ndarray:
        """int64[n] symbol id of each symbol, -1 for symbols this aggregator has not seen."""
        return np.fromiter(map(self._index.get, symbols, repeat(-1)), np.int64, len(symbols))

    def open_starts(self) -> np.ndarray:
        """int64[symbols]: each symbol's open bar start by symbol id, ``NO_BAR`` where none is open."""
        n = len(self._names)
        return np.where(self._state.is_open[:n], self._state.start[:n], NO_BAR)

    def seed(self, symbols: Sequence[str], bar_start: np.ndarray, close: np.ndarray) -> None:
        """Record each symbol's last closed bar (start, close), e.g. from restored ring buffers.

        Later ticks of that bar or older ones are then ``late``, and gap bars after it are
        filled at its close, exactly as if the bars had been aggregated here.
        """
        sid = self._symbol_ids(list(symbols))
        if (sid < 0).any():
            raise ValueError(f"cannot seed {len(symbols)} symbols beyond max_symbols={self.max_symbols}")
        state = self._state
        state.start[sid] = bar_start
        state.is_open[sid] = False
        for name in _State.FLOATS[:4]:
            getattr(state, name)[sid] = close
        state.volume[sid] = 0.0
        state.count[sid] = 0

    def add(self, ticks: DecodedTicks) -> AggregateResult:
        """Aggregate one batch of decoded ticks; returns the bars closed by it."""
        fragments = _Fragments(
            ticks.ts_ms,
            ticks.price,
            ticks.price,
            ticks.price,
            ticks.price,
            ticks.size,
            ticks.index,
            ticks.trade_id,
        )
        return self._ingest(ticks.symbols, fragments)

    def add_bars(self, bars: DecodedBars) -> AggregateResult:
        """Aggregate one batch of decoded input bars; returns the bars closed by it."""
        fragments = _Fragments(
            bars.ts_ms,
            bars.open,
            bars.high,
            bars.low,
            bars.close,
            bars.volume,
            bars.index,
            bars.ts_ms.tolist(),
        )
        return self._ingest(bars.symbols, fragments)

    def advance_watermark(self, event_time_ms: int) -> AggregateResult:
        """Raise the partition's max event time to ``event_time_ms`` and close expired bars."""
        _require_int("event_time_ms", event_time_ms, minimum=NO_BAR + 1)
        self._max_ts = max(self._max_ts, event_time_ms)
        return self._result([self._close_expired()], [], 0)

    def snapshot(self) -> dict[str, object]:
        """The whole state as a plain JSON-serialisable dict (see :meth:`restore`)."""
        n = len(self._names)
        state = self._state
        columns = {name: getattr(state, name)[:n].tolist() for name in (*_State.FLOATS, *_State.INTS)}
        return {
            "version": SNAPSHOT_VERSION,
            "interval_ms": self.interval_ms,
            "allowed_lateness_ms": self.allowed_lateness_ms,
            "max_gap_bars": self.max_gap_bars,
            "max_ts": None if self._max_ts == NO_BAR else self._max_ts,
            "symbols": list(self._names),
            "start": [None if s == NO_BAR else s for s in state.start[:n].tolist()],
            "is_open": state.is_open[:n].tolist(),
            **columns,
            "trade_ids": self._open_trade_ids(),
        }

    @classmethod
    def restore(
        cls, snapshot: Mapping[str, object], *, max_symbols: int = DEFAULT_MAX_SYMBOLS
    ) -> BarAggregator:
        """Rebuild an aggregator from :meth:`snapshot` output; raises :class:`SnapshotError`."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError(
                f"snapshot version {snapshot.get('version')!r} is not {SNAPSHOT_VERSION}; "
                "drop the snapshot and rebuild state from the topic"
            )
        aggregator = cls(
            _snapshot_int(snapshot, "interval_ms"),
            _snapshot_int(snapshot, "allowed_lateness_ms"),
            max_gap_bars=_snapshot_int(snapshot, "max_gap_bars"),
            max_symbols=max_symbols,
        )
        try:
            aggregator._load(snapshot)
        except SnapshotError:
            raise
        except (TypeError, ValueError, IndexError) as exc:
            raise SnapshotError(f"malformed bar aggregator snapshot: {exc}") from exc
        return aggregator

    def _load(self, snapshot: Mapping[str, object]) -> None:
        """Fill a fresh aggregator's state from a snapshot dict."""
        names = list(_snapshot_list(snapshot, "symbols"))
        if len(names) > self.max_symbols:
            raise SnapshotError(
                f"snapshot holds {len(names)} symbols, more than max_symbols={self.max_symbols}; "
                "restore with a larger max_symbols"
            )
        self._register(names)
        n = len(names)
        state = self._state
        starts = _snapshot_list(snapshot, "start", n)
        state.start[:n] = [NO_BAR if s is None else s for s in starts]
        state.is_open[:n] = _snapshot_list(snapshot, "is_open", n)
        for name in (*_State.FLOATS, *_State.INTS):
            getattr(state, name)[:n] = _snapshot_list(snapshot, name, n)
        max_ts = snapshot.get("max_ts")
        self._max_ts = NO_BAR if max_ts is None else _snapshot_int(snapshot, "max_ts")
        for sid, trade_id in _snapshot_list(snapshot, "trade_ids"):
            if not state.is_open[sid]:
                raise SnapshotError(f"trade id {trade_id!r} belongs to symbol {sid} without open bar")
            seen = self._seen.setdefault(int(state.start[sid]), {})
            key = _dedup_keys(np.array([sid], dtype=np.int64), [trade_id]).tolist()
            _remember_each(seen, key, [trade_id])

    def _open_trade_ids(self) -> list[list[object]]:
        """[symbol id, trade id] pairs remembered for the open bars (for snapshots)."""
        state = self._state
        pairs: list[list[object]] = []
        for start, seen in sorted(self._seen.items()):
            entries = [
                (key, trade_id)
                for key, value in seen.items()
                for trade_id in (value if isinstance(value, tuple) else (value,))
            ]
            trade_ids = [trade_id for _, trade_id in entries]
            keys = np.array([key for key, _ in entries], dtype=np.int64)
            owners = _key_owners(keys, trade_ids).tolist()
            pairs += [
                [sid, trade_id]
                for sid, trade_id in sorted(zip(owners, trade_ids, strict=True), key=_pair_order)
                if state.is_open[sid] and state.start[sid] == start
            ]
        return pairs

    def _ingest(self, symbols: list[str], fragments: _Fragments) -> AggregateResult:
        """Core of :meth:`add` / :meth:`add_bars` for one batch of fragments."""
        sid = self._symbol_ids(symbols)
        rejects: list[Reject] = []
        admitted = sid >= 0
        if not admitted.all():
            rejects += self._refused(symbols, fragments.index, admitted)
            keep = np.flatnonzero(admitted)
            symbols = list(compress(symbols, admitted.tolist()))
            fragments, sid = fragments.take(keep), sid[keep]
        parts: list[_Bars | None] = []
        duplicates = 0
        if len(sid):
            iv = self.interval_ms
            bar = fragments.ts // iv * iv
            reach = np.maximum.accumulate(fragments.ts)
            np.maximum(reach, self._max_ts, out=reach)
            expired = bar + iv <= reach - self.allowed_lateness_ms
            order = _stable_order(sid)
            late = expired | self._behind(sid, bar, order)
            if late.any():
                rejects += self._late(symbols, fragments.index, bar, reach, expired, late)
            dup = self._duplicates(sid, bar, fragments.ids, ~late)
            duplicates = int(dup.sum())
            rows = order[~(late | dup)[order]]
            parts += self._merge(sid[rows], bar[rows], fragments.take(rows, with_ids=False))
            self._max_ts = int(reach[-1])
        parts.append(self._close_expired())
        rejects.sort(key=lambda reject: reject.index)
        return self._result(parts, rejects, duplicates)

    def _symbol_ids(self, symbols: list[str]) -> np.ndarray:
        """int64[n] symbol id per tick, registering new symbols; -1 where ``max_symbols`` refuses."""
        sid = np.fromiter(map(self._index.get, symbols, repeat(-1)), np.int64, len(symbols))
        missing = np.flatnonzero(sid < 0).tolist()
        if missing:
            fresh = list(dict.fromkeys(symbols[i] for i in missing))
            self._register(fresh[: self.max_symbols - len(self._names)])
            sid[missing] = [self._index.get(symbols[i], -1) for i in missing]
        return sid

    def _register(self, names: list[str]) -> None:
        """Give new symbols the next ids, growing the state arrays by doubling."""
        if not names:
            return
        first = len(self._names)
        self._names.extend(names)
        self._index.update(zip(names, range(first, first + len(names)), strict=True))
        if len(self._names) > len(self._state):
            capacity = max(len(self._names), min(2 * len(self._state), self.max_symbols))
            self._state.grow(capacity)
            grown = np.empty(capacity, dtype=object)
            grown[:first] = self._name_array[:first]
            self._name_array = grown
        self._name_array[first : len(self._names)] = names

    def _refused(self, symbols: list[str], index: np.ndarray, admitted: np.ndarray) -> list[Reject]:
        """``max_symbols`` rejects for the ticks of symbols beyond the limit."""
        return [
            Reject(
                int(index[i]),
                RejectReason.MAX_SYMBOLS,
                f"symbol {symbols[i]!r} is new and the partition already tracks "
                f"max_symbols={self.max_symbols}",
            )
            for i in np.flatnonzero(~admitted).tolist()
        ]

    def _late(
        self,
        symbols: list[str],
        index: np.ndarray,
        bar: np.ndarray,
        reach: np.ndarray,
        expired: np.ndarray,
        late: np.ndarray,
    ) -> list[Reject]:
        """``late`` rejects explaining which closing rule had already closed the tick's bar."""
        out = []
        for i in np.flatnonzero(late).tolist():
            if expired[i]:
                why = f"ended at or before the watermark {int(reach[i]) - self.allowed_lateness_ms}"
            else:
                why = "is older than the symbol's latest bar"
            detail = f"bar {int(bar[i])} of {symbols[i]!r} {why}"
            out.append(Reject(int(index[i]), RejectReason.LATE, detail))
        return out

    def _behind(self, sid: np.ndarray, bar: np.ndarray, order: np.ndarray) -> np.ndarray:
        """bool[n]: ticks whose bar is before their symbol's latest bar so far (arrival order),
        or is that bar when it has already closed.

        The latest bar is the running maximum, per symbol, of the stored bar and the bars of
        earlier ticks. ``order`` groups ticks by symbol, keeping arrival order within a symbol.
        """
        n = len(sid)
        s_sid, s_bar = sid[order], bar[order]
        first = np.ones(n, dtype=bool)
        np.not_equal(s_sid[1:], s_sid[:-1], out=first[1:])
        previous = np.empty(n, dtype=np.int64)
        previous[1:] = s_bar[:-1]
        stored = s_sid[first]
        # A closed latest bar (closed by the watermark, or seeded) admits no more ticks itself.
        closed = ~self._state.is_open[stored] & (self._state.start[stored] != NO_BAR)
        previous[first] = self._state.start[stored] + closed
        behind = np.zeros(n, dtype=bool)
        if (s_bar >= previous).all():
            return behind
        peak = s_bar.copy()
        peak[first] = np.maximum(s_bar[first], previous[first])
        behind[order] = s_bar < _segmented_cummax(peak, first)
        return behind

    def _duplicates(
        self,
        sid: np.ndarray,
        bar: np.ndarray,
        ids: Sequence[object] | None,
        candidates: np.ndarray,
    ) -> np.ndarray:
        """bool[n]: candidate ticks whose id was already counted in their (symbol, bar).

        Remembers the others per bar start, as a 64-bit key of (symbol id, trade id) mapped to
        the trade id, so that a key collision is told apart from a repeat. Without repeated
        keys (the common case) that is two C-level dict operations per tick; the per-tick loop
        runs only for a bar start where a key repeats.
        """
        dup = np.zeros(len(sid), dtype=bool)
        if ids is None:
            return dup
        rows = np.flatnonzero(candidates)
        trade_ids = list(ids) if len(rows) == len(ids) else [ids[i] for i in rows.tolist()]
        if None in trade_ids:
            has_id = np.fromiter((x is not None for x in trade_ids), bool, len(trade_ids))
            rows = rows[has_id]
            trade_ids = list(compress(trade_ids, has_id.tolist()))
        keys = _dedup_keys(sid[rows], trade_ids)
        row_bars = bar[rows]
        for start in np.unique(row_bars).tolist():
            picked = np.flatnonzero(row_bars == start)
            if len(picked) < len(rows):
                chosen, names = rows[picked], [trade_ids[j] for j in picked.tolist()]
            else:
                chosen, names = rows, trade_ids
            seen = self._seen.setdefault(start, {})
            chosen_keys = keys[picked].tolist()
            if not _remember_fresh(seen, chosen_keys, names):
                dup[chosen] = _remember_each(seen, chosen_keys, names)
        return dup

    def _merge(self, sid: np.ndarray, bar: np.ndarray, fragments: _Fragments) -> list[_Bars | None]:
        """Fold accepted fragments (sorted by symbol, bar, arrival) into bars and state.

        Returns the bars this closes: stored open bars overtaken by a later bar, gap bars, and
        every batch bar but the last of each symbol, which becomes its symbol's open bar.
        """
        if not len(sid):
            return []
        head, starts = _group_starts(sid, bar)
        g_sid, g_bar = sid[starts], bar[starts]
        groups, open_ts, close_ts = _group(head, starts, g_sid, g_bar, fragments)
        first = np.ones(len(starts), dtype=bool)
        np.not_equal(g_sid[1:], g_sid[:-1], out=first[1:])
        last = np.ones(len(starts), dtype=bool)
        last[:-1] = first[1:]
        state = self._state
        stored_open = first & state.is_open[g_sid]
        stored_start = state.start[g_sid]
        same = stored_open & (stored_start == g_bar)
        if same.any():
            _absorb(groups, open_ts, close_ts, state, np.flatnonzero(same))
        overtaken = state.rows(g_sid[stored_open & ~same])
        previous_start = _previous(first, stored_start, g_bar)
        previous_close = _previous(first, state.close[g_sid], groups.close)
        gaps = self._gap_bars(groups, previous_start, previous_close)
        state.store(groups.take(last), open_ts[last], close_ts[last])
        return [overtaken, gaps, groups.take(~last)]

    def _gap_bars(
        self, groups: _Bars, previous_start: np.ndarray, previous_close: np.ndarray
    ) -> _Bars | None:
        """Flat bars at the previous close for the empty intervals before each group's bar."""
        iv = self.interval_ms
        known = previous_start != NO_BAR
        gaps = np.where(known, (groups.start - previous_start) // iv - 1, 0)
        np.minimum(gaps, self.max_gap_bars, out=gaps)
        np.maximum(gaps, 0, out=gaps)
        total = int(gaps.sum())
        if total == 0:
            return None
        owner = np.repeat(np.arange(len(gaps)), gaps)
        offset = np.arange(total) - np.repeat(np.cumsum(gaps) - gaps, gaps)
        start = groups.start[owner] - (gaps[owner] - offset) * iv
        price = previous_close[owner]
        return _Bars(
            groups.sid[owner],
            start,
            price,
            price,
            price,
            price,
            np.zeros(total),
            np.zeros(total, dtype=np.int64),
        )

    def _close_expired(self) -> _Bars | None:
        """Close every open bar whose end the watermark has reached (forgetting closed ids)."""
        if self._max_ts == NO_BAR:
            return None
        self._forget_closed_ids()
        n = len(self._names)
        state = self._state
        horizon = self._max_ts - self.allowed_lateness_ms - self.interval_ms
        expired = np.flatnonzero(state.is_open[:n] & (state.start[:n] <= horizon))
        if not expired.size:
            return None
        state.is_open[expired] = False
        return state.rows(expired)

    def _forget_closed_ids(self) -> None:
        """Drop the ids of bar starts whose bars the watermark has closed for every symbol."""
        horizon = self._max_ts - self.allowed_lateness_ms - self.interval_ms
        for start in [start for start in self._seen if start <= horizon]:
            del self._seen[start]

    def _result(self, parts: list[_Bars | None], rejects: list[Reject], duplicates: int) -> AggregateResult:
        """Assemble the sorted closed bars of one call."""
        present = [part for part in parts if part is not None and len(part.sid)]
        if present:
            merged = _Bars(*(np.concatenate(columns) for columns in zip(*present, strict=True)))
            merged = merged.take(np.lexsort((merged.start, merged.sid)))
        else:
            merged = _empty_bars()
        bars = ClosedBars(
            symbol_ids=merged.sid,
            symbols=self._name_array[merged.sid].tolist(),
            bar_start=merged.start,
            open=merged.open,
            high=merged.high,
            low=merged.low,
            close=merged.close,
            volume=merged.volume,
            count=merged.count,
        )
        return AggregateResult(bars, rejects, duplicates, self.watermark_ms)


def _stable_order(sid: np.ndarray) -> np.ndarray:
    """Permutation grouping equal ids, arrival order kept; narrow ids take numpy's radix sort."""
    if len(sid) and int(sid.max()) < 2**16:
        return np.argsort(sid.astype(np.uint16), kind="stable")
    return np.argsort(sid, kind="stable")


def _segmented_cummax(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Running maximum of int64[n] ``values`` restarting where bool[n] ``first`` is set.

    Values are replaced by their rank, offset by segment so that segments never mix; one
    ``maximum.accumulate`` then serves all segments.
    """
    segment = np.cumsum(first) - 1
    distinct, rank = np.unique(values, return_inverse=True)
    offset = segment * len(distinct)
    return distinct[np.maximum.accumulate(offset + rank) - offset]


def _previous(first: np.ndarray, stored: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per group, the previous group's value, or ``stored`` (reused) for a symbol's first one."""
    inner = ~first[1:]
    stored[1:][inner] = values[:-1][inner]
    return stored


def _group_starts(sid: np.ndarray, bar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal (sid, bar) in sorted int64[k] columns: (bool[k] run heads, their positions)."""
    head = np.ones(len(sid), dtype=bool)
    head[1:] = (sid[1:] != sid[:-1]) | (bar[1:] != bar[:-1])
    return head, head.nonzero()[0]


def _group(
    head: np.ndarray, starts: np.ndarray, sid: np.ndarray, bar: np.ndarray, fragments: _Fragments
) -> tuple[_Bars, np.ndarray, np.ndarray]:
    """One bar per run of fragments (arrival order inside a run), plus its open / close ts.

    ``head`` bool[k] marks run starts, ``starts`` int64[g] are their positions and ``sid`` /
    ``bar`` int64[g] their keys. Open comes from the first fragment with the run's minimum ts,
    close from the last one with its maximum ts. All returned arrays are new.
    """
    k = len(fragments.ts)
    ts = fragments.ts
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1:] = k
    if ((ts[1:] >= ts[:-1]) | head[1:]).all():
        open_at, close_at = starts, ends - 1
        open_ts, close_ts = ts[open_at], ts[close_at]
    else:
        open_at, close_at, open_ts, close_ts = _extreme_positions(ts, starts, ends - starts)
    bars = _Bars(
        sid,
        bar,
        fragments.open[open_at],
        np.maximum.reduceat(fragments.high, starts),
        np.minimum.reduceat(fragments.low, starts),
        fragments.close[close_at],
        np.add.reduceat(fragments.volume, starts),
        ends - starts,
    )
    return bars, open_ts, close_ts


def _extreme_positions(
    ts: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per run of int64[k] ``ts``: first position of its minimum, last of its maximum, both ts."""
    k = len(ts)
    open_ts = np.minimum.reduceat(ts, starts)
    close_ts = np.maximum.reduceat(ts, starts)
    position = np.arange(k)
    at_open = ts == np.repeat(open_ts, lengths)
    at_close = ts == np.repeat(close_ts, lengths)
    open_at = np.minimum.reduceat(np.where(at_open, position, k), starts)
    close_at = np.maximum.reduceat(np.where(at_close, position, -1), starts)
    return open_at, close_at, open_ts, close_ts


def _absorb(
    groups: _Bars, open_ts: np.ndarray, close_ts: np.ndarray, state: _State, rows: np.ndarray
) -> None:
    """Merge the stored open bars into the batch bars at ``rows`` (same symbol and start).

    Updates ``groups``, ``open_ts`` and ``close_ts`` in place; the stored bar keeps open on a
    ts tie (it arrived first) and the batch takes close on a tie (it arrived last).
    """
    sid = groups.sid[rows]
    stored_opens = state.open_ts[sid] <= open_ts[rows]
    batch_closes = close_ts[rows] >= state.close_ts[sid]
    groups.open[rows] = np.where(stored_opens, state.open[sid], groups.open[rows])
    groups.high[rows] = np.maximum(state.high[sid], groups.high[rows])
    groups.low[rows] = np.minimum(state.low[sid], groups.low[rows])
    groups.close[rows] = np.where(batch_closes, groups.close[rows], state.close[sid])
    groups.volume[rows] += state.volume[sid]
    groups.count[rows] += state.count[sid]
    open_ts[rows] = np.minimum(open_ts[rows], state.open_ts[sid])
    close_ts[rows] = np.maximum(close_ts[rows], state.close_ts[sid])


def _empty_bars() -> _Bars:
    """Zero closed bars."""
    ints, floats = np.zeros(0, dtype=np.int64), np.zeros(0)
    return _Bars(ints, ints, floats, floats, floats, floats, floats, ints)


def _pair_order(pair: tuple[int, object]) -> tuple[int, bool, object]:
    """Canonical order of (symbol id, trade id) pairs: by symbol, then int ids, then strings."""
    return pair[0], isinstance(pair[1], str), pair[1]


def _dedup_keys(sid: np.ndarray, trade_ids: list[object]) -> np.ndarray:
    """int64[k] keys ``hash(trade id) XOR (symbol id * _MIX)``; wraps, never overflows."""
    hashes = np.fromiter(map(hash, trade_ids), np.int64, len(trade_ids))
    return hashes ^ (sid * _MIX)


def _key_owners(keys: np.ndarray, trade_ids: list[object]) -> np.ndarray:
    """int64[k] symbol ids back from :func:`_dedup_keys` keys (``_MIX`` is invertible mod 2**64)."""
    hashes = np.fromiter(map(hash, trade_ids), np.int64, len(trade_ids))
    return (keys ^ hashes) * _MIX_INVERSE


def _remember_fresh(seen: dict[int, object], keys: list[int], trade_ids: list[object]) -> bool:
    """Add all keys and return True when none is known or repeated (else leave ``seen`` as is)."""
    if not seen.keys().isdisjoint(keys):
        return False
    size = len(seen)
    seen.update(zip(keys, trade_ids, strict=True))
    if len(seen) - size == len(keys):
        return True
    for key in keys:
        seen.pop(key, None)
    return False


def _remember_each(seen: dict[int, object], keys: list[int], trade_ids: list[object]) -> np.ndarray:
    """bool[k]: trade ids already in ``seen`` or earlier in the list; remembers the others.

    A key shared by different trade ids (a hash collision) maps to a tuple of them.
    """
    repeated = np.zeros(len(keys), dtype=bool)
    for j, (key, trade_id) in enumerate(zip(keys, trade_ids, strict=True)):
        known = seen.get(key, _ABSENT)
        if known is _ABSENT:
            seen[key] = trade_id
        elif isinstance(known, tuple):
            if trade_id in known:
                repeated[j] = True
            else:
                seen[key] = (*known, trade_id)
        elif known == trade_id:
            repeated[j] = True
        else:
            seen[key] = (known, trade_id)
    return repeated


def _require_int(name: str, value: object, *, minimum: int) -> None:
    """Raise a ValueError naming the setting when ``value`` is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _snapshot_int(snapshot: Mapping[str, object], name: str) -> int:
    """An integer entry of a snapshot dict."""
    value = snapshot.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SnapshotError(f"snapshot entry {name!r} must be an integer, got {value!r}")
    return value


def _snapshot_list(snapshot: Mapping[str, object], name: str, length: int | None = None) -> list:
    """A list entry of a snapshot dict, of ``length`` items when given."""
    value = snapshot.get(name)
    if not isinstance(value, list | tuple) or (length is not None and len(value) != length):
        expected = "a list" if length is None else f"a list of {length} items"
        raise SnapshotError(f"snapshot entry {name!r} must be {expected}")
    return list(value)
