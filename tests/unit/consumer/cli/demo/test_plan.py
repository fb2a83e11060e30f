"""The demo's options and plan: flags checked by name, ticks split at the end of the warm-up."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from consumer.cli.demo.plan import WARMUP_BARS, DemoError, DemoOptions, plan_demo


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        ({"symbols": 0}, "--symbols 0"),
        ({"bars": WARMUP_BARS - 1}, f"--bars {WARMUP_BARS - 1}"),
        ({"speed": float("inf")}, "--speed inf"),
        ({"max_seconds": -1.0}, "--max-seconds -1.0"),
        ({"threshold": 1.5}, "--threshold 1.5"),
        ({"max_plots": -1}, "--max-plots -1"),
    ],
)
def test_options_refuse_values_naming_the_flag(values: dict[str, Any], flag: str) -> None:
    with pytest.raises(DemoError, match=flag):
        DemoOptions(**values)


def test_plan_splits_ticks_at_the_end_of_the_warm_up() -> None:
    plan = plan_demo(2, 210, seed=3)
    market = plan.market

    assert market.bars.shape[:2] == (2, 210 + 200)
    assert len(plan.table) == 2 * 211 and plan.table.ts_ms.max() == market.ts_ms[210]
    assert plan.warmup.ts_ms.max() < market.ts_ms[WARMUP_BARS] <= plan.live.ts_ms.min()
    assert np.all(np.diff(plan.live.ts_ms) >= 0)
    assert plan.ticks == len(plan.warmup) + len(plan.live)
    assert plan.expected_outputs == 2 * (210 - WARMUP_BARS + 1)
    assert plan.bar_index(int(market.ts_ms[7])) == 7
    scored = plan.scored_windows()
    assert scored and all(WARMUP_BARS - 1 <= w.last_bar < 210 for w in scored)
