"""Synthetic OHLCV windows with planted bull flags and hard negatives, labelled causally.

There is no labelled market data, so training and evaluation draw windows from this parametric,
vectorised generator. Each window is the last ``seq_len`` bars of its own independently generated
series (a short pre-history plus the window), so no two windows share a bar: splitting
train/validation/test by seed splits by series and can never produce overlapping windows.

How a series is built (all per window, sizes in units of the window's base per-bar volatility):
a table of segments (background regimes, then the pattern's legs, then a tail) gives a planned
log-price path; noise with stochastic volatility (log-AR(1), clustering like GARCH) and Student-t
shocks is added, as a random walk in ordinary segments and mean-reverting around the planned
channel in consolidations; each bar's high and low are the sampled extremes of a Brownian bridge
from its open to its close (the exact continuous limit of a finer sub-bar path); volume follows the
pattern's phases, absolute returns, a slow regime, noise and decaying spikes. A share of windows
gets missing intervals in the serving worker's form: a flat bar at the previous close, volume 0.

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

``positive_fraction`` is the share of bull_flag windows, not of positive labels: bull_flag windows
also end before the flag is recognisable and after the pattern has aged out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bullflag_model.features import CLOSE, HIGH, LOW, OPEN, SEQ_LEN, VOLUME

KINDS: tuple[str, ...] = (
    "bull_flag",
    "random_walk",
    "random_walk_drift",
    "bear_flag",
    "pennant",
    "rising_wedge",
    "pole_no_flag",
    "flag_no_pole",
    "failed_breakout",
    "v_reversal",
    "trending_channel",
)
PHASES: tuple[str, ...] = ("pole", "flag", "breakout", "retest", "continuation")
HEADS: tuple[str, ...] = ("flag", "breakout", "retest", "continuation")

_HISTORY_BARS = 40
_CHUNK_BARS = 2_000_000
_AR_BLOCK = 64
_N_SLOTS = 9
_POLE_SLOT, _FLAG_SLOT = 2, 3
_PATTERN_SLOTS = slice(2, 8)
_POST_SLOT = 8
_TRANSIENT_DECAY = 0.5
_MAD_TO_SIGMA = 1.4826
_TINY = 1e-12
_GAP_RUN_MAX = 3
_REGIME_BARS = (40, 200)
_OPEN_GAP = 0.1
_VOLUME_REGIME = (0.95, 0.25)
_VOLUME_SPIKE_DECAY = 0.6


@dataclass(frozen=True)
class PhaseStyle:
    """Randomisation ranges of one pattern phase's texture, each (low, high).

    noise: multiplier of the noise volatility; revert: per-bar persistence of deviations from the
    planned path (1 = random walk, below 1 = they decay back to the plan); power: curvature of the
    planned move (fraction u of the phase gives u**power of it); volume_start, volume_end: log
    volume multiplier at the phase's first and last bar.
    """

    noise: tuple[float, float] = (1.0, 1.0)
    revert: tuple[float, float] = (1.0, 1.0)
    power: tuple[float, float] = (1.0, 1.0)
    volume_start: tuple[float, float] = (0.0, 0.0)
    volume_end: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        """Reject ranges the renderer cannot use."""
        for field in dataclasses.fields(self):
            low, high = getattr(self, field.name)
            if low > high:
                raise ValueError(f"{field.name} must be (low, high) with low <= high")
        if self.noise[0] < 0 or self.power[0] <= 0 or not 0 < self.revert[0] <= self.revert[1] <= 1:
            raise ValueError("noise must be >= 0, power > 0 and revert in (0, 1]")


_POLE_STYLE = PhaseStyle(noise=(1.0, 1.4), power=(0.8, 1.5), volume_start=(0.1, 0.5), volume_end=(0.7, 1.5))
_FLAG_STYLE = PhaseStyle(
    noise=(0.4, 0.8), revert=(0.5, 0.85), volume_start=(0.3, 1.0), volume_end=(-0.9, -0.2)
)
_BREAKOUT_STYLE = PhaseStyle(
    noise=(0.8, 1.2),
    revert=(0.6, 0.9),
    power=(0.6, 1.0),
    volume_start=(0.8, 1.6),
    volume_end=(0.6, 1.4),
)
_RETEST_STYLE = PhaseStyle(
    noise=(0.4, 0.7),
    revert=(0.4, 0.7),
    power=(0.7, 1.2),
    volume_start=(-0.2, 0.3),
    volume_end=(-0.5, 0.1),
)
_RECLAIM_STYLE = PhaseStyle(noise=(0.5, 0.9), revert=(0.5, 0.8), volume_end=(0.3, 0.9))
_CONTINUATION_STYLE = PhaseStyle(
    noise=(0.8, 1.2), power=(0.8, 1.3), volume_start=(0.3, 0.9), volume_end=(0.2, 1.0)
)
_COLLAPSE_STYLE = PhaseStyle(
    noise=(1.0, 1.4), power=(0.6, 1.3), volume_start=(0.8, 1.6), volume_end=(0.2, 1.0)
)


@dataclass(frozen=True)
class GeneratorParams:
    """The generator's randomisation ranges, label thresholds and distribution-shift knobs.

    Lengths are in bars. Pattern sizes are in units of the window's base per-bar volatility
    (sigma: ``*_margin_range``, ``pole_strength_range`` per sqrt(bar)) or of the pole gain
    (flag height and retrace) or of the flag height (breakout extension, retest depth,
    continuation gain), so a pattern's strength relative to the noise does not depend on the price
    level. The ``*_style`` fields hold each bull-flag phase's noise, reversion, curvature and volume
    ranges; hard negatives' shapes are fixed in their planners. ``volatility_scale``,
    ``flag_length_scale`` and ``volume_informative`` shift the distribution for robustness
    reports; 1.0/1.0/True is the training distribution.
    """

    positive_fraction: float = 0.5
    negative_weights: tuple[float, ...] = (1.0,) * (len(KINDS) - 1)
    bull_stage_weights: tuple[float, ...] = (0.06, 0.24, 0.18, 0.18, 0.22, 0.12)
    price_range: tuple[float, float] = (0.05, 5000.0)
    base_volume_range: tuple[float, float] = (1e2, 1e7)
    sigma_range: tuple[float, float] = (0.002, 0.03)
    t_dof_range: tuple[float, float] = (3.0, 10.0)
    max_shock: float = 8.0
    vol_persistence_range: tuple[float, float] = (0.9, 0.99)
    vol_of_vol_range: tuple[float, float] = (0.15, 0.5)
    regime_noise_range: tuple[float, float] = (0.7, 1.4)
    background_drift_sd: float = 0.05
    trend_drift_range: tuple[float, float] = (0.1, 0.35)
    pole_length_range: tuple[int, int] = (4, 20)
    pole_strength_range: tuple[float, float] = (4.5, 14.0)
    flag_length_range: tuple[int, int] = (8, 40)
    flag_height_range: tuple[float, float] = (0.08, 0.25)
    flag_retrace_range: tuple[float, float] = (0.0, 0.25)
    flag_cycles_range: tuple[float, float] = (1.0, 3.0)
    breakout_length_range: tuple[int, int] = (1, 4)
    breakout_extension_range: tuple[float, float] = (0.6, 2.0)
    breakout_margin_range: tuple[float, float] = (2.0, 4.0)
    retest_length_range: tuple[int, int] = (2, 8)
    retest_depth_range: tuple[float, float] = (0.05, 0.25)
    retest_margin_range: tuple[float, float] = (1.6, 2.0)
    reclaim_length_range: tuple[int, int] = (1, 5)
    reclaim_fraction_range: tuple[float, float] = (0.4, 0.9)
    continuation_length_range: tuple[int, int] = (3, 15)
    continuation_gain_range: tuple[float, float] = (0.3, 1.2)
    continuation_margin_range: tuple[float, float] = (1.5, 3.5)
    pole_style: PhaseStyle = _POLE_STYLE
    flag_style: PhaseStyle = _FLAG_STYLE
    breakout_style: PhaseStyle = _BREAKOUT_STYLE
    retest_style: PhaseStyle = _RETEST_STYLE
    reclaim_style: PhaseStyle = _RECLAIM_STYLE
    continuation_style: PhaseStyle = _CONTINUATION_STYLE
    volume_noise_sd: float = 0.3
    volume_spike_probability: float = 0.015
    volume_spike_range: tuple[float, float] = (0.7, 2.0)
    volume_coupling_range: tuple[float, float] = (0.3, 0.8)
    gap_probability: float = 0.1
    gap_runs_range: tuple[int, int] = (1, 4)
    freshness_bars: int = 20
    min_flag_bars: int = 5
    min_pole_z: float = 3.5
    max_retrace: float = 0.65
    max_flag_rise: float = 0.1
    min_parallel: float = 0.6
    retest_band: float = 0.5
    retest_away: float = 0.5
    reclaim_level: float = 0.5
    volatility_scale: float = 1.0
    flag_length_scale: float = 1.0
    volume_informative: bool = True

    def __post_init__(self) -> None:
        """Reject settings the generator cannot honour."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_range") and not 0 <= value[0] <= value[1]:
                raise ValueError(f"{field.name} must be (low, high) with 0 <= low <= high")
        if min(self.price_range[0], self.base_volume_range[0], self.sigma_range[0]) <= 0:
            raise ValueError("price_range, base_volume_range and sigma_range must be positive")
        low, high = self.vol_persistence_range
        if self.t_dof_range[0] <= 2 or not 0 < low <= high < 1:
            raise ValueError("t_dof_range must exceed 2 and vol_persistence_range lie in (0, 1)")
        if not (0.0 <= self.positive_fraction <= 1.0 and 0.0 <= self.gap_probability <= 1.0):
            raise ValueError("positive_fraction and gap_probability must lie in [0, 1]")
        if len(self.negative_weights) != len(KINDS) - 1 or min(self.negative_weights) < 0:
            raise ValueError(f"negative_weights needs {len(KINDS) - 1} non-negative weights")
        if sum(self.negative_weights) <= 0 and self.positive_fraction < 1.0:
            raise ValueError("negative_weights must not all be zero")
        if len(self.bull_stage_weights) != 6 or sum(self.bull_stage_weights) <= 0:
            raise ValueError("bull_stage_weights needs 6 weights with a positive sum")
        if self.volatility_scale <= 0 or self.flag_length_scale <= 0:
            raise ValueError("volatility_scale and flag_length_scale must be positive")
        if self.max_shock <= 0 or self.min_flag_bars < 2 or self.freshness_bars < 0:
            raise ValueError("max_shock must be > 0, min_flag_bars >= 2, freshness_bars >= 0")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (tuples become lists) for checkpoints and evaluation reports."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorParams:
        """Inverse of ``as_dict``."""
        return cls(**{k: _unplain(k, v) for k, v in data.items()})


def _plain(value: Any) -> Any:
    """Copy of nested dicts/tuples with every tuple turned into a list."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _unplain(name: str, value: Any) -> Any:
    """One ``GeneratorParams`` field back from its plain form."""
    if name.endswith("_style"):
        return PhaseStyle(**{k: tuple(v) for k, v in value.items()})
    return tuple(value) if isinstance(value, list) else value


DEFAULT_PARAMS = GeneratorParams()


@dataclass
class SyntheticBatch:
    """Generated windows with their labels.

    bars   [N, L, 5] float64: open, high, low, close, volume.
    labels [N, 4] float32: flag, breakout, retest, continuation (0/1), see ``HEADS``.
    kind   [N] int16: index into ``KINDS``.
    spans  [N, 5, 2] int32: [start, end) bar index of each of ``PHASES`` inside the window, clipped
           to it, -1 where absent or not reached. Pole and flag mark the planted segments of every
           kind that plants one (a bear flag's are mirrored); breakout, retest and continuation are
           measured by the labelling rules and given for labelled kinds only; a phase still under
           way ends at L. Every phase labelled 1 has a valid span.
    seed:  the seed the batch was generated from.
    """

    bars: np.ndarray
    labels: np.ndarray
    kind: np.ndarray
    spans: np.ndarray
    seed: int


@dataclass
class _Plan:
    """Segments of one kind's windows ([m, slots] per field, sizes in sigma) and their layout.

    end_offset [m]: the window's last bar counted from the first pattern bar.
    """

    seg: dict[str, np.ndarray]
    end_offset: np.ndarray
    has_pole: np.ndarray
    has_flag: np.ndarray


_SEGMENT_DEFAULTS: dict[str, float] = {
    "length": 0.0,
    "drift": 0.0,
    "move": 0.0,
    "power": 1.0,
    "amp": 0.0,
    "cycles": 0.0,
    "converge": 0.0,
    "noise": 1.0,
    "revert": 1.0,
    "vol_start": 0.0,
    "vol_end": 0.0,
}


def _blank_segments(m: int, slots: int = _N_SLOTS) -> dict[str, np.ndarray]:
    """Segment table [m, slots] per field, filled with neutral defaults."""
    return {k: np.full((m, slots), v) for k, v in _SEGMENT_DEFAULTS.items()}


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], m: int) -> np.ndarray:
    """[m] floats uniform in bounds."""
    return rng.uniform(bounds[0], bounds[1], m)


def _integers(rng: np.random.Generator, bounds: tuple[int, int], m: int, scale: float = 1.0) -> np.ndarray:
    """[m] integers uniform in the inclusive bounds, times scale, at least 1."""
    return np.maximum(np.floor(rng.uniform(bounds[0], bounds[1] + 1, m) * scale), 1.0)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], m: int) -> np.ndarray:
    """[m] floats log-uniform in bounds."""
    return np.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]), m))


def _offsets_in(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[m] integers uniform in [lo, hi] per row (hi below lo collapses to lo)."""
    hi = np.maximum(hi, lo)
    return lo + np.floor(rng.random(lo.shape) * (hi - lo + 1))


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
    return _offsets_in(rng, lo[rows, stage], hi[rows, stage])


def _styled(rng: np.random.Generator, style: PhaseStyle, m: int) -> dict[str, np.ndarray]:
    """[m] texture fields of one phase drawn from its style, keyed as in the segment table."""
    return {
        "noise": _uniform(rng, style.noise, m),
        "revert": _uniform(rng, style.revert, m),
        "power": _uniform(rng, style.power, m),
        "vol_start": _uniform(rng, style.volume_start, m),
        "vol_end": _uniform(rng, style.volume_end, m),
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
    seg = _blank_segments(m)
    pole_len = _integers(rng, p.pole_length_range, m)
    gain = _uniform(rng, p.pole_strength_range, m) * np.sqrt(pole_len)
    _set(seg, 2, length=pole_len, move=gain, **_styled(rng, p.pole_style, m))
    flag_len = np.maximum(_integers(rng, p.flag_length_range, m, p.flag_length_scale), 3.0)
    height = _uniform(rng, p.flag_height_range, m) * gain
    cycles = np.minimum(_uniform(rng, p.flag_cycles_range, m), flag_len / 4.0)
    _set(
        seg,
        3,
        length=flag_len,
        move=-_uniform(rng, p.flag_retrace_range, m) * gain,
        amp=height / 2.0,
        cycles=cycles,
        **_styled(rng, p.flag_style, m),
    )
    below_line = height / 2.0 * (1.0 - np.cos(2.0 * np.pi * cycles))
    extension = _uniform(rng, p.breakout_extension_range, m) * height + _uniform(
        rng, p.breakout_margin_range, m
    )
    _set(
        seg,
        4,
        length=_integers(rng, p.breakout_length_range, m),
        move=below_line + extension,
        **_styled(rng, p.breakout_style, m),
    )
    return _Flag(seg, gain, height, extension, np.cumsum(seg["length"][:, 2:5], axis=1))


def _bull_legs(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Flag:
    """A full bull flag: pole, flag, breakout, retest (5), reclaim (6), continuation (7).

    The retest pulls back to ``depth`` above the planned upper line, the reclaim recovers a
    fraction of the pull-back and the continuation closes above the breakout's high.
    """
    flag = _pole_and_flag(rng, m, p)
    seg = flag.seg
    depth = _uniform(rng, p.retest_depth_range, m) * flag.height + _uniform(rng, p.retest_margin_range, m)
    pullback = np.maximum(flag.extension - depth, 0.0)
    reclaim = _uniform(rng, p.reclaim_fraction_range, m)
    new_high = _uniform(rng, p.continuation_gain_range, m) * flag.height + _uniform(
        rng, p.continuation_margin_range, m
    )
    length = {
        k: _integers(rng, r, m)
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


def _plan_bull_flag(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Plan:
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
    return _Plan(legs.seg, _pick_stage(rng, bounds, p.bull_stage_weights), _true(m), _true(m))


def _plan_failed_breakout(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Plan:
    """Pole, flag, a short breakout, then a collapse (slot 5) to below the flag's low."""
    flag = _pole_and_flag(rng, m, p)
    seg = flag.seg
    seg["length"][:, 4] = _integers(rng, (1, 2), m)
    drop = flag.extension + flag.height + _uniform(rng, (0.3, 1.5), m) * flag.height
    _set(
        seg,
        5,
        length=_integers(rng, (2, 8), m),
        move=-(drop + _uniform(rng, (2.0, 4.0), m)),
        **_styled(rng, _COLLAPSE_STYLE, m),
    )
    e = np.cumsum(seg["length"][:, 2:6], axis=1)
    bounds = [
        (e[:, 0] + p.min_flag_bars - 1, e[:, 1] - 1),
        (e[:, 1], e[:, 2] + 1),
        (e[:, 3], e[:, 3] + 80),
    ]
    return _Plan(seg, _pick_stage(rng, bounds, (0.25, 0.15, 0.6)), _true(m), _true(m))


def _plan_bear_flag(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Plan:
    """The mirror image of a bull flag: pole down, flag drifting up, breakdown, retest, lower."""
    legs = _bull_legs(rng, m, p)
    legs.seg["move"][:, _PATTERN_SLOTS] *= -1.0
    legs.seg["amp"][:, _PATTERN_SLOTS] *= -1.0
    end = _offsets_in(rng, legs.ends[:, 0] + 2, legs.ends[:, 5] + 30)
    return _Plan(legs.seg, end, _true(m), _true(m))


def _plan_flag_no_pole(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Plan:
    """A bull flag's channel, breakout and follow-through after a sideways stretch (no pole)."""
    legs = _bull_legs(rng, m, p)
    _set(
        legs.seg,
        2,
        move=rng.normal(0.0, 1.0, m) * np.sqrt(legs.seg["length"][:, 2]),
        power=1.0,
        noise=_uniform(rng, p.regime_noise_range, m),
        vol_start=0.0,
        vol_end=0.0,
    )
    legs.seg["vol_start"][:, 3] = _uniform(rng, (-0.2, 0.3), m)
    end = _offsets_in(rng, legs.ends[:, 0] + 3, legs.ends[:, 5] + 30)
    return _Plan(legs.seg, end, _false(m), _true(m))


def _plan_pole_no_flag(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Plan:
    """A pole followed at once by a collapse that gives back most or all of it (slot 3)."""
    flag = _pole_and_flag(rng, m, p)
    seg = flag.seg
    _set(
        seg,
        3,
        length=_integers(rng, (2, 5), m),
        move=-_uniform(rng, (0.75, 1.3), m) * flag.pole_gain,
        amp=0.0,
        cycles=0.0,
        **_styled(rng, _COLLAPSE_STYLE, m),
    )
    seg["length"][:, 4] = 0.0
    e = np.cumsum(seg["length"][:, 2:4], axis=1)
    return _Plan(seg, _offsets_in(rng, e[:, 0] - 2, e[:, 1] + 40), _true(m), _false(m))


def _plan_pennant(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Plan:
    """A converging triangle (slot 3), after a pole in half the windows, then a break either way."""
    flag = _pole_and_flag(rng, m, p)
    seg = flag.seg
    with_pole = rng.random(m) < 0.5
    seg["length"][:, 2] *= with_pole
    height = np.where(with_pole, _uniform(rng, (0.2, 0.45), m) * flag.pole_gain, _uniform(rng, (3.0, 8.0), m))
    _set(
        seg,
        3,
        length=_integers(rng, (12, 45), m),
        move=rng.normal(0.0, 0.5, m),
        amp=height / 2.0,
        cycles=_uniform(rng, (2.0, 4.0), m),
        converge=_uniform(rng, (0.85, 1.0), m),
        noise=_uniform(rng, (0.3, 0.6), m),
    )
    side = np.where(rng.random(m) < 0.5, 1.0, -1.0)
    seg["move"][:, 4] = side * (height / 2.0 + _uniform(rng, (2.0, 6.0), m))
    e = np.cumsum(seg["length"][:, 2:5], axis=1)
    return _Plan(seg, _offsets_in(rng, e[:, 0], e[:, 2] + 30), with_pole, _false(m))


def _plan_rising_wedge(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Plan:
    """An uptrend into an upward-sloping converging wedge (slot 2), then a breakdown (slot 3)."""
    seg = _blank_segments(m)
    seg["drift"][:, 1] = _uniform(rng, p.trend_drift_range, m)
    height = _uniform(rng, (3.0, 8.0), m)
    _set(
        seg,
        2,
        length=_integers(rng, (20, 60), m),
        move=_uniform(rng, (3.0, 10.0), m),
        amp=height / 2.0,
        cycles=_uniform(rng, (2.0, 4.0), m),
        converge=_uniform(rng, (0.5, 0.85), m),
        noise=_uniform(rng, (0.5, 0.9), m),
        revert=_uniform(rng, p.flag_style.revert, m),
    )
    _set(
        seg,
        3,
        length=_integers(rng, (2, 8), m),
        move=-_uniform(rng, (4.0, 12.0), m),
        **_styled(rng, _COLLAPSE_STYLE, m),
    )
    e = np.cumsum(seg["length"][:, 2:4], axis=1)
    return _Plan(seg, _offsets_in(rng, e[:, 0] - 10, e[:, 1] + 30), _false(m), _false(m))


def _plan_v_reversal(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Plan:
    """A sharp decline (slot 2) and an equally sharp recovery (slot 3)."""
    seg = _blank_segments(m)
    fall_len = _integers(rng, (5, 20), m)
    fall = _uniform(rng, (4.0, 10.0), m) * np.sqrt(fall_len)
    _set(
        seg,
        2,
        length=fall_len,
        move=-fall,
        power=_uniform(rng, (1.0, 1.6), m),
        noise=_uniform(rng, (1.0, 1.4), m),
        vol_end=_uniform(rng, (0.5, 1.3), m),
    )
    _set(
        seg,
        3,
        length=_integers(rng, (4, 18), m),
        move=_uniform(rng, (0.7, 1.1), m) * fall,
        power=_uniform(rng, (0.6, 1.0), m),
        noise=_uniform(rng, (1.0, 1.4), m),
        vol_start=_uniform(rng, (0.5, 1.3), m),
        vol_end=_uniform(rng, (0.0, 0.8), m),
    )
    e = np.cumsum(seg["length"][:, 2:4], axis=1)
    return _Plan(seg, _offsets_in(rng, e[:, 0] - 5, e[:, 1] + 25), _false(m), _false(m))


def _plan_trending_channel(rng: np.random.Generator, m: int, p: GeneratorParams) -> _Plan:
    """A long, steady, upward parallel channel (slot 2)."""
    seg = _blank_segments(m)
    length = _integers(rng, (60, 200), m)
    _set(
        seg,
        2,
        length=length,
        move=_uniform(rng, (0.15, 0.5), m) * length,
        amp=_uniform(rng, (1.5, 5.0), m),
        cycles=length / _uniform(rng, (12.0, 30.0), m),
        noise=_uniform(rng, (0.6, 1.0), m),
        revert=_uniform(rng, (0.7, 0.9), m),
    )
    return _Plan(seg, _offsets_in(rng, np.full(m, 30.0), length + 10), _false(m), _false(m))


def _random_walk_plan(rng: np.random.Generator, m: int, p: GeneratorParams, trend: bool) -> _Plan:
    """Regimes of drift and volatility only; with ``trend`` every regime drifts the same way."""
    seg = _blank_segments(m)
    seg["length"][:, _PATTERN_SLOTS] = rng.uniform(20, 80, (m, 6)).round()
    seg["drift"][:] = rng.normal(0.0, p.background_drift_sd, (m, _N_SLOTS))
    seg["noise"][:] = rng.uniform(*p.regime_noise_range, (m, _N_SLOTS))
    if trend:
        side = np.where(rng.random(m) < 0.5, 1.0, -1.0)[:, None]
        seg["drift"] += side * rng.uniform(*p.trend_drift_range, (m, _N_SLOTS))
    return _Plan(seg, rng.uniform(0, 250, m).round(), _false(m), _false(m))


_PLANNERS: dict[str, Callable[[np.random.Generator, int, GeneratorParams], _Plan]] = {
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


def _add_background(rng: np.random.Generator, plan: _Plan, p: GeneratorParams, total: int) -> None:
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
    seg["length"][:, _POST_SLOT] = total
    background = [0, 1, _POST_SLOT]
    seg["drift"][:, background] += rng.normal(0.0, p.background_drift_sd, (m, 3))
    seg["noise"][:, background] = rng.uniform(*p.regime_noise_range, (m, 3))


def _ar1(shocks: np.ndarray, coef: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """x_t = coef_t * x_{t-1} + shocks_t along the last axis, x_{-1} = initial.

    shocks, coef [m, L] (0 < coef <= 1, broadcastable), initial [m]. Solved in closed form per block
    of ``_AR_BLOCK`` bars (x = A_t * (x_{-1} + cumsum(shocks / A)), A the running product of coef),
    so there is no per-bar loop and A never underflows.
    """
    coef = np.broadcast_to(coef, shocks.shape)
    out = np.empty_like(shocks)
    carry = initial.astype(np.float64)
    for lo in range(0, shocks.shape[1], _AR_BLOCK):
        hi = min(lo + _AR_BLOCK, shocks.shape[1])
        growth = np.exp(np.cumsum(np.log(coef[:, lo:hi]), axis=1))
        out[:, lo:hi] = growth * (carry[:, None] + np.cumsum(shocks[:, lo:hi] / growth, axis=1))
        carry = out[:, hi - 1]
    return out


@dataclass
class _Bars:
    """Per-bar planned path and modulation of a chunk of series, each [m, L]."""

    step: np.ndarray
    noise: np.ndarray
    revert: np.ndarray
    volume: np.ndarray


def _per_bar(seg: dict[str, np.ndarray], total: int) -> _Bars:
    """Expand a segment table [m, S] into per-bar arrays [m, total] (segments beyond it are cut).

    A segment's planned log path over its fraction u of bars is
    move * u**power + amp * ((1 - converge * u) * cos(2 pi cycles u) - 1), plus drift per bar.
    """
    m, slots = seg["length"].shape
    length = seg["length"].astype(np.int64)
    stop = np.cumsum(length, axis=1)
    begin = stop - length
    clipped = np.minimum(stop, total) - np.minimum(begin, total)
    slot = np.repeat(np.tile(np.arange(slots), m), clipped.ravel()).reshape(m, total)

    def at(name: str) -> np.ndarray:
        """Field ``name`` of each bar's segment, [m, total]."""
        return np.take_along_axis(seg[name], slot, axis=1)

    span = np.maximum(at("length"), 1.0)
    j = np.arange(total)[None, :] - np.take_along_axis(begin, slot, axis=1)
    move, power, amp, cycles, converge = (at(k) for k in ("move", "power", "amp", "cycles", "converge"))

    def shape(u: np.ndarray) -> np.ndarray:
        """Planned log path (sigma units) at segment fraction u, [m, total]."""
        wave = (1.0 - converge * u) * np.cos(2.0 * np.pi * cycles * u) - 1.0
        return move * u**power + amp * wave

    step = at("drift") + shape((j + 1) / span) - shape(j / span)
    vol_start = at("vol_start")
    volume = vol_start + (at("vol_end") - vol_start) * (j + 0.5) / span
    return _Bars(step, at("noise"), at("revert"), volume)


def _render(rng: np.random.Generator, plan: _Bars, sigma: np.ndarray, p: GeneratorParams) -> np.ndarray:
    """Draw OHLCV [m, L, 5] around a planned path (sigma units) with realistic noise.

    Shocks are unit-variance Student-t, clipped at ``max_shock`` so one draw cannot dwarf the
    pattern, scaled by stochastic volatility; in segments with revert < 1 they revert
    around the planned path instead of accumulating. Highs and lows are sampled extremes of a
    Brownian bridge from open to close, so high >= max(open, close) and low <= min(open, close).
    Volume carries the phases' multipliers and absolute returns unless ``volume_informative`` is
    False, when it is noise alone. Random draws do not depend on the shift knobs.
    """
    m, total = plan.step.shape
    dof = _uniform(rng, p.t_dof_range, m)[:, None]
    shocks = rng.standard_t(dof, size=(m, total)) * np.sqrt((dof - 2.0) / dof)
    shocks = np.clip(shocks, -p.max_shock, p.max_shock)
    persistence = _uniform(rng, p.vol_persistence_range, m)
    vol_of_vol = _uniform(rng, p.vol_of_vol_range, m)
    log_vol = _ar1(
        rng.standard_normal((m, total)) * (vol_of_vol * np.sqrt(1.0 - persistence**2))[:, None],
        persistence[:, None],
        rng.standard_normal(m) * vol_of_vol,
    )
    bar_sd = (sigma * p.volatility_scale)[:, None] * np.exp(log_vol) * plan.noise
    noise = bar_sd * shocks
    reverting = plan.revert < 1.0
    transient = _ar1(
        np.where(reverting, noise, 0.0),
        np.where(reverting, plan.revert, _TRANSIENT_DECAY),
        np.zeros(m),
    )
    walk = np.cumsum(np.where(reverting, 0.0, noise), axis=1)
    log_start = np.log(_log_uniform(rng, p.price_range, m))[:, None]
    close = log_start + np.cumsum(plan.step * sigma[:, None], axis=1) + walk + transient
    prev_close = np.concatenate([log_start, close[:, :-1]], axis=1)
    open_ = prev_close + _OPEN_GAP * bar_sd * rng.standard_normal((m, total))
    body = close - open_
    spread = 2.0 * bar_sd**2
    up = 0.5 * (body + np.sqrt(body**2 - spread * np.log1p(-rng.random((m, total)))))
    down = 0.5 * (body - np.sqrt(body**2 - spread * np.log1p(-rng.random((m, total)))))
    prices = np.exp(np.stack([open_, open_ + up, open_ + down, close], axis=-1))
    prices[..., HIGH] = prices.max(axis=-1)
    prices[..., LOW] = prices[..., [OPEN, CLOSE, LOW]].min(axis=-1)
    volume = _volume(rng, plan.volume, np.abs(shocks), p)
    return np.concatenate([prices, volume[..., None]], axis=-1)


def _volume(
    rng: np.random.Generator, phase: np.ndarray, abs_shock: np.ndarray, p: GeneratorParams
) -> np.ndarray:
    """Traded volume [m, L] (whole units, at least 1): level, slow regime, noise, decaying spikes.

    ``phase`` is the log multiplier of the pattern phases; it and the link to |shock| are dropped
    when ``volume_informative`` is False.
    """
    m, total = phase.shape
    level = np.log(_log_uniform(rng, p.base_volume_range, m))[:, None]
    persistence, spread = _VOLUME_REGIME
    regime = _ar1(
        rng.normal(0.0, spread * math.sqrt(1.0 - persistence**2), (m, total)),
        np.full((m, 1), persistence),
        rng.normal(0.0, spread, m),
    )
    jolt = (rng.random((m, total)) < p.volume_spike_probability) * rng.uniform(
        *p.volume_spike_range, (m, total)
    )
    spikes = _ar1(jolt, np.full((m, 1), _VOLUME_SPIKE_DECAY), np.zeros(m))
    coupling = _uniform(rng, p.volume_coupling_range, m)[:, None]
    log_volume = level + regime + spikes + rng.normal(0.0, p.volume_noise_sd, (m, total))
    if p.volume_informative:
        log_volume = log_volume + phase + coupling * np.log1p(abs_shock)
    return np.maximum(np.round(np.exp(log_volume)), 1.0)


def _gap_mask(rng: np.random.Generator, m: int, total: int, window: int, p: GeneratorParams) -> np.ndarray:
    """[m, total] bool: a few short runs of missing bars inside the window, in a share of rows."""
    runs_max = p.gap_runs_range[1]
    has_gap = rng.random(m) < p.gap_probability
    runs = rng.integers(p.gap_runs_range[0], runs_max + 1, m)
    first = max(total - window, 1)
    start = rng.integers(first, total, (m, runs_max))
    run_len = rng.integers(1, _GAP_RUN_MAX + 1, (m, runs_max))
    active = (np.arange(runs_max)[None, :] < runs[:, None]) & has_gap[:, None]
    t = np.arange(total)[None, None, :]
    hit = (t >= start[..., None]) & (t < (start + run_len)[..., None]) & active[..., None]
    return hit.any(axis=1)


def _fill_missing(bars: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Replace missing bars by the serving policy: flat at the previous close, volume 0.

    bars [m, L, 5], missing [m, L] bool with no bar missing at index 0.
    """
    t = np.arange(bars.shape[1])[None, :]
    last_traded = np.maximum.accumulate(np.where(missing, 0, t), axis=1)
    flat = np.take_along_axis(bars[..., CLOSE], last_traded, axis=1)
    out = bars.copy()
    out[..., :4] = np.where(missing[..., None], flat[..., None], bars[..., :4])
    out[..., VOLUME] = np.where(missing, 0.0, bars[..., VOLUME])
    return out


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
    return np.argmax(hit, axis=1), hit.any(axis=1)


def _span(start: np.ndarray, stop: np.ndarray, valid: np.ndarray, length: int) -> np.ndarray:
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
    broken_down = (after & (close < fit.low[:, None])).any(axis=1)
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
            _span(pole[:, 0], pole[:, 1], pole[:, 1] > pole[:, 0], length),
            _span(flag[:, 0], flag[:, 1], flag[:, 1] > flag[:, 0], length),
            _span(ev.breakout, np.where(ev.touched, ev.touch, length), ev.broken, length),
            _span(ev.touch, retest_end, ev.touched, length),
            _span(
                ev.reclaim + 1,
                np.where(ev.continued, ev.new_high + 1, length),
                ev.reclaimed,
                length,
            ),
        ],
        axis=1,
    )
    return heads.astype(np.float32), spans.astype(np.int32)


def _kinds(rng: np.random.Generator, n: int, p: GeneratorParams) -> np.ndarray:
    """[n] int16 kind indices: round(n * positive_fraction) bull flags, the rest by weight."""
    n_pos = round(n * p.positive_fraction)
    weights = np.asarray(p.negative_weights, dtype=np.float64)
    kinds = np.zeros(n, dtype=np.int16)
    if n > n_pos:
        others = np.arange(1, len(KINDS))
        kinds[n_pos:] = rng.choice(others, size=n - n_pos, p=weights / weights.sum())
    return rng.permutation(kinds)


def _plan_chunk(rng: np.random.Generator, kind: np.ndarray, p: GeneratorParams, total: int) -> _Plan:
    """Segment tables of a chunk of windows, rows in the order of ``kind``."""
    m = kind.shape[0]
    seg = _blank_segments(m)
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
    plan = _Plan(seg, end, has_pole, has_flag)
    _add_background(rng, plan, p, total)
    return plan


def _generate_chunk(
    rng: np.random.Generator, kind: np.ndarray, p: GeneratorParams, seq_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bars [m, seq_len, 5], labels [m, 4] and spans [m, 5, 2] of one chunk of windows."""
    m = kind.shape[0]
    total = seq_len + _HISTORY_BARS
    plan = _plan_chunk(rng, kind, p, total)
    sigma = _log_uniform(rng, p.sigma_range, m)
    series = _render(rng, _per_bar(plan.seg, total), sigma, p)
    series = _fill_missing(series, _gap_mask(rng, m, total, seq_len, p))
    bars = series[:, _HISTORY_BARS:]

    begin = np.cumsum(plan.seg["length"], axis=1) - plan.seg["length"] - _HISTORY_BARS
    stop = begin + plan.seg["length"]
    pole = np.stack([begin[:, _POLE_SLOT], stop[:, _POLE_SLOT]], axis=1).astype(np.int64)
    flag = np.stack([begin[:, _FLAG_SLOT], stop[:, _FLAG_SLOT]], axis=1).astype(np.int64)
    labels = np.zeros((m, len(HEADS)), dtype=np.float32)
    spans = np.full((m, len(PHASES), 2), -1, dtype=np.int32)
    spans[:, 0] = _span(pole[:, 0], pole[:, 1], plan.has_pole, seq_len)
    spans[:, 1] = _span(flag[:, 0], flag[:, 1], plan.has_flag, seq_len)

    bull, failed = KINDS.index("bull_flag"), KINDS.index("failed_breakout")
    rows = np.flatnonzero((kind == bull) | (kind == failed))
    if rows.size:
        heads, phase_spans = label_windows(bars[rows], pole[rows], flag[rows], p)
        capped = kind[rows] == failed
        heads[capped, 2:] = 0.0
        phase_spans[capped, 3:] = -1
        labels[rows], spans[rows] = heads, phase_spans
    return bars, labels, spans


@dataclass(frozen=True)
class WindowChunk:
    """Rows ``[lo, hi)`` of a ``generate_windows`` draw: their kinds and the chunk's own seed.

    Chunks are independent, so they can be generated in any order or process with the same result.
    """

    lo: int
    hi: int
    kind: np.ndarray
    seed: np.random.SeedSequence


def window_chunks(
    n: int, seed: int, params: GeneratorParams = DEFAULT_PARAMS, seq_len: int = SEQ_LEN
) -> list[WindowChunk]:
    """Split a draw of ``n`` windows from ``seed`` into chunks of about ``_CHUNK_BARS`` bars."""
    if n < 0 or seq_len < 2 * params.min_flag_bars:
        raise ValueError("n must be >= 0 and seq_len at least twice min_flag_bars")
    chunk = max(_CHUNK_BARS // (seq_len + _HISTORY_BARS), 1)
    starts = range(0, n, chunk)
    kind_seed, *chunk_seeds = np.random.SeedSequence(seed).spawn(1 + len(starts))
    kind = _kinds(np.random.default_rng(kind_seed), n, params)
    return [
        WindowChunk(lo, min(lo + chunk, n), kind[lo : lo + chunk], child)
        for lo, child in zip(starts, chunk_seeds, strict=True)
    ]


def generate_chunk(
    chunk: WindowChunk, params: GeneratorParams = DEFAULT_PARAMS, seq_len: int = SEQ_LEN
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bars ``[m, seq_len, 5]``, labels ``[m, 4]`` and spans ``[m, 5, 2]`` of one chunk."""
    return _generate_chunk(np.random.default_rng(chunk.seed), chunk.kind, params, seq_len)


def generate_windows(
    n: int, seed: int, params: GeneratorParams = DEFAULT_PARAMS, seq_len: int = SEQ_LEN
) -> SyntheticBatch:
    """Draw n labelled windows [n, seq_len, 5], each from its own series, deterministic from seed.

    Work is done chunk by chunk (``window_chunks``), so memory stays bounded and the result
    depends only on (n, seed, params, seq_len).
    """
    chunks = window_chunks(n, seed, params, seq_len)
    bars = np.empty((n, seq_len, 5))
    labels = np.empty((n, len(HEADS)), dtype=np.float32)
    spans = np.empty((n, len(PHASES), 2), dtype=np.int32)
    for chunk in chunks:
        bars[chunk.lo : chunk.hi], labels[chunk.lo : chunk.hi], spans[chunk.lo : chunk.hi] = generate_chunk(
            chunk, params, seq_len
        )
    kind = np.concatenate([c.kind for c in chunks]) if chunks else np.zeros(0, dtype=np.int16)
    return SyntheticBatch(bars=bars, labels=labels, kind=kind, spans=spans, seed=seed)


def _random_walk_chunk(
    rng: np.random.Generator, m: int, length: int, missing_rate: float, p: GeneratorParams
) -> np.ndarray:
    """[m, length, 5] pattern-free series: regimes of drift and volatility, then missing bars."""
    slots = length // _REGIME_BARS[0] + 1
    seg = _blank_segments(m, slots)
    seg["length"][:] = rng.integers(_REGIME_BARS[0], _REGIME_BARS[1] + 1, (m, slots))
    seg["length"][:, -1] = length
    seg["drift"][:] = rng.normal(0.0, p.background_drift_sd, (m, slots))
    seg["noise"][:] = rng.uniform(*p.regime_noise_range, (m, slots))
    series = _render(rng, _per_bar(seg, length), _log_uniform(rng, p.sigma_range, m), p)
    missing = rng.random((m, length)) < missing_rate
    missing[:, 0] = False
    return _fill_missing(series, missing)


def generate_random_walk_series(
    n_series: int, length: int, seed: int, params: GeneratorParams = DEFAULT_PARAMS
) -> np.ndarray:
    """Long pattern-free series [n_series, length, 5] for false-alarm tests (a model slides over).

    Regimes of 40-200 bars draw their own drift and volatility; noise, OHLC and volume are
    rendered as for windows (volume carries no phase), and bars go missing at the default
    windows' average per-bar rate. Deterministic from seed.
    """
    if n_series < 0 or length < 2:
        raise ValueError("n_series must be >= 0 and length >= 2")
    rows = max(_CHUNK_BARS // length, 1)
    starts = range(0, n_series, rows)
    missing_per_window = 0.5 * sum(params.gap_runs_range) * 0.5 * (1 + _GAP_RUN_MAX)
    rate = params.gap_probability * missing_per_window / SEQ_LEN
    out = np.empty((n_series, length, 5))
    for lo, child in zip(starts, np.random.SeedSequence(seed).spawn(len(starts)), strict=True):
        hi = min(lo + rows, n_series)
        out[lo:hi] = _random_walk_chunk(np.random.default_rng(child), hi - lo, length, rate, params)
    return out
