"""The shared feature function: shapes, scale invariance, and no NaN/inf on degenerate windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from bullflag_model.features import FEATURE_SPEC, N_FEATURES, build_features
from tests.strategies import ohlcv_windows, random_bars


def test_shape_and_dtype_follow_leading_dims() -> None:
    bars = random_bars(6).reshape(2, 3, 200, 5)
    features = build_features(bars)
    assert features.shape == (2, 3, N_FEATURES, 200)
    assert features.dtype == np.float32
    assert len(FEATURE_SPEC.channels) == N_FEATURES


@pytest.mark.parametrize("factor", [1_000.0, 0.001])
def test_scale_invariant_in_price(factor: float) -> None:
    bars = random_bars(8, seed=1)
    scaled = bars.copy()
    scaled[..., :4] *= factor
    np.testing.assert_allclose(build_features(scaled), build_features(bars), atol=1e-5)


def test_volume_scale_does_not_matter() -> None:
    bars = random_bars(4, seed=2)
    scaled = bars.copy()
    scaled[..., 4] *= 37.0
    np.testing.assert_allclose(build_features(scaled), build_features(bars), atol=1e-5)


def test_batch_rows_are_independent() -> None:
    bars = random_bars(5, seed=3)
    batch = build_features(bars)
    for i in range(len(bars)):
        np.testing.assert_array_equal(build_features(bars[i]), batch[i])


def test_flat_zero_volume_window_gives_all_zero_features() -> None:
    bars = np.zeros((200, 5))
    bars[:, :4] = 12.5
    features = build_features(bars)
    assert np.isfinite(features).all()
    assert np.count_nonzero(features) == 0


def test_non_finite_and_non_positive_inputs_never_reach_the_model() -> None:
    bars = random_bars(1, seed=4)[0]
    bars[10, 3] = np.nan
    bars[20, 1] = np.inf
    bars[30, 2] = 0.0
    bars[40, 4] = -5.0
    assert np.isfinite(build_features(bars)).all()


def test_rejects_wrong_last_axis() -> None:
    with pytest.raises(ValueError, match=r"\[\.\.\., L, 5\]"):
        build_features(np.zeros((200, 4)))


@settings(max_examples=60, deadline=None)
@given(ohlcv_windows())
def test_features_always_finite_and_bounded(bars: np.ndarray) -> None:
    features = build_features(bars)
    assert features.shape == (N_FEATURES, 200)
    assert np.isfinite(features).all()
    assert np.abs(features).max() <= 10.0
    in_range = features[4:7]
    assert in_range.min() >= 0.0
    assert in_range.max() <= 1.0 + 1e-6
