"""Bars -> model input: the one feature function shared by training, evaluation and serving.

Every feature is a ratio of prices (taken in log space) or of volumes, divided by a scale
measured inside the same window, so a window priced at 1.07 and the same shape at 1,070
give the same input, and a quiet stock and a volatile one with the same shape look alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPEN, HIGH, LOW, CLOSE, VOLUME = range(5)
SEQ_LEN = 200
CLIP = 10.0
_TINY_PRICE = 1e-12
_TINY_SCALE = 1e-12
FEATURE_CHUNK = 8192


@dataclass(frozen=True)
class FeatureSpec:
    """Name, version and channel names of a feature set; checkpoints record it."""

    name: str
    version: int
    channels: tuple[str, ...]

    @property
    def n_features(self) -> int:
        """Number of input channels the model sees."""
        return len(self.channels)

    def as_dict(self) -> dict[str, object]:
        """Plain form stored in checkpoints."""
        return {"name": self.name, "version": self.version, "channels": list(self.channels)}


FEATURE_SPEC = FeatureSpec(
    name="ohlcv-logrel",
    version=1,
    channels=(
        "return_z",
        "body_z",
        "upper_wick_z",
        "lower_wick_z",
        "close_in_range",
        "high_in_range",
        "low_in_range",
        "close_vs_last_z",
        "volume_rel",
    ),
)
N_FEATURES = FEATURE_SPEC.n_features


def build_features(bars: np.ndarray) -> np.ndarray:
    """Turn OHLCV windows ``[..., L, 5]`` into model input ``[..., N_FEATURES, L]`` (float32).

    Channels (see ``FEATURE_SPEC.channels``), with ``r`` the close-to-close log return
    (the first bar uses its open) and ``s`` the window's RMS of ``r``:

    - ``r / s``, ``log(c/o) / s``, ``log(h/max(o,c)) / s``, ``log(min(o,c)/l) / s``;
    - close, high and low as a fraction of the window's log high-low range (in [0, 1]);
    - ``log(c / c_last) / (s * sqrt(L))``: the path relative to the window's last close;
    - ``log1p(v / mean(v))``: volume relative to the window's mean (0 when all zero).

    z-scored channels are clipped to [-10, 10]; flat prices, zero volume and non-finite
    inputs give finite values, so no NaN or inf ever reaches the model.
    """
    bars = np.asarray(bars, dtype=np.float64)
    if bars.ndim < 2 or bars.shape[-1] != 5:
        raise ValueError(
            f"bars must have shape [..., L, 5] (open, high, low, close, volume), got {bars.shape}"
        )
    bars = np.nan_to_num(bars, nan=0.0, posinf=0.0, neginf=0.0)
    log_p = np.log(np.maximum(bars[..., :4], _TINY_PRICE))
    o, h, low, c = (log_p[..., i] for i in (OPEN, HIGH, LOW, CLOSE))
    volume = np.maximum(bars[..., VOLUME], 0.0)
    length = bars.shape[-2]

    returns = np.diff(c, axis=-1, prepend=o[..., :1])
    scale = np.sqrt(np.mean(returns * returns, axis=-1, keepdims=True)) + _TINY_SCALE

    body_top = np.maximum(o, c)
    body_bottom = np.minimum(o, c)
    top = np.maximum(body_top, h)
    bottom = np.minimum(body_bottom, low)
    range_low = bottom.min(axis=-1, keepdims=True)
    range_span = top.max(axis=-1, keepdims=True) - range_low
    range_span = np.where(range_span > _TINY_SCALE, range_span, np.inf)

    mean_volume = volume.mean(axis=-1, keepdims=True)
    mean_volume = np.where(mean_volume > 0, mean_volume, np.inf)

    out = np.empty((*bars.shape[:-2], N_FEATURES, length), dtype=np.float32)
    np.clip(returns / scale, -CLIP, CLIP, out=out[..., 0, :])
    np.clip((c - o) / scale, -CLIP, CLIP, out=out[..., 1, :])
    np.clip((top - body_top) / scale, 0.0, CLIP, out=out[..., 2, :])
    np.clip((body_bottom - bottom) / scale, 0.0, CLIP, out=out[..., 3, :])
    np.divide(c - range_low, range_span, out=out[..., 4, :])
    np.divide(top - range_low, range_span, out=out[..., 5, :])
    np.divide(bottom - range_low, range_span, out=out[..., 6, :])
    np.clip((c - c[..., -1:]) / (scale * np.sqrt(length)), -CLIP, CLIP, out=out[..., 7, :])
    np.minimum(np.log1p(volume / mean_volume), CLIP, out=out[..., 8, :])
    return np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def features_in_chunks(bars: np.ndarray, chunk: int = FEATURE_CHUNK) -> np.ndarray:
    """``build_features`` over ``bars [N, L, 5]`` in chunks, bounding float64 temporaries."""
    if bars.shape[0] == 0:
        return np.zeros((0, N_FEATURES, bars.shape[1]), dtype=np.float32)
    return np.concatenate([build_features(bars[i : i + chunk]) for i in range(0, bars.shape[0], chunk)])
