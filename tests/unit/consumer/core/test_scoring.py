"""Scorer: every window scored, publish modes, documents aligned with their symbols."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from bullflag_model.features import build_features
from bullflag_model.infer import BullFlagCNNInfer
from bullflag_model.synthetic import generate_windows
from consumer.core import scoring
from consumer.core.scoring import Scorer
from consumer.core.windows import Windows


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


def test_each_model_call_is_reported_with_its_size(
    windows: Windows, infer: BullFlagCNNInfer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "MAX_CHUNK", 16)
    scored = Scorer(infer, "1m").score(windows)
    assert [size for size, _ in scored.calls] == [16, 16, 8]
    assert all(seconds > 0 for _, seconds in scored.calls)


def _slice(windows: Windows, lo: int, hi: int) -> Windows:
    return Windows(
        windows.symbols[lo:hi], windows.bars[lo:hi], windows.bar_end_ts[lo:hi], windows.window_start_ts[lo:hi]
    )


def test_documents_do_not_depend_on_how_windows_were_batched() -> None:
    """The same window gives the same bytes alone, among 7 or among 300 (onnx backend): a
    document does not change with --max-poll-records or with which symbols closed with it."""
    bars = generate_windows(300, seed=8).bars
    ends = np.arange(300, dtype=np.int64) * 60_000 + 12_000_000
    many = Windows([f"S{i}" for i in range(300)], bars, ends, ends - 200 * 60_000)
    scorer = Scorer(BullFlagCNNInfer(enable_gradcam=True, threshold=0.0, backend="onnx"), "1m")
    whole = scorer.score(many).values
    assert len(whole) == 300
    for step in (1, 7, 64):
        parts = [scorer.score(_slice(many, lo, lo + step)).values for lo in range(0, 300, step)]
        assert [value for part in parts for value in part] == whole, f"batches of {step}"
