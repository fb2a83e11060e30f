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
    ``watermark = the partition's event-time clock - allowed_lateness``. The clock is the
    caller's (:mod:`consumer.core.clock`, which no single record can move: the worker's rule),
    given per tick as the clock after it; without one it is the max event time seen, every
    tick of an admitted symbol moving it, late and duplicate ones included.
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
    Intervals without ticks between two bars of a symbol that the gap rule fills
    (:mod:`consumer.core.gaps`: all of them for ``flat``, the default; none for ``skip``; those
    inside trading sessions for ``session``) are emitted as flat bars at the previous close
    (open = high = low = close, volume 0, count 0); at most ``max_gap_bars`` (default 200, the
    window length) per gap, the most recent ones, since older ones cannot reach a 200-bar
    window. Gap bars are emitted when the symbol's next tick arrives: a quiet symbol without an
    open bar emits nothing.
Max symbols
    At most ``max_symbols`` symbols per partition; ticks of further symbols are rejected with
    reason ``max_symbols``. A symbol is kept (its last bar seeds gap filling) until
    :meth:`BarAggregator.retire` forgets it (``--symbol-ttl``); its id is then reused.
Bar input
    :meth:`BarAggregator.add_bars` aggregates input bars instead of ticks (the input interval
    must equal or divide ``interval_ms``); an input bar counts as one "tick" with its own OHLC,
    its start as event time, and its start as the id (a resent input bar is a duplicate).
Output
    :class:`ClosedBars`, sorted by (symbol id, bar_start); symbol ids are per aggregator.
State
    Closed bars are kept in the state topic (:mod:`consumer.core.state`); after a restart
    :meth:`BarAggregator.seed` tells a fresh aggregator each symbol's last closed bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress, repeat
from typing import Final

import numpy as np

from consumer.core.bar_columns import (
    NO_BAR,
    AggregateResult,
    BarColumns,
    ClosedBars,
    Fragments,
    SymbolBars,
    empty_bars,
)
from consumer.core.bar_kernels import (
    absorb_open_bars,
    dedup_keys,
    group_runs,
    group_starts,
    previous_values,
    remember_each,
    remember_fresh,
    segmented_cummax,
    stable_order,
)
from consumer.core.gaps import GapRule, fill_starts
from consumer.core.record_rules import Reject, RejectReason
from consumer.core.ticks import DecodedBars, DecodedTicks

DEFAULT_MAX_GAP_BARS: Final = 200
"""Gap bars emitted per gap at most: the window length, older ones cannot matter."""

DEFAULT_MAX_SYMBOLS: Final = 100_000
"""Symbols tracked per partition at most."""

_INITIAL_SYMBOLS: Final = 1024


class BarAggregator:
    """Per-partition event-time bar builder; see the module docstring for the policies."""

    def __init__(
        self,
        interval_ms: int,
        allowed_lateness_ms: int = 0,
        *,
        max_gap_bars: int = DEFAULT_MAX_GAP_BARS,
        max_symbols: int = DEFAULT_MAX_SYMBOLS,
        gap_rule: GapRule | None = None,
    ) -> None:
        _require_int("interval_ms", interval_ms, minimum=1)
        _require_int("allowed_lateness_ms", allowed_lateness_ms, minimum=0)
        _require_int("max_gap_bars", max_gap_bars, minimum=0)
        _require_int("max_symbols", max_symbols, minimum=1)
        self.interval_ms = interval_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.max_gap_bars = max_gap_bars
        self.max_symbols = max_symbols
        self.gap_rule = gap_rule if gap_rule is not None else GapRule.flat()
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._state = SymbolBars(min(_INITIAL_SYMBOLS, max_symbols))
        self._name_array = np.empty(len(self._state), dtype=object)
        self._max_ts = NO_BAR
        self._seen: dict[int, dict[int, object]] = {}
        self._free_ids: list[int] = []

    @property
    def watermark_ms(self) -> int | None:
        """Current watermark (max event time - allowed lateness), ``None`` before any tick."""
        return None if self._max_ts == NO_BAR else self._max_ts - self.allowed_lateness_ms

    @property
    def symbols(self) -> list[str]:
        """Symbols known to this partition, indexed by symbol id ('' for an id free for reuse)."""
        return list(self._names)

    def latest_starts(self) -> np.ndarray:
        """int64[symbols]: each symbol's latest bar start (open or closed) by id, ``NO_BAR`` if none."""
        return self._state.start[: len(self._names)].copy()

    def without_bars(self) -> list[str]:
        """Known symbols without any bar (all their ticks were late): they hold an id for nothing."""
        names = self._name_array[np.flatnonzero(self._state.start[: len(self._names)] == NO_BAR)]
        return [name for name in names.tolist() if name]

    def retire(self, symbols: Sequence[str]) -> AggregateResult:
        """Forget known ``symbols``, closing their open bars (returned): their next tick starts
        them afresh, without gap bars, and their ids are reused for new symbols."""
        sid = self.ids_of(symbols)
        sid = sid[sid >= 0]
        state = self._state
        opened = sid[state.is_open[sid]]
        closed = self._result([state.rows(opened)], [], 0)
        state.start[sid], state.is_open[sid] = NO_BAR, False
        for i in sid.tolist():
            del self._index[self._names[i]]
            self._names[i] = ""
        self._name_array[sid] = ""
        self._free_ids += sid.tolist()
        return closed

    @property
    def remembered_ids(self) -> int:
        """Trade ids held for duplicate detection (a gauge worth exporting)."""
        return sum(map(len, self._seen.values()))

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
        for name in SymbolBars.FLOATS[:4]:
            getattr(state, name)[sid] = close
        state.volume[sid] = 0.0
        state.count[sid] = 0

    def add(self, ticks: DecodedTicks, clock: np.ndarray | None = None) -> AggregateResult:
        """Aggregate one batch of decoded ticks; returns the bars closed by it.

        ``clock`` int64[n]: the partition's event-time clock after each tick (default: the
        running max event time).
        """
        fragments = Fragments(
            ticks.ts_ms,
            ticks.price,
            ticks.price,
            ticks.price,
            ticks.price,
            ticks.size,
            ticks.index,
            ticks.trade_id,
        )
        return self._ingest(ticks.symbols, fragments, clock)

    def add_bars(self, bars: DecodedBars, clock: np.ndarray | None = None) -> AggregateResult:
        """Aggregate one batch of decoded input bars; returns the bars closed by it (``clock`` as
        in :meth:`add`)."""
        fragments = Fragments(
            bars.ts_ms,
            bars.open,
            bars.high,
            bars.low,
            bars.close,
            bars.volume,
            bars.index,
            bars.ts_ms.tolist(),
        )
        return self._ingest(bars.symbols, fragments, clock)

    def advance_watermark(self, event_time_ms: int) -> AggregateResult:
        """Raise the partition's max event time to ``event_time_ms`` and close expired bars."""
        _require_int("event_time_ms", event_time_ms, minimum=NO_BAR + 1)
        self._max_ts = max(self._max_ts, event_time_ms)
        return self._result([self._close_expired()], [], 0)

    def _ingest(self, symbols: list[str], fragments: Fragments, clock: np.ndarray | None) -> AggregateResult:
        """Core of :meth:`add` / :meth:`add_bars` for one batch of fragments."""
        end = self._max_ts if clock is None or not len(clock) else max(self._max_ts, int(clock[-1]))
        sid = self._symbol_ids(symbols)
        rejects: list[Reject] = []
        admitted = sid >= 0
        if not admitted.all():
            rejects += self._refused(symbols, fragments.position, admitted)
            keep = np.flatnonzero(admitted)
            symbols = list(compress(symbols, admitted.tolist()))
            fragments, sid = fragments.take(keep), sid[keep]
            clock = None if clock is None else clock[keep]
        parts: list[BarColumns | None] = []
        duplicates = 0
        if len(sid):
            iv = self.interval_ms
            bar = fragments.ts // iv * iv
            reach = np.maximum.accumulate(fragments.ts) if clock is None else clock.copy()
            np.maximum(reach, self._max_ts, out=reach)
            expired = bar + iv <= reach - self.allowed_lateness_ms
            order = stable_order(sid)
            late = expired | self._behind(sid, bar, order)
            if late.any():
                rejects += self._late(symbols, fragments.position, bar, reach, expired, late)
            dup = self._duplicates(sid, bar, fragments.ids, ~late)
            duplicates = int(dup.sum())
            rows = order[~(late | dup)[order]]
            parts += self._merge(sid[rows], bar[rows], fragments.take(rows, with_ids=False))
            self._max_ts = int(reach[-1])
        self._max_ts = max(self._max_ts, end)
        parts.append(self._close_expired())
        rejects.sort(key=lambda reject: reject.index)
        return self._result(parts, rejects, duplicates)

    def _symbol_ids(self, symbols: list[str]) -> np.ndarray:
        """int64[n] symbol id per tick, registering new symbols; -1 where ``max_symbols`` refuses."""
        sid = np.fromiter(map(self._index.get, symbols, repeat(-1)), np.int64, len(symbols))
        missing = np.flatnonzero(sid < 0).tolist()
        if missing:
            fresh = list(dict.fromkeys(symbols[i] for i in missing))
            self._register(fresh[: self.max_symbols - len(self._index)])
            sid[missing] = [self._index.get(symbols[i], -1) for i in missing]
        return sid

    def _register(self, names: list[str]) -> None:
        """Give new symbols the ids of retired ones, then the next ids (state arrays doubled)."""
        reused, names = names[: len(self._free_ids)], names[len(self._free_ids) :]
        for name in reused:
            sid = self._free_ids.pop()
            self._names[sid], self._index[name], self._name_array[sid] = name, sid, name
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
        behind[order] = s_bar < segmented_cummax(peak, first)
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
        keys = dedup_keys(sid[rows], trade_ids)
        row_bars = bar[rows]
        for start in np.unique(row_bars).tolist():
            picked = np.flatnonzero(row_bars == start)
            if len(picked) < len(rows):
                chosen, names = rows[picked], [trade_ids[j] for j in picked.tolist()]
            else:
                chosen, names = rows, trade_ids
            seen = self._seen.setdefault(start, {})
            chosen_keys = keys[picked].tolist()
            if not remember_fresh(seen, chosen_keys, names):
                dup[chosen] = remember_each(seen, chosen_keys, names)
        return dup

    def _merge(self, sid: np.ndarray, bar: np.ndarray, fragments: Fragments) -> list[BarColumns | None]:
        """Fold accepted fragments (sorted by symbol, bar, arrival) into bars and state.

        Returns the bars this closes: stored open bars overtaken by a later bar, gap bars, and
        every batch bar but the last of each symbol, which becomes its symbol's open bar.
        """
        if not len(sid):
            return []
        head, starts = group_starts(sid, bar)
        g_sid, g_bar = sid[starts], bar[starts]
        groups, open_ts, close_ts = group_runs(head, starts, g_sid, g_bar, fragments)
        first = np.ones(len(starts), dtype=bool)
        np.not_equal(g_sid[1:], g_sid[:-1], out=first[1:])
        last = np.ones(len(starts), dtype=bool)
        last[:-1] = first[1:]
        state = self._state
        stored_open = first & state.is_open[g_sid]
        stored_start = state.start[g_sid]
        same = stored_open & (stored_start == g_bar)
        if same.any():
            absorb_open_bars(groups, open_ts, close_ts, state, np.flatnonzero(same))
        overtaken = state.rows(g_sid[stored_open & ~same])
        previous_start = previous_values(first, stored_start, g_bar)
        previous_close = previous_values(first, state.close[g_sid], groups.close)
        gaps = self._gap_bars(groups, previous_start, previous_close)
        state.store(groups.take(last), open_ts[last], close_ts[last])
        return [overtaken, gaps, groups.take(~last)]

    def _gap_bars(
        self, groups: BarColumns, previous_start: np.ndarray, previous_close: np.ndarray
    ) -> BarColumns | None:
        """Flat bars at the previous close for the empty intervals before each group's bar that
        the gap rule fills."""
        owner, start = fill_starts(
            previous_start, groups.start, self.interval_ms, self.max_gap_bars, self.gap_rule
        )
        total = len(owner)
        if total == 0:
            return None
        price = previous_close[owner]
        return BarColumns(
            groups.sid[owner],
            start,
            price,
            price,
            price,
            price,
            np.zeros(total),
            np.zeros(total, dtype=np.int64),
        )

    def _close_expired(self) -> BarColumns | None:
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

    def _result(
        self, parts: list[BarColumns | None], rejects: list[Reject], duplicates: int
    ) -> AggregateResult:
        """Assemble the sorted closed bars of one call."""
        present = [part for part in parts if part is not None and len(part.sid)]
        if present:
            merged = BarColumns(*(np.concatenate(columns) for columns in zip(*present, strict=True)))
            merged = merged.take(np.lexsort((merged.start, merged.sid)))
        else:
            merged = empty_bars()
        bars = ClosedBars(
            symbol_ids=merged.sid,
            symbols=self._name_array[merged.sid].tolist(),
            bar_start=merged.start,
            open=merged.open,
            high=merged.high,
            low=merged.low,
            close=merged.close,
            volume=merged.volume,
            count=merged.ticks,
        )
        return AggregateResult(bars, rejects, duplicates, self.watermark_ms)


def _require_int(name: str, value: object, *, minimum: int) -> None:
    """Raise a ValueError naming the setting when ``value`` is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
