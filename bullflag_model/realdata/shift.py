"""How far real windows sit from generated ones: per-channel statistics, KS shift and a fixed classifier.

All numpy and deterministic. ``window_statistics`` summarises each feature channel of each window
by a fixed set of numbers; ``classifier_auc`` fits one logistic regression (a fixed number of
full-batch Newton steps from zero, light L2) on a fixed split and reports the ROC-AUC on the other
part, so the same inputs always give the same AUC. 0.5 means the channel's window statistics cannot
tell real from generated; 1.0 means they always can.
"""

from __future__ import annotations

import numpy as np

from bullflag_model.evaluation.metrics import roc_auc

STATISTICS = ("mean", "std", "mean_abs", "lag1_autocorr", "zero_fraction", "p05", "p95", "max_abs")
NEWTON_STEPS = 25
L2 = 1e-2
_TINY = 1e-12


def window_statistics(features: np.ndarray) -> np.ndarray:
    """Statistics ``[N, F, len(STATISTICS)]`` of feature windows ``[N, F, L]`` (see ``STATISTICS``)."""
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=-1)
    centred = x - mean[..., None]
    var = (centred * centred).mean(axis=-1)
    lag1 = (centred[..., 1:] * centred[..., :-1]).mean(axis=-1) / np.maximum(var, _TINY)
    p05, p95 = np.percentile(x, [5.0, 95.0], axis=-1)
    return np.stack(
        [
            mean,
            np.sqrt(var),
            np.abs(x).mean(axis=-1),
            np.where(var > _TINY, lag1, 0.0),
            (np.abs(x) < 1e-9).mean(axis=-1),
            p05,
            p95,
            np.abs(x).max(axis=-1),
        ],
        axis=-1,
    )


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = NEWTON_STEPS, l2: float = L2) -> np.ndarray:
    """Weights ``[D + 1]`` (bias last) of an L2-regularised logistic regression, by Newton's method.

    Starts at zero and takes exactly ``steps`` full-batch steps, so it is deterministic.
    """
    design = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    w = np.zeros(design.shape[1])
    penalty = l2 * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -30, 30)))
        grad = design.T @ (p - y) / x.shape[0] + penalty @ w
        hess = (design * (p * (1 - p))[:, None]).T @ design / x.shape[0] + penalty
        w -= np.linalg.solve(hess + _TINY * np.eye(design.shape[1]), grad)
    return w


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets scaled by the training set's mean and standard deviation."""
    mu, sd = train.mean(axis=0), train.std(axis=0)
    sd = np.where(sd > _TINY, sd, 1.0)
    return (train - mu) / sd, (test - mu) / sd


def classifier_auc(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Held-out ROC-AUC of the fixed real-vs-generated classifier on statistics ``[N, D]`` of each.

    Each set is split in time order: the first half trains, the second half is scored (real
    windows overlap, so an interleaved split would leak). Real is the positive class.
    """
    nr, ns = real.shape[0] // 2, synthetic.shape[0] // 2
    if min(nr, ns) < 2:
        raise ValueError(
            f"need at least 4 real and 4 generated windows, got {real.shape[0]}, {synthetic.shape[0]}"
        )
    x_train = np.concatenate([real[:nr], synthetic[:ns]])
    y_train = np.concatenate([np.ones(nr), np.zeros(ns)])
    x_test = np.concatenate([real[nr:], synthetic[ns:]])
    y_test = np.concatenate([np.ones(real.shape[0] - nr), np.zeros(synthetic.shape[0] - ns)])
    x_train, x_test = _standardise(x_train, x_test)
    w = fit_logistic(x_train, y_train)
    scores = np.concatenate([x_test, np.ones((x_test.shape[0], 1))], axis=1) @ w
    return roc_auc(scores, y_test)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def channel_shift(
    real: np.ndarray, synthetic: np.ndarray, channels: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Per channel: KS statistic of bar values, quantiles of both, and the fixed classifier's AUC.

    ``real`` and ``synthetic`` are feature windows ``[N, F, L]``; values are pooled over bars.
    """
    stats_real, stats_syn = window_statistics(real), window_statistics(synthetic)
    out = {}
    for k, name in enumerate(channels):
        r, s = real[:, k, :], synthetic[:, k, :]
        rq, sq = np.percentile(r, [1, 50, 99]), np.percentile(s, [1, 50, 99])
        out[name] = {
            "ks": ks_statistic(r, s),
            "real_p01": float(rq[0]),
            "real_p50": float(rq[1]),
            "real_p99": float(rq[2]),
            "synthetic_p01": float(sq[0]),
            "synthetic_p50": float(sq[1]),
            "synthetic_p99": float(sq[2]),
            "classifier_auc": classifier_auc(stats_real[:, k], stats_syn[:, k]),
        }
    return out
