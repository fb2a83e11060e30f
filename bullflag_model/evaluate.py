"""``bullflag evaluate``: honest held-out measurement of a checkpoint.

Everything is measured on data generated from seeds the training command never uses
(``EVALUATION_SEEDS``): per-head ROC-AUC, average precision and calibration error, the
``sequence_score`` signal at the serving threshold (confusion table, false-positive rate per
hard-negative kind), false alarms while sliding over long pattern-free random walks, the same
window metrics under distribution shifts the model did not train on, scale invariance, and
Grad-CAM quality (pointing game and deletion test). The report is JSON; figures are PNG.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bullflag_model.checkpoint import CheckpointError, load_checkpoint
from bullflag_model.features import CLOSE, OPEN, SEQ_LEN, VOLUME, features_in_chunks
from bullflag_model.gradcam import GradCAM1D
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead
from bullflag_model.plot import plot_window_grid
from bullflag_model.synthetic import (
    DEFAULT_PARAMS,
    KINDS,
    GeneratorParams,
    SyntheticBatch,
    generate_random_walk_series,
    generate_windows,
)

CONTINUATION = HEAD_NAMES.index("continuation")
DELETION_FRACTION = 0.2
RANDOM_DELETION_REPEATS = 3
SCALE_FACTORS = (1_000.0, 0.001)
FALLBACK_THRESHOLD = 0.5
ECE_BINS = 15
SCORE_BATCH = 2048

EVALUATION_SEEDS = {"windows": 20_241, "random_walks": 20_242, "shifts": 20_243, "deletion": 20_244}
"""Seeds of the held-out data; ``bullflag train`` refuses seeds that would collide with them."""

SHIFTS: dict[str, dict[str, Any]] = {
    "volatility_scale_3": {"volatility_scale": 3.0},
    "flag_length_scale_1.5": {"flag_length_scale": 1.5},
    "volume_uninformative": {"volume_informative": False},
}
"""Distribution shifts reported under ``robustness``: GeneratorParams overrides, none seen in training.

Shift ``i`` (in this order) draws its windows from seed ``EVALUATION_SEEDS["shifts"] + i``."""


def held_out_seeds(seeds: dict[str, int] | None = None) -> set[int]:
    """Every seed an evaluation draws data from (default: ``EVALUATION_SEEDS``)."""
    seeds = seeds or EVALUATION_SEEDS
    return {*seeds.values(), *(seeds["shifts"] + i for i in range(len(SHIFTS)))}


TARGETS = {
    "min_head_roc_auc": 0.97,
    "sequence_average_precision": 0.95,
    "pointing_game": 0.90,
    "deletion_ratio": 3.0,
    "false_alarms_per_1000_bars": 1.0,
    "scale_invariance_max_abs_diff": 1e-4,
}


class MetricError(ValueError):
    """A metric is undefined for the given input (e.g. a single class, mismatched shapes)."""


class EvaluationError(ValueError):
    """An evaluation setting cannot be used (sizes below their minimum, a threshold outside [0, 1])."""


# ----------------------------------------------------------------------------------- metrics


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


# -------------------------------------------------------------------------------- scoring


def score_features(
    model: BullFlagCNNMultiHead, features: np.ndarray, batch: int = SCORE_BATCH
) -> tuple[np.ndarray, np.ndarray]:
    """Head probabilities ``[N, 4]`` and ``sequence_score`` ``[N]`` of feature windows [N, F, L].

    Same maths as ``BullFlagCNNInfer.score``: the sequence score is ``exp(mean(logsigmoid))``.
    Batches run on the model's device; results come back as numpy arrays.
    """
    model.eval()
    device = next(model.parameters()).device
    probs, sequence = [], []
    with torch.inference_mode():
        for lo in range(0, features.shape[0], batch):
            window = torch.from_numpy(np.ascontiguousarray(features[lo : lo + batch])).to(device)
            logits = model.logits(window)
            probs.append(torch.sigmoid(logits).cpu().numpy())
            sequence.append(F.logsigmoid(logits).mean(dim=1).exp().cpu().numpy())
    if not probs:
        return np.zeros((0, len(HEAD_NAMES)), dtype=np.float32), np.zeros(0, dtype=np.float32)
    return np.concatenate(probs), np.concatenate(sequence)


def sequence_cams(model: BullFlagCNNMultiHead, features: np.ndarray, batch: int = 512) -> np.ndarray:
    """Grad-CAM maps ``[N, L]`` of ``sequence_score`` for feature windows [N, F, L], batched."""
    gradcam = GradCAM1D(model, "conv4")
    maps = [
        gradcam.generate_cams(torch.from_numpy(np.ascontiguousarray(features[lo : lo + batch])), "sequence")
        for lo in range(0, features.shape[0], batch)
    ]
    return torch.cat(maps).numpy() if maps else np.zeros((0, features.shape[-1]), dtype=np.float32)


def slide_scores(model: BullFlagCNNMultiHead, series: np.ndarray, seq_len: int = SEQ_LEN) -> np.ndarray:
    """``sequence_score`` of every window of ``series [S, T, 5]`` at stride 1: ``[S, T - seq_len + 1]``.

    Window ``j`` ends at bar ``j + seq_len - 1``: one score per bar close, as the worker scores.
    """
    out = []
    for one in series:
        windows = np.lib.stride_tricks.sliding_window_view(one, (seq_len, 5))[:, 0]
        out.append(score_features(model, features_in_chunks(windows))[1])
    return np.stack(out) if out else np.zeros((0, max(series.shape[1] - seq_len + 1, 0)))


def false_alarm_rate(scores: np.ndarray, threshold: float) -> float:
    """Signals per 1,000 scored bars: windows ``scores [...]`` at or above ``threshold``."""
    return float(1000.0 * np.mean(scores >= threshold)) if scores.size else 0.0


# ------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class EvaluationConfig:
    """Sizes and seeds of an evaluation; the defaults are those the model card reports."""

    windows: int = 20_000
    shift_windows: int = 10_000
    walk_series: int = 50
    walk_bars: int = 2_000
    scale_windows: int = 2_000
    deletion_windows: int = 2_000
    seeds: dict[str, int] = dataclasses.field(default_factory=lambda: dict(EVALUATION_SEEDS))

    def __post_init__(self) -> None:
        """Reject sizes the evaluation cannot use."""
        if min(self.windows, self.shift_windows, self.walk_series, self.scale_windows) < 1:
            raise EvaluationError("windows, shift_windows, walk_series and scale_windows must be >= 1")
        if self.walk_bars < SEQ_LEN or self.deletion_windows < 0:
            raise EvaluationError(f"walk_bars must be >= {SEQ_LEN} (one window) and deletion_windows >= 0")


def _head_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float | int | None]]:
    """Per-head ROC-AUC, average precision and ECE; undefined ranking metrics are None."""
    out: dict[str, dict[str, float | int | None]] = {}
    for k, name in enumerate(HEAD_NAMES):
        y = labels[:, k]
        both = 0 < y.sum() < y.size
        out[name] = {
            "positives": int(y.sum()),
            "roc_auc": roc_auc(probs[:, k], y) if both else None,
            "average_precision": average_precision(probs[:, k], y) if both else None,
            "ece": expected_calibration_error(probs[:, k], y),
        }
    return out


def _per_kind_false_positives(
    sequence: np.ndarray, labels: np.ndarray, kind: np.ndarray, threshold: float
) -> dict[str, dict[str, float | int]]:
    """Share of each kind's windows without a continuation label whose score reaches ``threshold``."""
    out: dict[str, dict[str, float | int]] = {}
    negative = labels[:, CONTINUATION] == 0
    for index, name in enumerate(KINDS):
        rows = negative & (kind == index)
        if rows.any():
            out[name] = {
                "windows": int(rows.sum()),
                "false_positives": int(np.sum(sequence[rows] >= threshold)),
                "rate": float(np.mean(sequence[rows] >= threshold)),
            }
    return out


def gradcam_quality(
    model: BullFlagCNNMultiHead, batch: SyntheticBatch, rows: np.ndarray, seed: int
) -> dict[str, Any]:
    """Pointing game and deletion test on the windows ``rows`` (full-sequence positives).

    The pointing game counts maps whose peak lies in ``pattern_extent``. Deletion replaces the top
    ``DELETION_FRACTION`` of bars by CAM, or as many random bars (mean of
    ``RANDOM_DELETION_REPEATS`` draws), by neutral bars (``neutralise``) and reports how much the
    mean ``sequence_score`` falls in each case.
    """
    if rows.size == 0:
        return {"windows": 0, "pointing_game": None, "deletion": None}
    bars = batch.bars[rows]
    features = features_in_chunks(bars)
    cams = sequence_cams(model, features)
    hits = pointing_hits(cams, pattern_extent(batch.spans[rows]))
    base = score_features(model, features)[1].astype(np.float64)
    cam_scores = score_features(
        model, features_in_chunks(neutralise(bars, top_fraction_mask(cams, DELETION_FRACTION)))
    )[1]
    rng = np.random.default_rng(seed)
    random_drops = []
    for _ in range(RANDOM_DELETION_REPEATS):
        mask = top_fraction_mask(rng.random(cams.shape), DELETION_FRACTION)
        random_scores = score_features(model, features_in_chunks(neutralise(bars, mask)))[1]
        random_drops.append(float(np.mean(base - random_scores)))
    cam_drop = float(np.mean(base - cam_scores))
    random_drop = float(np.mean(random_drops))
    return {
        "windows": int(rows.size),
        "pointing_game": float(hits.mean()),
        "deletion": {
            "fraction": DELETION_FRACTION,
            "mean_score": float(base.mean()),
            "cam_drop": cam_drop,
            "random_drop": random_drop,
            "ratio": deletion_ratio(cam_drop, random_drop),
        },
    }


def window_metrics(
    model: BullFlagCNNMultiHead,
    batch: SyntheticBatch,
    threshold: float,
    gradcam_windows: int,
    seed: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """All metrics of one labelled window set, and the arrays the figures are drawn from."""
    features = features_in_chunks(batch.bars)
    probs, sequence = score_features(model, features)
    full = batch.labels[:, CONTINUATION]
    positives = np.flatnonzero(full == 1)[:gradcam_windows]
    gradcam = gradcam_quality(model, batch, positives, seed)
    both = 0 < full.sum() < full.size
    metrics = {
        "windows": int(batch.bars.shape[0]),
        "heads": _head_metrics(probs, batch.labels),
        "sequence": {
            "positives": int(full.sum()),
            "roc_auc": roc_auc(sequence, full) if both else None,
            "average_precision": average_precision(sequence, full) if both else None,
            "confusion": confusion(sequence, full, threshold),
        },
        "false_positive_rate_by_kind": _per_kind_false_positives(
            sequence, batch.labels, batch.kind, threshold
        ),
        "gradcam": gradcam,
    }
    return metrics, {"probs": probs, "sequence": sequence}


def scale_invariance(model: BullFlagCNNMultiHead, bars: np.ndarray) -> dict[str, Any]:
    """Largest change of any head probability or sequence score when prices are rescaled.

    bars [N, L, 5]; prices (not volume) are multiplied by each of ``SCALE_FACTORS``.
    """
    probs, sequence = score_features(model, features_in_chunks(bars))
    reference = np.concatenate([probs, sequence[:, None]], axis=1).astype(np.float64)
    diffs = {}
    for factor in SCALE_FACTORS:
        scaled = bars.copy()
        scaled[..., :4] *= factor
        p, s = score_features(model, features_in_chunks(scaled))
        diffs[f"x{factor:g}"] = float(np.abs(np.concatenate([p, s[:, None]], axis=1) - reference).max())
    return {"windows": int(bars.shape[0]), "max_abs_diff": diffs, "worst": max(diffs.values())}


def false_alarms(
    model: BullFlagCNNMultiHead,
    threshold: float,
    n_series: int,
    length: int,
    seed: int,
    params: GeneratorParams,
) -> dict[str, Any]:
    """Signals per 1,000 bars while sliding at stride 1 over pattern-free random walks."""
    series = generate_random_walk_series(n_series, length, seed, params)
    scores = slide_scores(model, series)
    return {
        "series": n_series,
        "bars_per_series": length,
        "scored_bars": int(scores.size),
        "signals": int(np.sum(scores >= threshold)),
        "per_1000_bars": false_alarm_rate(scores, threshold),
        "max_score": float(scores.max()) if scores.size else 0.0,
        "p999_score": float(np.quantile(scores, 0.999)) if scores.size else 0.0,
    }


def _target_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    main = report["held_out"]
    aucs = [h["roc_auc"] for h in main["heads"].values()]
    deletion = main["gradcam"]["deletion"] or {}
    rows = [
        ("min_head_roc_auc", min(aucs) if None not in aucs else None, ">="),
        ("sequence_average_precision", main["sequence"]["average_precision"], ">="),
        ("pointing_game", main["gradcam"]["pointing_game"], ">="),
        ("deletion_ratio", deletion.get("ratio"), ">="),
        ("false_alarms_per_1000_bars", report["false_alarms"]["per_1000_bars"], "<="),
        ("scale_invariance_max_abs_diff", report["scale_invariance"]["worst"], "<="),
    ]
    out = []
    for name, value, sense in rows:
        target = TARGETS[name]
        met = value is not None and (value >= target if sense == ">=" else value <= target)
        if name == "deletion_ratio" and value is None and deletion:
            met = deletion["cam_drop"] > 0 >= deletion["random_drop"]
        out.append({"name": name, "target": f"{sense} {target:g}", "value": value, "met": bool(met)})
    return out


def evaluate_model(
    model: BullFlagCNNMultiHead,
    threshold: float,
    params: GeneratorParams = DEFAULT_PARAMS,
    config: EvaluationConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The full report (plain JSON types) and the arrays/batches the figures need.

    ``params`` is the training distribution (held-out windows use it with an unseen seed);
    robustness sets apply ``SHIFTS`` on top of it.
    """
    config = config or EvaluationConfig()
    say = progress or (lambda _message: None)
    model.eval()
    seeds = config.seeds
    say(f"held-out windows: {config.windows}")
    batch = generate_windows(config.windows, seeds["windows"], params)
    held_out, arrays = window_metrics(model, batch, threshold, config.deletion_windows, seeds["deletion"])
    say(f"false alarms: {config.walk_series} random walks x {config.walk_bars} bars")
    alarms = false_alarms(
        model, threshold, config.walk_series, config.walk_bars, seeds["random_walks"], params
    )
    say("scale invariance")
    scale = scale_invariance(model, batch.bars[: config.scale_windows])
    robustness: dict[str, Any] = {}
    shift_sequences: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for offset, (name, overrides) in enumerate(SHIFTS.items()):
        say(f"robustness: {name}")
        shifted = dataclasses.replace(params, **overrides)
        shift_batch = generate_windows(config.shift_windows, seeds["shifts"] + offset, shifted)
        metrics, shift_arrays = window_metrics(
            model, shift_batch, threshold, config.deletion_windows, seeds["deletion"]
        )
        robustness[name] = {"overrides": overrides, **metrics}
        shift_sequences[name] = (shift_arrays["sequence"], shift_batch.labels[:, CONTINUATION])
    report: dict[str, Any] = {
        "serving_threshold": float(threshold),
        "seeds": dict(seeds),
        "held_out": held_out,
        "false_alarms": alarms,
        "scale_invariance": scale,
        "robustness": robustness,
    }
    report["targets"] = _target_rows(report)
    return report, {"batch": batch, **arrays, "shift_sequences": shift_sequences}


# -------------------------------------------------------------------------------- figures


def _save_figure(fig: Figure, path: Path) -> Path:
    """Render ``fig`` to ``path`` on the Agg canvas."""
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def plot_roc(arrays: dict[str, Any], path: Path) -> Path:
    """ROC curves: each head on held-out windows, and ``sequence_score`` on held-out and shifted sets."""
    batch: SyntheticBatch = arrays["batch"]
    fig = Figure(figsize=(11.0, 4.8), layout="constrained")
    heads_ax, shift_ax = fig.subplots(1, 2)
    for k, name in enumerate(HEAD_NAMES):
        y = batch.labels[:, k]
        if 0 < y.sum() < y.size:
            fpr, tpr, _ = roc_curve(arrays["probs"][:, k], y)
            heads_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(arrays['probs'][:, k], y):.4f})")
    curves = {"held-out": (arrays["sequence"], batch.labels[:, CONTINUATION]), **arrays["shift_sequences"]}
    for name, (scores, labels) in curves.items():
        if 0 < labels.sum() < labels.size:
            fpr, tpr, _ = roc_curve(scores, labels)
            shift_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(scores, labels):.4f})")
    chance = np.linspace(0.0, 1.0, 501)
    for ax, title in ((heads_ax, "heads, held-out windows"), (shift_ax, "sequence_score vs continuation")):
        ax.plot(chance, chance, color="grey", linewidth=0.6, linestyle="--")
        ax.set_xscale("symlog", linthresh=1e-3)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false-positive rate (symlog)")
        ax.set_ylabel("true-positive rate")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    return _save_figure(fig, path)


def plot_calibration(arrays: dict[str, Any], path: Path) -> Path:
    """Reliability diagram of each head on the held-out windows."""
    batch: SyntheticBatch = arrays["batch"]
    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.subplots()
    for k, name in enumerate(HEAD_NAMES):
        mean_prob, frequency = reliability(arrays["probs"][:, k], batch.labels[:, k])
        ax.plot(mean_prob, frequency, marker="o", markersize=3, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.6, linestyle="--")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("calibration, held-out windows", fontsize=10)
    ax.legend(fontsize=8)
    return _save_figure(fig, path)


def _example_rows(arrays: dict[str, Any], per_group: int) -> list[tuple[int, str]]:
    """Rows to draw: best- and worst-scored full positives, then the highest-scored negatives."""
    batch: SyntheticBatch = arrays["batch"]
    sequence = arrays["sequence"]
    positives = np.flatnonzero(batch.labels[:, CONTINUATION] == 1)
    negatives = np.flatnonzero(batch.labels[:, CONTINUATION] == 0)
    chosen: list[tuple[int, str]] = []
    if positives.size:
        ranked = positives[np.argsort(-sequence[positives], kind="stable")]
        chosen += [(int(i), "positive") for i in ranked[:per_group]]
        chosen += [(int(i), "missed?") for i in ranked[::-1][:per_group] if int(i) not in dict(chosen)]
    if negatives.size:
        ranked = negatives[np.argsort(-sequence[negatives], kind="stable")]
        chosen += [(int(i), "negative") for i in ranked[:per_group]]
    return chosen


def plot_examples(
    model: BullFlagCNNMultiHead, arrays: dict[str, Any], path: Path, per_group: int = 3
) -> Path:
    """Grid of example windows (candles, volume, Grad-CAM strip) with kind, labels and scores."""
    batch: SyntheticBatch = arrays["batch"]
    chosen = _example_rows(arrays, per_group)
    rows = np.array([i for i, _ in chosen], dtype=np.int64)
    cams = sequence_cams(model, features_in_chunks(batch.bars[rows]))
    titles = []
    for (i, group), cam in zip(chosen, cams, strict=True):
        labels = "".join(str(int(v)) for v in batch.labels[i])
        titles.append(
            f"{group}: {KINDS[batch.kind[i]]} labels {labels} seq {arrays['sequence'][i]:.3f} "
            f"peak bar {int(np.argmax(cam))}"
        )
    return plot_window_grid(batch.bars[rows], list(cams), titles, path, ncols=per_group)


def write_outputs(
    model: BullFlagCNNMultiHead, report: dict[str, Any], arrays: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Write figures and ``report.json`` into ``out_dir``; returns the report with figure paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "roc": str(plot_roc(arrays, out_dir / "roc.png")),
        "calibration": str(plot_calibration(arrays, out_dir / "calibration.png")),
        "examples": str(plot_examples(model, arrays, out_dir / "examples.png")),
    }
    report = {**report, "figures": figures}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


# ---------------------------------------------------------------------------------- command


def _summary_lines(report: dict[str, Any]) -> list[str]:
    """A short human-readable summary of the report: the target table."""
    lines = [f"serving threshold {report['serving_threshold']:.4f}"]
    for row in report["targets"]:
        value = "n/a" if row["value"] is None else f"{row['value']:.4g}"
        lines.append(
            f"  {row['name']:<32} {value:>10}  target {row['target']:<8} {'met' if row['met'] else 'MISSED'}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """``bullflag evaluate``: exit code 2 with one line on stderr for an unusable checkpoint or setting."""
    try:
        return _run(args)
    except (CheckpointError, EvaluationError) as exc:
        print(f"bullflag evaluate: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint; print the target table (or the JSON report with ``--json``)."""
    loaded = load_checkpoint(args.checkpoint)
    metadata = loaded.metadata
    threshold = args.threshold
    if threshold is None:
        threshold = float(metadata.get("serving_threshold", FALLBACK_THRESHOLD))
    if not 0.0 <= threshold <= 1.0:
        raise EvaluationError(f"threshold must be in [0, 1], got {threshold}")
    params = (
        GeneratorParams.from_dict(metadata["generator_params"])
        if "generator_params" in metadata
        else DEFAULT_PARAMS
    )
    config = EvaluationConfig(
        windows=args.windows,
        shift_windows=args.shift_windows,
        walk_series=args.walk_series,
        walk_bars=args.walk_bars,
        scale_windows=min(args.scale_windows, args.windows),
        deletion_windows=args.deletion_windows,
    )
    log = (lambda _m: None) if args.json else (lambda m: print(f"evaluate: {m}", file=sys.stderr))
    torch.set_num_threads(args.threads)
    report, arrays = evaluate_model(loaded.model, threshold, params, config, log)
    report = {
        "checkpoint": str(loaded.path),
        "model_version": loaded.model_version,
        "trained": bool(metadata.get("trained", False)),
        **report,
    }
    report = write_outputs(loaded.model, report, arrays, Path(args.out))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(_summary_lines(report)))
        print(f"report: {Path(args.out) / 'report.json'}")
    return 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag evaluate``."""
    defaults = EvaluationConfig()
    parser = subcommands.add_parser(
        "evaluate", help="Measure a checkpoint on held-out generated data (JSON report + PNG figures)."
    )
    parser.add_argument("--checkpoint", default=None, help="Checkpoint file (default: the shipped one).")
    parser.add_argument(
        "--threshold", type=float, default=None, help="Signal threshold (default: the checkpoint's)."
    )
    parser.add_argument("--windows", type=int, default=defaults.windows, help="Held-out windows.")
    parser.add_argument(
        "--shift-windows", type=int, default=defaults.shift_windows, help="Windows per shift."
    )
    parser.add_argument("--walk-series", type=int, default=defaults.walk_series, help="Random-walk series.")
    parser.add_argument(
        "--walk-bars", type=int, default=defaults.walk_bars, help="Bars per random-walk series."
    )
    parser.add_argument("--scale-windows", type=int, default=defaults.scale_windows, help="Windows rescaled.")
    parser.add_argument(
        "--deletion-windows", type=int, default=defaults.deletion_windows, help="Positives explained per set."
    )
    parser.add_argument("--out", default="runs/evaluation", help="Folder for report.json and figures.")
    parser.add_argument("--threads", type=int, default=1, help="Torch CPU threads.")
    parser.add_argument("--json", action="store_true", help="Print the JSON report to stdout.")
    parser.set_defaults(handler=run)
