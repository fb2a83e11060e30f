"""The serving-threshold rule: the false-alarm floor, best F1 above it, rounding up."""

from __future__ import annotations

import numpy as np
import pytest

from bullflag_model.training.threshold import (
    best_f1_threshold,
    choose_serving_threshold,
    lowest_allowed_threshold,
)


def test_lowest_allowed_threshold() -> None:
    scores = np.r_[np.linspace(0.0, 0.5, 1_996), 0.6, 0.7, 0.8, 0.9]
    # 0.5 per 1,000 of 2,000 scores: one score may reach the threshold, so it must exceed 0.8
    threshold = lowest_allowed_threshold(scores, 0.5)
    assert 0.8 < threshold <= 0.8 + 1e-12
    assert lowest_allowed_threshold(scores, 1_000.0) == 0.0


def test_best_f1_threshold_respects_the_floor() -> None:
    scores = np.array([0.95, 0.9, 0.6, 0.55, 0.3, 0.2])
    labels = np.array([1, 1, 1, 0, 0, 0])
    assert best_f1_threshold(scores, labels, 0.0) == (pytest.approx(0.6), pytest.approx(1.0))
    threshold, f1 = best_f1_threshold(scores, labels, 0.7)
    assert threshold == pytest.approx(0.9) and f1 == pytest.approx(0.8)


def test_choose_serving_threshold_rounds_up() -> None:
    choice = choose_serving_threshold(
        np.array([0.95, 0.912345, 0.2]), np.array([1, 1, 0]), np.linspace(0, 0.5, 3_000), 0.5
    )
    # best F1 at 0.912345, rounded up to 0.9124: that positive now falls below the threshold
    assert choice["serving_threshold"] == pytest.approx(0.9124)
    assert choice["validation_recall"] == pytest.approx(0.5)
    assert choice["validation_false_alarms_per_1000_bars"] == 0.0
