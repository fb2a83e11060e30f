"""Scorer: every window scored, publish modes, documents aligned with their symbols."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from bullflag_model.features import build_features
from bullflag_model.infer import BullFlagCNNInfer
from bullflag_model.synthetic import generate_windows
from consumer.core import scoring
from consumer.core.pipeline import Windows
from consumer.core.scoring import Scorer


@pytest.fixture(scope="module")
def windows() -> Windows:
    bars = generate_windows(40, seed=21).bars
    ends = np.arange(40, dtype=np.int64) * 60_000 + 12_000_000
    return Windows([f"S{i}" for i in range(40)], bars, ends, ends - 200 * 60_000)


@pytest.fixture(scope="module")
def infer(windows: Windows) -> BullFlagCNNInfer:
    model = BullFlagCNNInfer(enable_gradcam=True)
    model.threshold = float(np.median(model.score(build_features(windows.bars)).sequence))
    return model


def test_all_mode_publishes_every_window_in_order(
    windows: Windows, infer: BullFlagCNNInfer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "MAX_CHUNK", 16)
    scored = Scorer(infer, "1m").score(windows)
    documents = [orjson.loads(value) for value in scored.values]
    assert scored.windows == len(documents) == 40
    assert [d["symbol"] for d in documents] == windows.symbols
    assert [d["bar_end_ts"] for d in documents] == windows.bar_end_ts.tolist()
    assert scored.signals == scored.maps == sum(d["signal"] for d in documents) == 20


def test_signals_only_mode_publishes_just_the_signals(windows: Windows, infer: BullFlagCNNInfer) -> None:
    scored = Scorer(infer, "1m", publish="signals-only").score(windows)
    documents = [orjson.loads(value) for value in scored.values]
    assert scored.windows == 40
    assert len(documents) == scored.signals == 20
    assert all(d["signal"] and d["activation_map"] is not None for d in documents)
    assert scored.symbols == [d["symbol"] for d in documents]
