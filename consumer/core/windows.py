"""Windows to score: one 200-bar window ending at each closed bar, gathered in numpy.

:class:`Windows` is what the pipeline hands the scorer; :func:`windows_ending_at_each_bar`
builds, for every bar a batch closed, the window of the symbol's stored bars and its new bars
up to that one, with one gather over all symbols instead of a loop per bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Windows:
    """Windows to score, one per closed bar: ``bars`` float64[n, L, 5] oldest bar first.

    ``symbols`` the n symbols, ``bar_end_ts`` / ``window_start_ts`` int64[n] epoch ms.
    """

    symbols: list[str]
    bars: np.ndarray
    bar_end_ts: np.ndarray
    window_start_ts: np.ndarray

    def __len__(self) -> int:
        return len(self.symbols)

    @staticmethod
    def concat(parts: Sequence[Windows], seq_len: int) -> Windows:
        """All windows of ``parts`` in order (an empty set has shape [0, seq_len, 5])."""
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return Windows([], np.zeros((0, seq_len, 5)), empty, empty)
        if len(parts) == 1:
            return parts[0]
        return Windows(
            [s for part in parts for s in part.symbols],
            np.concatenate([part.bars for part in parts]),
            np.concatenate([part.bar_end_ts for part in parts]),
            np.concatenate([part.window_start_ts for part in parts]),
        )


def windows_ending_at_each_bar(
    history: np.ndarray,
    history_start: np.ndarray,
    counts: np.ndarray,
    group: np.ndarray,
    bar_start: np.ndarray,
    ohlcv: np.ndarray,
    symbols: list[str],
    interval_ms: int,
) -> Windows:
    """For the j-th new bar of symbol g: the last L bars of (g's stored bars ++ its new bars 0..j).

    ``history`` float64[G, L, 5] and ``history_start`` int64[G, L] hold each symbol's stored
    window (newest last), ``counts`` int64[G] how many bars it has had; the m new bars
    (``group`` int64[m] sorted, ``bar_start`` int64[m], ``ohlcv`` float64[m, 5]) are all newer
    than the stored ones. A bar is scored once its symbol has L bars.
    """
    groups, seq_len = history.shape[:2]
    run_first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    run_first = np.repeat(run_first, np.diff(run_first, append=len(group)))
    rank = np.arange(len(group)) - run_first
    rows = np.flatnonzero(counts[group] + rank + 1 >= seq_len)
    take = rank[rows, None] + 1 + np.arange(seq_len)
    index = np.where(
        take < seq_len,
        group[rows, None] * seq_len + np.minimum(take, seq_len - 1),
        groups * seq_len + run_first[rows, None] + take - seq_len,
    )
    flat_bars = np.concatenate([history.reshape(-1, 5), ohlcv])
    flat_start = np.concatenate([history_start.reshape(-1), bar_start])
    return Windows(
        symbols=[symbols[i] for i in rows.tolist()],
        bars=np.take(flat_bars, index, axis=0),
        bar_end_ts=bar_start[rows] + interval_ms,
        window_start_ts=flat_start[index[:, 0]],
    )
