"""``bullflag demo --offline``: score generated windows in one batch, without Kafka.

The quick look at the model: one line per window with its kind, labels, head probabilities,
sequence score and the Grad-CAM peak of those at or above the threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bullflag_model.features import build_features
from bullflag_model.infer import PROB_KEYS, BullFlagCNNInfer
from bullflag_model.synthetic import KINDS, generate_windows

__all__ = ["run_offline"]


def run_offline(windows: int, seed: int, threshold: float | None, checkpoint: Path | None) -> int:
    """Score ``windows`` generated windows in one batch without Kafka; one line per window."""
    batch = generate_windows(windows, seed=seed)
    infer = BullFlagCNNInfer(checkpoint, enable_gradcam=True)
    infer.resolve_threshold(threshold)
    scores = infer.score(build_features(batch.bars))
    trained = infer.metadata.get("trained", True)
    print(f"model {infer.model_version}{'' if trained else ' (UNTRAINED: scores are meaningless)'}")
    print(
        f"{'#':>3} {'kind':<18} {'labels':<8} "
        + " ".join(f"{k[:5]:>6}" for k in PROB_KEYS)
        + "  score  cam peak"
    )
    for i in range(len(scores.sequence)):
        labels = "".join(str(int(v)) for v in batch.labels[i])
        probs = " ".join(f"{p:6.3f}" for p in scores.probs[i])
        peak = f"bar {int(np.argmax(scores.cams[i])):>3}" if scores.has_cam[i] else ""
        mark = "*" if scores.has_cam[i] else " "
        print(f"{i:>3} {KINDS[batch.kind[i]]:<18} {labels:<8} {probs} {scores.sequence[i]:6.3f}{mark} {peak}")
    signals = int(scores.has_cam.sum())
    print(f"{signals} of {len(scores.sequence)} windows at or above threshold {infer.threshold}")
    return 0
