"""The market traits that tell real bars from generated ones, measured the same way on both.

Pure numpy. ``bar_statistics`` measures gaps, wicks, volume smoothness and volatility clustering
over series ``[S, T, 5]`` (each row its own series: no difference crosses rows);
``pole_statistics`` measures, in windows whose strongest pole is at least ``POLE_Z`` strong, how
much of the pole's gain came in gaps and how loud its volume was. These are the numbers a
generator has to match; the real-data report gives them for every series and for the generator.
"""

from __future__ import annotations

import numpy as np

from bullflag_model.features import CLOSE, HIGH, LOW, OPEN, VOLUME
from bullflag_model.realdata.candidates import strongest_pole
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams

POLE_Z = 3.0
_TINY = 1e-12


def _lag1_autocorr(x: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Lag-1 autocorrelation of the rows of ``x [S, T]``, pooled over rows, centred per row.

    Only values where ``valid`` holds count (a pair counts when both of its values do).
    """
    valid = np.ones(x.shape, dtype=bool) if valid is None else valid
    mean = np.where(valid, x, 0.0).sum(axis=1, keepdims=True) / np.maximum(
        valid.sum(axis=1, keepdims=True), 1
    )
    c = np.where(valid, x - mean, 0.0)
    den = float((c * c).sum())
    pairs = valid[:, 1:] & valid[:, :-1]
    num = float((c[:, 1:] * c[:, :-1] * pairs).sum())
    return float(num / den * valid.sum() / max(int(pairs.sum()), 1)) if den > _TINY else 0.0


def bar_statistics(bars: np.ndarray) -> dict[str, float]:
    """Gap, wick, volume and volatility traits of series ``bars [S, T, 5]`` (T >= 3).

    - ``gap_variance_share``: sum of squared gaps ``log(open_t / close_{t-1})`` over the sum of
      squared close-to-close log returns;
    - ``gap_bar_fraction``: share of bars whose gap exceeds 0.25 of the series' RMS return;
    - ``no_upper_wick_fraction`` / ``no_lower_wick_fraction``: bars whose high (low) is the body's;
    - ``log_volume_lag1_autocorr``: lag-1 autocorrelation of log volume (bars with volume only);
    - ``abs_return_lag1_autocorr``: lag-1 autocorrelation of absolute returns (volatility clusters).
    """
    logs = np.log(np.asarray(bars, dtype=np.float64)[..., :4])
    o, h, low, c = (logs[..., i] for i in (OPEN, HIGH, LOW, CLOSE))
    gaps = o[:, 1:] - c[:, :-1]
    returns = c[:, 1:] - c[:, :-1]
    rms = np.sqrt((returns * returns).mean(axis=1, keepdims=True)) + _TINY
    volume = np.asarray(bars, dtype=np.float64)[..., VOLUME]
    has_volume = volume > 0
    return {
        "gap_variance_share": float((gaps * gaps).sum() / max(float((returns * returns).sum()), _TINY)),
        "gap_bar_fraction": float((np.abs(gaps) > 0.25 * rms).mean()),
        "no_upper_wick_fraction": float((h <= np.maximum(o, c) + _TINY).mean()),
        "no_lower_wick_fraction": float((low >= np.minimum(o, c) - _TINY).mean()),
        "log_volume_lag1_autocorr": _lag1_autocorr(np.log(np.where(has_volume, volume, 1.0)), has_volume),
        "abs_return_lag1_autocorr": _lag1_autocorr(np.abs(returns)),
    }


def pole_statistics(windows: np.ndarray, params: GeneratorParams = DEFAULT_PARAMS) -> dict[str, float | int]:
    """Medians over windows ``[N, L, 5]`` whose strongest pole is at least ``POLE_Z`` strong.

    ``pole_gap_share``: the pole's gaps (opens against the previous close, inside the pole) over
    its whole gain; ``pole_volume_ratio``: the pole's mean volume over the window's;
    ``pole_strength``: the pole's gain in robust sigmas per root bar.
    """
    pole, z = strongest_pole(windows, params)
    keep = np.flatnonzero(z >= POLE_Z)
    if keep.size == 0:
        return {
            "windows": 0,
            "pole_gap_share": float("nan"),
            "pole_volume_ratio": float("nan"),
            "pole_strength": float("nan"),
        }
    logs = np.log(windows[keep][..., :4])
    t = np.arange(windows.shape[1])[None, :]
    start, end = pole[keep, 0][:, None], pole[keep, 1][:, None]
    rows = np.arange(keep.size)
    gain = logs[rows, pole[keep, 1] - 1, CLOSE] - logs[rows, pole[keep, 0], OPEN]
    gaps = np.zeros_like(logs[..., OPEN])
    gaps[:, 1:] = logs[:, 1:, OPEN] - logs[:, :-1, CLOSE]
    inside = (t > start) & (t < end)
    volume = windows[keep][..., VOLUME]
    in_pole = (t >= start) & (t < end)
    pole_volume = (volume * in_pole).sum(axis=1) / in_pole.sum(axis=1)
    return {
        "windows": int(keep.size),
        "pole_gap_share": float(np.median((gaps * inside).sum(axis=1) / np.maximum(gain, _TINY))),
        "pole_volume_ratio": float(np.median(pole_volume / np.maximum(volume.mean(axis=1), _TINY))),
        "pole_strength": float(np.median(z[keep])),
    }
