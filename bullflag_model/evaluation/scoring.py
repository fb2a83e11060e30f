"""A model's scores of numpy windows: head probabilities, ``sequence_score``, Grad-CAM maps.

The maths of serving (``BullFlagCNNInfer``), batched over many windows for evaluation and for
training's threshold choice; ``slide_scores`` scores every bar close of long series as the worker
does. Results come back as numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from bullflag_model.features import SEQ_LEN, features_in_chunks
from bullflag_model.gradcam import GradCAM1D
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead

SCORE_BATCH = 2048


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
