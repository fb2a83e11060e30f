"""The synthetic window generator: bar invariants, causal labels, determinism and shift knobs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bullflag_model.synthetic import (
    HEADS,
    KINDS,
    PHASES,
    GeneratorParams,
    PhaseStyle,
    SyntheticBatch,
    generate_random_walk_series,
    generate_windows,
    label_windows,
)

OPEN, HIGH, LOW, CLOSE, VOLUME = range(5)
BULL = KINDS.index("bull_flag")
FAILED = KINDS.index("failed_breakout")
RANDOM_WALK_ONLY = (1.0,) + (0.0,) * (len(KINDS) - 2)

POLE_START, FLAG_START, FLAG_END = 200, 210, 230
BREAKOUT, RETEST, RECLAIM, NEW_HIGH = 230, 232, 234, 236
POLE_GAIN = 0.6


def _assert_valid_bars(bars: np.ndarray) -> None:
    """OHLCV [..., 5] is finite, positive, consistent high/low and non-negative volume."""
    assert np.isfinite(bars).all()
    assert (bars[..., :4] > 0).all()
    assert (bars[..., HIGH] >= np.maximum(bars[..., OPEN], bars[..., CLOSE])).all()
    assert (bars[..., LOW] <= np.minimum(bars[..., OPEN], bars[..., CLOSE])).all()
    assert (bars[..., VOLUME] >= 0).all()


def _assert_labels_consistent(batch: SyntheticBatch) -> None:
    """Labels nest, hard negatives stop short of retest, and labelled phases have valid spans."""
    labels, spans, length = batch.labels, batch.spans, batch.bars.shape[1]
    assert set(np.unique(labels)) <= {0.0, 1.0}
    assert (np.diff(labels, axis=1) <= 0).all(), "continuation => retest => breakout => flag"
    negative = batch.kind != BULL
    assert (labels[negative, 3] == 0).all(), "no hard negative is labelled continuation"
    assert (labels[negative & (batch.kind != FAILED)] == 0).all()
    assert (labels[batch.kind == FAILED, 2:] == 0).all()

    valid = (spans[..., 0] >= 0) & (spans[..., 0] < spans[..., 1]) & (spans[..., 1] <= length)
    absent = (spans == -1).all(axis=-1)
    assert (valid | absent).all()
    assert valid[:, 1:][labels == 1].all(), "a phase labelled 1 has a span inside the window"
    assert valid[:, 0][labels[:, 0] == 1].all()


def _flag_series(length: int = 400) -> np.ndarray:
    """Log closes [length] of a clean bull flag on a zigzag background.

    Pole 200-209 (+POLE_GAIN), a 20-bar flag zigzagging down, breakout close at 230, retest
    touch at 232, reclaim at 234, new high at 236, then a zigzag above it.
    """
    t = np.arange(length)
    close = 0.004 * (t % 2)
    top = 0.004 + POLE_GAIN
    close[POLE_START:FLAG_START] = 0.004 + POLE_GAIN / 10 * np.arange(1, 11)
    k = np.arange(FLAG_END - FLAG_START)
    close[FLAG_START:FLAG_END] = top - 0.002 * k - 0.03 * (k % 2)
    close[BREAKOUT : NEW_HIGH + 1] = top + np.array([0.0, -0.01, -0.03, -0.03, -0.01, -0.005, 0.02])
    close[NEW_HIGH + 1 :] = top + 0.02 + 0.004 * (t[NEW_HIGH + 1 :] % 2)
    return close


def _bars_from_closes(log_close: np.ndarray) -> np.ndarray:
    """OHLCV [L, 5]: open at the previous close, wicks of 0.1% beyond the body, volume 1000."""
    log_open = np.concatenate([log_close[:1], log_close[:-1]])
    high = np.maximum(log_open, log_close) + 0.001
    low = np.minimum(log_open, log_close) - 0.001
    prices = 50.0 * np.exp(np.stack([log_open, high, low, log_close], axis=-1))
    return np.concatenate([prices, np.full((len(log_close), 1), 1000.0)], axis=-1)


def _label_at(log_close: np.ndarray, end: int, window: int = 200) -> tuple[int, ...]:
    """Labels of the window of ``window`` bars ending at bar ``end`` of a constructed series."""
    first = end - window + 1
    bars = _bars_from_closes(log_close)[first : end + 1]
    pole = np.array([[POLE_START - first, FLAG_START - first]])
    flag = np.array([[FLAG_START - first, FLAG_END - first]])
    labels, spans = label_windows(bars[None], pole, flag)
    assert labels.shape == (1, len(HEADS)) and spans.shape == (1, len(PHASES), 2)
    return tuple(int(v) for v in labels[0])


def test_shapes_and_dtypes() -> None:
    batch = generate_windows(48, seed=0)
    assert batch.bars.shape == (48, 200, 5) and batch.bars.dtype == np.float64
    assert batch.labels.shape == (48, 4) and batch.labels.dtype == np.float32
    assert batch.kind.shape == (48,) and batch.kind.dtype == np.int16
    assert batch.spans.shape == (48, 5, 2) and batch.spans.dtype == np.int32
    assert batch.seed == 0
    assert generate_windows(5, seed=1, seq_len=64).bars.shape == (5, 64, 5)
    assert generate_windows(0, seed=1).bars.shape == (0, 200, 5)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    volatility_scale=st.floats(0.5, 3.0),
    flag_length_scale=st.floats(0.5, 2.0),
    gap_probability=st.floats(0.0, 1.0),
    volume_informative=st.booleans(),
)
def test_invariants_hold_over_seeds_and_knobs(
    seed: int,
    volatility_scale: float,
    flag_length_scale: float,
    gap_probability: float,
    volume_informative: bool,
) -> None:
    params = GeneratorParams(
        volatility_scale=volatility_scale,
        flag_length_scale=flag_length_scale,
        gap_probability=gap_probability,
        volume_informative=volume_informative,
    )
    batch = generate_windows(40, seed=seed, params=params)
    _assert_valid_bars(batch.bars)
    _assert_labels_consistent(batch)


def test_label_mix_covers_every_stage() -> None:
    batch = generate_windows(2000, seed=7)
    bull = batch.labels[batch.kind == BULL].astype(int)
    patterns = {tuple(row) for row in bull}
    assert {(0, 0, 0, 0), (1, 0, 0, 0), (1, 1, 0, 0), (1, 1, 1, 0), (1, 1, 1, 1)} <= patterns
    assert 0.05 < bull[:, 3].mean() < 0.5
    _assert_labels_consistent(batch)


def test_same_seed_same_windows_other_seed_other_windows() -> None:
    first, again, other = (generate_windows(64, seed=s) for s in (11, 11, 12))
    for name in ("bars", "labels", "kind", "spans"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.bars, other.bars)
    assert not np.array_equal(
        generate_random_walk_series(2, 300, seed=1), generate_random_walk_series(2, 300, seed=2)
    )
    np.testing.assert_array_equal(
        generate_random_walk_series(2, 300, seed=1), generate_random_walk_series(2, 300, seed=1)
    )


def test_positive_fraction_sets_the_share_of_bull_flags() -> None:
    batch = generate_windows(200, seed=3, params=GeneratorParams(positive_fraction=0.3))
    assert (batch.kind == BULL).sum() == 60
    assert set(np.unique(batch.kind)) <= set(range(len(KINDS)))
    only_bull = generate_windows(20, seed=3, params=GeneratorParams(positive_fraction=1.0))
    assert (only_bull.kind == BULL).all()


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (205, (0, 0, 0, 0)),
        (213, (0, 0, 0, 0)),
        (220, (1, 0, 0, 0)),
        (FLAG_END - 1, (1, 0, 0, 0)),
        (BREAKOUT, (1, 1, 0, 0)),
        (RETEST, (1, 1, 0, 0)),
        (RECLAIM, (1, 1, 1, 0)),
        (NEW_HIGH, (1, 1, 1, 1)),
        (NEW_HIGH + 20, (1, 1, 1, 1)),
        (NEW_HIGH + 21, (0, 0, 0, 0)),
    ],
)
def test_constructed_flag_is_labelled_by_stage(end: int, expected: tuple[int, ...]) -> None:
    assert _label_at(_flag_series(), end) == expected


def test_close_back_inside_the_flag_clears_breakout() -> None:
    closes = _flag_series()
    closes[BREAKOUT + 1] = closes[FLAG_START] - 0.05
    assert _label_at(closes, BREAKOUT) == (1, 1, 0, 0)
    assert _label_at(closes, BREAKOUT + 1) == (1, 0, 0, 0)


def test_close_below_the_flag_low_clears_every_head() -> None:
    closes = _flag_series()
    closes[BREAKOUT + 1] = closes[FLAG_START] - 0.1
    assert _label_at(closes, BREAKOUT + 1) == (0, 0, 0, 0)


def test_pole_must_start_inside_the_window() -> None:
    end = NEW_HIGH + 20
    assert _label_at(_flag_series(), end, window=end - POLE_START + 1) == (1, 1, 1, 1)
    assert _label_at(_flag_series(), end, window=end - POLE_START) == (0, 0, 0, 0)


def test_flat_pole_is_not_a_flag() -> None:
    closes = _flag_series()
    closes[POLE_START:FLAG_START] = 0.004 * (np.arange(10) % 2)
    closes[FLAG_START:] -= POLE_GAIN
    assert _label_at(closes, 220) == (0, 0, 0, 0)


def test_volatility_scale_raises_realised_volatility() -> None:
    params = GeneratorParams(positive_fraction=0.0, negative_weights=RANDOM_WALK_ONLY, gap_probability=0.0)
    calm = generate_windows(100, seed=5, params=params)
    wild = generate_windows(100, seed=5, params=dataclasses.replace(params, volatility_scale=3.0))

    def realised(batch: SyntheticBatch) -> np.ndarray:
        """Per-window standard deviation of close-to-close log returns."""
        return np.diff(np.log(batch.bars[..., CLOSE]), axis=1).std(axis=1)

    assert 2.5 < np.median(realised(wild) / realised(calm)) < 3.5


def test_flag_length_scale_lengthens_flags() -> None:
    params = GeneratorParams(positive_fraction=1.0, gap_probability=0.0)
    short = generate_windows(300, seed=6, params=params)
    long = generate_windows(300, seed=6, params=dataclasses.replace(params, flag_length_scale=2.0))

    def median_flag(batch: SyntheticBatch) -> float:
        """Median length of the flags that end inside their window."""
        start, stop = batch.spans[:, 1, 0], batch.spans[:, 1, 1]
        return float(np.median((stop - start)[(start >= 0) & (stop < batch.bars.shape[1])]))

    assert median_flag(long) > 1.5 * median_flag(short)


def test_uninformative_volume_carries_no_pole() -> None:
    params = GeneratorParams(positive_fraction=1.0, gap_probability=0.0)
    informative = generate_windows(300, seed=8, params=params)
    noise = generate_windows(300, seed=8, params=dataclasses.replace(params, volume_informative=False))
    np.testing.assert_array_equal(informative.bars[..., :4], noise.bars[..., :4])

    def pole_volume_lift(batch: SyntheticBatch) -> float:
        """Mean log-volume in the pole minus before it, over windows showing 20 bars before it."""
        log_volume = np.log(batch.bars[..., VOLUME])
        t = np.arange(log_volume.shape[1])
        start, stop = batch.spans[:, 0, 0], batch.spans[:, 0, 1]
        rows = np.flatnonzero(start >= 20)
        in_pole = (t >= start[rows, None]) & (t < stop[rows, None])
        before = t < start[rows, None]
        lifts = [
            log_volume[r][in_pole[i]].mean() - log_volume[r][before[i]].mean() for i, r in enumerate(rows)
        ]
        return float(np.mean(lifts))

    assert pole_volume_lift(informative) > 0.5
    assert abs(pole_volume_lift(noise)) < 0.15


def test_gap_probability_controls_missing_intervals() -> None:
    none = generate_windows(50, seed=9, params=GeneratorParams(gap_probability=0.0))
    assert (none.bars[..., VOLUME] > 0).all()
    every = generate_windows(50, seed=9, params=GeneratorParams(gap_probability=1.0))
    missing = every.bars[..., VOLUME] == 0
    assert missing.any(axis=1).all()
    flat = every.bars[missing][:, :4]
    assert (flat == flat[:, :1]).all(), "a missing interval is one flat price"
    rows, cols = np.nonzero(missing[:, 1:])
    np.testing.assert_array_equal(every.bars[rows, cols + 1, CLOSE], every.bars[rows, cols, CLOSE])


def test_random_walk_series_is_valid_fat_tailed_and_clustered() -> None:
    series = generate_random_walk_series(3, 4000, seed=4)
    assert series.shape == (3, 4000, 5)
    _assert_valid_bars(series)
    returns = np.diff(np.log(series[..., CLOSE]), axis=1)
    z = (returns - returns.mean(axis=1, keepdims=True)) / returns.std(axis=1, keepdims=True)
    assert ((z**4).mean(axis=1) > 4.0).all(), "fat tails: kurtosis above the normal's 3"
    size = np.abs(returns) - np.abs(returns).mean(axis=1, keepdims=True)
    lag1 = (size[:, 1:] * size[:, :-1]).mean(axis=1) / size.var(axis=1)
    assert (lag1 > 0.05).all(), "volatility clustering: |r| is autocorrelated"


def test_params_round_trip_through_json() -> None:
    params = GeneratorParams(volatility_scale=2.0, pole_style=PhaseStyle(noise=(0.9, 1.1)))
    plain = json.loads(json.dumps(params.as_dict()))
    assert GeneratorParams.from_dict(plain) == params


@pytest.mark.parametrize(
    "changes",
    [
        {"positive_fraction": 1.5},
        {"gap_probability": -0.1},
        {"volatility_scale": 0.0},
        {"pole_length_range": (10, 4)},
        {"negative_weights": (1.0, 2.0)},
        {"bull_stage_weights": (0.0,) * 6},
        {"sigma_range": (0.0, 0.01)},
        {"t_dof_range": (2.0, 5.0)},
    ],
)
def test_invalid_params_are_rejected(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GeneratorParams(**changes)  # type: ignore[arg-type]


def test_invalid_phase_style_is_rejected() -> None:
    with pytest.raises(ValueError):
        PhaseStyle(revert=(0.5, 1.5))
