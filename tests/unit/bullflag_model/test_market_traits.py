"""Open gaps and bare wicks in rendered bars: closes and volume stay, bars stay valid, shares follow knobs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bullflag_model.features import CLOSE, HIGH, LOW, OPEN, VOLUME
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams
from bullflag_model.synthetic.rendering import PerBarPlan, render

M, L = 8, 120


def _render(seed: int, **knobs: float | tuple[float, float]) -> np.ndarray:
    """Bars [M, L, 5] of a plain noisy plan, from ``seed``, with the given knobs."""
    plan = PerBarPlan(np.zeros((M, L)), np.ones((M, L)), np.ones((M, L)), np.zeros((M, L)))
    params = dataclasses.replace(DEFAULT_PARAMS, **knobs)  # type: ignore[arg-type]
    return render(np.random.default_rng(seed), plan, np.full(M, 0.01), params)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_knobs_keep_closes_volume_and_valid_bars(seed: int, gap: float, bare: float) -> None:
    plain = _render(seed)
    bars = _render(seed, open_gap_probability=gap, bare_wick_probability=bare)
    assert np.array_equal(bars[..., CLOSE], plain[..., CLOSE])
    assert np.array_equal(bars[..., VOLUME], plain[..., VOLUME])
    assert np.all(bars[..., HIGH] >= np.maximum(bars[..., OPEN], bars[..., CLOSE]) * (1 - 1e-12))
    assert np.all(bars[..., LOW] <= np.minimum(bars[..., OPEN], bars[..., CLOSE]) * (1 + 1e-12))


def test_full_carry_moves_every_bar_in_its_gap() -> None:
    bars = _render(1, open_gap_probability=1.0, open_gap_carry_range=(1.0, 1.0))
    np.testing.assert_allclose(bars[..., OPEN], bars[..., CLOSE], rtol=1e-12)


def test_bare_wicks_follow_their_probability() -> None:
    bars = _render(2, bare_wick_probability=0.3)
    top = bars[..., HIGH] <= np.maximum(bars[..., OPEN], bars[..., CLOSE]) * (1 + 1e-12)
    assert 0.25 < top.mean() < 0.35
    assert np.all(_render(2, bare_wick_probability=1.0)[..., LOW] >= 0)


def test_gap_share_follows_the_gap_probability() -> None:
    bars = _render(3, open_gap_probability=0.5, open_gap_carry_range=(0.8, 0.8))
    log_o, log_c = np.log(bars[..., OPEN]), np.log(bars[..., CLOSE])
    gaps = log_o[:, 1:] - log_c[:, :-1]
    moves = log_c[:, 1:] - log_c[:, :-1]
    carried = np.isclose(gaps, 0.8 * moves, rtol=1e-9, atol=1e-15)
    assert 0.42 < carried.mean() < 0.58


@pytest.mark.parametrize(
    "knobs",
    [{"open_gap_probability": 1.5}, {"bare_wick_probability": -0.1}, {"open_gap_carry_range": (0.5, 1.2)}],
)
def test_out_of_range_knobs_are_refused(knobs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must lie in"):
        GeneratorParams(**knobs)  # type: ignore[arg-type]
