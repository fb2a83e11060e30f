"""Rendering: segment tables -> OHLCV bars with realistic noise, bar ranges, volume and gaps.

The plan gives each bar a planned log-price step and a texture. Noise with stochastic volatility
(log-AR(1), clustering like GARCH) and Student-t shocks is added, as a random walk in ordinary
segments and mean-reverting around the planned channel in consolidations; each bar's high and low
are the sampled extremes of a Brownian bridge from its open to its close (the exact continuous
limit of a finer sub-bar path); volume follows the pattern's phases, absolute returns, a slow
regime, noise and decaying spikes. A share of windows gets missing intervals in the serving
worker's form: a flat bar at the previous close, volume 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bullflag_model.features import CLOSE, HIGH, LOW, OPEN, VOLUME
from bullflag_model.synthetic.draws import log_uniform, uniform
from bullflag_model.synthetic.params import GeneratorParams
from bullflag_model.synthetic.texture import ar1, jump_bars, round_to_ticks, seasonal_cycle, smooth_noise

_TRANSIENT_DECAY = 0.5
GAP_RUN_MAX = 3
_OPEN_GAP = 0.1
_VOLUME_REGIME = (0.95, 0.25)
_VOLUME_SPIKE_DECAY = 0.6


@dataclass
class PerBarPlan:
    """Per-bar planned path and modulation of a chunk of series, each [m, L]."""

    step: np.ndarray
    noise: np.ndarray
    revert: np.ndarray
    volume: np.ndarray
    jump: np.ndarray | None = None


def per_bar(seg: dict[str, np.ndarray], total: int) -> PerBarPlan:
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
    if not seg["jump"].any():
        return PerBarPlan(step, at("noise"), at("revert"), volume)
    jump = at("jump") * jump_bars(j, at("length"), at("jump_bars"), at("jump_phase"))
    return PerBarPlan(step + jump, at("noise"), at("revert"), volume, jump)


def render(rng: np.random.Generator, plan: PerBarPlan, sigma: np.ndarray, p: GeneratorParams) -> np.ndarray:
    """Draw OHLCV [m, L, 5] around a planned path (sigma units) with realistic noise.

    Shocks are unit-variance Student-t, clipped at ``max_shock`` so one draw cannot dwarf the
    pattern, scaled by stochastic volatility; in segments with revert < 1 they revert
    around the planned path instead of accumulating. Highs and lows are sampled extremes of a
    Brownian bridge from open to close, so high >= max(open, close) and low <= min(open, close).
    Volume carries the phases' multipliers and absolute returns unless ``volume_informative`` is
    False, when it is noise alone. Random draws do not depend on the shift knobs.
    """
    m, total = plan.step.shape
    dof = uniform(rng, p.t_dof_range, m)[:, None]
    shocks = rng.standard_t(dof, size=(m, total)) * np.sqrt((dof - 2.0) / dof)
    shocks = np.clip(shocks, -p.max_shock, p.max_shock)
    persistence = uniform(rng, p.vol_persistence_range, m)
    vol_of_vol = uniform(rng, p.vol_of_vol_range, m)
    log_vol = ar1(
        rng.standard_normal((m, total)) * (vol_of_vol * np.sqrt(1.0 - persistence**2))[:, None],
        persistence[:, None],
        rng.standard_normal(m) * vol_of_vol,
    )
    bar_sd = (sigma * p.volatility_scale)[:, None] * np.exp(log_vol) * plan.noise
    noise = bar_sd * shocks
    reverting = plan.revert < 1.0
    transient = ar1(
        np.where(reverting, noise, 0.0),
        np.where(reverting, plan.revert, _TRANSIENT_DECAY),
        np.zeros(m),
    )
    walk = np.cumsum(np.where(reverting, 0.0, noise), axis=1)
    log_start = np.log(log_uniform(rng, p.price_range, m))[:, None]
    close = log_start + np.cumsum(plan.step * sigma[:, None], axis=1) + walk + transient
    prev_close = np.concatenate([log_start, close[:, :-1]], axis=1)
    open_ = prev_close + _OPEN_GAP * bar_sd * rng.standard_normal((m, total))
    if plan.jump is not None:
        open_ = open_ + plan.jump * sigma[:, None]
    body = close - open_
    spread = 2.0 * bar_sd**2
    up = 0.5 * (body + np.sqrt(body**2 - spread * np.log1p(-rng.random((m, total)))))
    down = 0.5 * (body - np.sqrt(body**2 - spread * np.log1p(-rng.random((m, total)))))
    prices = np.exp(np.stack([open_, open_ + up, open_ + down, close], axis=-1))
    prices[..., HIGH] = prices.max(axis=-1)
    prices[..., LOW] = prices[..., [OPEN, CLOSE, LOW]].min(axis=-1)
    volume = _volume(rng, plan.volume, np.abs(shocks), p)
    wicks_change = p.wick_scale_range != (1.0, 1.0) or p.wick_noise_sd > 0
    if p.open_gap_probability > 0 or p.bare_wick_probability > 0 or wicks_change:
        prices = market_bar_traits(rng, prices, prev_close, p)
    if p.tick_sigma_range[1] > 0:
        prices = round_to_ticks(prices, np.exp(log_start[:, 0]) * sigma * uniform(rng, p.tick_sigma_range, m))
    return np.concatenate([prices, volume[..., None]], axis=-1)


def market_bar_traits(
    rng: np.random.Generator, prices: np.ndarray, prev_close: np.ndarray, p: GeneratorParams
) -> np.ndarray:
    """Open gaps and bare wicks on OHLC ``prices [m, L, 4]``, keeping every close.

    A gap bar opens at ``prev + carry * (close - prev)`` (log prices, ``prev_close [m, L]``), so
    the gap carries that share of the bar's move and the body the rest; its wicks keep their
    lengths. ``wick_scale_range`` scales a window's wicks, ``wick_noise_sd`` each wick; a
    bare-wick bar's high (low) is its body's; with ``market_trait_spread`` each window draws its
    own probabilities around the knobs'. Draws come after all others in ``render``, so closes
    and volume do not change.
    """
    logs = np.log(prices)
    o, h, low, c = (logs[..., i] for i in (OPEN, HIGH, LOW, CLOSE))
    m, total = c.shape
    top_wick = h - np.maximum(o, c)
    bottom_wick = np.minimum(o, c) - low
    spread = p.market_trait_spread
    gap_p = np.full((m, 1), p.open_gap_probability)
    bare_p = np.full((m, 1), p.bare_wick_probability)
    if spread > 0:
        gap_p = gap_p * (1.0 - spread + 3.0 * spread * rng.random((m, 1)) ** 2)
        bare_p = bare_p * (1.0 - spread + 3.0 * spread * rng.random((m, 1)) ** 2)
    if p.open_gap_probability > 0:
        gap = rng.random((m, total)) < gap_p
        carry = uniform(rng, p.open_gap_carry_range, m)[:, None]
        o = np.where(gap, prev_close + carry * (c - prev_close), o)
    if p.wick_scale_range != (1.0, 1.0):
        scale = uniform(rng, p.wick_scale_range, m)[:, None]
        top_wick, bottom_wick = scale * top_wick, scale * bottom_wick
    if p.wick_noise_sd > 0:
        sd = p.wick_noise_sd
        top_wick = top_wick * np.exp(sd * rng.standard_normal((m, total)) - sd * sd / 2.0)
        bottom_wick = bottom_wick * np.exp(sd * rng.standard_normal((m, total)) - sd * sd / 2.0)
    if p.bare_wick_probability > 0:
        top_wick = np.where(rng.random((m, total)) < bare_p, 0.0, top_wick)
        bottom_wick = np.where(rng.random((m, total)) < bare_p, 0.0, bottom_wick)
    out = np.stack([o, np.maximum(o, c) + top_wick, np.minimum(o, c) - bottom_wick, c], axis=-1)
    out = np.exp(out)
    out[..., CLOSE] = prices[..., CLOSE]
    return out


def _volume(
    rng: np.random.Generator, phase: np.ndarray, abs_shock: np.ndarray, p: GeneratorParams
) -> np.ndarray:
    """Traded volume [m, L] (whole units, at least 1): level, slow regime, noise, decaying spikes.

    ``phase`` is the log multiplier of the pattern phases; it and the link to |shock| are dropped
    when ``volume_informative`` is False.
    """
    m: int = phase.shape[0]
    total: int = phase.shape[1]
    level = np.log(log_uniform(rng, p.base_volume_range, m))[:, None]
    persistence, spread = _VOLUME_REGIME
    regime = ar1(
        rng.normal(0.0, spread * math.sqrt(1.0 - persistence**2), (m, total)),
        np.full((m, 1), persistence),
        rng.normal(0.0, spread, m),
    )
    jolt = (rng.random((m, total)) < p.volume_spike_probability) * rng.uniform(
        *p.volume_spike_range, (m, total)
    )
    spikes = ar1(jolt, np.full((m, 1), _VOLUME_SPIKE_DECAY), np.zeros(m))
    coupling = uniform(rng, p.volume_coupling_range, m)[:, None]
    noise = rng.normal(0.0, p.volume_noise_sd, (m, total))
    if p.volume_persistence_range[1] > 0:
        noise = smooth_noise(rng, noise, p.volume_persistence_range)
    log_volume = level + regime + spikes + noise
    if p.volume_season_probability > 0:
        log_volume = log_volume + seasonal_cycle(rng, m, total, p)
    if p.quiet_volume_probability > 0:
        quiet = rng.random(m) < p.quiet_volume_probability
        phase = phase * np.where(quiet, uniform(rng, p.quiet_volume_scale_range, m), 1.0)[:, None]
    if p.volume_informative:
        log_volume = log_volume + phase + coupling * np.log1p(abs_shock)
    if p.volume_scale_range != (1.0, 1.0):
        log_volume = level + uniform(rng, p.volume_scale_range, m)[:, None] * (log_volume - level)
    return np.maximum(np.round(np.exp(log_volume)), 1.0)


def gap_mask(rng: np.random.Generator, m: int, total: int, window: int, p: GeneratorParams) -> np.ndarray:
    """[m, total] bool: a few short runs of missing bars inside the window, in a share of rows."""
    runs_max = p.gap_runs_range[1]
    has_gap = rng.random(m) < p.gap_probability
    runs = rng.integers(p.gap_runs_range[0], runs_max + 1, m)
    first = max(total - window, 1)
    start = rng.integers(first, total, (m, runs_max))
    run_len = rng.integers(1, GAP_RUN_MAX + 1, (m, runs_max))
    active = (np.arange(runs_max)[None, :] < runs[:, None]) & has_gap[:, None]
    t = np.arange(total)[None, None, :]
    hit = (t >= start[..., None]) & (t < (start + run_len)[..., None]) & active[..., None]
    return np.any(hit, axis=1)


def fill_missing(bars: np.ndarray, missing: np.ndarray) -> np.ndarray:
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
