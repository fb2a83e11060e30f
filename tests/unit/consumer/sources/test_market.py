"""The generated market: deterministic, plausible prices, and the windows it was built from."""

from __future__ import annotations

import numpy as np
import pytest

from bullflag_model.synthetic import HEADS, KINDS
from consumer.sources.market import synthetic_market
from consumer.sources.tables import infer_interval_ms

MINUTE = 60_000
T0 = 1_732_550_400_000


def test_synthetic_market_is_deterministic_and_plausible() -> None:
    market = synthetic_market(12, 450, seed=11)
    again = synthetic_market(12, 450, seed=11)
    other = synthetic_market(12, 450, seed=12)

    assert np.array_equal(market.bars, again.bars) and market.windows == again.windows
    assert not np.array_equal(market.bars, other.bars)
    assert market.bars.shape == (12, 450, 5) and len(set(market.symbols)) == 12
    assert np.array_equal(market.ts_ms, T0 + np.arange(450, dtype=np.int64) * MINUTE)
    open_, high, low, close, volume = np.moveaxis(market.bars, -1, 0)
    assert np.all(low > 0)
    assert np.all(high >= np.maximum(open_, close)) and np.all(low <= np.minimum(open_, close))
    assert np.all(volume >= 0) and np.array_equal(volume, np.round(volume))
    step = np.abs(np.diff(np.log(close), axis=1))
    assert np.all((np.median(step, axis=1) > 1e-4) & (np.median(step, axis=1) < 0.02))
    assert np.abs(open_[:, 1:] / close[:, :-1] - 1).max() < 0.05

    assert {w.kind for w in market.windows} <= set(KINDS)
    ends = {w.symbol: w.last_bar for w in market.windows}
    assert set(ends) == set(market.symbols) and set(ends.values()) == {449}
    flags = [w for w in market.windows if w.kind == "bull_flag"]
    assert flags and len({w.heads for w in flags}) >= 2
    assert all(set(w.heads) <= set(HEADS) for w in market.windows)


def test_synthetic_market_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="symbols >= 1"):
        synthetic_market(0, 10, seed=0)


def test_market_table_is_in_event_time_order() -> None:
    table = synthetic_market(3, 5, seed=2).table()
    assert table.symbols.tolist()[:4] == ["SYN000", "SYN001", "SYN002", "SYN000"]
    assert np.all(np.diff(table.ts_ms) >= 0) and table.ohlcv.shape == (15, 5)
    assert infer_interval_ms(table.symbols, table.ts_ms) == MINUTE
