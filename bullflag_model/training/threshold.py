"""The serving threshold: best validation F1 within a false-alarm budget on random walks.

The threshold on ``sequence_score`` with the best F1 for full-sequence positives (continuation = 1)
on the validation windows, among the thresholds that raise at most ``false_alarm_budget`` signals
per 1,000 bars on validation random walks (stride 1), rounded up to ``THRESHOLD_DECIMALS`` decimals.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

THRESHOLD_DECIMALS = 4


def lowest_allowed_threshold(walk_scores: np.ndarray, budget_per_1000: float) -> float:
    """Smallest threshold with at most ``budget_per_1000`` signals per 1,000 scores ``[N]``.

    ``k = floor(budget * N / 1000)`` scores may reach the threshold, so it must exceed the
    ``(k + 1)``-th largest score.
    """
    ranked = np.sort(np.asarray(walk_scores, dtype=np.float64).ravel())[::-1]
    allowed = math.floor(budget_per_1000 * ranked.size / 1000.0)
    if allowed >= ranked.size:
        return 0.0
    return float(np.nextafter(ranked[allowed], np.inf))


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray, lowest: float) -> tuple[float, float]:
    """Threshold ``>= lowest`` maximising F1 of ``scores >= t`` for ``labels`` [N]; returns (t, F1).

    Candidates are ``lowest`` and every score above it; ties keep the higher threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = labels.astype(bool)
    candidates = np.unique(np.r_[lowest, scores[scores >= lowest]])
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_pos = scores[order], positives[order]
    predicted = np.searchsorted(-sorted_scores, -candidates, side="right")
    tp = np.r_[0, np.cumsum(sorted_pos)][predicted]
    f1 = 2.0 * tp / np.maximum(predicted + positives.sum(), 1)
    best = int(np.flatnonzero(f1 == f1.max())[-1])
    return float(candidates[best]), float(f1[best])


def choose_serving_threshold(
    val_sequence: np.ndarray, val_full: np.ndarray, walk_scores: np.ndarray, budget_per_1000: float
) -> dict[str, Any]:
    """The serving threshold and how it was chosen (see the module doc), as plain values."""
    lowest = lowest_allowed_threshold(walk_scores, budget_per_1000)
    threshold, _ = best_f1_threshold(val_sequence, val_full, lowest)
    scale = 10**THRESHOLD_DECIMALS
    threshold = min(math.ceil(threshold * scale) / scale, 1.0)
    predicted = val_sequence >= threshold
    positives = val_full.astype(bool)
    hits = int(np.sum(predicted & positives))
    return {
        "serving_threshold": threshold,
        "lowest_allowed": lowest,
        "false_alarm_budget_per_1000_bars": budget_per_1000,
        "validation_walk_bars": int(walk_scores.size),
        "validation_false_alarms_per_1000_bars": float(1000.0 * np.mean(walk_scores >= threshold)),
        "validation_f1": 2.0 * hits / max(int(predicted.sum() + positives.sum()), 1),
        "validation_precision": hits / max(int(predicted.sum()), 1),
        "validation_recall": hits / max(int(positives.sum()), 1),
    }
