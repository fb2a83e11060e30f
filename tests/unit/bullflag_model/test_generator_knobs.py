"""The market-trait knobs: each does what it says, the defaults draw the same bytes as before."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bullflag_model.features import CLOSE, HIGH, LOW, OPEN, VOLUME
from bullflag_model.synthetic import (
    DEFAULT_PARAMS,
    KINDS,
    GeneratorParams,
    generate_random_walk_series,
    generate_windows,
)
from bullflag_model.synthetic.rendering import PerBarPlan, render
from bullflag_model.synthetic.texture import jump_bars, seasonal_cycle, smooth_noise

M, L = 64, 240
BULL = KINDS.index("bull_flag")
DEFAULT_WINDOWS_SHA256 = "5312fa1f764e42bec7efb57aea3b84971fa2268816dc25144d924091b5973eb6"
DEFAULT_WALKS_SHA256 = "b70badfef8f5287e43e80d24b342b7cdba27909750d609e5bf6f76bb58689ce1"
"""Digests of the generator's default output before the knobs existed (same seeds as below)."""


def _render(seed: int, phase: float = 0.0, **knobs: object) -> np.ndarray:
    """Bars [M, L, 5] of a flat plan with volume phase ``phase``, from ``seed``, with the knobs."""
    plan = PerBarPlan(np.zeros((M, L)), np.ones((M, L)), np.ones((M, L)), np.full((M, L), phase))
    params = dataclasses.replace(DEFAULT_PARAMS, **knobs)  # type: ignore[arg-type]
    return render(np.random.default_rng(seed), plan, np.full(M, 0.01), params)


def _lag1(x: np.ndarray) -> float:
    """Lag-1 autocorrelation of the rows of x [m, T], centred per row and pooled."""
    c = x - x.mean(axis=1, keepdims=True)
    return float((c[:, 1:] * c[:, :-1]).sum() / (c * c).sum())


def test_default_output_is_bit_identical_to_before_the_knobs() -> None:
    batch = generate_windows(300, 7)
    digest = hashlib.sha256()
    for array in (batch.bars, batch.labels, batch.kind, batch.spans):
        digest.update(np.ascontiguousarray(array).tobytes())
    assert digest.hexdigest() == DEFAULT_WINDOWS_SHA256
    walks = generate_random_walk_series(4, 500, 3)
    assert hashlib.sha256(walks.tobytes()).hexdigest() == DEFAULT_WALKS_SHA256


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 30), st.integers(1, 3), st.floats(0.0, 0.999))
def test_jump_bars_fall_inside_the_segment_after_its_first_bar(length: int, count: int, phase: float) -> None:
    j = np.arange(length, dtype=np.float64)[None, :]
    full = np.full_like(j, 1.0)
    hits = jump_bars(j, full * length, full * count, full * phase)
    assert hits[0, 0] == 0.0
    assert hits.sum() == min(count, length - 1)


def test_gap_poles_carry_the_requested_share_of_their_gain() -> None:
    knobs = {"pole_gap_probability": 1.0, "pole_gap_share_range": (0.6, 0.6), "gap_probability": 0.0}
    batch = generate_windows(400, 11, dataclasses.replace(DEFAULT_PARAMS, **knobs))  # type: ignore[arg-type]
    start, end = batch.spans[:, 0, 0], batch.spans[:, 0, 1]
    rows = np.flatnonzero((batch.kind == BULL) & (start > 0) & (end < L - 40) & (end - start >= 4))
    logs = np.log(batch.bars[rows, :, :4])
    gaps = logs[:, 1:, OPEN] - logs[:, :-1, CLOSE]
    t = np.arange(1, logs.shape[1])[None, :]
    inside = (t > start[rows, None]) & (t < end[rows, None])
    gain = logs[np.arange(rows.size), end[rows] - 1, CLOSE] - logs[np.arange(rows.size), start[rows], OPEN]
    share = (gaps * inside).sum(axis=1) / gain
    assert rows.size > 50
    assert abs(float(np.median(share)) - 0.6) < 0.08


def test_smooth_noise_has_the_requested_autocorrelation_and_variance() -> None:
    rng = np.random.default_rng(3)
    noise = smooth_noise(rng, rng.normal(0.0, 0.3, (400, L)), (0.85, 0.85))
    assert abs(_lag1(noise) - 0.85) < 0.03
    assert abs(float(noise.std()) - 0.3) < 0.03


def test_volume_persistence_smooths_log_volume() -> None:
    knobs = {"volume_informative": False, "volume_spike_probability": 0.0}
    plain = np.log(_render(4, **knobs)[..., VOLUME])
    smooth = np.log(_render(4, volume_persistence_range=(0.9, 0.9), **knobs)[..., VOLUME])
    regime, noise = 0.25**2, DEFAULT_PARAMS.volume_noise_sd**2
    assert _lag1(smooth) > _lag1(plain) + 0.3
    assert abs(_lag1(smooth) - (0.95 * regime + 0.9 * noise) / (regime + noise)) < 0.08


def test_seasonal_cycle_repeats_in_the_requested_share_of_rows() -> None:
    params = dataclasses.replace(
        DEFAULT_PARAMS, volume_season_probability=0.5, volume_season_bars=24, volume_season_range=(0.4, 0.4)
    )
    cycle = seasonal_cycle(np.random.default_rng(5), 400, 96, params)
    np.testing.assert_allclose(cycle[:, 24:], cycle[:, :-24], atol=1e-12)
    on = np.abs(cycle).max(axis=1) > 0
    assert 0.42 < on.mean() < 0.58
    np.testing.assert_allclose(np.abs(cycle[on]).max(axis=1), 0.4, rtol=1e-9)


def test_quiet_volume_drops_the_phase_multipliers() -> None:
    knobs = {"quiet_volume_probability": 1.0, "quiet_volume_scale_range": (0.0, 0.0)}
    quiet = _render(6, 2.0, **knobs)[..., VOLUME]
    np.testing.assert_array_equal(quiet, _render(6, 0.0, **knobs)[..., VOLUME])
    assert np.log(_render(6, 2.0)[..., VOLUME]).mean() > np.log(quiet).mean() + 1.5


def test_volume_scale_zero_gives_flat_volume() -> None:
    volume = _render(7, 1.0, volume_scale_range=(0.0, 0.0))[..., VOLUME]
    np.testing.assert_array_equal(volume, volume[:, :1] * np.ones((1, L)))


def test_trait_spread_keeps_the_mean_rate_and_spreads_windows() -> None:
    bars = _render(8, bare_wick_probability=0.1, market_trait_spread=1.0)
    bare = bars[..., HIGH] <= np.maximum(bars[..., OPEN], bars[..., CLOSE]) * (1 + 1e-12)
    per_window = bare.mean(axis=1)
    assert 0.08 < per_window.mean() < 0.12
    assert per_window.std() > 2.0 * np.sqrt(0.1 * 0.9 / L)


def test_ticks_round_every_price_and_keep_bars_valid() -> None:
    bars = _render(9, tick_sigma_range=(0.5, 0.5))
    prices = bars[..., :4].reshape(M, -1)
    steps = np.diff(np.unique(prices[0]))
    tick = steps.min()
    np.testing.assert_allclose(steps / tick, np.round(steps / tick), atol=1e-6)
    assert np.all(bars[..., HIGH] >= np.maximum(bars[..., OPEN], bars[..., CLOSE]))
    assert np.all(bars[..., LOW] <= np.minimum(bars[..., OPEN], bars[..., CLOSE]))
    assert np.all(bars[..., :4] > 0)


@pytest.mark.parametrize(
    "knobs",
    [
        {"pole_gap_probability": 1.5},
        {"pole_gap_share_range": (0.5, 1.2)},
        {"volume_persistence_range": (0.5, 1.0)},
        {"volume_persistence_range": (0.0, 0.5)},
        {"market_trait_spread": 1.5},
        {"wick_noise_sd": -0.1},
        {"quiet_volume_probability": -0.1},
        {"volume_season_bars": 1},
        {"pole_gap_bars_range": (0, 2)},
    ],
)
def test_out_of_range_knobs_are_refused(knobs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        GeneratorParams(**knobs)  # type: ignore[arg-type]


def test_wick_scale_scales_wicks_and_keeps_closes() -> None:
    plain, scaled = _render(10), _render(10, wick_scale_range=(0.5, 0.5))
    np.testing.assert_array_equal(scaled[..., CLOSE], plain[..., CLOSE])
    top = np.log(plain[..., HIGH] / np.maximum(plain[..., OPEN], plain[..., CLOSE]))
    top_scaled = np.log(scaled[..., HIGH] / np.maximum(scaled[..., OPEN], scaled[..., CLOSE]))
    np.testing.assert_allclose(top_scaled, 0.5 * top, atol=1e-12)


def test_real_market_preset_validates_and_labels_consistently() -> None:
    preset = GeneratorParams.real_market()
    assert GeneratorParams.from_dict(preset.as_dict()) == preset
    ratio = DEFAULT_PARAMS.min_pole_z / DEFAULT_PARAMS.pole_strength_range[0]
    assert preset.min_pole_z <= ratio * preset.pole_strength_range[0] + 1e-9
    batch = generate_windows(400, 12, preset)
    again = generate_windows(400, 12, preset)
    np.testing.assert_array_equal(batch.bars, again.bars)
    bars = batch.bars
    assert np.isfinite(bars).all() and (bars[..., :4] > 0).all()
    assert (bars[..., HIGH] >= np.maximum(bars[..., OPEN], bars[..., CLOSE])).all()
    assert (bars[..., LOW] <= np.minimum(bars[..., OPEN], bars[..., CLOSE])).all()
    assert (np.diff(batch.labels, axis=1) <= 0).all()
    assert batch.labels[batch.kind == BULL, 0].mean() > 0.4


def test_wick_noise_spreads_wicks_around_their_length() -> None:
    plain, noisy = _render(13), _render(13, wick_noise_sd=0.5)
    np.testing.assert_array_equal(noisy[..., CLOSE], plain[..., CLOSE])
    top = np.log(plain[..., HIGH] / np.maximum(plain[..., OPEN], plain[..., CLOSE]))
    top_noisy = np.log(noisy[..., HIGH] / np.maximum(noisy[..., OPEN], noisy[..., CLOSE]))
    ratio = np.log(top_noisy[top > 1e-9] / top[top > 1e-9])
    assert abs(float(ratio.std()) - 0.5) < 0.03
    assert abs(float(np.exp(ratio).mean()) - 1.0) < 0.03
