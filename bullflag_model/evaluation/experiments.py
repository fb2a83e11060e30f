"""What the evaluation measures, on which generated data: held-out windows, random walks, shifts.

Each experiment takes a model and its data (drawn from ``EVALUATION_SEEDS``, which training refuses)
and returns plain JSON values: the window metrics of a labelled set (heads, ``sequence_score``,
false positives per kind, Grad-CAM quality), false alarms on pattern-free random walks, and scale
invariance. ``EvaluationConfig`` sets the sizes and seeds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from bullflag_model.evaluation.metrics import (
    average_precision,
    confusion,
    deletion_ratio,
    expected_calibration_error,
    false_alarm_rate,
    neutralise,
    pattern_extent,
    pointing_hits,
    roc_auc,
    top_fraction_mask,
)
from bullflag_model.evaluation.scoring import score_features, sequence_cams, slide_scores
from bullflag_model.features import SEQ_LEN, features_in_chunks
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead
from bullflag_model.synthetic import KINDS, GeneratorParams, SyntheticBatch, generate_random_walk_series

CONTINUATION = HEAD_NAMES.index("continuation")
DELETION_FRACTION = 0.2
RANDOM_DELETION_REPEATS = 3
SCALE_FACTORS = (1_000.0, 0.001)

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


class EvaluationError(ValueError):
    """An evaluation setting cannot be used (sizes below their minimum, a threshold outside [0, 1])."""


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
