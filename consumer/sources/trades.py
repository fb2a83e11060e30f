"""Tick simulation: a seeded, plausible trade path inside each OHLCV bar.

``bullflag replay`` and the demo send trades, but market data often comes as bars; these pure
functions draw trades that rebuild each bar exactly (open, high, low, close, volume).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

import numpy as np

from consumer.sources.tables import BarTable, TradeTable

__all__ = ["DEFAULT_INTERMEDIATE_TICKS", "Ticks", "bars_to_ticks", "bars_to_trades"]

DEFAULT_INTERMEDIATE_TICKS: Final = (1, 6)
"""Inclusive range of ticks per bar besides open, high, low and close."""

_NOISE_FRACTION: Final = 0.25
_EXACT_INTEGER_LIMIT: Final = 2.0**53


@dataclass(frozen=True, slots=True)
class Ticks:
    """The ticks of one symbol's bars, in bar order: ``ts_ms`` int64[m], ``price`` and ``size``
    float64[m], ``bar`` int64[m] (index of the bar each tick was drawn for)."""

    ts_ms: np.ndarray
    price: np.ndarray
    size: np.ndarray
    bar: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ms)


def bars_to_ticks(
    bars: np.ndarray,
    ts_ms: np.ndarray,
    symbol: str,
    seed: int,
    *,
    interval_ms: int,
    intermediate: tuple[int, int] = DEFAULT_INTERMEDIATE_TICKS,
) -> Ticks:
    """A plausible trade path inside each OHLCV bar [n, 5] starting at ``ts_ms`` [n].

    Per bar: the open trades first and the close last; the high and the low are both touched, at
    two distinct inner ticks whose order is a coin flip; ``intermediate`` (inclusive range) more
    ticks follow the straight path between those anchors plus noise, kept within [low, high].
    Timestamps are non-decreasing in ``[ts, ts + interval_ms)``, strictly increasing when the bar
    has at least as many milliseconds as ticks (fewer ticks are drawn for shorter bars, at least
    4). Sizes sum to the bar's volume: whole volumes split into whole sizes (each at least 1 when
    the volume allows), fractional ones into fractions. Deterministic from (seed, symbol, inputs).
    """
    bars = np.asarray(bars, dtype=np.float64).reshape(-1, 5)
    starts = np.asarray(ts_ms, dtype=np.int64).reshape(-1)
    lo, hi = intermediate
    if len(starts) != len(bars):
        raise ValueError(f"bars has {len(bars)} rows but ts_ms has {len(starts)}; give one start per bar.")
    if interval_ms < 1 or not 0 <= lo <= hi or seed < 0:
        raise ValueError(
            f"need interval_ms >= 1, 0 <= intermediate[0] <= intermediate[1] and seed >= 0; "
            f"got {interval_ms}, {intermediate}, {seed}."
        )
    n = len(bars)
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(symbol.encode())]))
    count = np.minimum(4 + rng.integers(lo, hi + 1, n), max(4, interval_ms))
    width = int(count.max(initial=4))
    j = np.arange(width)[None, :]
    valid = j < count[:, None]
    last = count - 1
    first_extreme = rng.integers(1, last)
    other = rng.integers(1, last - 1)
    other = other + (other >= first_extreme)
    first, second = np.minimum(first_extreme, other), np.maximum(first_extreme, other)
    open_, high, low, close, volume = bars.T
    high_first = rng.random(n) < 0.5
    p_first = np.where(high_first, high, low)
    p_second = np.where(high_first, low, high)
    price = _inner_path(rng, j, (first, second, last), (open_, p_first, p_second, close), (low, high))
    bounds = (np.arange(width + 1)[None, :] * interval_ms) // count[:, None]
    span = np.maximum(np.diff(bounds, axis=1), 1)
    offset = bounds[:, :-1] + np.floor(rng.random((n, width)) * span).astype(np.int64)
    size = _split_volume(rng, volume, count, width)
    return Ticks(
        ts_ms=(starts[:, None] + offset)[valid],
        price=price[valid],
        size=size[valid],
        bar=np.repeat(np.arange(n, dtype=np.int64), count),
    )


def _inner_path(
    rng: np.random.Generator,
    j: np.ndarray,
    anchors: tuple[np.ndarray, np.ndarray, np.ndarray],
    prices: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Prices [n, width]: anchors exact at 0, ``first``, ``second``, ``last``; noisy lines between.

    The noise is normal with sd ``_NOISE_FRACTION`` of the bar's range, clipped into [low, high].
    """
    first, second, last = (a[:, None] for a in anchors)
    p0, p1, p2, p3 = (p[:, None] for p in prices)
    low, high = (b[:, None] for b in bounds)
    x0 = np.where(j <= first, 0, np.where(j <= second, first, second))
    x1 = np.where(j <= first, first, np.where(j <= second, second, last))
    y0 = np.where(j <= first, p0, np.where(j <= second, p1, p2))
    y1 = np.where(j <= first, p1, np.where(j <= second, p2, p3))
    line = y0 + (y1 - y0) * (j - x0) / np.maximum(x1 - x0, 1)
    noisy = np.clip(line + rng.normal(0.0, _NOISE_FRACTION, line.shape) * (high - low), low, high)
    return np.select([j == 0, j == first, j == second, j == last], [p0, p1, p2, p3], noisy)


def _split_volume(rng: np.random.Generator, volume: np.ndarray, count: np.ndarray, width: int) -> np.ndarray:
    """Sizes [n, width] summing per bar to ``volume`` over its first ``count`` ticks, 0 beyond.

    Weights are Dirichlet(1). Whole volumes (below 2**53) are split by a multinomial draw after
    one unit per tick when the volume covers it; others as weighted fractions, the last tick
    taking the remainder.
    """
    n = len(volume)
    size = np.zeros((n, width))
    whole = (volume == np.floor(volume)) & (volume < _EXACT_INTEGER_LIMIT)
    for k in np.unique(count).tolist():
        rows = np.flatnonzero(count == k)
        weights = rng.exponential(1.0, (len(rows), k)) + 1e-12
        weights /= weights.sum(axis=1, keepdims=True)
        v = volume[rows]
        floor = np.where(whole[rows] & (v >= k), 1, 0)
        rest = np.where(whole[rows], v - floor * k, 0).astype(np.int64)
        units = rng.multinomial(rest, weights) + floor[:, None]
        parts = weights * v[:, None]
        parts[:, -1] = np.maximum(v - parts[:, :-1].sum(axis=1), 0.0)
        size[rows, :k] = np.where(whole[rows, None], units, parts)
    return size


def bars_to_trades(
    table: BarTable,
    seed: int,
    *,
    interval_ms: int,
    intermediate: tuple[int, int] = DEFAULT_INTERMEDIATE_TICKS,
) -> TradeTable:
    """:func:`bars_to_ticks` for every symbol of ``table``, merged into one event-time order.

    A symbol's ticks depend only on its own bars and the seed; equal times keep the symbols'
    sorted order and each bar's tick order.
    """
    names, inverse = np.unique(table.symbols, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.searchsorted(inverse[order], np.arange(1, len(names)))) if len(names) else []
    parts = [
        bars_to_ticks(
            table.ohlcv[rows],
            table.ts_ms[rows],
            name,
            seed,
            interval_ms=interval_ms,
            intermediate=intermediate,
        )
        for name, rows in zip(names.tolist(), groups, strict=True)
    ]
    owners = np.repeat(np.arange(len(names)), [len(ticks) for ticks in parts])
    ts = np.concatenate([np.zeros(0, np.int64), *(t.ts_ms for t in parts)])
    merged = np.argsort(ts, kind="stable")
    return TradeTable(
        symbols=names[owners[merged]],
        ts_ms=ts[merged],
        price=np.concatenate([np.zeros(0), *(t.price for t in parts)])[merged],
        size=np.concatenate([np.zeros(0), *(t.size for t in parts)])[merged],
    )
