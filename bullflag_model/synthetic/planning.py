"""Planning: what each window will contain, as a segment table (``segments``) per chunk.

Each kind has a planner that draws its pattern's legs (sizes in units of the window's base per-bar
volatility, lengths in bars) and the bar, counted from the pattern's start, at which the window
ends; ``plan_chunk`` plans a chunk of windows of mixed kinds and places two background regimes
before each pattern and a tail regime after it. Hard negatives' shapes are fixed here; the bull
flag's come from ``GeneratorParams``. Nothing here draws noise: ``rendering`` turns plans into bars.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bullflag_model.synthetic.draws import integers, offsets_in, uniform
from bullflag_model.synthetic.params import KINDS, GeneratorParams, PhaseStyle
from bullflag_model.synthetic.segments import N_SLOTS, PATTERN_SLOTS, POST_SLOT, blank_segments

_COLLAPSE_STYLE = PhaseStyle(
    noise=(1.0, 1.4), power=(0.6, 1.3), volume_start=(0.8, 1.6), volume_end=(0.2, 1.0)
)


@dataclass
class Plan:
    """Segments of one kind's windows ([m, slots] per field, sizes in sigma) and their layout.

    end_offset [m]: the window's last bar counted from the first pattern bar.
    """

    seg: dict[str, np.ndarray]
    end_offset: np.ndarray
    has_pole: np.ndarray
    has_flag: np.ndarray


def _pick_stage(
    rng: np.random.Generator,
    bounds: list[tuple[np.ndarray, np.ndarray]],
    weights: tuple[float, ...],
) -> np.ndarray:
    """[m] window-end offsets: a stage drawn by weight per row, then a bar uniform in its bounds."""
    lo = np.stack([b[0] for b in bounds], axis=1)
    hi = np.stack([b[1] for b in bounds], axis=1)
    w = np.asarray(weights, dtype=np.float64)
    stage = rng.choice(len(bounds), size=lo.shape[0], p=w / w.sum())
    rows = np.arange(lo.shape[0])
    return offsets_in(rng, lo[rows, stage], hi[rows, stage])


def _styled(rng: np.random.Generator, style: PhaseStyle, m: int) -> dict[str, np.ndarray]:
    """[m] texture fields of one phase drawn from its style, keyed as in the segment table."""
    return {
        "noise": uniform(rng, style.noise, m),
        "revert": uniform(rng, style.revert, m),
        "power": uniform(rng, style.power, m),
        "vol_start": uniform(rng, style.volume_start, m),
        "vol_end": uniform(rng, style.volume_end, m),
    }


def _set(seg: dict[str, np.ndarray], slot: int, **fields: np.ndarray | float) -> None:
    """Write the given fields of one slot of a segment table."""
    for name, value in fields.items():
        seg[name][:, slot] = value


@dataclass
class _Flag:
    """A planted pole-and-flag (sigma units) with the cumulative ends of slots 2.. ([m, k])."""

    seg: dict[str, np.ndarray]
    pole_gain: np.ndarray
    height: np.ndarray
    extension: np.ndarray
    ends: np.ndarray


def _pole_and_flag(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Flag:
    """Pole (slot 2), flag channel (3) and breakout (4) of a bull flag, in sigma units.

    The flag starts on its upper line at the pole's top and oscillates down to ``height`` below
    it while the line drifts down by the retrace; the breakout ends ``extension`` above the line.
    """
    seg = blank_segments(m)
    pole_len = integers(rng, p.pole_length_range, m)
    gain = uniform(rng, p.pole_strength_range, m) * np.sqrt(pole_len)
    _set(seg, 2, length=pole_len, move=gain, **_styled(rng, p.pole_style, m))
    flag_len = np.maximum(integers(rng, p.flag_length_range, m, p.flag_length_scale), 3.0)
    height = uniform(rng, p.flag_height_range, m) * gain
    cycles = np.minimum(uniform(rng, p.flag_cycles_range, m), flag_len / 4.0)
    _set(
        seg,
        3,
        length=flag_len,
        move=-uniform(rng, p.flag_retrace_range, m) * gain,
        amp=height / 2.0,
        cycles=cycles,
        **_styled(rng, p.flag_style, m),
    )
    below_line = height / 2.0 * (1.0 - np.cos(2.0 * np.pi * cycles))
    extension = uniform(rng, p.breakout_extension_range, m) * height + uniform(
        rng, p.breakout_margin_range, m
    )
    _set(
        seg,
        4,
        length=integers(rng, p.breakout_length_range, m),
        move=below_line + extension,
        **_styled(rng, p.breakout_style, m),
    )
    if p.pole_gap_probability > 0:
        _gap_pole(rng, seg, gain, p)
    return _Flag(seg, gain, height, extension, np.cumsum(seg["length"][:, 2:5], axis=1))


def _gap_pole(
    rng: np.random.Generator, seg: dict[str, np.ndarray], gain: np.ndarray, p: GeneratorParams
) -> None:
    """Move a share of the pole's gain into the opening gaps of a few of its bars, in some poles.

    The pole's planned move keeps the rest, so its total gain (and every size drawn from it) stays.
    """
    m = gain.shape[0]
    length = seg["length"][:, 2]
    on = (rng.random(m) < p.pole_gap_probability) & (length >= 2)
    share = uniform(rng, p.pole_gap_share_range, m) * on
    bars = np.clip(integers(rng, p.pole_gap_bars_range, m), 1.0, np.maximum(length - 1.0, 1.0))
    _set(
        seg,
        2,
        move=gain * (1.0 - share),
        jump=share * gain / bars,
        jump_bars=bars,
        jump_phase=rng.random(m),
    )


def _bull_legs(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Flag:
    """A full bull flag: pole, flag, breakout, retest (5), reclaim (6), continuation (7).

    The retest pulls back to ``depth`` above the planned upper line, the reclaim recovers a
    fraction of the pull-back and the continuation closes above the breakout's high.
    """
    flag = _pole_and_flag(rng, m, p)
    seg = flag.seg
    depth = uniform(rng, p.retest_depth_range, m) * flag.height + uniform(rng, p.retest_margin_range, m)
    pullback = np.maximum(flag.extension - depth, 0.0)
    reclaim = uniform(rng, p.reclaim_fraction_range, m)
    new_high = uniform(rng, p.continuation_gain_range, m) * flag.height + uniform(
        rng, p.continuation_margin_range, m
    )
    length = {
        k: integers(rng, r, m)
        for k, r in (
            ("retest", p.retest_length_range),
            ("reclaim", p.reclaim_length_range),
            ("continuation", p.continuation_length_range),
        )
    }
    _set(seg, 5, length=length["retest"], move=-pullback, **_styled(rng, p.retest_style, m))
    _set(
        seg,
        6,
        length=length["reclaim"],
        move=reclaim * pullback,
        **_styled(rng, p.reclaim_style, m),
    )
    _set(
        seg,
        7,
        length=length["continuation"],
        move=(1.0 - reclaim) * pullback + new_high,
        **_styled(rng, p.continuation_style, m),
    )
    return dataclasses.replace(flag, ends=np.cumsum(seg["length"][:, 2:8], axis=1))


def _true(m: int) -> np.ndarray:
    """[m] all True."""
    return np.ones(m, dtype=bool)


def _false(m: int) -> np.ndarray:
    """[m] all False."""
    return np.zeros(m, dtype=bool)


def _plan_bull_flag(rng: np.random.Generator, m: int, p: GeneratorParams) -> Plan:
    """Bull flags ending at a stage drawn from ``bull_stage_weights``.

    Stages: early (pole or first flag bars), flag, breakout, retest, continuation, aged out.
    """
    legs = _bull_legs(rng, m, p)
    e = legs.ends
    fresh = float(p.freshness_bars)
    bounds = [
        (np.zeros(m), e[:, 0] + p.min_flag_bars - 2),
        (e[:, 0] + p.min_flag_bars - 1, e[:, 1] - 1),
        (e[:, 1], e[:, 3] - 1),
        (e[:, 3], e[:, 4] + 1),
        (e[:, 4] + 2, e[:, 4] + fresh),
        (e[:, 5] + fresh, e[:, 5] + fresh + 80),
    ]
    return Plan(legs.seg, _pick_stage(rng, bounds, p.bull_stage_weights), _true(m), _true(m))


def _plan_failed_breakout(rng: np.random.Generator, m: int, p: GeneratorParams) -> Plan:
    """Pole, flag, a short breakout, then a collapse (slot 5) to below the flag's low."""
    flag = _pole_and_flag(rng, m, p)
    seg = flag.seg
    seg["length"][:, 4] = integers(rng, (1, 2), m)
    drop = flag.extension + flag.height + uniform(rng, (0.3, 1.5), m) * flag.height
    _set(
        seg,
        5,
        length=integers(rng, (2, 8), m),
        move=-(drop + uniform(rng, (2.0, 4.0), m)),
        **_styled(rng, _COLLAPSE_STYLE, m),
    )
    e = np.cumsum(seg["length"][:, 2:6], axis=1)
    bounds = [
        (e[:, 0] + p.min_flag_bars - 1, e[:, 1] - 1),
        (e[:, 1], e[:, 2] + 1),
        (e[:, 3], e[:, 3] + 80),
    ]
    return Plan(seg, _pick_stage(rng, bounds, (0.25, 0.15, 0.6)), _true(m), _true(m))


def _plan_bear_flag(rng: np.random.Generator, m: int, p: GeneratorParams) -> Plan:
    """The mirror image of a bull flag: pole down, flag drifting up, breakdown, retest, lower."""
    legs = _bull_legs(rng, m, p)
    legs.seg["move"][:, PATTERN_SLOTS] *= -1.0
    legs.seg["amp"][:, PATTERN_SLOTS] *= -1.0
    legs.seg["jump"][:, PATTERN_SLOTS] *= -1.0
    end = offsets_in(rng, legs.ends[:, 0] + 2, legs.ends[:, 5] + 30)
    return Plan(legs.seg, end, _true(m), _true(m))


def _plan_flag_no_pole(rng: np.random.Generator, m: int, p: GeneratorParams) -> Plan:
    """A bull flag's channel, breakout and follow-through after a sideways stretch (no pole)."""
    legs = _bull_legs(rng, m, p)
    _set(
        legs.seg,
        2,
        move=rng.normal(0.0, 1.0, m) * np.sqrt(legs.seg["length"][:, 2]),
        power=1.0,
        noise=uniform(rng, p.regime_noise_range, m),
        vol_start=0.0,
        vol_end=0.0,
        jump=0.0,
    )
    legs.seg["vol_start"][:, 3] = uniform(rng, (-0.2, 0.3), m)
    end = offsets_in(rng, legs.ends[:, 0] + 3, legs.ends[:, 5] + 30)
    return Plan(legs.seg, end, _false(m), _true(m))


def _plan_pole_no_flag(rng: np.random.Generator, m: int, p: GeneratorParams) -> Plan:
    """A pole followed at once by a collapse that gives back most or all of it (slot 3)."""
    flag = _pole_and_flag(rng, m, p)
    seg = flag.seg
    _set(
        seg,
        3,
        length=integers(rng, (2, 5), m),
        move=-uniform(rng, (0.75, 1.3), m) * flag.pole_gain,
        amp=0.0,
        cycles=0.0,
        **_styled(rng, _COLLAPSE_STYLE, m),
    )
    seg["length"][:, 4] = 0.0
    e = np.cumsum(seg["length"][:, 2:4], axis=1)
    return Plan(seg, offsets_in(rng, e[:, 0] - 2, e[:, 1] + 40), _true(m), _false(m))


def _plan_pennant(rng: np.random.Generator, m: int, p: GeneratorParams) -> Plan:
    """A converging triangle (slot 3), after a pole in half the windows, then a break either way."""
    flag = _pole_and_flag(rng, m, p)
    seg = flag.seg
    with_pole = rng.random(m) < 0.5
    seg["length"][:, 2] *= with_pole
    height = np.where(with_pole, uniform(rng, (0.2, 0.45), m) * flag.pole_gain, uniform(rng, (3.0, 8.0), m))
    _set(
        seg,
        3,
        length=integers(rng, (12, 45), m),
        move=rng.normal(0.0, 0.5, m),
        amp=height / 2.0,
        cycles=uniform(rng, (2.0, 4.0), m),
        converge=uniform(rng, (0.85, 1.0), m),
        noise=uniform(rng, (0.3, 0.6), m),
    )
    side = np.where(rng.random(m) < 0.5, 1.0, -1.0)
    seg["move"][:, 4] = side * (height / 2.0 + uniform(rng, (2.0, 6.0), m))
    e = np.cumsum(seg["length"][:, 2:5], axis=1)
    return Plan(seg, offsets_in(rng, e[:, 0], e[:, 2] + 30), with_pole, _false(m))


def _plan_rising_wedge(rng: np.random.Generator, m: int, p: GeneratorParams) -> Plan:
    """An uptrend into an upward-sloping converging wedge (slot 2), then a breakdown (slot 3)."""
    seg = blank_segments(m)
    seg["drift"][:, 1] = uniform(rng, p.trend_drift_range, m)
    height = uniform(rng, (3.0, 8.0), m)
    _set(
        seg,
        2,
        length=integers(rng, (20, 60), m),
        move=uniform(rng, (3.0, 10.0), m),
        amp=height / 2.0,
        cycles=uniform(rng, (2.0, 4.0), m),
        converge=uniform(rng, (0.5, 0.85), m),
        noise=uniform(rng, (0.5, 0.9), m),
        revert=uniform(rng, p.flag_style.revert, m),
    )
    _set(
        seg,
        3,
        length=integers(rng, (2, 8), m),
        move=-uniform(rng, (4.0, 12.0), m),
        **_styled(rng, _COLLAPSE_STYLE, m),
    )
    e = np.cumsum(seg["length"][:, 2:4], axis=1)
    return Plan(seg, offsets_in(rng, e[:, 0] - 10, e[:, 1] + 30), _false(m), _false(m))


def _plan_v_reversal(rng: np.random.Generator, m: int, p: GeneratorParams) -> Plan:
    """A sharp decline (slot 2) and an equally sharp recovery (slot 3)."""
    seg = blank_segments(m)
    fall_len = integers(rng, (5, 20), m)
    fall = uniform(rng, (4.0, 10.0), m) * np.sqrt(fall_len)
    _set(
        seg,
        2,
        length=fall_len,
        move=-fall,
        power=uniform(rng, (1.0, 1.6), m),
        noise=uniform(rng, (1.0, 1.4), m),
        vol_end=uniform(rng, (0.5, 1.3), m),
    )
    _set(
        seg,
        3,
        length=integers(rng, (4, 18), m),
        move=uniform(rng, (0.7, 1.1), m) * fall,
        power=uniform(rng, (0.6, 1.0), m),
        noise=uniform(rng, (1.0, 1.4), m),
        vol_start=uniform(rng, (0.5, 1.3), m),
        vol_end=uniform(rng, (0.0, 0.8), m),
    )
    e = np.cumsum(seg["length"][:, 2:4], axis=1)
    return Plan(seg, offsets_in(rng, e[:, 0] - 5, e[:, 1] + 25), _false(m), _false(m))


def _plan_trending_channel(rng: np.random.Generator, m: int, p: GeneratorParams) -> Plan:
    """A long, steady, upward parallel channel (slot 2)."""
    seg = blank_segments(m)
    length = integers(rng, (60, 200), m)
    _set(
        seg,
        2,
        length=length,
        move=uniform(rng, (0.15, 0.5), m) * length,
        amp=uniform(rng, (1.5, 5.0), m),
        cycles=length / uniform(rng, (12.0, 30.0), m),
        noise=uniform(rng, (0.6, 1.0), m),
        revert=uniform(rng, (0.7, 0.9), m),
    )
    return Plan(seg, offsets_in(rng, np.full(m, 30.0), length + 10), _false(m), _false(m))


def _random_walk_plan(rng: np.random.Generator, m: int, p: GeneratorParams, trend: bool) -> Plan:
    """Regimes of drift and volatility only; with ``trend`` every regime drifts the same way."""
    seg = blank_segments(m)
    seg["length"][:, PATTERN_SLOTS] = rng.uniform(20, 80, (m, 6)).round()
    seg["drift"][:] = rng.normal(0.0, p.background_drift_sd, (m, N_SLOTS))
    seg["noise"][:] = rng.uniform(*p.regime_noise_range, (m, N_SLOTS))
    if trend:
        side = np.where(rng.random(m) < 0.5, 1.0, -1.0)[:, None]
        seg["drift"] += side * rng.uniform(*p.trend_drift_range, (m, N_SLOTS))
    return Plan(seg, rng.uniform(0, 250, m).round(), _false(m), _false(m))


_PLANNERS: dict[str, Callable[[np.random.Generator, int, GeneratorParams], Plan]] = {
    "bull_flag": _plan_bull_flag,
    "random_walk": lambda rng, m, p: _random_walk_plan(rng, m, p, trend=False),
    "random_walk_drift": lambda rng, m, p: _random_walk_plan(rng, m, p, trend=True),
    "bear_flag": _plan_bear_flag,
    "pennant": _plan_pennant,
    "rising_wedge": _plan_rising_wedge,
    "pole_no_flag": _plan_pole_no_flag,
    "flag_no_pole": _plan_flag_no_pole,
    "failed_breakout": _plan_failed_breakout,
    "v_reversal": _plan_v_reversal,
    "trending_channel": _plan_trending_channel,
}


def _add_background(rng: np.random.Generator, plan: Plan, p: GeneratorParams, total: int) -> None:
    """Place the pattern so the series' last bar is ``end_offset`` bars into it.

    Two background regimes (slots 0, 1) fill the bars before it and a tail regime (slot 8) the bars
    after; regimes draw their own drift and volatility. Edits ``plan.seg`` in place.
    """
    seg = plan.seg
    m = seg["length"].shape[0]
    end = np.clip(plan.end_offset, 0, total - 1)
    start = total - 1 - end
    first = np.floor(start * rng.random(m))
    seg["length"][:, 0] = first
    seg["length"][:, 1] = start - first
    seg["length"][:, POST_SLOT] = total
    background = [0, 1, POST_SLOT]
    seg["drift"][:, background] += rng.normal(0.0, p.background_drift_sd, (m, 3))
    seg["noise"][:, background] = rng.uniform(*p.regime_noise_range, (m, 3))


def draw_kinds(rng: np.random.Generator, n: int, p: GeneratorParams) -> np.ndarray:
    """[n] int16 kind indices: round(n * positive_fraction) bull flags, the rest by weight."""
    n_pos = round(n * p.positive_fraction)
    weights = np.asarray(p.negative_weights, dtype=np.float64)
    kinds = np.zeros(n, dtype=np.int16)
    if n > n_pos:
        others = np.arange(1, len(KINDS))
        kinds[n_pos:] = rng.choice(others, size=n - n_pos, p=weights / weights.sum())
    return rng.permutation(kinds)


def plan_chunk(rng: np.random.Generator, kind: np.ndarray, p: GeneratorParams, total: int) -> Plan:
    """Segment tables of a chunk of windows, rows in the order of ``kind``."""
    m = kind.shape[0]
    seg = blank_segments(m)
    end = np.zeros(m)
    has_pole, has_flag = _false(m), _false(m)
    for index, name in enumerate(KINDS):
        rows = np.flatnonzero(kind == index)
        if rows.size == 0:
            continue
        plan = _PLANNERS[name](rng, rows.size, p)
        for key in seg:
            seg[key][rows] = plan.seg[key]
        end[rows] = plan.end_offset
        has_pole[rows], has_flag[rows] = plan.has_pole, plan.has_flag
    plan = Plan(seg, end, has_pole, has_flag)
    _add_background(rng, plan, p, total)
    return plan
