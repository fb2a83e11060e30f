"""Real-vs-generated shift measures against independent oracles: KS by brute force, AUC on known cases."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bullflag_model.realdata.shift import (
    STATISTICS,
    channel_shift,
    classifier_auc,
    fit_logistic,
    ks_statistic,
    window_statistics,
)

samples = arrays(
    np.float64, st.integers(1, 30), elements=st.floats(-5, 5, allow_nan=False).map(lambda x: round(x, 1))
)


def _ks_brute(a: np.ndarray, b: np.ndarray) -> float:
    """KS statistic by evaluating both empirical CDFs at every observed value."""
    return max(abs((a <= x).mean() - (b <= x).mean()) for x in np.concatenate([a, b]))


@given(samples, samples)
def test_ks_matches_brute_force_and_is_symmetric(a: np.ndarray, b: np.ndarray) -> None:
    assert abs(ks_statistic(a, b) - _ks_brute(a, b)) < 1e-12
    assert ks_statistic(a, b) == ks_statistic(b, a)
    assert ks_statistic(a, a) == 0.0


def test_ks_of_disjoint_samples_is_one() -> None:
    assert ks_statistic(np.arange(5.0), np.arange(10.0, 15.0)) == 1.0


@settings(max_examples=25)
@given(arrays(np.float64, (3, 2, 12), elements=st.floats(-3, 3, allow_nan=False)))
def test_window_statistics_match_per_window_numpy(x: np.ndarray) -> None:
    stats = window_statistics(x)
    assert stats.shape == (3, 2, len(STATISTICS))
    for i in range(3):
        for k in range(2):
            w = x[i, k]
            assert np.isclose(stats[i, k, 0], w.mean())
            assert np.isclose(stats[i, k, 1], w.std())
            assert np.isclose(stats[i, k, 7], np.abs(w).max())
            if w.var() > 1e-9:
                c = w - w.mean()
                assert np.isclose(stats[i, k, 3], (c[1:] * c[:-1]).mean() / w.var())


def test_classifier_separates_shifted_sets_and_not_identical_ones() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    assert classifier_auc(a + 3.0, b) > 0.99
    assert abs(classifier_auc(a, b) - 0.5) < 0.1
    assert classifier_auc(a, b) == classifier_auc(a.copy(), b.copy())


def test_logistic_fit_recovers_the_sign_of_a_known_effect() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 2))
    y = (rng.random(2000) < 1 / (1 + np.exp(-(2.0 * x[:, 0])))).astype(float)
    w = fit_logistic(x, y)
    assert 1.5 < w[0] < 2.5 and abs(w[1]) < 0.3


def test_channel_shift_flags_only_the_changed_channel() -> None:
    rng = np.random.default_rng(2)
    real, syn = rng.normal(size=(300, 2, 40)), rng.normal(size=(300, 2, 40))
    real[:, 1] *= 2.0
    shift = channel_shift(real, syn, ("same", "wider"))
    assert shift["same"]["classifier_auc"] < 0.65 and shift["wider"]["classifier_auc"] > 0.95
    assert shift["same"]["ks"] < shift["wider"]["ks"]
