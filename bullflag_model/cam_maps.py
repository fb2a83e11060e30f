"""Grad-CAM maps in numpy from ``conv4`` output and closed-form channel weights (no torch).

The serving half of the Grad-CAM in ``gradcam.py``, for backends whose model runs outside torch:
``cam = ReLU(sum_c w_c A[c])``, divided by its peak when the peak is positive, then linearly
resampled to the window length exactly as ``F.interpolate(mode="linear", align_corners=False)``.
Each row is computed from that row alone, in the same order whatever the batch, so a map does not
depend on which other windows were scored with it.
"""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def _resample_plan(l_conv: int, seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices ``i0``, ``i1`` and weight ``lam`` of each output bar (torch's formula, float32)."""
    scale = np.float32(l_conv) / np.float32(seq_len)
    src = scale * (np.arange(seq_len, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = src.astype(np.int64)
    lam = (src - i0.astype(np.float32)).astype(np.float32)
    last = i0 >= l_conv - 1
    i1 = np.where(last, i0, i0 + 1)
    # Past the last source step every output is that step's value exactly, as in torch: a
    # weight on the same value twice would round differently from bar to bar and break ties.
    lam = np.where(last, np.float32(0.0), lam).astype(np.float32)
    return i0, i1, lam


def maps_from_weights(activations: np.ndarray, weights: np.ndarray, seq_len: int) -> np.ndarray:
    """Maps ``[R, seq_len]`` in [0, 1] from ``A`` ``[R, C, L_conv]`` and weights ``w`` ``[R, C]``."""
    a = np.asarray(activations, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32)
    cam = np.maximum(np.einsum("rc,rcl->rl", w, a), np.float32(0.0))
    peak = cam.max(axis=-1, keepdims=True) if cam.shape[-1] else np.zeros((len(cam), 1), np.float32)
    cam = np.where(peak > 0, cam / np.where(peak > 0, peak, np.float32(1.0)), cam)
    i0, i1, lam = _resample_plan(a.shape[-1], seq_len)
    out = (np.float32(1.0) - lam) * cam[:, i0] + lam * cam[:, i1]
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
