"""Metric maths of the evaluation: pure numpy functions of scores, labels, maps and bars.

Ranking (ROC-AUC, ROC curve, average precision), calibration (ECE, reliability bins), the confusion
table and the false-alarm rate at a threshold, and the Grad-CAM quality helpers (pattern extent,
pointing game, deletion masks and neutral bars). Inputs are validated; a metric that is undefined
for its input raises ``MetricError``.
"""

from __future__ import annotations

import numpy as np

from bullflag_model.features import CLOSE, OPEN, VOLUME

ECE_BINS = 15


class MetricError(ValueError):
    """A metric is undefined for the given input (e.g. a single class, mismatched shapes)."""


def _binary_inputs(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``scores [N]`` (finite) and ``labels [N]`` (0/1) and return them as float / bool."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape or scores.size == 0:
        raise MetricError(
            f"scores and labels must be non-empty and equally long, got {scores.size}, {labels.size}"
        )
    if not np.all(np.isfinite(scores)):
        raise MetricError("scores must be finite")
    if not np.all((labels == 0) | (labels == 1)):
        raise MetricError("labels must be 0 or 1")
    return scores, labels.astype(bool)


def _require_both_classes(labels: np.ndarray) -> None:
    """Ranking metrics need at least one positive and one negative."""
    if labels.all() or not labels.any():
        raise MetricError("need at least one positive and one negative label")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores [N]`` for ``labels [N]`` (ties count one half).

    Mann-Whitney form: the probability that a random positive outscores a random negative,
    with average ranks for tied scores (equal to the trapezoidal area under ``roc_curve``).
    """
    scores, labels = _binary_inputs(scores, labels)
    _require_both_classes(labels)
    order = np.argsort(scores, kind="mergesort")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(scores.size)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    n_pos = int(labels.sum())
    n_neg = scores.size - n_pos
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _descending_counts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds (descending) with cumulative true and false positives at each [T]."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(sorted_scores)), scores.size - 1]
    tp = np.cumsum(sorted_labels)[last_of_value]
    fp = (last_of_value + 1) - tp
    return sorted_scores[last_of_value], tp.astype(np.float64), fp.astype(np.float64)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates ``[T + 1]`` at each distinct threshold, from (0, 0) up.

    Returns (fpr, tpr, thresholds); ``thresholds[0]`` is ``inf`` (nothing predicted positive).
    """
    scores, labels = _binary_inputs(scores, labels)
    _require_both_classes(labels)
    thresholds, tp, fp = _descending_counts(scores, labels)
    fpr = np.r_[0.0, fp / fp[-1]]
    tpr = np.r_[0.0, tp / tp[-1]]
    return fpr, tpr, np.r_[np.inf, thresholds]


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision: ``sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds, descending.

    The step-wise area under the precision-recall curve (no interpolation); tied scores form
    one threshold. scores, labels [N].
    """
    scores, labels = _binary_inputs(scores, labels)
    if not labels.any():
        raise MetricError("average precision needs at least one positive label")
    _, tp, fp = _descending_counts(scores, labels)
    precision = tp / (tp + fp)
    recall_step = np.diff(np.r_[0.0, tp]) / tp[-1]
    return float(np.sum(recall_step * precision))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of probabilities ``probs [N]`` in [0, 1]: ``sum_b |B|/N * |mean(p in B) - mean(y in B)|``.

    ``n_bins`` equal-width bins over [0, 1]; the last bin includes 1.
    """
    probs, labels = _binary_inputs(probs, labels)
    if probs.min() < 0.0 or probs.max() > 1.0:
        raise MetricError("probabilities must lie in [0, 1]")
    if n_bins < 1:
        raise MetricError(f"n_bins must be >= 1, got {n_bins}")
    bins = np.minimum((probs * n_bins).astype(np.int64), n_bins - 1)
    prob_sum = np.bincount(bins, weights=probs, minlength=n_bins)
    label_sum = np.bincount(bins, weights=labels.astype(np.float64), minlength=n_bins)
    return float(np.abs(prob_sum - label_sum).sum() / probs.size)


def reliability(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean probability and observed frequency ``[n_bins]`` (NaN for empty bins)."""
    probs, labels = _binary_inputs(probs, labels)
    bins = np.minimum((probs * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(bins, weights=probs, minlength=n_bins) / count
        frequency = np.bincount(bins, weights=labels.astype(np.float64), minlength=n_bins) / count
    return mean_prob, frequency


def confusion(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Confusion table of ``scores >= threshold`` against ``labels`` [N], with the usual rates.

    Precision is 1 when nothing is predicted positive (no false alarm was raised); recall and
    the false-positive rate are 0 when their class is empty.
    """
    scores, labels = _binary_inputs(scores, labels)
    predicted = scores >= threshold
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    tn = int(np.sum(~predicted & ~labels))
    return {
        "threshold": float(threshold),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
    }


def pattern_extent(spans: np.ndarray) -> np.ndarray:
    """[N, 2] [start, end) of each window's pattern, pole start to the end of its last phase.

    spans [N, 5, 2] as in ``SyntheticBatch.spans`` (-1 where a phase is absent); rows with no
    valid phase give (-1, -1).
    """
    valid = spans[..., 1] > spans[..., 0]
    start = np.where(valid, spans[..., 0], np.iinfo(np.int32).max).min(axis=1)
    end = np.where(valid, spans[..., 1], -1).max(axis=1)
    has_any = valid.any(axis=1)
    return np.stack([np.where(has_any, start, -1), np.where(has_any, end, -1)], axis=1)


def pointing_hits(cams: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """[N] bool: the (first) peak of ``cams [N, L]`` lies inside ``extent [N, 2]`` = [start, end)."""
    peak = np.argmax(cams, axis=1)
    return (peak >= extent[:, 0]) & (peak < extent[:, 1])


def neutralise(bars: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Replace the bars where ``mask [N, L]`` by neutral bars; bars [N, L, 5] raw OHLCV.

    A neutral bar is flat at the close of the nearest kept bar before it (the first bar's open
    when there is none) with the window's mean volume: it carries no return, no range and no
    volume signal, and it leaves every kept bar untouched.
    """
    n, length, _ = bars.shape
    t = np.arange(length)[None, :]
    last_kept = np.maximum.accumulate(np.where(mask, -1, t), axis=1)
    kept_close = np.take_along_axis(bars[..., CLOSE], np.maximum(last_kept, 0), axis=1)
    level = np.where(last_kept >= 0, kept_close, bars[:, :1, OPEN])
    mean_volume = bars[..., VOLUME].mean(axis=1, keepdims=True)
    out = bars.copy()
    out[..., :4] = np.where(mask[..., None], level[..., None], bars[..., :4])
    out[..., VOLUME] = np.where(mask, np.broadcast_to(mean_volume, (n, length)), bars[..., VOLUME])
    return out


def top_fraction_mask(importance: np.ndarray, fraction: float) -> np.ndarray:
    """[N, L] bool marking the ``round(fraction * L)`` bars of highest ``importance [N, L]``.

    Ties go to the earlier bar (stable sort), so the mask is deterministic.
    """
    n, length = importance.shape
    k = round(fraction * length)
    order = np.argsort(-importance, axis=1, kind="stable")[:, :k]
    mask = np.zeros((n, length), dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def deletion_ratio(cam_drop: float, random_drop: float) -> float | None:
    """How many times the CAM deletion lowers the score more than random deletion; None if undefined.

    Undefined when random deletion does not lower the mean score at all (random_drop <= 0); the
    target then counts as met if the CAM deletion does lower it.
    """
    return cam_drop / random_drop if random_drop > 0 else None


def false_alarm_rate(scores: np.ndarray, threshold: float) -> float:
    """Signals per 1,000 scored bars: windows ``scores [...]`` at or above ``threshold``."""
    return float(1000.0 * np.mean(scores >= threshold)) if scores.size else 0.0
