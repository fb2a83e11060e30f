"""Shared test data: OHLCV windows built from hypothesis-drawn or seeded returns."""

from __future__ import annotations

import os

import numpy as np
from hypothesis import strategies as st

SEQ_LEN = 200

EXAMPLES_CAP = (
    int(os.environ["BULLFLAG_TEST_MAX_EXAMPLES"]) if "BULLFLAG_TEST_MAX_EXAMPLES" in os.environ else None
)
"""At most this many hypothesis examples per test when set (mutation testing sets it)."""


def examples(n: int) -> int:
    """``n`` hypothesis examples, or :data:`EXAMPLES_CAP` when that is set and smaller."""
    return n if EXAMPLES_CAP is None else min(n, EXAMPLES_CAP)


def bars_from_returns(
    returns: np.ndarray, price: float = 100.0, volume: np.ndarray | None = None, spread: float = 0.002
) -> np.ndarray:
    """OHLCV ``[..., L, 5]`` whose closes follow ``exp(cumsum(returns))`` scaled to ``price``."""
    close = price * np.exp(np.cumsum(returns, axis=-1))
    open_ = np.concatenate([close[..., :1], close[..., :-1]], axis=-1)
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    if volume is None:
        volume = np.full(close.shape, 1_000.0)
    return np.stack([open_, high, low, close, volume], axis=-1)


def random_bars(batch: int, seed: int = 0, length: int = SEQ_LEN) -> np.ndarray:
    """Seeded random-walk windows ``[batch, length, 5]`` with noisy volume."""
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, 0.01, (batch, length))
    volume = rng.lognormal(7.0, 1.0, (batch, length))
    return bars_from_returns(returns, price=float(rng.uniform(1, 1000)), volume=volume)


@st.composite
def ohlcv_windows(draw: st.DrawFn, length: int = SEQ_LEN) -> np.ndarray:
    """One window ``[length, 5]``: random, flat, zero-volume or mixed, at any price level."""
    kind = draw(st.sampled_from(["random", "flat", "zero_volume", "flat_zero_volume", "spiky"]))
    seed = draw(st.integers(0, 2**32 - 1))
    price = draw(st.floats(1e-3, 1e5))
    rng = np.random.default_rng(seed)
    returns = rng.standard_t(3, length) * draw(st.floats(1e-6, 0.2))
    volume = rng.lognormal(5.0, 2.0, length)
    if kind in ("flat", "flat_zero_volume"):
        returns = np.zeros(length)
    if kind in ("zero_volume", "flat_zero_volume"):
        volume = np.zeros(length)
    if kind == "spiky":
        volume = np.where(rng.random(length) < 0.05, volume * 1e6, 0.0)
    spread = 0.0 if kind.startswith("flat") else draw(st.floats(0.0, 0.05))
    return bars_from_returns(returns, price=price, volume=volume, spread=spread)
