"""Labelling: the causal rules that say which phase of a bull flag a window's last bar is in.

Labels (flag, breakout, retest, continuation) describe the window's last bar and use only bars
inside the window, measured on the final bars (after noise and missing intervals):

- flag: the pole starts inside the window; its gain is at least ``min_pole_z`` robust sigmas
  times sqrt(pole length); at least ``min_flag_bars`` flag bars are seen; the flag retraces at most
  ``max_retrace`` of the pole and rises at most ``max_flag_rise`` of it; once ``2 * min_flag_bars``
  bars are seen, the channel's second half is at least ``min_parallel`` as wide as its first (a
  converging one is a pennant). The flag's upper line has the least-squares slope of the flag's
  closes and sits on its highest high.
- breakout: a close above the upper line after the flag (the line is extended); any later close
  back at or below the extended line clears it (a later close above it is a new breakout).
- retest: after the breakout, a low within ``retest_band`` flag heights of the breakout level once
  price has been ``retest_away`` flag heights above it, then a close ``reclaim_level`` flag heights
  above the level.
- continuation: after the retest, a close above the highest high since the breakout.

Labels nest; a close below the flag's low clears every head; a pattern whose last completed phase
is more than ``freshness_bars`` old is all zeros (inside the flag it is always fresh).

Labels per kind (never continuation for a hard negative):

- bull_flag: the rules above.
- failed_breakout: the rules above capped at breakout: (1,0,0,0) in the flag, (1,1,0,0) between
  the breakout close and the collapse (those bars cannot tell it from a real breakout), (1,0,0,0)
  once a close falls back inside the flag, all zeros once one falls below the flag's low.
- random_walk, random_walk_drift, bear_flag, pennant, rising_wedge, pole_no_flag, flag_no_pole,
  v_reversal, trending_channel: all zeros.

``label_windows`` applies the rules; ``chunks`` calls it for bull_flag and failed_breakout windows
and caps the latter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bullflag_model.features import CLOSE, HIGH, LOW, OPEN
from bullflag_model.synthetic.params import DEFAULT_PARAMS, GeneratorParams

_MAD_TO_SIGMA = 1.4826
_TINY = 1e-12


def _masked_max(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row maximum of x [n, L] over mask, 0 for empty rows."""
    return np.where(mask.any(axis=1), np.max(x, axis=1, where=mask, initial=-np.inf), 0.0)


def _masked_min(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row minimum of x [n, L] over mask, 0 for empty rows."""
    return np.where(mask.any(axis=1), np.min(x, axis=1, where=mask, initial=np.inf), 0.0)


def _width(ceiling: np.ndarray, floor: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row span [n] from the lowest floor to the highest ceiling over mask, 0 for empty rows."""
    return _masked_max(ceiling, mask) - _masked_min(floor, mask)


def _first(hit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First True index per row of hit [n, L] and whether there is one."""
    return np.argmax(hit, axis=1), np.any(hit, axis=1)


def clipped_span(start: np.ndarray, stop: np.ndarray, valid: np.ndarray, length: int) -> np.ndarray:
    """[n, 2] spans clipped to [0, length), -1 where invalid or empty after clipping."""
    lo = np.clip(start, 0, length)
    hi = np.clip(stop, 0, length)
    ok = valid & (hi > lo)
    return np.where(ok[:, None], np.stack([lo, hi], axis=1), -1)


@dataclass
class _FlagFit:
    """The flag as measured on the bars, each [n]: is it one, and its upper line, height and low."""

    is_flag: np.ndarray
    slope: np.ndarray
    upper: np.ndarray
    height: np.ndarray
    low: np.ndarray


def _fit_flag(logs: np.ndarray, pole: np.ndarray, flag: np.ndarray, p: GeneratorParams) -> _FlagFit:
    """Measure pole and flag on log OHLC [n, L, 4] given their planted [start, end) [n, 2].

    The upper line has the least-squares slope of the flag's closes and rests on its highest high
    (``upper`` is its value at the flag's first bar); the height is the channel's width.
    """
    n, length, _ = logs.shape
    high, low, close = logs[..., HIGH], logs[..., LOW], logs[..., CLOSE]
    rows, t, last = np.arange(n), np.arange(length)[None, :], length - 1
    p0, p1, f0, f1 = pole[:, 0], pole[:, 1], flag[:, 0], flag[:, 1]
    seen_end = np.minimum(f1, length)
    visible = (p0 >= 0) & (p1 > p0) & (f0 >= p1) & (f0 < length)

    gain = close[rows, np.clip(p1 - 1, 0, last)] - logs[rows, np.clip(p0, 0, last), OPEN]
    mad = np.median(np.abs(np.diff(close, axis=1)), axis=1) * _MAD_TO_SIGMA
    strong = gain > p.min_pole_z * np.maximum(mad, _TINY) * np.sqrt(np.maximum(p1 - p0, 1))

    in_flag = (t >= f0[:, None]) & (t < seen_end[:, None])
    n_flag = in_flag.sum(axis=1)
    rel = np.where(in_flag, t - f0[:, None], 0.0)
    rel_mean = rel.sum(axis=1) / np.maximum(n_flag, 1)
    close_mean = np.where(in_flag, close, 0.0).sum(axis=1) / np.maximum(n_flag, 1)
    dt = np.where(in_flag, rel - rel_mean[:, None], 0.0)
    slope = (dt * (close - close_mean[:, None])).sum(axis=1) / np.maximum((dt * dt).sum(axis=1), 1)
    ceiling, floor = high - slope[:, None] * rel, low - slope[:, None] * rel
    mid = (f0 + n_flag // 2)[:, None]
    early_width = _width(ceiling, floor, in_flag & (t < mid))
    late_width = _width(ceiling, floor, in_flag & (t >= mid))
    parallel = (n_flag < 2 * p.min_flag_bars) | (late_width >= p.min_parallel * early_width)
    flag_low = _masked_min(low, in_flag)
    top = _masked_max(high, (t >= p0[:, None]) & (t < seen_end[:, None]))
    is_flag = (
        visible
        & strong
        & (n_flag >= p.min_flag_bars)
        & (top - flag_low <= p.max_retrace * gain)
        & (slope * (n_flag - 1) <= p.max_flag_rise * gain)
        & parallel
    )
    return _FlagFit(is_flag, slope, _masked_max(ceiling, in_flag), _width(ceiling, floor, in_flag), flag_low)


@dataclass
class _Events:
    """Bars [n] at which the later phases complete, and whether they have by the last bar."""

    broken_down: np.ndarray
    broken: np.ndarray
    breakout: np.ndarray
    touched: np.ndarray
    touch: np.ndarray
    reclaimed: np.ndarray
    reclaim: np.ndarray
    continued: np.ndarray
    new_high: np.ndarray


def _find_events(logs: np.ndarray, flag: np.ndarray, fit: _FlagFit, p: GeneratorParams) -> _Events:
    """Breakout, retest touch, reclaim and new high after the flag [n, 2] on log OHLC [n, L, 4].

    The breakout is the first close above the extended upper line after the last close at or
    below it; its level is the line's value at that bar. A retest is a low near the level once
    price has moved away, reclaimed by a close above it; a new high beats every high since the
    breakout up to the reclaim.
    """
    n, length, _ = logs.shape
    high, low, close = logs[..., HIGH], logs[..., LOW], logs[..., CLOSE]
    rows, t, last = np.arange(n), np.arange(length)[None, :], length - 1
    f0, f1 = flag[:, 0], flag[:, 1]
    line = fit.upper[:, None] + fit.slope[:, None] * (t - f0[:, None])
    after = t >= f1[:, None]
    broken_down = np.any(after & (close < fit.low[:, None]), axis=1)
    last_inside = np.max(np.where(after & (close <= line), t, (f1 - 1)[:, None]), axis=1)
    broken = fit.is_flag & (f1 <= last) & (last_inside < last)
    breakout = np.clip(last_inside + 1, 0, last)
    level = line[rows, breakout]

    peak_so_far = np.maximum.accumulate(np.where(t >= breakout[:, None], high, -np.inf), axis=1)
    peak_before = np.concatenate([np.full((n, 1), -np.inf), peak_so_far[:, :-1]], axis=1)
    touch, touched = _first(
        (t > breakout[:, None])
        & (low <= (level + p.retest_band * fit.height)[:, None])
        & (peak_before >= (level + p.retest_away * fit.height)[:, None])
    )
    reclaim, reclaimed = _first(
        (t > touch[:, None]) & (close >= (level + p.reclaim_level * fit.height)[:, None])
    )
    peak = peak_so_far[rows, reclaim]
    new_high, continued = _first((t > reclaim[:, None]) & (close > peak[:, None]))
    touched &= broken
    reclaimed &= touched
    continued &= reclaimed
    return _Events(broken_down, broken, breakout, touched, touch, reclaimed, reclaim, continued, new_high)


def label_windows(
    bars: np.ndarray, pole: np.ndarray, flag: np.ndarray, params: GeneratorParams = DEFAULT_PARAMS
) -> tuple[np.ndarray, np.ndarray]:
    """Causal labels and phase spans of windows with a known pole and flag (rules: module doc).

    bars [n, L, 5]; pole, flag [n, 2] planted [start, end) in window bars (may lie outside).
    Returns labels [n, 4] float32 (``HEADS``) and spans [n, 5, 2] int32 (``PHASES``).
    """
    length = bars.shape[1]
    last = length - 1
    pole, flag = pole.astype(np.int64), flag.astype(np.int64)
    logs = np.log(bars[..., :4])
    fit = _fit_flag(logs, pole, flag, params)
    ev = _find_events(logs, flag, fit, params)

    done = np.where(flag[:, 1] <= last, flag[:, 1] - 1, last)
    done = np.where(ev.broken, ev.breakout, done)
    done = np.where(ev.reclaimed, ev.reclaim, done)
    done = np.where(ev.continued, ev.new_high, done)
    alive = fit.is_flag & ~ev.broken_down & (last - done <= params.freshness_bars)
    heads = np.stack([alive, alive & ev.broken, alive & ev.reclaimed, alive & ev.continued], axis=1)

    retest_end = np.where(ev.reclaimed, ev.reclaim + 1, length)
    spans = np.stack(
        [
            clipped_span(pole[:, 0], pole[:, 1], pole[:, 1] > pole[:, 0], length),
            clipped_span(flag[:, 0], flag[:, 1], flag[:, 1] > flag[:, 0], length),
            clipped_span(ev.breakout, np.where(ev.touched, ev.touch, length), ev.broken, length),
            clipped_span(ev.touch, retest_end, ev.touched, length),
            clipped_span(
                ev.reclaim + 1,
                np.where(ev.continued, ev.new_high + 1, length),
                ev.reclaimed,
                length,
            ),
        ],
        axis=1,
    )
    return heads.astype(np.float32), spans.astype(np.int32)
