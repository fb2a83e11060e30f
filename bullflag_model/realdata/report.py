"""The real-data report: a model's scores on the shipped real series, their labels, their shift.

``evaluate_real`` scores every 200-bar window (stride 1, one per bar close, as the worker scores)
of each series in ``series.SOURCES`` and reports, per series: signals per 1,000 bars at the
serving threshold, the head-probability distribution, per-channel shift against generated windows
(``shift.channel_shift``), and the generator's rule labels on the series; then the chart-read
labels' flag-head recall and ROC-AUC, overall, per series and for the held-out series alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bullflag_model.evaluation.metrics import roc_auc
from bullflag_model.evaluation.scoring import score_features
from bullflag_model.features import FEATURE_SPEC, SEQ_LEN, features_in_chunks
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead
from bullflag_model.realdata.candidates import rule_flag_labels
from bullflag_model.realdata.labels import Label, window_end_index
from bullflag_model.realdata.market_stats import bar_statistics, pole_statistics
from bullflag_model.realdata.series import HELD_OUT_SERIES, RealSeries
from bullflag_model.realdata.shift import channel_shift
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams, generate_windows

SYNTHETIC_SEED = 20_241
"""The generated reference windows come from the held-out evaluation seed, which training refuses."""
QUANTILES = (0.5, 0.9, 0.99)
FLAG_CUT = 0.5
TOP_GAP_BARS = 20

TARGETS = {
    "label_flag_recall": 0.6,
    "label_flag_roc_auc": 0.85,
    "signals_per_1000_bars_min": 0.05,
    "signals_per_1000_bars_max": 20.0,
    "flag_at_least_half_fraction_max": 0.10,
    "classifier_auc_max": 0.85,
}


@dataclass
class SeriesScores:
    """A series' windows scored: head probabilities ``[N, 4]`` and ``sequence`` ``[N]``.

    Window ``j`` ends at bar ``j + L - 1``; ``top`` holds the windows the top gallery draws.
    """

    series: RealSeries
    probs: np.ndarray
    sequence: np.ndarray
    top: list[int] = field(default_factory=list)


def sliding_windows(bars: np.ndarray, seq_len: int = SEQ_LEN) -> np.ndarray:
    """Every window ``[T - seq_len + 1, seq_len, 5]`` of a series (a read-only view)."""
    return np.lib.stride_tricks.sliding_window_view(bars, (seq_len, 5))[:, 0]


def top_windows(scores: np.ndarray, count: int, gap: int = TOP_GAP_BARS) -> list[int]:
    """Indices of the ``count`` highest scores, each at least ``gap`` windows from those taken before."""
    taken: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(abs(int(i) - j) >= gap for j in taken):
            taken.append(int(i))
        if len(taken) == count:
            break
    return taken


def _distribution(values: np.ndarray) -> dict[str, float]:
    """Quantiles, maximum and mean of a score column."""
    q = np.quantile(values, QUANTILES)
    out = {f"p{round(100 * level)}": float(v) for level, v in zip(QUANTILES, q, strict=True)}
    return {**out, "max": float(values.max()), "mean": float(values.mean())}


def _label_metrics(flag_prob: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Flag-head recall at 0.5 over positives, and ROC-AUC positives against negatives."""
    pos = labels == 1
    return {
        "positives": int(pos.sum()),
        "negatives": int((~pos).sum()),
        "flag_recall_at_0.5": float((flag_prob[pos] >= FLAG_CUT).mean()) if pos.any() else None,
        "flag_roc_auc": roc_auc(flag_prob, labels) if 0 < pos.sum() < pos.size else None,
    }


def score_labels(scored: dict[str, SeriesScores], labels: list[Label]) -> dict[str, Any]:
    """Each label's flag probability and the label metrics: all, per series, and the held-out series."""
    rows = []
    for label in labels:
        series = scored[label.series]
        j = window_end_index(series.series, label.end) - (SEQ_LEN - 1)
        rows.append((label, j, float(series.probs[j, 0])))
    flag = np.array([r[2] for r in rows])
    y = np.array([r[0].label for r in rows])
    names = np.array([r[0].series for r in rows])
    per_series = {name: _label_metrics(flag[names == name], y[names == name]) for name in scored}
    rest = names != HELD_OUT_SERIES
    return {
        "all": _label_metrics(flag, y),
        "held_out_series": HELD_OUT_SERIES,
        "held_out": per_series.get(HELD_OUT_SERIES),
        "without_held_out": _label_metrics(flag[rest], y[rest]),
        "per_series": per_series,
        "rows": [
            {
                "id": lab.id,
                "series": lab.series,
                "end": lab.end,
                "label": lab.label,
                "kind": lab.kind,
                "flag_prob": p,
            }
            for lab, _, p in rows
        ],
    }


def evaluate_series(
    model: BullFlagCNNMultiHead,
    series: RealSeries,
    threshold: float,
    synthetic_features: np.ndarray,
    params: GeneratorParams,
    top_count: int,
) -> tuple[dict[str, Any], SeriesScores]:
    """One series' report section and its scores."""
    windows = sliding_windows(series.bars)
    features = features_in_chunks(np.ascontiguousarray(windows))
    probs, sequence = score_features(model, features)
    rule = rule_flag_labels(np.ascontiguousarray(windows), params)
    signals = int((sequence >= threshold).sum())
    shift = channel_shift(features, synthetic_features, FEATURE_SPEC.channels)
    report = {
        "kind": series.source.kind,
        "description": series.source.description,
        "bars": int(series.bars.shape[0]),
        "windows": int(windows.shape[0]),
        "first": str(series.times[0]),
        "last": str(series.times[-1]),
        "signals": signals,
        "signals_per_1000_bars": 1000.0 * signals / windows.shape[0],
        "flag_at_least_half_fraction": float((probs[:, 0] >= FLAG_CUT).mean()),
        "heads": {name: _distribution(probs[:, k]) for k, name in enumerate(HEAD_NAMES)},
        "sequence_score": _distribution(sequence),
        "rule_flag_fraction": float(rule.mean()),
        "rule_flag_windows": int(rule.sum()),
        "channels": shift,
        "market": {**bar_statistics(series.bars[None]), **pole_statistics(np.ascontiguousarray(windows))},
        "held_out": series.name == HELD_OUT_SERIES,
    }
    scores = SeriesScores(series, probs, sequence, top_windows(sequence, top_count))
    report["top_windows"] = [
        {
            "end": str(series.times[j + SEQ_LEN - 1]),
            "sequence_score": float(sequence[j]),
            "flag_prob": float(probs[j, 0]),
        }
        for j in scores.top
    ]
    return report, scores


def rule_agreement(
    scored: dict[str, SeriesScores], labels: list[Label], params: GeneratorParams
) -> dict[str, Any]:
    """How often the generator's rule labeller agrees with the chart-read labels (flag head)."""
    truth, rule = [], []
    for label in labels:
        series = scored[label.series].series
        end = window_end_index(series, label.end)
        window = series.bars[None, end - SEQ_LEN + 1 : end + 1]
        truth.append(label.label)
        rule.append(int(rule_flag_labels(window, params)[0]))
    t, r = np.array(truth), np.array(rule)
    if t.size == 0:
        return {"agreement": None, "rule_recall_of_positives": None, "rule_positive_on_negatives": None}
    return {
        "agreement": float((t == r).mean()),
        "rule_recall_of_positives": float(r[t == 1].mean()) if (t == 1).any() else None,
        "rule_positive_on_negatives": float(r[t == 0].mean()) if (t == 0).any() else None,
    }


def _checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's real-data targets, each with its measured value and whether it is met."""
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, target: str, met: bool) -> None:
        rows.append({"name": name, "value": value, "target": target, "met": bool(met)})

    for scope in ("all", "held_out"):
        m = report["labels"][scope] or {}
        recall, auc = m.get("flag_recall_at_0.5"), m.get("flag_roc_auc")
        add(f"labels[{scope}] flag recall at 0.5", recall, ">= 0.6", recall is not None and recall >= 0.6)
        add(f"labels[{scope}] flag ROC-AUC", auc, ">= 0.85", auc is not None and auc >= 0.85)
    for name, s in report["series"].items():
        rate = s["signals_per_1000_bars"]
        add(f"{name} signals per 1000 bars", rate, "0.05 .. 20", 0.05 <= rate <= 20.0)
        frac = s["flag_at_least_half_fraction"]
        add(f"{name} flag >= 0.5 fraction", frac, "<= 0.10", frac <= 0.10)
        for channel, c in s["channels"].items():
            auc = c["classifier_auc"]
            add(f"{name} {channel} real-vs-generated AUC", auc, "<= 0.85", auc <= 0.85)
    return rows


def evaluate_real(
    model: BullFlagCNNMultiHead,
    threshold: float,
    series: list[RealSeries],
    labels: list[Label],
    params: GeneratorParams = DEFAULT_PARAMS,
    synthetic_windows: int = 4000,
    top_count: int = 6,
    log: Callable[[str], None] = lambda _m: None,
) -> tuple[dict[str, Any], dict[str, SeriesScores]]:
    """The real-data report (plain JSON types) and each series' scores, for the galleries."""
    log(f"generating {synthetic_windows} reference windows (seed {SYNTHETIC_SEED})")
    synthetic_bars = generate_windows(synthetic_windows, SYNTHETIC_SEED, params).bars
    synthetic = features_in_chunks(synthetic_bars)
    sections, scored = {}, {}
    for one in series:
        log(f"scoring {one.name}: {one.bars.shape[0]} bars")
        sections[one.name], scored[one.name] = evaluate_series(
            model, one, threshold, synthetic, params, top_count
        )
    report: dict[str, Any] = {
        "serving_threshold": threshold,
        "synthetic_reference": {
            "windows": synthetic_windows,
            "seed": SYNTHETIC_SEED,
            "market": {**bar_statistics(synthetic_bars), **pole_statistics(synthetic_bars, params)},
        },
        "series": sections,
        "labels": score_labels(scored, labels),
        "rule_labeller_vs_labels": rule_agreement(scored, labels, params),
    }
    report["targets"] = _checks(report)
    return report, scored
