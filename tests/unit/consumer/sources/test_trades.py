"""Tick simulation: every bar's path keeps its open, high, low, close and volume, deterministically."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.sources.market import synthetic_market
from consumer.sources.tables import BarTable
from consumer.sources.trades import bars_to_ticks, bars_to_trades

T0 = 1_732_550_400_000
MINUTE = 60_000


@st.composite
def ohlcv_bars(draw: st.DrawFn) -> np.ndarray:
    """Bars [n, 5] with consistent OHLC, whole or fractional (or zero) volumes, flat bars included."""
    n = draw(st.integers(1, 12))
    rows = []
    for _ in range(n):
        open_ = draw(st.floats(1e-3, 1e5))
        close = draw(st.one_of(st.just(open_), st.floats(1e-3, 1e5)))
        high = max(open_, close) * (1 + draw(st.floats(0.0, 0.1)))
        low = min(open_, close) * (1 - draw(st.floats(0.0, 0.1)))
        volume = draw(
            st.one_of(
                st.just(0.0),
                st.integers(0, 10**9).map(float),
                st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False),
            )
        )
        rows.append([open_, high, low, close, volume])
    return np.asarray(rows)


def bar_starts(n: int, interval_ms: int) -> np.ndarray:
    """Contiguous bar starts from T0."""
    return T0 + np.arange(n, dtype=np.int64) * interval_ms


@settings(max_examples=150, deadline=None)
@given(
    bars=ohlcv_bars(),
    interval_ms=st.sampled_from([1, 2, 3, 4, 7, 1_000, MINUTE, 86_400_000]),
    seed=st.integers(0, 2**32 - 1),
    intermediate=st.tuples(st.integers(0, 4), st.integers(0, 6)).map(lambda t: (t[0], t[0] + t[1])),
)
def test_bars_to_ticks_keeps_every_bar_intact(
    bars: np.ndarray, interval_ms: int, seed: int, intermediate: tuple[int, int]
) -> None:
    starts = bar_starts(len(bars), interval_ms)
    ticks = bars_to_ticks(bars, starts, "AAPL", seed, interval_ms=interval_ms, intermediate=intermediate)

    assert np.array_equal(np.unique(ticks.bar), np.arange(len(bars)))
    assert np.all(np.diff(ticks.bar) >= 0)
    for i, (open_, high, low, close, volume) in enumerate(bars):
        mine = ticks.bar == i
        ts, price, size = ticks.ts_ms[mine], ticks.price[mine], ticks.size[mine]
        assert 4 <= len(ts) <= 4 + intermediate[1]
        assert price[0] == open_ and price[-1] == close
        assert high in price[1:-1] and low in price[1:-1]
        assert np.all((price >= low) & (price <= high))
        assert np.all((ts >= starts[i]) & (ts < starts[i] + interval_ms))
        assert np.all(np.diff(ts) >= 0)
        if interval_ms >= len(ts):
            assert np.all(np.diff(ts) > 0)
        assert np.all(size >= 0)
        assert size.sum() == pytest.approx(volume, rel=1e-9, abs=1e-9)
        if volume == int(volume):
            assert np.array_equal(size, np.round(size)) and size.sum() == volume
            if volume >= len(ts):
                assert np.all(size >= 1)


def test_bars_to_ticks_is_deterministic_per_seed_and_symbol() -> None:
    bars = synthetic_market(1, 50, seed=3).bars[0]
    starts = bar_starts(50, MINUTE)

    def draw(symbol: str, seed: int) -> tuple[np.ndarray, ...]:
        ticks = bars_to_ticks(bars, starts, symbol, seed, interval_ms=MINUTE)
        return ticks.ts_ms, ticks.price, ticks.size

    first, again = draw("AAPL", 1), draw("AAPL", 1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    for other in (draw("AAPL", 2), draw("MSFT", 1)):
        assert not np.array_equal(first[0], other[0]) or not np.array_equal(first[1], other[1])


def test_high_and_low_come_in_both_orders() -> None:
    bars = np.tile([10.0, 12.0, 8.0, 11.0, 1000.0], (200, 1))
    ticks = bars_to_ticks(bars, bar_starts(200, MINUTE), "X", 0, interval_ms=MINUTE, intermediate=(0, 0))
    path = ticks.price.reshape(200, 4)
    high_first = path[:, 1] == 12.0
    assert 40 < high_first.sum() < 160
    assert np.all(path[high_first, 2] == 8.0) and np.all(path[~high_first, 1] == 8.0)


def test_bars_to_ticks_rejects_unusable_arguments() -> None:
    bars = np.array([[1.0, 1.0, 1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="one start per bar"):
        bars_to_ticks(bars, np.array([T0, T0]), "X", 0, interval_ms=MINUTE)
    with pytest.raises(ValueError, match="interval_ms >= 1"):
        bars_to_ticks(bars, np.array([T0]), "X", 0, interval_ms=0)
    with pytest.raises(ValueError, match="seed >= 0"):
        bars_to_ticks(bars, np.array([T0]), "X", -1, interval_ms=MINUTE)


def test_bars_to_trades_merges_symbols_in_event_time_and_keeps_each_path() -> None:
    market = synthetic_market(3, 120, seed=5)
    trades = bars_to_trades(market.table(), 9, interval_ms=MINUTE)

    assert np.all(np.diff(trades.ts_ms) >= 0)
    for index, symbol in enumerate(market.symbols):
        alone = bars_to_ticks(market.bars[index], market.ts_ms, symbol, 9, interval_ms=MINUTE)
        mine = trades.symbols == symbol
        assert np.array_equal(trades.ts_ms[mine], alone.ts_ms)
        assert np.array_equal(trades.price[mine], alone.price)
        assert np.array_equal(trades.size[mine], alone.size)
    empty = BarTable(np.array([], dtype=str), np.zeros(0, np.int64), np.zeros((0, 5)))
    assert len(bars_to_trades(empty, 9, interval_ms=MINUTE)) == 0
