"""Long pattern-free series for false-alarm tests: a model slides over them bar by bar.

They are rendered like windows (noise, bar ranges, volume, missing bars) from regimes of drift and
volatility only, so every signal raised on them is a false alarm.
"""

from __future__ import annotations

import numpy as np

from bullflag_model.features import SEQ_LEN
from bullflag_model.synthetic.chunks import CHUNK_BARS
from bullflag_model.synthetic.draws import log_uniform
from bullflag_model.synthetic.params import DEFAULT_PARAMS, GeneratorParams
from bullflag_model.synthetic.rendering import GAP_RUN_MAX, fill_missing, per_bar, render
from bullflag_model.synthetic.segments import blank_segments

_REGIME_BARS = (40, 200)


def _random_walk_chunk(
    rng: np.random.Generator, m: int, length: int, missing_rate: float, p: GeneratorParams
) -> np.ndarray:
    """[m, length, 5] pattern-free series: regimes of drift and volatility, then missing bars."""
    slots = length // _REGIME_BARS[0] + 1
    seg = blank_segments(m, slots)
    seg["length"][:] = rng.integers(_REGIME_BARS[0], _REGIME_BARS[1] + 1, (m, slots))
    seg["length"][:, -1] = length
    seg["drift"][:] = rng.normal(0.0, p.background_drift_sd, (m, slots))
    seg["noise"][:] = rng.uniform(*p.regime_noise_range, (m, slots))
    series = render(rng, per_bar(seg, length), log_uniform(rng, p.sigma_range, m), p)
    missing = rng.random((m, length)) < missing_rate
    missing[:, 0] = False
    return fill_missing(series, missing)


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
    rows = max(CHUNK_BARS // length, 1)
    starts = range(0, n_series, rows)
    missing_per_window = 0.5 * sum(params.gap_runs_range) * 0.5 * (1 + GAP_RUN_MAX)
    rate = params.gap_probability * missing_per_window / SEQ_LEN
    out = np.empty((n_series, length, 5))
    for lo, child in zip(starts, np.random.SeedSequence(seed).spawn(len(starts)), strict=True):
        hi = min(lo + rows, n_series)
        out[lo:hi] = _random_walk_chunk(np.random.default_rng(child), hi - lo, length, rate, params)
    return out
