"""Event-time bar aggregation (consumer.core.bars) against a tick-by-tick reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bullflag_model.intervals import IntervalError, format_interval, parse_interval
from consumer.core.bars import NO_BAR, AggregateResult, BarAggregator
from consumer.core.record_rules import RejectReason
from consumer.core.ticks import DecodedBars, DecodedTicks
from tests.strategies import examples

Tick = tuple[str, int, float, float, object]
"""(symbol, ts, price, size, trade id or None)"""

Bar = tuple[str, int, float, float, float, float, float, int]
"""(symbol, bar_start, open, high, low, close, volume, count)"""

FAR_FUTURE_MS = 10**12
"""An event time past every bar of the test streams: advancing to it closes every open bar."""


def ticks(rows: list[Tick], first_index: int = 0) -> DecodedTicks:
    """Decoded ticks from plain rows; ``index`` continues from ``first_index``."""
    ids = [row[4] for row in rows]
    return DecodedTicks(
        symbols=[row[0] for row in rows],
        ts_ms=np.array([row[1] for row in rows], dtype=np.int64),
        price=np.array([row[2] for row in rows], dtype=np.float64),
        size=np.array([row[3] for row in rows], dtype=np.float64),
        trade_id=ids if any(x is not None for x in ids) else None,
        index=np.arange(first_index, first_index + len(rows), dtype=np.int64),
        rejects=[],
    )


def closed(result: AggregateResult) -> list[Bar]:
    bars = result.bars
    return list(
        zip(
            bars.symbols,
            bars.bar_start.tolist(),
            bars.open.tolist(),
            bars.high.tolist(),
            bars.low.tolist(),
            bars.close.tolist(),
            bars.volume.tolist(),
            bars.count.tolist(),
            strict=True,
        )
    )


def late(result: AggregateResult) -> list[int]:
    return [r.index for r in result.rejects if r.reason is RejectReason.LATE]


@dataclass
class RefBar:
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    count: int
    open_ts: int
    close_ts: int
    is_open: bool = True
    ids: set[object] = field(default_factory=set)

    def row(self, symbol: str) -> Bar:
        return (symbol, self.start, self.open, self.high, self.low, self.close, self.volume, self.count)


class Reference:
    """The documented policies applied one tick at a time with dicts (slow and obvious)."""

    def __init__(self, interval: int, lateness: int, max_gap: int) -> None:
        self.interval, self.lateness, self.max_gap = interval, lateness, max_gap
        self.latest: dict[str, RefBar] = {}
        self.max_ts: int | None = None
        self.emitted: list[Bar] = []
        self.late: list[int] = []
        self.duplicates = 0

    def advance(self, ts: int) -> None:
        self.max_ts = ts if self.max_ts is None else max(self.max_ts, ts)
        watermark = self.max_ts - self.lateness
        for symbol, bar in self.latest.items():
            if bar.is_open and bar.start + self.interval <= watermark:
                bar.is_open = False
                self.emitted.append(bar.row(symbol))

    def tick(self, index: int, symbol: str, ts: int, price: float, size: float, tid: object) -> None:
        self.advance(ts)
        assert self.max_ts is not None
        start = ts // self.interval * self.interval
        bar = self.latest.get(symbol)
        if start + self.interval <= self.max_ts - self.lateness or (bar and start < bar.start):
            self.late.append(index)
            return
        if bar and bar.is_open and bar.start == start:
            if tid is not None and tid in bar.ids:
                self.duplicates += 1
                return
            if tid is not None:
                bar.ids.add(tid)
            if ts < bar.open_ts:
                bar.open, bar.open_ts = price, ts
            if ts >= bar.close_ts:
                bar.close, bar.close_ts = price, ts
            bar.high, bar.low = max(bar.high, price), min(bar.low, price)
            bar.volume += size
            bar.count += 1
            return
        if bar:
            if bar.is_open:
                self.emitted.append(bar.row(symbol))
            gaps = min((start - bar.start) // self.interval - 1, self.max_gap)
            for back in range(gaps, 0, -1):
                flat = bar.close
                self.emitted.append((symbol, start - back * self.interval, flat, flat, flat, flat, 0.0, 0))
        ids = set() if tid is None else {tid}
        self.latest[symbol] = RefBar(start, price, price, price, price, size, 1, ts, ts, ids=ids)

    def open_bars(self) -> list[Bar]:
        return sorted(bar.row(s) for s, bar in self.latest.items() if bar.is_open)


def open_bars(aggregator: BarAggregator) -> list[Bar]:
    """The aggregator's open bars, as it closes them when event time moves far ahead."""
    return sorted(closed(aggregator.advance_watermark(FAR_FUTURE_MS)))


@st.composite
def streams(draw: st.DrawFn) -> list[Tick]:
    """Ticks of a few symbols drifting forward in time with some disorder and repeated ids."""
    n = draw(st.integers(0, 50))
    ts = draw(st.integers(0, 50))
    rows = []
    for _ in range(n):
        ts = max(0, ts + draw(st.integers(-8, 16)))
        rows.append(
            (
                draw(st.sampled_from(["A", "B", "C"])),
                ts,
                float(draw(st.integers(1, 40))),
                float(draw(st.integers(0, 9))),
                draw(st.one_of(st.none(), st.sampled_from(["x", "y", 1, 2]))),
            )
        )
    return rows


@st.composite
def batches(draw: st.DrawFn, rows: list[Tick]) -> list[tuple[int, int, int | None]]:
    """Cut a stream into batches: (start, stop, watermark advance after it or None)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=6)))
    bounds = [0, *cuts, len(rows)]
    advances = st.one_of(st.none(), st.integers(0, 400))
    return [(a, b, draw(advances)) for a, b in pairwise(bounds)]


@settings(max_examples=examples(200), deadline=None)
@given(
    rows=streams(),
    interval=st.sampled_from([1, 7, 10]),
    lateness=st.sampled_from([0, 3, 15, 40]),
    max_gap=st.sampled_from([0, 2, 200]),
    data=st.data(),
)
def test_matches_tick_by_tick_reference_in_any_batch_split(
    rows: list[Tick], interval: int, lateness: int, max_gap: int, data: st.DataObject
) -> None:
    reference = Reference(interval, lateness, max_gap)
    aggregator = BarAggregator(interval, lateness, max_gap_bars=max_gap)
    emitted: list[Bar] = []
    rejected: list[int] = []
    duplicates = 0
    for start, stop, advance in data.draw(batches(rows)):
        for i in range(start, stop):
            reference.tick(i, *rows[i])
        result = aggregator.add(ticks(rows[start:stop], start))
        results = [result]
        if advance is not None:
            reference.advance(advance)
            results.append(aggregator.advance_watermark(advance))
        for part in results:
            order = list(zip(part.bars.symbol_ids.tolist(), part.bars.bar_start.tolist(), strict=True))
            assert order == sorted(order)
            emitted += closed(part)
            rejected += late(part)
            duplicates += part.duplicates
        watermark = None if reference.max_ts is None else reference.max_ts - lateness
        assert results[-1].watermark_ms == watermark
    assert sorted(emitted) == sorted(reference.emitted)
    assert sorted(rejected) == reference.late
    assert duplicates == reference.duplicates
    assert open_bars(aggregator) == reference.open_bars()
    for symbol in "ABC":
        starts = [b[1] for b in emitted if b[0] == symbol]
        assert starts == sorted(set(starts)), "a symbol's bars are emitted once, in order"


def test_ohlcv_in_event_time_order() -> None:
    aggregator = BarAggregator(60_000, allowed_lateness_ms=10_000)
    t = 1_732_550_400_000
    first = aggregator.add(ticks([("A", t + 500, 10.0, 1, None), ("A", t + 100, 9.0, 2, None)]))
    assert len(first.bars) == 0
    aggregator.add(ticks([("A", t + 900, 12.0, 3, None), ("A", t + 900, 11.0, 4, None)], 2))
    result = aggregator.add(ticks([("A", t + 60_000, 20.0, 1, None)], 4))
    assert closed(result) == [("A", t, 9.0, 12.0, 9.0, 11.0, 10.0, 4)]


def test_quiet_symbols_close_by_watermark_without_gap_bars() -> None:
    aggregator = BarAggregator(10, allowed_lateness_ms=0)
    aggregator.add(ticks([("A", 1, 5.0, 1, None), ("B", 2, 7.0, 1, None)]))
    result = aggregator.add(ticks([("A", 45, 6.0, 1, None)], 2))
    assert closed(result) == [
        ("A", 0, 5.0, 5.0, 5.0, 5.0, 1.0, 1),
        ("A", 10, 5.0, 5.0, 5.0, 5.0, 0.0, 0),
        ("A", 20, 5.0, 5.0, 5.0, 5.0, 0.0, 0),
        ("A", 30, 5.0, 5.0, 5.0, 5.0, 0.0, 0),
        ("B", 0, 7.0, 7.0, 7.0, 7.0, 1.0, 1),
    ]
    assert closed(aggregator.advance_watermark(100)) == [("A", 40, 6.0, 6.0, 6.0, 6.0, 1.0, 1)]
    result = aggregator.add(ticks([("B", 105, 8.0, 1, None)], 3))
    assert [b[1] for b in closed(result)] == list(range(10, 100, 10))


def test_bar_closes_when_the_watermark_reaches_its_end() -> None:
    aggregator = BarAggregator(10, allowed_lateness_ms=3)
    aggregator.add(ticks([("A", 5, 1.0, 1, None)]))
    assert len(aggregator.add(ticks([("B", 12, 1.0, 1, None)], 1)).bars) == 0
    assert closed(aggregator.add(ticks([("B", 13, 1.0, 1, None)], 2))) == [
        ("A", 0, 1.0, 1.0, 1.0, 1.0, 1.0, 1)
    ]
    assert late(aggregator.add(ticks([("A", 9, 1.0, 1, None)], 3))) == [3]


def test_gap_filling_is_capped() -> None:
    aggregator = BarAggregator(10, max_gap_bars=3)
    aggregator.add(ticks([("A", 0, 5.0, 1, None)]))
    result = aggregator.add(ticks([("A", 1_000, 6.0, 1, None)], 1))
    assert [b[1] for b in closed(result)] == [0, 970, 980, 990]


def test_late_ticks_within_lateness_update_open_bars() -> None:
    aggregator = BarAggregator(10, allowed_lateness_ms=20)
    aggregator.add(ticks([("A", 5, 5.0, 1, None), ("B", 29, 1.0, 1, None)]))
    result = aggregator.add(ticks([("A", 8, 9.0, 1, None), ("B", 31, 1.0, 1, None)], 2))
    assert late(result) == []
    assert closed(result) == [
        ("A", 0, 5.0, 9.0, 5.0, 9.0, 2.0, 2),
        ("B", 20, 1.0, 1.0, 1.0, 1.0, 1.0, 1),
    ]
    result = aggregator.add(ticks([("A", 3, 1.0, 1, None), ("B", 25, 2.0, 1, None)], 4))
    assert late(result) == [4, 5]
    assert "watermark 11" in result.rejects[0].detail
    assert result.rejects[1].detail.endswith(" is older than the symbol's latest bar")


def test_duplicate_ids_are_dropped_per_open_bar() -> None:
    aggregator = BarAggregator(10, allowed_lateness_ms=5)
    result = aggregator.add(ticks([("A", 1, 5.0, 1, "t1"), ("A", 2, 6.0, 1, "t1"), ("B", 2, 6.0, 1, "t1")]))
    assert result.duplicates == 1
    result = aggregator.add(ticks([("A", 3, 7.0, 1, "t1"), ("A", 12, 7.0, 1, "t1")], 3))
    assert result.duplicates == 1
    assert closed(result) == [("A", 0, 5.0, 5.0, 5.0, 5.0, 1.0, 1)]


def test_ts_ties_across_batches_keep_arrival_order() -> None:
    aggregator = BarAggregator(10, allowed_lateness_ms=5)
    aggregator.add(ticks([("A", 5, 1.0, 1, None), ("A", 6, 3.0, 1, None)]))
    aggregator.add(ticks([("A", 5, 2.0, 1, None), ("A", 6, 4.0, 1, None)], 2))
    result = aggregator.advance_watermark(100)
    assert closed(result) == [("A", 0, 1.0, 4.0, 1.0, 4.0, 4.0, 4)]


def test_ids_are_forgotten_once_the_watermark_closes_their_bars() -> None:
    aggregator = BarAggregator(10, allowed_lateness_ms=5)
    aggregator.add(ticks([("A", 1, 5.0, 1, "t1"), ("B", 2, 6.0, 1, "t2"), ("A", 12, 6.0, 1, "t3")]))
    assert aggregator.remembered_ids == 3
    aggregator.add(ticks([("A", 16, 5.0, 1, "t4")], 3))
    assert aggregator.remembered_ids == 2
    aggregator.advance_watermark(30)
    assert aggregator.remembered_ids == 0


def test_symbol_ids_and_open_bars_cover_exactly_the_known_symbols() -> None:
    aggregator = BarAggregator(10, 100)
    aggregator.add(ticks([("A", 1, 1.0, 1, None), ("B", 25, 1.0, 1, None)]))
    assert aggregator.ids_of(["B", "nope", "A"]).tolist() == [1, -1, 0]
    assert aggregator.open_starts().tolist() == [0, 20]


def test_max_symbols_rejects_new_symbols() -> None:
    aggregator = BarAggregator(10, max_symbols=2)
    result = aggregator.add(ticks([("A", 1, 1.0, 1, None), ("B", 1, 1.0, 1, None), ("C", 1, 1.0, 1, None)]))
    assert [(r.index, r.reason) for r in result.rejects] == [(2, RejectReason.MAX_SYMBOLS)]
    assert result.rejects[0].detail == "symbol 'C' is new and the partition already tracks max_symbols=2"
    assert aggregator.symbols == ["A", "B"]


def test_bar_input_resamples_and_drops_resent_bars() -> None:
    minute = 60_000
    decoded = DecodedBars(
        symbols=["A", "A", "A", "A", "A"],
        ts_ms=np.array([0, minute, minute, 4 * minute, 5 * minute], dtype=np.int64),
        open=np.array([10.0, 11.0, 11.0, 12.0, 13.0]),
        high=np.array([12.0, 15.0, 15.0, 13.0, 14.0]),
        low=np.array([9.0, 10.0, 10.0, 8.0, 12.0]),
        close=np.array([11.0, 12.0, 12.0, 12.5, 13.5]),
        volume=np.array([100.0, 50.0, 50.0, 25.0, 10.0]),
        index=np.arange(5, dtype=np.int64),
        rejects=[],
    )
    result = BarAggregator(5 * minute).add_bars(decoded)
    assert result.duplicates == 1
    assert closed(result) == [("A", 0, 10.0, 15.0, 8.0, 12.5, 175.0, 3)]


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="interval_ms"):
        BarAggregator(0)
    with pytest.raises(ValueError, match="allowed_lateness_ms"):
        BarAggregator(10, -1)


def test_interval_strings() -> None:
    assert [parse_interval(x) for x in ("1s", "1m", "5m", "1h", "1d", "250ms")] == [
        1_000,
        60_000,
        300_000,
        3_600_000,
        86_400_000,
        250,
    ]
    assert [format_interval(x) for x in (1_000, 300_000, 86_400_000, 90_000, 250)] == [
        "1s",
        "5m",
        "1d",
        "90s",
        "250ms",
    ]
    for bad in ("", "0m", "5", "1w", "-1s", "1.5m"):
        with pytest.raises(IntervalError, match="interval"):
            parse_interval(bad)


def test_open_bars_survive_the_symbol_table_growing() -> None:
    # More symbols than the initial table holds: it grows while bars are open in it.
    names = [f"S{i:04d}" for i in range(2_500)]
    aggregator = BarAggregator(1_000, 0)
    first = aggregator.add(ticks([(name, 1_500, 10.0 + i, 1.0, None) for i, name in enumerate(names)]))
    second = aggregator.add(ticks([(name, 1_700, 5.0, 2.0, None) for name in reversed(names)]))
    assert closed(first) == [] and closed(second) == []
    final = aggregator.add(ticks([(names[0], 2_000, 7.0, 1.0, None)]))
    bars = sorted(closed(final))
    assert len(bars) == len(names)
    assert bars[0] == (names[0], 1_000, 10.0, 10.0, 5.0, 5.0, 3.0, 2)
    assert bars[-1] == (names[-1], 1_000, 2_509.0, 2_509.0, 5.0, 5.0, 3.0, 2)


def test_a_seeded_symbol_resumes_after_its_last_bar_with_flat_gap_bars() -> None:
    aggregator = BarAggregator(1_000, 0)
    aggregator.seed(["A"], np.array([1_000], dtype=np.int64), np.array([5.0]))
    assert closed(aggregator.add(ticks([("A", 4_200, 6.0, 2.0, None)]))) == [
        ("A", 2_000, 5.0, 5.0, 5.0, 5.0, 0.0, 0),
        ("A", 3_000, 5.0, 5.0, 5.0, 5.0, 0.0, 0),
    ]
    assert closed(aggregator.advance_watermark(FAR_FUTURE_MS)) == [("A", 4_000, 6.0, 6.0, 6.0, 6.0, 2.0, 1)]
    assert late(aggregator.add(ticks([("A", 1_500, 1.0, 1.0, None)]))) == [0], "the seeded bar is closed"


def test_the_watermark_takes_any_event_time_above_no_bar() -> None:
    aggregator = BarAggregator(1_000, 0)
    with pytest.raises(
        ValueError, match=rf"^event_time_ms must be an integer >= {NO_BAR + 1}, got {NO_BAR}$"
    ):
        aggregator.advance_watermark(NO_BAR)
    assert aggregator.advance_watermark(NO_BAR + 1).watermark_ms == NO_BAR + 1


def test_seeding_more_symbols_than_max_symbols_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^cannot seed 2 symbols beyond max_symbols=1$"):
        BarAggregator(1_000, 0, max_symbols=1).seed(["A", "B"], np.array([0, 0]), np.array([1.0, 1.0]))


def test_refused_and_late_ticks_of_one_batch_are_all_rejected() -> None:
    aggregator = BarAggregator(1_000, 0, max_symbols=1)
    aggregator.add(ticks([("A", 5_000, 1.0, 1.0, None), ("A", 6_100, 1.0, 1.0, None)]))
    result = aggregator.add(ticks([("B", 6_200, 1.0, 1.0, None), ("A", 5_500, 1.0, 1.0, None)]))
    assert sorted((r.index, r.reason) for r in result.rejects) == [
        (0, RejectReason.MAX_SYMBOLS),
        (1, RejectReason.LATE),
    ]
