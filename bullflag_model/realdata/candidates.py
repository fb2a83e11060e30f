"""Pole-then-pullback candidates in real windows, and the generator's rule labeller applied to them.

Real charts carry no planted pole or flag, so ``strongest_pole`` searches each window for the pole
that the generator's rules would measure: the largest close-over-open gain, in robust sigmas per
root bar, of a run of ``pole_length_range`` bars that ends ``min_flag_bars`` to ``freshness_bars``
bars before the last bar. ``rule_flag_labels`` then hands that pole, and the flag from its end to
the window's last bar, to ``label_windows``. Candidates found this way are what the labelling
pictures are drawn from; a chart reader decides the label.
"""

from __future__ import annotations

import numpy as np

from bullflag_model.features import CLOSE, OPEN
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams, label_windows

_MAD_TO_SIGMA = 1.4826
_TINY = 1e-12


def strongest_pole(
    windows: np.ndarray, params: GeneratorParams = DEFAULT_PARAMS
) -> tuple[np.ndarray, np.ndarray]:
    """Pole ``[N, 2]`` ([start, end) in window bars) and its strength ``[N]`` for windows ``[N, L, 5]``.

    Strength is ``log(close[end - 1] / open[start]) / (sigma * sqrt(end - start))`` with sigma the
    window's robust (MAD) sigma of close-to-close log returns, as ``label_windows`` measures it.
    """
    n, length, _ = windows.shape
    logs = np.log(windows[..., :4])
    mad = np.median(np.abs(np.diff(logs[..., CLOSE], axis=1)), axis=1) * _MAD_TO_SIGMA
    sigma = np.maximum(mad, _TINY)
    best = np.full(n, -np.inf)
    pole = np.zeros((n, 2), dtype=np.int64)
    lo_len, hi_len = params.pole_length_range
    for flag_bars in range(params.min_flag_bars, params.freshness_bars + 1):
        end = length - flag_bars
        for pole_len in range(lo_len, hi_len + 1):
            start = end - pole_len
            if start < 0:
                continue
            z = (logs[:, end - 1, CLOSE] - logs[:, start, OPEN]) / (sigma * np.sqrt(pole_len))
            better = z > best
            best = np.where(better, z, best)
            pole[better] = (start, end)
    return pole, best


def rule_flag_labels(windows: np.ndarray, params: GeneratorParams = DEFAULT_PARAMS) -> np.ndarray:
    """The generator's flag-head label ``[N]`` (0/1) for real windows, with the strongest pole found.

    The flag is taken to run from the pole's end through the window's last bar, so a 1 means the
    rules see a valid, fresh flag at the last bar.
    """
    if windows.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    pole, _ = strongest_pole(windows, params)
    flag = np.stack([pole[:, 1], np.full(pole.shape[0], windows.shape[1])], axis=1)
    labels, _ = label_windows(windows, pole, flag, params)
    return labels[:, 0].astype(np.int64)
