"""Figures of an evaluation report: ROC curves, reliability diagram and example windows (PNG).

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display) from the arrays
``bullflag_model.evaluation.report.evaluate_model`` returns; example windows are drawn by
``bullflag_model.plot``. Only this module and ``plot`` import matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bullflag_model.evaluation.experiments import CONTINUATION
from bullflag_model.evaluation.metrics import reliability, roc_auc, roc_curve
from bullflag_model.evaluation.scoring import sequence_cams
from bullflag_model.features import features_in_chunks
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead
from bullflag_model.plot import plot_window_grid
from bullflag_model.synthetic import KINDS, SyntheticBatch


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
