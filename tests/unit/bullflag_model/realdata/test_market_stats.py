"""Market traits on bars built to have them: gaps, missing wicks, smooth volume, gap-carried poles."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bullflag_model.realdata.market_stats import bar_statistics, pole_statistics


def _series(closes: np.ndarray, opens: np.ndarray, volume: np.ndarray, wick: float = 0.001) -> np.ndarray:
    """Bars [1, T, 5] from closes and opens, with a relative wick either side."""
    top, bottom = np.maximum(opens, closes) * (1 + wick), np.minimum(opens, closes) * (1 - wick)
    return np.stack([opens, top, bottom, closes, volume], axis=1)[None]


def test_no_gaps_and_all_gaps() -> None:
    closes = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 300)))
    prev = np.concatenate([closes[:1], closes[:-1]])
    volume = np.full(300, 10.0)
    assert bar_statistics(_series(closes, prev, volume))["gap_variance_share"] < 1e-20
    all_gap = bar_statistics(_series(closes, closes, volume))
    assert abs(all_gap["gap_variance_share"] - 1.0) < 1e-12


def test_wickless_bars_are_counted() -> None:
    closes = np.linspace(100, 120, 200)
    bars = _series(closes, closes * 0.999, np.full(200, 5.0))
    bars[0, ::4, 1] = np.maximum(bars[0, ::4, 0], bars[0, ::4, 3])
    stats = bar_statistics(bars)
    assert stats["no_upper_wick_fraction"] == 0.25 and stats["no_lower_wick_fraction"] == 0.0


@settings(max_examples=40)
@given(arrays(np.float64, st.integers(5, 60), elements=st.floats(0.5, 50.0)))
def test_volume_autocorr_matches_a_plain_formula(volume: np.ndarray) -> None:
    closes = np.full(volume.size, 100.0)
    got = bar_statistics(_series(closes, closes, volume))["log_volume_lag1_autocorr"]
    c = np.log(volume) - np.log(volume).mean()
    want = np.mean(c[1:] * c[:-1]) / np.mean(c * c) if np.mean(c * c) > 1e-12 else 0.0
    assert abs(got - want) < 1e-9


def test_zero_volume_bars_are_left_out_of_the_volume_autocorr() -> None:
    volume = np.tile([1.0, 10.0], 50)
    closes = np.full(100, 100.0)
    assert bar_statistics(_series(closes, closes, volume))["log_volume_lag1_autocorr"] < -0.99
    volume[::7] = 0.0
    assert np.isfinite(bar_statistics(_series(closes, closes, volume))["log_volume_lag1_autocorr"])


def test_a_pole_made_of_one_gap_has_gap_share_near_one_and_its_volume_ratio() -> None:
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(np.concatenate([rng.normal(0, 0.004, 190), np.zeros(10)])))
    opens = np.concatenate([closes[:1], closes[:-1]])
    volume = np.full(200, 10.0)
    closes[185:] *= 1.2  # one overnight jump of 20 % at bar 185, carried by the open
    opens[186:] *= 1.2
    opens[185] = closes[185]
    volume[185] = 30.0
    window = _series(closes, opens, volume)
    stats = pole_statistics(window)
    assert stats["windows"] == 1
    assert stats["pole_gap_share"] > 0.9
    assert stats["pole_volume_ratio"] > 1.0
