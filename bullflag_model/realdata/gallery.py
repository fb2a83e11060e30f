"""Pictures of the real-data report: top-scored windows, missed labelled flags, any labelled window.

Drawn by ``bullflag_model.plot`` (matplotlib, Agg) with the Grad-CAM map of ``sequence_score`` under
each window, so a reader sees what the model looked at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bullflag_model.evaluation.scoring import score_features, sequence_cams
from bullflag_model.features import SEQ_LEN, features_in_chunks
from bullflag_model.model import BullFlagCNNMultiHead
from bullflag_model.plot import plot_window_grid
from bullflag_model.realdata.labels import Label, label_window
from bullflag_model.realdata.report import SeriesScores
from bullflag_model.realdata.series import RealSeries


def _grid(model: BullFlagCNNMultiHead, windows: list[np.ndarray], titles: list[str], path: Path) -> Path:
    """A grid of windows with their Grad-CAM maps."""
    bars = np.stack(windows)
    cams = sequence_cams(model, features_in_chunks(bars))
    return plot_window_grid(bars, list(cams), titles, path, ncols=3)


def top_gallery(model: BullFlagCNNMultiHead, scores: SeriesScores, path: Path) -> Path:
    """The series' top-scored windows (``SeriesScores.top``), best first."""
    s = scores.series
    windows = [s.bars[j : j + SEQ_LEN] for j in scores.top]
    titles = [
        f"{s.name} {s.times[j + SEQ_LEN - 1]}  seq {scores.sequence[j]:.3f}  flag {scores.probs[j, 0]:.3f}"
        for j in scores.top
    ]
    return _grid(model, windows, titles, path)


def missed_gallery(
    model: BullFlagCNNMultiHead, series: dict[str, RealSeries], rows: list[dict[str, Any]], path: Path
) -> Path | None:
    """Labelled bull flags whose flag probability is below 0.5 (``None`` when there are none)."""
    missed = [r for r in rows if r["label"] == 1 and r["flag_prob"] < 0.5]
    if not missed:
        return None
    labels = [Label(r["id"], r["series"], r["end"], 1, r["kind"], "") for r in missed]
    windows = [label_window(series[lab.series], lab) for lab in labels]
    titles = [f"{r['id']} {r['series']} {r['end']}  flag {r['flag_prob']:.3f}" for r in missed]
    return _grid(model, windows, titles, path)


def draw_labels(
    model: BullFlagCNNMultiHead, series: dict[str, RealSeries], labels: list[Label], path: Path
) -> Path:
    """The named labelled windows, titled with their id, label, kind and the model's flag probability."""
    windows = [label_window(series[lab.series], lab) for lab in labels]
    bars = np.stack(windows)
    probs, _ = score_features(model, features_in_chunks(bars))
    titles = [
        f"{lab.id} {lab.series} {lab.end}  label {lab.label} ({lab.kind})  flag {probs[k, 0]:.3f}"
        for k, lab in enumerate(labels)
    ]
    return _grid(model, windows, titles, path)
