"""Pole search and rule labels on built windows, and a tiny real-data report with an untrained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bullflag_model.features import SEQ_LEN
from bullflag_model.model import BullFlagCNNMultiHead
from bullflag_model.realdata.candidates import rule_flag_labels, strongest_pole
from bullflag_model.realdata.labels import Label
from bullflag_model.realdata.report import evaluate_real, top_windows
from bullflag_model.realdata.series import RealSeries, SeriesSource


def _bars(closes: np.ndarray) -> np.ndarray:
    """OHLCV bars whose open is the previous close, with a small wick either side."""
    opens = np.concatenate([closes[:1], closes[:-1]])
    top, bottom = np.maximum(opens, closes) * 1.001, np.minimum(opens, closes) * 0.999
    return np.stack([opens, top, bottom, closes, np.full(closes.size, 1000.0)], axis=1)


def _flag_window(seed: int) -> np.ndarray:
    """A 200-bar noisy walk, a 12-bar pole up 15 %, then an 8-bar gentle pull-back of 3 %."""
    rng = np.random.default_rng(seed)
    steps = np.concatenate([rng.normal(0, 0.004, 180), np.full(12, 0.15 / 12), np.full(8, -0.03 / 8)])
    steps[180:] += rng.normal(0, 0.0005, 20)
    return _bars(100 * np.exp(np.cumsum(steps)))


def test_strongest_pole_finds_the_planted_pole() -> None:
    pole, z = strongest_pole(_flag_window(0)[None])
    assert abs(pole[0, 0] - 180) <= 1 and pole[0, 1] == 192
    assert z[0] > 8  # 0.15 over about 0.0043 * sqrt(12)


def test_rule_labels_see_a_flag_and_not_a_downtrend() -> None:
    down = _bars(100 * np.exp(np.cumsum(np.random.default_rng(1).normal(-0.004, 0.004, SEQ_LEN))))
    assert rule_flag_labels(np.stack([_flag_window(0), down])).tolist() == [1, 0]


def test_top_windows_keep_their_distance() -> None:
    scores = np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.85])
    assert top_windows(scores, 3, gap=2) == [1, 5, 3]
    assert top_windows(scores, 10, gap=1) == [1, 5, 2, 4, 3, 0]


@pytest.fixture(scope="module")
def tiny() -> dict:
    torch.manual_seed(0)
    bars = np.concatenate([_flag_window(s) for s in range(3)])
    times = np.array([f"2000-01-01 {i // 60:03d}:{i % 60:02d}" for i in range(bars.shape[0])])
    source = SeriesSource("TOY", "none", "none", "intraday", "built in the test")
    labels = [
        Label("p", "TOY", str(times[SEQ_LEN - 1]), 1, "bull_flag", ""),
        Label("n", "TOY", str(times[SEQ_LEN + 50]), 0, "range", ""),
    ]
    report, _ = evaluate_real(
        BullFlagCNNMultiHead().eval(), 0.5, [RealSeries(source, bars, times)], labels, synthetic_windows=40
    )
    return report


def test_tiny_report_counts_windows_and_checks_every_target(tiny: dict) -> None:
    toy = tiny["series"]["TOY"]
    assert toy["windows"] == 3 * SEQ_LEN - SEQ_LEN + 1
    assert toy["signals_per_1000_bars"] == pytest.approx(1000 * toy["signals"] / toy["windows"])
    assert set(toy["channels"]) >= {"body_z", "volume_rel"}
    assert tiny["labels"]["all"]["positives"] == 1 and tiny["labels"]["all"]["negatives"] == 1
    assert tiny["rule_labeller_vs_labels"]["rule_recall_of_positives"] == 1.0
    names = {row["name"] for row in tiny["targets"]}
    assert "TOY volume_rel real-vs-generated AUC" in names and "labels[all] flag ROC-AUC" in names
