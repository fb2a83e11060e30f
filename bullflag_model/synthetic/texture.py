"""Market textures rendering adds on request: AR(1) filters, smooth and seasonal volume, gap bars, ticks.

Pure numpy, vectorised over a chunk's rows. Each helper is called by ``rendering`` only when its
knob in ``GeneratorParams`` is on, so the default windows draw exactly what they drew before.
"""

from __future__ import annotations

import numpy as np

from bullflag_model.synthetic.draws import uniform
from bullflag_model.synthetic.params import GeneratorParams

_AR_BLOCK = 64


def ar1(shocks: np.ndarray, coef: np.ndarray, initial: np.ndarray) -> np.ndarray:
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


def smooth_noise(rng: np.random.Generator, noise: np.ndarray, persistence: tuple[float, float]) -> np.ndarray:
    """Independent noise ``[m, L]`` made AR(1) with a per-row coefficient, keeping its variance."""
    phi = uniform(rng, persistence, noise.shape[0])[:, None]
    initial = noise[:, 0] / np.sqrt(1.0 - phi[:, 0] ** 2)
    return ar1(noise * np.sqrt(1.0 - phi**2), phi, initial)


def seasonal_cycle(rng: np.random.Generator, m: int, total: int, p: GeneratorParams) -> np.ndarray:
    """[m, L] log-volume cycle of ``volume_season_bars`` bars in a ``volume_season_probability`` share.

    A session's volume is high at its open and close and low in between: ``amp * cos`` of the bar's
    phase in the cycle, which starts at a random bar per row.
    """
    period = p.volume_season_bars
    on = rng.random(m) < p.volume_season_probability
    amp = uniform(rng, p.volume_season_range, m) * on
    start = rng.integers(0, period, m)[:, None]
    phase = 2.0 * np.pi * ((np.arange(total)[None, :] + start) % period) / period
    return amp[:, None] * np.cos(phase)


def jump_bars(j: np.ndarray, length: np.ndarray, count: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """[m, L] 1.0 on the ``count`` gap bars of each bar's segment, else 0.0.

    ``j`` is the bar's index in its segment of ``length`` bars; the gap bars sit at
    ``1 + floor((i + phase) * (length - 1) / count)`` for i < count, never on the segment's first
    bar (a gap there would fall before the segment's first open).
    """
    count = np.minimum(count, np.maximum(length - 1.0, 0.0))
    spacing = (length - 1.0) / np.maximum(count, 1.0)
    i = np.ceil((j - 1.0) / np.maximum(spacing, 1e-12) - phase)
    hit = (j >= 1) & (i >= 0) & (i < count) & (np.floor((i + phase) * spacing) == j - 1)
    return hit.astype(np.float64)


def round_to_ticks(prices: np.ndarray, tick: np.ndarray) -> np.ndarray:
    """OHLC ``[m, L, 4]`` rounded to each row's ``tick [m]`` (0: unchanged), never below one tick."""
    step = np.where(tick > 0, tick, 1.0)[:, None, None]
    rounded = np.maximum(np.round(prices / step), 1.0) * step
    return np.where((tick > 0)[:, None, None], rounded, prices)
