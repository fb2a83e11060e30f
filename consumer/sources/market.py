"""The generated market: symbols whose series chain the model's generated 200-bar windows.

There is no labelled market data to ship, so ``bullflag replay --generate``, the demo and the
tests replay this deterministic market instead; it records which windows (bull flags at every
phase, random walks, look-alikes) it was built from, so signals can be checked against them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from bullflag_model.features import CLOSE, OPEN, SEQ_LEN, VOLUME
from bullflag_model.synthetic import HEADS, KINDS, GeneratorParams, generate_windows
from consumer.sources.tables import BarTable

__all__ = ["DEFAULT_START_MS", "PlantedWindow", "SyntheticMarket", "synthetic_market"]

DEFAULT_START_MS: Final = 1_732_550_400_000
"""First bar of a generated market: 2024-11-25T16:00:00Z."""

_MARKET_STREAM: Final = 0x6D6B74
_MAD_TO_SIGMA: Final = 1.4826
_MARKET_PRICE_RANGE: Final = (5.0, 500.0)
_MARKET_SIGMA_RANGE: Final = (0.0015, 0.006)
_MARKET_VOLUME_RANGE: Final = (1e3, 1e5)


@dataclass(frozen=True, slots=True)
class PlantedWindow:
    """One generated window inside a market series: bars ``[first_bar, last_bar]`` of ``symbol``.

    ``kind`` is the generator's window kind; ``heads`` names the labels that hold at ``last_bar``
    (e.g. ``("flag", "breakout")``), judged on the 200 bars ending there.
    """

    symbol: str
    kind: str
    first_bar: int
    last_bar: int
    heads: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SyntheticMarket:
    """A generated market: ``bars`` float64[N, B, 5] of ``symbols`` at the common bar starts
    ``ts_ms`` int64[B], and the windows it was built from (``windows``)."""

    symbols: tuple[str, ...]
    ts_ms: np.ndarray
    bars: np.ndarray
    interval_ms: int
    windows: tuple[PlantedWindow, ...]

    def table(self) -> BarTable:
        """All bars as one table in event-time order (symbols in order within a bar start)."""
        n, b, _ = self.bars.shape
        return BarTable(
            symbols=np.tile(np.asarray(self.symbols, dtype=str), b),
            ts_ms=np.repeat(self.ts_ms, n),
            ohlcv=self.bars.transpose(1, 0, 2).reshape(n * b, 5),
        )


def synthetic_market(
    symbols: int,
    bars: int,
    seed: int,
    interval_ms: int = 60_000,
    start_ms: int = DEFAULT_START_MS,
    flag_fraction: float = 0.3,
) -> SyntheticMarket:
    """A deterministic market of ``symbols`` series of ``bars`` contiguous bars each.

    Each series chains generated 200-bar windows (``flag_fraction`` of them bull flags at every
    phase, the rest random walks and look-alike patterns), each window's log prices shifted to
    start at the previous close and scaled to the symbol's volatility, its volume scaled to the
    symbol's level and rounded to whole shares. The series ends on a window boundary, so the
    windows listed in ``windows`` align with the model's 200-bar view at their last bar.
    """
    if symbols < 1 or bars < 1 or interval_ms < 1 or not 0.0 <= flag_fraction <= 1.0:
        raise ValueError(
            f"need symbols >= 1, bars >= 1, interval_ms >= 1 and flag_fraction in [0, 1]; got "
            f"{symbols}, {bars}, {interval_ms}, {flag_fraction}."
        )
    per_symbol = math.ceil(bars / SEQ_LEN)
    params = GeneratorParams(positive_fraction=flag_fraction, gap_probability=0.0)
    batch = generate_windows(symbols * per_symbol, seed=seed, params=params)
    windows = batch.bars.reshape(symbols, per_symbol, SEQ_LEN, 5)
    rng = np.random.default_rng([seed, _MARKET_STREAM])
    level = np.log(_log_uniform(rng, _MARKET_PRICE_RANGE, symbols))
    sigma = _log_uniform(rng, _MARKET_SIGMA_RANGE, symbols)
    base_volume = _log_uniform(rng, _MARKET_VOLUME_RANGE, symbols)

    logs = np.log(windows[..., :4])
    rel = logs - logs[..., :1, OPEN : OPEN + 1]
    step = np.abs(np.diff(logs[..., CLOSE], axis=-1))
    window_sigma = np.maximum(np.median(step, axis=-1) * _MAD_TO_SIGMA, 1e-12)
    rel *= (sigma[:, None] / window_sigma)[..., None, None]
    carried = np.cumsum(rel[..., -1, CLOSE], axis=1) - rel[..., -1, CLOSE]
    prices = np.exp(level[:, None, None, None] + carried[..., None, None] + rel)
    volume = windows[..., VOLUME]
    median_volume = np.median(np.where(volume > 0, volume, np.nan), axis=-1)
    scale = base_volume[:, None] / np.where(np.isfinite(median_volume), median_volume, 1.0)
    volume = np.rint(volume * scale[..., None])

    series = np.concatenate([prices, volume[..., None]], axis=-1).reshape(symbols, per_symbol * SEQ_LEN, 5)
    skipped = per_symbol * SEQ_LEN - bars
    names = tuple(f"SYN{i:0{max(3, len(str(symbols - 1)))}d}" for i in range(symbols))
    return SyntheticMarket(
        symbols=names,
        ts_ms=start_ms + np.arange(bars, dtype=np.int64) * interval_ms,
        bars=np.ascontiguousarray(series[:, skipped:]),
        interval_ms=interval_ms,
        windows=_planted(names, batch.kind, batch.labels, per_symbol, skipped),
    )


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    """[n] floats log-uniform in ``bounds``."""
    return np.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]), n))


def _planted(
    names: tuple[str, ...], kind: np.ndarray, labels: np.ndarray, per_symbol: int, skipped: int
) -> tuple[PlantedWindow, ...]:
    """The windows whose last bar survives the slice to the requested length."""
    out = []
    for index, (k, row) in enumerate(zip(kind.tolist(), labels.tolist(), strict=True)):
        symbol, position = divmod(index, per_symbol)
        last = (position + 1) * SEQ_LEN - 1 - skipped
        if last < 0:
            continue
        heads = tuple(head for head, value in zip(HEADS, row, strict=True) if value)
        out.append(PlantedWindow(names[symbol], KINDS[k], max(last - SEQ_LEN + 1, 0), last, heads))
    return tuple(out)
