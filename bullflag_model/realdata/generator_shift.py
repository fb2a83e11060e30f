"""How well a generator setting hides from real data: the fixed classifier per channel and series.

No model is involved: the shipped real series' sliding windows and one draw of generated windows
go through the current feature spec, and ``shift.classifier_auc`` tells them apart per channel, as
the real-data report does; the market traits of the generated windows come with it, so a preset
can be held to the real series' own (``market_stats``). Calibrating a preset may look at every
series but ``series.HELD_OUT_SERIES``, whose row is then the honest check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bullflag_model.features import FEATURE_SPEC, features_in_chunks
from bullflag_model.realdata.market_stats import bar_statistics, pole_statistics
from bullflag_model.realdata.report import SYNTHETIC_SEED, sliding_windows
from bullflag_model.realdata.series import RealSeries
from bullflag_model.realdata.shift import classifier_auc, window_statistics
from bullflag_model.synthetic import GeneratorParams, generate_windows

AUC_TARGET = 0.85


def real_statistics(series: list[RealSeries]) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """Per series: window statistics ``[N, F, S]`` of its sliding windows and its market traits."""
    out = {}
    for one in series:
        windows = np.ascontiguousarray(sliding_windows(one.bars))
        market = {**bar_statistics(one.bars[None]), **pole_statistics(windows)}
        out[one.name] = (window_statistics(features_in_chunks(windows)), market)
    return out


def generator_shift(
    params: GeneratorParams,
    real: dict[str, tuple[np.ndarray, dict[str, Any]]],
    windows: int = 4000,
    seed: int = SYNTHETIC_SEED,
) -> dict[str, Any]:
    """Classifier AUC per series and channel of ``windows`` generated windows, and their traits."""
    bars = generate_windows(windows, seed, params).bars
    stats = window_statistics(features_in_chunks(bars))
    auc = {
        name: {
            channel: classifier_auc(real_stats[:, k], stats[:, k])
            for k, channel in enumerate(FEATURE_SPEC.channels)
        }
        for name, (real_stats, _) in real.items()
    }
    return {
        "windows": windows,
        "seed": seed,
        "auc": auc,
        "channels_at_most_target": {
            name: sum(v <= AUC_TARGET for v in per.values()) for name, per in auc.items()
        },
        "market": {**bar_statistics(bars), **pole_statistics(bars, params)},
    }
